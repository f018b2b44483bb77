"""Embedding vectors for the sampler: reading candidate rows, the space distances are measured in,
k-means and nearest neighbours (FAISS).

Only the rows a strategy asks for are read from the memory-mapped matrix (a candidate subset, or a
scan in fixed-size chunks), so a pool of tens of millions of windows is never copied into RAM.
Diversity distances are Euclidean between L2-normalised vectors, optionally after PCA (then
normalised again): d = sqrt(2 - 2 cos), in [0, 2], so they compare sound directions, not loudness.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterator, Optional

import faiss
import numpy as np


class MatrixReader:
    """Rows of a matrix by clip id: a ``store.matrices.MatrixView``, or anything with ``take``.

    With a ``MatrixView`` every read goes through its own lookup (built once per view; a clip
    with several rows maps to its latest) and ``take_rows`` (positioned reads of just the rows
    asked for, so a candidate subset never maps the rest of a large file into memory). An object
    with only ``take(clip_ids)`` (the ``Embeddings`` protocol) is read through that.
    """

    def __init__(self, view: Any):
        self.view = view
        self.name: str = getattr(view, "name", "?")

    @property
    def has_rows(self) -> bool:
        """Whether rows can be looked up without reading them (a ``MatrixView``)."""
        return all(hasattr(self.view, a) for a in ("rows_for", "take_rows", "contains", "data"))

    @property
    def dim(self) -> int:
        return int(self.view.data.shape[1])

    def rows_for(self, clip_ids: np.ndarray) -> np.ndarray:
        """Row positions of ``clip_ids``; KeyError naming the first id with no row."""
        return np.asarray(self.view.rows_for(np.asarray(clip_ids, dtype=np.int64)), dtype=np.int64)

    def has(self, clip_ids: np.ndarray) -> np.ndarray:
        """Which of ``clip_ids`` have a row (bool per id)."""
        clip_ids = np.asarray(clip_ids, dtype=np.int64)
        if not self.has_rows:
            return np.ones(clip_ids.size, dtype=bool)
        return np.asarray(self.view.contains(clip_ids), dtype=bool)

    def rows(self, rows: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """Matrix rows by position, as a new contiguous array."""
        return np.ascontiguousarray(self.view.take_rows(np.asarray(rows, dtype=np.int64), dtype=dtype))

    def take(self, clip_ids: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """Rows of ``clip_ids`` in the order given; KeyError naming the first id with no row."""
        return np.ascontiguousarray(self.view.take(np.asarray(clip_ids, dtype=np.int64)), dtype=dtype)


def read_embeddings(reader: MatrixReader, clip_ids: np.ndarray, what: str = "a candidate") -> np.ndarray:
    """Embeddings of ``clip_ids`` as float32, or a ValueError a user can act on."""
    try:
        x = reader.take(clip_ids)
    except KeyError as e:
        raise ValueError(f"embeddings missing for {what} in matrix {reader.name!r}: "
                         f"{e.args[0] if e.args else e}; ingest the recording's embeddings or sample under a "
                         "model with them") from e
    if not np.isfinite(x).all():
        raise ValueError(f"embeddings of {what} contain NaN or infinite values in matrix {reader.name!r}")
    return x


def chunks(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), so distances compare directions (cosine)."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    out /= np.where(norms > 0, norms, 1.0)[:, None]
    return out


def check_pca(pca: Any) -> Optional[int]:
    if pca is None:
        return None
    if isinstance(pca, bool) or not isinstance(pca, numbers.Integral) or pca < 1:
        raise ValueError(f"pca must be None or an integer >= 1 (dimensions to keep before clustering), got {pca!r}")
    return int(pca)


class WorkingSpace:
    """The space diversity is measured in: L2-normalise, optionally PCA to ``pca`` dims, normalise.

    The PCA is fitted on the candidates (at most ``max_fit`` of them, a seeded sample: the top
    eigenvectors of their covariance, numpy ``eigh``) and applied to any other vectors (labelled
    clips) so that all distances are comparable.
    """

    def __init__(self, pca: Optional[int], *, seed: int, max_fit: int = 8_192):
        self.pca = pca
        self.seed = seed
        self.max_fit = max_fit
        self.mean_: Optional[np.ndarray] = None
        self.components_: Optional[np.ndarray] = None  # (dim, pca)

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        z = l2_normalize(x)
        n, d = z.shape
        if self.pca is None or self.pca >= d or n <= self.pca:
            return z  # nothing to reduce (pca >= the dimension, or so few candidates PCA would only rotate them)
        fit = z
        if n > self.max_fit:
            pick = np.sort(np.random.default_rng(self.seed).choice(n, self.max_fit, replace=False))
            fit = z[pick]
        self.mean_ = fit.mean(axis=0, dtype=np.float64).astype(np.float32)
        centred = fit - self.mean_
        _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        self.components_ = np.ascontiguousarray(vectors[:, ::-1][:, : self.pca], dtype=np.float32)
        return self._project(z)

    def _project(self, z: np.ndarray) -> np.ndarray:
        if self.components_ is None:
            return z
        return l2_normalize(z @ self.components_ - self.mean_ @ self.components_)  # (z - mean) C, no big temporary

    def transform(self, x: np.ndarray) -> np.ndarray:
        return self._project(l2_normalize(x))


def nearest(queries: np.ndarray, base: np.ndarray, *, chunk: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest row of ``base`` and that row's index.

    Exact (FAISS brute force); ``base`` is searched ``chunk`` rows at a time. Empty base: inf, -1.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    dist = np.full(q.shape[0], np.inf)
    idx = np.full(q.shape[0], -1, dtype=np.int64)
    if q.shape[0] == 0:
        return dist, idx
    for sl in chunks(base.shape[0], chunk):
        d2, i = faiss.knn(q, np.ascontiguousarray(base[sl], dtype=np.float32), 1)
        d = np.sqrt(np.maximum(d2[:, 0].astype(np.float64), 0.0))
        better = d < dist
        dist[better] = d[better]
        idx[better] = i[better, 0] + sl.start
    return dist, idx


def typical_distance(z: np.ndarray, *, seed: int, pairs: int = 4096) -> float:
    """Median distance between seeded random pairs of rows: what "far apart" means for these vectors."""
    n = z.shape[0]
    if n < 2:
        return 1.0
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, pairs)
    b = (a + rng.integers(1, n, pairs)) % n  # never a row with itself
    d = np.linalg.norm(z[a] - z[b], axis=1)
    med = float(np.median(d))
    return med if med > 1e-6 else 1.0


def kmeans_labels(x: np.ndarray, n_clusters: int, *, seed: int, niter: int = 25, n_init: int = 10) -> np.ndarray:
    """FAISS k-means cluster of each row of ``x``; deterministic for a seed.

    k-means++ seeding alone often puts two centres in one tight group and merges two others, so
    the best of ``n_init`` seedings (lowest within-cluster distance) is kept.
    """
    labels, _ = kmeans(x, n_clusters, seed=seed, niter=niter, n_init=n_init, subsample=False)
    return labels


def kmeans(x: np.ndarray, n_clusters: int, *, seed: int, niter: int = 25, n_init: Optional[int] = None,
           subsample: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """FAISS k-means: (cluster of each row, centroids); deterministic for a seed.

    ``n_init=None`` runs as many k-means++ seedings (1 to 10, best kept) as fit a fixed amount of
    work, so small problems get the robust answer and a 50,000 x 1,024 one stays a few seconds.
    With ``subsample`` FAISS trains on at most 256 seeded points per centroid (then assigns all).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be between 1 and the {n} rows to cluster, got {n_clusters}")
    if n_clusters == 1:
        return np.zeros(n, dtype=np.int64), x.mean(axis=0, keepdims=True)
    if n_init is None:
        work = float(min(n, 256 * n_clusters)) * n_clusters * d * niter
        n_init = int(max(1, min(10, 2e10 // max(work, 1.0))))
    km = faiss.Kmeans(d, int(n_clusters), niter=niter, nredo=int(n_init), seed=int(seed), min_points_per_centroid=1,
                      max_points_per_centroid=256 if subsample else max(256, n),
                      init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)
    km.train(x)
    _, assign = km.index.search(x, 1)
    return assign.ravel().astype(np.int64), np.asarray(km.centroids, dtype=np.float32)
