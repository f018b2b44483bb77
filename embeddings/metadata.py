"""Where and when a recording was made: site, device, start time, position.

Three sources, field by field in this order of trust: a CSV sidecar the user wrote, the recorder's
file name (AudioMoth, Song Meter, Bugg), the folder layout (``.../<site>/<file>`` or
``.../<site>/<device>/<file>``). Times are naive local wall-clock times, as recorders write them;
a name or CSV value with a UTC offset keeps its wall-clock digits (the offset is dropped).

Images (camera traps, moth traps) get the same record from ``image_metadata``: the sidecar, camtrapR
names, the capture time (EXIF), EXIF GPS and a folder rule that never takes a species folder for a site
(the images section below).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Optional

SIDECAR_COLUMNS = ("file", "site", "device", "start_time", "latitude", "longitude", "country", "admin1_region")
# ISO 3166-1 alpha-3 (SpeciesNet's and Wildlife Insights' country codes: the geofence is keyed by them)
_COUNTRY = re.compile(r"^[A-Z]{3}$")
# ISO 3166-2's subdivision part (``CA`` of ``US-CA``): one to three letters or digits
_ADMIN1 = re.compile(r"^(?:[A-Z]{2}-)?(?P<code>[A-Z0-9]{1,3})$")


@dataclass(frozen=True)
class RecordingMetadata:
    """Metadata of one recording; ``None`` where unknown."""

    site: Optional[str] = None
    device: Optional[str] = None
    start_time: Optional[datetime] = None
    latitude: Optional[float] = None
    longitude: Optional[float] = None
    country: Optional[str] = None  # ISO 3166-1 alpha-3, upper case (the sidecar only: never guessed)
    admin1_region: Optional[str] = None  # ISO 3166-2 subdivision code within it (``CA``), upper case

    def filled_from(self, other: "RecordingMetadata") -> "RecordingMetadata":
        """This metadata with its unknown fields taken from ``other``."""
        return RecordingMetadata(**{f.name: getattr(self, f.name) if getattr(self, f.name) is not None
                                    else getattr(other, f.name) for f in fields(self)})


# ---------------------------------------------------------------------------- file names
# Song Meter (SM4, Mini, ...): PREFIX_YYYYMMDD_HHMMSS[_anything]; the prefix (serial number by default) is the device.
_PREFIXED = re.compile(r"^(?P<prefix>.+?)_(?P<date>\d{8})_(?P<time>\d{6})(?:[_.+-].*)?$")
# AudioMoth: YYYYMMDD_HHMMSS
_AUDIOMOTH = re.compile(r"^(?P<date>\d{8})_(?P<time>\d{6})$")
# Bugg and others: ISO-like date-time anywhere in the name, e.g. 2021-05-22T05-30-00 or 2021-05-22T05_30_00.000Z
_ISO = re.compile(r"(?<!\d)(?P<date>(?:19|20)\d{2}-\d{2}-\d{2})[T_ ](?P<h>\d{2})[-_:.](?P<m>\d{2})[-_:.](?P<s>\d{2})(?!\d)")
# Compact YYYYMMDD_HHMMSS (or YYYYMMDDTHHMMSS) anywhere in the name.
_COMPACT = re.compile(r"(?<!\d)(?P<date>(?:19|20)\d{6})[_T-]?(?P<time>\d{6})(?!\d)")

_DEVICE_PATTERNS = (
    re.compile(r"^(S4A|S4U|SMM|SMA|SMU|SM[1-4])[A-Z0-9]*\d{3,}$", re.I),  # Wildlife Acoustics serials
    re.compile(r"^[0-9A-F]{16}$"),  # AudioMoth device id
    re.compile(r"^(bugg_)?RPiID-[0-9a-f]+$", re.I),  # Bugg
    re.compile(r"^(device|recorder|audiomoth|am|sm|bugg|logger|rec)[-_ ]?\d+[a-z]?$", re.I),
)
_DATE_FOLDER = re.compile(r"^(?:19|20)\d{2}[-_]?\d{2}[-_]?\d{2}$")
_SKIPPED_FOLDER = re.compile(r"^conf_[0-9a-f]+$", re.I)  # Bugg configuration folders


def _datetime(date: str, time: str) -> Optional[datetime]:
    try:
        return datetime.strptime(date.replace("-", "") + time, "%Y%m%d%H%M%S")
    except ValueError:
        return None  # digits that are not a date (e.g. 20191399): not a time stamp after all


def looks_like_device_id(name: str) -> bool:
    """Whether a folder or file-name prefix looks like a recorder id rather than a site name."""
    return any(p.match(name) for p in _DEVICE_PATTERNS)


def parse_filename(name: str | Path) -> RecordingMetadata:
    """Device and start time from a recorder's file name (AudioMoth, Song Meter, Bugg, ISO-like)."""
    stem = Path(name).name
    for suffix in Path(stem).suffixes[-1:]:
        stem = stem[: -len(suffix)]
    m = _AUDIOMOTH.match(stem)
    if m:
        return RecordingMetadata(start_time=_datetime(m["date"], m["time"]))
    m = _PREFIXED.match(stem)
    if m:
        start = _datetime(m["date"], m["time"])
        if start is not None:
            return RecordingMetadata(device=m["prefix"], start_time=start)
    m = _ISO.search(stem)
    if m:
        start = _datetime(m["date"], m["h"] + m["m"] + m["s"])
        if start is not None:
            return RecordingMetadata(start_time=start)
    for m in _COMPACT.finditer(stem):
        start = _datetime(m["date"], m["time"])
        if start is not None:
            return RecordingMetadata(start_time=start)
    return RecordingMetadata()


