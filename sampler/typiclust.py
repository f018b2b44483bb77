"""TypiClust: the most typical clip of each of the largest uncovered clusters (cold start).

Hacohen et al. (2022): with few or no labels, the best first labels are typical examples of the
dense regions of the data, not the uncertain or outlying ones. Candidates are clustered with FAISS
k-means; a clip's typicality is 1 / (mean distance to its k nearest neighbours in its cluster);
clusters already holding a labelled clip come last.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Literal, Optional

import faiss
import numpy as np

from sampler.base import Choice, QueryContext, QueryStrategy, check_choice, check_int, ordinal, pick_candidates
from sampler.core_set import CANDIDATE_MODES
from sampler.uncertain_diverse import round_robin_fill
from sampler.uncertainty import UncertaintyMeasure, check_measure
from sampler.vectors import check_pca, kmeans


def typicality(x: np.ndarray, k_neighbors: int = 20) -> np.ndarray:
    """1 / (mean Euclidean distance to the ``k_neighbors`` nearest other rows); 0 for a lone row."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    k = min(int(k_neighbors), n - 1)
    if k <= 0:
        return np.zeros(n)
    d2, idx = faiss.knn(x, x, k + 1)
    d = np.sqrt(np.maximum(d2.astype(np.float64), 0.0))
    # drop each row's own entry (distance 0); with exact duplicates it may not come first
    own = idx == np.arange(n)[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
    keep = np.ones_like(own)
    keep[np.arange(n), drop] = False
    mean = d[keep].reshape(n, k).mean(axis=1)
    return 1.0 / (mean + 1e-6)


def typical_clusters(x: np.ndarray, n_clusters: int, *, seed: int, k_neighbors: int = 20,
                     reference: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-means clusters of the rows of ``x``, numbered by size (0 = largest; ties by first row),
    each row's typicality within its cluster, and which clusters hold a ``reference`` row."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    m = x.shape[0]
    k = min(int(n_clusters), m)
    labels, centroids = kmeans(x, k, seed=seed)
    sizes = np.bincount(labels, minlength=k)
    first = np.full(k, m, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(m))
    order_c = np.lexsort((first, -sizes))  # largest first, ties by first row
    remap = np.empty(k, dtype=np.int64)
    remap[order_c] = np.arange(k)
    labels = remap[labels]
    centroids = centroids[order_c]
    covered = np.zeros(k, dtype=bool)
    if reference is not None and len(reference):
        _, assign = faiss.knn(np.ascontiguousarray(reference, dtype=np.float32), centroids, 1)
        covered[np.unique(assign[:, 0])] = True
    typ = np.zeros(m)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    for c in range(k):
        members = order[bounds[c]:bounds[c + 1]]
        typ[members] = typicality(x[members], k_neighbors)
    return labels, typ, covered


def typiclust_order(labels: np.ndarray, typ: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Rows in TypiClust preference order: uncovered clusters before covered, larger (lower id)
    first, most typical first inside a cluster (ties: lower row)."""
    rows = np.arange(labels.size)
    return np.lexsort((rows, -typ, labels, covered[labels]))


def typiclust(x: np.ndarray, n: int, *, seed: int, n_clusters: Optional[int] = None, k_neighbors: int = 20,
              reference: Optional[np.ndarray] = None,
              accept: Optional[Callable[[int], bool]] = None) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``n`` row indices of ``x`` chosen by TypiClust, in pick order.

    Returns (order, cluster of each row, typicality of each row, covered flag per cluster).
    ``n_clusters`` defaults to ``n``; clusters are numbered by size, largest first. Clusters holding
    a ``reference`` row (labelled clips, in the same space) are covered and visited last; each
    round takes the next most typical clip of every cluster, so every cluster gives one clip before
    any gives two. ``accept(i)`` may veto a clip (near-duplicates).
    """
    labels, typ, covered = typical_clusters(x, int(n_clusters or n), seed=seed, k_neighbors=k_neighbors,
                                            reference=reference)
    pref = typiclust_order(labels, typ, covered)
    one = np.zeros(labels.size, dtype=object)
    order = round_robin_fill(labels[pref], one, {0: min(int(n), labels.size)},
                             accept=(lambda p: accept(int(pref[p]))) if accept is not None else None)
    return [int(pref[p]) for p in order], labels, typ, covered


class TypiClust(QueryStrategy):
    """Typical clips of the largest clusters: a representative batch for a cold start.

    Candidates are a seeded random sample of the unselected pool (``candidates="random"``, what
    TypiClust assumes) or its most uncertain clips; they are clustered (``n_clusters``, default the
    budget) with FAISS k-means after L2 normalisation (and ``pca``), and each cluster, largest
    first and those without labelled clips before those with, gives its most typical clip.

    Parameters
    ----------
    candidates : {"random", "uncertain"}, default "random"
    uncertainty : {"max_entropy", "mean_entropy", "margin", "least_confidence", "ratio", "categorical_entropy"} or None, default None
        None: the measure that fits the pool model's outputs (margin for sigmoid, categorical_entropy for softmax; see ``sampler.uncertainty.DEFAULT_MEASURES``).
        Ranks candidates when ``candidates="uncertain"``.
    n_candidates : int >= 1 or None, default None
        Candidates to read; default max(50 x budget, 20,000), at most 100,000.
    n_clusters : int >= 1 or None, default None
        k for k-means (default: the budget).
    k_neighbors : int >= 1, default 20
        Neighbours that define typicality (the paper's 20).
    pca : int >= 1 or None, default None
    near_duplicate_radius : float >= 0 or None, default None
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"
    random_state : int, numpy Generator or None, default None
        Seeds the candidate sample and the k-means.

    Works without any model scores (``sampler.metadata_pool``). ``score`` is the typicality.
    """

    name = "typiclust"

    def __init__(self, candidates: Literal["random", "uncertain"] = "random",
                 uncertainty: Optional[UncertaintyMeasure] = None, n_candidates: Optional[int] = None,
                 n_clusters: Optional[int] = None, k_neighbors: int = 20, pca: Optional[int] = None,
                 near_duplicate_radius: Optional[float] = None, near_duplicate_metric: str = "cosine",
                 random_state: Any = None):
        self.candidates = candidates
        self.uncertainty = uncertainty
        self.n_candidates = n_candidates
        self.n_clusters = n_clusters
        self.k_neighbors = k_neighbors
        self.pca = pca
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric
        self.random_state = random_state

    def _validate_params(self) -> SimpleNamespace:
        check_choice(self.candidates, "candidates", CANDIDATE_MODES)
        check_measure(self.uncertainty, allow_none=True)
        p = super()._validate_params()
        p.n_candidates = check_int(self.n_candidates, "n_candidates", allow_none=True)
        p.n_clusters = check_int(self.n_clusters, "n_clusters", allow_none=True)
        p.k_neighbors = check_int(self.k_neighbors, "k_neighbors", what="neighbours defining typicality")
        p.pca = check_pca(self.pca)
        return p

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        measure_name = ctx.measure(self.uncertainty)
        rows, _, x = pick_candidates(ctx, avail, n_pick, mode=self.candidates, measure=measure_name,
                                     n_candidates=params.n_candidates, seed=params.seed)
        if rows.size == 0:
            return []
        ids = np.asarray(ctx.pool.clip_id)
        space, z = ctx.working_space(params.pca, params.seed, x)
        ref = ctx.references_in(space)
        k = min(params.n_clusters or n_pick, rows.size)
        order, labels, typ, covered = typiclust(
            z, n_pick, seed=params.seed, n_clusters=k, k_neighbors=params.k_neighbors, reference=ref,
            accept=(lambda i: ctx.guard.accept(int(ids[rows[i]]), x[i])) if ctx.guard.active else None)
        sizes = np.bincount(labels, minlength=k)
        per_cluster: dict[int, int] = {}
        out = []
        for i in order:
            c = int(labels[i])
            per_cluster[c] = per_cluster.get(c, 0) + 1
            kn = min(params.k_neighbors, int(sizes[c]) - 1)
            typ_note = (f"typicality {typ[i]:.1f} (1 / mean distance {1 / typ[i]:.3f} to its {kn} nearest "
                        f"neighbours in the cluster)") if typ[i] > 0 else "the cluster's only clip"
            out.append(Choice(pos=int(rows[i]), score=float(typ[i]), cluster=c,
                              reason=f"TypiClust: {ordinal(per_cluster[c])} most typical clip of cluster {c} "
                                     f"(of {k}; {sizes[c]} of {rows.size} {self.candidates} candidates"
                                     f"{', already holds a labelled clip' if covered[c] else ''}); {typ_note}"))
        return out
