"""Contract of the Vectors role (``store.roles.Vectors``): matrices keyed by clip id, output layers, the append.

Run on every implementation (the ``MatrixVectors`` part and ``Store`` delegating to it), every backend
(SQLite and a real PostgreSQL, ``db_url`` in conftest.py) and both embedding dtypes. Clips are written
through the records, as in use; what they leave in the matrices is read through the role under test.
"""

from __future__ import annotations

import numpy as np
import pytest

import store.store as store_module
from store import Recording, Store, StoreError, roles
from store.vectors import EMBEDDING_DTYPES, ComputedProbabilities, MatrixVectors, OutputLayer
from tests.store.conformance import assert_conforms
from tests.store.data import LABELS, window_batch

ITEMSIZE = {"float32": 4, "float16": 2}


@pytest.fixture(params=EMBEDDING_DTYPES)
def store(request, db_url, workspace):
    """A store on each backend keeping embeddings in each dtype."""
    st = Store(db_url, workspace.root / "vectors", embedding_dtype=request.param)
    yield st
    st.close()


@pytest.fixture(params=["MatrixVectors", "Store"])
def vectors(request, store):
    """The role under test: the store's vectors part, or the store itself."""
    return store.vectors if request.param == "MatrixVectors" else store


def _close(store: Store) -> dict:
    """Tolerance of embeddings read back: exact in float32, about 3 significant digits in float16."""
    return dict(rtol=1e-6) if store.embedding_dtype == "float32" else dict(rtol=1e-3, atol=1e-3)


def _model(store: Store, dim: int = 4, name: str = "test-model", space: str = "test-space"):
    return store.ensure_model_version(name, "embedding", space, dim, LABELS)


def _recording(store: Store, name: str = "a.wav") -> Recording:
    return store.add_recording(Recording(path=f"/data/{name}", content_hash=f"hash-{name}"))


def test_implementations_conform_to_the_role(store):
    assert isinstance(store.vectors, MatrixVectors)
    assert_conforms(store.vectors, roles.Vectors)
    assert_conforms(store, roles.Vectors)
    assert not isinstance(store.records, roles.Vectors)  # the check tells roles apart


def test_embeddings_are_kept_in_the_stores_dtype_and_read_as_float32(vectors, store):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = window_batch(5)
    ids = store.add_clip_batch(rec.id, spans, mv, probs, emb)
    assert vectors.embedding_dtype == store.embedding_dtype
    info = store.vectors.matrix_info("embeddings:test-space")
    assert (info.dtype, info.dim, info.rows) == (store.embedding_dtype, 4, 5)
    data_file = store.vectors_dir / f"embeddings__test-space.{store.embedding_dtype}"
    assert data_file.stat().st_size == 5 * 4 * ITEMSIZE[store.embedding_dtype]
    view = vectors.embeddings("test-space")
    assert view is store.vectors.matrix("embeddings:test-space")  # one view until rows are committed
    assert len(view) == 5 and view.ids.tolist() == ids.tolist()
    got = view.take(ids[[3, 0, 4]])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, emb[[3, 0, 4]], **_close(store))
    assert view.contains([int(ids[2]), 10_000]).tolist() == [True, False]


