"""What ingest does with a file it has hashed: one decision for audio, image and cluster ingest.

A recording is content at a place and time. The same bytes at the same path, or at another path with
the same site, device and start time (a backup, a renamed copy), are the recording already stored; the
same bytes at another site or time (a recorder writing identical silence at two sites, a copied test
file) are a recording of their own, reported as a duplicate. A stored file that moved is followed, a
file back to content ingested before revives that recording, an interrupted one resumes and a failed
one is read again. The store changes these decisions imply (a moved path, a revived recording) are
made here, so every ingest makes them the same way.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Optional, Union

from embeddings.metadata import RecordingMetadata
from store import Recording, RecordingStatus, Store
from store.sources import file_sha256


class FileState(str, Enum):
    """What a hashed file is to the store."""

    NEW = "new"                  # content never stored: ingest it
    DUPLICATE = "duplicate"      # bytes stored as a recording at another site, device or time: ingest it as its own
    STORED = "stored"            # this recording is stored (here, or as a copy with the same site, device and time)
    MOVED = "moved"              # stored; its file moved here, and the recording followed it
    REVERTED = "reverted"        # the file went back to content ingested before: that recording is current again
    INTERRUPTED = "interrupted"  # a pending recording of a killed run: resume after its last committed window
    FAILED = "failed"            # failed before: read again from its start, so whatever failed is checked again


#: States whose file is read and embedded (the others are skipped).
TO_INGEST = frozenset({FileState.NEW, FileState.DUPLICATE, FileState.INTERRUPTED, FileState.FAILED})


@dataclass(frozen=True)
class KnownFile:
    """The decision for one file: ``existing`` is the record to resume or retry, ``reason`` what a skip says
    (for a duplicate: the file whose bytes it shares), ``resume_s`` where an interrupted recording goes on."""

    state: FileState
    existing: Optional[Recording] = None
    reason: str = ""
    resume_s: float = 0.0

    @property
    def skip(self) -> bool:
        return self.state not in TO_INGEST


@dataclass(frozen=True)
class Hashed:
    """A file's stat and content hash, or why it cannot be read (``problem``, naming the file)."""

    stat: Optional[os.stat_result]
    digest: Optional[str]
    problem: Optional[str] = None


def stat_and_hash(path: Path, empty: Callable[[Path], str]) -> Hashed:
    """Stat and hash ``path``; ``empty(path)`` says why a 0-byte file is refused (all share one hash)."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block the reader; a device is no recording
            return Hashed(st, None, f"{path}: is {_kind(st.st_mode)}, not a regular file: give the file itself")
        if st.st_size == 0:
            return Hashed(st, None, empty(path))
        return Hashed(st, file_sha256(path))
    except OSError as e:
        return Hashed(None, None, f"{path}: cannot be read ({e.strerror or e})")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a plain file"


Identity = tuple  # (site, device, start_time): where and when a content was recorded
Meta = Union[RecordingMetadata, Callable[[], RecordingMetadata]]


def _identity(meta: RecordingMetadata | Recording) -> Identity:
    return meta.site, meta.device, meta.start_time


def _lazy_identity(meta: Meta) -> Callable[[], Identity]:
    """The identity of ``meta``, computed once and only when asked for (an image's EXIF is read then)."""
    cached: list[Identity] = []

    def place() -> Identity:
        if not cached:
            cached.append(_identity(meta() if callable(meta) else meta))
        return cached[0]

    return place


class KnownFiles:
    """Decides for each file of one run; remembers the run's files, whose records may not be stored yet.

    ``in_run=False`` asks the store only (worker threads of image ingest; the calling thread then checks
    the run's files with ``earlier``, in file order).
    """

    def __init__(self, store: Store, in_run: bool = True):
        self.store = store
        self.in_run = in_run
        self._run: dict[str, list[tuple[Path, Identity]]] = {}

    def decide(self, path: Path, digest: str, st: os.stat_result, meta: Meta) -> KnownFile:
        """The decision for ``path`` (content ``digest``, stat ``st``); ``meta`` (or a function giving it,
        called only when another file holds the same bytes) says where and when it was recorded."""
        place = _lazy_identity(meta)
        earlier = self._earlier(path, digest, place) if self.in_run else None
        if earlier is not None and earlier.skip:
            return earlier
        decision = self._against_store(path, digest, st, place)
        return earlier if decision.state == FileState.NEW and earlier is not None else decision

    def earlier(self, path: Path, digest: str, meta: Meta) -> Optional[KnownFile]:
        """Against this run's earlier files only: a copy with the same site, device and time (STORED), the same
        bytes elsewhere (DUPLICATE), or None; ``path`` is remembered for the files after it."""
        return self._earlier(path, digest, _lazy_identity(meta))

    def _earlier(self, path: Path, digest: str, place: Callable[[], Identity]) -> Optional[KnownFile]:
        files = self._run.setdefault(digest, [])
        for other, ident in files:
            if ident == place():
                return KnownFile(FileState.STORED, reason=f"same content as {other}")
        files.append((path, place()))
        return KnownFile(FileState.DUPLICATE, reason=str(files[0][0])) if len(files) > 1 else None

    def _against_store(self, path: Path, digest: str, st: os.stat_result, place: Callable[[], Identity]) -> KnownFile:
        records = self.store.find_recordings(digest)
        if not records:
            return KnownFile(FileState.NEW)
        here = str(path)
        rec = next((r for r in records if r.path == here), None)
        if rec is None:
            same_place = [r for r in records if _identity(r) == place()]
            copy = next((r for r in same_place if r.status in (RecordingStatus.DONE, RecordingStatus.REPLACED)
                         and os.path.exists(r.path)), None)
            if copy is not None:
                return KnownFile(FileState.STORED, copy, f"already ingested as {copy.path} (same site, device and "
                                                         f"start time)")
            # a moved file keeps its name, so its time: its site may change with its folder (inbox/ -> archive/),
            # but the same bytes at another time whose first file was deleted are another recording
            gone = [r for r in same_place + records if r.start_time == place()[2] and not os.path.exists(r.path)]
            unfinished = [r for r in same_place if r.status in (RecordingStatus.PENDING, RecordingStatus.FAILED)]
            rec = (gone or unfinished or [None])[0]
            if rec is None:
                return KnownFile(FileState.DUPLICATE, reason=records[0].path)
        store = self.store
        if rec.status == RecordingStatus.REPLACED and rec.path == here:
            store.update_recording(rec.id, status=RecordingStatus.DONE, replaced_by=None, error=None,
                                   file_size=st.st_size, file_mtime_ns=st.st_mtime_ns)
            store.replace_recordings(here, rec.id)
            return KnownFile(FileState.REVERTED, rec, f"its content went back to recording {rec.id}, ingested before")
        if rec.status in (RecordingStatus.DONE, RecordingStatus.REPLACED):
            if rec.path == here:
                return KnownFile(FileState.STORED, rec, f"already ingested as {rec.path}")
            # the same content, moved: the recording follows its file (clips are cut from here now)
            store.update_recording(rec.id, path=here, file_size=st.st_size, file_mtime_ns=st.st_mtime_ns)
            return KnownFile(FileState.MOVED, rec, f"already ingested; its file moved here from {rec.path}")
        if rec.status == RecordingStatus.PENDING:
            return KnownFile(FileState.INTERRUPTED, rec, resume_s=store.ingested_until(rec.id))
        return KnownFile(FileState.FAILED, rec)
