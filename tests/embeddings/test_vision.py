"""Vision models: the shared MobileNets on real images, preprocessing, decoding, ONNX, pinned downloads."""

from __future__ import annotations

import csv
import functools
import http.server
import inspect
import shutil
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from PIL import Image

from embeddings import vision
from embeddings.vision import (CORAL_COMMIT, CORAL_REPO, CROPS, DEFAULT_MODEL, INPUT_DTYPES, LAYOUTS,
                               OUTPUT_TYPES, REGISTRY, SCORES, ModelDownloadError, VisionModel,
                               VisionModelSpec, default_model, embed_images, fetch_model, model_from_file,
                               registered_model, with_spec)
from embeddings.image_files import read_image
from store.sources import file_sha256
from tests.conftest import shared_path

pytestmark = pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors.*")

ODONATE_GENERA = {"Micrathyria", "Dythemis", "Pachydiplax", "Orthetrum", "Arigomphus", "Libellula", "Sympetrum",
                  "Plathemis", "Erythemis", "Anax", "Pantala", "Celithemis", "Erythrodiplax", "Perithemis"}


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def models_dir() -> Path:
    return shared_path("models", "vision")


@functools.lru_cache(maxsize=None)
def _loaded(name: str, folder: str) -> VisionModel:
    return registered_model(name, folder).load()


@pytest.fixture(scope="module")
def default(models_dir) -> VisionModel:
    return _loaded(DEFAULT_MODEL, str(models_dir))


@pytest.fixture(scope="module")
def tiny(models_dir) -> VisionModel:
    return _loaded("mobilenet-v1-0.25-128-imagenet", str(models_dir))


def _labelled(collection: str, skip_labels=()) -> tuple[list[Path], np.ndarray]:
    root = shared_path("images", collection)
    rows = [r for r in csv.DictReader(open(root / "labels.csv", newline="")) if r["label"] not in skip_labels]
    data = root.parents[1]
    return [data / r["path"] for r in rows], np.array([r["label"] for r in rows])


