"""The vectors: append-only matrices keyed by clip id, and the output layers that recompute probabilities.

Rows live in raw files under ``vectors_dir`` (``store.matrices``); how many of a matrix's rows are
committed lives in its SQL ``Matrix`` row. Writers append inside their own SQL transaction
(``append_matrix``), so new rows become visible exactly when the records that own them commit, and
rows written by a transaction that never committed are invisible and overwritten by the next append.
Embedding matrices may be kept as float16 (``embedding_dtype``); reads always return float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from sqlmodel import Session

from store import matrices
from store.atomic import write_atomically
from store.errors import StoreError, UnknownMatrix
from store.probability import OutputType, activate
from store.schema import Matrix, ModelKind, ModelVersion
from store.sql import SessionFactory, insert_missing

EMBEDDING_DTYPES = ("float32", "float16")
EmbeddingDtype = Literal["float32", "float16"]


@dataclass(frozen=True)
class OutputLayer:
    """A model's last layer: probabilities = activation(embedding @ weights.T + bias)."""

    weights: np.ndarray  # classes x dim, float32
    bias: np.ndarray  # classes
    activation: str  # sigmoid | softmax

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        return activate(self.activation, np.asarray(embeddings, dtype=np.float32) @ self.weights.T + self.bias)


class ComputedProbabilities:
    """Probability rows recomputed from stored embeddings with a model's output layer, ``chunk`` rows at a time.

    What a stored probability matrix would answer for ``take`` and ``contains`` (the sampler and the lab
    read it through ``take``), without keeping 13 KB per window: from a float16 BirdNET embedding the rows
    differ from the model's own by about 1e-4, less than storing them as float16 already cost.
    """

    def __init__(self, name: str, embeddings: matrices.MatrixView, layer: OutputLayer, chunk: int = 8192):
        self.name = name
        self.embeddings = embeddings
        self.layer = layer
        self.chunk = chunk

    @property
    def ids(self) -> np.ndarray:
        return self.embeddings.ids

    def __len__(self) -> int:
        return len(self.embeddings)

    def contains(self, clip_ids: np.ndarray | list[int]) -> np.ndarray:
        return self.embeddings.contains(clip_ids)

    def take(self, clip_ids: np.ndarray | list[int], dtype=np.float32) -> np.ndarray:
        clip_ids = np.asarray(clip_ids, dtype=np.int64).ravel()
        out = np.empty((clip_ids.size, self.layer.weights.shape[0]), dtype=dtype)
        for i in range(0, clip_ids.size, self.chunk):
            part = clip_ids[i:i + self.chunk]
            out[i:i + part.size] = self.layer.probabilities(self.embeddings.take(part))
        return out


