"""One home for output types and probability maths: every package reads logits and rows the same way."""

from __future__ import annotations

import re

import numpy as np

from store.probability import OutputType, activate, binary_entropy, sigmoid, top_two
from store.vectors import OutputLayer
from tests.conftest import REPO

LIBRARY = ("store", "embeddings", "sampler", "annotation", "finetune", "lab")


def test_one_sigmoid_one_softmax_one_entropy_in_library_code():
    found = []
    for package in LIBRARY:
        for path in sorted((REPO / package).rglob("*.py")):
            for m in re.finditer(r"^\s*def (_?(?:sigmoid|softmax|expit)|\w*entropy)\(", path.read_text(), re.M):
                found.append(f"{path.relative_to(REPO)}:{m.group(1)}")
    assert sorted(found) == ["store/probability.py:binary_entropy", "store/probability.py:categorical_entropy",
                             "store/probability.py:sigmoid", "store/probability.py:softmax"]


def test_stored_and_recomputed_probabilities_agree_at_the_clip():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(50, 8)).astype(np.float32), (rng.normal(size=(4, 8)) * 10).astype(np.float32), \
        np.zeros(4, np.float32)
    logits = x @ w.T + b
    stored = sigmoid(logits)  # what BirdNET's ingest writes (logits clipped at +-15, as BirdNET-Analyzer)
    recomputed = OutputLayer(w, b, "sigmoid").probabilities(x)
    np.testing.assert_array_equal(stored, recomputed)
    assert stored.min() >= sigmoid(np.float32(-15.0)) and (logits < -15).any()
    np.testing.assert_allclose(activate(OutputType.SOFTMAX, logits).sum(axis=1), 1.0, rtol=1e-6)


def test_entropy_and_margin_of_rows():
    p = np.array([[0.5, 0.0, 1.0], [0.9, 0.8, 0.1]], dtype=np.float32)
    np.testing.assert_allclose(binary_entropy(p)[0], [1.0, 0.0, 0.0], atol=1e-9)
    top1, margin = top_two(p)
    np.testing.assert_allclose(top1, [1.0, 0.9], rtol=1e-6)
    np.testing.assert_allclose(margin, [0.5, 0.1], rtol=1e-5)
    assert OutputType("softmax") == "softmax" and str(OutputType.SIGMOID) == "sigmoid"


def test_states_are_enums_whose_values_are_the_stored_strings(store):
    from store import LockName, Modality, ModelKind, RecordingStatus

    assert [s.value for s in RecordingStatus] == ["pending", "done", "failed", "replaced"]
    assert [m.value for m in Modality] == ["audio", "image"] and [k.value for k in ModelKind] == ["embedding",
                                                                                                    "classifier"]
    assert {n.value for n in LockName} == {"schema", "ingest", "selection", "finetune", "scoring", "annotation"}
    mv = store.ensure_model_version("m", ModelKind.EMBEDDING, "m", 4, ["a"])
    assert type(store.model_version("m").kind) is str and mv.kind == "embedding" == ModelKind.EMBEDDING
    with store.lock(LockName.INGEST), store.lock("selection"):  # a plain name is the same lock
        pass
