"""Contract of the store's scale paths on every backend: bulk load, pool from matrices, float16, indexes.

No timings here (speed lives in bench/sampling.py): these check that the fast paths return exactly
what the plain ones do, and that their failures name the value at fault.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from store import Annotation, Matrix, Prediction, Recording, SamplingRun, Score, Selection, Store, StoreError, Task
from store import sql as store_sql
from store.matrices import MatrixView
import store.store as store_module

LABELS = ["Turdus merula_Eurasian Blackbird", "Erithacus rubecula_European Robin", "Parus major_Great Tit",
          "Sitta europaea_Eurasian Nuthatch", "Fringilla coelebs_Common Chaffinch", "Strix aluco_Tawny Owl"]
DIM = 8


def _model(store: Store, name: str = "bulk-model"):
    return store.ensure_model_version(name, "embedding", "bulk-space", DIM, LABELS)


def _recordings(store: Store, n: int = 3) -> list[int]:
    sites = ["Jura", "Alps", None]
    return [store.add_recording(Recording(path=f"/data/r{i}.wav", content_hash=f"bulk-{i}", site=sites[i % 3],
                                          device=f"dev-{i % 2}", start_time=datetime(2024, 5, 1, 4 + i, 59, 57),
                                          status="done")).id for i in range(n)]


def _clips(rec_ids: list[int], per: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rec = np.repeat(rec_ids, per)
    start = np.tile(np.arange(per) * 3.0, len(rec_ids))
    spans = np.column_stack([start, start + 3.0])
    return rec, spans, rng.random((rec.size, len(LABELS))), rng.standard_normal((rec.size, DIM))


def _legacy_scores(store: Store, mv, ids: np.ndarray, probs: np.ndarray) -> None:
    """Score rows as release 0.1.0 wrote them (one SQL row per clip), for stores made by it."""
    from store.uncertainty import score_rows

    sc = score_rows(probs)
    with store._session(write=True) as s:
        for j, i in enumerate(ids.tolist()):
            s.add(Score(clip_id=int(i), model_version_id=mv.id, max_entropy=float(sc["max_entropy"][j]),
                        mean_entropy=float(sc["mean_entropy"][j]), top1=float(sc["top1"][j]),
                        margin=float(sc["margin"][j]), top_label=mv.labels[int(sc["top_index"][j])]))
        s.commit()


def _assert_pool_scores(pool, probs) -> None:
    """The pool's score columns are those of ``probs`` (float32 on disk)."""
    from store.uncertainty import score_rows

    sc = score_rows(probs)
    for col in ("max_entropy", "mean_entropy", "top1", "margin"):
        np.testing.assert_allclose(getattr(pool, col), sc[col], atol=1e-6, err_msg=col)
    assert pool.top_label.tolist() == [pool.model_version.labels[int(i)] for i in sc["top_index"]]


def _assert_pools_equal(a, b) -> None:
    for f in fields(a):
        if f.name in ("model_version", "_codes"):
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x is None or y is None:  # optional columns (range priors): absent on both sides or neither
            assert x is None and y is None, f.name
            continue
        assert x.dtype == y.dtype, f.name
        if x.dtype.kind == "f":  # scores are float32 on disk since 0.2, float64 in 0.1.0's SQL rows
            np.testing.assert_allclose(x, y, rtol=1e-6, err_msg=f.name)
        else:
            assert x.tolist() == y.tolist(), f.name


def test_bulk_clips_of_many_recordings_match_the_per_recording_path(store):
    mv = _model(store)
    recs = _recordings(store)
    rec, spans, probs, emb = _clips(recs, per=5)
    ids = store.add_clips(rec, spans, mv, probs, emb)
    assert ids.shape == (15,) and len(set(ids.tolist())) == 15
    info = store.clips(ids)
    assert [(c.recording_id, c.start_s, c.end_s) for c in info] == [
        (int(r), float(s), float(e)) for r, (s, e) in zip(rec, spans)]
    np.testing.assert_allclose(store.embeddings("bulk-space").take(ids), emb, rtol=1e-6)
    preds = store.predictions(ids[:1], mv.id)[int(ids[0])]
    assert preds[0][0] == LABELS[int(probs[0].argmax())] and len(preds) == store_module.TOP_K

    # a rerun with some new clips adds only those, and returns their ids in input order
    rec2, spans2, probs2, emb2 = _clips(recs, per=7, seed=1)
    new = store.add_clips(rec2, spans2, mv, probs2, emb2)
    assert len(new) == 6 and store.counts()["clips"] == 21
    fresh = spans2[:, 0] >= 15.0
    assert [(c.recording_id, c.start_s) for c in store.clips(new)] == [
        (int(r), float(s)) for r, s in zip(rec2[fresh], spans2[fresh, 0])]
    assert len(store.add_clips(rec2, spans2, mv, probs2, emb2)) == 0
    assert len(store.embeddings("bulk-space")) == 21


