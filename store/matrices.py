"""Append-only float matrices keyed by clip id, in a form FAISS reads directly.

Each matrix is two raw files in the vectors folder: ``<name>.<dtype>`` (rows x dim, C order) and
``<name>.ids`` (int64 clip ids, one per row). The committed row count lives in the database
(``schema.Matrix.rows``) and is advanced in the same transaction that commits the clips, so rows
written by a run that crashed before its commit are invisible and are overwritten by the next
append. Reads are memory maps: a pool of millions of windows is never copied into RAM at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:+-]+$")
DTYPES = {"float32": np.float32, "float16": np.float16}


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

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def rows_for(self, clip_ids: np.ndarray | list[int]) -> np.ndarray:
        """Row positions of ``clip_ids``; raises KeyError naming the first id that has no row."""
        clip_ids = np.asarray(clip_ids, dtype=np.int64)
        order = np.argsort(self.ids, kind="stable")
        sorted_ids = self.ids[order]
        pos = np.searchsorted(sorted_ids, clip_ids)
        pos = np.clip(pos, 0, max(len(sorted_ids) - 1, 0))
        if len(sorted_ids) == 0 or not np.array_equal(sorted_ids[pos], clip_ids):
            missing = clip_ids if len(sorted_ids) == 0 else clip_ids[sorted_ids[pos] != clip_ids]
            raise KeyError(f"clip {int(missing[0])} has no row in matrix {self.name!r}")
        return order[pos]

    def take(self, clip_ids: np.ndarray | list[int], dtype=np.float32) -> np.ndarray:
        """Rows of ``clip_ids`` as a new contiguous array (what FAISS wants)."""
        rows = self.rows_for(clip_ids)
        return np.ascontiguousarray(self.data[rows], dtype=dtype)


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
    for path, offset, payload in ((data_path, committed * row_bytes, rows),
                                  (ids_path, committed * 8, ids)):
        with open(path, "r+b" if path.exists() else "w+b") as fh:
            fh.truncate(offset)
            fh.seek(offset)
            fh.write(payload.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
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
    ids = np.memmap(ids_path, dtype=np.int64, mode="r", shape=(committed,))
    data = np.memmap(data_path, dtype=DTYPES[dtype], mode="r", shape=(committed, dim))
    return MatrixView(name, ids, data)
