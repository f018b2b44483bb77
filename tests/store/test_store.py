"""Contract of the store interface: what every other package relies on."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from sqlalchemy import text

from store import Annotation, Recording, SamplingRun, Selection, Store, StoreError, Task, binary_entropy
import store.store as store_module
from store.store import TOP_K

LABELS = [f"Species {i}_Common {i}" for i in range(8)]


def _model(store: Store, dim: int = 4, labels=LABELS):
    return store.ensure_model_version("test-model", "embedding", "test-space", dim, labels)


def _recording(store: Store, name: str = "a.wav", **kw) -> Recording:
    return store.add_recording(Recording(path=f"/data/{name}", content_hash=f"hash-{name}", **kw))


def _batch(n: int, seed: int = 0, dim: int = 4):
    rng = np.random.default_rng(seed)
    return [(3.0 * i, 3.0 * i + 3) for i in range(n)], rng.random((n, len(LABELS))), rng.random((n, dim))


def test_sqlite_store_runs_in_wal_mode(store):
    if store.engine.dialect.name != "sqlite":
        pytest.skip("WAL is a SQLite journal mode")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_clip_batch_stores_scores_predictions_and_vectors(store):
    mv = _model(store)
    rec = _recording(store, site="S1", start_time=datetime(2024, 5, 1, 5, 59, 58))
    spans, probs, emb = _batch(3)
    ids = store.add_clip_batch(rec.id, spans, mv, probs, emb)
    assert len(ids) == 3

    pool = store.pool()
    assert pool.clip_id.tolist() == ids.tolist()
    np.testing.assert_allclose(pool.max_entropy, binary_entropy(probs).max(axis=1), atol=1e-6)
    np.testing.assert_allclose(pool.top1, probs.max(axis=1), atol=1e-6)
    assert pool.top_label.tolist() == [LABELS[i] for i in probs.argmax(axis=1)]
    assert pool.hour.tolist() == [5, 6, 6]  # the clip's own start time, not the recording's
    np.testing.assert_allclose(store.embeddings("test-space").take(ids[::-1]), emb[::-1], rtol=1e-6)
    np.testing.assert_allclose(store.probabilities(mv).take(ids), probs, atol=1e-3)  # float16 on disk
    preds = store.predictions(ids, mv.id)
    assert [p[0] for p in preds[int(ids[0])]][0] == LABELS[int(probs[0].argmax())]
    assert len(preds[int(ids[0])]) == TOP_K


def test_same_batch_twice_adds_nothing(store):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = _batch(4)
    store.add_clip_batch(rec.id, spans, mv, probs, emb)
    again = store.add_clip_batch(rec.id, spans, mv, probs, emb)
    assert len(again) == 0
    assert store.counts()["clips"] == 4
    assert len(store.embeddings("test-space")) == 4
    assert store.ingested_until(rec.id) == 12.0


def test_vectors_written_by_a_crashed_transaction_stay_invisible(store, monkeypatch):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = _batch(4)
    store.add_clip_batch(rec.id, spans[:2], mv, probs[:2], emb[:2])

    real_write = store_module.matrices.write_rows

    def write_then_crash(folder, name, *args):
        rows = real_write(folder, name, *args)
        if name.startswith("embeddings"):
            raise RuntimeError("power cut")
        return rows

    # the vectors reach disk, then the process dies before the database commit
    monkeypatch.setattr(store_module.matrices, "write_rows", write_then_crash)
    with pytest.raises(RuntimeError):
        store.add_clip_batch(rec.id, spans[2:], mv, probs[2:], emb[2:] + 100)
    data_file = store.vectors_dir / "embeddings__test-space.float32"
    assert data_file.stat().st_size == 4 * 4 * 4  # four rows on disk, two committed
    monkeypatch.undo()
    assert len(store.embeddings("test-space")) == 2
    ids = store.add_clip_batch(rec.id, spans[2:], mv, probs[2:], emb[2:])
    view = store.embeddings("test-space")
    assert len(view) == 4
    np.testing.assert_allclose(view.take(ids), emb[2:], rtol=1e-6)  # the crashed rows were overwritten


def test_a_model_is_never_mixed_with_another_of_the_same_name(store):
    _model(store, dim=4)
    with pytest.raises(StoreError, match="refusing"):
        _model(store, dim=8)
    with pytest.raises(StoreError, match="refusing"):
        _model(store, labels=LABELS[:3])


def test_wrong_shapes_are_refused_before_anything_is_written(store):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = _batch(2)
    with pytest.raises(StoreError, match="4-d"):
        store.add_clip_batch(rec.id, spans, mv, probs, np.zeros((2, 5)))
    with pytest.raises(StoreError, match="8 classes"):
        store.add_clip_batch(rec.id, spans, mv, probs[:, :3], emb)
    assert store.counts()["clips"] == 0


def test_missing_clip_rows_name_the_clip(store):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = _batch(2)
    store.add_clip_batch(rec.id, spans, mv, probs, emb)
    with pytest.raises(KeyError, match="clip 99"):
        store.embeddings("test-space").take([1, 99])
    with pytest.raises(StoreError, match="no clip with id 99"):
        store.clips([99])


def test_rescoring_replaces_outputs_and_becomes_current(store):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = _batch(3)
    ids = store.add_clip_batch(rec.id, spans, mv, probs, emb)
    head = store.ensure_model_version("head-1", "classifier", "test-space", 2, ["a", "b"])
    store.write_model_outputs(head, ids, np.full((3, 2), 0.5))
    store.write_model_outputs(head, ids, np.full((3, 2), 0.9))  # replaces, no duplicate rows
    assert store.current_model_version().name == "head-1"
    pool = store.pool()
    assert len(pool) == 3
    np.testing.assert_allclose(pool.top1, 0.9, atol=1e-6)


def test_exclusions_cover_selected_pushed_and_annotated_clips(store):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = _batch(5)
    ids = [int(i) for i in store.add_clip_batch(rec.id, spans, mv, probs, emb)]
    store.add_sampling_run(SamplingRun(strategy="t", budget=1, seed=0),
                           [Selection(clip_id=ids[0], rank=1, score=0.5, reason="test")])
    store.add_tasks([Task(project_id=1, clip_id=ids[1], ls_task_id=10)])
    store.add_tasks([Task(project_id=1, clip_id=ids[1], ls_task_id=10)])  # idempotent
    store.upsert_annotation(Annotation(clip_id=ids[2], project_id=1, ls_task_id=11, ls_annotation_id=5,
                                       labels=["x"]))
    assert store.excluded_clip_ids() == set(ids[:3])
    assert store.tasks(1) == {ids[1]: 10}


def test_annotation_upsert_and_deletion(store):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = _batch(2)
    cid = int(store.add_clip_batch(rec.id, spans, mv, probs, emb)[0])
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ann = dict(clip_id=cid, project_id=1, ls_task_id=7, annotator="a@x", created_at=t0, updated_at=t0)
    assert store.upsert_annotation(Annotation(ls_annotation_id=1, labels=["A"], **ann)) == "new"
    assert store.upsert_annotation(Annotation(ls_annotation_id=1, labels=["A"], **ann)) == "unchanged"
    assert store.upsert_annotation(Annotation(ls_annotation_id=1, labels=["B"], **ann)) == "updated"
    assert store.upsert_annotation(Annotation(ls_annotation_id=2, labels=["C"], **ann)) == "new"
    assert store.mark_annotations_deleted(1, 7, keep=[2]) == 1
    active = store.annotations()
    assert [(a.ls_annotation_id, a.labels) for a in active] == [(2, ["C"])]
    assert [a.labels for a in store.annotations(state="deleted")] == [["B"]]


def test_label_sets_are_validated(store):
    assert store.add_label_set("v1", ["A", "B"]).labels == ["A", "B"]
    assert store.add_label_set("v1", ["A", "B"]).name == "v1"  # same content: reused
    with pytest.raises(StoreError, match="other labels"):
        store.add_label_set("v1", ["A"])
    with pytest.raises(StoreError, match="twice"):
        store.add_label_set("v2", ["A", "A"])
    with pytest.raises(StoreError, match="non-empty"):
        store.add_label_set("v3", ["A", " "])
    assert store.label_set().name == "v1"


def test_watermark_round_trip(store):
    assert store.watermark(3) is None
    t = datetime(2026, 11, 25, 3, 4, 5, 123456, tzinfo=timezone.utc)
    store.set_watermark(3, t)
    assert store.watermark(3) == t


def test_store_reopens_with_its_data(workspace):
    st = workspace.open_store()
    mv = _model(st)
    rec = _recording(st)
    spans, probs, emb = _batch(2)
    st.add_clip_batch(rec.id, spans, mv, probs, emb)
    st.close()
    again = workspace.open_store()
    assert len(again.embeddings("test-space")) == 2
    assert len(again.pool()) == 2


def test_empty_store_says_what_to_do(store):
    with pytest.raises(StoreError, match="ingest"):
        store.pool()


def test_a_head_still_rescoring_is_not_current(store):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = _batch(3)
    ids = store.add_clip_batch(rec.id, spans, mv, probs, emb)
    head = store.ensure_model_version("head-1", "classifier", "test-space", 2, ["a", "b"])
    head = store.update_model_version(head.id, ready=False)
    store.write_model_outputs(head, ids[:1], np.full((1, 2), 0.5))  # crashed after the first chunk
    assert store.current_model_version().name == "test-model"
    store.update_model_version(head.id, ready=True)
    assert store.current_model_version().name == "head-1"


def test_image_regions_keep_their_boxes_in_the_same_transaction(store):
    mv = _model(store)
    rec = _recording(store, "frame.jpg", modality="image")
    _, probs, emb = _batch(3)
    boxes = [(0.0, 0.0, 1.0, 1.0, "blank", None), (0.1, 0.2, 0.3, 0.4, "animal", 0.93), None]
    ids = store.add_clip_batch(rec.id, [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)], mv, probs, emb, boxes=boxes)
    infos = store.clips(ids)
    assert [i.box for i in infos] == boxes
    assert store.add_clip_batch(rec.id, [(1.0, 1.0)], mv, probs[:1], emb[:1], boxes=boxes[1:2]).size == 0
    with pytest.raises(StoreError, match="box 0 must be"):
        store.add_clip_batch(rec.id, [(5.0, 5.0)], mv, probs[:1], emb[:1], boxes=[(0.5, 0.5, 0.0, 0.1, "animal", 1.0)])
    assert len(store.pool()) == 3  # the refused batch stored nothing
