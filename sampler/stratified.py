"""Stratified batches: quotas per stratum (site, device, hour, month, season, species, custom), and
any plain strategy applied inside each stratum.

TABMON's finding: stratifying lifts the worst stratum and cuts the variance across strata. Quotas
are equal, proportional to the stratum's unselected clips, or user-weighted; ``min_per_stratum``
guarantees the long tail of rare predicted species its clips. A quota a stratum cannot fill (too
few clips, or near-duplicates) is handed to the other strata by the same water-filling, so the
batch stays full whenever the pool allows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from sampler.base import Choice, QueryContext, QueryStrategy, SamplerWarning, check_int, random_subset
from sampler.exclusion import NearDuplicateGuard
from sampler.parameters import check_nestable
from sampler.vectors import WorkingSpace
from sampler.strata import (allocate_quotas, check_custom_columns, check_hemisphere, check_quotas, check_strata,
                            quota_shares, stratum_codes, stratum_weights)


def describe_quotas(quotas: str | Mapping[str, float], weight: float, minimum: int) -> str:
    base = {"equal": "equal quotas", "proportional": "quotas proportional to unselected clips"}.get(
        quotas if isinstance(quotas, str) else "", f"weight {weight:g}")
    return base + (f", at least {minimum} per stratum" if minimum else "")


@dataclass
class Strata:
    """The strata of a query's unselected clips and their quotas."""

    codes: np.ndarray  # stratum index of each unselected pool position
    keys: list[str]
    capacity: np.ndarray  # unselected clips per stratum
    weights: np.ndarray
    shares: np.ndarray  # fractional quota (before rounding)
    targets: np.ndarray  # integer quota
    priority: np.ndarray  # tie-break order between strata (seeded random)


def stratify(ctx: QueryContext, avail: np.ndarray, n_pick: int, *, strata: Sequence[str],
             quotas: str | Mapping[str, float], min_per_stratum: int, custom_columns: Any,
             hemisphere: str, seed: int) -> Strata:
    """Strata of the pool positions ``avail`` and their quotas.

    When the budget does not split evenly (say 8 clips over 48 strata), the strata that get the
    extra clips are chosen by a seeded random order, so no stratum is favoured for its name.
    Warns (``SamplerWarning``) about quota keys that match no stratum with unselected clips.
    """
    codes, keys = stratum_codes(ctx.pool, strata, avail, custom_columns=custom_columns, hemisphere=hemisphere)
    capacity = np.bincount(codes, minlength=len(keys)) if codes.size else np.zeros(len(keys), dtype=np.int64)
    weights, unknown = stratum_weights(keys, quotas, capacity, strata)
    if unknown:
        warnings.warn(f"quota keys {unknown} match no stratum with unselected clips (strata present: "
                      f"{keys[:10]}{' ...' if len(keys) > 10 else ''}); they are ignored", SamplerWarning, stacklevel=4)
    priority = np.random.default_rng(seed).permutation(len(keys))
    shares = quota_shares(capacity, n_pick, weights=weights, minimum=min_per_stratum)
    targets = allocate_quotas(capacity, n_pick, weights=weights, minimum=min_per_stratum, priority=priority)
    return Strata(codes, keys, capacity, weights, shares, targets, priority)


