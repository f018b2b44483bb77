"""Append-only float matrices keyed by clip id, in a form FAISS reads directly.

Each matrix is two raw files in the vectors folder: ``<name>.<dtype>`` (rows x dim, C order) and
``<name>.ids`` (int64 clip ids, one per row). The committed row count lives in the database
(``schema.Matrix.rows``) and is advanced in the same transaction that commits the clips, so rows
written by a run that crashed before its commit are invisible and are overwritten by the next
append. Reads are memory maps: a pool of millions of windows is never copied into RAM at once.

Rows are found by clip id through an index built once per view: ids appended in increasing
order (the usual case: clip ids grow with every ingest) need no index at all, a binary search
on the ids themselves suffices; otherwise one stable argsort is cached. A clip written twice
(a model's outputs replaced) resolves to its LAST row, so a re-scored clip reads its new values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from store.errors import DamagedFile

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:+-]+$")
DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64}


def matrix_paths(folder: Path, name: str, dtype: str) -> tuple[Path, Path]:
    if not _NAME_RE.match(name):
        raise ValueError(f"matrix name {name!r} may only hold letters, digits and . _ : + -")
    safe = name.replace(":", "__")
    return folder / f"{safe}.{dtype}", folder / f"{safe}.ids"


@dataclass(frozen=True)
class MatrixView:
    """Committed rows of one matrix: ``ids[i]`` is the clip id of ``data[i]`` (both memory-mapped)."""

    name: str
    ids: np.ndarray
    data: np.ndarray
    _index: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def monotonic(self) -> bool:
        """True when ids strictly increase with the row (then a row is found by binary search alone)."""
        return self._lookup()[0] is None

    def _lookup(self) -> tuple[np.ndarray | None, np.ndarray]:
        """(row order or None when ids strictly increase, ids in that order); built once per view."""
        if "sorted" not in self._index:
            ids = self.ids
            if ids.shape[0] < 2 or bool(np.all(ids[1:] > ids[:-1])):
                self._index["order"], self._index["sorted"] = None, ids
            else:
                order = np.argsort(ids, kind="stable")
                self._index["order"], self._index["sorted"] = order, np.asarray(ids)[order]
        return self._index["order"], self._index["sorted"]

    def rows_for(self, clip_ids: np.ndarray | list[int]) -> np.ndarray:
        """Row positions of ``clip_ids``; raises KeyError naming the first id that has no row.

        A clip with several rows (outputs replaced) maps to its last row.
        """
        clip_ids = np.asarray(clip_ids, dtype=np.int64).ravel()
        order, sorted_ids = self._lookup()
        if sorted_ids.shape[0] == 0:
            if clip_ids.size:
                raise KeyError(f"clip {int(clip_ids[0])} has no row in matrix {self.name!r}")
            return np.zeros(0, dtype=np.int64)
        pos = np.searchsorted(sorted_ids, clip_ids, side="right") - 1
        found = pos >= 0
        found[found] = sorted_ids[pos[found]] == clip_ids[found]
        if not found.all():
            raise KeyError(f"clip {int(clip_ids[~found][0])} has no row in matrix {self.name!r}")
        return pos.astype(np.int64) if order is None else order[pos]

    def unique_rows(self) -> np.ndarray:
        """Row positions holding each clip's current (last) row, in increasing clip id order."""
        order, sorted_ids = self._lookup()
        if order is None:
            return np.arange(len(self), dtype=np.int64)
        last = np.ones(sorted_ids.shape[0], dtype=bool)
        last[:-1] = sorted_ids[1:] != sorted_ids[:-1]
        return order[last]

    def contains(self, clip_ids: np.ndarray | list[int]) -> np.ndarray:
        """Which of ``clip_ids`` have a row (one bool per id), without raising."""
        clip_ids = np.asarray(clip_ids, dtype=np.int64).ravel()
        _, sorted_ids = self._lookup()
        if sorted_ids.shape[0] == 0 or clip_ids.size == 0:
            return np.zeros(clip_ids.size, dtype=bool)
        pos = np.minimum(np.searchsorted(sorted_ids, clip_ids), sorted_ids.shape[0] - 1)
        return np.asarray(sorted_ids[pos] == clip_ids)

    def take(self, clip_ids: np.ndarray | list[int], dtype=np.float32) -> np.ndarray:
        """Rows of ``clip_ids`` as a new contiguous array (what FAISS wants), float32 by default."""
        return self.take_rows(self.rows_for(clip_ids), dtype=dtype)

    def take_rows(self, rows: np.ndarray | list[int], dtype=np.float32) -> np.ndarray:
        """Rows by position (from ``rows_for``) as a new contiguous array, float32 by default.

        Rows are read in file order (then put back in the order asked). A take of a small part of
        a file-backed matrix (a sampler's candidates out of millions) reads just those rows with
        positioned reads: through the memory map, the kernel's read-ahead and large page-cache
        folios would map gigabytes of neighbouring rows into the process for a few thousand rows.
        """
        rows = np.asarray(rows, dtype=np.int64).ravel()
        out = np.empty((rows.shape[0],) + self.data.shape[1:], dtype=dtype)
        if rows.shape[0] == 0:
            return out
        if rows.min() < 0 or rows.max() >= len(self):
            bad = rows[(rows < 0) | (rows >= len(self))][0]
            raise IndexError(f"row {int(bad)} is outside matrix {self.name!r} of {len(self)} rows")
        by_row = np.argsort(rows, kind="stable")
        sorted_rows = rows[by_row]
        filename = getattr(self.data, "filename", None)
        if filename and hasattr(os, "preadv") and rows.shape[0] * _SPARSE_TAKE <= len(self):
            out[by_row] = _pread_rows(filename, self.data, sorted_rows)
        else:
            out[by_row] = self.data[sorted_rows]
        return out


