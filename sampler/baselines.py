"""Baselines every batch should be measured against: pure uncertainty and uniform random.

Random is hard to beat on some data sets (BioDCASE 2026: it ties margin and core-set on BirdSet-UHH),
so a workbench must offer it and let users compare on their own labels before trusting a cleverer
strategy. Both are O(n) vectorised over the pool and read embeddings only to skip near-duplicates.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Optional

import numpy as np

from sampler.base import (UNCERTAINTY_MEASURES, Choice, QueryContext, QueryStrategy, check_int, most_uncertain,
                          ordinal, random_subset, take_in_order)
from sampler.uncertainty import UncertaintyMeasure, check_measure


class UncertaintySampling(QueryStrategy):
    """The ``budget`` most uncertain clips (ties: lower clip id); no diversity, no strata.

    Parameters
    ----------
    uncertainty : {"max_entropy", "mean_entropy", "margin", "least_confidence", "ratio", "categorical_entropy"} or None, default None
        None: the measure that fits the pool model's outputs (margin for sigmoid, categorical_entropy for softmax; see ``sampler.uncertainty.DEFAULT_MEASURES``).
        The measure to rank by (see ``sampler.uncertainty``).
    n_candidates : int >= 1 or None, default None
        With a near-duplicate radius: how far down the ranking to look (default 10 x budget + 1,000).
    near_duplicate_radius : float >= 0 or None, default None
        Skip clips within this distance of an excluded or already picked clip.
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"

    Deterministic: it has no random state.
    """

    name = "uncertainty"

    def __init__(self, uncertainty: Optional[UncertaintyMeasure] = None, n_candidates: Optional[int] = None,
                 near_duplicate_radius: Optional[float] = None, near_duplicate_metric: str = "cosine"):
        self.uncertainty = uncertainty
        self.n_candidates = n_candidates
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric

    def _validate_params(self) -> SimpleNamespace:
        check_measure(self.uncertainty, allow_none=True)
        p = super()._validate_params()
        p.n_candidates = check_int(self.n_candidates, "n_candidates", allow_none=True)
        return p

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        measure_name = ctx.measure(self.uncertainty)
        scores = ctx.scores(avail, measure_name)
        ids = np.asarray(ctx.pool.clip_id)
        m = n_pick if not ctx.guard.active else min(avail.size, params.n_candidates or 10 * n_pick + 1000)
        order = most_uncertain(scores, ids[avail], max(m, n_pick))
        rank_of = {int(p): r for r, p in enumerate(avail[order].tolist(), start=1)}
        chosen = take_in_order(ctx, avail[order], n_pick)
        measure = UNCERTAINTY_MEASURES[measure_name]
        score_of = dict(zip(avail[order].tolist(), scores[order].tolist()))
        return [Choice(pos=p, score=score_of[p],
                       reason=f"{measure} {score_of[p]:.3f}, the {ordinal(rank_of[p])} most uncertain of "
                              f"{avail.size} clips not yet selected") for p in chosen]


class RandomSampling(QueryStrategy):
    """A seeded uniform sample of the clips not yet selected: the baseline to beat.

    Parameters
    ----------
    near_duplicate_radius : float >= 0 or None, default None
        Skip clips within this distance of an excluded or already picked clip.
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"
    random_state : int, numpy Generator or None, default None

    ``score`` is the clip's max binary entropy where the pool has scores, else 0.
    """

    name = "random"

    def __init__(self, near_duplicate_radius: Optional[float] = None, near_duplicate_metric: str = "cosine",
                 random_state: Any = None):
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric
        self.random_state = random_state

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        m = n_pick if not ctx.guard.active else min(avail.size, 10 * n_pick + 1000)
        order = random_subset(avail, m, params.seed)
        chosen = take_in_order(ctx, order, n_pick)
        ent = np.asarray(ctx.pool.max_entropy, dtype=np.float64)
        return [Choice(pos=p, score=float(ent[p]) if np.isfinite(ent[p]) else 0.0,
                       reason=f"random: seeded uniform draw (seed {params.seed}) from {avail.size} clips "
                              f"not yet selected") for p in chosen]
