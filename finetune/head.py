"""A multi-label linear head on frozen embeddings: one class-weighted logistic regression per label.

BirdNET is a sigmoid multi-label model and an annotator may tick several species in one clip, so
each label gets its own binary classifier (as perch-hoplite's linear probes do). Class weighting
keeps rare species from being drowned by the common ones (macro recall, not accuracy, is what
matters). The head saves as plain numbers (.npz, no pickle) so a workspace can be shared safely.
"""

from __future__ import annotations

import json
import numbers
import zipfile
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_array, check_is_fitted

from store.atomic import write_atomically
from store.probability import OutputType, activate

FORMAT_VERSION = 1


def label_matrix(Y: Sequence[Iterable[str]], classes: Sequence[str]) -> np.ndarray:
    """Indicator matrix (n x n_classes, bool) of label lists; refuses labels outside ``classes``."""
    index = {c: j for j, c in enumerate(classes)}
    out = np.zeros((len(Y), len(classes)), dtype=bool)
    for i, labels in enumerate(Y):
        for label in labels:
            if label not in index:
                raise ValueError(f"sample {i} has label {label!r}, which is not among the classes {list(classes)!r}")
            out[i, index[label]] = True
    return out


def _check_label_lists(Y: Any, n: int) -> list[list[str]]:
    if isinstance(Y, (str, bytes)):
        raise ValueError("Y must be a list of label lists (one per row of X), got a string")
    Y = list(Y)
    if len(Y) != n:
        raise ValueError(f"Y has {len(Y)} label lists but X has {n} rows; give one label list per row")
    out = []
    for i, labels in enumerate(Y):
        if isinstance(labels, (str, bytes)):
            raise ValueError(f"Y[{i}] is the string {labels!r}; each entry must be a list of labels, "
                             f"e.g. [{labels!r}]")
        try:
            labels = list(labels)
        except TypeError as e:
            raise ValueError(f"Y[{i}] must be a list of labels, got {labels!r}") from e
        bad = [x for x in labels if not isinstance(x, str) or not x]
        if bad:
            raise ValueError(f"Y[{i}] holds {bad[0]!r}; labels must be non-empty strings")
        out.append(labels)
    return out


