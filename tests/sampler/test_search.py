"""More like these: the planted neighbours of a rare sound come first; the scan is chunked and exact."""

from __future__ import annotations

import numpy as np
import pytest

from sampler import MatrixReader, MoreLikeThese, nearest_neighbours
from tests.sampler.synthetic import build_pool


def test_the_rare_clusters_neighbours_come_first(store):
    syn = build_pool(store, rare=(6, 5))
    pool, emb = store.pool(), store.embeddings("test-space")
    rare = syn.clip_ids[syn.cluster == 6].tolist()
    example, planted = rare[0], set(rare[1:])
    picks = MoreLikeThese(examples=[example]).query(pool, emb, 6)
    assert {p.clip_id for p in picks[:4]} == planted
    assert syn.of([picks[4].clip_id], "cluster")[0] != 6
    assert picks[0].reason.startswith(f"more like example clip {example}: its 1st nearest of {len(pool) - 1} "
                                      "unselected clips searched, cosine distance 0.0")
    assert picks[0].cluster == 0 and picks[0].score > 0.9
    # the example itself and excluded clips never come back
    again = MoreLikeThese(examples=[example]).query(pool, emb, 3, exclude=rare[1:3])
    assert not {example, *rare[1:3]} & {p.clip_id for p in again}
    assert {p.clip_id for p in again[:2]} == set(rare[3:])


def test_several_examples_take_turns(store):
    syn = build_pool(store)
    pool, emb = store.pool(), store.embeddings("test-space")
    ex = [int(syn.clip_ids[syn.cluster == c][0]) for c in (2, 7)]
    picks = MoreLikeThese(examples=ex, metric="l2").query(pool, emb, 6)
    assert syn.of([p.clip_id for p in picks], "cluster") == [2, 7, 2, 7, 2, 7]
    assert [p.cluster for p in picks] == [0, 1, 0, 1, 0, 1]
    assert "Euclidean distance" in picks[0].reason and picks[0].score < 0


def test_chunked_scan_equals_brute_force(store):
    syn = build_pool(store, structured=False)
    emb = store.embeddings("test-space")
    q = syn.embeddings[[3, 50]]
    for metric in ("cosine", "l2"):
        d, ids = nearest_neighbours(MatrixReader(emb), q, syn.clip_ids, 9, metric=metric, chunk_rows=7)
        x = syn.embeddings
        if metric == "cosine":
            xn = x / np.linalg.norm(x, axis=1, keepdims=True)
            full = 1 - (q / np.linalg.norm(q, axis=1, keepdims=True)) @ xn.T
        else:
            full = np.linalg.norm(q[:, None] - x[None], axis=2)
        order = np.argsort(full, axis=1, kind="stable")[:, :9]
        assert np.array_equal(ids, syn.clip_ids[order]), metric
        assert d == pytest.approx(np.take_along_axis(full, order, axis=1), abs=1e-4)
