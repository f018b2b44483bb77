"""Detections in the files a BirdNET user already reads: BirdNET-Analyzer's CSV and Raven selection tables.

A detection is a 3 s window of a recording and a class whose probability under a model version (BirdNET, or
a fine-tuned head: its probabilities are recomputed from the stored embedding) reaches ``min_confidence``
(BirdNET-Analyzer's default 0.1). The columns are BirdNET-Analyzer's: the CSV ``Start (s),End (s),Scientific
name,Common name,Confidence,File``, one Raven table per recording (``<name>.BirdNET.selection.table.txt``,
``Selection View Channel Begin Time (s) End Time (s) Low Freq (Hz) High Freq (Hz) Common Name Species Code
Confidence Begin Path File Offset (s)``, frequencies from 0 Hz to half the recording's sample rate, at most
15,000 Hz, as BirdNET-Analyzer writes them). Without
eBird's code table the Species Code column holds the scientific name. Rows are ordered by file and time.

As BirdNET-Analyzer does, every recording gets a Raven table, one without detections its single ``nocall`` row.
A table's name depends on its recording alone (among the workspace's), never on which recordings have
detections: the file's stem, and where stems clash, the folders above it (``s1_file01``, ``s2_file01``). An
export into a folder replaces the tables an earlier export left there (recognised by their header, which is
ours); a folder holding other Raven tables (BirdNET-Analyzer's, or edited ones) is refused, never mixed in.

After BirdNET-Analyzer's columns (readers that take them by name are unaffected) every row says where and when
(``Site``, ``Device``, ``Recorded at``: the recording's start plus the window's offset), whether the detection
is in range (``In range``: BirdNET's range model at the site-week, empty where unknown), whether it is
auto-validated (``yes`` at or above its species' threshold from ``workbench validate`` and not out of range,
``no`` otherwise: it goes to review; empty when the model was never validated) and the experts' answer where the
window has one (``Expert label``). The confidence of a calibrated head is its calibrated probability.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import itertools
import os
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from finetune.labelled import FinetuneError
from finetune.validate import auto_validated
from store import ClipInfo, ModelVersion, Store, StoreError
from store.atomic import write_atomically
from store.roles import Ledger, Records

CSV_HEADER = ["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File"]
RAVEN_HEADER = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                "Common Name", "Species Code", "Confidence", "Begin Path", "File Offset (s)"]
EXTRA_HEADER = ["Site", "Device", "Recorded at", "In range", "Auto-validated", "Expert label"]
RAVEN_SUFFIX = ".BirdNET.selection.table.txt"
DEFAULT_MIN_CONFIDENCE = 0.1  # BirdNET-Analyzer's --min_conf
FORMATS = ("csv", "raven", "parquet")  # what ``export_detections`` writes
SIG_FMIN, SIG_FMAX = 0, 15000  # BirdNET's band, as BirdNET-Analyzer fills the Raven frequency columns (``high_freq``)
NOCALL = "nocall"  # BirdNET-Analyzer's Common Name and Species Code of a table's placeholder row (no detections)


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


def audio_clips(store: Records, model_version: ModelVersion) -> tuple[list[ClipInfo], int]:
    """The audio clips of the model's pool by file and time, and how many of its clips are not audio (images:
    BirdNET-Analyzer's formats have no place for them)."""
    infos = store.clips(store.pool(model_version).clip_id)
    audio = [i for i in infos if i.modality == "audio"]
    audio.sort(key=lambda i: (i.path, i.start_s))
    return audio, len(infos) - len(audio)


def detections(store: Store, model_version: Optional[ModelVersion] = None, *,
               min_confidence: float = DEFAULT_MIN_CONFIDENCE, range_filter: bool = False,
               chunk: int = 4096, clips: Optional[Sequence[ClipInfo]] = None) -> Iterator[Detection]:
    """Every (window, class) of the current recordings at or above ``min_confidence``, by file and time.

    ``range_filter`` drops detections of species the range model calls absent at the window's site-week, as
    BirdNET-Analyzer's location filter does (unknown site-weeks keep theirs); without it they are marked.
    ``clips``: the model's ``audio_clips`` when the caller has read them already."""
    from store.ranges import range_lookup

    if not 0.0 < float(min_confidence) <= 1.0:
        raise ValueError(f"min_confidence must be within (0, 1], got {min_confidence!r}")
    mv = model_version or store.current_model_version()
    if mv is None:
        raise ValueError("the store holds no scored clips: ingest audio first")
    infos = list(clips) if clips is not None else audio_clips(store, mv)[0]
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