def _loo_1nn(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy, cosine similarity."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean(labels[sim.argmax(1)] == labels))


def _write(path: Path, image: Image.Image, **kw) -> Path:
    image.save(path, **kw)
    return path


# ---------------------------------------------------------------------------------------------- the spec
def test_documented_options_are_the_accepted_ones():
    spec_doc = inspect.getdoc(VisionModelSpec)
    for options, literal in ((CROPS, vision.Crop), (INPUT_DTYPES, vision.InputDtype), (OUTPUT_TYPES, vision.OutputType),
                             (SCORES, vision.Scores), (LAYOUTS, vision.Layout)):
        assert options == get_args(literal)
        for option in options:
            assert f'"{option}"' in spec_doc, option
    base = dict(name="m", model_path="m.tflite", labels=("a", "b"), input_size=(8, 8))
    for option in CROPS:
        assert VisionModelSpec(**base, crop=option).crop == option
    for field_name, bad in (("crop", "centre"), ("input_dtype", "float16"), ("output_type", "multiclass"),
                            ("scores", "probs"), ("layout", "HWC")):
        with pytest.raises(ValueError, match=f"{field_name} must be one of"):
            VisionModelSpec(**base, **{field_name: bad})


@pytest.mark.parametrize("changes, message", [
    (dict(input_size=(224,)), "input_size must be"),
    (dict(input_size=(0, 224)), "input_size must be two positive"),
    (dict(model_path="m.pt"), "model_path m.pt must end in .tflite or .onnx"),
    (dict(labels=None), "labels are required for output_type='softmax'"),
    (dict(output_type="none"), "an embedding-only model"),
    (dict(input_range=(1.0, -1.0)), "input_range must be"),
    (dict(mean=(0.5, 0.5, 0.5)), "give both mean and std"),
    (dict(mean=(0.5, 0.5), std=(0.2, 0.2)), "mean and std must be 3 values"),
    (dict(name=" "), "name must be a non-empty string"),
    (dict(sha256="abc"), "sha256 must be 64"),
])
def test_spec_errors_name_the_field(changes, message):
    base = dict(name="m", model_path="m.tflite", labels=("a", "b"), input_size=(8, 8))
    with pytest.raises(ValueError, match=message):
        VisionModelSpec(**{**base, **changes})


# ---------------------------------------------------------------------------------------------- the registry
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registered_models_match_their_files(name, models_dir):
    """Every registered model loads from the shared files with the facts the registry states."""
    entry = REGISTRY[name]
    assert file_sha256(models_dir / entry.model.path) == entry.model.sha256
    if entry.labels is not None:
        assert file_sha256(models_dir / entry.labels.path) == entry.labels.sha256
    model = _loaded(name, str(models_dir))
    assert model.dim == entry.spec_fields["embedding_dim"]
    image = Image.open(shared_path("images", "coral_test", "parrot.jpg"))
    x = model.preprocess(image)
    assert x.shape == (*model.input_size, 3) and x.dtype == np.uint8
    probs, embs = model.infer_batch([x, x])
    assert embs.shape == (2, model.dim) and embs.dtype == np.float32 and np.isfinite(embs).all()
    assert np.array_equal(embs[0], embs[1])
    if model.output_type == "none":
        assert model.labels == [] and probs.shape == (2, 0)
    else:
        assert probs.shape == (2, model.n_classes) and probs.dtype == np.float32
        assert model.output_type == "softmax"
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
        assert (probs >= 0).all()


def test_registered_model_names_a_damaged_file(tmp_path, models_dir):
    entry = REGISTRY[DEFAULT_MODEL]
    data = bytearray((models_dir / entry.model.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / entry.model.path).write_bytes(bytes(data))
    shutil.copy(models_dir / entry.labels.path, tmp_path / entry.labels.path)
    with pytest.raises(ValueError, match=rf"{entry.model.path} has sha256 .* not the pinned"):
        registered_model(DEFAULT_MODEL, tmp_path).load()
    with pytest.raises(FileNotFoundError, match="mobilenet_v2_1.0_224_inat_bird_quant.tflite is missing"):
        registered_model("mobilenet-v2-inat-birds", tmp_path).load()
    with pytest.raises(ValueError, match="unknown vision model 'resnet'"):
        registered_model("resnet", tmp_path)


@pytest.mark.parametrize("name, expected", [
    ("mobilenet-v2-imagenet", {"bird.bmp": "chickadee", "dragonfly.bmp": "dragonfly", "owl.jpg": "owl",
                               "parrot.jpg": "macaw"}),
    ("mobilenet-v2-inat-birds", {"bird.bmp": "chickadee", "owl.jpg": "owl", "parrot.jpg": "macaw"}),
    ("mobilenet-v2-inat-insects", {"dragonfly.bmp": ODONATE_GENERA}),
])
def test_coral_images_get_their_class_in_the_top5(name, expected, models_dir):
    """images/coral_test/labels.csv: chickadee, dragonfly, owl, macaw; iNat insects name dragonfly species."""
    model = _loaded(name, str(models_dir))
    for file, want in expected.items():
        probs, _ = model.infer_image(Image.open(shared_path("images", "coral_test", file)))
        top5 = [model.labels[i] for i in np.argsort(-probs)[:5]]
        if isinstance(want, set):
            assert top5[0].split()[0] in want, (file, top5)
        else:
            assert any(want in label.lower() for label in top5), (file, top5)


def test_embedding_is_the_pooled_tensor_computed_by_the_reference_kernels(default):
    """The preserved tensor is real: XNNPACK's (used) and the reference kernels' pooled tensor agree."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    x = default.preprocess(Image.open(shared_path("images", "coral_test", "owl.jpg")))
    _, ours = default.infer_batch([x])
    interp = Interpreter(model_path=str(default.spec.model_path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x[np.newaxis])
    interp.invoke()
    pool = next(d for d in interp.get_tensor_details() if d["name"] == "MobilenetV2/Logits/AvgPool")
    scale, zero = pool["quantization"]
    reference = (interp.get_tensor(pool["index"]).reshape(-1).astype(np.float32) - zero) * scale
    assert reference.shape == ours[0].shape == (1280,)
    cos = float(reference @ ours[0] / (np.linalg.norm(reference) * np.linalg.norm(ours[0])))
    assert cos > 0.995, cos


# ---------------------------------------------------------------------------------------------- embeddings
@pytest.mark.parametrize("collection, skip, threshold", [
    # Measured with the default model (crop="pad", fast path): camtrapR 0.761 (5 species, 67 images of 100 x 75
    # px; majority class 0.39), hymenoptera 0.950 (ants vs bees, 80 photos; chance 0.5).
    ("camtrapR_borneo", ("UNID",), 0.68),
    ("hymenoptera_val", (), 0.88),
])
def test_embeddings_separate_species(collection, skip, threshold, default):
    paths, labels = _labelled(collection, skip)
    results = list(embed_images(paths, default))
    assert all(r.ok for r in results) and [r.path for r in results] == paths
    accuracy = _loo_1nn(np.stack([r.embedding for r in results]), labels)
    majority = max(np.mean(labels == v) for v in set(labels))
    assert accuracy >= threshold, f"{collection}: leave-one-out 1-NN accuracy {accuracy:.3f} (majority {majority:.3f})"


def test_two_threads_give_the_results_of_one(default):
    paths, _ = _labelled("hymenoptera_val")
    inputs = [default.preprocess(read_image(p)) for p in paths[:24]]
    probs1, embs1 = default.infer_batch(inputs)
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(default.infer_batch, [inputs[:12], inputs[12:]]))
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), probs1)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), embs1)
    one = [(r.probabilities, r.embedding) for r in embed_images(paths[:24], default, workers=1)]
    two = [(r.probabilities, r.embedding) for r in embed_images(paths[:24], default, workers=2)]
    for (p1, e1), (p2, e2) in zip(one, two, strict=True):
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(e1, e2)


def test_bad_inputs_are_named(default, tmp_path):
    with pytest.raises(ValueError, match=r"wants arrays of shape \(224, 224, 3\).*input 1 has shape \(128, 128, 3\)"):
        default.infer_batch([np.zeros((224, 224, 3), np.uint8), np.zeros((128, 128, 3), np.uint8)])
    with pytest.raises(ValueError, match=r"wants uint8 arrays; input 0 is float32: use model.preprocess"):
        default.infer_batch([np.zeros((224, 224, 3), np.float32)])
    with pytest.raises(TypeError, match="preprocess wants a PIL.Image.Image, got ndarray"):
        default.preprocess(np.zeros((10, 10, 3), np.uint8))
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"this is not a model" * 100)
    with pytest.raises(ValueError, match=rf"{fake} is not a TFLite model"):
        model_from_file(fake, labels_path=default.spec.labels)
    with pytest.raises(ValueError, match=rf"{fake} is not a TFLite model"):
        VisionModel(with_spec(default, model_path=fake, sha256=None).spec).load()
    birds = shared_path("models", "vision", "inat_bird_labels.txt")
    with pytest.raises(ValueError, match=r"inat_bird_labels.txt lists 965 labels but .* gives 1001 scores"):
        with_spec(default, labels=birds, name="mismatch").load()
    with pytest.raises(ValueError, match="embedding tensor .* has 1280 values; spec .* says embedding_dim=1024"):
        with_spec(default, embedding_dim=1024, name="wrong-dim").load()
    with pytest.raises(ValueError, match="has no tensor named 'pool5'"):
        with_spec(default, embedding="pool5", name="wrong-tensor").load()


def test_an_onnx_file_that_is_not_a_model_is_named(default, tmp_path):
    pytest.importorskip("onnxruntime", reason="running .onnx models needs onnxruntime")
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(ValueError, match=rf"{fake} is not an ONNX model"):
        model_from_file(fake, labels_path=default.spec.labels)
    spec = VisionModelSpec(name="fake", model_path=fake, labels=("a",), input_size=(8, 8), input_dtype="float32")
    with pytest.raises(ValueError, match=rf"{fake} is not an ONNX model"):
        VisionModel(spec).load()


# ---------------------------------------------------------------------------------------------- preprocessing
def _thirds(width: int, height: int) -> Image.Image:
    """Red left third, green middle, blue right third."""
    a = np.zeros((height, width, 3), np.uint8)
    a[:, : width // 3, 0] = 255
    a[:, width // 3: 2 * width // 3, 1] = 255
    a[:, 2 * width // 3:, 2] = 255
    return Image.fromarray(a)


def test_crop_policies(tiny):
    wide = _thirds(600, 100)
    center = with_spec(tiny, crop="center", name="c").preprocess(wide)
    assert center.shape == (128, 128, 3)
    assert (center[:, 8:-8, 1] > 250).all() and (center[:, 8:-8, [0, 2]] < 5).all()  # the middle only
    squash = with_spec(tiny, crop="resize", name="r").preprocess(wide)
    assert squash[64, 5, 0] > 250 and squash[64, 64, 1] > 250 and squash[64, -5, 2] > 250
    pad = with_spec(tiny, crop="pad", name="p").preprocess(wide)
    assert (pad[:50] == 128).all() and (pad[-50:] == 128).all()  # letterbox bars: 600x100 -> 128x21
    assert pad[64, 5, 0] > 250 and pad[64, -5, 2] > 250
    tall = with_spec(tiny, crop="pad", name="p").preprocess(_thirds(100, 600))
    assert (tall[:, :50] == 128).all() and (tall[:, -50:] == 128).all()
    grey = tiny.preprocess(Image.new("L", (300, 200), 77))
    assert grey.shape == (128, 128, 3) and (grey == 77).all()


def test_float_scaling_and_layout(tiny):
    image = Image.new("RGB", (50, 50), (0, 128, 255))
    spec = dict(name="f", input_dtype="float32")
    x = with_spec(tiny, **spec).preprocess(image)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], [-1.0, 128 / 127.5 - 1, 1.0], atol=1e-6)
    x = with_spec(tiny, **spec, input_range=(0.0, 1.0)).preprocess(image)
    np.testing.assert_allclose(x[0, 0], [0.0, 128 / 255, 1.0], atol=1e-6)
    x = with_spec(tiny, **spec, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), layout="NCHW").preprocess(image)
    assert x.shape == (3, 128, 128)
    np.testing.assert_allclose(x[:, 0, 0], (np.array([0, 128, 255]) / 255 - [0.485, 0.456, 0.406])
                               / [0.229, 0.224, 0.225], atol=1e-5)
    x = with_spec(tiny, name="i8", input_dtype="int8").preprocess(image)
    assert x.dtype == np.int8 and list(x[0, 0]) == [-128, 0, 127]


def test_reduced_scale_jpeg_decoding_keeps_enough_pixels(tmp_path):
    path = _write(tmp_path / "big.jpg", _thirds(2000, 1200), quality=90)
    assert read_image(path, min_size=(224, 224)).size == (1000, 600)  # at least 2 x 224 per side: 1/2 scale
    assert read_image(path).size == (2000, 1200)
    needs = []
    image = read_image(path, min_size=lambda w, h: needs.append((w, h)) or (112, 68))
    assert needs == [(2000, 1200)] and image.size == (250, 150)  # 1/8: still >= 2 x (112, 68)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the draft works on the stored pixels, the result is upright
    rotated = _write(tmp_path / "rotated.jpg", _thirds(2000, 1200), exif=exif.tobytes(), quality=90)
    assert read_image(rotated, min_size=(224, 224)).size == (600, 1000)


def test_pixels_needed_follows_the_crop_policy(tiny):
    assert with_spec(tiny, name="p", crop="pad").pixels_needed(2000, 1500) == (128, 96)
    assert with_spec(tiny, name="c", crop="center").pixels_needed(2000, 1500) == (171, 128)
    assert with_spec(tiny, name="c", crop="center").pixels_needed(1500, 2000) == (128, 171)
    assert with_spec(tiny, name="r", crop="resize").pixels_needed(2000, 1500) == (128, 128)
    for crop in CROPS:  # decoding at the size it asks for never upscales in fit()
        model = with_spec(tiny, name=crop, crop=crop)
        w, h = model.pixels_needed(640, 360)
        fitted = np.asarray(model.fit(_thirds(w, h)))
        assert fitted.shape == (128, 128, 3)


def test_embed_images_reports_bad_files_in_place_and_goes_on(tiny, tmp_path):
    paths = [_write(tmp_path / f"ok{i}.jpg", _thirds(200 + 10 * i, 150), quality=90) for i in range(5)]
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nope")
    paths.insert(2, tmp_path / "broken.jpg")
    paths.append(tmp_path / "gone.png")
    seen = []
    results = list(embed_images(paths, tiny, workers=2, read_ahead=2,
                                progress=lambda done, total, path: seen.append((done, total, path))))
    assert [r.path for r in results] == paths
    assert [r.ok for r in results] == [True, True, False, True, True, True, False]
    assert "broken.jpg" in results[2].error and "gone.png" in results[-1].error
    assert results[0].probabilities.shape == (1001,) and results[0].embedding.shape == (256,)
    assert (results[1].width, results[1].height) == (210, 150)
    assert seen == [(i + 1, len(paths), str(p)) for i, p in enumerate(paths)]
    assert list(embed_images(iter([]), tiny)) == []
    with pytest.raises(ValueError, match="workers must be a positive int"):
        list(embed_images(paths, tiny, workers=0))


# ---------------------------------------------------------------------------------------------- any model file
def test_model_from_file_reads_a_tflite_file(models_dir, default):
    model = model_from_file(models_dir / "mobilenet_v2_1.0_224_quant.tflite",
                            labels_path=models_dir / "imagenet_labels.txt", crop="pad")
    spec = model.spec
    assert (spec.input_size, spec.input_dtype, spec.layout) == ((224, 224), "uint8", "NHWC")
    assert spec.output_type == "softmax"
    assert (spec.scores_tensor, spec.scores, spec.embedding) == ("pre-activation", "logits", "penultimate")
    assert model.name == "mobilenet_v2_1.0_224_quant-7aad0c74" and model.dim == 1280
    x = default.preprocess(Image.open(shared_path("images", "coral_test", "bird.bmp")))
    for got, want in zip(model.infer_batch([x]), default.infer_batch([x])):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match=r"give labels_path= \(a text file, one label per line, 1001 lines"):
        model_from_file(models_dir / "mobilenet_v2_1.0_224_quant.tflite")
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['crop_policy'\]"):
        model_from_file(models_dir / "mobilenet_v2_1.0_224_quant.tflite", crop_policy="pad")
    extractor = model_from_file(models_dir / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
                                output_type="none")
    assert extractor.dim == 1024 and extractor.labels == []
    features_only = model_from_file(models_dir / "mobilenet_v2_1.0_224_quant.tflite", output_type="none")
    assert features_only.dim == 1280 and features_only.infer_batch([x])[0].shape == (1, 0)
    with pytest.raises(ValueError, match="the output is not made by a softmax or sigmoid .* give output_type="):
        model_from_file(models_dir / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite")


def _onnx_classifier(path: Path, n_classes: int = 4, softmax: bool = True, dynamic: bool = False) -> tuple:
    """A tiny NCHW float classifier: global average pool -> flatten (the embedding) -> Gemm -> Softmax."""
    onnx = pytest.importorskip("onnx", reason="building a test ONNX model needs the onnx package")
    pytest.importorskip("onnxruntime", reason="running .onnx models needs onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, n_classes)).astype(np.float32)
    bias = rng.normal(size=(n_classes,)).astype(np.float32)
    nodes = [helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["features"]),
             helper.make_node("Gemm", ["features", "W", "b"], ["logits"])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    hw = ["H", "W"] if dynamic else [32, 48]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, *hw])],
        [helper.make_tensor_value_info("probs" if softmax else "logits", TensorProto.FLOAT, ["N", n_classes])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return weights, bias


def test_onnx_model_through_onnx_runtime(tmp_path):
    weights, bias = _onnx_classifier(tmp_path / "tiny.onnx")
    labels = tmp_path / "labels.txt"
    labels.write_text("0 cat\n1 dog\n2 owl\n3 moth\n")
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    model = model_from_file(tmp_path / "tiny.onnx", labels_path=labels, mean=mean, std=std, crop="resize")
    assert (model.spec.layout, model.input_size, model.output_type) == ("NCHW", (32, 48), "softmax")
    assert model.labels == ["cat", "dog", "owl", "moth"] and model.dim == 3
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    x = model.preprocess(image)
    assert x.shape == (3, 32, 48) and x.dtype == np.float32
    probs, embs = model.infer_batch([x, x])
    features = x.reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(embs[0], features, rtol=1e-5, atol=1e-6)
    logits = features @ weights + bias
    np.testing.assert_allclose(probs[0], np.exp(logits) / np.exp(logits).sum(), rtol=1e-5)
    inputs = [model.preprocess(image.rotate(a)) for a in range(0, 360, 30)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(model.infer_batch, [inputs[:6], inputs[6:]]))
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), model.infer_batch(inputs)[1])
    named = model_from_file(tmp_path / "tiny.onnx", labels_path=labels, mean=mean, std=std, crop="resize",
                            embedding="features", scores_tensor="logits", scores="logits")
    np.testing.assert_allclose(named.infer_batch([x])[0][0], probs[0], rtol=1e-5)
    with pytest.raises(ValueError, match=r"model 'tiny-[0-9a-f]{8}' wants arrays of shape \(3, 32, 48\) \(NCHW\)"):
        model.infer_batch([np.zeros((32, 48, 3), np.float32)])


def test_onnx_model_from_file_asks_for_what_the_file_cannot_say(tmp_path):
    _onnx_classifier(tmp_path / "tiny.onnx")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\n")
    with pytest.raises(ValueError, match=r"float input, .* give input_range=\(-1, 1\) or \(0, 1\), or mean="):
        model_from_file(tmp_path / "tiny.onnx", labels_path=labels)
    _onnx_classifier(tmp_path / "logits.onnx", softmax=False)
    with pytest.raises(ValueError, match="not made by a softmax or sigmoid .* give output_type='softmax'"):
        model_from_file(tmp_path / "logits.onnx", labels_path=labels, input_range=(0, 1))
    model = model_from_file(tmp_path / "logits.onnx", labels_path=labels, input_range=(0, 1), output_type="sigmoid")
    assert model.spec.scores == "logits"
    probs, _ = model.infer_batch([np.zeros((3, 32, 48), np.float32)])
    assert ((probs > 0) & (probs < 1)).all()
    _onnx_classifier(tmp_path / "dynamic.onnx", dynamic=True)
    with pytest.raises(ValueError, match=r"the input size is not fixed in the file .* give input_size="):
        model_from_file(tmp_path / "dynamic.onnx", labels_path=labels, input_range=(0, 1))
    dynamic = model_from_file(tmp_path / "dynamic.onnx", labels_path=labels, input_range=(0, 1), input_size=(64, 64))
    assert dynamic.infer_batch([np.zeros((3, 64, 64), np.float32)])[1].shape == (1, 3)
    labels.write_text("a\nb\n")
    with pytest.raises(ValueError, match=r"labels.txt lists 2 labels but .* gives 4 scores"):
        model_from_file(tmp_path / "tiny.onnx", labels_path=labels, input_range=(0, 1)).load()


# ---------------------------------------------------------------------------------------------- downloads
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def mirror(tmp_path, models_dir):
    """A local HTTP server laid out like raw.githubusercontent.com (OWNER/REPO/COMMIT/PATH)."""
    root = tmp_path / "mirror"
    folder = root / CORAL_REPO / CORAL_COMMIT
    folder.mkdir(parents=True)
    entry = REGISTRY[DEFAULT_MODEL]
    for pinned in (entry.model, entry.labels):
        shutil.copy(models_dir / pinned.path, folder / pinned.path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder / entry.model.path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_default_model_is_fetched_checked_and_cached(mirror, tmp_path):
    base, _ = mirror
    cache = tmp_path / "cache"
    model = default_model(cache, base=base)
    entry = REGISTRY[DEFAULT_MODEL]
    assert model.name == DEFAULT_MODEL and model.dim == 1280 and len(model.labels) == 1001
    assert file_sha256(cache / entry.model.path) == entry.model.sha256
    assert entry.model.url() == ("https://raw.githubusercontent.com/google-coral/test_data/"
                                 "104342d2d3480b3e66203073dac24f4e2dbb4c41/mobilenet_v2_1.0_224_quant.tflite")
    # Cached: no network needed any more.
    again = default_model(cache, base=f"http://127.0.0.1:{_closed_port()}")
    assert again.spec.model_path == model.spec.model_path
    assert sorted(p.name for p in cache.iterdir()) == sorted([entry.model.path, entry.labels.path])


def test_a_corrupted_download_is_refused_and_not_cached(mirror, tmp_path):
    base, served = mirror
    data = bytearray(served.read_bytes())
    data[1000] ^= 0x01
    served.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(ModelDownloadError, match=r"sha256 [0-9a-f]{64} does not match the pinned 7aad0c74.*"
                                                 r"not cached.*model_from_file\(PATH, labels_path=LABELS\)"):
        default_model(cache, base=base)
    assert list(cache.iterdir()) == []  # neither the file nor a partial download


def test_no_network_gives_one_clear_error(tmp_path):
    with pytest.raises(ModelDownloadError, match=r"cannot download http://127.0.0.1:\d+/google-coral/test_data/"
                                                 r".*with no network, copy the file into .* or pass a model file"):
        default_model(tmp_path / "cache", base=f"http://127.0.0.1:{_closed_port()}", timeout=5)
    with pytest.raises(ValueError, match="unknown vision model 'nope'"):
        fetch_model("nope", tmp_path)
