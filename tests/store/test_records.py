"""Contract of the Records role (``store.roles.Records``): recordings, clips, model versions, outputs, the pool.

Run on every implementation (the ``SqlRecords`` part and ``Store`` delegating to it) and every backend
(SQLite and a real PostgreSQL, ``db_url`` in conftest.py). Other roles are reached through ``store``.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from store import ModelVersion, Recording, Store, StoreError, binary_entropy, roles
from store.records import TOP_K, SqlRecords
from tests.store.conformance import assert_conforms
from tests.store.data import LABELS, window_batch



@pytest.fixture(params=["SqlRecords", "Store"])
def records(request, store):
    """The role under test: the store's records part, or the store itself."""
    return store.records if request.param == "SqlRecords" else store


def _model(records, dim: int = 4, labels=LABELS, name: str = "test-model"):
    return records.ensure_model_version(name, "embedding", "test-space", dim, labels)


def _recording(records, name: str = "a.wav", **kw) -> Recording:
    return records.add_recording(Recording(path=f"/data/{name}", content_hash=f"hash-{name}", **kw))


def test_implementations_conform_to_the_role(store):
    assert isinstance(store.records, SqlRecords)
    assert_conforms(store.records, roles.Records)
    assert_conforms(store, roles.Records)
    assert not isinstance(store.ledger, roles.Records)  # the check tells roles apart


# ---------------------------------------------------------------------------- recordings
def test_recordings_are_found_by_hash_and_updated(records):
    assert records.find_recordings("hash-a.wav") == []
    rec = _recording(records, site="S1")
    assert rec.id is not None and rec.status == "pending"
    assert [r.id for r in records.find_recordings("hash-a.wav")] == [rec.id]
    done = records.update_recording(rec.id, status="done", duration_s=9.0)
    assert (done.status, done.duration_s) == ("done", 9.0)
    other = _recording(records, "b.wav")
    records.update_recordings({other.id: {"status": "failed", "error": "unreadable"}})
    assert [(r.id, r.status) for r in records.recordings()] == [(rec.id, "done"), (other.id, "failed")]
    assert [r.id for r in records.recordings(status="failed")] == [other.id]
    assert records.recordings(status="replaced") == []


def test_unknown_recordings_and_fields_are_refused_and_change_nothing(records):
    rec, other = _recording(records), _recording(records, "b.wav")
    with pytest.raises(StoreError, match="no recording with id 999"):
        records.update_recording(999, status="done")
    with pytest.raises(StoreError, match="recording has no field 'colour'"):
        records.update_recording(rec.id, status="done", colour="red")
    with pytest.raises(StoreError, match="recording has no field 'colour'"):
        records.update_recordings({rec.id: {"status": "done"}, other.id: {"colour": "red"}})
    assert [r.status for r in records.recordings()] == ["pending", "pending"]  # one transaction, rolled back
    with pytest.raises(StoreError, match="'hash-a.wav' is already stored"):
        records.add_recordings([Recording(path="/data/c.wav", content_hash="hash-c.wav"),
                                Recording(path="/data/a.wav", content_hash="hash-a.wav")])
    assert records.find_recordings("hash-c.wav") == []


def _columns(rec: Recording, *skip: str) -> dict:
    return {c: getattr(rec, c) for c in Recording.__table__.columns.keys() if c not in ("id", *skip)}


def test_plain_rows_are_stored_as_recording_objects_are_with_ids_in_order(records):
    when = datetime(2024, 5, 1, 5, 0, 0)
    fields = [dict(path=f"/data/site{i % 3}/{i:03d}.jpg", content_hash=f"h{i}", modality="image", site=f"S{i % 3}",
                   device="cam", start_time=when, latitude=-1.5, longitude=36.8, country="KEN", admin1_region=None,
                   file_size=1000 + i, file_mtime_ns=10**18 + i, status="pending") for i in range(25)]
    by_orm = records.add_recordings([Recording(**{**f, "content_hash": "orm-" + f["content_hash"]}) for f in fields])
    ids = records.insert_recordings(fields)
    assert len(ids) == 25 and ids == sorted(ids) and min(ids) > max(r.id for r in by_orm)
    stored = {r.id: r for r in records.recordings()}
    for rec_id, f, orm in zip(ids, fields, by_orm):  # each id is its own row's, in the order given
        assert stored[rec_id].content_hash == f["content_hash"] and stored[rec_id].path == f["path"]
        assert _columns(stored[rec_id], "content_hash", "created_at") == _columns(stored[orm.id], "content_hash",
                                                                                   "created_at")
        assert stored[rec_id].created_at is not None
    assert [r.id for r in records.find_recordings("h7")] == [ids[7]]
    bare = records.insert_recordings([{"path": "/data/x.wav", "content_hash": "hx"}])  # Recording's defaults
    assert _columns(records.recordings(ids=bare)[0], "created_at") == \
        _columns(Recording(path="/data/x.wav", content_hash="hx"), "created_at")
    assert records.insert_recordings([]) == []


