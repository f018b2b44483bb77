"""finetune.scoring: the current head scores the clips ingested after it was trained, and only those."""

from __future__ import annotations

import numpy as np

from finetune.head import ClassifierHead
from finetune.scoring import sample_scored, score_new_clips
from sampler import UncertainDiverse
from store import ModelVersion
from tests.sampler.synthetic import build_pool


def _head_scoring_the_first(store, tmp_path, n_scored: int):
    """A head over the synthetic pool that has scored only its first ``n_scored`` clips (with rows of its own
    that differ from what it would say now), the rest ingested after it was trained."""
    syn = build_pool(store, per_cluster=6)
    view = store.embeddings("test-space")
    x = np.asarray(view.data)
    head = ClassifierHead().fit(x, [["a"], ["b"]] * (len(view) // 2), classes=["a", "b"])
    mv = store.add_model_version(ModelVersion(name="head-1", kind="classifier", embedding_space="test-space", dim=2,
                                              labels=["a", "b"], artifact_path=str(head.save(tmp_path / "h.npz"))))
    earlier = np.tile(np.array([[0.9, 0.2]], dtype=np.float32), (n_scored, 1))
    store.write_model_outputs(mv, np.asarray(view.ids[:n_scored]), earlier)
    return syn, head, mv, np.asarray(view.ids, dtype=np.int64), x, earlier


def test_the_head_scores_only_the_clips_it_has_not_in_chunks_with_progress(store, tmp_path):
    _, head, mv, ids, x, earlier = _head_scoring_the_first(store, tmp_path, 10)
    seen: list[tuple[int, int]] = []
    assert score_new_clips(store, mv, chunk_size=16, progress=lambda done, total: seen.append((done, total))) == 38
    assert seen == [(16, 38), (32, 38), (38, 38)]
    probs = store.probabilities(mv)
    assert np.abs(head.predict_proba(x[:10]) - earlier).max() > 0.05  # so a re-scoring of them would show
    np.testing.assert_allclose(probs.take(ids[:10]), earlier, atol=1e-3)  # what it said before is kept
    np.testing.assert_allclose(probs.take(ids[10:]), head.predict_proba(x[10:]), atol=1e-3)  # (kept as float16)
    assert store.unscored_clip_ids(mv).size == 0
    assert score_new_clips(store, mv, progress=lambda done, total: seen.append((done, total))) == 0  # nothing new
    assert len(seen) == 3


def test_a_model_that_scored_its_clips_at_ingest_has_nothing_to_score(store):
    syn = build_pool(store, per_cluster=2)
    assert store.current_model_version().id == syn.model.id
    assert score_new_clips(store) == 0 and score_new_clips(store, syn.model) == 0


def test_sample_scored_scores_the_new_clips_then_stores_a_batch_of_the_heads_pool(store, tmp_path):
    _, _, mv, ids, _, _ = _head_scoring_the_first(store, tmp_path, 2)
    result = sample_scored(store, UncertainDiverse(random_state=0, strata=()), 4, model_version="head-1")
    assert result.scored == len(ids) - 2 and store.unscored_clip_ids(mv).size == 0
    assert result.run.model_version_id == mv.id and len(result.picks) == 4
    assert [s.clip_id for s in store.selections(result.run.id)] == [p.clip_id for p in result.picks]
    again = sample_scored(store, UncertainDiverse(random_state=1, strata=()), 4, model_version="head-1")
    assert again.scored == 0 and not {p.clip_id for p in again.picks} & {p.clip_id for p in result.picks}
