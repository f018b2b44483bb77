"""One selector an ML lead tunes with three weights: uncertainty, diversity, stratum balance.

The batch is built greedily; each step adds the candidate maximising

    w_u * uncertainty + w_d * diversity + w_b * balance

uncertainty: the chosen measure, in [0, 1]; diversity: distance to the nearest clip already picked
or labelled (or pending), divided by the candidates' typical spacing (median distance of random
pairs) and capped at 1, so 1 means "as far from everything as two random candidates are"; balance:
the share of the clip's stratum quota still missing (1 = none picked yet, 0 = quota met). With
w_d = w_b = 0 it is uncertainty sampling; with w_u = 0 a spread-out (k-center-like), balanced
batch. Every pick's reason gives the three terms. Lightly combines such terms for images; none of
the active-learning libraries combines them with site x time x species quotas.
"""

from __future__ import annotations

import math
import numbers
from types import SimpleNamespace
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from sampler.base import (UNCERTAINTY_MEASURES, Choice, QueryContext, QueryStrategy, candidate_count, check_int,
                          most_uncertain, ordinal)
from sampler.greedy import lazy_greedy
from sampler.parameters import WEIGHT_NAMES
from sampler.strata import allocate_quotas, check_custom_columns, check_hemisphere, check_quotas, check_strata
from sampler.stratified import describe_quotas, stratify
from sampler.uncertainty import UncertaintyMeasure, check_measure
from sampler.vectors import check_pca, typical_distance


def check_weights(weights: Any) -> tuple[float, float, float]:
    """(w_u, w_d, w_b) from ``{"uncertainty": .., "diversity": .., "balance": ..}`` (missing ones are 1)."""
    if not isinstance(weights, Mapping):
        raise ValueError(f"weights must be a dict with keys among {list(WEIGHT_NAMES)}, got {weights!r}")
    unknown = [k for k in weights if k not in WEIGHT_NAMES]
    if unknown:
        raise ValueError(f"unknown weight {unknown[0]!r} in weights={dict(weights)!r}; expected keys among "
                         f"{list(WEIGHT_NAMES)}")
    out = []
    for k in WEIGHT_NAMES:
        w = weights.get(k, 1.0)
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
            raise ValueError(f"weight {k!r} must be a finite number >= 0, got {w!r}")
        out.append(float(w))
    if not any(out):
        raise ValueError(f"weights are all 0 in {dict(weights)!r}: nothing to choose by; give one a positive weight")
    return out[0], out[1], out[2]


def stratum_candidates(codes: np.ndarray, priority: np.ndarray, clip_ids: np.ndarray,
                       per_stratum: np.ndarray) -> np.ndarray:
    """Indices of the ``per_stratum[s]`` highest-priority rows of every stratum s (ties: lower clip id).

    One lexsort over the rows, no loop per row.
    """
    order = np.lexsort((clip_ids, -priority, codes))
    sorted_codes = codes[order]
    starts = np.searchsorted(sorted_codes, np.arange(per_stratum.size))
    rank = np.arange(order.size) - starts[sorted_codes]
    return order[rank < per_stratum[sorted_codes]]