def test_plain_rows_are_refused_as_recording_objects_are_before_anything_is_written(records):
    records.insert_recordings([{"path": "/data/a.jpg", "content_hash": "ha"}])
    with pytest.raises(StoreError, match="'ha' is already stored for /data/a.jpg"):
        records.insert_recordings([{"path": "/data/b.jpg", "content_hash": "hb"},
                                   {"path": "/data/a.jpg", "content_hash": "ha"}])
    with pytest.raises(StoreError, match="'hc' appears twice in one batch"):
        records.insert_recordings([{"path": "/data/c.jpg", "content_hash": "hc"}] * 2)
    with pytest.raises(StoreError, match="recording has no field 'colour'"):
        records.insert_recordings([{"path": "/data/d.jpg", "content_hash": "hd", "colour": "red"}])
    with pytest.raises(StoreError, match="needs its content_hash"):
        records.insert_recordings([{"path": "/data/e.jpg"}])
    assert [r.path for r in records.recordings()] == ["/data/a.jpg"]
    # the same bytes at another path are a recording of their own
    assert len(records.insert_recordings([{"path": "/data/copy/a.jpg", "content_hash": "ha"}])) == 1


def test_many_recordings_are_updated_by_id_with_their_own_fields(records):
    a, b, c = (_recording(records, n) for n in ("a.wav", "b.wav", "c.wav"))
    records.update_recordings({a.id: {"status": "done", "error": None}, b.id: {"status": "failed", "error": "bad"},
                               c.id: {"site": "S9"}, 999: {"status": "done"}})  # an unknown id changes nothing
    got = {r.id: (r.status, r.error, r.site) for r in records.recordings()}
    assert got == {a.id: ("done", None, None), b.id: ("failed", "bad", None), c.id: ("pending", None, "S9")}
    assert [r.id for r in records.recordings(ids=[c.id, a.id, 12345])] == [a.id, c.id]
    assert [r.id for r in records.recordings(status="failed", ids=[a.id, b.id])] == [b.id]
    assert records.recordings(ids=[]) == []


def test_replaced_and_failed_recordings_leave_the_pool_but_keep_their_clips(records, store):
    mv = _model(records)
    old, kept, broken = _recording(records), _recording(records, "b.wav"), _recording(records, "c.wav")
    spans, probs, emb = window_batch(2)
    old_ids = records.add_clip_batch(old.id, spans, mv, probs, emb)
    kept_ids = records.add_clip_batch(kept.id, spans, mv, probs, emb)
    records.add_clip_batch(broken.id, spans, mv, probs, emb)
    new = records.add_recording(Recording(path=old.path, content_hash="hash-a2.wav"))
    assert records.replace_recordings(old.path, new.id) == [old.id]
    assert records.replace_recordings({old.path: new.id}) == []  # already replaced: nothing to do
    records.update_recording(broken.id, status="failed")
    assert records.pool(mv).clip_id.tolist() == kept_ids.tolist()
    replaced = records.recordings(status="replaced")
    assert [(r.id, r.replaced_by) for r in replaced] == [(old.id, new.id)]
    assert [c.status for c in records.clips(old_ids)] == ["replaced", "replaced"]  # still readable
    assert len(store.embeddings("test-space")) == 6  # their embeddings stay


def test_ingest_resumes_after_the_last_committed_clip(records):
    rec = _recording(records)
    assert records.ingested_until(rec.id) == 0.0
    spans, probs, emb = window_batch(3)
    records.add_clip_batch(rec.id, spans[:2], _model(records), probs[:2], emb[:2])
    assert records.ingested_until(rec.id) == 6.0


