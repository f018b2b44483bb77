"""Range priors: how likely a class is where and when a clip was recorded, read from what the store keeps.

A range model (BirdNET's meta model, ``embeddings.range_model``) says, for a latitude, a longitude and a
week, how likely each of its classes is to occur there. Its output is computed once per site-week and
stored (``Store.add_range_priors``; the ``RangePrior`` table); this module turns it into what clips need:

* ``week_of``: BirdNET's week (1-48, four per month) of a date, exactly as birdnetlib computes it;
* ``site_week_of``: a recording's (latitude, longitude, week), or None without coordinates or a time;
* ``range_lookup``: for clip ids and a model version's labels, each clip's site-week and the occurrence
  of each label there (NaN, ``None`` in ``in_range``, where unknown: never guessed);
* ``top_occurrence``: the occurrence of each pool clip's top-1 label at its site-week (what the
  sampler's range-conflict term reads, filled into ``Pool.range_occurrence`` by ``Store.pool``).

A clip's site-week is its recording's: BirdNET-Analyzer and birdnetlib take one species list per
recording (from its start date), and so do we. A head's labels are mapped onto the range model's classes
by exact label, scientific or common name (``store.labels``); labels that name none get no prior and are
reported (``LabelMapping.unmapped``).
"""

from __future__ import annotations

import calendar
import math
import numbers
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Iterable, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from store.labels import LabelMapping, map_labels

if TYPE_CHECKING:
    from store.schema import ModelVersion, Recording

#: BirdNET-Analyzer's default cut (``sf_thresh``, birdnetlib's ``LOCATION_FILTER_THRESHOLD``): a class at
#: or above it is in range.
IN_RANGE = 0.03
#: Classes below this occurrence are not stored (read back as 0); any threshold at or above it decides
#: exactly as on the model's full output.
DEFAULT_FLOOR = 0.001
WHOLE_YEAR = -1


class SiteWeek(NamedTuple):
    """Where and when: decimal degrees and BirdNET's week (1-48, or -1 for the whole year)."""

    latitude: float
    longitude: float
    week: int

    def __str__(self) -> str:
        return f"({self.latitude:g}, {self.longitude:g}) week {self.week}"


def week_of(when: date | datetime) -> int:
    """BirdNET's week of the year (1-48) of a date: ceil(day of year / days in that year x 48).

    birdnetlib's ``return_week_48_from_datetime``, the week its ``Recording(date=...)`` and species list use.
    """
    if not isinstance(when, date):
        raise ValueError(f"week_of needs a date or datetime, got {when!r}")
    day_of_year = when.timetuple().tm_yday
    days_in_year = 366 if calendar.isleap(when.year) else 365
    return math.ceil((day_of_year / days_in_year) * 48)