class ClassifierHead(BaseEstimator):
    """Per-label logistic regressions on embeddings; ``predict_proba`` gives independent probabilities.

    Parameters
    ----------
    C : float > 0, default 1.0
        Inverse L2 regularisation strength of each logistic regression.
    class_weight : "balanced" or None, default "balanced"
        "balanced" weighs positives and negatives of each label inversely to their frequency, so a
        rare species is not ignored; None weighs every clip equally.
    max_iter : int >= 1, default 1000
        Solver iterations per label.
    random_state : int or None, default None
        Passed to every inner ``LogisticRegression``.
    output_type : {"sigmoid", "softmax"}, default "sigmoid"
        "sigmoid": one binary regression per label, independent probabilities (several labels per
        clip: BirdNET's windows). "softmax": one multinomial regression, probabilities summing to 1,
        for single-label data (one animal per crop, as image classifiers see it); every clip must
        then carry exactly one label, and ``predict`` gives the most probable class.

    A label with no positive (or no negative) example in the training data cannot be learnt: it gets
    a constant probability from its smoothed frequency and is listed in ``constant_classes_``.
    """

    def __init__(self, C: float = 1.0, class_weight: Optional[str] = "balanced", max_iter: int = 1000,
                 random_state: Optional[int] = None, output_type: str = "sigmoid"):
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.random_state = random_state
        self.output_type = output_type

    def _validate_params(self) -> None:
        if isinstance(self.C, bool) or not isinstance(self.C, numbers.Real) or not self.C > 0:
            raise ValueError(f"C must be a number > 0, got {self.C!r}")
        if self.class_weight not in ("balanced", None):
            raise ValueError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}")
        mi = self.max_iter
        if isinstance(mi, bool) or not isinstance(mi, numbers.Integral) or mi < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {mi!r}")
        if self.output_type not in ("sigmoid", "softmax"):
            raise ValueError(f"output_type must be 'sigmoid' or 'softmax', got {self.output_type!r}")

    def fit(self, X: Any, Y: Sequence[Iterable[str]], *, classes: Optional[Sequence[str]] = None) -> "ClassifierHead":
        """Fit one binary classifier per label of ``Y`` (a label list per row of ``X``).

        ``classes`` fixes the label order and may name labels absent from ``Y`` (they become
        constant); default is the sorted labels seen in ``Y``.
        """
        self._validate_params()
        X = check_array(X, dtype=np.float64, input_name="X")
        Y = _check_label_lists(Y, X.shape[0])
        seen = sorted({label for labels in Y for label in labels})
        if classes is None:
            classes = seen
        else:
            classes = list(classes)
            if len(set(classes)) != len(classes):
                raise ValueError(f"classes lists a label twice: {classes!r}")
        if not classes:
            raise ValueError("Y holds no labels at all; a head needs at least one labelled class")
        ind = label_matrix(Y, classes)
        if self.output_type == "softmax":
            return self._fit_softmax(X, ind, classes)

        n, d = X.shape
        coef = np.zeros((len(classes), d))
        intercept = np.zeros(len(classes))
        constant = []
        for j, label in enumerate(classes):
            y = ind[:, j]
            n_pos = int(y.sum())
            if n_pos in (0, n):
                # Nothing to separate: predict the smoothed frequency (Laplace), never exactly 0 or 1.
                p = (n_pos + 0.5) / (n + 1.0)
                intercept[j] = np.log(p / (1 - p))
                constant.append(label)
                continue
            lr = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter,
                                    random_state=self.random_state)
            lr.fit(X, y)
            coef[j] = lr.coef_[0]
            intercept[j] = lr.intercept_[0]

        self.classes_ = np.array(classes, dtype=object)
        self.coef_ = coef
        self.intercept_ = intercept
        self.n_features_in_ = d
        self.class_counts_ = ind.sum(axis=0).astype(np.int64)
        self.constant_classes_ = constant
        return self

    def _fit_softmax(self, X: np.ndarray, ind: np.ndarray, classes: list[str]) -> "ClassifierHead":
        """One multinomial regression; classes absent from the data get a logit far below the rest."""
        per_row = ind.sum(axis=1)
        if (per_row != 1).any():
            i = int(np.flatnonzero(per_row != 1)[0])
            raise ValueError(f"a softmax head needs exactly one label per clip; sample {i} has {int(per_row[i])}: "
                             f"use output_type='sigmoid' for multi-label data")
        y = ind.argmax(axis=1)
        present = np.unique(y)
        d = X.shape[1]
        coef = np.zeros((len(classes), d))
        intercept = np.full(len(classes), -30.0)  # never predicted: no example to learn it from
        if present.size == 1:
            intercept[present[0]] = 0.0
        else:
            lr = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter,
                                    random_state=self.random_state)
            lr.fit(X, y)
            if present.size == 2:  # sklearn fits one logit for two classes: split it symmetrically
                coef[lr.classes_[1]], coef[lr.classes_[0]] = lr.coef_[0] / 2, -lr.coef_[0] / 2
                intercept[lr.classes_[1]], intercept[lr.classes_[0]] = lr.intercept_[0] / 2, -lr.intercept_[0] / 2
            else:
                coef[lr.classes_] = lr.coef_
                intercept[lr.classes_] = lr.intercept_
        self.classes_ = np.array(classes, dtype=object)
        self.coef_ = coef
        self.intercept_ = intercept
        self.n_features_in_ = d
        self.class_counts_ = ind.sum(axis=0).astype(np.int64)
        self.constant_classes_ = [c for j, c in enumerate(classes) if j not in set(present.tolist())]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits (n x n_classes)."""
        check_is_fitted(self, ("coef_", "intercept_"))
        X = check_array(X, dtype=np.float64, input_name="X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features but this head was fitted on "
                             f"{self.n_features_in_}-d embeddings; use the same embedding space")
        return X @ self.coef_.T + self.intercept_

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities (n x n_classes, float32): independent per label (sigmoid), or summing to 1 (softmax)."""
        return activate(getattr(self, "output_type", OutputType.SIGMOID), self.decision_function(X))

    def predict(self, X: Any, threshold: float = 0.5) -> np.ndarray:
        """Indicator matrix (n x n_classes, bool): the labels reaching ``threshold`` (sigmoid), or the most
        probable class (softmax)."""
        probs = self.predict_proba(X)
        if getattr(self, "output_type", "sigmoid") == "softmax":
            out = np.zeros(probs.shape, dtype=bool)
            out[np.arange(probs.shape[0]), probs.argmax(axis=1)] = True
            return out
        return probs >= threshold

    # ------------------------------------------------------------------ persistence (no pickle)
    def save(self, path: str | Path) -> Path:
        """Write coefficients, intercepts and a JSON header (labels, parameters) to a .npz file."""
        check_is_fitted(self, ("coef_", "intercept_"))
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"a head is saved as a .npz file, got {path}")
        rs = self.random_state if isinstance(self.random_state, numbers.Integral) else None
        meta = {
            "format": FORMAT_VERSION,
            "classes": [str(c) for c in self.classes_],
            "params": {"C": float(self.C), "class_weight": self.class_weight, "max_iter": int(self.max_iter),
                       "random_state": None if rs is None else int(rs), "output_type": self.output_type},
            "class_counts": [int(x) for x in self.class_counts_],
            "constant_classes": list(self.constant_classes_),
        }
        # a crash never leaves a half-written head behind
        return write_atomically(path, lambda fh: np.savez(fh, coef=self.coef_, intercept=self.intercept_,
                                                          meta=np.array(json.dumps(meta))), binary=True, fsync=True)

    @classmethod
    def load(cls, path: str | Path) -> "ClassifierHead":
        """Read a head written by ``save`` (never unpickles anything)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no classifier head at {path}; was the workspace's models folder moved?")
        try:
            with np.load(path, allow_pickle=False) as f:
                coef, intercept, meta = f["coef"], f["intercept"], json.loads(str(f["meta"]))
        except (ValueError, KeyError, OSError, zipfile.BadZipFile, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a classifier head saved by ClassifierHead.save ({e})") from e
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path} has head format {meta.get('format')!r}; this version reads {FORMAT_VERSION}")
        classes = meta["classes"]
        if coef.ndim != 2 or coef.shape[0] != len(classes) or intercept.shape != (len(classes),):
            raise ValueError(f"{path} is inconsistent: coef {coef.shape}, intercept {intercept.shape}, "
                             f"{len(classes)} labels")
        head = cls(**meta["params"])
        head.classes_ = np.array(classes, dtype=object)
        head.coef_ = coef.astype(np.float64)
        head.intercept_ = intercept.astype(np.float64)
        head.n_features_in_ = int(coef.shape[1])
        head.class_counts_ = np.array(meta.get("class_counts", [0] * len(classes)), dtype=np.int64)
        head.constant_classes_ = list(meta.get("constant_classes", []))
        return head


def head_for(output_type: str, labels: Sequence[Sequence[str]], **params: Any) -> ClassifierHead:
    """The head to train on ``labels`` in the space of a model with ``output_type`` outputs (unfitted).

    It reads its outputs as the embedding model does: one species per image crop (softmax) stays
    single-label, so a softmax head when every clip carries one label; BirdNET's windows (sigmoid) may
    hold several, so one sigmoid per class. ``finetune`` and the lab's replay both ask here, so the lab
    predicts what a real round trains. ``params`` are the other ``ClassifierHead`` parameters.
    """
    single = all(len(row) == 1 for row in labels)
    chosen = OutputType.SOFTMAX if output_type == OutputType.SOFTMAX and single else OutputType.SIGMOID
    return ClassifierHead(**params, output_type=chosen.value)
