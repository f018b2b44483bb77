"""Detections in the files a BirdNET user already reads: BirdNET-Analyzer's CSV and Raven selection tables.

A detection is a 3 s window of a recording and a class whose probability under a model version (BirdNET, or
a fine-tuned head: its probabilities are recomputed from the stored embedding) reaches ``min_confidence``
(BirdNET-Analyzer's default 0.1). The columns are BirdNET-Analyzer's: the CSV ``Start (s),End (s),Scientific
name,Common name,Confidence,File``, one Raven table per recording (``<name>.BirdNET.selection.table.txt``,
``Selection View Channel Begin Time (s) End Time (s) Low Freq (Hz) High Freq (Hz) Common Name Species Code
Confidence Begin Path File Offset (s)``, frequencies 0-15,000 Hz as BirdNET-Analyzer writes them). Without
eBird's code table the Species Code column holds the scientific name. Rows are ordered by file and time.

After BirdNET-Analyzer's columns (readers that take them by name are unaffected) every row says where and when
(``Site``, ``Device``, ``Recorded at``: the recording's start plus the window's offset), whether the detection
is in range (``In range``: BirdNET's range model at the site-week, empty where unknown), whether it is
auto-validated (``yes`` at or above its species' threshold from ``workbench validate`` and not out of range,
``no`` otherwise: it goes to review; empty when the model was never validated) and the experts' answer where the
window has one (``Expert label``). The confidence of a calibrated head is its calibrated probability.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from finetune.labelled import FinetuneError
from finetune.validate import auto_validated
from store import ModelVersion, Store, StoreError
from store.atomic import write_atomically
from store.roles import Ledger, Records

CSV_HEADER = ["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File"]
RAVEN_HEADER = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                "Common Name", "Species Code", "Confidence", "Begin Path", "File Offset (s)"]
EXTRA_HEADER = ["Site", "Device", "Recorded at", "In range", "Auto-validated", "Expert label"]
RAVEN_SUFFIX = ".BirdNET.selection.table.txt"
DEFAULT_MIN_CONFIDENCE = 0.1  # BirdNET-Analyzer's --min_conf
FORMATS = ("csv", "raven", "parquet")  # what ``export_detections`` writes
SIG_FMIN, SIG_FMAX = 0, 15000  # BirdNET's band, as BirdNET-Analyzer fills the Raven frequency columns


@dataclass(frozen=True)
class Detection:
    path: str
    start_s: float
    end_s: float
    label: str
    confidence: float
    site: Optional[str] = None
    device: Optional[str] = None
    recorded_at: Optional[datetime] = None  # the window's start in the recorder's wall-clock time
    auto_validated: Optional[bool] = None  # None: the model was never validated
    expert: Optional[str] = None  # the experts' answer for the window ("; "-joined labels)
    in_range: Optional[bool] = None  # BirdNET's range model at the site-week; None: unknown

    def extra(self) -> list[str]:
        """The columns after BirdNET-Analyzer's."""
        def yes_no(v: Optional[bool]) -> str:
            return "" if v is None else ("yes" if v else "no")

        when = self.recorded_at.isoformat(timespec="seconds") if self.recorded_at else ""
        return [self.site or "", self.device or "", when, yes_no(self.in_range), yes_no(self.auto_validated),
                self.expert or ""]

    @property
    def names(self) -> tuple[str, str]:
        """(scientific, common) from ``"Scientific_Common"``; a label without both is used for both."""
        scientific, sep, common = self.label.partition("_")
        return (scientific, common) if sep and common else (self.label, self.label)


