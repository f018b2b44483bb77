"""Diversity strategies on pools with known clusters: coverage, spread, typicality; the lazy greedy is exact."""

from __future__ import annotations

import numpy as np
import pytest

from sampler import (ClusterMargin, KCenterGreedy, TypiClust, UncertaintySampling, cluster_margin_order,
                     k_greedy_center, lazy_greedy, typicality, typiclust)
from tests.sampler.synthetic import build_pool


def _inputs(store):
    pool = store.pool()
    return pool, store.embeddings(pool.model_version.embedding_space)


def _min_pairwise(syn, ids) -> float:
    pos = {int(c): i for i, c in enumerate(syn.clip_ids)}
    x = syn.embeddings[[pos[int(c)] for c in ids]]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    return float(d[np.triu_indices(len(ids), 1)].min())


@pytest.mark.parametrize("make, budget, rounds", [
    (lambda: KCenterGreedy(random_state=0), 16, 1),  # after one per cluster, the farthest outliers
    (lambda: KCenterGreedy(candidates="uncertain", n_candidates=320, random_state=1), 16, 1),
    (lambda: TypiClust(random_state=0), 8, 1),
    (lambda: TypiClust(n_clusters=8, random_state=2), 16, 2),
    (lambda: ClusterMargin(n_candidates=320, random_state=0), 8, 1),
    (lambda: ClusterMargin(n_candidates=320, n_clusters=8, random_state=0), 16, 2),
])
def test_diversity_strategies_cover_every_cluster_before_repeating_one(store, make, budget, rounds):
    syn = build_pool(store, hot_clusters=(0, 1))
    pool, emb = _inputs(store)
    picks = make().query(pool, emb, budget)
    true = syn.of([p.clip_id for p in picks], "cluster")
    assert sorted(true[:8]) == list(range(8))
    if rounds == 2:
        assert sorted(true[8:]) == list(range(8))
    # uncertainty alone stays in the two hot clusters
    plain = UncertaintySampling().query(pool, emb, budget)
    assert set(syn.of([p.clip_id for p in plain], "cluster")) == {0, 1}


def test_kcenter_picks_are_far_apart(store):
    syn = build_pool(store, hot_clusters=(0, 1, 2))
    pool, emb = _inputs(store)
    spread = KCenterGreedy(random_state=0).query(pool, emb, 6)
    plain = UncertaintySampling().query(pool, emb, 6)
    assert _min_pairwise(syn, [p.clip_id for p in spread]) > 1.0  # different clusters: ~1.4 apart
    assert _min_pairwise(syn, [p.clip_id for p in plain]) < 0.5  # same clusters: ~0.4 apart
    assert spread[1].score > 1.0 and "k-center: distance" in spread[1].reason
    assert "first pick" in spread[0].reason and spread[0].score == 2.0


def test_kcenter_keeps_away_from_labelled_clips(store):
    syn = build_pool(store)
    pool, emb = _inputs(store)
    labelled = [int(syn.clip_ids[syn.cluster == c][0]) for c in range(6)]
    picks = KCenterGreedy(random_state=0).query(pool, emb, 2, exclude=labelled)
    assert sorted(syn.of([p.clip_id for p in picks], "cluster")) == [6, 7]
    assert "labelled, pending or picked for another stratum" in picks[0].reason


def test_k_greedy_center_on_a_line():
    x = np.array([[0.0], [1.0], [2.0], [10.0], [4.0]], dtype=np.float32)
    order, dist = k_greedy_center(x, 3)
    assert order.tolist() == [0, 3, 4] and dist.tolist() == [np.inf, 10.0, 4.0]
    order, dist = k_greedy_center(x, 2, reference=np.array([[9.0]], dtype=np.float32))
    assert order.tolist() == [0, 4] and dist.tolist() == [9.0, 4.0]


