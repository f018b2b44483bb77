"""Shards: one recording's windows, scores and embeddings, handed from a cluster worker to the committer.

A worker of a cluster ingest writes each recording it embedded to ONE shard file in a folder every node
and the committer reach (a shared filesystem here; any storage with an atomic rename or put in
production), named by the model and the recording's content hash::

    <shard_dir>/<model name>/<content sha256>.npz

A shard is an uncompressed ``.npz`` (NumPy's zip of arrays; read without pickle):

=================  ==================  ============================================================
``start_s``        float64 [n]         window starts (s), in file order
``end_s``          float64 [n]         window ends (s); the last one may be short (a padded tail)
``probabilities``  float32 [n, C]      the model's output per window (BirdNET: 6,522 sigmoids)
``embeddings``     float32 [n, D]      the embedding per window (BirdNET: 1,024)
``meta``           str (JSON)          see ``ShardMeta``: format, model, content hash, path, resume
                                       point, the header (``AudioInfo``), what decoding found
                                       (``DecodeStats``: frames, NaN count, truncation, notes) and who
                                       made it (node, pid, seconds)
=================  ==================  ============================================================

It is written to a hidden temporary name in the same folder, flushed to disk, then renamed into place,
so a shard either exists whole or not at all: a worker killed while writing leaves at most a
``.*.tmp`` file, never a partial shard. Since a shard is named by content, recomputing it gives the
same file (the model is deterministic), and any shard found for a recording's content with the right
model and resume point can be committed in place of a recomputation.

Full probability rows are kept (30 kB per window with the embedding), because the store takes full
rows today; BirdNET's rows could be recomputed from the embedding (one dense layer), only not
bit-identically.
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from store.atomic import TMP_SUFFIX, write_atomically

#: Bumped when the layout changes; a shard of another format is ignored (recomputed).
SHARD_FORMAT = 1
SHARD_SUFFIX = ".npz"
WORKING_SUFFIX = ".working"


#: What reading a damaged ``.npz`` raises (a torn zip, a member cut short, meta that is not JSON).
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)


class ShardError(ValueError):
    """A shard that cannot be read or does not hold what its name promises; the message names the file."""


@dataclass
class ShardMeta:
    """What a shard says about itself (stored as JSON in its ``meta`` member)."""

    content_hash: str
    path: str
    model: str
    dim: int
    n_classes: int
    window_s: float
    sample_rate: int
    resume_s: float
    info: dict[str, Any] = field(default_factory=dict)    # embeddings.audio.AudioInfo fields
    resample: str = "soxr-hq"                              # embeddings.resample (shards before 0.4: soxr-hq)
    stats: dict[str, Any] = field(default_factory=dict)   # embeddings.audio.DecodeStats fields
    node: str = ""
    pid: int = 0
    seconds: float = 0.0
    format: int = SHARD_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ShardMeta":
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Shard:
    """A shard read back: its meta and its arrays."""

    meta: ShardMeta
    start_s: np.ndarray
    end_s: np.ndarray
    probabilities: np.ndarray
    embeddings: np.ndarray

    def __len__(self) -> int:
        return int(self.start_s.shape[0])


def model_folder(shard_dir: str | os.PathLike, model_name: str) -> Path:
    """The folder holding one model's shards (the model name made safe as a folder name)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name).strip(".") or "model"
    return Path(shard_dir) / safe


