"""Where and when a recording was made: site, device, start time, position.

Three sources, field by field in this order of trust: a CSV sidecar the user wrote, the recorder's
file name (AudioMoth, Song Meter, Bugg), the folder layout (``.../<site>/<file>`` or
``.../<site>/<device>/<file>``). Times are naive local wall-clock times, as recorders write them;
a name or CSV value with a UTC offset keeps its wall-clock digits (the offset is dropped).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Optional

SIDECAR_COLUMNS = ("file", "site", "device", "start_time", "latitude", "longitude")


@dataclass(frozen=True)
class RecordingMetadata:
    """Metadata of one recording; ``None`` where unknown."""

    site: Optional[str] = None
    device: Optional[str] = None
    start_time: Optional[datetime] = None
    latitude: Optional[float] = None
    longitude: Optional[float] = None

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
    """Per-file metadata from a CSV with columns file, site, device, start_time, latitude, longitude.

    ``file`` is a file name, or a path relative to the CSV's folder (or absolute). Any other column
    may be missing or blank. Rows are matched by path first, then by file name when that name is
    unique in the CSV.
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
        return RecordingMetadata(site=text("site"), device=text("device"), start_time=start_time,
                                 latitude=number("latitude", -90, 90), longitude=number("longitude", -180, 180))

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
