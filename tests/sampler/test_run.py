"""sample(): a strategy run against the real store, recorded with its parameters, seed and picks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from sampler import STRATEGIES, QueryStrategy, UncertainDiverse, sample
from store import StoreError
from tests.sampler.synthetic import build_pool


def test_run_is_stored_with_params_seed_and_picks(store):
    syn = build_pool(store, per_cluster=12)
    strategy = UncertainDiverse(strata=("site",), candidate_factor=3)
    run, picks = sample(store, strategy, 6)

    assert strategy.random_state is None  # the caller's strategy is left alone
    assert run.id is not None and run.strategy == "uncertain_diverse" and run.budget == 6
    assert run.model_version_id == syn.model.id
    assert isinstance(run.seed, int) and run.params["random_state"] == run.seed
    assert run.params == {"candidate_factor": 3, "n_clusters": None, "strata": ["site"],
                          "uncertainty": "max_entropy", "random_state": run.seed}
    stored_run = store.sampling_runs()[-1]
    assert (stored_run.id, stored_run.params, stored_run.seed) == (run.id, run.params, run.seed)

    stored = store.selections(run.id)
    assert [(s.clip_id, s.rank, s.cluster, s.stratum, s.reason) for s in stored] == \
        [(p.clip_id, p.rank, p.cluster, p.stratum, p.reason) for p in picks]
    assert [s.rank for s in stored] == list(range(1, 7))
    assert all(s.reason and s.stratum.startswith("site=") for s in stored)
    np.testing.assert_allclose([s.score for s in stored], [p.score for p in picks])

    # the recorded name, params and seed rebuild the same batch
    rebuilt = STRATEGIES[run.strategy](**run.params)
    pool = store.pool()
    again = rebuilt.query(pool, store.embeddings("test-space"), 6)
    assert [p.clip_id for p in again] == [p.clip_id for p in picks]


def test_runs_never_pick_a_clip_twice(store):
    build_pool(store, per_cluster=12)
    seen: set[int] = set()
    for _ in range(3):
        _, picks = sample(store, UncertainDiverse(random_state=1), 15)
        ids = {p.clip_id for p in picks}
        assert len(ids) == 15 and not ids & seen
        seen |= ids
    assert store.excluded_clip_ids() == seen


def test_model_version_by_name_and_unknown(store):
    syn = build_pool(store, per_cluster=5)
    run, _ = sample(store, UncertainDiverse(random_state=0, strata=()), 3, model_version=syn.model.name)
    assert run.model_version_id == syn.model.id
    with pytest.raises(StoreError, match="no model version 'nope'"):
        sample(store, UncertainDiverse(random_state=0), 3, model_version="nope")


def test_empty_store_and_bad_budget_are_refused(store):
    with pytest.raises(StoreError, match="no scored clips"):
        sample(store, UncertainDiverse(random_state=0), 3)
    build_pool(store, per_cluster=5)
    with pytest.raises(ValueError, match="budget must be a positive integer .*got 0"):
        sample(store, UncertainDiverse(random_state=0), 0)
    assert store.sampling_runs() == []


def test_unknown_embedding_space_is_refused(store):
    build_pool(store, per_cluster=5)
    with pytest.raises(StoreError, match="no matrix 'embeddings:other'"):
        sample(store, UncertainDiverse(random_state=0), 3, embedding_space="other")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_honours_the_contract(store, name):
    """Template: every registered strategy stores params only, is clonable, picks unique unexcluded clips."""
    cls = STRATEGIES[name]
    assert issubclass(cls, QueryStrategy) and cls.name == name
    strategy = cls(random_state=3)
    assert clone(strategy).get_params() == strategy.get_params()
    syn = build_pool(store, per_cluster=12)
    pool = store.pool()
    emb = store.embeddings("test-space")
    exclude = set(syn.clip_ids[::3].tolist())
    picks = strategy.query(pool, emb, 10, exclude=exclude)
    assert [p.rank for p in picks] == list(range(1, 11))
    assert len({p.clip_id for p in picks}) == 10 and not exclude & {p.clip_id for p in picks}
    assert all(p.reason for p in picks)
    assert picks == cls(random_state=3).query(pool, emb, 10, exclude=exclude)