def shard_path(shard_dir: str | os.PathLike, model_name: str, content_hash: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", content_hash):
        raise ValueError(f"content_hash must be a SHA-256 in hex, got {content_hash!r}")
    return model_folder(shard_dir, model_name) / f"{content_hash}{SHARD_SUFFIX}"


def working_path(shard: Path) -> Path:
    """The marker a worker keeps next to a shard while it computes it (JSON: node, pid, path, since)."""
    return shard.with_suffix(WORKING_SUFFIX)


def write_shard(path: Path, meta: ShardMeta, start_s: np.ndarray, end_s: np.ndarray,
                probabilities: np.ndarray, embeddings: np.ndarray) -> Path:
    """Write a shard atomically: a temporary file in the same folder, fsync, then rename into place."""
    n = len(start_s)
    if not (len(end_s) == n and probabilities.shape == (n, meta.n_classes) and embeddings.shape == (n, meta.dim)):
        raise ValueError(f"shard {path}: {n} starts, {len(end_s)} ends, probabilities {probabilities.shape}, "
                         f"embeddings {embeddings.shape} do not fit {meta.n_classes} classes x {meta.dim}-d")
    return write_atomically(path, lambda fh: np.savez(
        fh, start_s=np.asarray(start_s, dtype=np.float64), end_s=np.asarray(end_s, dtype=np.float64),
        probabilities=np.asarray(probabilities, dtype=np.float32), embeddings=np.asarray(embeddings, dtype=np.float32),
        meta=np.array(meta.to_json())), binary=True, fsync=True)  # the rename made durable too, where it can be


def read_shard_meta(path: Path) -> ShardMeta:
    """The meta of a shard, without reading its arrays; ``ShardError`` when it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return ShardMeta.from_json(str(z["meta"]))
    except FileNotFoundError as e:
        raise ShardError(f"shard {path} does not exist") from e
    except _UNREADABLE as e:
        raise ShardError(f"shard {path} is unreadable ({e})") from e


def read_shard(path: Path) -> Shard:
    """A whole shard; ``ShardError`` when it is missing, unreadable or inconsistent."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = ShardMeta.from_json(str(z["meta"]))
            shard = Shard(meta, z["start_s"], z["end_s"], z["probabilities"], z["embeddings"])
    except FileNotFoundError as e:
        raise ShardError(f"shard {path} does not exist") from e
    except _UNREADABLE as e:
        raise ShardError(f"shard {path} is unreadable ({e})") from e
    n = len(shard)
    if (shard.end_s.shape != (n,) or shard.probabilities.shape != (n, meta.n_classes)
            or shard.embeddings.shape != (n, meta.dim)):
        raise ShardError(f"shard {path} is inconsistent: {n} windows, probabilities {shard.probabilities.shape}, "
                         f"embeddings {shard.embeddings.shape}")
    return shard


def remove_stale_temporaries(folder: Path, older_than_s: float = 3600.0) -> int:
    """Delete temporaries (``.*.tmp``) and working markers older than ``older_than_s``: what killed workers
    left behind. Younger ones may belong to a worker still writing, and are left alone."""
    removed = 0
    if not folder.is_dir():
        return 0
    now = time.time()
    for entry in folder.iterdir():
        if not (entry.name.endswith(TMP_SUFFIX) or entry.name.endswith(WORKING_SUFFIX)):
            continue
        try:
            if now - entry.stat().st_mtime > older_than_s:
                entry.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def matches(meta: ShardMeta, content_hash: str, model: str, dim: int, n_classes: int, window_s: float,
            sample_rate: int, resume_s: float, resample: Optional[str] = None) -> Optional[str]:
    """Why a shard cannot stand in for the windows wanted (None: it can)."""
    if meta.format != SHARD_FORMAT:
        return f"format {meta.format}, expected {SHARD_FORMAT}"
    if meta.content_hash != content_hash:
        return f"made for content {meta.content_hash[:12]}, not {content_hash[:12]}"
    if (meta.model, meta.dim, meta.n_classes) != (model, dim, n_classes):
        return f"made by {meta.model} ({meta.n_classes} classes, {meta.dim}-d), not {model}"
    if (float(meta.window_s), int(meta.sample_rate)) != (float(window_s), int(sample_rate)):
        return f"windows of {meta.window_s} s at {meta.sample_rate} Hz, not {window_s} s at {sample_rate} Hz"
    if resample is not None and meta.resample != resample and int(meta.info.get("sample_rate") or sample_rate) \
            != int(sample_rate):
        return f"resampled with {meta.resample}, not {resample}"
    if float(meta.resume_s) > float(resume_s) + 1e-6:
        return f"starts at {meta.resume_s} s, after {resume_s} s"
    return None
