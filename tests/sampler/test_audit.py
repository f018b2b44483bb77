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


def test_an_audit_run_records_its_frame_so_each_label_knows_its_inclusion_probability(store):
    from sampler import sample

    syn = build_pool(store)
    strategy = AuditSample(bins=4, random_state=3)
    picks = strategy.query(store.pool(), store.embeddings("test-space"), 12)
    frame = strategy.frame_
    top1 = np.nan_to_num(store.pool().top1)
    assert frame["kind"] == "score_bins" and frame["bins"] == 4
    assert frame["pool"] == np.bincount(np.minimum((top1 * 4).astype(int), 3), minlength=4).tolist()
    assert sum(frame["picked"]) == len(picks) == 12
    run, _ = sample(store, AuditSample(bins=4, random_state=3), 12)
    assert store.sampling_runs()[-1].frame == run.frame and sum(run.frame["picked"]) == 12
    assert run.frame["pool"] == frame["pool"] and len(syn.clip_ids) == sum(frame["pool"])
