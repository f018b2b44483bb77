"""Cold start: the first batch, with no labels — and possibly no model scores at all.

Uncertainty means little before any fine-tuning (and nothing without a model), so the first batch
should represent the pool: TypiClust's typical clips, inside proportional site x time quotas. With
a pretrained model's probabilities (BirdNET) the pool also knows each clip's predicted species,
which can be a stratum; without them (e.g. camera-trap embeddings from a backbone with no head),
``metadata_pool`` builds a pool from clip ids and metadata alone.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from sampler.base import Choice, QueryContext, QueryStrategy, candidate_count, check_int, ordinal
from sampler.combined import stratum_candidates
from sampler.strata import allocate_quotas, check_custom_columns, check_hemisphere, check_quotas, check_strata
from sampler.stratified import describe_quotas, stratify
from sampler.typiclust import typical_clusters, typiclust_order
from sampler.uncertain_diverse import round_robin_fill
from sampler.vectors import check_pca
from store.schema import ModelVersion
from store.store import Pool


def metadata_pool(clip_ids: Sequence[int] | np.ndarray, *, site: Optional[Sequence[Any]] = None,
                  device: Optional[Sequence[Any]] = None, start_time: Optional[Sequence[Any]] = None,
                  recording_id: Optional[Sequence[int]] = None, top_label: Optional[Sequence[Any]] = None,
                  name: str = "no-model", embedding_space: str = "") -> Pool:
    """A pool from clip ids and metadata only: no model scores (they are NaN).

    For a cold start without any classifier (embeddings from a backbone, metadata from the
    recorders). Columns left out are unknown (site/device/species "unknown", start_time NaT). The
    pool's model version is a placeholder named ``name`` (not stored). Strategies that need
    uncertainty refuse such a pool with a clear error; ``cold_start``, ``typiclust``,
    ``kcenter``, ``random`` and ``more_like_these`` work on it.
    """
    ids = np.asarray(clip_ids, dtype=np.int64)
    n = ids.size

    def column(values: Optional[Sequence[Any]], what: str, default: Any, dtype: Any) -> np.ndarray:
        if values is None:
            return np.full(n, default, dtype=dtype)
        arr = np.asarray(values, dtype=dtype)
        if arr.shape != (n,):
            raise ValueError(f"{what} must give one value per clip ({n}), got shape {arr.shape}")
        return arr

    nan = np.full(n, np.nan)
    mv = ModelVersion(name=name, kind="none", embedding_space=embedding_space, dim=0, labels=[])
    return Pool(model_version=mv, clip_id=ids,
                recording_id=column(recording_id, "recording_id", -1, np.int64),
                site=column(site, "site", "", object), device=column(device, "device", "", object),
                start_time=column(start_time, "start_time", np.datetime64("NaT"), "datetime64[s]"),
                max_entropy=nan, mean_entropy=nan.copy(), top1=nan.copy(), margin=nan.copy(),
                top_label=column(top_label, "top_label", "", object))


class ColdStart(QueryStrategy):
    """A representative first batch: typical clips of every cluster, within strata quotas.

    1. strata (site x hour by default) of the unselected clips and their quotas (proportional by
    default: the batch mirrors the pool); 2. a seeded random sample of each stratum, in proportion
    to its quota; 3. FAISS k-means of the sample into ``n_clusters`` (default: the budget) and each
    clip's typicality (TypiClust); 4. clusters taken in turn, largest first and those holding a
    labelled clip last, each giving its most typical clip from a stratum with quota left. So the
    quotas are exact when feasible and every cluster is covered before any gives two clips.

    Needs no labels and no model scores (``sampler.metadata_pool``); where the pool has a
    pretrained model's predictions, add "species" to ``strata`` to spread over predicted species.

    Parameters
    ----------
    strata : tuple of {"site", "device", "hour", "month", "season", "species"} or custom column names, default ("site", "hour")
    quotas : "equal", "proportional" or {stratum condition: weight}, default "proportional"
    min_per_stratum : int >= 0, default 0
    n_candidates : int >= 1 or None, default None
        Clips sampled to cluster; default max(50 x budget, 20,000), at most 100,000.
    n_clusters : int >= 1 or None, default None
        k for k-means (default: the budget).
    k_neighbors : int >= 1, default 20
        Neighbours that define typicality.
    pca : int >= 1 or None, default None
    custom_columns : {name: {clip_id: value}} or None, default None
    hemisphere : {"north", "south"}, default "north"
    near_duplicate_radius : float >= 0 or None, default None
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"
    random_state : int, numpy Generator or None, default None

    ``score`` is the typicality.
    """

    name = "cold_start"

    def __init__(self, strata: Sequence[str] = ("site", "hour"), quotas: Any = "proportional",
                 min_per_stratum: int = 0, n_candidates: Optional[int] = None, n_clusters: Optional[int] = None,
                 k_neighbors: int = 20, pca: Optional[int] = None,
                 custom_columns: Optional[Mapping[str, Mapping[Any, Any]]] = None, hemisphere: str = "north",
                 near_duplicate_radius: Optional[float] = None, near_duplicate_metric: str = "cosine",
                 random_state: Any = None):
        self.strata = strata
        self.quotas = quotas
        self.min_per_stratum = min_per_stratum
        self.n_candidates = n_candidates
        self.n_clusters = n_clusters
        self.k_neighbors = k_neighbors
        self.pca = pca
        self.custom_columns = custom_columns
        self.hemisphere = hemisphere
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric
        self.random_state = random_state

    def _validate_params(self) -> SimpleNamespace:
        p = super()._validate_params()
        p.custom = check_custom_columns(self.custom_columns)
        p.strata = check_strata(self.strata, p.custom)
        p.quotas = check_quotas(self.quotas, p.strata)
        p.min_per_stratum = check_int(self.min_per_stratum, "min_per_stratum", minimum=0)
        p.n_candidates = check_int(self.n_candidates, "n_candidates", allow_none=True)
        p.n_clusters = check_int(self.n_clusters, "n_clusters", allow_none=True)
        p.k_neighbors = check_int(self.k_neighbors, "k_neighbors", what="neighbours defining typicality")
        p.pca = check_pca(self.pca)
        p.hemisphere = check_hemisphere(self.hemisphere)
        return p

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        ids = np.asarray(ctx.pool.clip_id)
        st = stratify(ctx, avail, n_pick, strata=params.strata, quotas=params.quotas,
                      min_per_stratum=params.min_per_stratum, custom_columns=params.custom,
                      hemisphere=params.hemisphere, seed=params.seed)
        # a seeded random sample of every stratum, in proportion to its quota (never fewer than it)
        m = candidate_count(n_pick, avail.size, ctx.batch_budget, params.n_candidates)
        draw = np.random.default_rng(params.seed).random(avail.size)
        per_stratum = np.maximum(np.ceil(st.shares * (m / max(n_pick, 1))).astype(np.int64), st.targets)
        top = stratum_candidates(st.codes, draw, ids[avail], per_stratum)
        top = top[np.argsort(-draw[top], kind="stable")]
        rows, groups = avail[top], st.codes[top]
        x = ctx.embeddings(rows)
        keep, x = ctx.drop_near_excluded(np.arange(rows.size), x)
        rows, groups = rows[keep], groups[keep]
        if rows.size == 0:
            return []
        # quotas within what the sample holds (near-duplicates may have thinned a stratum)
        have = np.bincount(groups, minlength=len(st.keys))
        quotas = st.targets
        if np.any(quotas > have):
            quotas = allocate_quotas(np.minimum(st.capacity, have), n_pick, weights=st.weights,
                                     minimum=params.min_per_stratum, priority=st.priority)

        space, z = ctx.working_space(params.pca, params.seed, x)
        k = min(params.n_clusters or n_pick, rows.size)
        labels, typ, covered = typical_clusters(z, k, seed=params.seed, k_neighbors=params.k_neighbors,
                                                reference=ctx.references_in(space))
        pref = typiclust_order(labels, typ, covered)
        order = round_robin_fill(labels[pref], groups[pref].tolist(),
                                 {s: int(q) for s, q in enumerate(quotas.tolist()) if q > 0},
                                 accept=(lambda p: ctx.guard.accept(int(ids[rows[pref[p]]]), x[pref[p]]))
                                 if ctx.guard.active else None)
        sizes = np.bincount(labels, minlength=k)
        stratified = bool(params.strata)
        per_cluster: dict[int, int] = {}
        per_stratum_n: dict[int, int] = {}
        out = []
        for p in order:
            i = int(pref[p])
            c, g = int(labels[i]), int(groups[i])
            per_cluster[c] = per_cluster.get(c, 0) + 1
            per_stratum_n[g] = per_stratum_n.get(g, 0) + 1
            parts = [f"cold start: {ordinal(per_cluster[c])} most typical clip of cluster {c} (of {k}; "
                     f"{sizes[c]} of {rows.size} sampled clips"
                     f"{', already holds a labelled clip' if covered[c] else ''}), typicality {typ[i]:.1f}"]
            if stratified:
                parts.append(f"stratum {st.keys[g]}, quota {per_stratum_n[g]} of {int(quotas[g])} "
                             f"({describe_quotas(params.quotas, float(st.weights[g]), params.min_per_stratum)})")
            out.append(Choice(pos=int(rows[i]), score=float(typ[i]), cluster=c,
                              stratum=st.keys[g] if stratified else None, reason="; ".join(parts)))
        return out