def test_a_matrix_file_cut_short_or_gone_is_named_with_what_to_do(store, db_url):
    mv = _model(store)
    store.add_clip_batch(_recording(store).id, *window_batch(5)[:1], mv, *window_batch(5)[1:])
    data_file = store.vectors_dir / f"embeddings__test-space.{store.embedding_dtype}"
    need = 5 * 4 * ITEMSIZE[store.embedding_dtype]
    with open(data_file, "r+b") as fh:  # a copy that stopped half-way
        fh.truncate(need // 2)
    again = Store(db_url, store.vectors_dir, embedding_dtype=store.embedding_dtype)
    try:
        with pytest.raises(StoreError, match=rf"matrix 'embeddings:test-space': {data_file} holds {need // 2} bytes but "
                                             rf"the database says 5 rows \({need} bytes\) are stored: the file was cut "
                                             r"short .*restore the workspace's vectors folder"):
            again.embeddings("test-space")
        data_file.unlink()
        with pytest.raises(FileNotFoundError, match=rf"{data_file} is missing but the database says 5 rows"):
            again.embeddings("test-space")
    finally:
        again.close()


def test_unknown_matrices_and_clips_are_named(vectors, store):
    with pytest.raises(StoreError, match="no matrix 'nope' in this store"):
        store.vectors.matrix("nope")
    assert store.vectors.matrix_info("nope") is None
    with pytest.raises(StoreError, match="no matrix 'embeddings:test-space'"):
        vectors.embeddings("test-space")
    mv = _model(store)
    with pytest.raises(StoreError, match="no matrix 'probabilities:test-model'"):
        vectors.probabilities(mv)  # nothing stored and no output layer to recompute from
    rec = _recording(store)
    spans, probs, emb = window_batch(2)
    store.add_clip_batch(rec.id, spans, mv, probs, emb)
    with pytest.raises(KeyError, match="clip 99"):
        vectors.embeddings("test-space").take([1, 99])


def test_vectors_written_by_a_crashed_transaction_stay_invisible(vectors, store, monkeypatch):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = window_batch(4)
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
    data_file = store.vectors_dir / f"embeddings__test-space.{store.embedding_dtype}"
    assert data_file.stat().st_size == 4 * 4 * ITEMSIZE[store.embedding_dtype]  # four rows on disk, two committed
    monkeypatch.undo()
    assert len(vectors.embeddings("test-space")) == 2
    assert store.vectors.matrix_info("clips").rows == 2  # the clips' own matrix did not advance either
    assert store.counts()["clips"] == 2
    ids = store.add_clip_batch(rec.id, spans[2:], mv, probs[2:], emb[2:])
    view = vectors.embeddings("test-space")
    assert len(view) == 4
    np.testing.assert_allclose(view.take(ids), emb[2:], **_close(store))  # the crashed rows were overwritten


def test_an_append_is_visible_only_when_the_writers_transaction_commits(vectors, store):
    ids, rows, dtype = np.array([5, 7, 9]), np.arange(6, dtype=np.float32).reshape(3, 2), store.embedding_dtype
    mv = _model(store)
    with store._session(write=True) as s:
        store.vectors.append_matrix(s, "test:m", dtype, mv, ids, rows)
        assert store.vectors.matrix_info("test:m") is None  # another session does not see it yet
        s.rollback()
    assert store.vectors.matrix_info("test:m") is None
    with store._session(write=True) as s:
        store.vectors.append_matrix(s, "test:m", dtype, mv, ids[:2], rows[:2] + 10)
        s.commit()
    assert store.vectors.matrix_info("test:m").model_version_id == mv.id  # the model whose rows it holds
    with store._session(write=True) as s:  # written, then abandoned
        store.vectors.append_matrix(s, "test:m", dtype, None, ids[2:], rows[2:] + 20)
    assert (store.vectors_dir / f"test__m.{dtype}").stat().st_size == 3 * 2 * ITEMSIZE[dtype]  # on disk: 3 rows
    assert store.vectors.matrix_info("test:m").rows == 2
    view = store.vectors.matrix("test:m")
    assert view.ids.tolist() == [5, 7]
    np.testing.assert_array_equal(view.take([7, 5]), rows[[1, 0]] + 10)
    with store._session(write=True) as s:
        store.vectors.append_matrix(s, "test:m", dtype, None, ids[2:], rows[2:] + 30)
        s.commit()
    np.testing.assert_array_equal(store.vectors.matrix("test:m").take([9]), rows[2:] + 30)  # the abandoned row is gone


def test_a_matrix_of_another_dim_under_the_same_name_is_refused(vectors, store):
    mv = _model(store, dim=4)
    rec = _recording(store)
    spans, probs, emb = window_batch(3)
    store.add_clip_batch(rec.id, spans[:2], mv, probs[:2], emb[:2])
    wide = _model(store, dim=8, name="wide-model")  # another model claiming the same embedding space
    with pytest.raises(StoreError, match="matrix 'embeddings:test-space' holds 4-d rows; refusing 8-d rows"):
        store.add_clip_batch(rec.id, spans[2:], wide, probs[2:], np.ones((1, 8)))
    assert store.counts()["clips"] == 2  # the whole batch was refused
    assert len(vectors.embeddings("test-space")) == 2 and store.vectors.matrix_info("clips").rows == 2
    with store._session(write=True) as s:
        with pytest.raises(StoreError, match="holds 4-d rows; refusing 2-d rows"):
            store.vectors.append_matrix(s, "embeddings:test-space", store.embedding_dtype, None, np.array([1]),
                                  np.zeros((1, 2)))
    assert store.vectors.matrix_info("embeddings:test-space").dim == 4


def test_values_beyond_float16_are_refused_by_a_float16_matrix_only(vectors, store):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = window_batch(3)
    store.add_clip_batch(rec.id, spans[:2], mv, probs[:2], emb[:2])
    big = emb[2:].copy()
    big[0, 3] = 1e5
    if store.embedding_dtype == "float16":
        with pytest.raises(StoreError, match=r"matrix 'embeddings:test-space' keeps float16 rows, but clip \d+ has "
                                             r"value 100000.0 at column 3, beyond float16's range .*"
                                             r"embedding_dtype='float32'"):
            store.add_clip_batch(rec.id, spans[2:], mv, probs[2:], big)
        assert store.counts()["clips"] == 2 and len(vectors.embeddings("test-space")) == 2  # nothing stored
        assert store.ingested_until(rec.id) == 6.0
    else:
        ids = store.add_clip_batch(rec.id, spans[2:], mv, probs[2:], big)
        assert vectors.embeddings("test-space").take(ids)[0, 3] == 1e5


def test_probabilities_are_stored_when_no_output_layer_is_kept(vectors, store):
    mv = _model(store)
    rec = _recording(store)
    spans, probs, emb = window_batch(4)
    ids = store.add_clip_batch(rec.id, spans, mv, probs, emb)
    assert vectors.output_layer(mv) is None
    assert store.vectors.matrix_info("probabilities:test-model").dtype == "float16"  # whatever the embeddings keep
    stored = vectors.probabilities(mv)
    assert not isinstance(stored, ComputedProbabilities)
    np.testing.assert_allclose(stored.take(ids[::-1]), probs[::-1], atol=1e-3)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_probabilities_are_recomputed_from_embeddings_with_the_output_layer(vectors, store, activation):
    mv = _model(store)
    rng = np.random.default_rng(3)
    weights, bias = rng.normal(size=(len(LABELS), 4)).astype(np.float32), rng.normal(size=len(LABELS))
    vectors.set_output_layer(mv, weights, bias, activation)
    rec = _recording(store)
    spans, _, emb = window_batch(5)
    layer = OutputLayer(weights, bias.astype(np.float32), activation)
    ids = store.add_clip_batch(rec.id, spans, mv, layer.probabilities(emb), emb)
    assert store.vectors.matrix_info("probabilities:test-model") is None  # no row per clip kept
    computed = vectors.probabilities(mv)
    assert isinstance(computed, ComputedProbabilities)
    assert len(computed) == 5 and computed.ids.tolist() == ids.tolist()
    assert computed.contains([int(ids[1]), 10_000]).tolist() == [True, False]
    stored_emb = vectors.embeddings("test-space").take(ids[::-1])  # as kept (float16: rounded)
    np.testing.assert_allclose(computed.take(ids[::-1]), layer.probabilities(stored_emb), atol=1e-6)
    np.testing.assert_allclose(computed.take(ids), layer.probabilities(emb),
                               atol=1e-5 if store.embedding_dtype == "float32" else 2e-3)
    if activation == "softmax":
        np.testing.assert_allclose(computed.take(ids).sum(axis=1), 1.0, atol=1e-5)
    # the layer file deleted: the store says which file its scored model misses, not "no matrix"
    layer_file = store.vectors_dir / "layer__test-model.npz"
    layer_file.unlink()
    store.vectors._layers.clear()  # a new process would find it gone
    with pytest.raises(FileNotFoundError, match=rf"its output layer {layer_file} is missing, but the store holds "
                                                r"its scores of 5 clips"):
        vectors.probabilities(mv)


def test_an_output_layer_is_kept_once_and_checked(vectors, store):
    mv = _model(store)
    weights, bias = np.ones((len(LABELS), 4), np.float32), np.zeros(len(LABELS))
    with pytest.raises(StoreError, match="activation must be 'sigmoid' or 'softmax', got 'tanh'"):
        vectors.set_output_layer(mv, weights, bias, "tanh")
    with pytest.raises(StoreError, match=r"needs weights of shape \(8, dim\) and a bias of 8; got \(3, 4\) and \(8,\)"):
        vectors.set_output_layer(mv, weights[:3], bias, "sigmoid")
    with pytest.raises(StoreError, match=r"got \(8, 5\) and \(8,\)"):  # an embedding model's layer takes its dim
        vectors.set_output_layer(mv, np.ones((len(LABELS), 5)), bias, "sigmoid")
    assert vectors.output_layer(mv) is None
    vectors.set_output_layer(mv, weights, bias, "sigmoid")
    vectors.set_output_layer(mv, weights, bias, "sigmoid")  # the same layer again: nothing to do
    with pytest.raises(StoreError, match="already has another output layer"):
        vectors.set_output_layer(mv, weights, bias, "softmax")
    layer = vectors.output_layer(mv)
    assert layer.activation == "sigmoid" and layer.weights.dtype == np.float32
    np.testing.assert_array_equal(layer.weights, weights)
    reopened = Store(store.url, store.vectors_dir)
    try:  # kept on disk beside the matrices
        np.testing.assert_array_equal(reopened.output_layer(mv).bias, np.zeros(len(LABELS), np.float32))
    finally:
        reopened.close()