class MatrixVectors:
    """Matrices in files under ``vectors_dir`` with their committed row counts in the database's ``Matrix`` table."""

    def __init__(self, session: SessionFactory, vectors_dir: Path, embedding_dtype: str = "float32"):
        """``session`` makes the store's sessions; ``embedding_dtype`` applies to embedding matrices created
        from now on (an existing matrix keeps the dtype recorded in its ``Matrix`` row)."""
        if embedding_dtype not in EMBEDDING_DTYPES:
            raise ValueError(f"embedding_dtype must be one of {list(EMBEDDING_DTYPES)}, got {embedding_dtype!r}")
        self._session = session
        self.vectors_dir = Path(vectors_dir)
        self.embedding_dtype: str = embedding_dtype
        self._views: dict[str, matrices.MatrixView] = {}  # latest committed view per matrix (keeps its index)
        self._layers: dict[str, OutputLayer] = {}  # output layers read so far, by model name

    def append_matrix(self, s: Session, name: str, dtype: str, model: Optional[ModelVersion],
                      ids: np.ndarray, rows: np.ndarray) -> None:
        """Write ``rows`` (one per clip id) after the committed rows of matrix ``name``, inside the caller's
        transaction ``s``: they become visible when ``s`` commits, together with the records that own them.

        Creates the matrix (``dtype``, the rows' dim) on first use; refuses rows of another dim than the
        matrix holds, and values a float16 matrix cannot hold, before anything is written. Rows written by a
        transaction that never commits stay invisible and are overwritten by the next append.
        """
        dim = int(rows.shape[1])
        # locked and re-read: two writers on PostgreSQL must not both append after the same committed count
        m = s.get(Matrix, name, with_for_update=True, populate_existing=True)
        if m is None:  # a concurrent writer may be creating it too: insert if missing, then lock the stored row
            insert_missing(s, Matrix(name=name, dim=dim, dtype=dtype, rows=0,
                                     model_version_id=None if model is None else model.id))
            m = s.get(Matrix, name, with_for_update=True, populate_existing=True)
        if m.dim != dim:
            raise StoreError(f"matrix {name!r} holds {m.dim}-d rows; refusing {dim}-d rows "
                             f"(a different model under the same name?)")
        if m.dtype == "float16":
            with np.errstate(over="ignore"):
                half = np.asarray(rows, dtype=np.float16)
            if not np.isfinite(half).all():
                bad = np.argwhere(~np.isfinite(half))[0]
                raise StoreError(f"matrix {name!r} keeps float16 rows, but clip {int(ids[bad[0]])} has value "
                                 f"{float(np.asarray(rows)[tuple(bad)])} at column {int(bad[1])}, beyond float16's "
                                 f"range (+-65504) or not finite; open the store with embedding_dtype='float32'")
            rows = half
        m.rows = matrices.write_rows(self.vectors_dir, name, m.dtype, m.dim, m.rows, ids, rows)
        s.add(m)

    def matrix(self, name: str) -> matrices.MatrixView:
        """Committed rows of a matrix (memory-mapped), e.g. ``embeddings:birdnet-v2.4``.

        The view is reused while no rows are committed to that matrix, so its id index (see
        ``MatrixView.rows_for``) is built once, not on every call: repeated takes on 10M rows stay cheap.
        """
        with self._session() as s:
            m = s.get(Matrix, name)
        if m is None:
            raise UnknownMatrix(f"no matrix {name!r} in this store")
        view = self._views.get(name)
        if view is None or len(view) != m.rows or view.data.dtype != matrices.DTYPES[m.dtype] or \
                view.data.shape[1:] != (m.dim,):
            view = matrices.read_view(self.vectors_dir, name, m.dtype, m.dim, m.rows)
            self._views[name] = view
        return view

    def matrix_info(self, name: str) -> Optional[Matrix]:
        """The bookkeeping row of a matrix (dim, dtype, committed rows), or None when there is none."""
        with self._session() as s:
            return s.get(Matrix, name)

    def embeddings(self, embedding_space: str) -> matrices.MatrixView:
        return self.matrix(f"embeddings:{embedding_space}")

    def probabilities(self, model: ModelVersion) -> matrices.MatrixView | ComputedProbabilities:
        """The model's probability rows: stored, or recomputed from the embeddings with its output layer.

        Full rows of BirdNET's 6,522 classes would cost 13 KB per window as float16; they are the
        output layer applied to the embedding, so a store holding that layer (``set_output_layer``)
        keeps only the embedding and recomputes rows on demand (``ComputedProbabilities.take``).
        """
        try:
            return self.matrix(f"probabilities:{model.name}")
        except UnknownMatrix:
            layer = self.output_layer(model)
            if layer is None:
                scored = self.matrix_info(f"scores:{model.name}")
                if scored is not None and scored.rows:  # scored, so its rows came from a layer now gone
                    raise FileNotFoundError(
                        f"model {model.name!r}: its output layer {self._layer_path(model)} is missing, but the "
                        f"store holds its scores of {scored.rows:,} clips (its probabilities are recomputed from "
                        "that layer): was part of the workspace's vectors folder deleted? restore it from its "
                        "backup, or fine-tune again") from None
                raise
        return ComputedProbabilities(f"probabilities:{model.name}", self.embeddings(model.embedding_space), layer)

    def _layer_path(self, model: ModelVersion) -> Path:
        return self.vectors_dir / f"layer__{model.name.replace(':', '__').replace('/', '_')}.npz"

    def set_output_layer(self, model: ModelVersion, weights: np.ndarray, bias: np.ndarray, activation: str) -> None:
        """Keep a model's output layer (probabilities = activation(embedding @ weights.T + bias)), once per version.

        Written before the model's first outputs, so its probability rows are never stored: they are
        recomputed from the embedding. A layer already kept must match (a model version never changes).
        """
        weights = np.asarray(weights, dtype=np.float32)
        bias = np.asarray(bias, dtype=np.float32).ravel()
        if activation not in tuple(OutputType):
            raise StoreError(f"activation must be 'sigmoid' or 'softmax', got {activation!r}")
        if weights.shape != (len(model.labels), model.dim if model.kind == ModelKind.EMBEDDING else weights.shape[1]) \
                or bias.shape != (len(model.labels),):
            raise StoreError(f"model {model.name!r}: an output layer of {len(model.labels)} classes needs weights "
                             f"of shape ({len(model.labels)}, dim) and a bias of {len(model.labels)}; got "
                             f"{weights.shape} and {bias.shape}")
        path = self._layer_path(model)
        existing = self.output_layer(model)
        if existing is not None:
            if existing.weights.shape != weights.shape or existing.activation != activation:
                raise StoreError(f"model {model.name!r} already has another output layer in {path}")
            return
        write_atomically(path, lambda fh: np.savez(fh, weights=weights, bias=bias, activation=np.array(activation)),
                         binary=True, fsync=True)
        self._layers.pop(model.name, None)

    def output_layer(self, model: ModelVersion) -> Optional[OutputLayer]:
        """The model's output layer when the store keeps one (read once), else None."""
        if model.name not in self._layers:
            path = self._layer_path(model)
            if not path.exists():
                return None
            with np.load(path, allow_pickle=False) as f:
                self._layers[model.name] = OutputLayer(f["weights"], f["bias"], str(f["activation"]))
        return self._layers[model.name]