def test_bulk_clips_refuse_bad_input_naming_it_and_write_nothing(store):
    mv = _model(store)
    recs = _recordings(store, 1)
    rec, spans, probs, emb = _clips(recs, per=3)
    with pytest.raises(StoreError, match="no recording with id 999"):
        store.add_clips(np.array([recs[0], 999, recs[0]]), spans, mv, probs, emb)
    with pytest.raises(StoreError, match=r"start_s=3.0 of recording \d+ appears twice"):
        store.add_clips(rec, np.array([[0, 3], [3, 6], [3, 6]]), mv, probs, emb)
    with pytest.raises(StoreError, match="2 ids for 3 spans"):
        store.add_clips(rec[:2], spans, mv, probs, emb)
    with pytest.raises(StoreError, match="6 classes"):
        store.add_clips(rec, spans, mv, probs[:, :2], emb)
    assert store.counts()["clips"] == 0
    assert len(store.add_clips([], [], mv, np.zeros((0, len(LABELS))))) == 0


def test_pool_from_matrices_follows_clip_ids_not_recordings(store):
    mv = _model(store)
    recs = _recordings(store)
    rec, spans, probs, emb = _clips(recs, per=4)
    a = store.add_clips(rec[:6], spans[:6], mv, probs[:6], emb[:6])
    b = store.add_clip_batch(recs[2], [tuple(x) for x in spans[8:]], mv, probs[8:], emb[8:])
    c = store.add_clips(rec[6:8], spans[6:8], mv, probs[6:8], emb[6:8])  # ids no longer follow recordings
    pool = store.pool(mv)
    assert store.vectors.matrix_info(f"scores:{mv.name}").rows == 12
    assert pool.clip_id.tolist() == a.tolist() + b.tolist() + c.tolist()
    _assert_pool_scores(pool, np.concatenate([probs[:6], probs[8:], probs[6:8]]))
    assert pool.recording_id.tolist() == rec[:6].tolist() + [recs[2]] * 4 + rec[6:8].tolist()
    assert set(pool.site.tolist()) == {"Jura", "Alps", ""}  # unknown site reads ""
    assert pool.hour.tolist()[:2] == [4, 5]  # 04:59:57 + 0 s and + 3 s: the clip's own start


def test_no_sql_row_and_no_probability_row_per_clip_once_the_output_layer_is_kept(store):
    """Compact: scores and top predictions in matrices; BirdNET-like models' rows recomputed from embeddings."""
    mv = _model(store)
    rng = np.random.default_rng(5)
    weights, bias = rng.normal(size=(len(LABELS), DIM)).astype(np.float32), rng.normal(size=len(LABELS))
    store.set_output_layer(mv, weights, bias, "sigmoid")
    recs = _recordings(store)
    rec, spans, _, emb = _clips(recs, per=4)
    probs = 1 / (1 + np.exp(-(emb @ weights.T + bias)))
    ids = store.add_clips(rec, spans, mv, probs, emb)
    with store._session() as s:
        assert s.scalar(select(func.count()).select_from(Score)) == 0
        assert s.scalar(select(func.count()).select_from(Prediction)) == 0
    assert store.vectors.matrix_info(f"probabilities:{mv.name}") is None
    np.testing.assert_allclose(store.probabilities(mv).take(ids[::-1]), probs[::-1], atol=1e-5)
    preds = store.predictions(ids[:2], mv.id)
    assert preds[int(ids[0])][0] == (LABELS[int(probs[0].argmax())], pytest.approx(float(probs[0].max()), abs=1e-6))
    assert store.current_model_version().name == mv.name
    with pytest.raises(StoreError, match="already has another output layer"):
        store.set_output_layer(mv, weights, bias, "softmax")