def parse_folders(path: str | Path) -> RecordingMetadata:
    """Site (and device) from the folders holding a file: ``<site>/<file>`` or ``<site>/<device>/<file>``.

    Date folders (``20210522``, ``2021-05-22``) and Bugg's ``conf_*`` folders are stepped over.
    """
    parents = [p.name for p in Path(path).parents if p.name]
    parents = [p for p in parents if not (_DATE_FOLDER.match(p) or _SKIPPED_FOLDER.match(p))]
    if not parents:
        return RecordingMetadata()
    if looks_like_device_id(parents[0]):
        return RecordingMetadata(site=parents[1] if len(parents) > 1 else None, device=parents[0])
    return RecordingMetadata(site=parents[0])


# ---------------------------------------------------------------------------- CSV sidecar
class Sidecar:
    """Per-file metadata from a CSV with columns file, site, device, start_time, latitude, longitude, country,
    admin1_region.

    ``file`` is a file name, or a path relative to the CSV's folder (or absolute). Any other column
    may be missing or blank. Rows are matched by path first, then by file name when that name is
    unique in the CSV. ``country`` is an ISO 3166-1 alpha-3 code (``KEN``, ``IND``: what geofence rules
    are keyed by) and ``admin1_region`` an ISO 3166-2 subdivision of it (``CA`` or ``US-CA``); both are
    upper-cased.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> "Sidecar":
        """Parse and validate the CSV; errors name the file, the row and the field."""
        by_path: dict[Path, RecordingMetadata] = {}
        by_name: dict[str, Optional[RecordingMetadata]] = {}
        try:
            fh = open(self.path, newline="", encoding="utf-8-sig")
        except OSError as e:
            raise ValueError(f"cannot read the metadata CSV {self.path}: {e.strerror or e}") from e
        with fh:
            reader = csv.DictReader(fh)
            header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
            if "file" not in header:
                raise ValueError(f"metadata CSV {self.path} needs a 'file' column (found {header}); "
                                 f"expected columns: {', '.join(SIDECAR_COLUMNS)}")
            reader.fieldnames = header
            for row_no, row in enumerate(reader, start=2):
                meta = self._row(row, row_no)
                name = (row.get("file") or "").strip()
                if not name:
                    raise ValueError(f"metadata CSV {self.path}, line {row_no}: the 'file' column is empty")
                target = Path(name)
                target = target if target.is_absolute() else self.path.parent / target
                by_path[_norm(target)] = meta
                base = target.name
                by_name[base] = None if base in by_name else meta
        self.by_path_ = by_path
        self.by_name_ = by_name
        return self

    def _row(self, row: dict, row_no: int) -> RecordingMetadata:
        def text(key: str) -> Optional[str]:
            value = (row.get(key) or "").strip()
            return value or None

        def number(key: str, lo: float, hi: float) -> Optional[float]:
            value = text(key)
            if value is None:
                return None
            try:
                x = float(value)
            except ValueError as e:
                raise ValueError(f"metadata CSV {self.path}, line {row_no}: {key} {value!r} is not a number") from e
            if not lo <= x <= hi:
                raise ValueError(f"metadata CSV {self.path}, line {row_no}: {key} {x} is outside [{lo}, {hi}]")
            return x

        start = text("start_time")
        start_time = None
        if start is not None:
            try:
                start_time = datetime.fromisoformat(start.replace("Z", "+00:00")).replace(tzinfo=None)
            except ValueError as e:
                raise ValueError(f"metadata CSV {self.path}, line {row_no}: start_time {start!r} is not an ISO "
                                 f"date-time such as 2021-05-22T05:30:00") from e
        given_country, given_admin1 = text("country"), text("admin1_region")
        country, admin1 = (given_country or "").upper() or None, (given_admin1 or "").upper() or None
        if country is not None and not _COUNTRY.match(country):
            raise ValueError(f"metadata CSV {self.path}, line {row_no}: country {given_country!r} is not an ISO "
                             f"3166-1 alpha-3 code (three letters, e.g. KEN, IND, USA)")
        if admin1 is not None:
            m = _ADMIN1.match(admin1)
            if m is None:
                raise ValueError(f"metadata CSV {self.path}, line {row_no}: admin1_region {given_admin1!r} is not "
                                 f"an ISO 3166-2 subdivision code (1-3 letters or digits, e.g. CA or US-CA)")
            if country is None:
                raise ValueError(f"metadata CSV {self.path}, line {row_no}: admin1_region {admin1!r} needs a country "
                                 f"(ISO 3166-1 alpha-3) in the same row")
            admin1 = m["code"]
        return RecordingMetadata(site=text("site"), device=text("device"), start_time=start_time,
                                 latitude=number("latitude", -90, 90), longitude=number("longitude", -180, 180),
                                 country=country, admin1_region=admin1)

    def lookup(self, path: str | Path) -> Optional[RecordingMetadata]:
        """The CSV row for ``path``, or None."""
        if not hasattr(self, "by_path_"):
            self.read()
        hit = self.by_path_.get(_norm(Path(path)))
        if hit is None:
            hit = self.by_name_.get(Path(path).name)
        return hit


def _norm(path: Path) -> Path:
    return Path(path).expanduser().resolve()


def recording_metadata(path: str | Path, sidecar: Optional[Sidecar] = None) -> RecordingMetadata:
    """Everything known about a recording: CSV sidecar, then file name, then folders, field by field."""
    meta = RecordingMetadata()
    if sidecar is not None:
        meta = sidecar.lookup(path) or meta
    return meta.filled_from(parse_filename(path)).filled_from(parse_folders(path))


# ---------------------------------------------------------------------------- images
# Images reuse the sidecar and the recorder name patterns above; what differs is where the site and the
# camera sit. Camera-trap projects sort images into ``<station>/[<camera>/]<species>/<file>`` (camtrapR's
# layout), so the folder right above an image is often a species, never to be taken for a site. The rule:
#   1. the CSV sidecar, field by field;
#   2. a camtrapR name, ``<station>__[<camera>__]<YYYY-MM-DD>__<HH-MM-SS>(<n>)[__<species>].JPG``:
#      station and camera are in the name itself;
#   3. the capture time (EXIF, then the file name: ``embeddings.image_files.capture_time``);
#   4. folders. Given ``root`` (the folder the user ingested), the first folder below it is the site and
#      the next one the camera when it looks like a camera id (``cam03``, ``CT12``, a recorder id); any
#      deeper folder (species, card folders like DCIM/100RECNX, date folders) is ignored. Without ``root``
#      only a folder whose *name* says it is a station or a camera counts (``StationA``, ``site_12``,
#      ``plot-3``, ``cam03``): a species folder (``PBE``, ``ants``, ``Leopard cat``) is never a site.
# Position (latitude, longitude) comes from the sidecar, else from the image's EXIF GPS tags.

# camtrapR's imageRename: StationID__CameraID__Date__Time(Number).JPG (camera optional; appendSpeciesNames
# adds __Species).
_CAMTRAPR = re.compile(r"^(?P<station>[^_].*?)__(?:(?P<camera>[^_].*?)__)?(?P<date>(?:19|20)\d{2}-\d{2}-\d{2})__"
                       r"(?P<h>\d{2})-(?P<m>\d{2})-(?P<s>\d{2})(?:\(\d+\))?(?:__.*)?$")
# Camera-trap names with a date and no time of day, e.g. vj_ga_hu_1_2019-07-08_0001 (a per-day counter).
_DATE_ONLY = re.compile(r"(?<!\d)(?P<date>(?:19|20)\d{2}-?\d{2}-?\d{2})(?!\d)")
# A station word then an id: StationA, Station_3, site-12, Site 4, SiteNorth, plot3; not Stationary, pointer.
_STATION_FOLDER = re.compile(r"^(?i:station|stn|site|plot|point|location|grid|transect)"
                             r"(?:[-_ ]\w[\w -]*|\d[\w-]*|[A-Z][A-Za-z0-9]*)$")
_CAMERA_FOLDER = re.compile(r"^(?:camera|cam|ct|ctrap|trap|unit)[-_ ]?[a-z]?\d+[a-z]?$", re.I)
# DCF folder names: DCIM, then 3 digits and 5 characters with a letter (100RECNX, 100EK113, 100MEDIA, 100_BTCF).
_CARD_FOLDER = re.compile(r"^(?:DCIM|[1-9]\d{2}(?=[A-Z0-9_]*[A-Z_])[A-Z0-9_]{5})$", re.I)


def looks_like_station(name: str) -> bool:
    """Whether a folder name says it is a camera-trap station or site (``StationA``, ``site_12``, ``plot-3``)."""
    return bool(_STATION_FOLDER.match(name))


def looks_like_camera_id(name: str) -> bool:
    """Whether a folder name looks like a camera (``cam03``, ``CT12``, ``Camera1``) or a recorder id."""
    return bool(_CAMERA_FOLDER.match(name)) or looks_like_device_id(name)


def parse_image_filename(name: str | Path) -> RecordingMetadata:
    """Site, camera and capture time from an image's file name.

    camtrapR names (``StationA__2009-04-21__00-40-00(1).JPG``, ``StationA__CamA1__...``) give the station
    (site), the camera (device) and the time; other names go through the recorder patterns of
    ``parse_filename`` (``20190522_053000.JPG``, ``CAM01_20190522_053000.JPG``,
    ``20220622000459-108-snapshot.jpg``). A name holding only a date (``vj_ga_hu_1_2019-07-08_0001.JPG``)
    gives no time: midnight would be a false time of day (see ``name_date_only``).
    """
    stem = Path(name).name
    for suffix in Path(stem).suffixes[-1:]:
        stem = stem[: -len(suffix)]
    m = _CAMTRAPR.match(stem)
    if m:
        start = _datetime(m["date"], m["h"] + m["m"] + m["s"])
        if start is not None:
            return RecordingMetadata(site=m["station"], device=m["camera"], start_time=start)
    return parse_filename(name)


def name_date_only(name: str | Path) -> bool:
    """True when a file name holds a date but no time of day (so ``parse_image_filename`` gives no time)."""
    if parse_image_filename(name).start_time is not None:
        return False
    return any(_datetime(m["date"], "000000") is not None for m in _DATE_ONLY.finditer(Path(name).name))


def parse_image_folders(path: str | Path, root: str | Path | None = None) -> RecordingMetadata:
    """Site and camera from the folders holding an image (the rule is at the top of this section).

    With ``root`` the first folder below it is the site and the next the camera when it looks like one;
    without, only folders named like a station or a camera count. Card folders (DCIM, 100RECNX) and date
    folders are stepped over either way. ``path`` outside ``root`` is a ``ValueError``.
    """
    path = Path(path)

    def skipped(folder: str) -> bool:
        return bool(_DATE_FOLDER.match(folder) or _CARD_FOLDER.match(folder) or _SKIPPED_FOLDER.match(folder))

    if root is not None:
        try:
            rel = _norm(path).relative_to(_norm(Path(root)))
        except ValueError as e:
            raise ValueError(f"{path} is not inside the image root {root}: give the folder the images were "
                             f"ingested from as root") from e
        folders = [f for f in rel.parts[:-1] if not skipped(f)]
        if not folders:
            return RecordingMetadata()
        device = folders[1] if len(folders) > 1 and looks_like_camera_id(folders[1]) else None
        return RecordingMetadata(site=folders[0], device=device)
    parents = [p.name for p in path.parents if p.name and not skipped(p.name)]  # nearest first
    site = next((p for p in parents if looks_like_station(p)), None)
    below_site = parents[: parents.index(site)] if site is not None else parents
    device = next((p for p in below_site if looks_like_camera_id(p)), None)
    return RecordingMetadata(site=site, device=device)


def image_metadata(path: str | Path, sidecar: Optional[Sidecar] = None, root: str | Path | None = None,
                   image=None) -> RecordingMetadata:
    """Everything known about an image: sidecar, camtrapR name, capture time, EXIF GPS, folders.

    ``start_time`` is the capture time (``embeddings.image_files.capture_time``: EXIF, else the file
    name; never the file's mtime). ``image`` is the already opened PIL image, to save reading the file's
    header again. ``root`` is the folder the images were ingested from (see ``parse_image_folders``).
    """
    # imported here: image_files imports this module's name patterns
    from embeddings.image_files import capture_time, exif_position

    meta = RecordingMetadata()
    if sidecar is not None:
        meta = sidecar.lookup(path) or meta
    named = parse_image_filename(path)
    start, _source = capture_time(path, image=image) if meta.start_time is None else (None, "")
    no_position = meta.latitude is None and meta.longitude is None
    latitude, longitude = exif_position(path, image=image) if no_position else (None, None)
    found = RecordingMetadata(site=named.site, device=named.device, start_time=start,
                              latitude=latitude, longitude=longitude)
    return meta.filled_from(found).filled_from(parse_image_folders(path, root))
