"""The template every registered strategy passes: the same checks, the same generated pool.

Stores parameters only; clonable; ranks 1..n; unique picks; exclusions hold (ids and
near-duplicates); every pick has a reason; same seed, same batch; budget errors name the value;
documented options are the accepted ones; bad parameters name themselves.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from sklearn.base import clone

from sampler import (AuditSample, NEAR_DUPLICATE_METRICS, STRATA_COLUMNS, STRATEGIES, UNCERTAINTY_MEASURES, Blend, ClusterMargin,
                     ColdStart, Combined, KCenterGreedy, MoreLikeThese, QueryStrategy, RandomSampling, RangeConflict,
                     SamplerWarning, Stratified, TypiClust, UncertainDiverse, UncertaintySampling)
from tests.sampler.synthetic import build_pool


def _example(syn) -> int:
    return int(syn.clip_ids[syn.cluster == 3][0])


# name -> strategy for a pool (every registered strategy must be here: see test_every_strategy_is_templated)
FACTORIES = {
    "uncertain_diverse": lambda syn, rs: UncertainDiverse(random_state=rs),
    "uncertainty": lambda syn, rs: UncertaintySampling(),
    "random": lambda syn, rs: RandomSampling(random_state=rs),
    "kcenter": lambda syn, rs: KCenterGreedy(random_state=rs),
    "typiclust": lambda syn, rs: TypiClust(random_state=rs),
    "cluster_margin": lambda syn, rs: ClusterMargin(random_state=rs),
    "combined": lambda syn, rs: Combined(random_state=rs),
    "stratified": lambda syn, rs: Stratified(inner=KCenterGreedy(), strata=("site",), random_state=rs),
    "cold_start": lambda syn, rs: ColdStart(random_state=rs),
    "more_like_these": lambda syn, rs: MoreLikeThese(examples=[_example(syn)]),
    "blend": lambda syn, rs: Blend(random_state=rs),
    "audit": lambda syn, rs: AuditSample(random_state=rs),
    "range_conflict": lambda syn, rs: RangeConflict(),
}
NAMES = sorted(FACTORIES)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One generated pool for the read-only checks (8 clusters x 40 clips, 3 sites x 4 hours; at site C the
    range priors call Parus major absent, so its confident detections there are range conflicts)."""
    from workbench.config import Workspace

    store = Workspace.resolve(tmp_path_factory.mktemp("contract") / "ws").open_store()
    syn = build_pool(store, out_of_range={"C": "Parus major_Great Tit"}, partial_tails=True)
    yield store, syn
    store.close()


def _run(shared, name, budget=10, exclude=(), rs=3, **kw):
    store, syn = shared
    strategy = FACTORIES[name](syn, rs)
    if kw:
        own = strategy.get_params(deep=False)
        strategy.set_params(**{(k if k in own else f"inner__{k}"): v for k, v in kw.items()})
    pool = store.pool()
    return strategy.query(pool, store.embeddings("test-space"), budget, exclude=exclude,
                          probabilities=store.probabilities(syn.model))


def test_every_strategy_is_templated_and_documented():
    import sampler

    assert set(STRATEGIES) == set(FACTORIES)
    assert set(re.findall(r"^``([a-z_]+)``", sampler.__doc__, flags=re.M)) == set(STRATEGIES)
    for name, cls in STRATEGIES.items():
        assert issubclass(cls, QueryStrategy) and cls.name == name


@pytest.mark.parametrize("name", NAMES)
def test_constructor_stores_and_clones(shared, name):
    _, syn = shared
    strategy = FACTORIES[name](syn, 5)
    params = strategy.get_params(deep=False)

    def plain(p):
        return {k: (plain(v.get_params(deep=False)) if isinstance(v, QueryStrategy) else v) for k, v in p.items()}

    assert plain(clone(strategy).get_params(deep=False)) == plain(params)
    # the constructor stores anything, validation waits for query
    bad = STRATEGIES[name](**{k: "nonsense" for k in params})
    assert all(v == "nonsense" for v in bad.get_params(deep=False).values())