class Combined(QueryStrategy):
    """Greedy batch maximising w_u x uncertainty + w_d x diversity + w_b x stratum balance.

    1. strata of the unselected clips and their quotas (targets of the balance term); 2. candidates:
    the most uncertain ``n_candidates`` plus, in every stratum with a quota, its most uncertain clips
    in proportion (so a rare stratum is never without candidates); with w_u = 0 a seeded random
    sample instead; 3. their embeddings, L2-normalised (and PCA-reduced with ``pca``); distances to
    labelled or pending clips; 4. lazy greedy (``sampler.greedy``).

    Parameters
    ----------
    weights : dict or None, default None (= {"uncertainty": 1.0, "diversity": 1.0, "balance": 1.0})
        Keys among "uncertainty", "diversity", "balance" (missing ones weigh 1); numbers >= 0.
    strata : tuple of {"site", "device", "hour", "month", "season", "species"} or custom column names, default ("site", "hour", "species")
        () turns the balance term off.
    quotas : "equal", "proportional" or {stratum condition: weight}, default "equal"
        Targets of the balance term (as in ``Stratified``).
    min_per_stratum : int >= 0, default 0
    uncertainty : {"max_entropy", "mean_entropy", "margin", "least_confidence", "ratio", "categorical_entropy"} or None, default None
        None: the measure that fits the pool model's outputs (margin for sigmoid, categorical_entropy for softmax; see ``sampler.uncertainty.DEFAULT_MEASURES``).
    n_candidates : int >= 1 or None, default None
        Candidates to read; default max(50 x budget, 20,000), at most 100,000. With strata and a
        balance weight they are shared between the strata like the batch (each stratum's most
        uncertain), plus the n_candidates / 2 most uncertain overall.
    pca : int >= 1 or None, default 128
        Measure distances on this many principal components of the candidates' normalised
        embeddings (the greedy is O(candidates x budget x dim): 1,024-d BirdNET vectors on 128
        components are several times faster, with nearly the same neighbours); None keeps every
        dimension. No effect on embeddings with at most this many dimensions.
    custom_columns : {name: {clip_id: value}} or None, default None
    hemisphere : {"north", "south"}, default "north"
    near_duplicate_radius : float >= 0 or None, default None
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"
    random_state : int, numpy Generator or None, default None
        Seeds the spacing estimate, PCA sample and (with w_u = 0) the candidate sample.

    ``score`` is the objective at the step the clip was chosen.
    """

    name = "combined"

    def __init__(self, weights: Optional[Mapping[str, float]] = None,
                 strata: Sequence[str] = ("site", "hour", "species"), quotas: Any = "equal",
                 min_per_stratum: int = 0, uncertainty: Optional[UncertaintyMeasure] = None,
                 n_candidates: Optional[int] = None, pca: Optional[int] = 128,
                 custom_columns: Optional[Mapping[str, Mapping[Any, Any]]] = None, hemisphere: str = "north",
                 near_duplicate_radius: Optional[float] = None, near_duplicate_metric: str = "cosine",
                 random_state: Any = None):
        self.weights = weights
        self.strata = strata
        self.quotas = quotas
        self.min_per_stratum = min_per_stratum
        self.uncertainty = uncertainty
        self.n_candidates = n_candidates
        self.pca = pca
        self.custom_columns = custom_columns
        self.hemisphere = hemisphere
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric
        self.random_state = random_state

    def _validate_params(self) -> SimpleNamespace:
        p = super()._validate_params()
        p.w_u, p.w_d, p.w_b = check_weights({} if self.weights is None else self.weights)
        p.custom = check_custom_columns(self.custom_columns)
        p.strata = check_strata(self.strata, p.custom)
        p.quotas = check_quotas(self.quotas, p.strata)
        p.min_per_stratum = check_int(self.min_per_stratum, "min_per_stratum", minimum=0)
        check_measure(self.uncertainty, allow_none=True)
        p.n_candidates = check_int(self.n_candidates, "n_candidates", allow_none=True)
        p.pca = check_pca(self.pca)
        p.hemisphere = check_hemisphere(self.hemisphere)
        return p

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        measure_name = ctx.measure(self.uncertainty)
        pool = ctx.pool
        ids = np.asarray(pool.clip_id)
        w_u, w_d, w_b = params.w_u, params.w_d, params.w_b
        balanced = bool(params.strata)
        if not balanced:
            w_b = 0.0

        # 1. strata and their targets
        if balanced:
            st = stratify(ctx, avail, n_pick, strata=params.strata, quotas=params.quotas,
                          min_per_stratum=params.min_per_stratum, custom_columns=params.custom,
                          hemisphere=params.hemisphere, seed=params.seed)
            codes, keys, weights, targets = st.codes, st.keys, st.weights, st.shares
        else:
            codes, keys = np.zeros(avail.size, dtype=np.int64), ["all"]
            weights, targets = np.ones(1), np.array([float(n_pick)])

        # 2. candidates: by uncertainty (or at random when it does not count), topped up per stratum
        if w_u > 0:
            priority = ctx.scores(avail, measure_name)
        else:
            priority = np.random.default_rng(params.seed).random(avail.size)
        m = candidate_count(n_pick, avail.size, ctx.batch_budget, params.n_candidates)
        if balanced and w_b > 0:
            # m candidates shared between the strata like the batch is (so a rare stratum has some),
            # plus the m // 2 most uncertain overall
            per_stratum = allocate_quotas(st.capacity, m, weights=st.weights, minimum=min(params.min_per_stratum, 1),
                                          priority=st.priority)
            top = np.union1d(most_uncertain(priority, ids[avail], m // 2),
                             stratum_candidates(codes, priority, ids[avail], per_stratum))
        else:
            top = most_uncertain(priority, ids[avail], m)
        top = top[np.lexsort((ids[avail][top], -priority[top]))]  # preference order: ties to the lower id
        rows, groups = avail[top], codes[top]
        x = ctx.embeddings(rows)
        keep, x = ctx.drop_near_excluded(np.arange(rows.size), x)
        rows, groups, top = rows[keep], groups[keep], top[keep]
        if rows.size == 0:
            return []
        shown = priority[top] if w_u > 0 else _scores_if_any(ctx, rows, measure_name)
        gain = w_u * shown if w_u > 0 else np.zeros(rows.size)

        # 3. the space distances are measured in, and distances to labelled / pending clips
        scale, ref, ex_ids = 1.0, None, None
        z = x
        if w_d > 0:
            ex_ids, _ = ctx.excluded_vectors()
            space, z = ctx.working_space(params.pca, params.seed, x)
            scale = typical_distance(z, seed=params.seed)
            ref = ctx.references_in(space)

        # 4. greedy
        accept = (lambda i: ctx.guard.accept(int(ids[rows[i]]), x[i])) if ctx.guard.active else None
        steps = lazy_greedy(z, n_pick, gain=gain, w_d=w_d, scale=scale, cap=1.0, reference=ref, groups=groups,
                            targets=np.asarray(targets, dtype=np.float64), w_b=w_b, accept=accept)
        measure = UNCERTAINTY_MEASURES[measure_name]
        finite = np.where(np.isfinite(shown), shown, -np.inf)
        rank = np.empty(len(shown), dtype=np.int64)  # 1 = the most uncertain candidate
        rank[np.argsort(-finite, kind="stable")] = np.arange(1, len(shown) + 1)
        picked_in = np.zeros(len(keys), dtype=np.int64)
        out = []
        for step in steps:
            i, g = step.index, int(groups[step.index])
            u = shown[i]
            u_txt = f"{u:.3f}" if np.isfinite(u) else "n/a"
            u_why = f"{measure}; {ordinal(int(rank[i]))} most uncertain of {len(shown)} candidates" \
                if np.isfinite(u) else measure
            if not w_d:
                d_txt = "not measured"
            elif step.nearest >= 0:
                d_txt = f"distance {step.distance:.3f} to picked clip {int(ids[rows[step.nearest]])}"
            elif step.nearest <= -2:
                d_txt = (f"distance {step.distance:.3f} to clip {int(ex_ids[-2 - step.nearest])}, labelled, pending or "
                         "picked for another stratum")
            else:
                d_txt = "nothing picked or labelled yet"
            b_txt = (f"stratum {keys[g]}: {picked_in[g]} picked before it of a {targets[g]:.3g}-clip share, "
                     f"{describe_quotas(params.quotas, float(weights[g]), params.min_per_stratum)}") if balanced \
                else "no strata"
            reason = (f"combined {step.total:.3f} = uncertainty {u_txt} x {w_u:g} ({u_why}) "
                      f"+ diversity {step.diversity:.3f} x {w_d:g} ({d_txt}; typical spacing {scale:.3f}) "
                      f"+ balance {step.balance:.3f} x {w_b:g} ({b_txt})")
            picked_in[g] += 1
            out.append(Choice(pos=int(rows[i]), score=float(step.total), stratum=keys[g] if balanced else None,
                              reason=reason))
        return out


def _scores_if_any(ctx: QueryContext, rows: np.ndarray, measure: str) -> np.ndarray:
    """Uncertainty to show in reasons when it does not count (NaN where the pool has none)."""
    from sampler.uncertainty import uncertainty_scores

    try:
        return uncertainty_scores(ctx.pool, measure, rows, probabilities=ctx.probabilities)
    except ValueError:
        return np.full(rows.size, np.nan)