def test_pool_after_rescoring_reads_the_new_scores_and_probabilities(store):
    mv = _model(store)
    recs = _recordings(store)
    rec, spans, probs, emb = _clips(recs, per=3)
    ids = store.add_clips(rec, spans, mv, probs, emb)
    head = store.ensure_model_version("head-1", "classifier", "bulk-space", 2, ["a", "b"])
    store.write_model_outputs(head, ids, np.tile([0.2, 0.6], (len(ids), 1)))
    replaced = np.tile([0.9, 0.05], (3, 1))
    store.write_model_outputs(head, ids[3:6], replaced)  # a rerun after a crash replaces some outputs
    pool = store.pool(head)
    assert pool.clip_id.tolist() == sorted(ids.tolist())
    assert pool.top_label.tolist() == ["b"] * 3 + ["a"] * 3 + ["b"] * 3
    view = store.probabilities(head)
    assert not view.monotonic and len(view) == 12
    np.testing.assert_allclose(view.take(ids[3:6]), replaced, atol=1e-3)  # the last row of a clip wins
    np.testing.assert_allclose(view.take(ids[:3]), np.tile([0.2, 0.6], (3, 1)), atol=1e-3)
    assert store.predictions(ids[3:4], head.id)[int(ids[3])][0][0] == "a"


def test_rescoring_more_clips_than_one_sql_in_list_holds(store, monkeypatch):
    monkeypatch.setattr(store_sql, "IN_CHUNK", 4)
    mv = _model(store)
    recs = _recordings(store)
    rec, spans, probs, emb = _clips(recs, per=5)
    ids = store.add_clips(rec, spans, mv, probs, emb)
    store.write_model_outputs(mv, ids, probs[::-1])
    store.write_model_outputs(mv, ids, probs)
    pool = store.pool(mv)
    assert len(pool) == 15 and pool.clip_id.tolist() == ids.tolist()
    _assert_pool_scores(pool, probs)


def test_a_store_of_release_0_1_0_is_read_from_sql_then_backfilled(store):
    """0.1.0 kept a Score row per clip; a store whose matrices lag them is read from SQL, then caught up."""
    mv = _model(store)
    recs = _recordings(store)
    rec, spans, probs, emb = _clips(recs, per=3)
    ids = store.add_clips(rec, spans, mv, probs, emb)
    _legacy_scores(store, mv, ids, probs)
    expected = store.pool(mv)
    with store._session() as s:  # as a store written before the clips and scores matrices existed
        s.execute(delete(Matrix).where(Matrix.name.in_([f"scores:{mv.name}", "clips"])))
        s.commit()
    assert store.records._pool_from_matrices(mv) is None
    _assert_pools_equal(store.pool(mv), expected)
    # the next write creates both matrices with every row stored before them, in the same transaction
    new = store.add_clips(rec[:2], [(99.0, 102.0), (102.0, 105.0)], mv, probs[:2], emb[:2])
    assert store.vectors.matrix_info("clips").rows == 11 and store.vectors.matrix_info(f"scores:{mv.name}").rows == 11
    pool = store.records._pool_from_matrices(mv)
    assert pool is not None and len(pool) == 11 and pool.clip_id[-2:].tolist() == new.tolist()
    _assert_pool_scores(pool, np.concatenate([probs, probs[:2]]))


def test_a_head_rescoring_a_store_older_than_the_clips_matrix_backfills_it(store):
    mv = _model(store)
    recs = _recordings(store)
    rec, spans, probs, emb = _clips(recs, per=2)
    ids = store.add_clips(rec, spans, mv, probs, emb)
    with store._session() as s:
        s.execute(delete(Matrix).where(Matrix.name == "clips"))
        s.commit()
    head = store.ensure_model_version("head-1", "classifier", "bulk-space", 2, ["a", "b"])
    store.write_model_outputs(head, ids, np.tile([0.3, 0.6], (len(ids), 1)))
    assert store.records._pool_from_matrices(head) is not None
    assert store.pool(head).top_label.tolist() == ["b"] * 6