@pytest.mark.parametrize("name", NAMES)
def test_picks_are_ranked_unique_explained_and_exclude(shared, name):
    _, syn = shared
    exclude = set(syn.clip_ids[::3].tolist()) - {_example(syn)}
    picks = _run(shared, name, 10, exclude)
    assert [p.rank for p in picks] == list(range(1, 11))
    ids = [p.clip_id for p in picks]
    assert len(set(ids)) == 10 and not exclude & set(ids)
    assert set(ids) <= set(syn.clip_ids.tolist())
    assert all(isinstance(p.reason, str) and len(p.reason) > 20 for p in picks)
    assert all(np.isfinite(p.score) for p in picks)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_batch(shared, name):
    assert _run(shared, name, 12, rs=11) == _run(shared, name, 12, rs=11)
    gen = [_run(shared, name, 12, rs=np.random.default_rng(4)) for _ in range(2)]
    assert gen[0] == gen[1]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("budget, shown", [(0, "0"), (-2, "-2"), (2.5, r"2\.5"), (True, "True"), ("7", "'7'")])
def test_bad_budget_names_the_value(shared, name, budget, shown):
    with pytest.raises(ValueError, match=rf"budget must be a positive integer .*got {shown}$"):
        _run(shared, name, budget)


@pytest.mark.parametrize("name", NAMES)
def test_budget_beyond_the_pool_takes_what_is_left(shared, name):
    _, syn = shared
    left = set(syn.clip_ids[syn.cluster == 5][:6].tolist())
    exclude = set(syn.clip_ids.tolist()) - left
    with pytest.warns(SamplerWarning, match=r"budget 50 exceeds the 6 clips left"):
        picks = _run(shared, name, 50, exclude)
    assert {p.clip_id for p in picks} == left
    with pytest.raises(ValueError, match=r"no clips left to sample.*holds 320 clips and all 320"):
        _run(shared, name, 3, set(syn.clip_ids.tolist()))


@pytest.mark.parametrize("name", NAMES)
def test_near_duplicates_of_excluded_and_picked_clips_are_skipped(shared, name):
    """Clusters are tight (cosine distance ~0.08 inside, ~1 between): radius 0.3 makes a cluster one sound."""
    _, syn = shared
    labelled = [int(syn.clip_ids[syn.cluster == c][1]) for c in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)  # a short batch is expected for some
        picks = _run(shared, name, 4, set(labelled), near_duplicate_radius=0.3)
    clusters = syn.of([p.clip_id for p in picks], "cluster")
    assert picks and not set(clusters) & {0, 1, 2, 3}
    assert len(set(clusters)) == len(clusters)  # never two clips of one sound
    if name not in ("uncertain_diverse", "cluster_margin", "more_like_these", "blend"):  # these read few candidates
        assert sorted(clusters) == [4, 5, 6, 7]
    # and without the radius the same strategy does take near-duplicates (the check can fail)
    free = _run(shared, name, 12, set(labelled))
    assert len(set(syn.of([p.clip_id for p in free], "cluster"))) < 12


# --------------------------------------------------------------------------- documented options
def _doc_options(cls, param: str) -> set[str] | None:
    lines = [ln for ln in (cls.__doc__ or "").splitlines() if ln.strip().startswith(f"{param} :")]
    if not lines:
        return None
    return set(re.findall(r'"([a-z_0-9]+)"', lines[0].split("default")[0]))


@pytest.mark.parametrize("name", NAMES)
def test_documented_options_are_the_accepted_ones(shared, name):
    cls = STRATEGIES[name]
    params = cls().get_params(deep=False)
    for param in params:
        assert _doc_options(cls, param) is not None, f"{name} does not document {param}"
    expected = {"uncertainty": set(UNCERTAINTY_MEASURES), "near_duplicate_metric": set(NEAR_DUPLICATE_METRICS),
                "strata": set(STRATA_COLUMNS), "candidates": {"random", "uncertain"}, "metric": {"cosine", "l2"},
                "hemisphere": {"north", "south"}}
    for param, options in expected.items():
        if param in params:
            assert _doc_options(cls, param) == options, f"{name}.{param}"
    # each documented uncertainty measure runs (categorical entropy from the probability matrix)
    if "uncertainty" in params and name not in ("kcenter", "typiclust"):
        for measure in UNCERTAINTY_MEASURES:
            assert len(_run(shared, name, 3, uncertainty=measure)) == 3