def table_names(paths: Sequence[str]) -> dict[str, str]:
    """Each recording's Raven table name (before ``RAVEN_SUFFIX``), decided from all ``paths`` at once so that it
    never depends on which of them have detections: the file's stem, and for stems that clash (case aside, as
    some filesystems see them) the fewest folders above it that tell them apart (``s1_file01``, ``s2_file01``);
    then the extension, then a hash of the path."""
    levels: dict[str, list[str]] = {}
    for path in sorted(set(paths)):
        p = Path(path)
        folders = [f for f in p.parent.parts if f != p.anchor]
        names = [p.stem] + ["_".join(folders[-k:] + [p.stem]) for k in range(1, len(folders) + 1)]
        names.append(f"{names[-1]}_{p.suffix.lstrip('.')}" if p.suffix else names[-1])
        names.append(f"{names[-1]}_{hashlib.sha1(path.encode()).hexdigest()[:10]}")
        levels[path] = names
    depth = dict.fromkeys(levels, 0)
    while True:
        by_name: dict[str, list[str]] = defaultdict(list)
        for path, names in levels.items():
            by_name[names[depth[path]].casefold()].append(path)
        clashes = [path for group in by_name.values() if len(group) > 1 for path in group]
        if not clashes:
            return {path: names[depth[path]] for path, names in levels.items()}
        deeper = [path for path in clashes if depth[path] + 1 < len(levels[path])]
        if not deeper:
            raise RuntimeError(f"no distinct Raven table names for {sorted(clashes)}")
        for path in deeper:
            depth[path] += 1


def _earlier_tables(folder: Path) -> list[Path]:
    """The Raven tables an earlier export left in ``folder`` (our header tells them); other Raven tables there
    are refused: an export never mixes with, nor overwrites, tables it did not write."""
    if not folder.is_dir():
        return []
    ours, others = [], []
    for p in sorted(folder.glob(f"*{RAVEN_SUFFIX}")):
        if p.is_file():
            with open(p, encoding="utf-8", errors="replace", newline="") as fh:
                header = fh.readline().rstrip("\r\n").split("\t")
            (ours if header == RAVEN_HEADER + EXTRA_HEADER else others).append(p)
    if others:
        raise FinetuneError(f"--out {folder} already holds {len(others)} Raven selection table(s) `workbench export` "
                            f"did not write ({others[0].name}{', ...' if len(others) > 1 else ''}: "
                            "BirdNET-Analyzer's, or edited in Raven): give a new or empty folder, or move them away")
    return ours


def high_freq(sample_rate: Optional[int]) -> int:
    """A Raven row's High Freq as BirdNET-Analyzer writes it: the file's Nyquist frequency, at most BirdNET's
    15 kHz (15 kHz where the rate is unknown), so a 16 kHz recording's box does not reach above its sound."""
    return SIG_FMAX if not sample_rate else int(min(sample_rate / 2, SIG_FMAX))


def write_raven_tables(found: Iterator[Detection], folder: Path | str, recordings: Sequence[ClipInfo]
                       ) -> tuple[list[tuple[Path, int]], list[Path]]:
    """One Raven selection table per recording (``--rtype table``), one without detections holding
    BirdNET-Analyzer's ``nocall`` row; ``found`` by file and time, ``recordings`` one clip of each recording in
    the same order. Tables an earlier export left for recordings not among these are removed afterwards.
    Returns each table written with its detections, and the tables removed."""
    folder = Path(folder)
    earlier = _earlier_tables(folder)
    names = table_names([r.path for r in recordings])
    groups = itertools.groupby(found, key=lambda d: d.path)
    pending = next(groups, None)
    out = []
    for rec in recordings:
        rows: list[Detection] = []
        if pending is not None and pending[0] == rec.path:
            rows = list(pending[1])
            pending = next(groups, None)

        def write(fh, rec=rec, rows=rows) -> None:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n")
            w.writerow(RAVEN_HEADER + EXTRA_HEADER)
            high = high_freq(rec.sample_rate)
            for n, d in enumerate(rows, start=1):
                scientific, common = d.names
                w.writerow([n, "Spectrogram 1", 1, f"{d.start_s:.1f}", f"{d.end_s:.1f}", SIG_FMIN, high, common,
                            scientific, f"{d.confidence:.4f}", d.path, f"{d.start_s:.1f}"] + d.extra())
            if not rows:  # as BirdNET-Analyzer writes a file without detections (its combiners skip the row)
                when = rec.start_time.isoformat(timespec="seconds") if rec.start_time else ""
                w.writerow([1, "Spectrogram 1", 1, 0, 3, SIG_FMIN, high, NOCALL, NOCALL, "1.0", rec.path, 0,
                            rec.site or "", rec.device or "", when, "", "", ""])

        out.append((write_atomically(folder / f"{names[rec.path]}{RAVEN_SUFFIX}", write, newline=""), len(rows)))
    if pending is not None:
        raise RuntimeError(f"a detection of {pending[0]}, which is not among the recordings or not in their order")
    written = {p.name.casefold() for p, _ in out}
    removed = [p for p in earlier if p.name.casefold() not in written]
    for p in removed:
        p.unlink(missing_ok=True)
    return out, removed