# ---------------------------------------------------------------------------- clips and their outputs
def test_clip_batch_stores_scores_predictions_and_vectors(records, store):
    mv = _model(records)
    rec = _recording(records, site="S1", start_time=datetime(2024, 5, 1, 5, 59, 58))
    spans, probs, emb = window_batch(3)
    ids = records.add_clip_batch(rec.id, spans, mv, probs, emb)
    assert len(ids) == 3

    pool = records.pool()
    assert pool.clip_id.tolist() == ids.tolist()
    np.testing.assert_allclose(pool.max_entropy, binary_entropy(probs).max(axis=1), atol=1e-6)
    np.testing.assert_allclose(pool.top1, probs.max(axis=1), atol=1e-6)
    assert pool.top_label.tolist() == [LABELS[i] for i in probs.argmax(axis=1)]
    assert pool.hour.tolist() == [5, 6, 6]  # the clip's own start time, not the recording's
    np.testing.assert_allclose(store.embeddings("test-space").take(ids[::-1]), emb[::-1], rtol=1e-6)
    np.testing.assert_allclose(store.probabilities(mv).take(ids), probs, atol=1e-3)  # float16 on disk
    preds = records.predictions(ids, mv.id)
    assert [p[0] for p in preds[int(ids[0])]][0] == LABELS[int(probs[0].argmax())]
    assert len(preds[int(ids[0])]) == TOP_K


def test_same_batch_twice_adds_nothing(records, store):
    mv = _model(records)
    rec = _recording(records)
    spans, probs, emb = window_batch(4)
    records.add_clip_batch(rec.id, spans, mv, probs, emb)
    again = records.add_clip_batch(rec.id, spans, mv, probs, emb)
    assert len(again) == 0
    assert store.counts()["clips"] == 4
    assert len(store.embeddings("test-space")) == 4
    assert records.ingested_until(rec.id) == 12.0


def test_wrong_shapes_are_refused_before_anything_is_written(records, store):
    mv = _model(records)
    rec = _recording(records)
    spans, probs, emb = window_batch(2)
    with pytest.raises(StoreError, match="4-d"):
        records.add_clip_batch(rec.id, spans, mv, probs, np.zeros((2, 5)))
    with pytest.raises(StoreError, match="8 classes"):
        records.add_clip_batch(rec.id, spans, mv, probs[:, :3], emb)
    assert store.counts()["clips"] == 0


def test_clips_come_back_in_the_order_asked_and_unknown_ids_are_named(records):
    mv = _model(records)
    rec = _recording(records, site="S1")
    spans, probs, emb = window_batch(3)
    ids = records.add_clip_batch(rec.id, spans, mv, probs, emb)
    infos = records.clips(ids[::-1])
    assert [(i.clip_id, i.recording_id, i.start_s, i.end_s, i.site) for i in infos] == [
        (int(c), rec.id, s, e, "S1") for c, (s, e) in zip(ids[::-1], spans[::-1])]
    assert records.clips([]) == []
    with pytest.raises(StoreError, match="no clip with id 99"):
        records.clips([99])
    with pytest.raises(StoreError, match="no clip with id 99"):
        records.clips([int(ids[0]), 99])


def test_image_regions_keep_their_boxes_in_the_same_transaction(records, store):
    mv = _model(records)
    rec = _recording(records, "frame.jpg", modality="image")
    _, probs, emb = window_batch(3)
    boxes = [(0.0, 0.0, 1.0, 1.0, "blank", None), (0.1, 0.2, 0.3, 0.4, "animal", 0.93), None]
    ids = records.add_clip_batch(rec.id, [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)], mv, probs, emb, boxes=boxes)
    infos = records.clips(ids)
    assert [i.box for i in infos] == boxes
    assert records.add_clip_batch(rec.id, [(1.0, 1.0)], mv, probs[:1], emb[:1], boxes=boxes[1:2]).size == 0
    with pytest.raises(StoreError, match="box 0 must be"):
        records.add_clip_batch(rec.id, [(5.0, 5.0)], mv, probs[:1], emb[:1],
                               boxes=[(0.5, 0.5, 0.0, 0.1, "animal", 1.0)])
    assert len(records.pool()) == 3  # the refused batch stored nothing
    frames = [_recording(records, f"frame{i}.jpg", modality="image").id for i in range(2)]
    more = records.add_clips(frames, [(0.0, 0.0), (0.0, 0.0)], mv, probs[:2], emb[:2], boxes=boxes[1:])  # bulk path
    assert [(i.recording_id, i.box) for i in records.clips(more)] == [(frames[0], boxes[1]), (frames[1], None)]
    np.testing.assert_allclose(store.embeddings("test-space").take(more), emb[:2], rtol=1e-6)
    with pytest.raises(StoreError, match="boxes holds 1 entries for 2 clips"):
        records.add_clips(frames, [(1.0, 1.0), (1.0, 1.0)], mv, probs[:2], emb[:2], boxes=boxes[:1])