def test_pool_codes_match_the_string_columns(store):
    mv = _model(store)
    recs = _recordings(store)
    rec, spans, probs, emb = _clips(recs, per=3)
    store.add_clips(rec, spans, mv, probs, emb)
    pool = store.pool(mv)
    for col in ("site", "device", "top_label"):
        codes, cats = pool.codes(col)
        assert codes.dtype == np.int32 and cats[codes].tolist() == getattr(pool, col).tolist()
    ids = pool.clip_id
    _legacy_scores(store, mv, ids, probs)
    codes, cats = store.records._pool_from_sql(mv).codes("top_label")  # computed for a pool without stored codes
    assert cats[codes].tolist() == pool.top_label.tolist()
    with pytest.raises(ValueError, match="not 'hour'"):
        pool.codes("hour")


def test_float16_embeddings_are_recorded_and_read_as_float32(store):
    half = Store(store.url, store.vectors_dir, embedding_dtype="float16")
    mv = _model(half)
    recs = _recordings(half)
    rec, spans, probs, emb = _clips(recs, per=3)
    ids = half.add_clips(rec, spans, mv, probs, emb)
    assert half.vectors.matrix_info("embeddings:bulk-space").dtype == "float16"
    assert (half.vectors_dir / "embeddings__bulk-space.float16").stat().st_size == 9 * DIM * 2
    got = half.embeddings("bulk-space").take(ids)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, emb, rtol=1e-3, atol=1e-3)
    # a store opened with the default keeps appending float16 to the existing matrix
    more = store.add_clips(rec[:1], [(60.0, 63.0)], mv, probs[:1], emb[:1])
    np.testing.assert_allclose(store.embeddings("bulk-space").take(more), emb[:1], rtol=1e-3, atol=1e-3)
    with pytest.raises(StoreError, match=r"clip \d+ has value 100000.0 at column 3, beyond float16"):
        bad = emb[1:2].copy()
        bad[0, 3] = 1e5
        half.add_clips(rec[:1], [(90.0, 93.0)], mv, probs[:1], bad)
    assert len(half.embeddings("bulk-space")) == 10
    half.close()


def test_embedding_dtype_is_validated():
    with pytest.raises(ValueError, match="embedding_dtype must be one of .* got 'int8'"):
        Store("sqlite://", "/nonexistent", embedding_dtype="int8")


def test_matrix_views_are_reused_until_rows_are_committed(store):
    mv = _model(store)
    recs = _recordings(store)
    rec, spans, probs, emb = _clips(recs, per=2)
    store.add_clips(rec[:3], spans[:3], mv, probs[:3], emb[:3])
    view = store.embeddings("bulk-space")
    assert store.embeddings("bulk-space") is view and view.monotonic
    store.add_clips(rec[3:], spans[3:], mv, probs[3:], emb[3:])
    assert store.embeddings("bulk-space") is not view and len(store.embeddings("bulk-space")) == 6
    assert len(view) == 3  # an old view still shows what was committed when it was taken


def test_matrix_view_finds_rows_of_unsorted_and_repeated_ids():
    ids = np.array([7, 3, 9, 3, 1], dtype=np.int64)
    data = np.arange(10, dtype=np.float32).reshape(5, 2)
    view = MatrixView("m", ids, data)
    assert not view.monotonic
    assert view.rows_for([9, 3, 1, 7]).tolist() == [2, 3, 4, 0]  # clip 3: its last row
    assert view.unique_rows().tolist() == [4, 3, 0, 2]  # by clip id
    np.testing.assert_array_equal(view.take([3, 7]), data[[3, 0]])
    with pytest.raises(KeyError, match="clip 5 has no row in matrix 'm'"):
        view.rows_for([1, 5])
    with pytest.raises(KeyError, match="clip 0 has no row"):
        view.rows_for([0])
    mono = MatrixView("n", np.array([2, 5, 8], dtype=np.int64), data[:3])
    assert mono.monotonic and mono.rows_for([8, 2]).tolist() == [2, 0]
    assert mono.take([]).shape == (0, 2)
    with pytest.raises(KeyError, match="clip 9 has no row"):
        mono.rows_for([9])
    empty = MatrixView("e", np.zeros(0, np.int64), np.zeros((0, 2), np.float32))
    assert empty.rows_for([]).tolist() == []
    with pytest.raises(KeyError, match="clip 1 has no row in matrix 'e'"):
        empty.take([1])


