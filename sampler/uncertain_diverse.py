"""Uncertain-and-diverse batches: the most uncertain clips, spread over embedding clusters and strata.

Uncertainty alone fills a batch with near-duplicates (ten windows of the same wren song); clustering
the candidates' embeddings and taking clusters in turn spreads the batch over distinct sounds, and
quotas per site x hour x species keep one busy site from eating the budget (TABMON's finding:
stratification lifts the worst stratum). The parts are public pure functions so they can be tested
and reused by later strategies.
"""

from __future__ import annotations

import numbers
import warnings
from collections import Counter, defaultdict
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from sampler.base import (UNCERTAINTY_MEASURES, Choice, QueryContext, QueryStrategy, SamplerWarning, check_int,
                          check_strata, most_uncertain, ordinal, stratum_keys)
from sampler.uncertainty import UncertaintyMeasure, check_measure
from sampler.vectors import check_pca, kmeans, kmeans_labels, l2_normalize  # noqa: F401 - re-exported

#: Above this many multiply-adds per k-means iteration (candidates x clusters x dimensions) the candidates are
#: clustered on AUTO_PCA principal components instead of every dimension.
EXACT_WORK = 5e9
AUTO_PCA = 64

__all__ = ["UncertainDiverse", "kmeans_labels", "l2_normalize", "most_uncertain", "relabel_by_first",
           "round_robin_fill", "stratified_quotas", "cover_clusters",
           "quota_shares"]