def test_a_recordings_clips_are_listed_by_start(records):
    mv = _model(records)
    rec, other = _recording(records), _recording(records, "b.wav")
    _, probs, emb = window_batch(3)
    ids = records.add_clip_batch(rec.id, [(6.0, 9.0), (0.0, 3.0), (3.0, 6.0)], mv, probs, emb)
    records.add_clip_batch(other.id, [(0.0, 3.0)], mv, probs[:1], emb[:1])
    got, spans = records.recording_clips(rec.id)
    assert got.tolist() == [ids[1], ids[2], ids[0]] and spans.tolist() == [[0.0, 3.0], [3.0, 6.0], [6.0, 9.0]]
    none, empty = records.recording_clips(999)
    assert none.size == 0 and empty.shape == (0, 2)


# ---------------------------------------------------------------------------- model versions
def test_a_model_is_never_mixed_with_another_of_the_same_name(records):
    _model(records, dim=4)
    with pytest.raises(StoreError, match="refusing"):
        _model(records, dim=8)
    with pytest.raises(StoreError, match="refusing"):
        _model(records, labels=LABELS[:3])


def test_model_versions_are_made_once_and_found_by_name_or_id(records):
    mv = _model(records)
    assert _model(records).id == mv.id  # ensured again: the same row
    with pytest.raises(StoreError, match="refusing"):
        records.ensure_model_version("test-model", "embedding", "test-space", 4, LABELS, output_type="softmax")
    head = records.ensure_model_version("head-1", "classifier", "test-space", 2, ["a", "b"], params={"epochs": 3},
                                        output_type="softmax")
    assert (head.params, head.output_type) == ({"epochs": 3}, "softmax")
    assert [m.name for m in records.model_versions()] == ["test-model", "head-1"]
    assert records.model_version("head-1").id == head.id and records.model_version(head.id).name == "head-1"
    with pytest.raises(StoreError, match="no model version 'nope'"):
        records.model_version("nope")
    with pytest.raises(StoreError, match="no model version 999"):
        records.model_version(999)
    with pytest.raises(StoreError, match="no model version with id 999"):
        records.update_model_version(999, ready=False)
    with pytest.raises(StoreError, match="'head-1' already exists"):
        records.add_model_version(ModelVersion(name="head-1", kind="classifier", embedding_space="s", dim=2))
    assert records.update_model_version(head.id, metrics={"f1": 0.5}).metrics == {"f1": 0.5}
    assert records.current_model_version() is None  # nothing scored yet


def test_metrics_written_by_two_commands_at_once_are_both_kept(records, store, db_url, workspace):
    from store import Store

    head = records.ensure_model_version("head-1", "classifier", "test-space", 2, ["a", "b"])
    records.update_model_version(head.id, metrics={"macro_recall": 0.8})
    other = Store(db_url, workspace.root / "vectors")  # validate, in another process, read the same version ...
    try:
        stale = other.model_version(head.id)
        records.merge_model_metrics(head.id, scored_clips=42)  # ... while a rescoring finished
        other.merge_model_metrics(stale.id, auto_validation={"thresholds": {"a": 0.9}})
    finally:
        other.close()
    assert records.model_version(head.id).metrics == {"macro_recall": 0.8, "scored_clips": 42,
                                                      "auto_validation": {"thresholds": {"a": 0.9}}}
    with pytest.raises(StoreError, match="no model version with id 999"):
        records.merge_model_metrics(999, x=1)