BAD = [
    ("random_state", "seven", r"random_state must be .*got 'seven'"),
    ("random_state", -1, r"random_state must be an int in \[0, 2\*\*31\), got -1"),
    ("near_duplicate_radius", -0.5, r"near_duplicate_radius must be None or a finite number >= 0 .*got -0\.5"),
    ("near_duplicate_metric", "manhattan", r"near_duplicate_metric must be one of \['cosine', 'l2'\], got 'manhattan'"),
    ("uncertainty", "bald", r"uncertainty must be one of .*got 'bald'"),
    ("n_candidates", 0, r"n_candidates must be None or an integer >= 1, got 0"),
    ("n_clusters", 2.5, r"n_clusters must be None or an integer >= 1, got 2\.5"),
    ("pca", 0, r"pca must be None or an integer >= 1 .*got 0"),
    ("strata", ("site", "habitat"),
     r"unknown stratum column 'habitat' in strata=\('site', 'habitat'\); expected some of"),
    ("strata", "site", r"got the string 'site'; write \('site',\)"),
    ("quotas", "fair", r"quotas must be one of \['equal', 'proportional'\] or a dict .*got 'fair'"),
    ("quotas", {"habitat=x": 2}, r"quota key 'habitat=x' must name stratum columns"),
    ("min_per_stratum", -1, r"min_per_stratum must be an integer >= 0, got -1"),
    ("k_neighbors", 0, r"k_neighbors must be an integer >= 1 .*got 0"),
    ("candidates", "all", r"candidates must be one of \['random', 'uncertain'\], got 'all'"),
    ("weights", {"novelty": 1},
     r"unknown weight 'novelty'.*expected keys among \['uncertainty', 'diversity', 'balance'\]"),
    ("weights", {"uncertainty": -1}, r"weight 'uncertainty' must be a finite number >= 0, got -1"),
    ("hemisphere", "east", r"hemisphere must be one of \['north', 'south'\].*got 'east'"),
    ("examples", [], r"examples is empty"),
    ("examples", ["12"], r"examples must be clip ids \(integers\), got '12'"),
    ("examples", [999999], r"embeddings missing for an example clip .*clip 999999 has no row"),
    ("metric", "dot", r"metric must be one of \['cosine', 'l2'\], got 'dot'"),
    ("inner", "bald", r"unknown strategy 'bald' in inner; expected one of"),
    ("inner", {"strategy": "kcenter", "params": {"k": 3}}, r"bad parameters for strategy 'kcenter' in inner"),
    ("candidate_factor", 0.5, r"candidate_factor must be a number >= 1.*got 0\.5"),
    ("min_score", 1.5, r"min_score must be a number in \[0, 1\] \(the top-1 score a conflict is above\), got 1\.5"),
    ("max_occurrence", "low", r"max_occurrence must be a number in \[0, 1\] .*got 'low'"),
]


@pytest.mark.parametrize("name", NAMES)
def test_bad_parameters_name_themselves(shared, name):
    params = STRATEGIES[name]().get_params(deep=False)
    tried = 0
    for param, value, match in BAD:
        if param not in params:
            continue
        tried += 1
        with pytest.raises(ValueError, match=match):
            _run(shared, name, 4, **{param: value})
    assert tried >= 2


@pytest.mark.parametrize("name", ["uncertain_diverse", "uncertainty", "cluster_margin", "combined", "stratified"])
def test_nan_uncertainty_is_refused_naming_the_clip(shared, name):
    store, syn = shared
    pool = store.pool()
    pool.max_entropy[7] = np.nan
    pool.margin[7] = np.nan
    strategy = FACTORIES[name](syn, 0)
    if name == "stratified":
        strategy.set_params(inner="uncertainty")
    if name == "cluster_margin":
        strategy.set_params(uncertainty="max_entropy")
    with pytest.raises(ValueError, match=rf"'(max_entropy|margin)' is NaN for 1 clips \(first: clip {pool.clip_id[7]}\)"):
        strategy.query(pool, store.embeddings("test-space"), 4)


@pytest.mark.parametrize("name", NAMES)
def test_multi_label_pools_rank_by_a_per_label_measure(shared, name):
    """Once labels hold several species per clip, every strategy still picks a ranked, explained batch, and
    those that rank by uncertainty ask "is each label on or off?" (the mean binary entropy), not the margin."""
    from dataclasses import replace

    store, syn = shared
    pool = replace(store.pool(), multi_label=True)
    picks = FACTORIES[name](syn, 3).query(pool, store.embeddings("test-space"), 10,
                                           probabilities=store.probabilities(syn.model))
    assert [p.rank for p in picks] == list(range(1, 11)) and len({p.clip_id for p in picks}) == 10
    reasons = " ".join(p.reason for p in picks)
    assert UNCERTAINTY_MEASURES["margin"] not in reasons, picks[0].reason
    single = _run(shared, name, 10)
    if UNCERTAINTY_MEASURES["margin"] in " ".join(p.reason for p in single):
        assert UNCERTAINTY_MEASURES["mean_entropy"] in reasons, picks[0].reason
