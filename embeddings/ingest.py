"""Recordings in, scored and embedded windows out: the first step of the workbench.

Each file is identified by the SHA-256 of its content, so ingesting the same file twice (or a
copy of it under another name) adds nothing. A file's windows reach the store in batches, each
one transaction, so an ingest killed half-way resumes where the last committed batch ended and
never stores a window twice. A file that cannot be read is recorded as failed, named in the
report, and the run goes on.

Work is split over threads so both cores stay busy: a reader thread hashes, decodes and
resamples files ahead (through a bounded queue), the model runs on ``workers`` threads (one LiteRT
interpreter each; invoke releases the GIL; ``embeddings.model_threads``), and the calling thread
writes one batch to the store while the model threads infer the next. The store is only written
from the calling thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from embeddings.files import find_files, unreadable_folder
from embeddings.audio import AUDIO_EXTENSIONS, AudioInfo, AudioReadError, DecodeStats, iter_windows, probe
from embeddings.birdnet import BirdNET, EmbeddingModel
from embeddings import resample as resampling
from embeddings.known_files import FileState, KnownFiles, stat_and_hash
from embeddings.metadata import RecordingMetadata, Sidecar, recording_metadata
from embeddings.model_threads import Inference, ModelThreads
from store import LockName, ModelKind, Recording, RecordingStatus, Store
from store.sources import file_sha256  # noqa: F401  (re-exported: tests and callers hash with it)

log = logging.getLogger(__name__)

#: progress(files_done, files_total, windows_done, current_path)
ProgressCallback = Callable[[int, int, int, Optional[str]], None]

@dataclass
class IngestReport:
    """What one ingest run did.

    ``audio_seconds`` counts the audio of the windows this run added; ``warnings`` lists (path, message)
    for files ingested with a problem, such as a truncated file whose readable part was kept;
    ``truncated`` names the files cut short and ``nonfinite`` counts, per file, the NaN or infinite
    samples replaced by silence; ``replaced`` names files whose content changed since an earlier ingest
    (the new content is a new recording; the old one's clips left the pool); ``duplicates`` lists
    (path, other path) for files holding the same bytes as another recording at another site or time
    (each stored as a recording of its own: a recorder writing identical files is worth a look; its windows
    are copied from the other's clips, counted in ``windows_copied``, rather than embedded again);
    ``crops_added_to`` names image frames stored before whose detector crops this run added.
    """

    files_new: int = 0
    files_skipped: int = 0
    files_failed: list[tuple[str, str]] = field(default_factory=list)
    windows_added: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    warnings: list[tuple[str, str]] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    nonfinite: dict[str, int] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    crops_added_to: list[str] = field(default_factory=list)
    windows_copied: int = 0  # windows of duplicates copied from their twin's clips instead of embedded again
    range_priors_added: int = 0  # site-weeks whose range priors this run computed (BirdNET's range model)

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio ingested per second of wall time."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def add_decode_problems(self, path: str | os.PathLike, stats: DecodeStats) -> None:
        """Log and count what decoding ``path`` found (notes, a truncated file, non-finite samples)."""
        for msg in stats.notes:
            log.warning("%s", msg)
            self.warnings.append((str(path), msg))
        if stats.truncated:
            self.truncated.append(str(path))
        if stats.nonfinite:
            self.nonfinite[str(path)] = stats.nonfinite


def find_audio_files(paths: str | os.PathLike | Iterable[str | os.PathLike],
                     empty_folders: Optional[list[Path]] = None,
                     unreadable: Optional[list[tuple[Path, str]]] = None) -> list[Path]:
    """Audio files under ``paths`` (files as given; folders searched recursively), sorted, without repeats.

    Folders contribute files ending in .wav .flac .mp3 .ogg (any case); a file named explicitly is
    taken whatever its ending, so a wrong file is reported rather than silently ignored. A folder
    given that holds no audio file (a typo, a folder named ``x.wav``) is appended to ``empty_folders``.
    """
    return find_files(paths, AUDIO_EXTENSIONS, "audio files", empty_folders, unreadable)


def _empty_file_error(path: Path) -> AudioReadError:
    try:
        probe(path)
    except AudioReadError as e:
        return e
    return AudioReadError(path, "is empty (0 bytes)")


# ---------------------------------------------------------------------------- reader thread
@dataclass
class _Job:
    """One file on its way through the pipeline."""

    path: Path
    content_hash: str
    info: AudioInfo
    meta: RecordingMetadata
    existing: Optional[Recording]
    resume_s: float
    size: int = 0
    mtime_ns: int = 0
    recording_id: Optional[int] = None
    stats: DecodeStats = field(default_factory=DecodeStats)
    outcome: Optional[str] = None  # set by the main thread: DONE, or the reason it failed


# Messages from the reader to the main thread, in file order:
#   ("skip", path, reason)            already ingested, or same content as an earlier file of this run
#   ("duplicate", path, other)        the same bytes as ``other`` at another site or time: ingested as its own
#   ("copy", job, source)             ... whose windows are those of ``source`` (a _Job of this run, or a stored
#                                     Recording): copied, not decoded and embedded again
#   ("bad", path, hash|None, rec|None, reason)   unreadable before any window
#   ("start", job)                    a file to ingest from job.resume_s
#   ("window", job, start, end, samples)
#   ("end", job) / ("abort", job, reason)        file finished / failed after its start
#   ("crash", exception)              a bug in the reader: re-raised in the main thread
#   ("eof",)


class _Reader(threading.Thread):
    def __init__(self, files: Sequence[Path], store: Store, sidecar: Optional[Sidecar], maxsize: int,
                 window_s: float, sample_rate: int, resample: resampling.Resample = resampling.DEFAULT):
        super().__init__(name="ingest-reader", daemon=True)
        self.resample = resample
        self.files = files
        self.store = store
        self.sidecar = sidecar
        self.window_s = window_s
        self.sample_rate = sample_rate
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.stop = threading.Event()
        self.space: Optional[str] = None  # the embedding space a stored twin's clips must be in to be copied
        self._fresh: dict[str, _Job] = {}  # content -> this run's job that reads it from its start

    def put(self, msg: tuple) -> bool:
        """Hand a message to the main thread; False once the main thread has asked to stop."""
        while not self.stop.is_set():
            try:
                self.queue.put(msg, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # a bug, not a bad file: hand it over so the main thread raises it
            self.put(("crash", e))
        self.put(("eof",))

    def _run(self) -> None:
        known = KnownFiles(self.store)
        for path in self.files:
            if self.stop.is_set():
                return
            hashed = stat_and_hash(path, lambda p: str(_empty_file_error(p)))
            if hashed.problem is not None or hashed.digest is None or hashed.stat is None:
                if not self.put(("bad", path, None, None, hashed.problem or f"{path}: cannot be read")):
                    return
                continue
            st, digest = hashed.stat, hashed.digest
            meta = recording_metadata(path, self.sidecar)
            decision = known.decide(path, digest, st, meta)
            if decision.skip:
                self.put(("skip", path, decision.reason))
                continue
            if decision.state == FileState.DUPLICATE:
                self.put(("duplicate", path, decision.reason))
            rec = decision.existing
            try:
                info = probe(path)
            except AudioReadError as e:
                self.put(("bad", path, digest, rec, str(e)))
                continue
            resume = decision.resume_s
            job = _Job(path, digest, info, meta, rec, resume, size=st.st_size, mtime_ns=st.st_mtime_ns)
            twin = self._twin(job) if decision.state == FileState.DUPLICATE and rec is None else None
            if twin is not None:
                if not self.put(("copy", job, twin)):
                    return
                continue
            if resume == 0:
                self._fresh.setdefault(digest, job)
            if not self.put(("start", job)):
                return
            try:
                for start, end, samples in iter_windows(path, start_s=resume, window_s=self.window_s,
                                                        target_sr=self.sample_rate, stats=job.stats,
                                                        on_warning=lambda _msg: None, resample=self.resample):
                    if not self.put(("window", job, start, end, samples)):
                        return
            except (AudioReadError, OSError) as e:
                reason = str(e) if isinstance(e, AudioReadError) else f"{path}: cannot be read ({e})"
                self.put(("abort", job, reason))
                continue
            self.put(("end", job))


    def _twin(self, job: _Job) -> Optional[_Job | Recording]:
        """Where the windows of a file holding another recording's bytes can be copied from: this run's file of
        that content, or a stored recording done without decode notes whose clips are all in the model's space
        (one with notes is read again, so this file's report names its own problems)."""
        if job.content_hash in self._fresh:
            return self._fresh[job.content_hash]
        view = self.store.embeddings(self.space) if self.space else None
        for r in self.store.find_recordings(job.content_hash):
            if r.status != RecordingStatus.DONE or r.error or r.modality != "audio" or view is None:
                continue
            ids, _ = self.store.recording_clips(r.id)
            if ids.size and bool(view.contains(ids).all()):
                return r
        return None


# ---------------------------------------------------------------------------- main thread
class _Ingester:
    """State of one run on the calling thread: inference, store writes, report, progress."""

    def __init__(self, store: Store, model: Any, files_total: int, batch_windows: int, workers: int,
                 progress: Optional[ProgressCallback], resample: Optional[str] = None):
        self.store = store
        self.model = model
        self.files_total = files_total
        self.batch_windows = batch_windows
        self.progress = progress
        self.report = IngestReport()
        self.files_done = 0
        self.model_version = store.ensure_model_version(model.name, ModelKind.EMBEDDING, model.name, model.dim,
                                                        list(model.labels), params=resampling.params(resample))
        self.resample = resampling.recorded(self.model_version, resample)  # one embedding space, one resampler
        layer = getattr(model, "output_layer", None)
        if callable(layer):  # probability rows are then recomputed from embeddings, not stored
            store.set_output_layer(self.model_version, *layer())
        self.threads = ModelThreads(model, workers)

    def close(self) -> None:
        self.threads.close()

    def _progress(self, path: Optional[Path]) -> None:
        if self.progress is not None:
            self.progress(self.files_done, self.files_total, self.report.windows_added,
                          None if path is None else str(path))

    def dispatch(self, segment: list[tuple]) -> tuple[list[tuple], Optional[Inference]]:
        """Queue ``segment``'s windows for the model threads; ``apply`` it once the next one is dispatched."""
        windows = [m[4] for m in segment if m[0] == "window"]
        return segment, (self.threads.submit(windows) if windows else None)

    def apply(self, segment: list[tuple], inference: Optional[Inference]) -> None:
        """Wait for ``segment``'s model outputs, then apply its messages in order (store writes, report)."""
        probs, embs = inference.result() if inference is not None else (None, None)
        pending: dict[int, list[tuple[float, float, int]]] = {}
        jobs: dict[int, _Job] = {}
        w = 0
        for msg in segment:
            kind = msg[0]
            if kind == "window":
                job = msg[1]
                jobs[id(job)] = job
                pending.setdefault(id(job), []).append((msg[2], msg[3], w))
                w += 1
            elif kind == "start":
                self.start(msg[1])
            elif kind == "end":
                job = msg[1]
                self.flush(job, pending.pop(id(job), []), probs, embs)
                self.finish(job)
            elif kind == "abort":
                job = msg[1]
                pending.pop(id(job), None)  # windows of a file that then failed are not kept
                job.outcome = msg[2]
                self.fail(job.path, job.content_hash, None, msg[2], job.recording_id)
            elif kind == "bad":
                self.fail(msg[1], msg[2], msg[3], msg[4], None)
            elif kind == "copy":
                self.copy(msg[1], msg[2])
            elif kind == "duplicate":
                log.info("%s holds the same bytes as %s (another site, device or time): stored as a recording of "
                         "its own", msg[1], msg[2])
                self.report.duplicates.append((str(msg[1]), msg[2]))
            elif kind == "skip":
                self.report.files_skipped += 1
                self.files_done += 1
                log.info("skipped %s: %s", msg[1], msg[2])
                self._progress(msg[1])
        for key, rows in pending.items():  # files still going on: commit what this segment read of them
            self.flush(jobs[key], rows, probs, embs)

    def start(self, job: _Job) -> None:
        fields = dict(path=str(job.path), site=job.meta.site, device=job.meta.device,
                      start_time=job.meta.start_time, latitude=job.meta.latitude, longitude=job.meta.longitude,
                      country=job.meta.country, admin1_region=job.meta.admin1_region,
                      sample_rate=job.info.sample_rate, channels=job.info.channels,
                      duration_s=job.info.duration_s, modality="audio", file_size=job.size,
                      file_mtime_ns=job.mtime_ns)
        if job.existing is None:
            rec = self.store.add_recording(Recording(content_hash=job.content_hash, status=RecordingStatus.PENDING,
                                                     **fields))
        else:
            rec = self.store.update_recording(job.existing.id, status=RecordingStatus.PENDING, error=None, **fields)
            if job.resume_s > 0:
                log.info("resuming %s at %.1f s", job.path, job.resume_s)
        job.recording_id = rec.id

    def flush(self, job: _Job, rows: list[tuple[float, float, int]], probs, embs) -> None:
        """Store a file's windows (start, end, row of the model's outputs)."""
        idx = [r[2] for r in rows]
        self._store_windows(job, [(r[0], r[1]) for r in rows], lambda a, b: (probs[idx[a:b]], embs[idx[a:b]]))

    def _store_windows(self, job: _Job, spans: Sequence[tuple[float, float]],
                       outputs: Callable[[int, int], tuple[np.ndarray, np.ndarray]]) -> None:
        """Store windows ``spans`` of ``job``'s recording, ``batch_windows`` per transaction; ``outputs(a, b)``
        gives the probabilities and embeddings of windows a..b (read per transaction, never all at once)."""
        for i in range(0, len(spans), self.batch_windows):
            chunk = spans[i:i + self.batch_windows]
            probs, embs = outputs(i, i + len(chunk))
            ids = self.store.add_clip_batch(job.recording_id, chunk, self.model_version, probs, embs)
            self.report.windows_added += len(ids)
            # Spans already stored are skipped by the store; count the audio of the new ones only.
            self.report.audio_seconds += float(sum(e - s for s, e in chunk)) * len(ids) / len(chunk)
            self._progress(job.path)

    def copy(self, job: _Job, source: _Job | Recording) -> None:
        """Store ``job`` (the same bytes as ``source``, at another site or time) as a recording of its own whose
        clips are copies of the source's: the same windows, embeddings and probabilities, no model run."""
        if isinstance(source, _Job) and source.outcome != RecordingStatus.DONE:
            other = source.outcome or f"{source.path} was not ingested"
            self.fail(job.path, job.content_hash, None, other.replace(str(source.path), str(job.path)), None)
            return
        self.start(job)
        source_id = source.recording_id if isinstance(source, _Job) else source.id
        ids, spans = self.store.recording_clips(int(source_id))
        mv = self.model_version
        embeddings, probabilities = self.store.embeddings(mv.embedding_space), self.store.probabilities(mv)
        self._store_windows(job, [(float(a), float(b)) for a, b in spans],
                            lambda a, b: (probabilities.take(ids[a:b]), embeddings.take(ids[a:b])))
        if isinstance(source, _Job):
            s = source.stats
            job.stats = DecodeStats(s.sample_rate, s.header_frames, s.frames, s.nonfinite, s.truncated,
                                    [n.replace(str(source.path), str(job.path)) for n in s.notes])
        else:
            job.stats = DecodeStats(job.info.sample_rate, frames=int(source.frames or 0))
        self.report.windows_copied += int(ids.size)
        self.finish(job)

    def finish(self, job: _Job) -> None:
        stats = job.stats
        self.report.add_decode_problems(job.path, stats)
        # The decoded length, not the header's (an MP3 header only estimates it), and the warnings
        # (e.g. "truncated at 5.0 s") where the UI shows errors.
        self.store.update_recording(job.recording_id, status=RecordingStatus.DONE, error="; ".join(stats.notes) or None,
                                    frames=stats.frames, duration_s=stats.duration_s)
        job.outcome = RecordingStatus.DONE
        if self.store.replace_recordings(str(job.path), job.recording_id):
            log.warning("%s changed since it was last ingested: its new content is a new recording; the old "
                        "one's clips left the pool (their labels stay)", job.path)
            self.report.replaced.append(str(job.path))
        self.report.files_new += 1
        self.files_done += 1
        self._progress(job.path)

    def fail(self, path: Path, content_hash: Optional[str], existing: Optional[Recording], reason: str,
             recording_id: Optional[int]) -> None:
        log.warning("not ingested: %s", reason)
        if content_hash is not None:
            if recording_id is None and existing is not None:
                recording_id = existing.id
            if recording_id is None:
                self.store.add_recording(Recording(path=str(path), content_hash=content_hash, modality="audio",
                                                   status=RecordingStatus.FAILED, error=reason))
            else:
                self.store.update_recording(recording_id, path=str(path), status=RecordingStatus.FAILED, error=reason)
        self.report.files_failed.append((str(path), reason))
        self.files_done += 1
        self._progress(path)


def ingest(paths: str | os.PathLike | Iterable[str | os.PathLike], store: Store, *,
           model: Optional[EmbeddingModel] = None, metadata_csv: str | os.PathLike | None = None,
           batch_windows: int = 64, progress: Optional[ProgressCallback] = None,
           workers: Optional[int] = None, resample: Optional[str] = None) -> IngestReport:
    """Ingest audio files and folders into ``store``: windows, probabilities, embeddings, scores.

    ``model`` defaults to BirdNET V2.4. ``metadata_csv`` is a sidecar CSV (file, site, device,
    start_time, latitude, longitude) that overrides what file and folder names say.
    ``batch_windows`` windows make one store transaction. ``progress(files_done, files_total,
    windows_done, current_path)`` is called after every batch and every file; an exception it raises
    stops the run (committed batches stay; a rerun resumes). ``workers`` threads run the model
    (default: 2 on a machine with at least 2 cores); each holds its own BirdNET interpreter (about
    140 MB, and about a second to warm up), so pass the same ``model`` to repeated calls. ``resample``
    ("analyzer", BirdNET-Analyzer's, or "soxr-hq"; see ``embeddings.resample``) is recorded with the store's
    embedding model version when it is made; None takes the recorded one (else "analyzer"), and another one
    than the recorded is refused.

    Unreadable files are reported in ``files_failed`` and stored as failed recordings with their
    reason; an empty (0-byte) file is only reported, since all empty files share one content hash.
    Two ingests into one store never run at once: the second waits for the store's ``ingest`` lock
    (and says so through the store's ``on_wait``), then finds the first one's files already stored.
    """
    started = time.perf_counter()
    if not isinstance(batch_windows, int) or batch_windows < 1:
        raise ValueError(f"batch_windows must be a positive int, got {batch_windows!r}")
    if resample is not None:
        resample = resampling.parse(resample)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    empty_folders: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    files = find_audio_files(paths, empty_folders, unreadable)
    sidecar = Sidecar(metadata_csv).read() if metadata_csv is not None else None
    if model is None:
        model = BirdNET()
    if hasattr(model, "load"):
        model.load()  # fail now, not after the first file, when the model files are missing
    with store.lock(LockName.INGEST):  # a second ingest of the same store waits: no file is ingested twice
        runner = _Ingester(store, model, len(files), batch_windows, workers, progress, resample)
        window_s = float(getattr(model, "window_s", 3.0))
        sample_rate = int(getattr(model, "sample_rate", 48000))
        reader = _Reader(files, store, sidecar, maxsize=batch_windows, window_s=window_s, sample_rate=sample_rate,
                         resample=runner.resample)
        reader.space = runner.model_version.embedding_space
        reader.start()
        # Segment k is stored while segment k + 1 is being inferred: the model threads never wait for the store.
        in_flight: deque[tuple[list[tuple], Optional[Inference]]] = deque()
        try:
            segment: list[tuple] = []
            n_windows = 0
            while True:
                msg = reader.queue.get()
                if msg[0] == "crash":
                    raise msg[1]
                if msg[0] == "eof":
                    break
                segment.append(msg)
                n_windows += msg[0] == "window"
                if n_windows >= batch_windows or (msg[0] != "window" and reader.queue.empty() and n_windows == 0):
                    in_flight.append(runner.dispatch(segment))
                    segment, n_windows = [], 0
                    if len(in_flight) > 1:
                        runner.apply(*in_flight.popleft())
            if segment:
                in_flight.append(runner.dispatch(segment))
            while in_flight:
                runner.apply(*in_flight.popleft())
        finally:
            for _, inference in in_flight:
                if inference is not None:
                    inference.cancel()
            reader.stop.set()
            while reader.is_alive():
                try:
                    reader.queue.get(timeout=0.1)
                except queue.Empty:
                    pass
            reader.join()
            runner.close()
    report = runner.report
    report.files_failed += [unreadable_folder(folder, reason) for folder, reason in unreadable]
    for folder in empty_folders:
        report.files_failed.append((str(folder), f"{folder} is a folder holding no audio files "
                                                  f"({', '.join(AUDIO_EXTENSIONS)}): give the files or the folder "
                                                  f"that holds them"))
    if isinstance(model, BirdNET) and report.files_new:
        add_range_priors(store, report)
    report.wall_seconds = time.perf_counter() - started
    return report


def add_range_priors(store: Store, report: IngestReport) -> None:
    """Range priors for the site-weeks new recordings brought (~1 ms each); a missing range model is a
    warning of the run, never a failed ingest (``workbench range`` computes them later)."""
    from embeddings.range_priors import compute_range_priors

    try:
        report.range_priors_added = compute_range_priors(store).computed
    except (FileNotFoundError, ValueError) as e:
        report.warnings.append(("range priors", f"not computed: {e}"))
