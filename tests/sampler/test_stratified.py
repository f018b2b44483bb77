"""Stratified: exact quotas, proportional and weighted quotas, minimums for rare species, degradation."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest

from sampler import KCenterGreedy, SamplerWarning, Stratified, UncertaintySampling
from tests.sampler.synthetic import RARE_SPECIES, build_pool


def _inputs(store):
    pool = store.pool()
    return pool, store.embeddings(pool.model_version.embedding_space)


def test_equal_quotas_are_exact_and_interleaved(store):
    syn = build_pool(store, hot_clusters=(0,))
    pool, emb = _inputs(store)
    inner = {"strategy": "uncertainty", "params": {"uncertainty": "max_entropy"}}
    picks = Stratified(inner=inner, strata=("site",), random_state=0).query(pool, emb, 9)
    assert Counter(syn.of([p.clip_id for p in picks], "site")) == {"A": 3, "B": 3, "C": 3}
    assert [p.stratum for p in picks[:3]] == ["site=A", "site=B", "site=C"]  # one per stratum, then again
    assert all(p.reason.endswith("(quota 3, equal quotas)") for p in picks)
    # inside a stratum the inner strategy decides: the most uncertain clips of site A
    a = [p for p in picks if p.stratum == "site=A"]
    assert [p.reason.split(",")[0] for p in a][0].startswith("max binary entropy")
    assert set(syn.of([p.clip_id for p in picks], "cluster")) == {0}


def test_site_by_hour_quotas(store):
    build_pool(store)
    pool, emb = _inputs(store)
    picks = Stratified(inner=KCenterGreedy(), strata=("site", "hour"), random_state=0).query(pool, emb, 24)
    assert set(Counter(p.stratum for p in picks).values()) == {2} and len({p.stratum for p in picks}) == 12


def test_proportional_and_weighted_quotas(store):
    syn = build_pool(store, sites=("A", "B"), hours=(5, 6, 7))
    pool, emb = _inputs(store)
    # make site A hold 3x the unselected clips of site B by excluding most of B
    b = [int(c) for c, s in zip(syn.clip_ids, syn.site) if s == "B"]
    exclude = b[: len(b) * 2 // 3]
    prop = Stratified(strata=("site",), quotas="proportional", random_state=0).query(pool, emb, 12, exclude=exclude)
    assert Counter(p.stratum for p in prop) == {"site=A": 9, "site=B": 3}
    weighted = Stratified(strata=("site", "hour"), quotas={"site=A": 2, "site=B|hour=07": 0}, random_state=0)
    picks = weighted.query(pool, emb, 16)
    per = Counter(p.stratum for p in picks)
    assert per == {"site=A|hour=05": 4, "site=A|hour=06": 4, "site=A|hour=07": 4,
                   "site=B|hour=05": 2, "site=B|hour=06": 2}  # A weighs 2, B 1, B at 07 nothing
    assert "weight 2" in picks[0].reason
    with pytest.warns(SamplerWarning, match=r"quota keys \['site=Z'\] match no stratum"):
        Stratified(strata=("site",), quotas={"site=Z": 2}, random_state=0).query(pool, emb, 4)


def test_min_per_stratum_gives_rare_species_their_clips(store):
    syn = build_pool(store, rare=(5, 3))
    pool, emb = _inputs(store)
    prop = Stratified(strata=("species",), quotas="proportional", random_state=0).query(pool, emb, 10)
    assert RARE_SPECIES not in syn.of([p.clip_id for p in prop], "species")  # 3 of 283 clips: 0.1 of a clip
    picks = Stratified(strata=("species",), quotas="proportional", min_per_stratum=2, random_state=0).query(
        pool, emb, 10)
    species = Counter(syn.of([p.clip_id for p in picks], "species"))
    assert species[RARE_SPECIES] == 2 and sum(species.values()) == 10
    assert "at least 2 per stratum" in picks[0].reason


def test_quotas_degrade_gracefully_when_a_stratum_is_small(store):
    syn = build_pool(store)
    pool, emb = _inputs(store)
    site_c = [int(c) for c, s in zip(syn.clip_ids, syn.site) if s == "C"]
    picks = Stratified(strata=("site",), random_state=0).query(pool, emb, 12, exclude=site_c[1:])
    assert len(picks) == 12
    assert Counter(p.stratum for p in picks) == {"site=A": 6, "site=B": 5, "site=C": 1} or \
        Counter(p.stratum for p in picks) == {"site=A": 5, "site=B": 6, "site=C": 1}


def test_a_stratum_its_inner_strategy_cannot_fill_hands_its_quota_on(store):
    syn = build_pool(store, n_clusters=4, per_cluster=30)
    pool, emb = _inputs(store)
    # a custom column: zone "reed" holds one sound (cluster 0), zone "wood" three (clusters 1-3)
    zone = {int(c): ("reed" if k == 0 else "wood") for c, k in zip(syn.clip_ids, syn.cluster)}
    inner = UncertaintySampling(near_duplicate_radius=0.3)  # one clip per sound
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the batch must still be full: no short-batch warning
        picks = Stratified(inner=inner, strata=("zone",), custom_columns={"zone": zone}, random_state=0).query(
            pool, emb, 4)
    assert Counter(p.stratum for p in picks) == {"zone=reed": 1, "zone=wood": 3}
    assert sorted(syn.of([p.clip_id for p in picks], "cluster")) == [0, 1, 2, 3]
    with pytest.warns(SamplerWarning,
                      match=r"picked 4 of the 6 clips asked for.*near-duplicates \(within 0.3, cosine\)"):
        Stratified(inner=inner, strata=("zone",), custom_columns={"zone": zone}, random_state=0).query(pool, emb, 6)


def test_inner_as_name_or_stored_spec(store):
    build_pool(store, per_cluster=10)
    pool, emb = _inputs(store)
    spec = {"strategy": "kcenter", "params": {"candidates": "uncertain"}}
    a = Stratified(inner=spec, strata=("site",), random_state=4).query(pool, emb, 6)
    b = Stratified(inner=KCenterGreedy(candidates="uncertain"), strata=("site",), random_state=4).query(pool, emb, 6)
    assert a == b
    with pytest.raises(ValueError, match="inner must not itself be 'stratified'"):
        Stratified(inner="stratified").query(pool, emb, 3)


def test_later_strata_keep_away_from_earlier_strata_picks(store):
    syn = build_pool(store)
    pool, emb = _inputs(store)
    picks = Stratified(inner=KCenterGreedy(), strata=("site",), random_state=0).query(pool, emb, 8)
    assert sorted(Counter(p.stratum for p in picks).values()) == [2, 3, 3]
    assert sorted(syn.of([p.clip_id for p in picks], "cluster")) == list(range(8))  # one per sound overall
    assert any("picked for another stratum" in p.reason for p in picks)
