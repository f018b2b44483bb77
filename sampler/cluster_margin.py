"""Cluster-margin: the lowest-margin candidates, taken round-robin from their clusters, smallest first.

Citovsky et al. (2021) scale batch active learning to millions of examples by clustering once,
keeping the k_m = 10 x budget lowest-margin examples and sampling their clusters round-robin from
the smallest cluster up, at random inside a cluster. Here the clusters are FAISS k-means clusters of
the candidates' embeddings (hierarchical clustering of a whole pool does not fit in memory at the
scale the workbench targets); the rest follows the paper.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Optional

import numpy as np

from sampler.base import (UNCERTAINTY_MEASURES, Choice, QueryContext, QueryStrategy, check_int, ordinal,
                          pick_candidates)
from sampler.uncertainty import UncertaintyMeasure, check_measure
from sampler.vectors import check_pca, kmeans


def cluster_margin_order(clusters: np.ndarray, n: int, *, seed: int,
                         accept: Optional[Callable[[int], bool]] = None) -> list[int]:
    """Up to ``n`` row indices: clusters visited smallest first (ties: lower id), one random member each per round."""
    clusters = np.asarray(clusters, dtype=np.int64)
    rng = np.random.default_rng(seed)
    ids = np.unique(clusters)
    sizes = np.array([(clusters == c).sum() for c in ids])
    visit = ids[np.lexsort((ids, sizes))]
    members = {int(c): rng.permutation(np.flatnonzero(clusters == c)).tolist() for c in visit}
    heads = {int(c): 0 for c in visit}
    out: list[int] = []
    while len(out) < n:
        progressed = False
        for c in visit.tolist():
            while heads[c] < len(members[c]):
                i = members[c][heads[c]]
                heads[c] += 1
                if accept is None or accept(i):
                    out.append(int(i))
                    progressed = True
                    break
            if len(out) == n:
                break
        if not progressed:
            break
    return out


class ClusterMargin(QueryStrategy):
    """Cluster-margin (Citovsky et al. 2021): uncertain candidates, small clusters first, random inside.

    Parameters
    ----------
    uncertainty : {"max_entropy", "mean_entropy", "margin", "least_confidence", "ratio", "categorical_entropy"} or None, default None
        None: the measure that fits the pool model's outputs (margin for both sigmoid and softmax outputs; see ``sampler.uncertainty.DEFAULT_MEASURES``).
        The paper uses margin.
    n_candidates : int >= 1 or None, default None
        The k_m most uncertain candidates; default 10 x budget (the paper's choice).
    n_clusters : int >= 1 or None, default None
        k for k-means on the candidates (default: the budget).
    pca : int >= 1 or None, default None
    near_duplicate_radius : float >= 0 or None, default None
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"
    random_state : int, numpy Generator or None, default None
        Seeds the k-means and the draw inside each cluster.

    ``score`` is the clip's uncertainty.
    """

    name = "cluster_margin"

    def __init__(self, uncertainty: Optional[UncertaintyMeasure] = None, n_candidates: Optional[int] = None,
                 n_clusters: Optional[int] = None, pca: Optional[int] = None,
                 near_duplicate_radius: Optional[float] = None, near_duplicate_metric: str = "cosine",
                 random_state: Any = None):
        self.uncertainty = uncertainty
        self.n_candidates = n_candidates
        self.n_clusters = n_clusters
        self.pca = pca
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric
        self.random_state = random_state

    def _validate_params(self) -> SimpleNamespace:
        check_measure(self.uncertainty, allow_none=True)
        p = super()._validate_params()
        p.n_candidates = check_int(self.n_candidates, "n_candidates", allow_none=True)
        p.n_clusters = check_int(self.n_clusters, "n_clusters", allow_none=True)
        p.pca = check_pca(self.pca)
        return p

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        measure_name = ctx.measure(self.uncertainty, "margin")
        rows, scores, x = pick_candidates(ctx, avail, n_pick, mode="uncertain", measure=measure_name,
                                          n_candidates=params.n_candidates or 10 * ctx.batch_budget,
                                          seed=params.seed)
        if rows.size == 0:
            return []
        ids = np.asarray(ctx.pool.clip_id)
        _, z = ctx.working_space(params.pca, params.seed, x)
        k = min(params.n_clusters or n_pick, rows.size)
        labels, _ = kmeans(z, k, seed=params.seed)
        # number clusters by size, smallest first, so the reason's cluster ids read in visiting order
        sizes = np.bincount(labels, minlength=k)
        first = np.full(k, rows.size, dtype=np.int64)
        np.minimum.at(first, labels, np.arange(rows.size))
        by_size = np.lexsort((first, sizes))
        remap = np.empty(k, dtype=np.int64)
        remap[by_size] = np.arange(k)
        labels = remap[labels]
        sizes = sizes[by_size]
        order = cluster_margin_order(labels, n_pick, seed=params.seed,
                                     accept=(lambda i: ctx.guard.accept(int(ids[rows[i]]), x[i]))
                                     if ctx.guard.active else None)
        measure = UNCERTAINTY_MEASURES[measure_name]
        n_nonempty = int((sizes > 0).sum())
        return [Choice(pos=int(rows[i]), score=float(scores[i]), cluster=int(labels[i]),
                       reason=f"cluster-margin: {measure} {scores[i]:.3f} ({ordinal(i + 1)} most uncertain of "
                              f"{rows.size} candidates); random clip of cluster {int(labels[i])} ({sizes[labels[i]]} "
                              f"candidates; clusters visited smallest first, {n_nonempty} in all)")
                for i in order]