def test_excluded_ids_as_a_sorted_array(store):
    mv = _model(store)
    recs = _recordings(store)
    rec, spans, probs, emb = _clips(recs, per=3)
    ids = [int(i) for i in store.add_clips(rec, spans, mv, probs, emb)]
    assert store.excluded_clip_ids_array().dtype == np.int64 and store.excluded_clip_ids_array().size == 0
    store.add_sampling_run(SamplingRun(strategy="t", budget=2, seed=0),
                           [Selection(clip_id=ids[5], rank=1, score=0.5, reason="test"),
                            Selection(clip_id=ids[1], rank=2, score=0.4, reason="test")])
    store.add_tasks([Task(project_id=1, clip_id=ids[5], ls_task_id=10)])
    store.upsert_annotation(Annotation(clip_id=ids[0], project_id=1, ls_task_id=11, ls_annotation_id=5,
                                       labels=["x"]))
    arr = store.excluded_clip_ids_array()
    assert arr.tolist() == sorted({ids[0], ids[1], ids[5]})
    assert store.excluded_clip_ids() == set(arr.tolist())


def test_many_recordings_in_one_transaction(store):
    recs = store.add_recordings([Recording(path=f"/d/{i}.wav", content_hash=f"many-{i}", site="S") for i in range(5)])
    assert [r.id for r in recs] == sorted(r.id for r in recs) and len({r.id for r in recs}) == 5
    assert [r.path for r in store.recordings()] == [f"/d/{i}.wav" for i in range(5)]
    with pytest.raises(StoreError, match="'many-2' is already stored"):
        store.add_recordings([Recording(path="/d/x.wav", content_hash="new-x"),
                              Recording(path="/d/2.wav", content_hash="many-2")])
    with pytest.raises(StoreError, match="'dup' appears twice in one batch for /a"):
        store.add_recordings([Recording(path="/a", content_hash="dup"), Recording(path="/a", content_hash="dup")])
    assert len(store.recordings()) == 5
    # the same bytes at another path (another site or time) are a recording of their own
    twins = store.add_recordings([Recording(path="/a", content_hash="dup"), Recording(path="/b", content_hash="dup")])
    assert [r.path for r in store.find_recordings("dup")] == ["/a", "/b"] and twins[0].id != twins[1].id


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_sparse_takes_read_the_same_rows_as_the_memory_map(tmp_path, dtype):
    from store import matrices

    rng = np.random.default_rng(0)
    ids = np.arange(100, 164, dtype=np.int64) * 3
    rows = rng.standard_normal((64, 5)).astype(np.float32)
    n = matrices.write_rows(tmp_path, "m", dtype, 5, 0, ids, rows)
    view = matrices.read_view(tmp_path, "m", dtype, 5, n)
    want = ids[[40, 3, 4, 5, 63, 0]]  # 6 of 64 rows: positioned reads, with a run of adjacent rows
    expected = np.asarray(view.data, dtype=np.float32)[[40, 3, 4, 5, 63, 0]]
    np.testing.assert_array_equal(view.take(want), expected)
    np.testing.assert_array_equal(view.take(ids[::-1]), np.asarray(view.data, dtype=np.float32)[::-1])  # dense
    np.testing.assert_array_equal(view.take(want, dtype=np.float64), expected.astype(np.float64))


def test_rows_by_position_and_membership(tmp_path):
    from store import matrices

    ids = np.array([5, 9, 2], dtype=np.int64)
    data = np.arange(6, dtype=np.float32).reshape(3, 2)
    n = matrices.write_rows(tmp_path, "p", "float32", 2, 0, ids, data)
    view = matrices.read_view(tmp_path, "p", "float32", 2, n)
    assert view.contains([9, 4, 2, 100]).tolist() == [True, False, True, False]
    np.testing.assert_array_equal(view.take_rows(view.rows_for([2, 5])), data[[2, 0]])
    with pytest.raises(IndexError, match="row 3 is outside matrix 'p' of 3 rows"):
        view.take_rows([0, 3])
    assert MatrixView("e", np.zeros(0, np.int64), np.zeros((0, 2))).contains([1]).tolist() == [False]