def check_site_week(latitude: float, longitude: float, week: int) -> SiteWeek:
    """A ``SiteWeek`` of finite coordinates in range and a week of 1-48 or -1; else a one-line ValueError."""
    for name, value, bound in (("latitude", latitude, 90), ("longitude", longitude, 180)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                or not -bound <= value <= bound:
            raise ValueError(f"{name} must be a number in [-{bound}, {bound}] (decimal degrees), got {value!r}")
    if isinstance(week, bool) or not isinstance(week, numbers.Integral) or not (week == WHOLE_YEAR or 1 <= week <= 48):
        raise ValueError(f"week must be an integer 1-48 (BirdNET's week of the year) or -1 (all year), got {week!r}")
    return SiteWeek(float(latitude), float(longitude), int(week))


def site_week_of(recording: "Recording") -> Optional[SiteWeek]:
    """The recording's site-week, or None when it has no coordinates or no start time (never guessed)."""
    return site_week_at(recording.latitude, recording.longitude, recording.start_time)


def site_week_at(latitude: Optional[float], longitude: Optional[float], start: Optional[date]) -> Optional[SiteWeek]:
    """(latitude, longitude, week of ``start``), or None when any of them is unknown."""
    if latitude is None or longitude is None or start is None:
        return None
    return SiteWeek(float(latitude), float(longitude), week_of(start))


# ------------------------------------------------------------------------------------ compact rows
@dataclass(frozen=True)
class StoredPrior:
    """A site-week's stored occurrences: dense float32 over the model version's classes (0 below ``floor``)."""

    site_week: SiteWeek
    occurrence: np.ndarray
    floor: float
    range_model: str

    def in_range(self, threshold: float = IN_RANGE) -> np.ndarray:
        """Indices of the classes at or above ``threshold``, most likely first (birdnetlib's order)."""
        if threshold < self.floor:
            raise ValueError(f"threshold {threshold} is below the floor {self.floor} the priors were stored with: "
                             f"classes under the floor were not kept; use a threshold >= {self.floor}")
        order = np.argsort(-self.occurrence, kind="stable")
        return order[self.occurrence[order] >= np.float32(threshold)]


def pack(occurrence: np.ndarray, floor: float) -> tuple[bytes, bytes]:
    """(uint16 indices, float32 values) of the classes at or above ``floor``, little-endian."""
    occurrence = np.asarray(occurrence, dtype=np.float32)
    keep = np.flatnonzero(occurrence >= np.float32(floor))
    return keep.astype("<u2").tobytes(), occurrence[keep].astype("<f4").tobytes()


def unpack(classes: bytes, values: bytes, n_classes: int) -> np.ndarray:
    """The dense float32 occurrences of a packed row (0 for the classes not kept)."""
    dense = np.zeros(n_classes, dtype=np.float32)
    dense[np.frombuffer(classes, dtype="<u2").astype(np.int64)] = np.frombuffer(values, dtype="<f4")
    return dense


# ------------------------------------------------------------------------------------ reading for clips
def prior_source(store, model_version: "ModelVersion") -> tuple[Optional["ModelVersion"], dict[SiteWeek, StoredPrior]]:
    """The model version whose classes the priors for ``model_version`` are over (itself, else its nearest
    ancestor holding any: a head's base, BirdNET) and those priors; (None, {}) when none holds any."""
    mv, seen = model_version, set()
    while mv is not None and mv.id not in seen:
        seen.add(mv.id)
        priors = store.range_priors(mv)
        if priors:
            return mv, priors
        mv = store.model_version(int(mv.parent_id)) if mv.parent_id is not None else None
    return None, {}


def occurrence_table(priors: Mapping[SiteWeek, StoredPrior], mapping: LabelMapping
                     ) -> tuple[dict[SiteWeek, int], np.ndarray]:
    """({site-week: row}, (site-weeks x labels) float32): each label's occurrence, NaN for unmapped labels."""
    rows = {sw: i for i, sw in enumerate(priors)}
    index = np.asarray(mapping.index, dtype=np.int64)
    table = np.full((len(rows), index.size), np.nan, dtype=np.float32)
    mapped = index >= 0
    for sw, i in rows.items():
        table[i, mapped] = priors[sw].occurrence[index[mapped]]
    return rows, table


@dataclass(frozen=True)
class RangeLookup:
    """Clips (``clip_id``), their site-weeks and the occurrence of each of ``mapping.labels`` there.

    ``row[i]`` is clip i's row of ``table`` (site-weeks x labels, float32), -1 when unknown: the
    recording has no coordinates or no start time (``site_week[i]`` is None), or its site-week was not
    computed yet (listed in ``uncomputed``: ``workbench range`` computes it). Labels the range model does
    not know are NaN in every row (``mapping.unmapped``).
    """

    clip_id: np.ndarray
    site_week: tuple[Optional[SiteWeek], ...]
    row: np.ndarray
    table: np.ndarray
    mapping: LabelMapping
    uncomputed: tuple[SiteWeek, ...]

    def occurrence(self, positions: Optional[np.ndarray] = None) -> np.ndarray:
        """(clips x labels) float32 occurrences (of the clips at ``positions``, default all); NaN where unknown
        (no site-week, not computed, unmapped). One lookup serves a whole export chunk by chunk."""
        row = self.row if positions is None else self.row[np.asarray(positions, dtype=np.int64)]
        out = np.full((row.size, len(self.mapping.labels)), np.nan, dtype=np.float32)
        known = row >= 0
        out[known] = self.table[row[known]]
        return out

    def in_range(self, threshold: float = IN_RANGE, positions: Optional[np.ndarray] = None) -> np.ndarray:
        """(clips x labels) of True (occurrence >= ``threshold``), False, or None where unknown (object array)."""
        occ = self.occurrence(positions)
        out = np.full(occ.shape, None, dtype=object)
        known = ~np.isnan(occ)
        out[known] = occ[known] >= np.float32(threshold)
        return out


def _rows_for(site_weeks: Sequence[Optional[SiteWeek]], rows: Mapping[SiteWeek, int]) -> np.ndarray:
    return np.fromiter((rows.get(sw, -1) if sw is not None else -1 for sw in site_weeks), dtype=np.int64,
                       count=len(site_weeks))


def range_lookup(store, clip_ids: Iterable[int], model_version: "ModelVersion",
                 labels: Optional[Sequence[str]] = None) -> RangeLookup:
    """For ``clip_ids``, each clip's site-week and the stored occurrence there of each of ``labels`` (default:
    ``model_version``'s), read from the priors of ``model_version`` or its nearest ancestor that has any."""
    ids = np.asarray([int(c) for c in clip_ids], dtype=np.int64)
    labels = list(model_version.labels if labels is None else labels)
    source, priors = prior_source(store, model_version)
    mapping = map_labels(labels, source.labels if source is not None else (), taxa_only=True)
    rows, table = occurrence_table(priors, mapping)
    by_recording = {r.id: site_week_of(r) for r in store.recordings()}
    site_weeks = tuple(by_recording.get(c.recording_id) for c in store.clips(ids.tolist()))
    uncomputed = tuple(dict.fromkeys(sw for sw in site_weeks if sw is not None and sw not in rows))
    return RangeLookup(ids, site_weeks, _rows_for(site_weeks, rows), table, mapping, uncomputed)


def top_occurrence(recording_site_weeks: Sequence[Optional[SiteWeek]], recording_of_clip: np.ndarray,
                   top_index: np.ndarray, priors: Mapping[SiteWeek, StoredPrior], mapping: LabelMapping
                   ) -> np.ndarray:
    """Occurrence (float64, NaN where unknown) of each clip's top-1 label at its recording's site-week.

    ``recording_site_weeks[r]`` is recording position r's site-week; ``recording_of_clip`` each clip's
    recording position and ``top_index`` its top-1 label (an index into ``mapping.labels``). Vectorised:
    the work per clip is two integer lookups, so it costs little at millions of clips.
    """
    rows, table = occurrence_table(priors, mapping)
    out = np.full(recording_of_clip.shape[0], np.nan, dtype=np.float64)
    if not rows or not recording_of_clip.size:
        return out
    row = _rows_for(recording_site_weeks, rows)[recording_of_clip]
    known = row >= 0
    out[known] = table[row[known], np.asarray(top_index, dtype=np.int64)[known]]
    return out


__all__ = ["DEFAULT_FLOOR", "IN_RANGE", "WHOLE_YEAR", "RangeLookup", "SiteWeek", "StoredPrior", "check_site_week",
           "map_labels", "occurrence_table", "pack", "prior_source", "range_lookup", "site_week_at", "site_week_of", "top_occurrence",
           "unpack", "week_of"]