def detections(store: Store, model_version: Optional[ModelVersion] = None, *,
               min_confidence: float = DEFAULT_MIN_CONFIDENCE, range_filter: bool = False,
               chunk: int = 4096) -> Iterator[Detection]:
    """Every (window, class) of the current recordings at or above ``min_confidence``, by file and time.

    ``range_filter`` drops detections of species the range model calls absent at the window's site-week, as
    BirdNET-Analyzer's location filter does (unknown site-weeks keep theirs); without it they are marked."""
    from store.ranges import range_lookup

    if not 0.0 < float(min_confidence) <= 1.0:
        raise ValueError(f"min_confidence must be within (0, 1], got {min_confidence!r}")
    mv = model_version or store.current_model_version()
    if mv is None:
        raise ValueError("the store holds no scored clips: ingest audio first")
    pool = store.pool(mv)
    infos = [i for i in store.clips(pool.clip_id) if i.modality == "audio"]
    infos.sort(key=lambda i: (i.path, i.start_s))
    rows = store.probabilities(mv)
    labels = np.array(mv.labels, dtype=object)
    thresholds = auto_validated(mv)
    cut = np.array([thresholds.get(str(c), np.inf) for c in labels]) if thresholds else None
    experts = _expert_labels(store)
    lookup = range_lookup(store, [i.clip_id for i in infos], mv)  # once: it reads every recording's site-week
    for start in range(0, len(infos), chunk):
        part = infos[start:start + chunk]
        ids = np.array([i.clip_id for i in part], dtype=np.int64)
        probs = rows.take(ids)
        ranged = lookup.in_range(positions=np.arange(start, start + len(part)))
        for info, p, in_range in zip(part, probs, ranged):
            hits = np.flatnonzero(p >= min_confidence)
            if range_filter:
                hits = hits[in_range[hits] != False]  # noqa: E712 (True, False or None)
            when = info.start_time + timedelta(seconds=float(info.start_s)) if info.start_time else None
            expert = experts.get(int(info.clip_id))
            for j in hits[np.argsort(-p[hits], kind="stable")]:
                auto = None if cut is None else bool(p[j] >= cut[j] and in_range[j] is not False)
                yield Detection(info.path, float(info.start_s), float(info.end_s), str(labels[j]), float(p[j]),
                                info.site, info.device, when, auto, expert, in_range[j])


def _expert_labels(store: Ledger) -> dict[int, str]:
    """One answer per labelled clip, as fine-tuning reads it (``annotation.agreement.consensus``)."""
    from annotation.agreement import consensus

    by_clip, _ = consensus(store.annotations())
    return {int(c): "; ".join(sorted(labels)) or "(no species)" for c, labels in by_clip.items()}


def write_birdnet_csv(found: Iterator[Detection], path: Path | str) -> tuple[Path, int]:
    """BirdNET-Analyzer's combined CSV (``--rtype csv``); returns the path and the number of rows."""
    count = 0

    def write(fh) -> None:
        nonlocal count
        w = csv.writer(fh)
        w.writerow(CSV_HEADER + EXTRA_HEADER)
        for d in found:
            scientific, common = d.names
            w.writerow([f"{d.start_s:.1f}", f"{d.end_s:.1f}", scientific, common, f"{d.confidence:.4f}", d.path]
                       + d.extra())
            count += 1

    return write_atomically(path, write, newline=""), count


PARQUET_COLUMNS = ("start_s", "end_s", "scientific_name", "common_name", "confidence", "file", "site", "device",
                   "recorded_at", "in_range", "auto_validated", "expert_label")


