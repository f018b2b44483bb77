"""sample(): a strategy run against the real store, recorded with its parameters, seed and picks."""

from __future__ import annotations

import numpy as np
import pytest

from sampler import STRATEGIES, UncertainDiverse, sample
from sampler.run import sample_batch
from store import ModelVersion, StoreError
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
                          "uncertainty": None, "pca": None, "near_duplicate_radius": None,
                          "near_duplicate_metric": "cosine", "random_state": run.seed}
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


# --------------------------------------------------------------------------- replay
def _add_recording(store, model, n=12, seed=9):
    """More audio ingested after a run: clips the replay must leave out."""
    from store import Recording

    rng = np.random.default_rng(seed)
    rec = store.add_recording(Recording(path=f"/data/late{seed}.wav", content_hash=f"late-{seed}", site="A",
                                        status="done"))
    probs = np.full((n, len(model.labels)), 0.01)
    probs[:, 0] = 0.5  # maximally uncertain: any strategy would want them
    return store.add_clip_batch(rec.id, [(3.0 * j, 3.0 * j + 3) for j in range(n)], model, probs,
                                rng.normal(size=(n, model.dim)).astype(np.float32))


def test_replay_reproduces_stored_runs(store):
    from sampler import Combined, KCenterGreedy, Stratified, replay
    from tests.sampler.synthetic import annotate

    syn = build_pool(store, per_cluster=15)
    runs = [sample(store, Combined(strata=("site",)), 6)[0],
            sample(store, Stratified(inner=KCenterGreedy(random_state=np.random.default_rng(1)), strata=("hour",),
                                     quotas="proportional", random_state=np.random.default_rng(2)), 8)[0],
            sample(store, UncertainDiverse(strata=("site",), near_duplicate_radius=0.01), 5)[0]]
    assert runs[1].params["inner"] == {"strategy": "kcenter", "params": {
        "candidates": "random", "uncertainty": None, "n_candidates": None, "pca": 128,
        "near_duplicate_radius": None, "near_duplicate_metric": "cosine",
        "random_state": runs[1].params["inner"]["params"]["random_state"]}}
    assert isinstance(runs[1].params["inner"]["params"]["random_state"], int)
    # the store moves on: the batches are labelled, more audio arrives
    annotate(store, [s.clip_id for s in store.selections(runs[0].id)], [["x"]] * 6)
    _add_recording(store, syn.model)
    for run in runs:
        r = replay(store, run.id)
        assert r.identical, r.differences()
        assert [p.clip_id for p in r.picks] == [s.clip_id for s in store.selections(run.id)]
    assert len(store.sampling_runs()) == 3  # replay writes nothing
    # a new run does see the new clips, so leaving them out of the replay mattered
    new = sample(store, Combined(strata=("site",)), 6)[1]
    assert len(store.pool()) == len(syn.clip_ids) + 12
    assert {s.clip_id for s in new} - set(syn.clip_ids.tolist())


def test_replay_reports_differences_and_unknown_runs(store):
    from sampler import Replay, replay

    build_pool(store, per_cluster=5)
    run, sel = sample(store, UncertainDiverse(strata=()), 3)
    r = replay(store, run.id)
    swapped = Replay(run=r.run, picks=r.picks, stored=[sel[1], sel[0], sel[2]])
    assert not swapped.identical
    assert swapped.differences() == [f"rank 1: stored clip {sel[1].clip_id}, replayed clip {sel[0].clip_id}",
                                     f"rank 2: stored clip {sel[0].clip_id}, replayed clip {sel[1].clip_id}"]
    with pytest.raises(StoreError, match=rf"no sampling run 99 in this store \(it holds runs {run.id}..{run.id}\)"):
        replay(store, 99)


def test_sample_passes_the_probability_matrix(store):
    from sampler import UncertaintySampling

    build_pool(store, per_cluster=5, hot_clusters=(3,))
    run, picks = sample(store, UncertaintySampling(uncertainty="categorical_entropy"), 4)
    assert run.seed is None and run.params["uncertainty"] == "categorical_entropy"
    assert all(s.reason.startswith("normalised categorical entropy") for s in picks)


def test_the_pool_knows_from_the_experts_labels_whether_clips_hold_several_species(store):
    from sampler import UncertaintySampling
    from sampler.run import labels_are_multi, query_store
    from tests.sampler.synthetic import annotate, build_pool

    syn = build_pool(store, per_cluster=10)
    assert labels_are_multi(store) is None
    annotate(store, syn.clip_ids[:20], [["Parus major_Great Tit"]] * 20)
    assert labels_are_multi(store) is False
    annotate(store, syn.clip_ids[20:24], [["Parus major_Great Tit", "Erithacus rubecula_European Robin"]] * 4,
             start=100)
    assert labels_are_multi(store) is True
    _, pool, _ = query_store(store, UncertaintySampling(), 5, store.current_model_version())
    assert pool.multi_label is True


def test_sample_batch_has_a_head_score_the_clips_it_has_not_then_samples_its_pool(store, tmp_path):
    from finetune.head import ClassifierHead
    from finetune.scoring import score_new_clips

    build_pool(store, per_cluster=6)
    view = store.embeddings("test-space")
    x = np.asarray(view.data)
    head = ClassifierHead().fit(x, [["a"], ["b"]] * (len(view) // 2), classes=["a", "b"])
    mv = store.add_model_version(ModelVersion(name="head-1", kind="classifier", embedding_space="test-space", dim=2,
                                              labels=["a", "b"], artifact_path=str(head.save(tmp_path / "h.npz"))))
    store.write_model_outputs(mv, view.ids[:2], head.predict_proba(x[:2]))  # the rest came after it
    with pytest.raises(StoreError, match="not scored by model 'head-1'"):
        sample(store, UncertainDiverse(random_state=0), 4, model_version=mv)

    seen: list[tuple[int, int]] = []
    result = sample_batch(store, UncertainDiverse(random_state=0, strata=()), 4, model_version="head-1",
                          score_new_clips=score_new_clips, progress=lambda done, total: seen.append((done, total)))
    assert result.scored == len(view) - 2 and seen[-1] == (result.scored, result.scored)
    assert store.unscored_clip_ids(mv).size == 0
    assert result.run.model_version_id == mv.id and [s.clip_id for s in store.selections(result.run.id)] == \
        [p.clip_id for p in result.picks] and len(result.picks) == 4