def test_rescoring_replaces_outputs_and_becomes_current(records):
    mv = _model(records)
    rec = _recording(records)
    spans, probs, emb = window_batch(3)
    ids = records.add_clip_batch(rec.id, spans, mv, probs, emb)
    head = records.ensure_model_version("head-1", "classifier", "test-space", 2, ["a", "b"])
    records.write_model_outputs(head, ids, np.full((3, 2), 0.5))
    records.write_model_outputs(head, ids, np.full((3, 2), 0.9))  # replaces, no duplicate rows
    assert records.current_model_version().name == "head-1"
    pool = records.pool()
    assert len(pool) == 3
    np.testing.assert_allclose(pool.top1, 0.9, atol=1e-6)
    np.testing.assert_allclose(records.pool(mv).top1, probs.max(axis=1), atol=1e-6)  # the first model's pool stays


def test_a_head_still_rescoring_is_not_current(records):
    mv = _model(records)
    rec = _recording(records)
    spans, probs, emb = window_batch(3)
    ids = records.add_clip_batch(rec.id, spans, mv, probs, emb)
    head = records.ensure_model_version("head-1", "classifier", "test-space", 2, ["a", "b"])
    head = records.update_model_version(head.id, ready=False)
    records.write_model_outputs(head, ids[:1], np.full((1, 2), 0.5))  # crashed after the first chunk
    assert records.current_model_version().name == "test-model"
    records.update_model_version(head.id, ready=True)
    assert records.current_model_version().name == "head-1"


def test_unscored_clips_are_the_embedded_ones_a_model_has_not_scored(records):
    mv = _model(records)
    rec = _recording(records)
    spans, probs, emb = window_batch(4)
    ids = records.add_clip_batch(rec.id, spans, mv, probs, emb)
    assert records.unscored_clip_ids(mv).tolist() == []
    head = records.ensure_model_version("head-1", "classifier", "test-space", 2, ["a", "b"])
    assert records.unscored_clip_ids(head).tolist() == sorted(ids.tolist())
    records.write_model_outputs(head, ids[1:3], np.full((2, 2), 0.5))
    assert records.unscored_clip_ids(head).tolist() == sorted([int(ids[0]), int(ids[3])])
    assert records.pool(head).clip_id.tolist() == ids[1:3].tolist()  # the pool is what it scored
    elsewhere = records.ensure_model_version("other", "classifier", "no-embeddings", 2, ["a", "b"])
    assert records.unscored_clip_ids(elsewhere).dtype == np.int64
    assert records.unscored_clip_ids(elsewhere).size == 0


def test_outputs_of_the_wrong_shape_or_model_are_refused(records):
    mv = _model(records)
    rec = _recording(records)
    spans, probs, emb = window_batch(2)
    ids = records.add_clip_batch(rec.id, spans, mv, probs, emb)
    with pytest.raises(StoreError, match="8 classes; got probabilities of shape \\(2, 3\\) for 2 clips"):
        records.write_model_outputs(mv, ids, probs[:, :3])
    with pytest.raises(StoreError, match="no model version 999"):
        records.predictions(ids, 999)
    head = records.ensure_model_version("head-1", "classifier", "test-space", 2, ["a", "b"])
    assert records.predictions(ids, head.id) == {int(i): [] for i in ids}  # not scored by it: no predictions


def test_empty_store_says_what_to_do(records):
    with pytest.raises(StoreError, match="ingest"):
        records.pool()


def test_records_of_one_store_are_read_by_another_on_the_same_database(records, store):
    mv = _model(records)
    rec = _recording(records)
    spans, probs, emb = window_batch(2)
    ids = records.add_clip_batch(rec.id, spans, mv, probs, emb)
    other = Store(store.url, store.vectors_dir)
    try:
        assert other.pool(other.model_version(mv.name)).clip_id.tolist() == ids.tolist()
        assert [c.clip_id for c in other.clips(ids)] == ids.tolist()
    finally:
        other.close()


# ---------------------------------------------------------------------------- range priors
def _occurrence(seed: int, n: int = len(LABELS)) -> np.ndarray:
    occ = np.random.default_rng(seed).random(n).astype(np.float32)
    occ[::3] = 0.0005  # below the floor: not kept, read back as 0
    return occ


