"""The audit stream: a seeded random draw spread evenly over top-1 score bins, each pick saying so."""

from __future__ import annotations

from collections import Counter

import numpy as np

from sampler import AuditSample
from tests.sampler.synthetic import build_pool


def test_an_audit_batch_spreads_evenly_over_score_bins_and_says_it_is_not_active_learning(store):
    from dataclasses import replace

    syn = build_pool(store)
    # top-1 scores spread over the whole range, the confident end thinner, as in a real pool
    top = np.random.default_rng(0).beta(2, 1.2, len(syn.clip_ids)).astype(np.float32)
    pool = replace(store.pool(), top1=top)
    picks = AuditSample(bins=5, random_state=0).query(pool, store.embeddings("test-space"), 20)
    assert len(picks) == 20 and len({p.clip_id for p in picks}) == 20
    top1 = dict(zip(pool.clip_id.tolist(), pool.top1.tolist()))
    bins = np.minimum((np.array([top1[p.clip_id] for p in picks]) * 5).astype(int), 4)
    filled = {int(b) for b in np.minimum((pool.top1 * 5).astype(int), 4)}
    counts = Counter(bins.tolist())
    # every bin the pool has gets a share; the shares differ by at most one where bins hold enough clips
    assert set(counts) == filled
    big = [b for b in filled if int(((np.minimum((pool.top1 * 5).astype(int), 4)) == b).sum()) >= 20 // len(filled) + 1]
    assert max(counts[b] for b in big) - min(counts[b] for b in big) <= 1
    assert all(p.reason.startswith("audit: random draw from score bin") and "not an active-learning pick" in p.reason
               for p in picks)
    assert all(p.stratum.startswith("score=") for p in picks)
    again = AuditSample(bins=5, random_state=0).query(pool, store.embeddings("test-space"), 20)
    assert [p.clip_id for p in again] == [p.clip_id for p in picks]  # seeded
    assert len(filled) == 5
