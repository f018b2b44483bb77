"""UncertainDiverse on generated pools with known clusters, sites and hours (real FAISS, real store)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from sampler import (STRATA_COLUMNS, UNCERTAINTY_MEASURES, SamplerWarning, UncertainDiverse, most_uncertain,
                     round_robin_fill, stratified_quotas)
from store.matrices import MatrixView
from tests.sampler.synthetic import build_pool


def _inputs(store):
    pool = store.pool()
    return pool, store.embeddings(pool.model_version.embedding_space)


# --------------------------------------------------------------------------- diversity
def test_covers_every_cluster_before_repeating_one(store):
    syn = build_pool(store, hot_clusters=(0, 1))
    pool, emb = _inputs(store)
    # Uncertainty alone would fill the batch from the two hot clusters only.
    top16 = pool.clip_id[most_uncertain(pool.max_entropy, pool.clip_id, 16)]
    assert set(syn.of(top16, "cluster")) == {0, 1}

    picks = UncertainDiverse(candidate_factor=50, n_clusters=8, strata=(), uncertainty="max_entropy",
                             random_state=0).query(pool, emb, 16)
    assert [p.rank for p in picks] == list(range(1, 17))
    true = syn.of([p.clip_id for p in picks], "cluster")
    assert sorted(true[:8]) == list(range(8))  # every cluster once ...
    assert sorted(true[8:]) == list(range(8))  # ... before any twice
    assert len({p.cluster for p in picks[:8]}) == 8
    # inside a cluster, the most uncertain clip comes first
    for p in picks[:8]:
        members = [c for c in pool.clip_id if syn.of([c], "cluster")[0] == syn.of([p.clip_id], "cluster")[0]]
        ent = dict(zip(pool.clip_id.tolist(), pool.max_entropy.tolist()))
        assert p.score == pytest.approx(max(ent[m] for m in members))


def test_candidate_factor_one_is_pure_uncertainty(store):
    build_pool(store, hot_clusters=(0,))
    pool, emb = _inputs(store)
    picks = UncertainDiverse(candidate_factor=1, strata=(), uncertainty="max_entropy", random_state=0).query(pool, emb, 10)
    expected = pool.clip_id[most_uncertain(pool.max_entropy, pool.clip_id, 10)]
    assert {p.clip_id for p in picks} == set(expected.tolist())


# --------------------------------------------------------------------------- strata
def test_quotas_are_met_exactly_when_feasible(store):
    syn = build_pool(store)
    pool, emb = _inputs(store)
    picks = UncertainDiverse(candidate_factor=50, strata=("site",), random_state=0).query(pool, emb, 9)
    assert Counter(syn.of([p.clip_id for p in picks], "site")) == {"A": 3, "B": 3, "C": 3}
    assert Counter(p.stratum for p in picks) == {"site=A": 3, "site=B": 3, "site=C": 3}

    picks = UncertainDiverse(candidate_factor=50, strata=("site", "hour"), random_state=0).query(pool, emb, 24)
    strata = Counter(p.stratum for p in picks)
    assert len(strata) == 12 and set(strata.values()) == {2}
    assert "site=A|hour=05" in strata


def test_quotas_degrade_gracefully_when_a_stratum_is_small(store):
    syn = build_pool(store)
    pool, emb = _inputs(store)
    site_c = [int(c) for c, s in zip(syn.clip_ids, syn.site) if s == "C"]
    exclude = site_c[1:]  # site C keeps a single clip
    picks = UncertainDiverse(candidate_factor=50, strata=("site",), random_state=0).query(
        pool, emb, 9, exclude=exclude)
    assert len(picks) == 9
    assert Counter(syn.of([p.clip_id for p in picks], "site")) == {"A": 4, "B": 4, "C": 1}
    (c_pick,) = [p for p in picks if p.stratum == "site=C"]
    assert c_pick.clip_id == site_c[0]
    assert "quota 1 of 1" in c_pick.reason


def test_stratified_quotas_water_filling():
    assert stratified_quotas({"a": 10, "b": 10, "c": 10}, 9) == {"a": 3, "b": 3, "c": 3}
    assert stratified_quotas({"a": 10, "b": 1, "c": 2}, 9) == {"a": 6, "b": 1, "c": 2}
    assert stratified_quotas({"a": 5, "b": 5}, 3, priority=["b", "a"]) == {"b": 2, "a": 1}
    assert stratified_quotas({"a": 5, "b": 5}, 3) == {"a": 2, "b": 1}
    assert stratified_quotas({"a": 2, "b": 1}, 10) == {"a": 2, "b": 1}  # budget beyond all: everything
    assert stratified_quotas({"a": 3, "b": 3, "c": 3, "d": 3}, 2, priority=list("dcba")) == \
        {"a": 0, "b": 0, "c": 1, "d": 1}
    with pytest.raises(ValueError, match="priority"):
        stratified_quotas({"a": 1}, 1, priority=["b"])


def test_round_robin_fill_takes_clusters_in_turn_within_quotas():
    one = np.array(["all"] * 5, dtype=object)
    assert round_robin_fill(np.array([0, 0, 1, 1, 2]), one, {"all": 4}) == [0, 2, 4, 1]
    strata = np.array(["a", "a", "b", "b", "a"], dtype=object)
    assert round_robin_fill(np.array([0, 0, 1, 1, 2]), strata, {"a": 1, "b": 2}) == [0, 2, 3]
    # round order follows each cluster's best remaining clip
    assert round_robin_fill(np.array([1, 0, 0, 1]), np.array(["x"] * 4, dtype=object), {"x": 4}) == [0, 1, 2, 3]


# --------------------------------------------------------------------------- exclusions and determinism
def test_exclusions_hold(store):
    syn = build_pool(store, per_cluster=10)
    pool, emb = _inputs(store)
    exclude = set(syn.clip_ids[:40].tolist())
    picks = UncertainDiverse(random_state=0).query(pool, emb, 20, exclude=exclude)
    assert len(picks) == 20 and not exclude & {p.clip_id for p in picks}
    assert len({p.clip_id for p in picks}) == 20


def test_same_seed_same_batch_other_seeds_may_differ(store):
    build_pool(store, structured=False)  # no cluster structure: k-means depends on its seed
    pool, emb = _inputs(store)
    strat = dict(strata=("site",), candidate_factor=4)
    a = UncertainDiverse(random_state=7, **strat).query(pool, emb, 12)
    b = UncertainDiverse(random_state=7, **strat).query(pool, emb, 12)
    assert a == b
    g1 = UncertainDiverse(random_state=np.random.default_rng(3), **strat).query(pool, emb, 12)
    g2 = UncertainDiverse(random_state=np.random.default_rng(3), **strat).query(pool, emb, 12)
    assert g1 == g2
    batches = {tuple(p.clip_id for p in UncertainDiverse(random_state=s, **strat).query(pool, emb, 12))
               for s in range(6)}
    assert len(batches) > 1


def test_ties_are_broken_by_clip_id():
    scores = np.array([0.5, 0.9, 0.9, 0.1, 0.9])
    ids = np.array([40, 30, 10, 5, 20])
    assert most_uncertain(scores, ids, 4).tolist() == [2, 4, 1, 0]


# --------------------------------------------------------------------------- reasons
def test_every_pick_has_a_reason(store):
    build_pool(store)
    pool, emb = _inputs(store)
    picks = UncertainDiverse(random_state=0).query(pool, emb, 12)
    n_cand = min(len(pool), 12 * 20)  # the default candidate factor is 20
    pattern = re.compile(r"^1 - margin \(top-1 minus top-2 probability\) (\d\.\d\d\d) \((\d+)(st|nd|rd|th) most uncertain of "
                         rf"{n_cand} candidates among {len(pool)} clips not yet selected\); cluster (\d+) \(of (\d+)\), "
                         r"(first pick from it|\d+(st|nd|rd|th) pick from it \(\d+ of \d+ covered\)); "
                         r"stratum (site=[ABC]\|hour=0[5-8]\|species=[^,]+), quota (\d+) of (\d+)$")
    for p in picks:
        m = pattern.match(p.reason)
        assert m, p.reason
        assert m.group(1) == f"{p.score:.3f}"
        assert int(m.group(4)) == p.cluster
        assert m.group(8) == p.stratum
        assert 1 <= int(m.group(9)) <= int(m.group(10))


def test_unstratified_picks_say_no_stratum(store):
    build_pool(store, per_cluster=5)
    pool, emb = _inputs(store)
    for p in UncertainDiverse(strata=(), random_state=0).query(pool, emb, 4):
        assert p.stratum is None and "stratum" not in p.reason and "cluster" in p.reason


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("params, budget, match", [
    ({}, 0, r"budget must be a positive integer .*got 0"),
    ({}, -3, r"budget .* got -3"),
    ({}, 2.5, r"budget .* got 2\.5"),
    ({}, True, r"budget .* got True"),
    ({"candidate_factor": 0.5}, 5, r"candidate_factor must be a number >= 1.*got 0\.5"),
    ({"n_clusters": 0}, 5, r"n_clusters must be None or an integer >= 1, got 0"),
    ({"strata": ("site", "habitat")}, 5, r"unknown stratum column 'habitat'.*expected some of"),
    ({"strata": "site"}, 5, r"got the string 'site'; write \('site',\)"),
    ({"strata": ("site", "site")}, 5, r"twice"),
    ({"uncertainty": "bald"}, 5, r"uncertainty must be one of .*got 'bald'"),
    ({"random_state": "seven"}, 5, r"random_state must be .*got 'seven'"),
    ({"random_state": -1}, 5, r"random_state must be an int in \[0, 2\*\*31\), got -1"),
])
def test_bad_parameters_name_themselves(store, params, budget, match):
    build_pool(store, per_cluster=5)
    pool, emb = _inputs(store)
    strategy = UncertainDiverse(**params)  # the constructor stores, never validates
    with pytest.raises(ValueError, match=match):
        strategy.query(pool, emb, budget)


def test_nan_uncertainty_is_refused(store):
    build_pool(store, per_cluster=5)
    pool, emb = _inputs(store)
    pool.margin[3] = np.nan  # the default measure of sigmoid outputs
    with pytest.raises(ValueError, match=rf"'margin' is NaN for 1 clips \(first: clip {pool.clip_id[3]}\)"):
        UncertainDiverse(random_state=0).query(pool, emb, 4)
    # an excluded NaN clip does not matter
    assert len(UncertainDiverse(random_state=0).query(pool, emb, 4, exclude={int(pool.clip_id[3])})) == 4


def test_missing_embeddings_are_refused(store):
    syn = build_pool(store, per_cluster=12, no_embedding_sites=("C",))
    pool, emb = _inputs(store)
    first_c = min(int(c) for c, s in zip(syn.clip_ids, syn.site) if s == "C")
    with pytest.raises(ValueError, match=rf"embeddings missing .*'embeddings:test-space'.*clip \d+ has no row"):
        UncertainDiverse(candidate_factor=100, random_state=0).query(pool, emb, 4)
    partial = MatrixView(emb.name, np.asarray(emb.ids)[1:], np.asarray(emb.data)[1:])
    with pytest.raises(ValueError, match=rf"clip {int(emb.ids[0])} has no row"):
        UncertainDiverse(candidate_factor=100, random_state=0).query(
            pool, partial, 4, exclude={first_c})


def test_budget_beyond_pool_warns_and_takes_what_is_left(store):
    syn = build_pool(store, per_cluster=5)
    pool, emb = _inputs(store)
    exclude = set(syn.clip_ids[5:].tolist())
    with pytest.warns(SamplerWarning, match=rf"budget 10 exceeds the 5 clips left in the pool "
                                            rf"\({len(pool)} scored, {len(pool) - 5} already"):
        picks = UncertainDiverse(random_state=0).query(pool, emb, 10, exclude=exclude)
    assert sorted(p.clip_id for p in picks) == sorted(syn.clip_ids[:5].tolist())
    with pytest.raises(ValueError, match=rf"no clips left to sample.*holds {len(pool)} clips"):
        UncertainDiverse(random_state=0).query(pool, emb, 3, exclude=set(syn.clip_ids.tolist()))


def test_more_clusters_than_candidates_warns(store):
    build_pool(store, per_cluster=5)
    pool, emb = _inputs(store)
    with pytest.warns(SamplerWarning, match="n_clusters=50 exceeds the 20 candidates"):
        picks = UncertainDiverse(candidate_factor=5, n_clusters=50, random_state=0).query(pool, emb, 4)
    assert len(picks) == 4


# --------------------------------------------------------------------------- documented options
def _doc_options(name: str) -> set[str]:
    line = next(ln for ln in UncertainDiverse.__doc__.splitlines() if ln.strip().startswith(f"{name} :"))
    return set(re.findall(r'"([a-z_]+)"', line.split("default")[0]))


def test_documented_options_are_the_accepted_ones(store):
    assert _doc_options("uncertainty") == set(UNCERTAINTY_MEASURES)
    assert _doc_options("strata") == set(STRATA_COLUMNS)
    build_pool(store, per_cluster=5)
    pool, emb = _inputs(store)
    probs = store.probabilities(pool.model_version)
    for measure in UNCERTAINTY_MEASURES:
        picks = UncertainDiverse(uncertainty=measure, strata=tuple(STRATA_COLUMNS), random_state=0).query(
            pool, emb, 3, probabilities=probs)
        assert len(picks) == 3 and picks[0].reason.startswith(UNCERTAINTY_MEASURES[measure])
    margin = UncertainDiverse(uncertainty="margin", candidate_factor=1, strata=(), random_state=0).query(pool, emb, 1)
    assert margin[0].score == pytest.approx(1 - pool.margin.min())


def test_params_like_scikit_learn():
    s = UncertainDiverse(candidate_factor=3, strata=("site",), random_state=4)
    assert s.get_params() == {"candidate_factor": 3, "n_clusters": None, "strata": ("site",),
                              "uncertainty": None, "pca": None, "near_duplicate_radius": None,
                              "near_duplicate_metric": "cosine", "random_state": 4}
    assert s.set_params(n_clusters=6) is s and s.n_clusters == 6
    assert "candidate_factor=3" in repr(s)


# --------------------------------------------------------------------------- coverage
def test_quotas_do_not_cost_coverage_when_another_assignment_keeps_both():
    # cluster 0 holds rows in strata a and b, cluster 1 only in a: taking cluster 0's best row (a) first
    # would leave cluster 1 out; moving cluster 0 to b keeps every cluster and every quota
    strata = np.array(["a", "b", "a"], dtype=object)
    assert round_robin_fill(np.array([0, 0, 1]), strata, {"a": 1, "b": 1}) == [1, 2]


def _max_coverage(clusters, strata, quotas) -> int:
    """Oracle: the most clusters a batch within the quotas can cover (scipy's max flow)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    cs, ss = sorted(set(clusters)), sorted(set(strata))
    n = 2 + len(cs) + len(ss)
    cap = np.zeros((n, n), dtype=np.int32)
    for c in cs:
        cap[0, 1 + cs.index(c)] = 1
    for c, s in zip(clusters, strata):
        cap[1 + cs.index(c), 1 + len(cs) + ss.index(s)] = 1
    for s in ss:
        cap[1 + len(cs) + ss.index(s), n - 1] = quotas.get(s, 0)
    return int(maximum_flow(csr_matrix(cap), 0, n - 1).flow_value)


@pytest.mark.parametrize("seed", range(40))
def test_first_round_covers_as_many_clusters_as_the_quotas_allow(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    clusters = rng.integers(0, int(rng.integers(2, 15)), n)
    strata = np.array([f"s{v}" for v in rng.integers(0, int(rng.integers(1, 8)), n)], dtype=object)
    counts = Counter(strata.tolist())
    quotas = stratified_quotas(counts, int(rng.integers(1, n + 1)))
    picked = round_robin_fill(clusters, strata, quotas)
    assert Counter(strata[picked].tolist()) == {s: q for s, q in quotas.items() if q}  # quotas met exactly
    assert len(set(picked)) == len(picked)
    best = _max_coverage(clusters.tolist(), strata.tolist(), quotas)
    assert len(set(clusters[picked].tolist())) == best
    assert len(set(clusters[picked[:best]].tolist())) == best  # ... in its first round


def test_a_default_batch_covers_min_budget_clusters(store):
    build_pool(store)
    pool, emb = _inputs(store)
    for budget in (10, 20, 30):
        picks = UncertainDiverse(random_state=0).query(pool, emb, budget)  # site x hour x species quotas
        assert len(picks) == budget
        assert len({p.cluster for p in picks}) == budget, f"budget {budget}"


def test_uneven_slots_go_where_they_cover_a_cluster():
    # 3 strata, 2 slots: equal quotas cannot decide; priority alone would give them to a and b, both
    # only in cluster 0, and leave cluster 1 (only in c) out
    clusters, strata = np.array([0, 0, 1]), np.array(["a", "b", "c"], dtype=object)
    assert stratified_quotas({"a": 1, "b": 1, "c": 1}, 2, priority=["a", "b", "c"]) == {"a": 1, "b": 1, "c": 0}
    picked = round_robin_fill(clusters, strata, {"a": 0, "b": 0, "c": 0}, flexible=["a", "b", "c"], extra=2)
    assert picked == [0, 2]