class Stratified(QueryStrategy):
    """Quotas per stratum, filled by an inner strategy run inside each stratum.

    Strata are the combinations of ``strata`` columns among the clips not yet selected. Each gets a
    quota (``sampler.strata.allocate_quotas``): exact when the stratum has the clips, otherwise it
    keeps all it has and the rest goes to the others; a stratum whose inner strategy returns fewer
    clips than asked (near-duplicates) is topped up the same way. Strata are filled in key order,
    and each stratum's strategy treats the clips earlier strata picked like labelled ones (a
    diversity strategy keeps away from them; a near-duplicate radius spans the whole batch). The
    batch interleaves the strata (each stratum's best clip, then each one's second ...).

    Parameters
    ----------
    inner : strategy, strategy name or {"strategy": name, "params": {...}}, default "uncertainty"
        What picks inside a stratum: a plain strategy (``sampler.parameters.NESTABLE``). Its
        ``random_state``, when None, is this wrapper's seed; its near-duplicate radius applies across
        the whole batch.
    strata : tuple of {"site", "device", "hour", "month", "season", "species"} or custom column names, default ("site",)
    quotas : "equal", "proportional" or {stratum condition: weight}, default "equal"
        A condition names some stratum columns, e.g. {"site=A": 2, "site=B|hour=05": 0.5}; a
        stratum's weight is the product of the conditions it matches (1 when none; 0 drops it).
    min_per_stratum : int >= 0, default 0
        Clips every stratum (with weight > 0) gets first; rarest strata first when the budget is short.
    custom_columns : {name: {clip_id: value}} or None, default None
        Extra stratum columns (clips missing from one are "unknown"); stored with the run.
    hemisphere : {"north", "south"}, default "north"
        For the "season" column (meteorological seasons).
    random_state : int, numpy Generator or None, default None
    """

    name = "stratified"

    def __init__(self, inner: Any = "uncertainty", strata: Sequence[str] = ("site",), quotas: Any = "equal",
                 min_per_stratum: int = 0, custom_columns: Optional[Mapping[str, Mapping[Any, Any]]] = None,
                 hemisphere: str = "north", random_state: Any = None):
        self.inner = inner
        self.strata = strata
        self.quotas = quotas
        self.min_per_stratum = min_per_stratum
        self.custom_columns = custom_columns
        self.hemisphere = hemisphere
        self.random_state = random_state

    def _validate_params(self) -> SimpleNamespace:
        from sampler.registry import build_strategy

        p = super()._validate_params()
        inner = build_strategy(self.inner, parameter="inner")
        check_nestable(inner.name, "inner")
        if "random_state" in inner.get_params(deep=False) and inner.get_params(deep=False)["random_state"] is None:
            inner.set_params(random_state=p.seed)
        p.inner = inner
        p.inner_params = inner._validate_params()
        p.custom = check_custom_columns(self.custom_columns)
        p.strata = check_strata(self.strata, p.custom)
        p.quotas = check_quotas(self.quotas, p.strata)
        p.min_per_stratum = check_int(self.min_per_stratum, "min_per_stratum", minimum=0)
        p.hemisphere = check_hemisphere(self.hemisphere)
        return p

    def _guard(self, params: SimpleNamespace) -> NearDuplicateGuard:
        return params.inner._guard(params.inner_params)

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        st = stratify(ctx, avail, n_pick, strata=params.strata, quotas=params.quotas,
                      min_per_stratum=params.min_per_stratum, custom_columns=params.custom,
                      hemisphere=params.hemisphere, seed=params.seed)
        codes, keys, capacity, weights, targets = st.codes, st.keys, st.capacity, st.weights, st.targets
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(keys) + 1))
        members = [avail[order[bounds[s]:bounds[s + 1]]] for s in range(len(keys))]
        got: list[list[Choice]] = [[] for _ in keys]
        room = capacity.copy()  # what a stratum can still give; lowered when its inner strategy runs dry
        inner, inner_params = params.inner, params.inner_params
        inner_ctx = ctx.with_(seed=inner_params.seed)
        pca = getattr(inner_params, "pca", None)
        if pca is not None and "space" not in ctx.cache and ctx.reader.has_rows:
            # one space for every stratum, fitted on a seeded sample of all of them: distances
            # compare across strata and labelled clips are projected once, not once per stratum
            space = WorkingSpace(pca, seed=params.seed)
            space.fit_transform(ctx.embeddings(random_subset(avail, min(avail.size, space.max_fit), params.seed)))
            ctx.cache["space"] = space
        for _ in range(len(keys) + 1):
            have = np.array([len(g) for g in got])
            short = np.flatnonzero(targets > have)
            if short.size == 0:
                break
            for s in short.tolist():
                need = int(targets[s]) - len(got[s])
                taken = np.array([c.pos for c in got[s]], dtype=np.int64)
                rows = members[s] if taken.size == 0 else members[s][~np.isin(members[s], taken)]
                new = inner._select(rows, min(need, rows.size), inner_ctx, inner_params) if rows.size else []
                got[s].extend(new)
                inner_ctx.add_references(np.array([c.pos for c in new], dtype=np.int64))
                if len(new) < need:
                    room[s] = len(got[s])  # this stratum is dry: its leftover goes to the others
            have = np.array([len(g) for g in got])
            if have.sum() >= n_pick:
                break
            new_targets = np.maximum(allocate_quotas(room, n_pick, weights=weights, minimum=params.min_per_stratum,
                                                     priority=st.priority), have)
            if np.all(new_targets <= have):
                break  # no stratum can give more
            targets = self._trim(new_targets, have, n_pick)
        return self._interleave(got, keys, targets, weights, params)

    @staticmethod
    def _trim(targets: np.ndarray, have: np.ndarray, n_pick: int) -> np.ndarray:
        """Keep the total at the budget: never below what a stratum already has."""
        targets = targets.copy()
        s = len(targets) - 1
        while targets.sum() > n_pick and s >= 0:
            if targets[s] > have[s]:
                targets[s] -= 1
            else:
                s -= 1
        return targets

    def _interleave(self, got: list[list[Choice]], keys: Sequence[str], targets: np.ndarray, weights: np.ndarray,
                    params: SimpleNamespace) -> list[Choice]:
        out: list[Choice] = []
        filled = [s for s, g in enumerate(got) if g]  # a pool can hold 100,000 strata; few get clips
        depth = max((len(got[s]) for s in filled), default=0)
        for r in range(depth):
            for s in filled:
                g = got[s]
                if r < len(g):
                    c = g[r]
                    note = describe_quotas(params.quotas, float(weights[s]), params.min_per_stratum)
                    out.append(Choice(pos=c.pos, score=c.score, cluster=c.cluster, stratum=keys[s],
                                      reason=f"{c.reason}; stratum {keys[s]}, {r + 1} of {len(g)} "
                                             f"(quota {int(targets[s])}, {note})"))
        return out