# --------------------------------------------------------------------------- pure parts
def relabel_by_first(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, ... in order of first appearance (rows are sorted most uncertain first).

    Cluster 0 then holds the most uncertain candidate, and the numbering no longer depends on
    k-means' arbitrary centroid order.
    """
    _, first = np.unique(labels, return_index=True)
    old_in_order = labels[np.sort(first)]
    mapping = {int(old): new for new, old in enumerate(old_in_order)}
    return np.array([mapping[int(x)] for x in labels], dtype=np.int64)


def quota_shares(counts: Mapping[str, int], budget: int,
                 priority: Optional[Sequence[str]] = None) -> tuple[dict[str, int], list[str], int]:
    """Equal quotas before the last, uneven slots: ``(base, open strata in priority order, slots left)``.

    Water-filling: every stratum with clips left gets an equal share of what remains; a stratum
    that runs out keeps what it holds and its unused share goes round again. Once fewer slots remain
    than strata with room, equality cannot decide who gets them: any of those strata may take one
    (``stratified_quotas`` gives them in ``priority`` order; ``round_robin_fill`` first to strata
    that let the batch cover another cluster).
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    order = list(priority) if priority is not None else sorted(counts)
    if set(order) != set(counts):
        raise ValueError("priority must list exactly the strata in counts")
    quotas = {s: 0 for s in order}
    remaining = min(int(budget), int(sum(counts.values())))
    while remaining > 0:
        open_strata = [s for s in order if quotas[s] < counts[s]]
        share, extra = divmod(remaining, len(open_strata))
        if share == 0:
            return quotas, open_strata, remaining
        for i, s in enumerate(open_strata):
            give = min(share + (1 if i < extra else 0), counts[s] - quotas[s])
            quotas[s] += give
            remaining -= give
    return quotas, [], 0


def stratified_quotas(counts: Mapping[str, int], budget: int,
                      priority: Optional[Sequence[str]] = None) -> dict[str, int]:
    """Equal quotas per stratum, capped by what each stratum holds, leftovers to strata with room.

    ``quota_shares``, with the last uneven slots given in ``priority`` order (default: by name).
    The total is ``min(budget, sum(counts))``.
    """
    quotas, open_strata, extra = quota_shares(counts, budget, priority)
    for s in open_strata[:extra]:
        quotas[s] += 1
    return quotas


def cover_clusters(clusters: np.ndarray, strata: Sequence[Any], quotas: Mapping[Any, int],
                   flexible: Sequence[Any] = (), extra: int = 0) -> tuple[dict[int, int], dict[Any, int]]:
    """One row per cluster for as many clusters as the quotas allow: ``({cluster: position}, quotas)``.

    A b-matching of clusters to strata (a stratum takes at most its quota; ``extra`` more slots go one
    each to strata of ``flexible``, wherever they let another cluster in, the rest in ``flexible``
    order). Clusters are served best first (the one whose best row is most uncertain), each through an
    augmenting path, so a cluster served earlier may move to another of its strata to make room but
    never loses its place. With fixed quotas this covers the most clusters any batch within them can
    (at most their sum), each by its most uncertain row in the stratum it was given. Rows must be
    sorted most uncertain first. The quotas returned have every extra slot given.
    """
    room = {s: int(q) for s, q in quotas.items()}
    bonus = {s: 1 for s in flexible}  # one extra slot each, while ``extra`` lasts
    extra = int(extra)
    first_in: dict[int, dict[Any, int]] = defaultdict(dict)  # cluster -> stratum -> its best row there
    for pos, (c, s) in enumerate(zip(np.asarray(clusters).tolist(), strata)):
        if room.get(s, 0) > 0 or s in bonus:
            first_in[int(c)].setdefault(s, pos)

    strata_of = {c: sorted(rows, key=rows.get) for c, rows in first_in.items()}  # best row first, once

    def has_room(s: Any) -> bool:
        return room.get(s, 0) > 0 or (extra > 0 and bonus.get(s, 0) > 0)

    given: dict[int, Any] = {}  # cluster -> stratum
    holders: dict[Any, list[int]] = defaultdict(list)  # stratum -> clusters given it
    for c in sorted(first_in, key=lambda c: min(first_in[c].values())):
        # breadth-first search from c over strata; a stratum with room ends the path
        parent: dict[Any, int] = {}  # stratum -> the cluster that reached it
        came: dict[int, Any] = {c: None}  # cluster -> the stratum it holds and was reached through
        queue, end = [c], None
        while queue and end is None:
            nxt = []
            for c1 in queue:
                for s in strata_of[c1]:
                    if s in parent:
                        continue
                    parent[s] = c1
                    if has_room(s):
                        end = s
                        break
                    for c2 in holders[s]:
                        if c2 not in came:
                            came[c2] = s
                            nxt.append(c2)
                if end is not None:
                    break
            queue = nxt
        if end is None:
            continue
        if room.get(end, 0) > 0:
            room[end] -= 1
        else:
            bonus[end] -= 1
            extra -= 1
        s = end
        while s is not None:  # shift each cluster on the path into the stratum it reached
            c1 = parent[s]
            if c1 in given:
                holders[given[c1]].remove(c1)
            given[c1] = s
            holders[s].append(c1)
            s = came[c1]
    final = dict(quotas)
    for s in flexible:
        if bonus[s] == 0 or extra > 0:
            final[s] = final.get(s, 0) + 1
            extra -= bonus[s]
    return {c: first_in[c][s] for c, s in given.items()}, final


def round_robin_fill(clusters: np.ndarray, strata: np.ndarray, quotas: Mapping[str, int],
                     accept: Optional[Callable[[int], bool]] = None, flexible: Sequence[str] = (),
                     extra: int = 0) -> list[int]:
    """Positions picked, in pick order: every cluster the quotas allow once, then clusters in turn.

    Rows must be sorted most uncertain first. The first round covers as many clusters as the quotas
    permit (``cover_clusters``: min(batch, clusters) unless a quota forbids it), in order of
    uncertainty; each later round visits every cluster that still has a clip in a stratum with quota
    left, best cluster first (the one whose best such clip is most uncertain), and takes that clip.
    Quotas must not exceed the rows available per stratum. ``accept(pos)`` may veto a clip (a
    near-duplicate of an earlier pick); the cluster's next clip is tried instead. ``flexible`` and
    ``extra``: slots any of those strata may take (``quota_shares``), given where they cover a cluster.
    """
    cover, quotas = cover_clusters(clusters, list(strata), quotas, flexible, extra)
    left = dict(quotas)
    members: dict[int, list[int]] = defaultdict(list)
    for pos, c in enumerate(np.asarray(clusters).tolist()):
        members[int(c)].append(pos)
    heads = {c: 0 for c in members}  # index into members[c] of the next unexamined row
    strata_list = list(strata)
    done: set[int] = set()  # rows taken or vetoed

    def next_eligible(c: int) -> Optional[int]:
        # Strata only ever fill up, so a row skipped here can never become eligible again.
        rows = members[c]
        while heads[c] < len(rows) and (rows[heads[c]] in done or left.get(strata_list[rows[heads[c]]], 0) <= 0):
            heads[c] += 1
        return rows[heads[c]] if heads[c] < len(rows) else None

    picked: list[int] = []
    target = sum(quotas.values())
    for c, pos in sorted(cover.items(), key=lambda item: item[1]):
        stratum = strata_list[pos]
        while accept is not None and not accept(pos):  # vetoed: the cluster's next row in the same stratum
            done.add(pos)
            pos = next((p for p in members[c] if p > pos and p not in done and strata_list[p] == stratum), None)
            if pos is None:
                break
        if pos is None or left[stratum] <= 0:
            continue
        picked.append(pos)
        done.add(pos)
        left[stratum] -= 1
    while len(picked) < target:
        firsts = {c: next_eligible(c) for c in members}
        round_order = sorted((pos, c) for c, pos in firsts.items() if pos is not None)
        if not round_order:
            break
        for _, c in round_order:
            pos = next_eligible(c)
            while pos is not None and accept is not None and not accept(pos):
                done.add(pos)
                pos = next_eligible(c)
            if pos is None:
                continue
            picked.append(pos)
            done.add(pos)
            left[strata_list[pos]] -= 1
            if len(picked) == target:
                break
    return picked


# --------------------------------------------------------------------------- the strategy
class UncertainDiverse(QueryStrategy):
    """The most uncertain clips, spread across embedding clusters and site/hour/species strata.

    1. drop excluded clips; 2. keep the ``budget * candidate_factor`` most uncertain; 3. cluster
    their L2-normalised embeddings with FAISS k-means; 4. give each stratum present among the
    candidates an equal quota (capped by what it holds, leftovers redistributed); 5. fill the quotas
    taking clusters in turn, most uncertain first inside a cluster. Same inputs and seed, same batch.
    This is cluster-then-pick (most uncertain per cluster) with strata; ``Stratified`` and
    ``Combined`` offer proportional and weighted quotas.

    Parameters
    ----------
    candidate_factor : float >= 1, default 20
        How many candidates per batch slot to consider; 1 is pure uncertainty sampling.
    n_clusters : int >= 1 or None, default None
        k for k-means; None uses min(budget, number of candidates).
    strata : tuple of {"site", "device", "hour", "month", "season", "species"}, default ("site", "hour", "species")
        Pool columns whose combinations get equal quotas; () disables stratification.
        "species" is the top predicted label under the pool's model version.
    uncertainty : {"max_entropy", "mean_entropy", "margin", "least_confidence", "ratio", "categorical_entropy"} or None, default None
        None: the measure that fits the pool model's outputs (margin for sigmoid, categorical_entropy for softmax; see ``sampler.uncertainty.DEFAULT_MEASURES``).
        Which uncertainty to rank by (higher = more uncertain; see ``sampler.uncertainty``).
    pca : int >= 1 or None, default None
        Reduce the candidates' embeddings to this many dimensions (PCA) before clustering. None keeps
        every dimension while the clustering stays small, and uses ``AUTO_PCA`` (64) components once
        candidates x clusters x dimensions passes ``EXACT_WORK`` (about a budget of 500 on 1,024-d
        BirdNET embeddings): k-means is then 16x cheaper; ``bench/sampling.py`` prints how far that batch
        is from the full-dimensional one.
    near_duplicate_radius : float >= 0 or None, default None
        Skip candidates within this distance of an excluded or already picked clip.
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"
        How that distance is measured (see ``sampler.exclusion``).
    random_state : int, numpy Generator or None, default None
        Seed of the k-means; None draws a fresh seed (``sample`` records it on the run).

    A budget larger than the clips left in the pool picks them all with a ``SamplerWarning``.
    """

    name = "uncertain_diverse"

    def __init__(self, candidate_factor: float = 20, n_clusters: Optional[int] = None,
                 strata: Sequence[str] = ("site", "hour", "species"),
                 uncertainty: Optional[UncertaintyMeasure] = None, pca: Optional[int] = None,
                 near_duplicate_radius: Optional[float] = None, near_duplicate_metric: str = "cosine",
                 random_state: Any = None):
        self.candidate_factor = candidate_factor
        self.n_clusters = n_clusters
        self.strata = strata
        self.uncertainty = uncertainty
        self.pca = pca
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric
        self.random_state = random_state

    def _validate_params(self) -> SimpleNamespace:
        cf = self.candidate_factor
        if isinstance(cf, bool) or not isinstance(cf, numbers.Real) or not np.isfinite(cf) or cf < 1:
            raise ValueError(f"candidate_factor must be a number >= 1 (candidates per batch slot), got {cf!r}")
        check_int(self.n_clusters, "n_clusters", allow_none=True)
        check_measure(self.uncertainty, allow_none=True)
        p = super()._validate_params()
        p.strata = check_strata(self.strata)
        p.pca = check_pca(self.pca)
        return p

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        measure_name = ctx.measure(self.uncertainty)
        pool = ctx.pool
        scores_all = ctx.scores(avail, measure_name)  # refuses NaN

        # 2. candidates: the most uncertain, sorted most uncertain first (ties: lower clip id)
        n_cand = min(avail.size, max(n_pick, int(np.ceil(n_pick * float(self.candidate_factor)))))
        top = most_uncertain(scores_all, pool.clip_id[avail], n_cand)
        cand = avail[top]
        x = ctx.embeddings(cand)
        keep_rows, x = ctx.drop_near_excluded(np.arange(cand.size), x)
        cand, cand_scores = cand[keep_rows], scores_all[top][keep_rows]
        if cand.size == 0:
            return []
        n_cand = cand.size
        cand_ids = pool.clip_id[cand]

        # 3. clusters of the candidates' embeddings
        k = int(self.n_clusters) if self.n_clusters is not None else min(n_pick, n_cand)
        if k > n_cand:
            warnings.warn(f"n_clusters={k} exceeds the {n_cand} candidates; using {n_cand} clusters",
                          SamplerWarning, stacklevel=3)
            k = n_cand
        pca = params.pca
        if pca is None and n_cand * k * x.shape[1] > EXACT_WORK and x.shape[1] > AUTO_PCA:
            pca = AUTO_PCA  # exact k-means on 20,000 x 1,024 with 1,000 centres takes minutes on 2 cores
        _, z = ctx.working_space(pca, params.seed, x)
        clusters = relabel_by_first(kmeans(z, k, seed=params.seed, subsample=False)[0])
        n_clusters_found = int(clusters.max()) + 1

        # 4. quotas over the strata present among the candidates; extras go to the strata whose
        # best candidate is most uncertain (candidates are sorted, so first appearance order)
        keys = stratum_keys(pool, params.strata, cand)
        priority = list(dict.fromkeys(keys.tolist()))
        counts = {s: int(n) for s, n in zip(*np.unique(keys, return_counts=True))}
        base, flexible, extra = quota_shares(counts, min(n_pick, n_cand), priority)

        # 5. fill the quotas cluster by cluster, every cluster the quotas allow first
        order = round_robin_fill(clusters, keys, base,
                                 accept=(lambda pos: ctx.guard.accept(int(cand_ids[pos]), x[pos]))
                                 if ctx.guard.active else None, flexible=flexible, extra=extra)
        taken = Counter(keys[order].tolist())
        quotas = {s: max(q, taken.get(s, 0)) for s, q in base.items()}
        return self._choices(order, cand, cand_scores, clusters, n_clusters_found, keys, quotas, avail.size,
                             bool(params.strata), measure_name)

    def _choices(self, order: list[int], cand: np.ndarray, cand_scores: np.ndarray, clusters: np.ndarray,
                 n_clusters: int, keys: np.ndarray, quotas: Mapping[str, int], n_available: int,
                 stratified: bool, measure_name: str) -> list[Choice]:
        measure = UNCERTAINTY_MEASURES[measure_name]
        n_cand = len(cand)
        per_cluster: dict[int, int] = defaultdict(int)
        per_stratum: dict[str, int] = defaultdict(int)
        covered: set[int] = set()
        out = []
        for pos in order:
            c, s = int(clusters[pos]), str(keys[pos])
            per_cluster[c] += 1
            per_stratum[s] += 1
            covered.add(c)
            if per_cluster[c] == 1:
                cluster_note = "first pick from it"
            else:
                cluster_note = f"{ordinal(per_cluster[c])} pick from it ({len(covered)} of {n_clusters} covered)"
            parts = [
                f"{measure} {cand_scores[pos]:.3f} ({ordinal(pos + 1)} most uncertain of {n_cand} candidates "
                f"among {n_available} clips not yet selected)",
                f"cluster {c} (of {n_clusters}), {cluster_note}",
            ]
            if stratified:
                parts.append(f"stratum {s}, quota {per_stratum[s]} of {quotas[s]}")
            out.append(Choice(pos=int(cand[pos]), score=float(cand_scores[pos]), cluster=c,
                              stratum=s if stratified else None, reason="; ".join(parts)))
        return out
