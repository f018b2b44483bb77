"""finetune(): labels in the store -> a head -> metrics -> a new model version -> a re-scored pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import finetune.head as head_module
from finetune import FinetuneError, evaluate, finetune, rescore, split_key, stratified_split
from sampler import UncertainDiverse, sample
from tests.sampler.synthetic import SPECIES, annotate, build_pool


def _label_some(store, syn, per_cluster: int = 12):
    picked = [int(c) for k in range(8) for c in syn.clip_ids[syn.cluster == k][:per_cluster]]
    annotate(store, picked, [[s] for s in syn.of(picked, "species")])
    return picked


def test_finetune_learns_records_and_rescores(store, workspace):
    syn = build_pool(store, per_cluster=30)
    base = store.pool()
    _label_some(store, syn)

    mv = finetune(store, workspace.models, random_state=0)

    assert (mv.kind, mv.name, mv.embedding_space) == ("classifier", "head-test-space-1", "test-space")
    assert mv.labels == sorted(SPECIES) and mv.dim == 4 and mv.parent_id == syn.model.id
    m = mv.metrics
    assert (m["n_annotations"], m["n_clips"], m["n_train"], m["n_test"], m["n_fit"]) == (96, 96, 72, 24, 96)
    assert m["stratified_split"] is True
    assert m["macro_recall"] >= 0.95 and m["accuracy"] >= 0.95
    assert set(m["recall_per_class"]) == set(SPECIES) and set(m["recall_per_site"]) == {"A", "B", "C"}
    assert m["worst_site_recall"] == min(m["recall_per_site"].values())
    assert m["scored_clips"] == len(syn.clip_ids)
    assert mv.params["C"] == 1.0 and mv.params["random_state"] == 0 and mv.params["class_weight"] == "balanced"
    stored = store.model_version(mv.name)
    assert stored.metrics == m
    assert Path(mv.artifact_path) == workspace.models / "head-test-space-1.npz" and Path(mv.artifact_path).exists()

    # the whole pool is re-scored and the head is what sampling uses next
    assert store.current_model_version().id == mv.id
    pool = store.pool(mv)
    assert pool.clip_id.tolist() == base.clip_id.tolist()
    assert not np.allclose(pool.max_entropy, base.max_entropy)
    truth = syn.of(pool.clip_id, "species")
    assert np.mean([a == b for a, b in zip(pool.top_label, truth)]) >= 0.98
    run, _ = sample(store, UncertainDiverse(random_state=0), 5)
    assert run.model_version_id == mv.id


def test_second_head_gets_next_name_and_same_parent(store, workspace):
    syn = build_pool(store, per_cluster=12)
    _label_some(store, syn, per_cluster=4)
    first = finetune(store, workspace.models, random_state=0)
    second = finetune(store, workspace.models, random_state=1, C=0.1)
    assert second.name == "head-test-space-2" and second.parent_id == syn.model.id == first.parent_id
    assert store.current_model_version().id == second.id and second.params["C"] == 0.1


def test_rescore_streams_in_chunks(store, workspace, monkeypatch):
    syn = build_pool(store, per_cluster=12)
    _label_some(store, syn, per_cluster=4)
    mv = finetune(store, workspace.models, random_state=0)
    rows = []
    real = head_module.ClassifierHead.predict_proba

    def spy(self, X):
        rows.append(len(X))
        return real(self, X)

    monkeypatch.setattr(head_module.ClassifierHead, "predict_proba", spy)
    before = store.pool(mv)
    mv = rescore(store, mv, chunk_size=25)  # head loaded from its .npz artifact
    assert max(rows) <= 25 and sum(rows) == len(syn.clip_ids) and len(rows) == -(-len(syn.clip_ids) // 25)
    after = store.pool(mv)
    np.testing.assert_allclose(after.max_entropy, before.max_entropy, atol=1e-6)  # replaced, not duplicated
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1, got 0"):
        rescore(store, mv, chunk_size=0)


def test_very_few_labels_still_evaluate(store, workspace):
    syn = build_pool(store, per_cluster=5)
    clips = [int(syn.clip_ids[0]), int(syn.clip_ids[8]), int(syn.clip_ids[1])]
    annotate(store, clips, [[SPECIES[0]], [SPECIES[0]], [SPECIES[1]]])
    mv = finetune(store, workspace.models, random_state=0)
    m = mv.metrics
    assert m["n_test"] == 1 and m["n_train"] == 2 and m["n_fit"] == 3
    assert set(mv.labels) == {SPECIES[0], SPECIES[1]}
    assert store.current_model_version().id == mv.id


def test_a_clip_whose_experts_disagree_waits_for_adjudication_and_deleted_ones_are_ignored(store, workspace):
    syn = build_pool(store, per_cluster=12)
    picked = _label_some(store, syn, per_cluster=4)
    annotate(store, [picked[0]], [[SPECIES[3]]], start=900)  # a second annotator gives another answer
    annotate(store, [picked[1]], [["Bogus species"]], start=950, state="deleted")
    mv = finetune(store, workspace.models, random_state=0)
    # one answer per clip: the split clip is left out (never trained on both copies)
    assert mv.metrics["n_annotations"] == 33 and mv.metrics["n_clips"] == 31
    assert "Bogus species" not in mv.labels


def test_without_refit_the_head_is_the_evaluated_one(store, workspace):
    syn = build_pool(store, per_cluster=12)
    _label_some(store, syn, per_cluster=4)
    mv = finetune(store, workspace.models, random_state=0, refit=False)
    assert mv.metrics["n_fit"] == mv.metrics["n_train"] == 24 and mv.params["refit"] is False


def test_no_annotations_is_an_error(store, workspace):
    syn = build_pool(store, per_cluster=5)
    with pytest.raises(FinetuneError, match="no active annotations"):
        finetune(store, workspace.models)
    annotate(store, syn.clip_ids[:4], [[SPECIES[0]], [SPECIES[1]]] * 2, state="deleted")
    with pytest.raises(FinetuneError, match="no active annotations"):
        finetune(store, workspace.models)
    assert store.current_model_version().id == syn.model.id


def test_a_single_label_class_is_an_error(store, workspace):
    syn = build_pool(store, per_cluster=5)
    annotate(store, syn.clip_ids[:6], [[SPECIES[2]]] * 6)
    with pytest.raises(FinetuneError, match=r"all 6 labelled clips carry the same labels \['Fringilla.*label clips of "
                                            r"another species, or clips holding none of them \(Noise\)"):
        finetune(store, workspace.models)
    annotate(store, syn.clip_ids[:6], [["Noise"]] * 6)  # noise only: Noise is what "no species" already is
    with pytest.raises(FinetuneError, match=r"carry the same labels \['Noise'\]: a classifier needs at least two "
                                            r"classes to contrast; label some clips with the species they hold$"):
        finetune(store, workspace.models)


def test_one_species_against_no_species_is_a_valid_detector(store, workspace):
    syn = build_pool(store, per_cluster=12)
    ids = syn.clip_ids[:40]
    annotate(store, ids, [[SPECIES[0]] if c == 0 else [] for c in syn.cluster[:40]])
    mv = finetune(store, workspace.models, random_state=0)
    assert mv.labels == [SPECIES[0]] and mv.metrics["recall_per_class"][SPECIES[0]] == 1.0


def test_labelled_clips_without_embeddings_are_an_error(store, workspace):
    syn = build_pool(store, per_cluster=12, no_embedding_sites=("C",))
    on_c = [int(c) for c, s in zip(syn.clip_ids, syn.site) if s == "C"][:2]
    on_a = [int(c) for c, s in zip(syn.clip_ids, syn.site) if s == "A"][:6]
    annotate(store, on_a + on_c, [[SPECIES[0]], [SPECIES[1]]] * 4)
    with pytest.raises(FinetuneError, match=rf"2 of 8 labelled clips have no embeddings in space 'test-space' "
                                            rf"\(first clip ids: \[{on_c[0]}, {on_c[1]}\]\)"):
        finetune(store, workspace.models)


def test_unknown_embedding_space_and_bad_test_size_are_errors(store, workspace):
    syn = build_pool(store, per_cluster=5)
    annotate(store, syn.clip_ids[:8], [[SPECIES[0]], [SPECIES[1]]] * 4)
    with pytest.raises(FinetuneError, match=r"no embedding model .* space 'other'; known spaces: \['test-space'\]"):
        finetune(store, workspace.models, embedding_space="other")
    with pytest.raises(ValueError, match=r"test_size must be a fraction between 0 and 1 .*got 1\.5"):
        finetune(store, workspace.models, test_size=1.5)


def test_empty_store_is_an_error(store, workspace):
    with pytest.raises(FinetuneError, match="no embedding model yet"):
        finetune(store, workspace.models)


# --------------------------------------------------------------------------- split and metrics
def test_stratified_split_is_seeded_and_keeps_singletons_in_training():
    keys = ["a"] * 8 + ["b"] * 8 + ["c"] * 8 + ["d"]
    train, test, stratified = stratified_split(keys, 0.25, random_state=0)
    assert stratified and len(test) == 6 and len(train) == 19
    assert sorted(keys[i] for i in test) == ["a", "a", "b", "b", "c", "c"]
    assert 24 in train  # the singleton "d"
    again = stratified_split(keys, 0.25, random_state=0)
    assert again[0].tolist() == train.tolist() and again[1].tolist() == test.tolist()
    other = [stratified_split(keys, 0.25, random_state=s)[1].tolist() for s in range(1, 6)]
    assert any(t != test.tolist() for t in other)
    assert stratified_split(["a", "b"], 0.25, random_state=0)[1].size == 1  # never an empty test set
    with pytest.raises(ValueError, match="at least 2 labelled clips"):
        stratified_split(["a"], 0.25)


def test_split_key_is_the_rarest_label():
    assert split_key([["x", "y"], ["x"], ["x"], [], ["y", "z"]]) == ["y", "x", "x", "", "z"]


def test_evaluate_by_hand():
    classes = ["a", "b", "c"]
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0]], dtype=bool)
    pred = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]], dtype=bool)
    m = evaluate(truth, pred, classes, ["S1", "S1", "S2", "S2"])
    assert m["accuracy"] == 0.25
    assert m["recall_per_class"] == {"a": 2 / 3, "b": 0.5}  # c has no positives: left out
    assert m["macro_recall"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert m["recall_per_site"] == {"S1": 0.5, "S2": 0.5}
    assert m["support_per_class"] == {"a": 3, "b": 2, "c": 0} and m["n_test"] == 4


def test_rescoring_reports_progress_per_chunk(store, workspace):
    syn = build_pool(store, per_cluster=12)
    _label_some(store, syn, per_cluster=4)
    seen = []
    finetune(store, workspace.models, random_state=0, chunk_size=25, progress=lambda done, total: seen.append((done, total)))
    n = len(syn.clip_ids)
    assert seen[-1] == (n, n) and len(seen) == -(-n // 25)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_softmax_embedding_model_gets_a_softmax_head(store, workspace):
    """Image classifiers give one species per crop: the head and its default uncertainty follow them."""
    syn = build_pool(store, per_cluster=30)
    store.update_model_version(syn.model.id, output_type="softmax")
    _label_some(store, syn)
    mv = finetune(store, workspace.models, random_state=0)
    assert mv.output_type == "softmax" and mv.params["output_type"] == "softmax"
    probs = store.probabilities(mv).take(syn.clip_ids[:20])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=2e-3)  # float16 rows
    picks = sample(store, UncertainDiverse(random_state=0), 4)[1]
    assert all(p.reason.startswith("normalised categorical entropy") for p in picks)
