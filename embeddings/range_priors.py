"""The store's range priors, computed: BirdNET's range model once per site-week the recordings need.

A site-week is a recording's (latitude, longitude, BirdNET week of its start date); recordings without
coordinates or a start time have none and get no prior (``store.ranges``: never guessed). The priors are
stored over the classes of the store's BirdNET model version (the range model shares its labels), and
each head trained on it has its labels mapped onto them by name; labels that name no BirdNET class are
reported, never dropped silently. ``ingest`` calls ``compute_range_priors`` for new site-weeks (about a
millisecond each); ``workbench range`` recomputes them all and prints what is in range where.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from embeddings.range_model import RangeModel
from store.labels import map_labels
from store.locks import LockName
from store.ranges import DEFAULT_FLOOR, IN_RANGE, SiteWeek, site_week_of
from store.roles import Records
from store.schema import ModelKind, ModelVersion, RecordingStatus
from store.store import Store


@dataclass(frozen=True)
class SiteWeekRange:
    """One site-week: the sites (names) and recordings there, and how many classes are in range."""

    site_week: SiteWeek
    sites: tuple[str, ...]
    recordings: int
    in_range: int
    computed: bool  # by this call (False: it was stored already and kept)


@dataclass
class RangeReport:
    """What ``compute_range_priors`` did: per site-week, what heads cannot map, what had no site-week."""

    threshold: float
    model_version: Optional[str] = None  # the store's model version with BirdNET's classes; None: there is none
    range_model: str = ""
    site_weeks: list[SiteWeekRange] = field(default_factory=list)
    unmapped: dict[str, list[str]] = field(default_factory=dict)  # head name -> its labels with no BirdNET class
    without_site_week: int = 0  # recordings with no coordinates or no start time
    bytes_stored: int = 0  # of the rows this call wrote

    @property
    def computed(self) -> int:
        return sum(1 for s in self.site_weeks if s.computed)


def birdnet_model_version(store: Records, labels: list[str]) -> Optional[ModelVersion]:
    """The store's embedding model version whose classes are ``labels`` (BirdNET's), or None."""
    return next((mv for mv in store.model_versions()
                 if mv.kind == ModelKind.EMBEDDING and list(mv.labels) == labels), None)


def descendants(store: Records, base: ModelVersion) -> list[ModelVersion]:
    """The heads trained on ``base`` (and on those), oldest first."""
    out, ids = [], {base.id}
    for mv in store.model_versions():
        if mv.parent_id is not None and int(mv.parent_id) in ids:
            out.append(mv)
            ids.add(mv.id)
    return out


def compute_range_priors(store: Store, *, range_model: Optional[RangeModel] = None, threshold: float = IN_RANGE,
                         refresh: bool = False, floor: float = DEFAULT_FLOOR) -> RangeReport:
    """Compute and store the range priors of every site-week the store's recordings need; report them.

    ``refresh`` recomputes the site-weeks already stored (a new range model); otherwise only new ones are
    computed. ``threshold`` is where a class counts as in range in the report (BirdNET-Analyzer's 0.03);
    it must be at or above ``floor``, the occurrence below which classes are not stored.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not floor <= threshold <= 1.0:
        raise ValueError(f"threshold must be a number in [{floor}, 1] (classes below the stored floor {floor} are "
                         f"not kept; BirdNET-Analyzer's default is 0.03), got {threshold!r}")
    model = range_model or RangeModel()
    report = RangeReport(threshold=float(threshold), range_model=model.name)
    base = birdnet_model_version(store, model.labels)
    if base is None:
        return report
    report.model_version = base.name
    for head in descendants(store, base):
        missing = map_labels(list(head.labels), base.labels, taxa_only=True).unmapped
        if missing:
            report.unmapped[head.name] = missing

    with store.lock(LockName.INGEST):  # range priors are ingest's products: two writers never race on a row
        _compute(store, model, base, report, threshold, refresh, floor)
    return report


def _compute(store: Records, model: RangeModel, base: ModelVersion, report: RangeReport, threshold: float,
             refresh: bool, floor: float) -> None:
    where: dict[SiteWeek, list] = {}
    for rec in store.recordings():
        if rec.status in (RecordingStatus.FAILED, RecordingStatus.REPLACED):
            continue
        sw = site_week_of(rec)
        if sw is None:
            report.without_site_week += 1
        else:
            where.setdefault(sw, []).append(rec)
    stored = store.range_priors(base, where)
    todo = {sw: model.occurrence(*sw) for sw in where if refresh or sw not in stored}
    if todo:
        store.add_range_priors(base, model.name, todo, floor=floor)
        stored = store.range_priors(base, where)
        report.bytes_stored = sum(int((stored[sw].occurrence >= floor).sum()) * 6 for sw in todo)
    for sw, recs in sorted(where.items()):
        report.site_weeks.append(SiteWeekRange(
            site_week=sw, sites=tuple(sorted({r.site for r in recs if r.site})), recordings=len(recs),
            in_range=int(stored[sw].in_range(threshold).size), computed=sw in todo))


__all__ = ["RangeReport", "SiteWeekRange", "birdnet_model_version", "compute_range_priors", "descendants"]
