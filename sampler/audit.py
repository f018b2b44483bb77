"""The audit stream: clips drawn at random within score bins, so their labels estimate precision honestly.

Active-learning picks are chosen for being uncertain, so labels on them say little about how often a
confident detection is right. An audit batch is a seeded random draw in ``bins`` equal-width bins of the
top-1 score (the same number from each, so the rare confident and the rare hopeless clips are both seen);
the bin of each pick is recorded, so a precision estimate can weight bins back to the pool. Its runs are
stored under the name ``audit``; push marks their tasks (task data ``stream``) and fine-tuning can tell
these labels from the active-learning ones.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Optional

import numpy as np

from sampler.base import Choice, QueryContext, QueryStrategy, check_int, random_subset, take_in_order


class AuditSample(QueryStrategy):
    """A seeded random sample spread evenly over ``bins`` bins of the top-1 score.

    Parameters
    ----------
    bins : int >= 1, default 5
        Equal-width bins of the top-1 score over [0, 1]; each gets an equal share of the batch (an
        empty bin's share goes to the others).
    near_duplicate_radius : float >= 0 or None, default None
        Skip clips within this distance of an excluded or already picked clip.
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"
    random_state : int, numpy Generator or None, default None

    Attributes
    ----------
    frame_ : dict
        After a query: ``{"kind": "score_bins", "bins": B, "pool": [clips per bin], "picked": [picks per
        bin]}``; ``sample`` stores it on the run so estimates from audit labels can weight them back.
    """

    name = "audit"

    def __init__(self, bins: int = 5, near_duplicate_radius: Optional[float] = None,
                 near_duplicate_metric: str = "cosine", random_state: Any = None):
        self.bins = bins
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric
        self.random_state = random_state

    def _validate_params(self) -> SimpleNamespace:
        params = super()._validate_params()
        params.bins = check_int(self.bins, "bins", minimum=1)
        return params

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        top1 = np.nan_to_num(np.asarray(ctx.pool.top1, dtype=np.float64)[avail], nan=0.0)
        which = np.minimum((top1 * params.bins).astype(np.int64), params.bins - 1)
        members = [avail[which == b] for b in range(params.bins)]
        shares = np.zeros(params.bins, dtype=np.int64)
        left = n_pick
        while left > 0:  # round robin over the bins that still have clips
            open_bins = [b for b in range(params.bins) if shares[b] < members[b].size]
            if not open_bins:
                break
            for b in open_bins[:left]:
                shares[b] += 1
            left = n_pick - int(shares.sum())
        choices: list[Choice] = []
        taken: set[int] = set()

        def add(b: int, rows: list[int]) -> None:
            lo, hi = b / params.bins, (b + 1) / params.bins
            for p in rows:
                taken.add(p)
                choices.append(Choice(pos=p, score=float(np.nan_to_num(ctx.pool.top1[p])),
                                      stratum=f"score={lo:.1f}-{hi:.1f}",
                                      reason=f"audit: random draw from score bin {b + 1} of {params.bins} (top-1 "
                                             f"{lo:.2f}-{hi:.2f}, {members[b].size} clips); not an active-learning "
                                             f"pick, so its label estimates precision"))

        orders = [random_subset(members[b], members[b].size, params.seed + b) for b in range(params.bins)]
        for b in range(params.bins):
            if shares[b]:
                add(b, take_in_order(ctx, orders[b], int(shares[b])))
        for b in range(params.bins):  # near-duplicates left a bin short: the next clips of any bin fill in
            if len(choices) >= n_pick:
                break
            rest = np.array([p for p in orders[b] if p not in taken], dtype=np.int64)
            add(b, take_in_order(ctx, rest, n_pick - len(choices)))
        picked = np.bincount(which[np.searchsorted(avail, [c.pos for c in choices])] if choices else
                             np.zeros(0, dtype=np.int64), minlength=params.bins)
        # the sampling frame, recorded on the run: a label's inclusion probability is picked[b] / pool[b]
        self.frame_ = {"kind": "score_bins", "bins": params.bins, "pool": [int(m.size) for m in members],
                       "picked": [int(x) for x in picked]}
        return choices
