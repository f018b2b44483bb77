"""Range conflicts: confident detections of species the range model says do not occur there and then, or that a
geofence does not allow in the clip's country.

A clip whose top-1 score is high for a species BirdNET's range model calls absent at the clip's site-week
(occurrence below BirdNET-Analyzer's 0.03) is either a rarity worth reporting or a confident mistake worth
correcting: both are worth an expert's look. ``Store.pool`` carries each clip's top-1 occurrence
(``Pool.range_occurrence``, from the stored range priors); clips without coordinates or a time have none
and are never taken for conflicts. Images get the same from a geofence (SpeciesNet's rules, ``store.geofence``):
a confident top label fenced at the recording's country (``Pool.country``, ``Pool.admin1_region``) is a
conflict, and its reason says what SpeciesNet would call the clip instead (the roll-up). Clips without a
country are never fenced. The batch is the conflicts first (most confident first), then, when there are
fewer conflicts than the budget, the most uncertain of the rest.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping, Optional

import numpy as np

from sampler.base import (UNCERTAINTY_MEASURES, Choice, QueryContext, QueryStrategy, SamplerWarning, check_int,
                          most_uncertain, ordinal, take_in_order)
from sampler.uncertainty import UncertaintyMeasure, check_measure
from store.geofence import Geofence

#: BirdNET-Analyzer's cut (``sf_thresh``): below it the range model calls a species absent.
DEFAULT_MAX_OCCURRENCE = 0.03
DEFAULT_MIN_SCORE = 0.5


def range_conflicts(top1: np.ndarray, occurrence: Optional[np.ndarray], clip_ids: np.ndarray, *,
                    min_score: float = DEFAULT_MIN_SCORE, max_occurrence: float = DEFAULT_MAX_OCCURRENCE
                    ) -> np.ndarray:
    """Positions of the conflicts (top-1 > ``min_score``, occurrence < ``max_occurrence``), strongest first.

    Strongest: highest top-1, then lowest occurrence, then lowest clip id. Unknown occurrences (NaN,
    or ``occurrence`` None) are never conflicts.
    """
    if occurrence is None:
        return np.zeros(0, dtype=np.int64)
    top1 = np.nan_to_num(np.asarray(top1, dtype=np.float64), nan=-np.inf)
    occurrence = np.asarray(occurrence, dtype=np.float64)
    known = ~np.isnan(occurrence)
    hit = np.flatnonzero(known & (top1 > min_score) & (np.where(known, occurrence, np.inf) < max_occurrence))
    return hit[np.lexsort((np.asarray(clip_ids)[hit], occurrence[hit], -top1[hit]))]


def _check_fraction(value: Any, name: str, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1] ({what}), got {value!r}")
    return float(value)


class RangeConflict(QueryStrategy):
    """Confident detections of species out of range at their site-week first, then the most uncertain.

    Parameters
    ----------
    min_score : float in [0, 1], default 0.5
        A conflict's top-1 score must be above this (a confident detection).
    max_occurrence : float in [0, 1], default 0.03
        A conflict's species has a range occurrence below this at the clip's site-week (BirdNET-Analyzer's
        cut: absent there and then).
    uncertainty : {"max_entropy", "mean_entropy", "margin", "least_confidence", "ratio", "categorical_entropy"} or None, default None
        How the clips after the conflicts are ranked; None: the measure that fits the pool model's outputs.
    n_candidates : int >= 1 or None, default None
        With a near-duplicate radius: how far down the rankings to look (default 10 x budget + 1,000).
    near_duplicate_radius : float >= 0 or None, default None
        Skip clips within this distance of an excluded or already picked clip.
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"
    geofence : path or None, default None
        SpeciesNet-style geofence rules (``store.geofence.Geofence.from_file``): a clip whose top-1 label (above
        ``min_score``) is fenced at its recording's country is a conflict too. Read when ``query`` runs.

    Deterministic: it has no random state (ties go to the lower clip id). A pool without range
    occurrences (the store holds no range priors: ``workbench range``) and without a geofence has no
    conflicts: the batch is the most uncertain clips, with a ``SamplerWarning``.
    """

    name = "range_conflict"

    def __init__(self, min_score: float = DEFAULT_MIN_SCORE, max_occurrence: float = DEFAULT_MAX_OCCURRENCE,
                 uncertainty: Optional[UncertaintyMeasure] = None, n_candidates: Optional[int] = None,
                 near_duplicate_radius: Optional[float] = None, near_duplicate_metric: str = "cosine",
                 geofence: Optional[str] = None):
        self.min_score = min_score
        self.max_occurrence = max_occurrence
        self.geofence = geofence
        self.uncertainty = uncertainty
        self.n_candidates = n_candidates
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric

    def _validate_params(self) -> SimpleNamespace:
        p = super()._validate_params()
        p.min_score = _check_fraction(self.min_score, "min_score", "the top-1 score a conflict is above")
        p.max_occurrence = _check_fraction(self.max_occurrence, "max_occurrence",
                                           "the range occurrence a conflict is below")
        check_measure(self.uncertainty, allow_none=True)
        p.n_candidates = check_int(self.n_candidates, "n_candidates", allow_none=True)
        p.fence = Geofence.from_file(self.geofence) if self.geofence is not None else None
        return p

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        pool = ctx.pool
        ids = np.asarray(pool.clip_id)
        occurrence = getattr(pool, "range_occurrence", None)
        fenced = _fenced(pool, params.fence)
        if occurrence is None and params.fence is None:
            warnings.warn("the pool carries no range occurrences (the store holds no range priors for its model: "
                          "run `workbench range`) and no geofence was given (images: `workbench geofence FILE`): "
                          "no range conflicts, picking the most uncertain clips", SamplerWarning, stacklevel=4)
        elif params.fence is not None and (fenced is None or not (np.asarray(pool.country)[avail] != "").any()):
            warnings.warn("no clip of the pool has a country (give one in the metadata CSV, `workbench ingest "
                          "--metadata FILE`, column country): the geofence fences nothing", SamplerWarning,
                          stacklevel=4)
        top1 = np.asarray(pool.top1, dtype=np.float64)
        m = n_pick if not ctx.guard.active else min(avail.size, params.n_candidates or 10 * n_pick + 1000)
        conflicts = avail[range_conflicts(top1[avail], None if occurrence is None else np.asarray(occurrence)[avail],
                                          ids[avail], min_score=params.min_score,
                                          max_occurrence=params.max_occurrence)]
        if fenced is not None:
            conflicts = _strongest_first(np.union1d(conflicts, avail[fenced[avail] & (top1[avail] > params.min_score)]),
                                         top1, occurrence, ids)
        chosen = take_in_order(ctx, conflicts[:max(m, n_pick)], n_pick)
        labels = np.asarray(pool.top_label)
        choices = []
        for r, p in enumerate(chosen, start=1):
            occ = float(occurrence[p]) if occurrence is not None else math.nan
            out_of_range = not math.isnan(occ) and occ < params.max_occurrence
            range_part = (f"the range model gives it occurrence {occ:.4f} at this site-week (in range at >= "
                          f"{params.max_occurrence:g})")
            if fenced is not None and fenced[p]:
                why = (f"geofence: {labels[p]} detected with top-1 {top1[p]:.2f} in {_place(pool, p)}, where the "
                       f"geofence does not allow it; SpeciesNet would call it {_rolled_up(ctx, params.fence, p)}"
                       + (f"; and {range_part}" if out_of_range else ""))
            else:
                why = f"range conflict: {labels[p]} detected with top-1 {top1[p]:.2f} where {range_part}"
            choices.append(Choice(pos=p, score=float(top1[p]), stratum=f"species={labels[p]}",
                                  reason=f"{why}; the {ordinal(r)} of {conflicts.size} conflicts"))
        if len(choices) < n_pick:
            rest = np.setdiff1d(avail, conflicts, assume_unique=True)
            if rest.size:
                measure_name = ctx.measure(self.uncertainty)
                scores = ctx.scores(rest, measure_name)
                order = most_uncertain(scores, ids[rest], min(rest.size, max(m, n_pick)))
                score_of = dict(zip(rest[order].tolist(), scores[order].tolist()))
                rank_of = {p: r for r, p in enumerate(rest[order].tolist(), start=1)}
                measure = UNCERTAINTY_MEASURES[measure_name]
                for p in take_in_order(ctx, rest[order], n_pick - len(choices)):
                    occ = float(occurrence[p]) if occurrence is not None else math.nan
                    where = "unknown at its site-week" if math.isnan(occ) else f"occurrence {occ:.4f} at its site-week"
                    choices.append(Choice(pos=p, score=score_of[p], reason=(
                        f"no range conflict left ({conflicts.size} found): {measure} {score_of[p]:.2f}, the "
                        f"{ordinal(rank_of[p])} most uncertain of the {rest.size} other clips not yet selected "
                        f"(top-1 {labels[p]} {top1[p]:.2f}, {where})")))
        return choices


def _fenced(pool: Any, fence: Optional[Geofence]) -> Optional[np.ndarray]:
    """Whether each clip's top label is fenced at its recording's country (None: no geofence, or no countries)."""
    if fence is None or getattr(pool, "country", None) is None:
        return None
    admin1 = pool.codes("admin1_region") if getattr(pool, "admin1_region", None) is not None else \
        (np.zeros(len(pool), dtype=np.int32), np.asarray([""], dtype=object))
    return fence.fenced_codes(*pool.codes("top_label"), *pool.codes("country"), *admin1)


def _strongest_first(rows: np.ndarray, top1: np.ndarray, occurrence: Optional[np.ndarray],
                     ids: np.ndarray) -> np.ndarray:
    """Pool positions by highest top-1, then lowest range occurrence (unknown last), then lowest clip id."""
    occ = np.full(rows.size, np.inf) if occurrence is None else np.nan_to_num(
        np.asarray(occurrence, dtype=np.float64)[rows], nan=np.inf)
    return rows[np.lexsort((ids[rows], occ, -top1[rows]))]


def _place(pool: Any, p: int) -> str:
    admin1 = str(pool.admin1_region[p]) if getattr(pool, "admin1_region", None) is not None else ""
    return str(pool.country[p]) + (f"/{admin1}" if admin1 else "")


def _rolled_up(ctx: QueryContext, fence: Geofence, p: int) -> str:
    """The clip's roll-up (over its top 5 labels when the model's probability rows are at hand, else its top-1)."""
    pool = ctx.pool
    labels = list(pool.model_version.labels)
    scores: Optional[np.ndarray] = None
    if ctx.probabilities is not None and len(labels):
        try:
            scores = np.asarray(ctx.probabilities.take([int(pool.clip_id[p])]), dtype=np.float64)[0]
        except KeyError:  # a row the matrix lacks: the top-1 the pool holds
            scores = None
    if scores is None or scores.size != len(labels):
        scores, labels = np.asarray([float(pool.top1[p])]), [str(pool.top_label[p])]
    admin1 = (str(pool.admin1_region[p]) or None) if getattr(pool, "admin1_region", None) is not None else None
    return str(fence.roll_up(scores, labels, str(pool.country[p]), admin1))


def with_geofence(strategy: QueryStrategy, geofence_file: Optional[str | os.PathLike]) -> QueryStrategy:
    """``strategy`` with the geofence file given to every range-conflict strategy in it (itself, a stratified
    inner one, a blend's parts) that was given none; no file (None, or a path that does not exist) leaves it
    as it is.

    `workbench sample` and the app's Sample page fence with the workspace's geofence this way.
    """
    if geofence_file is None or not Path(geofence_file).exists():
        return strategy
    own = strategy.get_params(deep=False)
    if isinstance(strategy, RangeConflict) and strategy.geofence is None:
        strategy.set_params(geofence=str(geofence_file))
    if isinstance(own.get("inner"), QueryStrategy):
        with_geofence(own["inner"], geofence_file)
    parts = own.get("parts")
    if isinstance(parts, (list, tuple)) and all(isinstance(part, Mapping) for part in parts):
        fenced = []
        for part in parts:
            spec = part.get("strategy")
            if isinstance(spec, QueryStrategy):
                with_geofence(spec, geofence_file)
            elif spec == RangeConflict.name and "geofence" not in (part.get("params") or {}):
                part = {**part, "params": {**(part.get("params") or {}), "geofence": str(geofence_file)}}
            fenced.append(part)
        strategy.set_params(parts=fenced)
    return strategy
    inner = strategy.get_params(deep=False).get("inner")
    for s in (strategy, inner):
        if isinstance(s, RangeConflict) and s.geofence is None:
            s.set_params(geofence=str(geofence_file))
    return strategy
