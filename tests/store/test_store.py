"""Contract of the store interface: what every other package relies on."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from sqlalchemy import text

from store import Annotation, Recording, SamplingRun, Selection, Store, StoreError, Task

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
