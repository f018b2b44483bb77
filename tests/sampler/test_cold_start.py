"""Cold start: a representative stratified batch with no labels, with or without model scores."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from sampler import (ColdStart, Combined, KCenterGreedy, MoreLikeThese, RandomSampling, TypiClust,
                     UncertainDiverse, UncertaintySampling, metadata_pool)
from tests.sampler.synthetic import build_pool


def _no_model_pool(store, syn):
    """The generated clips as a pool of embeddings + metadata only (no classifier at all)."""
    pool = store.pool()
    return metadata_pool(pool.clip_id, site=pool.site, start_time=pool.start_time, recording_id=pool.recording_id)


def test_cold_start_without_any_scores_is_representative_and_stratified(store):
    syn = build_pool(store, sites=("A", "B"), hours=(5, 6))
    pool, emb = _no_model_pool(store, syn), store.embeddings("test-space")
    assert np.isnan(pool.max_entropy).all()
    picks = ColdStart(random_state=0).query(pool, emb, 8)
    assert Counter(p.stratum for p in picks) == {"site=A|hour=05": 2, "site=A|hour=06": 2,
                                                  "site=B|hour=05": 2, "site=B|hour=06": 2}
    assert sorted(syn.of([p.clip_id for p in picks], "cluster")) == list(range(8))  # every sound once
    assert all(p.reason.startswith("cold start: 1st most typical clip of cluster") for p in picks)
    assert ColdStart(random_state=0).query(pool, emb, 8) == picks


def test_cold_start_proportional_to_the_pool_and_with_predicted_species(store):
    syn = build_pool(store, hot_clusters=(0,))
    pool, emb = store.pool(), store.embeddings("test-space")
    a = [int(c) for c, s in zip(syn.clip_ids, syn.site) if s == "A"]
    picks = ColdStart(strata=("site",), random_state=0).query(pool, emb, 8, exclude=a[: len(a) // 2])
    assert Counter(p.stratum for p in picks) == {"site=A": 2, "site=B": 3, "site=C": 3}  # A has half the clips
    by_species = ColdStart(strata=("species",), quotas="equal", random_state=0).query(pool, emb, 8)
    assert Counter(syn.of([p.clip_id for p in by_species], "species")) == {s: 2 for s in set(syn.species)}


@pytest.mark.parametrize("make", [lambda: RandomSampling(random_state=0), lambda: KCenterGreedy(random_state=0),
                                  lambda: TypiClust(random_state=0),
                                  lambda: Combined(weights={"uncertainty": 0}, random_state=0)])
def test_strategies_that_need_no_scores_run_on_a_metadata_pool(store, make):
    syn = build_pool(store, per_cluster=10)
    pool, emb = _no_model_pool(store, syn), store.embeddings("test-space")
    assert len(make().query(pool, emb, 5)) == 5
    assert len(MoreLikeThese(examples=[int(syn.clip_ids[0])]).query(pool, emb, 5)) == 5


@pytest.mark.parametrize("make", [UncertaintySampling, UncertainDiverse, Combined,
                                  lambda: KCenterGreedy(candidates="uncertain")])
def test_strategies_that_need_scores_say_so(store, make):
    syn = build_pool(store, per_cluster=5)
    pool, emb = _no_model_pool(store, syn), store.embeddings("test-space")
    with pytest.raises(ValueError, match=r"uncertainty 'margin' is NaN for 40 clips .*model 'no-model'.*"
                                         r"'cold_start' strategy"):
        make().query(pool, emb, 3)


def test_metadata_pool_checks_its_columns():
    with pytest.raises(ValueError, match=r"site must give one value per clip \(3\), got shape \(2,\)"):
        metadata_pool([1, 2, 3], site=["A", "B"])
