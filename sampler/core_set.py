"""Core-set (k-center greedy): each pick is the candidate farthest from everything picked or labelled.

Sener & Savarese's core-set covers the embedding space so that no unlabelled clip is far from a
labelled one; on BirdSet-HSN and -POW it is the best of the BioDCASE 2026 baselines. Farthest-first
traversal on FAISS-read candidates, with the lazy greedy of ``sampler.greedy`` (exact, fast).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Literal, Optional

import numpy as np

from sampler.base import (UNCERTAINTY_MEASURES, Choice, QueryContext, QueryStrategy, check_choice, check_int,
                          ordinal, pick_candidates)
from sampler.greedy import lazy_greedy
from sampler.uncertainty import UncertaintyMeasure, check_measure
from sampler.vectors import check_pca

CANDIDATE_MODES = ("random", "uncertain")


def k_greedy_center(x: np.ndarray, n: int, *, reference: Optional[np.ndarray] = None,
                    accept: Optional[Callable[[int], bool]] = None) -> tuple[np.ndarray, np.ndarray]:
    """Farthest-first traversal: ``n`` row indices of ``x`` and each one's distance when chosen.

    Each pick maximises the Euclidean distance to the nearest earlier pick or ``reference`` row;
    with no reference the first pick is row 0 (order rows by preference, e.g. seeded random).
    Distances are in the units of ``x`` (inf for a first pick with no reference).
    """
    steps = lazy_greedy(np.ascontiguousarray(x, dtype=np.float32), n, reference=reference, accept=accept)
    return np.array([s.index for s in steps], dtype=np.int64), np.array([s.distance for s in steps])


class KCenterGreedy(QueryStrategy):
    """Core-set: candidates spread as far apart (and from labelled clips) as possible.

    1. candidates: a seeded random sample of the unselected pool (``candidates="random"``, the
    classic core-set) or its most uncertain clips (``"uncertain"``); 2. their embeddings,
    L2-normalised (and PCA-reduced with ``pca``); 3. farthest-first from the excluded (labelled or
    pending) clips and earlier picks. Without excluded clips the first pick is the first candidate
    (random, or the most uncertain).

    Parameters
    ----------
    candidates : {"random", "uncertain"}, default "random"
    uncertainty : {"max_entropy", "mean_entropy", "margin", "least_confidence", "ratio", "categorical_entropy"} or None, default None
        None: the measure that fits the pool model's outputs (margin for sigmoid, categorical_entropy for softmax; see ``sampler.uncertainty.DEFAULT_MEASURES``).
        Ranks candidates when ``candidates="uncertain"``.
    n_candidates : int >= 1 or None, default None
        Candidates to read; default max(50 x budget, 20,000), at most 100,000.
    pca : int >= 1 or None, default 128
        Measure distances on this many principal components of the normalised embeddings
        (faster on 1,024-d vectors); None keeps every dimension.
    near_duplicate_radius : float >= 0 or None, default None
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"
    random_state : int, numpy Generator or None, default None

    ``score`` is the distance (between unit vectors, in [0, 2]) to the nearest picked or labelled
    clip when chosen; 2 for a first pick with nothing to be far from.
    """

    name = "kcenter"

    def __init__(self, candidates: Literal["random", "uncertain"] = "random",
                 uncertainty: Optional[UncertaintyMeasure] = None, n_candidates: Optional[int] = None,
                 pca: Optional[int] = 128, near_duplicate_radius: Optional[float] = None,
                 near_duplicate_metric: str = "cosine", random_state: Any = None):
        self.candidates = candidates
        self.uncertainty = uncertainty
        self.n_candidates = n_candidates
        self.pca = pca
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric
        self.random_state = random_state

    def _validate_params(self) -> SimpleNamespace:
        check_choice(self.candidates, "candidates", CANDIDATE_MODES)
        check_measure(self.uncertainty, allow_none=True)
        p = super()._validate_params()
        p.n_candidates = check_int(self.n_candidates, "n_candidates", allow_none=True)
        p.pca = check_pca(self.pca)
        return p

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        measure_name = ctx.measure(self.uncertainty)
        rows, scores, x = pick_candidates(ctx, avail, n_pick, mode=self.candidates, measure=measure_name,
                                          n_candidates=params.n_candidates, seed=params.seed)
        if rows.size == 0:
            return []
        ids = np.asarray(ctx.pool.clip_id)
        space, z = ctx.working_space(params.pca, params.seed, x)
        ex_ids, _ = ctx.excluded_vectors()
        steps = lazy_greedy(z, n_pick, reference=ctx.references_in(space),
                            accept=(lambda i: ctx.guard.accept(int(ids[rows[i]]), x[i])) if ctx.guard.active else None)
        first = "the most uncertain candidate" if self.candidates == "uncertain" else "a seeded random candidate"
        out = []
        for k, s in enumerate(steps, start=1):
            if np.isfinite(s.distance):
                what = (f"picked clip {int(ids[rows[s.nearest]])}" if s.nearest >= 0
                        else f"clip {int(ex_ids[-2 - s.nearest])}, labelled, pending or picked for another stratum")
                why = (f"k-center: distance {s.distance:.3f} to the nearest picked or labelled clip ({what}), "
                       f"the farthest of {rows.size} {self.candidates} candidates at step {k}")
            else:
                why = f"k-center: first pick, {first} (no labelled clip to keep away from)"
            if scores is not None:
                why += f"; {UNCERTAINTY_MEASURES[measure_name]} {scores[s.index]:.2f} " \
                       f"({ordinal(s.index + 1)} most uncertain)"
            out.append(Choice(pos=int(rows[s.index]), score=min(s.distance, 2.0), reason=why))
        return out
