"""The worker side of a cluster ingest: a Ray Data actor that decodes and embeds whole recordings into shards.

``EmbedFiles`` is the callable class handed to ``Dataset.map_batches``: Ray builds one per actor of the
pool, so the model is loaded once per worker and reused for every file it is given. Each row is one
recording (``index``, ``path``, ``content_hash``, ``resume_s``); the actor checks that the file it sees
is still the content the driver listed, reads it with ``embeddings.audio.iter_windows`` (the code
single-machine ingest uses, so windows and embeddings are the same bits), runs the model and writes ONE
shard (``embeddings.cluster_shards``). Only a small JSON record per file travels back through Ray (the
shard's name, counts, or the file's error), never the arrays.

A file that cannot be read comes back as an error record (the run goes on, as in single-machine ingest);
anything else raised here (a shard folder this node cannot write, a bug) fails the run. The actor touches
no database.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from embeddings.audio import AudioReadError, DecodeStats, iter_windows, probe
from embeddings.resample import DEFAULT as DEFAULT_RESAMPLE
from embeddings.cluster_shards import ShardError, ShardMeta, shard_path, working_path, write_shard
from embeddings.model_threads import ModelThreads
from store.sources import file_sha256

# Kinds of record a worker returns for a file (the ``kind`` of its JSON):
#   "shard"        embedded; ``shard`` names the file, ``windows`` counts its windows
#   "failed"       the audio is unreadable; ``error`` says why; ``info`` is the header when it could be read
#                  (reading failed after the header: the committer records the recording's fields too)
#   "unreachable"  the file is not there (as listed) on this worker's node, or its content changed since it
#                  was listed: nothing is stored for it; the run reports it and a rerun takes it again


def _node_id() -> str:
    """The Ray node this worker runs on; the host name outside Ray (asking Ray there would start a local Ray)."""
    try:
        import ray
    except ImportError:
        return socket.gethostname()
    if not ray.is_initialized():
        return socket.gethostname()
    return ray.get_runtime_context().get_node_id()


class EmbedFiles:
    """Ray Data callable class: ``batch`` of recordings in, one JSON record per recording out."""

    def __init__(self, shard_dir: str, model_factory: Callable[[], Any], batch_windows: int = 64, threads: int = 1,
                 resample: str = DEFAULT_RESAMPLE.value):
        began = time.perf_counter()
        self.resample = resample
        self.shard_dir = Path(shard_dir)
        self.batch_windows = batch_windows
        self.threads = threads
        self.model = model_factory()
        if hasattr(self.model, "load"):
            self.model.load()
        if hasattr(self.model, "warm_up"):
            # the first invoke packs the weights: pay it here, not on the first file
            if threads > 1:
                self.model.warm_up(threads)
            else:
                self.model.warm_up()
        # like single-machine ingest: one single-threaded interpreter per thread, fed chunks of windows
        self.model_threads = ModelThreads(self.model, threads)
        self.window_s = float(getattr(self.model, "window_s", 3.0))
        self.sample_rate = int(getattr(self.model, "sample_rate", 48000))
        self.n_classes = len(self.model.labels)
        self.node = _node_id()
        self.startup = time.perf_counter() - began

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"index": [], "result": []}
        for i in range(len(batch["index"])):
            record = self.embed(str(batch["path"][i]), str(batch["content_hash"][i]), float(batch["resume_s"][i]))
            out["index"].append(int(batch["index"][i]))
            out["result"].append(json.dumps(record))
        return out

    # ------------------------------------------------------------------ one file
    def embed(self, path_text: str, content_hash: str, resume_s: float) -> dict[str, Any]:
        started = time.perf_counter()
        path = Path(path_text)
        target = shard_path(self.shard_dir, self.model.name, content_hash)
        marker = working_path(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"node": self.node, "pid": os.getpid(), "path": path_text,
                                          "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        except OSError as e:  # not a bad file: this node cannot reach the shard folder, so no file can be done here
            raise ShardError(f"shard folder {target.parent} cannot be written on worker node {self.node} "
                             f"({e.strerror or e}); it must be a folder every node reaches at the same path") from e
        try:
            record = self._embed(path, content_hash, resume_s, target, started)
        finally:
            marker.unlink(missing_ok=True)
        record.update(node=self.node, pid=os.getpid(), seconds=time.perf_counter() - started, startup=self.startup)
        return record

    def _embed(self, path: Path, content_hash: str, resume_s: float, target: Path, started: float) -> dict[str, Any]:
        try:
            digest = file_sha256(path)
        except FileNotFoundError:
            return {"kind": "unreachable", "error": f"{path}: not found on worker node {self.node} (the audio "
                                                    f"must be on storage every node reaches, at the same path)"}
        except OSError as e:
            return {"kind": "unreachable", "error": f"{path}: cannot be read on worker node {self.node} "
                                                    f"({e.strerror or e})"}
        if digest != content_hash:
            return {"kind": "unreachable", "error": f"{path}: its content changed while it was being ingested "
                                                    f"(listed as {content_hash[:12]}, now {digest[:12]}); "
                                                    f"ingest it again"}
        try:
            info = probe(path)
        except AudioReadError as e:
            return {"kind": "failed", "error": str(e), "info": None}
        info_fields = asdict(info)
        stats = DecodeStats()
        starts: list[float] = []
        ends: list[float] = []
        probs: list[np.ndarray] = []
        embs: list[np.ndarray] = []
        windows: list[np.ndarray] = []

        def run() -> None:
            if windows:
                p, e = self.model_threads.infer(windows)
                probs.append(p)
                embs.append(e)
                windows.clear()

        try:
            for start, end, samples in iter_windows(path, start_s=resume_s, window_s=self.window_s,
                                                    target_sr=self.sample_rate, stats=stats,
                                                    on_warning=lambda _msg: None, resample=self.resample):
                starts.append(start)
                ends.append(end)
                windows.append(samples)
                if len(windows) >= self.batch_windows:
                    run()
        except (AudioReadError, OSError) as e:
            reason = str(e) if isinstance(e, AudioReadError) else f"{path}: cannot be read ({e})"
            return {"kind": "failed", "error": reason, "info": info_fields}
        run()
        dim = int(self.model.dim)
        meta = ShardMeta(content_hash=content_hash, path=str(path), model=self.model.name, dim=dim,
                         n_classes=self.n_classes, window_s=self.window_s, sample_rate=self.sample_rate,
                         resume_s=float(resume_s), info=info_fields, resample=self.resample, stats=asdict(stats),
                         node=self.node,
                         pid=os.getpid(), seconds=time.perf_counter() - started)
        write_shard(target, meta, np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64),
                    np.concatenate(probs) if probs else np.zeros((0, self.n_classes), dtype=np.float32),
                    np.concatenate(embs) if embs else np.zeros((0, dim), dtype=np.float32))
        return {"kind": "shard", "shard": str(target), "windows": len(starts)}

