"""The field's published library in the lab: scikit-activeml's pool strategies under the lab's protocol.

``workbench simulate --strategies default,skactiveml:TypiClust,skactiveml:MaxHerding`` runs them beside ours
with the same splits, initial sets, seeds and judging head, so a lead compares the default with the
published library on their own labelled data. A peer sees what it needs: the training part's embeddings
and the labels paid for so far (unlabelled ones missing); those that take a classifier get scikit-learn's
``LogisticRegression`` (the same model family as the lab's softmax head, same ``C``) wrapped by
scikit-activeml and fitted on those labels. scikit-activeml is an optional extra (``pip install -e .[lab]``).

Peers take one label per clip. On a multi-label pool (soundscape windows with 0-3 species) those that take
no classifier (TypiClust, MaxHerding, CoreSet, ProbCover, RandomSampling) see only which clips are labelled,
as on any pool; those that take one see each labelled clip's set of species as one class (the label
powerset of the clips paid for so far, "nothing" included), the usual way to run a single-label strategy
on multi-label data. The judging head is the lab's multi-label head either way.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

PREFIX = "skactiveml:"
MISSING = -1
#: scikit-activeml pool strategies the lab runs: name -> whether its query takes a classifier.
PEERS = {"RandomSampling": False, "UncertaintySampling": True, "TypiClust": False, "MaxHerding": False,
         "DropQuery": True, "Badge": True, "CoreSet": False, "Falcun": True, "ProbCover": False}


class PeerError(ValueError):
    """A peer strategy that cannot run here (the library missing, an unknown name)."""


def is_peer(spec: Any) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def available() -> bool:
    return importlib.util.find_spec("skactiveml") is not None


@dataclass
class PeerStrategy:
    """One scikit-activeml strategy under the lab's protocol (``query_labelled`` picks rows of the pool)."""

    strategy: str
    random_state: Optional[int] = None
    C: float = 1.0

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.strategy}"

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        return {"strategy": self.strategy, "random_state": self.random_state, "C": self.C}

    def set_params(self, **params: Any) -> "PeerStrategy":
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def query_labelled(self, x: np.ndarray, y: np.ndarray, n_classes: int, budget: int) -> list[int]:
        """Up to ``budget`` positions of ``x`` to label next; ``y`` holds class indices, ``MISSING`` where unlabelled."""
        import warnings

        import skactiveml.pool as pool
        from skactiveml.classifier import SklearnClassifier
        from sklearn.linear_model import LogisticRegression

        qs = getattr(pool, self.strategy)(missing_label=MISSING, random_state=self.random_state)
        budget = int(min(budget, int((y == MISSING).sum())))
        if budget < 1:
            return []
        with warnings.catch_warnings():  # the library's convergence and batch warnings are not the user's
            warnings.simplefilter("ignore")
            if PEERS[self.strategy]:
                clf = SklearnClassifier(LogisticRegression(C=self.C, max_iter=1000), classes=np.arange(n_classes),
                                        missing_label=MISSING, random_state=self.random_state)
                picks = qs.query(x, y, clf=clf, batch_size=budget)
            else:
                picks = qs.query(x, y, batch_size=budget)
        return [int(p) for p in np.atleast_1d(picks)]


def peer_specs() -> list[str]:
    """``skactiveml:NAME`` of every peer the lab can run here (none without scikit-activeml)."""
    return [PREFIX + name for name in PEERS] if available() else []


def peer_strategy(spec: str) -> PeerStrategy:
    """``"skactiveml:TypiClust"`` -> the peer; a one-line error for an unknown name or a missing library."""
    name = spec[len(PREFIX):]
    if name not in PEERS:
        raise PeerError(f"unknown scikit-activeml strategy {name!r}; the lab runs {', '.join(PREFIX + p for p in PEERS)}")
    if not available():
        raise PeerError(f"{spec} needs scikit-activeml: pip install -e '.[lab]' (or pip install scikit-activeml)")
    return PeerStrategy(name)


def labels_vector(truth: np.ndarray, rows: Sequence[int], labelled: Sequence[int]) -> tuple[np.ndarray, int]:
    """(class index per row of ``rows``, ``MISSING`` where the row is not labelled yet; number of classes).

    One label per clip: the class itself, out of every class of the pool. Several (or none) on some
    clip: the label set as one class, numbered over the sets the labelled clips hold (sorted, so the
    same labels give the same numbering).
    """
    truth = np.asarray(truth, dtype=bool)
    position = {int(r): i for i, r in enumerate(rows)}
    y = np.full(len(rows), MISSING, dtype=np.int64)
    paid = [int(r) for r in labelled]
    if (truth.sum(axis=1) == 1).all():
        for r in paid:
            y[position[r]] = int(np.argmax(truth[r]))
        return y, truth.shape[1]
    sets = {r: tuple(np.flatnonzero(truth[r]).tolist()) for r in paid}
    index = {t: i for i, t in enumerate(sorted(set(sets.values())))}
    for r in paid:
        y[position[r]] = index[sets[r]]
    return y, len(index)