# ------------------------------------------------------------------------------------ the service
def named_model_version(store: Records, name: str) -> ModelVersion:
    """The model version called ``name``; one the store does not hold is a ``FinetuneError`` saying where to look."""
    try:
        return store.model_version(name)
    except StoreError as e:
        raise FinetuneError(f"--model-version {name}: no such model version in this workspace (`workbench status` "
                            "lists them)") from e


#: what keeps an export from the place ``--out`` names; any other OSError is a bug and keeps its traceback
UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EEXIST,
              errno.EISDIR, errno.ENAMETOOLONG}


def _at(filename, out: Path) -> bool:
    """Whether an error's file is ``out``, a folder above it, or a file beside or inside it (a temporary one)."""
    if filename is None:  # a write to the open file
        return True
    f, out = Path(os.path.abspath(os.fsdecode(filename))), Path(os.path.abspath(out))
    return f == out or f in out.parents or out in f.parents or f.parent == out.parent


@contextmanager
def writing_out(out: Path | str) -> Iterator[None]:
    """Write what ``--out`` names: a place that cannot take it (read-only, not permitted, full, a file in the
    way) is a one-line ``FinetuneError`` naming the flag and the path, as the user gave them, not a traceback."""
    try:
        yield
    except OSError as e:
        if e.errno not in UNWRITABLE or not _at(e.filename, Path(out)):
            raise
        todo = ("free some space or give --out another disk" if e.errno in (errno.ENOSPC, errno.EDQUOT)
                else "give --out a place you can write to")
        raise FinetuneError(f"cannot write --out {out}: {(e.strerror or str(e)).lower()}; {todo}") from e


@dataclass(frozen=True)
class DetectionExport:
    """What ``export_detections`` wrote: whose detections, from which confidence, each file with its detections,
    and the Raven tables of an earlier export it removed (their recordings are no longer exported)."""

    model: ModelVersion
    format: str
    min_confidence: float
    files: list[tuple[Path, int]]
    removed: tuple[Path, ...] = ()

    @property
    def detections(self) -> int:
        return sum(n for _, n in self.files)

    @property
    def without_detections(self) -> int:
        """Files holding no detection (Raven tables of recordings with none: their ``nocall`` row)."""
        return sum(1 for _, n in self.files if not n)


def export_detections(store: Store, out: Path | str, *, format: str = "csv", model_version: Optional[str] = None,
                      min_confidence: float = DEFAULT_MIN_CONFIDENCE, range_filter: bool = False) -> DetectionExport:
    """The detections of ``model_version`` (a name; default: the current model) written in ``format``:
    ``csv`` (one BirdNET-Analyzer combined table; ``out`` a .csv file, or a folder to hold
    ``BirdNET_CombinedTable.csv``), ``parquet`` (the same rows typed; a .parquet file or a folder to hold
    ``detections.parquet``) or ``raven`` (one selection table per recording in the folder ``out``, replacing
    the tables an earlier export left there)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    mv = named_model_version(store, model_version) if model_version else store.current_model_version()
    if mv is None:
        raise FinetuneError("the workspace holds no scored clips yet: run `workbench ingest PATH` first")
    clips, others = audio_clips(store, mv)
    if others and not clips:  # never an empty file said to hold "0 detection(s)"
        audio = any(r.modality == "audio" for r in store.recordings(status="done"))
        raise FinetuneError(f"detection exports (BirdNET-Analyzer's CSV, Raven tables, Parquet) are of audio: model "
                            f"{mv.name} scores {others} image clip(s) and "
                            + ("no audio: name an audio model with --model-version (`workbench status` lists them)"
                               if audio else "this workspace holds no audio"))
    found = detections(store, mv, min_confidence=min_confidence, range_filter=range_filter, clips=clips)
    out = Path(out)
    removed: list[Path] = []
    with writing_out(out):
        if format == "csv":
            files = [write_birdnet_csv(found, out if out.suffix else out / "BirdNET_CombinedTable.csv")]
        elif format == "parquet":
            files = [write_parquet(found, out if out.suffix else out / "detections.parquet")]
        else:
            if out.exists() and not out.is_dir():
                raise FinetuneError(f"--out {out} is a file: Raven tables go into a folder, one table per recording")
            recordings = [next(group) for _, group in itertools.groupby(clips, key=lambda c: c.path)]
            files, removed = write_raven_tables(found, out, recordings)
    return DetectionExport(model=mv, format=format, min_confidence=float(min_confidence), files=files,
                           removed=tuple(removed))