_SPARSE_TAKE = 8  # positioned reads when at most 1 row in 8 is asked for; else one pass over the map


def _pread_rows(filename: str, data: np.ndarray, sorted_rows: np.ndarray) -> np.ndarray:
    """Rows ``sorted_rows`` of a C-ordered matrix file, one positioned read per run of adjacent rows."""
    out = np.empty((sorted_rows.shape[0],) + data.shape[1:], dtype=data.dtype)
    row_bytes = out.itemsize * int(np.prod(data.shape[1:], dtype=np.int64))
    base = int(getattr(data, "offset", 0))
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_rows) != 1])
    ends = np.r_[starts[1:], sorted_rows.shape[0]]
    view = memoryview(out.reshape(-1).view(np.uint8))
    fd = os.open(filename, os.O_RDONLY)
    try:
        for lo, hi in zip(starts.tolist(), ends.tolist()):
            done, want, at = lo * row_bytes, hi * row_bytes, base + int(sorted_rows[lo]) * row_bytes
            while done < want:  # one call reads at most ~2 GB on Linux
                got = os.preadv(fd, [view[done:want]], at + done - lo * row_bytes)
                if got <= 0:
                    raise OSError(f"matrix file {filename} ended early: {want - done} bytes missing at row "
                                  f"{int(sorted_rows[lo])}")
                done += got
    finally:
        os.close(fd)
    return out


def write_rows(folder: Path, name: str, dtype: str, dim: int, committed: int,
               ids: np.ndarray, rows: np.ndarray) -> int:
    """Write ``rows`` after the ``committed`` rows (dropping any uncommitted tail); return new count.

    The caller commits the returned count to the database; until then the rows are invisible.
    """
    data_path, ids_path = matrix_paths(folder, name, dtype)
    rows = np.ascontiguousarray(rows, dtype=DTYPES[dtype])
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise ValueError(f"matrix {name!r} holds {dim}-d rows, got an array of shape {rows.shape}")
    if rows.shape[0] != ids.shape[0]:
        raise ValueError(f"matrix {name!r}: {rows.shape[0]} rows but {ids.shape[0]} ids")
    folder.mkdir(parents=True, exist_ok=True)
    row_bytes = dim * np.dtype(DTYPES[dtype]).itemsize
    created = not data_path.exists() or not ids_path.exists()
    for path, offset, payload in ((data_path, committed * row_bytes, rows),
                                  (ids_path, committed * 8, ids)):
        with open(path, "r+b" if path.exists() else "w+b") as fh:
            fh.truncate(offset)
            fh.seek(offset)
            fh.write(payload.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
    if created:  # a new file's directory entry must be durable before the database counts its rows
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return committed + int(ids.shape[0])


def read_view(folder: Path, name: str, dtype: str, dim: int, committed: int) -> MatrixView:
    data_path, ids_path = matrix_paths(folder, name, dtype)
    if committed == 0:
        return MatrixView(name, np.zeros(0, np.int64), np.zeros((0, dim), DTYPES[dtype]))
    for path in (data_path, ids_path):
        if not path.exists():
            raise FileNotFoundError(
                f"matrix {name!r}: {path} is missing but the database says {committed} rows are stored; "
                "was the workspace's vectors folder moved or deleted?")
    for path, need in ((data_path, committed * dim * np.dtype(DTYPES[dtype]).itemsize), (ids_path, committed * 8)):
        size = path.stat().st_size
        if size < need:  # more is fine: rows appended by a run that died before the database counted them
            raise DamagedFile(f"matrix {name!r}: {path} holds {size:,} bytes but the database says {committed:,} rows "
                             f"({need:,} bytes) are stored: the file was cut short (a full disk, an interrupted "
                             "copy?); restore the workspace's vectors folder from its backup or copy it again")
    ids = np.memmap(ids_path, dtype=np.int64, mode="r", shape=(committed,))
    data = np.memmap(data_path, dtype=DTYPES[dtype], mode="r", shape=(committed, dim))
    return MatrixView(name, ids, data)