def test_range_priors_round_trip_compactly_and_replace(records, store):
    from store.ranges import SiteWeek

    mv = _model(records)
    here, there = SiteWeek(47.05, 6.98, 21), SiteWeek(-33.9, 151.2, -1)
    assert records.range_priors(mv) == {}
    assert records.add_range_priors(mv, "meta-v2", {here: _occurrence(0), there: _occurrence(1)}, floor=0.001) == 2
    got = records.range_priors(mv)
    assert set(got) == {here, there}
    for sw, seed in ((here, 0), (there, 1)):
        want = _occurrence(seed)
        want[want < np.float32(0.001)] = 0.0
        np.testing.assert_array_equal(got[sw].occurrence, want)  # float32 values kept exactly
        assert (got[sw].floor, got[sw].range_model, got[sw].site_week) == (0.001, "meta-v2", sw)
    assert list(records.range_priors(mv, [there])) == [there]
    # a refresh replaces the site-week's row; the other stays
    records.add_range_priors(mv, "meta-v3", {here: np.full(len(LABELS), 0.5, dtype=np.float32)})
    again = records.range_priors(mv)
    assert again[here].range_model == "meta-v3" and (again[here].occurrence == 0.5).all()
    np.testing.assert_array_equal(again[there].occurrence, got[there].occurrence)
    assert list(again[here].in_range(0.03)) == list(range(len(LABELS)))
    # another store on the same database reads them
    other = Store(store.url, store.vectors_dir)
    try:
        assert set(other.range_priors(other.model_version(mv.name))) == {here, there}
    finally:
        other.close()


@pytest.mark.parametrize("key, values, match", [
    ((91.0, 0.0, 5), None, r"latitude must be a number in \[-90, 90\].*got 91\.0"),
    ((0.0, -181.0, 5), None, r"longitude must be a number in \[-180, 180\].*got -181\.0"),
    ((0.0, 0.0, 49), None, r"week must be an integer 1-48 .* or -1 \(all year\), got 49"),
    ((0.0, 0.0, 0), None, r"week must be an integer 1-48"),
    ((0.0, 0.0, 5), np.zeros(3), r"has 8 classes, got shape \(3,\)"),
    ((0.0, 0.0, 5), np.full(8, 1.5), r"occurrences must be finite and in \[0, 1\]"),
    ((0.0, 0.0, 5), np.full(8, np.nan), r"occurrences must be finite and in \[0, 1\]"),
])
def test_bad_range_priors_are_refused_and_nothing_is_written(records, key, values, match):
    mv = _model(records)
    good = {(1.0, 2.0, 3): np.full(len(LABELS), 0.2)}
    with pytest.raises(StoreError, match=match):
        records.add_range_priors(mv, "meta", {**good, key: np.full(len(LABELS), 0.1) if values is None else values})
    with pytest.raises(StoreError, match=r"floor must be a number in \[0, 1\), got 1\.0"):
        records.add_range_priors(mv, "meta", good, floor=1.0)
    assert records.range_priors(mv) == {}


def test_the_pool_carries_the_range_occurrence_of_each_top_label(records):
    """Clips of a recording with coordinates and a time read its site-week; the others stay unknown (NaN)."""
    from store.ranges import SiteWeek, week_of

    mv = _model(records)
    start = datetime(2024, 5, 22, 6, 0)
    placed = _recording(records, "placed.wav", latitude=47.05, longitude=6.98, start_time=start, status="done")
    untimed = _recording(records, "untimed.wav", latitude=47.05, longitude=6.98, status="done")
    unplaced = _recording(records, "unplaced.wav", start_time=start, status="done")
    probs = np.full((3, len(LABELS)), 0.01)
    probs[np.arange(3), [1, 2, 5]] = 0.9
    for rec in (placed, untimed, unplaced):
        records.add_clip_batch(rec.id, [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0)], mv, probs, np.zeros((3, 4)))
    assert records.pool(mv).range_occurrence is None  # no priors stored: nothing to read
    occ = np.linspace(0.0, 0.7, len(LABELS)).astype(np.float32)
    records.add_range_priors(mv, "meta", {SiteWeek(47.05, 6.98, week_of(start)): occ})
    pool = records.pool(mv)
    by_recording = {r: pool.range_occurrence[pool.recording_id == r] for r in (placed.id, untimed.id, unplaced.id)}
    np.testing.assert_allclose(by_recording[placed.id], occ[[1, 2, 5]])
    assert np.isnan(by_recording[untimed.id]).all() and np.isnan(by_recording[unplaced.id]).all()
