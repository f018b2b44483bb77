"""Cluster ingest on Ray: many machines decode and embed, one committer writes the store.

The same job as ``embeddings.ingest.ingest`` (same windows, same embeddings, same store records), spread
over a Ray cluster (started on Slurm, on Kubernetes with KubeRay, or by hand with ``ray start``):

1. **List** (driver, once): the files are found, hashed (SHA-256, a few threads) and looked up in the
   store under its ``ingest`` lock, exactly as single-machine ingest does: recordings already done are
   skipped (a moved file is followed, a file back to earlier content revives its recording), a
   ``pending`` recording (an interrupted run) resumes after its last committed window, a failed one is
   read again from its start.
2. **Embed** (workers): the files still to do go through Ray Data, one row per recording, into
   ``map_batches`` with an actor pool of ``EmbedFiles`` (``embeddings.cluster_worker``): each actor loads
   the model once, then per file decodes with ``embeddings.audio.iter_windows`` (the single-machine code,
   so the windows are the same bits), runs the model and writes ONE shard per recording to ``shard_dir``,
   a folder every node and the driver reach (``embeddings.cluster_shards``; written to a temporary name,
   then renamed: a shard exists whole or not at all). Only a small record per file comes back through
   Ray. A shard already in ``shard_dir`` for the same content, model and resume point (a killed driver's
   leftovers) is committed without recomputing it.
3. **Commit** (driver, one committer): shards are committed in file order, several recordings per
   transaction through the store's public bulk calls: ``add_recordings`` / ``update_recordings``
   (recordings ``pending`` with their header fields), ``add_clips`` (windows, probabilities,
   embeddings; at most ``commit_windows`` clips per transaction), ``update_recordings`` (``done`` with
   the decoded length and notes), ``replace_recordings`` (a changed file's old version leaves the pool);
   then the shards are deleted (``keep_shards`` keeps them). As in single-machine ingest, a model with an
   output layer hands it to the store first (``set_output_layer``), which then keeps embeddings, scores and
   top predictions and recomputes probability rows. Committing in file order gives recordings and clips
   the ids a single-machine ingest of the same files gives.

Why nothing is lost or doubled:

- a worker killed mid-file leaves no shard (the rename never happened): Ray restarts the actor
  (``max_restarts=-1``) and runs the files it held again on it (``max_task_retries=-1``; both Ray Data's
  defaults for actor pools); a node lost takes its actors with it, and they are made again on the nodes
  left (or on new ones an autoscaler adds);
- a killed driver leaves recordings either done, or ``pending`` with some windows committed, or not
  stored at all, and shards on disk: the rerun skips what is done, commits shards it finds (their
  windows already in the store are skipped: ``add_clips`` is idempotent on (recording, start)), and
  recomputes only what has no shard;
- two ingests of one store never run at once (the ``ingest`` lock, held from listing to the last commit).

Bad files are recorded as failed recordings with their reason, as in single-machine ingest, and the run
goes on; a file the workers cannot find (not on shared storage) or whose content changed after it was
listed is reported and not stored.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from embeddings.audio import AUDIO_EXTENSIONS, AudioInfo, AudioReadError, DecodeStats, probe
from embeddings.birdnet import BirdNET
from embeddings.cluster_shards import (Shard, ShardError, matches, model_folder, read_shard, read_shard_meta,
                                       remove_stale_temporaries, shard_path, working_path)
from embeddings import resample as resampling
from embeddings.files import unreadable_folder
from embeddings.ingest import IngestReport, ProgressCallback, add_range_priors, find_audio_files
from embeddings.known_files import FileState, KnownFiles, stat_and_hash
from embeddings.metadata import RecordingMetadata, Sidecar, recording_metadata
from store import LockName, ModelKind, Recording, RecordingStatus, Store

log = logging.getLogger(__name__)

#: ``address`` that starts a Ray of its own on this machine (a laptop) instead of joining a cluster.
LOCAL = "local"
#: Files handed to one worker at a time: the one it embeds and the next, so it does not wait for the scheduler
#: between files (113 short files, 2 nodes on 2 cores: 29.5 s with 1, 20.5 s with 2, 24 s with 4); more
#: would let short files queue behind long ones.
FILES_IN_FLIGHT = 2
#: Object store of a ``"local"`` Ray unless told otherwise (Ray's minimum is 75 MB).
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024


class ClusterError(RuntimeError):
    """The cluster cannot be used (Ray missing, no such cluster); the message says what to do."""


@dataclass
class ClusterIngestReport(IngestReport):
    """An ``IngestReport`` plus where the time went on the cluster.

    ``shards_computed`` recordings were embedded by workers in this run, ``shards_reused`` were committed
    from shards an earlier (killed) run left; ``nodes`` counts the files each Ray node embedded;
    ``list_seconds`` is the driver's listing and hashing, ``cluster_seconds`` connecting to Ray,
    ``startup_seconds`` the slowest worker's start (loading and warming up the model), ``commit_seconds``
    reading shards and writing the store, ``worker_seconds`` the workers' busy time summed over files
    (hash check, decode, model, shard write).
    """

    shards_computed: int = 0
    shards_reused: int = 0
    workers: int = 0
    nodes: dict[str, int] = field(default_factory=dict)
    list_seconds: float = 0.0
    startup_seconds: float = 0.0
    cluster_seconds: float = 0.0
    commit_seconds: float = 0.0
    worker_seconds: float = 0.0


# ---------------------------------------------------------------------------- listing
@dataclass
class _Entry:
    """One file of the run, in file order: skipped, bad (before any store record), or work."""

    index: int
    path: Path
    kind: str                                  # "skip" | "bad" | "work"
    reason: str = ""
    content_hash: Optional[str] = None
    existing: Optional[Recording] = None
    resume_s: float = 0.0
    size: int = 0
    mtime_ns: int = 0
    meta: Optional[RecordingMetadata] = None
    result: Optional[dict[str, Any]] = None    # the worker's record (or a reused shard's)
    duplicate_of: Optional[str] = None         # the same bytes are stored (or listed) for this file too
    twins: list["_Entry"] = field(default_factory=list)  # later files of this run with the same bytes: one shard
    shard_from_s: float = 0.0                  # where its shard starts (the earliest resume point of its twins)


def _empty_reason(path: Path) -> str:
    # Every empty file has the same hash, so it cannot get a store record of its own.
    try:
        probe(path)
    except AudioReadError as e:
        return str(e)
    return f"{path}: is empty (0 bytes)"


def _list(files: Sequence[Path], store: Store, sidecar: Optional[Sidecar], hash_threads: int) -> list[_Entry]:
    """What to do with each file; the store changes single-machine ingest makes while listing are made here."""
    with ThreadPoolExecutor(max_workers=hash_threads, thread_name_prefix="ingest-hash") as pool:
        hashed = list(pool.map(lambda p: stat_and_hash(p, _empty_reason), files))
    entries: list[_Entry] = []
    known = KnownFiles(store)
    for i, (path, h) in enumerate(zip(files, hashed)):
        if h.problem is not None or h.stat is None or h.digest is None:
            entries.append(_Entry(i, path, "bad", reason=h.problem or f"{path}: cannot be read"))
            continue
        meta = recording_metadata(path, sidecar)
        decision = known.decide(path, h.digest, h.stat, meta)
        if decision.skip:
            entries.append(_Entry(i, path, "skip", reason=decision.reason, content_hash=h.digest))
            continue
        entries.append(_Entry(i, path, "work", content_hash=h.digest, existing=decision.existing,
                              resume_s=decision.resume_s, size=h.stat.st_size, mtime_ns=h.stat.st_mtime_ns, meta=meta,
                              duplicate_of=decision.reason if decision.state == FileState.DUPLICATE else None))
    return entries


# ---------------------------------------------------------------------------- committing
class _Committer:
    """The one writer: commits finished files in file order, several per transaction."""

    def __init__(self, store: Store, model_version: Any, entries: list[_Entry], shard_dir: Path, model_name: str,
                 commit_windows: int, commit_interval_s: float, keep_shards: bool, report: ClusterIngestReport,
                 progress: Optional[ProgressCallback]):
        self.store = store
        self.mv = model_version
        self.entries = entries
        self.shard_dir = shard_dir
        self.model_name = model_name
        self.commit_windows = commit_windows
        self.commit_interval_s = commit_interval_s
        self.keep_shards = keep_shards
        self.report = report
        self.progress = progress
        self.next = 0                 # entries before this one are committed
        # the last entry of each content: a shard shared by twins (same bytes, other site) goes after it
        self.last_of = {e.content_hash: e.index for e in entries if e.kind == "work"}
        self.files_done = 0
        self.last_commit = time.perf_counter()

    def _progress(self, path: Optional[Path]) -> None:
        if self.progress is not None:
            self.progress(self.files_done, len(self.entries), self.report.windows_added,
                          None if path is None else str(path))

    def arrived(self, index: int, record: dict[str, Any], reused: bool = False) -> None:
        entry = self.entries[index]
        if entry.result is not None:  # a duplicate delivery (a retried task): the first one stands
            return
        entry.result = record
        for twin in entry.twins:
            twin.result = record
        if reused:
            return
        if record.get("node"):
            self.report.nodes[record["node"]] = self.report.nodes.get(record["node"], 0) + 1
        self.report.worker_seconds += float(record.get("seconds", 0.0))
        self.report.startup_seconds = max(self.report.startup_seconds, float(record.get("startup", 0.0)))
        if record.get("kind") == "shard":
            self.report.shards_computed += 1
        self._progress(entry.path)

    def commit_ready(self, final: bool) -> None:
        """Commit the finished files at the head of the file order, when enough of them wait (or ``final``)."""
        end, windows = self.next, 0
        while end < len(self.entries) and (self.entries[end].kind != "work" or self.entries[end].result is not None):
            windows += int(self.entries[end].result.get("windows", 0)) if self.entries[end].result else 0
            end += 1
        if end == self.next:
            return
        waited = time.perf_counter() - self.last_commit
        due = final or windows >= self.commit_windows or waited >= self.commit_interval_s
        if not due:
            return
        started = time.perf_counter()
        # one group of transactions per commit_windows windows, so a big backlog is not one huge batch
        group: list[_Entry] = []
        group_windows = 0
        for entry in self.entries[self.next:end]:
            group.append(entry)
            group_windows += int(entry.result.get("windows", 0)) if entry.result else 0
            if group_windows >= self.commit_windows:
                self._commit(group)
                group, group_windows = [], 0
        if group:
            self._commit(group)
        self.next = end
        self.last_commit = time.perf_counter()
        self.report.commit_seconds += self.last_commit - started

    # one group: recordings in, clips in, recordings done
    def _commit(self, group: list[_Entry]) -> None:
        new: list[tuple[_Entry, Recording]] = []
        updates: dict[int, dict[str, Any]] = {}
        ready: list[tuple[_Entry, Shard]] = []
        failed: list[tuple[_Entry, str]] = []
        for entry in group:
            if entry.kind == "skip":
                continue
            if entry.kind == "bad":
                failed.append((entry, entry.reason))
                continue
            result = entry.result or {}
            kind = result.get("kind")
            if kind == "shard":
                try:
                    shard = read_shard(Path(result["shard"]))
                except ShardError as e:  # lost or damaged on the shared storage: the rerun makes it again
                    self.forget_shard(entry)
                    failed.append((entry, f"{entry.path}: its embedded windows were lost ({e}); ingest it again"))
                    continue
                fields = self._fields(entry, AudioInfo(**shard.meta.info))
                ready.append((entry, shard))
                status = dict(status=RecordingStatus.PENDING, error=None)
            elif kind == "failed":
                info = result.get("info")
                # unreadable from its header on: like single-machine ingest, only path, content and reason
                fields = self._fields(entry, AudioInfo(**info)) if info else dict(path=str(entry.path),
                                                                                   modality="audio")
                status = dict(status=RecordingStatus.FAILED, error=result["error"])
                failed.append((entry, result["error"]))
            else:  # unreachable on the workers, or changed since listed: nothing to store
                failed.append((entry, str(result.get("error") or f"{entry.path}: no result from the cluster")))
                continue
            if entry.existing is None:
                new.append((entry, Recording(content_hash=entry.content_hash, **fields, **status)))
            else:
                updates[entry.existing.id] = {**fields, **status}
        if new:
            stored = self.store.add_recordings([rec for _, rec in new])
            for (entry, _), rec in zip(new, stored):
                entry.existing = rec  # from here on this run treats it as stored
        if updates:
            self.store.update_recordings(updates)
        self._add_clips(ready)
        done: dict[int, dict[str, Any]] = {}
        for entry, shard in ready:
            stats = DecodeStats(**shard.meta.stats)
            done[entry.existing.id] = dict(status=RecordingStatus.DONE, error="; ".join(stats.notes) or None,
                                           frames=stats.frames, duration_s=stats.duration_s)
        if done:
            self.store.update_recordings(done)
            replaced = self.store.replace_recordings({str(e.path): e.existing.id for e, _ in ready})
            if replaced:
                old = {r.path for r in self.store.recordings(status=RecordingStatus.REPLACED) if r.id in set(replaced)}
                for entry, _ in ready:
                    if str(entry.path) in old:
                        log.warning("%s changed since it was last ingested: its new content is a new recording; "
                                    "the old one's clips left the pool (their labels stay)", entry.path)
                        self.report.replaced.append(str(entry.path))
        # the store now holds it all: the shards can go (a kill before this leaves shards of done recordings,
        # which the next run's listing removes), then the report and progress
        if not self.keep_shards:
            for entry, _ in ready:
                if self.last_of[entry.content_hash] == entry.index:  # no twin still to commit from it
                    self.forget_shard(entry)
        by_index = {entry.index: shard for entry, shard in ready}
        failures = {entry.index: reason for entry, reason in failed}
        for entry in group:
            if entry.kind == "skip":
                self.report.files_skipped += 1
                log.info("skipped %s: %s", entry.path, entry.reason)
            elif entry.index in failures:
                log.warning("not ingested: %s", failures[entry.index])
                self.report.files_failed.append((str(entry.path), failures[entry.index]))
            else:
                self.report.add_decode_problems(entry.path, DecodeStats(**by_index[entry.index].meta.stats))
                self.report.files_new += 1
                if entry.duplicate_of is not None:
                    log.info("%s holds the same bytes as %s (another site, device or time): stored as a recording "
                             "of its own", entry.path, entry.duplicate_of)
                    self.report.duplicates.append((str(entry.path), entry.duplicate_of))
            self.files_done += 1
            self._progress(entry.path)

    def _add_clips(self, ready: list[tuple[_Entry, Shard]]) -> None:
        """Windows of the ``ready`` recordings (after each one's resume point), ``commit_windows`` per transaction."""
        rec_ids: list[np.ndarray] = []
        spans: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        embs: list[np.ndarray] = []
        for entry, shard in ready:
            keep = shard.start_s >= entry.resume_s - 1e-6  # windows committed by an earlier run stay as they are
            rec_ids.append(np.full(int(keep.sum()), entry.existing.id, dtype=np.int64))
            spans.append(np.column_stack([shard.start_s[keep], shard.end_s[keep]]))
            probs.append(shard.probabilities[keep])
            embs.append(shard.embeddings[keep])
        if not ready:
            return
        rec = np.concatenate(rec_ids)
        span = np.concatenate(spans)
        prob = np.concatenate(probs)
        emb = np.concatenate(embs)
        for a in range(0, rec.shape[0], self.commit_windows):
            b = a + self.commit_windows
            ids = self.store.add_clips(rec[a:b], span[a:b], self.mv, prob[a:b], emb[a:b])
            n = span[a:b].shape[0]
            self.report.windows_added += len(ids)
            # spans already stored are skipped by the store; count the audio of the new ones only
            self.report.audio_seconds += float(np.sum(span[a:b, 1] - span[a:b, 0])) * len(ids) / max(1, n)

    def _fields(self, entry: _Entry, info: AudioInfo) -> dict[str, Any]:
        meta = entry.meta or RecordingMetadata()
        return dict(path=str(entry.path), site=meta.site, device=meta.device, start_time=meta.start_time,
                    latitude=meta.latitude, longitude=meta.longitude, country=meta.country,
                    admin1_region=meta.admin1_region, sample_rate=info.sample_rate,
                    channels=info.channels, duration_s=info.duration_s, modality="audio", file_size=entry.size,
                    file_mtime_ns=entry.mtime_ns)

    def forget_shard(self, entry: _Entry) -> None:
        if entry.content_hash is None:
            return
        path = shard_path(self.shard_dir, self.model_name, entry.content_hash)
        path.unlink(missing_ok=True)
        working_path(path).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- Ray
def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ClusterError("cluster ingest needs Ray Data: pip install 'biodiversity-workbench[cluster]' "
                           "(ray[data]) on the driver and on every node") from e
    return ray


#: How long the head's port may take to answer before the cluster counts as unreachable (Ray itself would retry
#: for minutes, printing a warning every few seconds).
CONNECT_TIMEOUT_S = 10.0


def _unreachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Optional[str]:
    """Why the head at ``address`` (``host:port`` or ``ray://host:port``) does not answer, or None when it does
    (and for ``auto``, which Ray resolves itself)."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
            return None
    except socket.timeout:
        return f"no answer within {timeout_s:.0f} s"
    except OSError as e:
        return e.strerror or str(e)


def connect(address: str, object_store_memory: Optional[int] = None) -> bool:
    """Join the Ray cluster at ``address`` (``host:port`` of its head, ``auto``, ``ray://host:10001``), or
    start a Ray on this machine for ``"local"``. Returns True when this call started the connection (the
    caller then ends it with ``ray.shutdown()``); a process already connected to Ray keeps its connection."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING)
    try:
        if address == LOCAL:
            # only small records go through the object store: no need for Ray's default of 30 % of the RAM
            ray.init(address="local", include_dashboard=False,
                     object_store_memory=object_store_memory or LOCAL_OBJECT_STORE_BYTES, **kwargs)
        else:
            problem = _unreachable(address)
            if problem is not None:
                raise ClusterError(f"cannot reach the Ray cluster's head at {address!r} ({problem}): start it first "
                                   f"(ray start --head on one node, ray start --address=HEAD:PORT on the others), "
                                   f"check the address, or use --cluster local")
            ray.init(address=address, **kwargs)
    except ClusterError:
        raise  # already says what to do (wrapped again below, its advice would be printed twice)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ClusterError(f"cannot join the Ray cluster at {address!r}: {e}; start it first (ray start --head on "
                           f"one node, ray start --address=HEAD:PORT on the others) or use --cluster local") from e
    return True


def _cluster_cpus(ray) -> float:
    return float(ray.cluster_resources().get("CPU", 0.0))


# ---------------------------------------------------------------------------- the run
def cluster_ingest(paths: str | os.PathLike | Iterable[str | os.PathLike], store: Store, *,
                   address: str = LOCAL, shard_dir: str | os.PathLike,
                   model_factory: Optional[Callable[[], Any]] = None, metadata_csv: str | os.PathLike | None = None,
                   workers: Optional[int] = None, threads_per_worker: int = 1, batch_windows: int = 64,
                   commit_windows: int = 1024, commit_interval_s: float = 2.0, keep_shards: bool = False,
                   files_in_flight: int = FILES_IN_FLIGHT, hash_threads: int = 4,
                   object_store_memory: Optional[int] = None, resample: Optional[str] = None,
                   progress: Optional[ProgressCallback] = None) -> ClusterIngestReport:
    """Ingest audio files and folders into ``store`` on a Ray cluster; same result as ``embeddings.ingest.ingest``.

    ``address`` is the cluster's (``host:port`` of the head's GCS, ``auto``, ``ray://...``) or ``"local"`` to
    start a Ray on this machine; a process already connected to Ray uses that connection. ``shard_dir``
    is a folder the driver and every node reach at the same path (shared filesystem), where workers leave
    each recording's windows until the driver commits them. ``model_factory()`` builds the model on each
    worker (BirdNET V2.4 by default; it must be importable there: install the workbench on every node)
    and on the driver (for its name and labels only). ``workers`` actors (default: the cluster's CPUs /
    ``threads_per_worker``) each hold ``threads_per_worker`` interpreters, one per thread and CPU;
    ``batch_windows`` windows go through the model at once; a worker holds ``files_in_flight`` files (the
    one it embeds and those queued behind it). The committer writes up to ``commit_windows``
    clips per transaction and commits whatever is finished (in file order) every ``commit_interval_s``
    seconds. ``keep_shards`` leaves committed shards in ``shard_dir``. ``object_store_memory`` (bytes)
    sizes a ``"local"`` Ray's object store (default 256 MB: only small records travel through it).
    ``resample`` as in single-machine ingest (recorded with the embedding model version).

    ``progress(files_done, files_total, windows_done, current_path)`` is called when a worker finishes a
    file and after every commit; an exception it raises stops the run (committed files stay, finished
    shards stay in ``shard_dir``; a rerun commits them without recomputing).
    """
    started = time.perf_counter()
    for name, value in (("batch_windows", batch_windows), ("commit_windows", commit_windows),
                        ("threads_per_worker", threads_per_worker), ("hash_threads", hash_threads),
                        ("files_in_flight", files_in_flight)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive int or None (the cluster's CPUs), got {workers!r}")
    if not isinstance(address, str) or not address:
        raise ValueError(f"address must be a Ray address (host:port, auto, ray://host:port) or 'local', "
                         f"got {address!r}")
    empty_folders: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    files = find_audio_files(paths, empty_folders, unreadable)
    sidecar = Sidecar(metadata_csv).read() if metadata_csv is not None else None
    if model_factory is None:
        model_factory = BirdNET  # one single-threaded interpreter per worker thread, as single-machine ingest
    model = model_factory()
    labels = list(model.labels)
    window_s = float(getattr(model, "window_s", 3.0))
    sample_rate = int(getattr(model, "sample_rate", 48000))
    shard_root = Path(shard_dir).expanduser().resolve()
    folder = model_folder(shard_root, model.name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"shard folder {folder} cannot be created ({e.strerror or e}); give a writable folder "
                         f"every node reaches") from e
    report = ClusterIngestReport()
    with store.lock(LockName.INGEST):  # a second ingest of the same store waits: no file is ingested twice
        mv = store.ensure_model_version(model.name, ModelKind.EMBEDDING, model.name, model.dim, labels,
                                        params=resampling.params(resample))
        how = resampling.recorded(mv, resample).value  # one embedding space, one resampler
        layer = getattr(model, "output_layer", None)
        if callable(layer):  # as single-machine ingest: probability rows are then recomputed from embeddings
            store.set_output_layer(mv, *layer())
        remove_stale_temporaries(folder)
        entries = _list(files, store, sidecar, hash_threads)
        committer = _Committer(store, mv, entries, shard_root, model.name, commit_windows, commit_interval_s,
                               keep_shards, report, progress)
        todo = []
        leaders: dict[str, _Entry] = {}
        for entry in entries:
            if entry.kind != "work":
                continue
            leader = leaders.setdefault(entry.content_hash, entry)
            if leader is not entry:  # the same bytes at another site or time: the first file's shard serves both
                leader.twins.append(entry)
            leader.shard_from_s = min(e.resume_s for e in (leader, *leader.twins))
        for entry in entries:
            if entry.kind == "skip" and entry.content_hash not in leaders and entry.content_hash is not None \
                    and not keep_shards:
                committer.forget_shard(entry)  # a driver killed between a commit and its clean-up left it
            if entry.kind != "work" or leaders[entry.content_hash] is not entry:
                continue
            found = _reusable_shard(entry, shard_root, model, len(labels), window_s, sample_rate, how)
            if found is not None:
                committer.arrived(entry.index, found, reused=True)
                report.shards_reused += 1
            else:
                todo.append(entry)
        report.list_seconds = time.perf_counter() - started
        log.info("%d files: %d to embed on the cluster, %d shards from an earlier run, %d skipped or unreadable",
                 len(entries), len(todo), report.shards_reused, len(entries) - len(todo) - report.shards_reused)
        committer.commit_ready(final=False)
        if todo:
            _run_on_cluster(todo, committer, report, address, shard_root, model_factory, workers,
                            threads_per_worker, batch_windows, files_in_flight, object_store_memory, how)
            for entry in todo:  # never lost silently: a file the cluster gave nothing back for is named
                if entry.result is None:
                    entry.result = {"kind": "unreachable", "error": f"{entry.path}: the cluster returned no result "
                                                                    f"for it; ingest again"}
        committer.commit_ready(final=True)
    report.files_failed += [unreadable_folder(f, reason) for f, reason in unreadable]
    for folder_ in empty_folders:
        report.files_failed.append((str(folder_), f"{folder_} is a folder holding no audio files "
                                                   f"({', '.join(AUDIO_EXTENSIONS)}): give the files or the folder "
                                                   f"that holds them"))
    if isinstance(model, BirdNET) and report.files_new:  # as single-machine ingest: the new site-weeks' priors
        add_range_priors(store, report)
    report.wall_seconds = time.perf_counter() - started
    return report


def _reusable_shard(entry: _Entry, shard_root: Path, model: Any, n_classes: int, window_s: float,
                    sample_rate: int, resample: Optional[str] = None) -> Optional[dict[str, Any]]:
    """The record of a shard an earlier run left for this entry, if it can be committed as it is."""
    path = shard_path(shard_root, model.name, entry.content_hash)
    if not path.exists():
        return None
    try:
        meta = read_shard_meta(path)
    except ShardError as e:
        log.warning("%s; it will be made again", e)
        return None
    why = matches(meta, entry.content_hash, model.name, int(model.dim), n_classes, window_s, sample_rate,
                  entry.shard_from_s, resample)
    if why is not None:
        log.info("shard %s cannot be reused (%s); it will be made again", path, why)
        return None
    with np.load(path, allow_pickle=False) as z:
        windows = int(z["start_s"].shape[0])
    return {"kind": "shard", "shard": str(path), "windows": windows, "reused": True}


def _run_on_cluster(todo: list[_Entry], committer: _Committer, report: ClusterIngestReport, address: str,
                    shard_root: Path, model_factory: Callable[[], Any], workers: Optional[int],
                    threads_per_worker: int, batch_windows: int, files_in_flight: int,
                    object_store_memory: Optional[int], resample: str) -> None:
    """Embed ``todo`` with a Ray Data actor pool; hand each file's record to the committer as it arrives."""
    from embeddings.cluster_worker import EmbedFiles

    t0 = time.perf_counter()
    ray = _import_ray()
    own = connect(address, object_store_memory)
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.print_on_execution_start)
    # the driver reports progress itself: Ray Data's bars, its banners and its notice that the bars are off
    # would only garble the progress line
    quiet = {name: logging.getLogger(name) for name in ("ray.data", "ray.data._internal.progress")}
    levels = {name: lg.level for name, lg in quiet.items()}
    try:
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        quiet["ray.data"].setLevel(logging.WARNING)
        quiet["ray.data._internal.progress"].setLevel(logging.ERROR)
        cpus = _cluster_cpus(ray)
        if cpus < threads_per_worker:
            raise ClusterError(f"the Ray cluster at {address!r} has {cpus:g} CPU(s); a worker needs "
                               f"{threads_per_worker}: add nodes with CPUs, or lower threads_per_worker")
        n = min(workers or max(1, int(cpus) // threads_per_worker), len(todo))
        report.workers = n
        items = [{"index": e.index, "path": str(e.path), "content_hash": e.content_hash, "resume_s": e.shard_from_s}
                 for e in todo]
        # one block per file: files differ in length by orders of magnitude, so each is its own task; an actor
        # holds files_in_flight of them (by default the next one waits there while it embeds one: no round trip
        # to the scheduler between files, and a long file holds at most one other back)
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(EmbedFiles, fn_constructor_kwargs=dict(shard_dir=str(shard_root),
                                                                   model_factory=model_factory,
                                                                   batch_windows=batch_windows,
                                                                   threads=threads_per_worker,
                                                                   resample=resample),
                            batch_size=1, num_cpus=threads_per_worker,
                            # a worker process or node lost: Ray Data's actor pools make the actor again (on the
                            # nodes left if need be) and run the files it held again, however often that happens
                            # (max_restarts=-1, max_task_retries=-1: its defaults, which tests/embeddings/
                            # test_cluster.py checks; passing them here is deprecated since Ray 2.60)
                            compute=ray.data.ActorPoolStrategy(size=n, max_tasks_in_flight_per_actor=files_in_flight))
        report.cluster_seconds = time.perf_counter() - t0
        for row in ds.iter_rows():
            committer.arrived(int(row["index"]), json.loads(row["result"]))
            committer.commit_ready(final=False)
    finally:
        ctx.enable_progress_bars, ctx.print_on_execution_start = saved
        for name, lg in quiet.items():
            lg.setLevel(levels[name])
        if own:
            ray.shutdown()


__all__ = ["LOCAL", "ClusterError", "ClusterIngestReport", "cluster_ingest", "connect"]