def write_parquet(found: Iterator[Detection], path: Path | str, batch: int = 65_536) -> tuple[Path, int]:
    """The same rows as the CSV, typed (floats, timestamps, nullable booleans), as one Parquet file for
    pandas, R's arrow or DuckDB; written in row groups of ``batch`` so a billion detections stream through."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("start_s", pa.float64()), ("end_s", pa.float64()), ("scientific_name", pa.string()),
                        ("common_name", pa.string()), ("confidence", pa.float32()), ("file", pa.string()),
                        ("site", pa.string()), ("device", pa.string()), ("recorded_at", pa.timestamp("s")),
                        ("in_range", pa.bool_()), ("auto_validated", pa.bool_()), ("expert_label", pa.string())])
    count = 0

    def rows_of(part: list[Detection]) -> pa.Table:
        names = [d.names for d in part]
        return pa.table([[d.start_s for d in part], [d.end_s for d in part], [n[0] for n in names],
                         [n[1] for n in names], [d.confidence for d in part], [d.path for d in part],
                         [d.site for d in part], [d.device for d in part], [d.recorded_at for d in part],
                         [d.in_range for d in part], [d.auto_validated for d in part], [d.expert for d in part]],
                        schema=schema)

    def write(fh) -> None:
        nonlocal count
        with pq.ParquetWriter(fh, schema) as writer:
            part: list[Detection] = []
            for d in found:
                part.append(d)
                if len(part) == batch:
                    writer.write_table(rows_of(part))
                    count += len(part)
                    part = []
            writer.write_table(rows_of(part))  # an empty table still leaves a readable file with the schema
            count += len(part)

    return write_atomically(path, write, binary=True), count


def write_raven_tables(found: Iterator[Detection], folder: Path | str) -> list[tuple[Path, int]]:
    """One Raven selection table per recording with detections (``--rtype table``): (path, rows) each."""
    by_file: dict[str, list[Detection]] = {}
    for d in found:
        by_file.setdefault(d.path, []).append(d)
    out = []
    used: set[str] = set()
    for source, rows in by_file.items():
        name = Path(source).stem
        while name in used:  # two folders holding a file of the same name
            name = f"{Path(source).parent.name}_{name}"
        used.add(name)

        def write(fh, rows=rows) -> None:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n")
            w.writerow(RAVEN_HEADER + EXTRA_HEADER)
            for n, d in enumerate(rows, start=1):
                scientific, common = d.names
                w.writerow([n, "Spectrogram 1", 1, f"{d.start_s:.1f}", f"{d.end_s:.1f}", SIG_FMIN, SIG_FMAX, common,
                            scientific, f"{d.confidence:.4f}", d.path, f"{d.start_s:.1f}"] + d.extra())

        out.append((write_atomically(Path(folder) / f"{name}{RAVEN_SUFFIX}", write, newline=""), len(rows)))
    return out


# ------------------------------------------------------------------------------------ the service
def named_model_version(store: Records, name: str) -> ModelVersion:
    """The model version called ``name``; one the store does not hold is a ``FinetuneError`` saying where to look."""
    try:
        return store.model_version(name)
    except StoreError as e:
        raise FinetuneError(f"--model-version {name}: no such model version in this workspace (`workbench status` "
                            "lists them)") from e


@dataclass(frozen=True)
class DetectionExport:
    """What ``export_detections`` wrote: whose detections, from which confidence, and each file with its rows."""

    model: ModelVersion
    format: str
    min_confidence: float
    files: list[tuple[Path, int]]

    @property
    def detections(self) -> int:
        return sum(n for _, n in self.files)


def export_detections(store: Store, out: Path | str, *, format: str = "csv", model_version: Optional[str] = None,
                      min_confidence: float = DEFAULT_MIN_CONFIDENCE, range_filter: bool = False) -> DetectionExport:
    """The detections of ``model_version`` (a name; default: the current model) written in ``format``:
    ``csv`` (one BirdNET-Analyzer combined table; ``out`` a .csv file, or a folder to hold
    ``BirdNET_CombinedTable.csv``), ``parquet`` (the same rows typed; a .parquet file or a folder to hold
    ``detections.parquet``) or ``raven`` (one selection table per recording in the folder ``out``)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    mv = named_model_version(store, model_version) if model_version else store.current_model_version()
    if mv is None:
        raise FinetuneError("the workspace holds no scored clips yet: run `workbench ingest PATH` first")
    found = detections(store, mv, min_confidence=min_confidence, range_filter=range_filter)
    out = Path(out)
    if format == "csv":
        files = [write_birdnet_csv(found, out if out.suffix else out / "BirdNET_CombinedTable.csv")]
    elif format == "parquet":
        files = [write_parquet(found, out if out.suffix else out / "detections.parquet")]
    else:
        files = write_raven_tables(found, out)
    return DetectionExport(model=mv, format=format, min_confidence=float(min_confidence), files=files)