def _naive_greedy(z, n, gain, w_d, scale, cap, ref, groups, targets, w_b):
    """Re-score every candidate at every step: what the lazy greedy must reproduce."""
    mind = np.full(len(z), np.inf) if ref is None else np.linalg.norm(z[:, None] - ref[None], axis=2).min(axis=1)
    counts = np.zeros(len(targets))
    alive = np.ones(len(z), dtype=bool)
    out = []
    for _ in range(n):
        t = targets[groups]
        bal = np.where(t > 0, np.clip(1 - counts[groups] / np.where(t > 0, t, 1), 0, 1), 0)
        s = gain + w_d * np.minimum(cap, mind / scale) + w_b * bal
        s[~alive] = -np.inf
        i = int(np.argmax(s))  # first maximum: the lower index wins ties
        out.append(i)
        alive[i] = False
        counts[groups[i]] += 1
        mind = np.minimum(mind, np.linalg.norm(z - z[i], axis=1))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_lazy_greedy_equals_rescoring_everything(seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(300, 6)).astype(np.float32)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    gain = rng.uniform(0, 1, 300)
    groups = rng.integers(0, 7, 300)
    targets = rng.uniform(0.5, 6, 7)
    ref = rng.normal(size=(20, 6)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    for w_d, cap, r, w_b in [(1.0, 1.0, ref, 1.0), (2.0, np.inf, None, 0.0), (0.5, 1.0, None, 3.0),
                             (1.0, np.inf, ref, 0.0), (0.0, 1.0, ref, 1.0)]:
        lazy = [s.index for s in lazy_greedy(z, 40, gain=gain, w_d=w_d, scale=0.9, cap=cap, reference=r,
                                             groups=groups, targets=targets, w_b=w_b, batch=16)]
        assert lazy == _naive_greedy(z, 40, gain, w_d, 0.9, cap, r, groups, targets, w_b), (w_d, cap, w_b)


def test_typiclust_picks_typical_clips_near_the_cluster_centres(store):
    syn = build_pool(store, noise=0.2)
    pool, emb = _inputs(store)
    picks = TypiClust(random_state=0).query(pool, emb, 8)
    pos = {int(c): i for i, c in enumerate(syn.clip_ids)}
    x = syn.embeddings / np.linalg.norm(syn.embeddings, axis=1, keepdims=True)
    for p in picks:
        c = syn.of([p.clip_id], "cluster")[0]
        members = x[syn.cluster == c]
        centre = members.mean(axis=0)
        d = np.linalg.norm(members - centre, axis=1)
        d_pick = np.linalg.norm(x[pos[p.clip_id]] - centre)
        assert d_pick <= np.quantile(d, 0.25), "a TypiClust pick should be among its cluster's most central clips"
        assert p.score > 0 and "most typical clip of cluster" in p.reason


def test_typicality_and_typiclust_functions():
    x = np.array([[0, 0], [0.1, 0], [0, 0.1], [5, 5]], dtype=np.float32)
    t = typicality(x, 2)
    assert t.argmax() == 0 and t.argmin() == 3
    assert typicality(x[:1], 20).tolist() == [0.0]
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(c, 0.05, size=(s, 2)) for c, s in ((0, 30), (3, 20), (6, 10))])
    blobs = blobs.astype(np.float32)
    order, labels, typ, covered = typiclust(blobs, 3, seed=0, k_neighbors=5)
    assert [int(np.round(blobs[i, 0] / 3)) for i in order] == [0, 1, 2]  # largest cluster first
    order, _, _, covered = typiclust(blobs, 3, seed=0, k_neighbors=5, reference=np.array([[0, 0]], np.float32))
    assert covered.tolist() == [True, False, False] and int(np.round(blobs[order[-1], 0])) == 0  # covered last


def test_cluster_margin_order_takes_small_clusters_first():
    clusters = np.array([0] * 5 + [1] * 2 + [2] * 3)
    order = cluster_margin_order(clusters, 6, seed=0)
    assert [int(clusters[i]) for i in order] == [1, 2, 0, 1, 2, 0]
    assert order == cluster_margin_order(clusters, 6, seed=0)
    assert cluster_margin_order(clusters, 10, seed=1) != cluster_margin_order(clusters, 10, seed=2)
