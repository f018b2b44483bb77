"""Image classifiers as embedding models: class probabilities AND an embedding from one invoke per image.

Camera-trap and moth-trap images go through the same loop as audio: a model gives every image its
class probabilities (for uncertainty) and an embedding (for diversity, search and the fine-tuned
head). As with BirdNET (``embeddings.birdnet``), the embedding, the tensor that feeds the classifier
(MobileNet's global average pool), comes from the same invoke as the scores: it is found in the graph
by an interpreter that keeps every intermediate tensor (``experimental_preserve_all_tensors``), then
the runner runs a copy of the model with that tensor among its outputs (``embeddings.litert_outputs``),
which gives the same numbers without the cost of keeping every tensor.
``.onnx`` files run through ONNX Runtime with the same interface (the embedding is then an output
of the graph; "penultimate" exposes it with the ``onnx`` package).

- ``VisionModelSpec``: everything needed to run one model file (input size and type, scaling, crop
  policy, how to read scores and embedding); validated on construction, the files on ``load()``.
- ``VisionModel(spec)``: ``name``, ``dim``, ``labels``, ``output_type``, ``input_size``, ``load()``,
  ``warm_up()``, ``preprocess(image)``, ``infer_batch(inputs)``; thread-safe (one interpreter per thread).
- ``model_from_file(path, labels_path, **overrides)``: any .tflite/.onnx; what the file does not say
  must be given, and is asked for by name.
- ``REGISTRY``: the MobileNets of google-coral/test_data, pinned to a commit and a sha256;
  ``registered_model(name, folder)`` reads them from a folder, ``fetch_model(name, cache_dir)`` and
  ``default_model(cache_dir)`` download them once (checked, cached).
- ``embed_images(paths, model)``: the ingest's fast path: files decoded on a thread pool (reduced-scale
  JPEG decoding, EXIF rotation, any mode to RGB) overlapping with inference, one result per file in
  order, unreadable files reported by name without stopping the run.

An embedding-only model (``output_type="none"``, e.g. ``mobilenet-v1-embedding``) has no classes: its
``labels`` are empty and ``infer_batch`` returns probabilities of shape ``(n, 0)``. It serves
similarity search and the diversity / cold-start strategies; a pool that needs uncertainty must pair
it with a classifier head (``workbench finetune``) or use a classifier model.
"""

from __future__ import annotations

import functools
import math
import os
import re
import urllib.error
import urllib.request
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Optional, Sequence, get_args

import numpy as np
from PIL import Image

from embeddings.image_files import IMAGE_EXTENSIONS, ImageReadError, read_image
from embeddings.litert_outputs import with_outputs
from embeddings.model_threads import lease
from store.atomic import PRIVATE, atomic_path
from store.probability import activate
from store.sources import file_sha256

__all__ = ["CROPS", "DEFAULT_MODEL", "INPUT_DTYPES", "IMAGE_EXTENSIONS", "ImageEmbedding", "ImageReadError",
           "LAYOUTS", "ModelDownloadError", "OUTPUT_TYPES", "PinnedFile", "REGISTRY", "RegisteredModel", "SCORES",
           "VisionModel", "VisionModelSpec", "default_model", "embed_images", "fetch_model", "fetch_pinned",
           "image_files", "model_from_file", "read_labels", "registered_model", "with_spec"]

Crop = Literal["center", "resize", "pad"]
InputDtype = Literal["uint8", "int8", "float32"]
OutputType = Literal["softmax", "sigmoid", "none"]
Scores = Literal["probabilities", "logits"]
Layout = Literal["NHWC", "NCHW"]

CROPS: tuple[str, ...] = get_args(Crop)
INPUT_DTYPES: tuple[str, ...] = get_args(InputDtype)
OUTPUT_TYPES: tuple[str, ...] = get_args(OutputType)
SCORES: tuple[str, ...] = get_args(Scores)
LAYOUTS: tuple[str, ...] = get_args(Layout)

#: Colour of the letterbox bars of crop="pad" (mid-grey: 0 after [-1, 1] scaling).
PAD_RGB = (128, 128, 128)

MODEL_SUFFIXES = (".tflite", ".onnx")


def _check_choice(field_name: str, value: Any, options: Sequence[str], where: str) -> None:
    if value not in options:
        raise ValueError(f"{where}: {field_name} must be one of {list(options)}, got {value!r}")


# ---------------------------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class VisionModelSpec:
    """How to run one image model file. Field values are checked here; the files on ``VisionModel.load()``.

    - ``name``: the model version name the store records (change it when the weights change).
    - ``model_path``: a ``.tflite`` or ``.onnx`` file.
    - ``labels``: the class names in output order (a sequence, or a text file with one per line); None
      for an embedding-only model (``output_type="none"``).
    - ``input_size``: (height, width) of the model input.
    - ``input_dtype``: "uint8" (quantised: raw pixels 0..255), "int8" (pixels - 128) or "float32"
      (pixels mapped linearly to ``input_range``, or ``(pixel / 255 - mean) / std`` when ``mean`` and
      ``std`` are given, per RGB channel, as torchvision does).
    - ``crop``: "center" (crop the middle to the input's aspect ratio, then resize), "resize" (squash
      the whole frame) or "pad" (letterbox: the whole frame, mid-grey bars).
    - ``output_type``: "softmax" (one class per image: most image classifiers), "sigmoid"
      (independent classes) or "none" (embedding only).
    - ``scores``: whether the scores tensor holds "probabilities" (dequantised; a quantised softmax is
      renormalised, since 8 bits drop the mass of the many small classes) or "logits" (the activation
      is applied here).
    - ``scores_tensor``: "output" (the model's first output), "pre-activation" (the tensor feeding the
      final softmax/sigmoid: finer than an 8-bit softmax) or a tensor name.
    - ``embedding``: "penultimate" (the tensor feeding the classifier layer, e.g. the global average
      pool), "output" (an embedding-only model) or a tensor name.
    - ``layout``: "NHWC" (TFLite) or "NCHW" (most ONNX exports).
    - ``embedding_dim``, ``sha256``: when given, ``load()`` checks them against the file.
    """

    name: str
    model_path: Path
    labels: tuple[str, ...] | Path | None
    input_size: tuple[int, int]
    input_dtype: InputDtype = "uint8"
    output_type: OutputType = "softmax"
    scores: Scores = "probabilities"
    scores_tensor: str = "output"
    embedding: str = "penultimate"
    crop: Crop = "center"
    input_range: tuple[float, float] = (-1.0, 1.0)
    mean: Optional[tuple[float, float, float]] = None
    std: Optional[tuple[float, float, float]] = None
    layout: Layout = "NHWC"
    embedding_dim: Optional[int] = None
    sha256: Optional[str] = None

    def __post_init__(self) -> None:
        where = f"vision model spec {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"vision model spec: name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "model_path", Path(self.model_path))
        if self.model_path.suffix.lower() not in MODEL_SUFFIXES:
            raise ValueError(f"{where}: model_path {self.model_path} must end in {' or '.join(MODEL_SUFFIXES)}")
        _check_choice("input_dtype", self.input_dtype, INPUT_DTYPES, where)
        _check_choice("output_type", self.output_type, OUTPUT_TYPES, where)
        _check_choice("scores", self.scores, SCORES, where)
        _check_choice("crop", self.crop, CROPS, where)
        _check_choice("layout", self.layout, LAYOUTS, where)
        try:
            h, w = (int(v) for v in self.input_size)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: input_size must be (height, width), got {self.input_size!r}") from e
        if h < 1 or w < 1 or (h, w) != tuple(self.input_size):
            raise ValueError(f"{where}: input_size must be two positive ints (height, width), got {self.input_size!r}")
        object.__setattr__(self, "input_size", (h, w))
        if isinstance(self.labels, (str, os.PathLike)):
            object.__setattr__(self, "labels", Path(self.labels))
        elif self.labels is not None:
            labels = tuple(self.labels)
            if not all(isinstance(x, str) for x in labels):
                raise ValueError(f"{where}: labels must be strings (or a labels file path)")
            object.__setattr__(self, "labels", labels)
        if self.output_type == "none":
            if self.labels not in (None, ()):
                raise ValueError(f"{where}: an embedding-only model (output_type='none') has no labels; "
                                 f"give labels=None, or the output_type of its classifier")
        elif self.labels is None:
            raise ValueError(f"{where}: labels are required for output_type={self.output_type!r} "
                             f"(a list, or a text file with one label per line)")
        lo, hi = (float(v) for v in self.input_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"{where}: input_range must be (low, high) with low < high, got {self.input_range!r}")
        object.__setattr__(self, "input_range", (lo, hi))
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"{where}: give both mean and std (per RGB channel), or neither")
        if self.mean is not None:
            mean, std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
            if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
                raise ValueError(f"{where}: mean and std must be 3 values (R, G, B), std > 0; got "
                                 f"mean={self.mean!r}, std={self.std!r}")
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)
        for name in ("scores_tensor", "embedding"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{where}: {name} must be a tensor name, or one of the keywords documented "
                                 f"on VisionModelSpec; got {getattr(self, name)!r}")
        if self.embedding_dim is not None and (not isinstance(self.embedding_dim, int) or self.embedding_dim < 1):
            raise ValueError(f"{where}: embedding_dim must be a positive int, got {self.embedding_dim!r}")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", str(self.sha256)):
            raise ValueError(f"{where}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")

    @property
    def backend(self) -> str:
        return "onnx" if self.model_path.suffix.lower() == ".onnx" else "tflite"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of ONE preprocessed image (no batch axis)."""
        h, w = self.input_size
        return (h, w, 3) if self.layout == "NHWC" else (3, h, w)


def read_labels(path: Path) -> list[str]:
    """Labels from a text file, one per line in output order; a leading "0 ", "1 ", ... index is dropped."""
    try:
        lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError as e:
        raise FileNotFoundError(f"labels file {path} is missing") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"labels file {path} is not UTF-8 text (one label per line)") from e
    lines = [x for x in lines if x]
    numbered = [re.match(r"^(\d+)[\s:]+(\S.*)$", x) for x in lines]
    if lines and all(numbered) and [int(m.group(1)) for m in numbered] == list(range(len(lines))):
        lines = [m.group(2) for m in numbered]
    return lines


# ---------------------------------------------------------------------------------------------- runners
def _dequantize(values: np.ndarray, quantization: tuple) -> np.ndarray:
    scale, zero_point = (quantization or (0.0, 0))[:2]
    if scale:
        return (values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    return values.astype(np.float32)


_PASS_THROUGH_TFLITE = {"RESHAPE", "SQUEEZE", "DEQUANTIZE", "QUANTIZE", "SOFTMAX", "LOGISTIC", "LOG_SOFTMAX"}
_CLASSIFIER_TFLITE = {"CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL"}
_ACTIVATION_TFLITE = {"SOFTMAX": "softmax", "LOGISTIC": "sigmoid"}


def _tflite_graph(interp) -> dict[int, dict]:
    """Tensor index -> the op producing it (the model's own ops; delegate nodes are skipped)."""
    try:
        ops = interp._get_ops_details()
    except AttributeError:  # older/newer runtimes without the (private) op listing
        return {}
    producers: dict[int, dict] = {}
    for op in ops:
        if op.get("op_name") == "DELEGATE":
            continue
        for t in op.get("outputs", []):
            producers.setdefault(int(t), op)
    return producers


def _model_with_outputs(path: str, names: tuple[str, ...]) -> bytes:
    """The model file with ``names`` added to its outputs, made once per file version (every thread's runner
    uses it)."""
    st = os.stat(path)
    return _with_outputs_cached(path, st.st_size, st.st_mtime_ns, names)


@functools.lru_cache(maxsize=4)
def _with_outputs_cached(path: str, _size: int, _mtime_ns: int, names: tuple[str, ...]) -> bytes:
    return with_outputs(path, names)


class _TFLiteRunner:
    """One LiteRT interpreter (not thread-safe: used by one thread at a time through the lease)."""

    def __init__(self, spec: VisionModelSpec, num_threads: int):
        from ai_edge_litert.interpreter import Interpreter

        path = spec.model_path
        with warnings.catch_warnings():
            # Keeping all tensors is deliberate: it is how the embedding comes out of the same invoke.
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
            try:
                interp = Interpreter(model_path=str(path), num_threads=num_threads,
                                     experimental_preserve_all_tensors=True)
            except ValueError as e:
                raise ValueError(f"{path} is not a TFLite model LiteRT can load ({e}); check the file, or "
                                 f"give an .onnx file") from e
        inp = interp.get_input_details()[0]
        shape = [int(v) for v in inp["shape"]]
        want = [1, *spec.input_shape]
        if shape != want:
            signature = [int(v) for v in inp.get("shape_signature", inp["shape"])]
            if len(signature) == 4 and all(s in (-1, w) for s, w in zip(signature, want)):
                interp.resize_tensor_input(inp["index"], want)
            else:
                raise ValueError(f"{path} takes input of shape {shape}; spec {spec.name!r} says {want} "
                                 f"(input_size={spec.input_size}, layout={spec.layout}): fix input_size/layout")
        interp.allocate_tensors()
        dtype = np.dtype(inp["dtype"]).name
        if dtype != spec.input_dtype:
            raise ValueError(f"{path} takes {dtype} input; spec {spec.name!r} says input_dtype={spec.input_dtype!r}")
        details = {int(d["index"]): d for d in interp.get_tensor_details()}
        by_name = {d["name"]: i for i, d in details.items()}
        producers = _tflite_graph(interp)
        output = int(interp.get_output_details()[0]["index"])

        def resolve(what: str, value: str) -> int:
            if value == "output":
                return output
            if value in by_name:
                return by_name[value]
            if value == "pre-activation":
                op = producers.get(output)
                if op is None or op["op_name"] not in _ACTIVATION_TFLITE:
                    raise ValueError(f"{path}: {what}='pre-activation' but the output is not made by a softmax or "
                                     f"sigmoid ({'unknown op' if op is None else op['op_name']}); give "
                                     f"{what}='output' or a tensor name")
                return int(op["inputs"][0])
            if value == "penultimate":
                tensor, seen = output, 0
                while seen < 16:
                    op = producers.get(tensor)
                    if op is None:
                        break
                    if op["op_name"] in _CLASSIFIER_TFLITE:
                        return int(op["inputs"][0])
                    if op["op_name"] not in _PASS_THROUGH_TFLITE:
                        break
                    tensor, seen = int(op["inputs"][0]), seen + 1
                raise ValueError(f"{path}: cannot find the tensor feeding the classifier (embedding='penultimate'); "
                                 f"give embedding=<tensor name> (see the file's tensor names), or 'output' for an "
                                 f"embedding-only model")
            raise ValueError(f"{path} has no tensor named {value!r} ({what}); give 'output', "
                             f"{'pre-activation' if what == 'scores_tensor' else 'penultimate'} or one of its tensor "
                             f"names")

        self.input = int(inp["index"])
        self.scores = None if spec.output_type == "none" else resolve("scores_tensor", spec.scores_tensor)
        self.embedding = resolve("embedding", spec.embedding)
        inner = [details[i]["name"] for i in (self.scores, self.embedding)
                 if i is not None and i not in {int(o["index"]) for o in interp.get_output_details()}]
        if inner:
            # Run a copy of the model with those tensors among its outputs (same tensor indices, same numbers),
            # not this interpreter that keeps every tensor (about 10 % slower per invoke).
            interp = Interpreter(model_content=_model_with_outputs(str(path), tuple(inner)), num_threads=num_threads)
            if shape != want:
                interp.resize_tensor_input(inp["index"], want)
            interp.allocate_tensors()
        self.interp = interp
        self.scores_q = None if self.scores is None else details[self.scores]["quantization"]
        self.embedding_q = details[self.embedding]["quantization"]
        self.n_scores = 0 if self.scores is None else int(np.prod(details[self.scores]["shape"]))
        self.dim = int(np.prod(details[self.embedding]["shape"]))
        self.activation = _ACTIVATION_TFLITE.get((producers.get(output) or {}).get("op_name"))

    def run(self, x: np.ndarray) -> tuple[Optional[np.ndarray], np.ndarray]:
        self.interp.set_tensor(self.input, x[np.newaxis])
        self.interp.invoke()
        scores = None if self.scores is None else \
            _dequantize(self.interp.get_tensor(self.scores).reshape(-1), self.scores_q)
        emb = _dequantize(self.interp.get_tensor(self.embedding).reshape(-1), self.embedding_q)
        return scores, emb


_PASS_THROUGH_ONNX = {"Reshape", "Flatten", "Squeeze", "Identity", "Cast", "DequantizeLinear", "QuantizeLinear",
                      "Softmax", "Sigmoid", "LogSoftmax"}
_CLASSIFIER_ONNX = {"Gemm", "MatMul", "Conv", "QLinearMatMul", "QLinearConv", "MatMulInteger"}
_ACTIVATION_ONNX = {"Softmax": "softmax", "Sigmoid": "sigmoid"}


@dataclass
class _OnnxGraph:
    """What the onnx package reads from a graph: the model bytes to run and the tensors resolved by name."""

    model: bytes | str
    scores: Optional[str]
    embedding: str
    activation: Optional[str]


def _onnx_graph(spec: VisionModelSpec) -> _OnnxGraph:
    """Resolve "pre-activation"/"penultimate" and expose those tensors as graph outputs (needs ``onnx``)."""
    import onnxruntime as ort

    path = spec.model_path
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
        raise ValueError(f"{path} is not an ONNX model ONNX Runtime can load ({type(e).__name__}: {e})") from e
    outputs = [o.name for o in sess.get_outputs()]
    keywords = {"pre-activation", "penultimate"}
    wanted = [spec.embedding] + ([] if spec.output_type == "none" else [spec.scores_tensor])
    activation = None
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is None:
        if keywords & set(wanted):
            raise ValueError(f"{path}: resolving {sorted(keywords & set(wanted))} in an ONNX graph needs the onnx "
                             f"package (pip install onnx), or name the graph outputs: embedding=<one of {outputs}>")
        graph_model = None
    else:
        graph_model = onnx.load(str(path))
    producers: dict[str, Any] = {}
    if graph_model is not None:
        for node in graph_model.graph.node:
            for out in node.output:
                producers[out] = node
        op = producers.get(outputs[0])
        activation = _ACTIVATION_ONNX.get(op.op_type) if op is not None else None

    def resolve(what: str, value: str) -> str:
        if value == "output":
            return outputs[0]
        if value in outputs or value in producers:
            return value
        if value == "pre-activation":
            op = producers.get(outputs[0])
            if op is None or op.op_type not in _ACTIVATION_ONNX:
                raise ValueError(f"{path}: {what}='pre-activation' but the output is not made by Softmax/Sigmoid; "
                                 f"give {what}='output' or a tensor name")
            return op.input[0]
        if value == "penultimate":
            tensor = outputs[0]
            for _ in range(16):
                op = producers.get(tensor)
                if op is None:
                    break
                if op.op_type in _CLASSIFIER_ONNX:
                    return op.input[0]
                if op.op_type not in _PASS_THROUGH_ONNX:
                    break
                tensor = op.input[0]
            raise ValueError(f"{path}: cannot find the tensor feeding the classifier (embedding='penultimate'); "
                             f"give embedding=<tensor name> or 'output' for an embedding-only model")
        raise ValueError(f"{path} has no tensor named {value!r} ({what}); graph outputs are {outputs}")

    emb = resolve("embedding", spec.embedding)
    scores = None if spec.output_type == "none" else resolve("scores_tensor", spec.scores_tensor)
    extra = [t for t in (scores, emb) if t is not None and t not in outputs]
    if not extra:
        return _OnnxGraph(str(path), scores, emb, activation)
    for name in dict.fromkeys(extra):
        graph_model.graph.output.append(onnx.ValueInfoProto(name=name))
    return _OnnxGraph(graph_model.SerializeToString(), scores, emb, activation)


class _OnnxRunner:
    """One ONNX Runtime session, single-threaded (parallelism comes from one session per thread)."""

    def __init__(self, spec: VisionModelSpec, graph: _OnnxGraph, num_threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        path = spec.model_path
        try:
            sess = ort.InferenceSession(graph.model, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{path} is not an ONNX model ONNX Runtime can load ({type(e).__name__}: {e})") from e
        inp = sess.get_inputs()[0]
        want = [1, *spec.input_shape]
        shape = list(inp.shape)
        if len(shape) != 4 or any(isinstance(s, int) and s != w for s, w in zip(shape, want)):
            raise ValueError(f"{path} takes input of shape {shape}; spec {spec.name!r} says {want} "
                             f"(input_size={spec.input_size}, layout={spec.layout}): fix input_size/layout")
        dtype = _ORT_TYPES.get(inp.type)
        if dtype != spec.input_dtype:
            raise ValueError(f"{path} takes {inp.type} input; spec {spec.name!r} says input_dtype={spec.input_dtype!r}")
        self.sess = sess
        self.input = inp.name
        self.names = [n for n in (graph.scores, graph.embedding) if n is not None]
        self.has_scores = graph.scores is not None
        self.activation = graph.activation
        zeros = np.zeros([1, *spec.input_shape], dtype=np.dtype(spec.input_dtype))
        scores, emb = self.run(zeros[0])
        self.n_scores = 0 if scores is None else scores.size
        self.dim = emb.size

    def run(self, x: np.ndarray) -> tuple[Optional[np.ndarray], np.ndarray]:
        got = self.sess.run(self.names, {self.input: x[np.newaxis]})
        emb = np.asarray(got[-1], dtype=np.float32).reshape(-1)
        scores = np.asarray(got[0], dtype=np.float32).reshape(-1) if self.has_scores else None
        return scores, emb


_ORT_TYPES = {"tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(float)": "float32"}


# ---------------------------------------------------------------------------------------------- the model
class VisionModel:
    """An image model as an embedding model: an RGB image in, class probabilities and an embedding out.

    Safe to call from several threads: each call leases an interpreter (or ONNX Runtime session) of
    its own from a small pool, built on demand and reused; inference releases the GIL, so two threads
    keep two cores busy. Quantised MobileNets take about 7 ms per 224 px image on one core.
    """

    def __init__(self, spec: VisionModelSpec, num_threads: int = 1):
        self.spec = spec
        self.num_threads = num_threads

    # ------------------------------------------------------------------ facts
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def output_type(self) -> str:
        return self.spec.output_type

    @property
    def input_size(self) -> tuple[int, int]:
        return self.spec.input_size

    @property
    def labels(self) -> list[str]:
        """Class labels in output order ([] for an embedding-only model)."""
        cached = self.__dict__.get("_labels")
        if cached is None:
            labels = self.spec.labels
            if labels is None:
                cached = []
            elif isinstance(labels, Path):
                cached = read_labels(labels)
                if not cached:
                    raise ValueError(f"labels file {labels} lists no labels (one per line expected)")
            else:
                cached = list(labels)
            self.__dict__["_labels"] = cached
        return cached

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        """Embedding size (read from the model file: loads it on first use)."""
        if "_dim" not in self.__dict__:
            self.load()
        return self.__dict__["_dim"]

    # ------------------------------------------------------------------ loading
    def load(self) -> "VisionModel":
        """Check the files (existence, sha256, labels against outputs) and build one interpreter now."""
        path = self.spec.model_path
        if not path.is_file():
            raise FileNotFoundError(f"vision model file {path} is missing (model {self.name!r}); fetch it again "
                                    f"or give the path of a .tflite/.onnx file")
        if self.spec.sha256 is not None and "_sha_ok" not in self.__dict__:
            got = file_sha256(path)
            if got != self.spec.sha256:
                raise ValueError(f"vision model file {path} has sha256 {got}, not the pinned {self.spec.sha256} "
                                 f"of {self.name!r}: the file is damaged or another model; fetch it again")
            self.__dict__["_sha_ok"] = True
        _ = self.labels
        with self._lease() as runner:
            self._check(runner)
        return self

    def _check(self, runner) -> None:
        if "_dim" in self.__dict__:
            return
        spec, path = self.spec, self.spec.model_path
        if spec.output_type != "none" and runner.n_scores != self.n_classes:
            where = spec.labels if isinstance(spec.labels, Path) else "labels"
            raise ValueError(f"{where} lists {self.n_classes} labels but {path} gives {runner.n_scores} scores "
                             f"({spec.scores_tensor}): give the labels file of this model")
        if spec.embedding_dim is not None and runner.dim != spec.embedding_dim:
            raise ValueError(f"{path}: embedding tensor {spec.embedding!r} has {runner.dim} values; spec "
                             f"{spec.name!r} says embedding_dim={spec.embedding_dim}")
        self.__dict__["_dim"] = runner.dim

    def warm_up(self, interpreters: int = 1) -> "VisionModel":
        """Build ``interpreters`` interpreters and run each once, concurrently (first invokes are slow)."""
        self.load()
        zeros = np.zeros(self.spec.input_shape, dtype=np.dtype(self.spec.input_dtype))
        with ThreadPoolExecutor(max_workers=interpreters) as pool:
            list(pool.map(lambda _: self.infer_batch([zeros]), range(interpreters)))
        return self

    def _lease(self):
        """An interpreter for this thread's exclusive use (interpreters are not thread-safe)."""
        return lease(self)

    def _build(self):
        if not isinstance(self.num_threads, int) or self.num_threads < 1:
            raise ValueError(f"num_threads must be a positive int, got {self.num_threads!r}")
        path = self.spec.model_path
        if not path.is_file():
            raise FileNotFoundError(f"vision model file {path} is missing (model {self.name!r})")
        if self.spec.backend == "tflite":
            return _TFLiteRunner(self.spec, self.num_threads)
        graph = self.__dict__.get("_onnx_graph")
        if graph is None:
            graph = self.__dict__.setdefault("_onnx_graph", _onnx_graph(self.spec))
        return _OnnxRunner(self.spec, graph, self.num_threads)

    # ------------------------------------------------------------------ preprocessing
    def fit(self, image: Image.Image) -> Image.Image:
        """``image`` (RGB) brought to the input size by the crop policy (antialiased bilinear resize)."""
        h, w = self.spec.input_size
        width, height = image.size
        if self.spec.crop == "resize":
            return image.resize((w, h), Image.BILINEAR, reducing_gap=3.0)
        if self.spec.crop == "center":
            if width * h > height * w:  # wider than the input: keep the middle columns
                cw = height * w / h
                box = ((width - cw) / 2, 0.0, (width + cw) / 2, float(height))
            else:
                ch = width * h / w
                box = (0.0, (height - ch) / 2, float(width), (height + ch) / 2)
            return image.resize((w, h), Image.BILINEAR, box=box, reducing_gap=3.0)
        scale = min(w / width, h / height)
        nw, nh = max(1, min(w, round(width * scale))), max(1, min(h, round(height * scale)))
        canvas = Image.new("RGB", (w, h), PAD_RGB)
        canvas.paste(image.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0), ((w - nw) // 2, (h - nh) // 2))
        return canvas

    def pixels_needed(self, width: int, height: int) -> tuple[int, int]:
        """The smallest (width, height) a ``width`` x ``height`` image can be decoded at without ``fit`` upscaling.

        With crop="pad" a 4:3 frame for a 224 px input needs 224 x 168; with "center" 299 x 224.
        """
        h, w = self.spec.input_size
        if self.spec.crop == "resize":
            return w, h
        if self.spec.crop == "center":
            scale = max(w / width, h / height)
        else:
            scale = min(w / width, h / height)
        return math.ceil(width * scale), math.ceil(height * scale)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """The model's input array for one image of any size and mode (RGB is taken; others converted)."""
        if not isinstance(image, Image.Image):
            raise TypeError(f"preprocess wants a PIL.Image.Image, got {type(image).__name__}")
        if image.mode != "RGB":  # embeddings.image_files.read_image gives RGB; a caller's own image may not be
            image = image.convert("RGB")
        pixels = np.asarray(self.fit(image), dtype=np.uint8)
        spec = self.spec
        if spec.input_dtype == "uint8":
            x = pixels
        elif spec.input_dtype == "int8":
            x = (pixels.astype(np.int16) - 128).astype(np.int8)
        elif spec.mean is not None:
            x = (pixels.astype(np.float32) / np.float32(255.0) - np.asarray(spec.mean, np.float32)) \
                / np.asarray(spec.std, np.float32)
        else:
            lo, hi = spec.input_range
            x = pixels.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)
        if spec.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x)

    # ------------------------------------------------------------------ inference
    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        if self.spec.scores == "logits":
            return activate(self.spec.output_type, scores)
        probs = np.clip(scores, 0.0, 1.0).astype(np.float32)
        if self.spec.output_type == "softmax":
            total = float(probs.sum())
            if total > 0:
                probs /= total
        return probs

    def infer_batch(self, inputs: Sequence[np.ndarray] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``[n, n_classes]`` and embeddings ``[n, dim]`` (float32): one invoke per image.

        ``inputs`` are arrays from ``preprocess`` (shape ``spec.input_shape``, dtype ``spec.input_dtype``).
        """
        n = len(inputs)
        want_shape, want_dtype = self.spec.input_shape, np.dtype(self.spec.input_dtype)
        with self._lease() as runner:
            self._check(runner)
            probs = np.empty((n, self.n_classes), dtype=np.float32)
            embs = np.empty((n, runner.dim), dtype=np.float32)
            for i in range(n):
                x = np.asarray(inputs[i])
                if x.shape != want_shape:
                    raise ValueError(f"model {self.name!r} wants arrays of shape {want_shape} ({self.spec.layout}); "
                                     f"input {i} has shape {x.shape}: use model.preprocess(image)")
                if x.dtype != want_dtype:
                    if want_dtype.kind == "f" and x.dtype.kind == "f":
                        x = x.astype(want_dtype)
                    else:
                        raise ValueError(f"model {self.name!r} wants {want_dtype} arrays; input {i} is {x.dtype}: "
                                         f"use model.preprocess(image)")
                scores, emb = runner.run(np.ascontiguousarray(x))
                if scores is not None:
                    probs[i] = self._probabilities(scores)
                embs[i] = emb
        return probs, embs

    def infer_image(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and embedding of one PIL image."""
        probs, embs = self.infer_batch([self.preprocess(image)])
        return probs[0], embs[0]

    def __repr__(self) -> str:
        return f"VisionModel({self.spec.name!r}, {str(self.spec.model_path)!r}, num_threads={self.num_threads!r})"


# ---------------------------------------------------------------------------------------------- any file
_SPEC_FIELDS = {f.name for f in fields(VisionModelSpec)} - {"model_path"}


def model_from_file(path: str | Path, labels_path: str | Path | None = None, **overrides: Any) -> VisionModel:
    """A ``VisionModel`` for any .tflite/.onnx image model: what the file says is read, the rest given.

    Read from the file: input size, layout and dtype, the number of outputs, whether the output is a
    softmax or a sigmoid (TFLite always; ONNX when the ``onnx`` package is installed). Must be given
    when the file cannot say: ``labels_path`` (unless ``output_type="none"``), the scaling of float
    inputs (``input_range=(lo, hi)`` or ``mean=``/``std=``), ``output_type`` when the output is not
    made by a softmax/sigmoid. Any ``VisionModelSpec`` field may be overridden (``name`` defaults to
    the file name plus the first 8 hex digits of its sha256, so another file is another version).
    """
    path = Path(path)
    unknown = sorted(set(overrides) - _SPEC_FIELDS)
    if unknown:
        raise TypeError(f"model_from_file: unknown parameter(s) {unknown}; known: {sorted(_SPEC_FIELDS)}")
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} is missing")
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ValueError(f"{path}: a vision model must be a .tflite or .onnx file")
    facts = _read_tflite_facts(path) if suffix == ".tflite" else _read_onnx_facts(path)
    given = dict(overrides)
    if labels_path is not None:
        if "labels" in given:
            raise TypeError("model_from_file: give labels_path or labels=, not both")
        given["labels"] = Path(labels_path)

    def need(name: str, hint: str) -> None:
        if name not in given:
            raise ValueError(f"{path}: {hint}; give {name}=")

    if "layout" not in given:
        if facts["layout"] is None:
            need("layout", f"cannot tell the channel axis of input shape {facts['shape']} (NHWC or NCHW?)")
        given["layout"] = facts["layout"]
    if "input_size" not in given:
        if facts["size"] is None:
            need("input_size", f"the input size is not fixed in the file (shape {facts['shape']}): "
                               f"give (height, width)")
        given["input_size"] = facts["size"]
    given.setdefault("input_dtype", facts["dtype"])
    if given["input_dtype"] == "float32" and "input_range" not in given and "mean" not in given:
        raise ValueError(f"{path}: float input, and the file does not say how pixels are scaled; give "
                         f"input_range=(-1, 1) or (0, 1), or mean=(r, g, b) and std=(r, g, b)")
    if "output_type" not in given:
        if facts["activation"] is None:
            raise ValueError(f"{path}: the output is not made by a softmax or sigmoid (or the file cannot say); "
                             f"give output_type='softmax' (one class per image), 'sigmoid' or 'none' (embedding "
                             f"only)")
        given["output_type"] = facts["activation"]
    if given["output_type"] != "none":
        if "labels" not in given:
            raise ValueError(f"{path}: give labels_path= (a text file, one label per line, {facts['n_outputs']} "
                             f"lines for its {facts['n_outputs']} outputs)")
        if "scores_tensor" not in given and "scores" not in given:
            if facts["activation"] is not None and facts["quantized_output"]:
                given["scores_tensor"], given["scores"] = "pre-activation", "logits"
            elif facts["activation"] is None:
                given["scores"] = "logits"
    else:
        # No classes wanted: a classifier's pooled features, or the output of an embedding-only model.
        given.setdefault("embedding", "output" if facts["activation"] is None else "penultimate")
        given.setdefault("labels", None)
    if "name" not in given:
        given["name"] = f"{path.stem}-{file_sha256(path)[:8]}"
    spec = VisionModelSpec(model_path=path, **given)
    return VisionModel(spec)


def _layout_and_size(shape: Sequence) -> tuple[Optional[str], Optional[tuple[int, int]]]:
    if len(shape) != 4:
        return None, None
    fixed = [s if isinstance(s, (int, np.integer)) and s > 0 else None for s in shape]
    if fixed[3] == 3 and fixed[1] != 3:
        layout, hw = "NHWC", (fixed[1], fixed[2])
    elif fixed[1] == 3 and fixed[3] != 3:
        layout, hw = "NCHW", (fixed[2], fixed[3])
    else:
        return None, None
    return layout, (None if None in hw else (int(hw[0]), int(hw[1])))


def _read_tflite_facts(path: Path) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_path=str(path))
    except ValueError as e:
        raise ValueError(f"{path} is not a TFLite model LiteRT can load ({e})") from e
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    signature = [int(v) for v in inp.get("shape_signature", inp["shape"])]
    layout, size = _layout_and_size([v if v > 0 else None for v in signature])
    op = _tflite_graph(interp).get(int(out["index"]))
    return {"shape": signature, "layout": layout, "size": size, "dtype": np.dtype(inp["dtype"]).name,
            "activation": _ACTIVATION_TFLITE.get(op["op_name"]) if op else None,
            "quantized_output": bool(out["quantization"][0]), "n_outputs": int(np.prod(out["shape"]))}


def _read_onnx_facts(path: Path) -> dict:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise ValueError(f"{path} is not an ONNX model ONNX Runtime can load ({type(e).__name__}: {e})") from e
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
    layout, size = _layout_and_size(list(inp.shape))
    activation = None
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        graph = onnx.load(str(path)).graph
        for node in graph.node:
            if out.name in node.output:
                activation = _ACTIVATION_ONNX.get(node.op_type)
    n_outputs = int(np.prod([s for s in out.shape[1:] if isinstance(s, int)] or [0]))
    return {"shape": list(inp.shape), "layout": layout, "size": size, "dtype": _ORT_TYPES.get(inp.type, inp.type),
            "activation": activation, "quantized_output": False, "n_outputs": n_outputs}


# ---------------------------------------------------------------------------------------------- registry
DEFAULT_BASE = "https://raw.githubusercontent.com"
CORAL_REPO = "google-coral/test_data"
CORAL_COMMIT = "104342d2d3480b3e66203073dac24f4e2dbb4c41"


@dataclass(frozen=True)
class PinnedFile:
    """A public file pinned to a commit and a sha256 (raw URL: BASE/REPO/COMMIT/PATH)."""

    path: str
    sha256: str
    repo: str = CORAL_REPO
    commit: str = CORAL_COMMIT

    def url(self, base: str = DEFAULT_BASE) -> str:
        return f"{base.rstrip('/')}/{self.repo}/{self.commit}/{self.path}"


@dataclass(frozen=True)
class RegisteredModel:
    """A known model: its pinned files and the facts checked against them (tests run each one)."""

    name: str
    model: PinnedFile
    labels: Optional[PinnedFile]
    description: str
    spec_fields: dict = field(default_factory=dict)

    def spec(self, folder: str | Path) -> VisionModelSpec:
        """The spec of this model with its files in ``folder``."""
        folder = Path(folder)
        return VisionModelSpec(name=self.name, model_path=folder / self.model.path,
                               labels=None if self.labels is None else folder / self.labels.path,
                               sha256=self.model.sha256, **self.spec_fields)


_IMAGENET_LABELS = PinnedFile("imagenet_labels.txt", "b8aaeb5630c62626a7d124a05c0e14230a7ffdd2136a31d0190a4fb71c1d82f1")
# All five are TF1-slim MobileNets quantised to uint8: input 0..255 (scale 1/128, zero point 128: [-1, 1]
# inside), an 8-bit softmax output (scale 1/256). Probabilities come from the dequantised logits feeding
# that softmax (an 8-bit softmax loses the mass of the small classes: its sum drops to 0.5 on images
# the model is unsure of); the embedding is the global average pool feeding the classifier layer.
_MOBILENET = dict(input_dtype="uint8", scores="logits", scores_tensor="pre-activation", embedding="penultimate",
                  crop="center")
REGISTRY: dict[str, RegisteredModel] = {m.name: m for m in (
    RegisteredModel("mobilenet-v2-imagenet", PinnedFile("mobilenet_v2_1.0_224_quant.tflite",
                    "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"), _IMAGENET_LABELS,
                    "MobileNetV2 1.0/224 uint8, ImageNet (1001 classes incl. background), 1280-d embedding",
                    # Letterboxed: the whole camera-trap frame is seen (an animal at the edge is not cropped
                    # away); it also separated species best here (tests/embeddings/test_vision.py).
                    dict(_MOBILENET, input_size=(224, 224), embedding_dim=1280, crop="pad")),
    RegisteredModel("mobilenet-v2-inat-birds", PinnedFile("mobilenet_v2_1.0_224_inat_bird_quant.tflite",
                    "350fcd8cf1df1560060d464595dfed8b174b05792788052896004848d9ad04f9"),
                    PinnedFile("inat_bird_labels.txt",
                               "a16108dfe3f8daff015b87a97ab6a17e717b9b1bccd719f6d8f747746d7b9277"),
                    "MobileNetV2 1.0/224 uint8, iNaturalist birds (965 species), 1280-d embedding",
                    dict(_MOBILENET, input_size=(224, 224), embedding_dim=1280)),
    RegisteredModel("mobilenet-v2-inat-insects", PinnedFile("mobilenet_v2_1.0_224_inat_insect_quant.tflite",
                    "0ebaeb474dccf56b8b818b014f0d6a8e22b35a45b491a659f0b5405c9c838282"),
                    PinnedFile("inat_insect_labels.txt",
                               "e5e03664a8a70eafc3308268eb8cd6aa28652912735bfdd45e436ae9617155bc"),
                    "MobileNetV2 1.0/224 uint8, iNaturalist insects (1022 species), 1280-d embedding",
                    dict(_MOBILENET, input_size=(224, 224), embedding_dim=1280)),
    RegisteredModel("mobilenet-v1-embedding", PinnedFile("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
                    "f409ef4f73fcbb9667841965623c5c8524aac33d41b9bf5f3667161fb4a76319"), None,
                    "MobileNetV1 1.0/224 uint8, ImageNet backbone without classifier: 1024-d embedding only",
                    dict(input_dtype="uint8", output_type="none", embedding="output", crop="center",
                         input_size=(224, 224), embedding_dim=1024)),
    RegisteredModel("mobilenet-v1-0.25-128-imagenet", PinnedFile("mobilenet_v1_0.25_128_quant.tflite",
                    "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785"), _IMAGENET_LABELS,
                    "MobileNetV1 0.25/128 uint8, ImageNet (1001 classes): tiny and fast, 256-d embedding",
                    dict(_MOBILENET, input_size=(128, 128), embedding_dim=256)),
)}

#: The default: ImageNet's 1,001 classes span mammals, birds and insects, and its embedding separates
#: camera-trap species and insects better than the iNat-birds model's (see tests/embeddings/test_vision.py).
DEFAULT_MODEL = "mobilenet-v2-imagenet"


class ModelDownloadError(RuntimeError):
    """A pinned model file could not be fetched or did not match its sha256 (nothing was cached)."""


def fetch_pinned(url: str, dest: Path, sha256: str, timeout: float = 30.0) -> Path:
    """``dest`` if it holds ``sha256``, else download ``url`` to it, checked; nothing is cached on failure."""
    dest = Path(dest)
    if dest.is_file() and file_sha256(dest) == sha256:
        return dest
    with atomic_path(dest, mode=PRIVATE) as tmp:  # kept only when it holds the pinned bytes (0600, as ever)
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
        got = file_sha256(tmp)
        if got != sha256:
            raise ModelDownloadError(f"{url}: sha256 {got} does not match the pinned {sha256}; not cached")
    return dest


def fetch_model(name: str, cache_dir: str | Path, base: Optional[str] = None, timeout: float = 30.0) -> VisionModel:
    """Registered model ``name`` from ``cache_dir``, downloaded there first if absent (pinned, sha256-checked).

    ``base`` replaces ``https://raw.githubusercontent.com`` (a mirror laid out as OWNER/REPO/COMMIT/PATH).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown vision model {name!r}; registered: {sorted(REGISTRY)}")
    entry = REGISTRY[name]
    folder = Path(cache_dir)
    for pinned in (entry.model, entry.labels):
        if pinned is None:
            continue
        url = pinned.url(base or DEFAULT_BASE)
        how = ("or pass a model file instead: model_from_file(PATH, labels_path=LABELS) (on the command line: "
               "--vision-model FILE --labels FILE, or --model-dir FOLDER holding the registered model's files)")
        try:
            fetch_pinned(url, folder / pinned.path, pinned.sha256, timeout)
        except ModelDownloadError as e:
            raise ModelDownloadError(f"vision model {name!r}: {e}; retry, {how}") from e
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise ModelDownloadError(f"vision model {name!r}: cannot download {url} ({reason}); with no network, "
                                     f"copy the file into {folder}, {how}") from e
    return VisionModel(entry.spec(folder))


def registered_model(name: str, folder: str | Path) -> VisionModel:
    """Registered model ``name`` with its files already in ``folder`` (checked against the pinned sha256 on load)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown vision model {name!r}; registered: {sorted(REGISTRY)}")
    return VisionModel(REGISTRY[name].spec(folder))


def default_model(cache_dir: str | Path, base: Optional[str] = None, timeout: float = 30.0) -> VisionModel:
    """The default vision model (``DEFAULT_MODEL``), fetched into ``cache_dir`` on first use, loaded."""
    return fetch_model(DEFAULT_MODEL, cache_dir, base, timeout).load()


# ---------------------------------------------------------------------------------------------- fast path
@dataclass(frozen=True)
class ImageEmbedding:
    """One image's result: probabilities and embedding, or the reason it was refused (``error``).

    ``width``/``height`` are the size the image was decoded at (a JPEG may be decoded at reduced scale).
    """

    path: Path
    probabilities: Optional[np.ndarray] = None
    embedding: Optional[np.ndarray] = None
    error: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.error is None


#: progress(images_done, images_total or None, path)
ProgressCallback = Callable[[int, Optional[int], str], None]


def _embed_one(path: Path, model: VisionModel, max_pixels: Optional[int], fast_jpeg: bool) -> ImageEmbedding:
    try:
        image = read_image(path, max_pixels=max_pixels, notes=[],
                           min_size=model.pixels_needed if fast_jpeg else None)
    except ImageReadError as e:
        return ImageEmbedding(path, error=str(e))
    probs, embs = model.infer_batch([model.preprocess(image)])
    return ImageEmbedding(path, probs[0], embs[0], None, image.width, image.height)


def embed_images(paths: Iterable[str | Path], model: VisionModel, workers: int = 2,
                 progress: Optional[ProgressCallback] = None, max_pixels: Optional[int] = None,
                 read_ahead: Optional[int] = None, fast_jpeg: bool = True) -> Iterator[ImageEmbedding]:
    """Probabilities and embedding of every image file, one ``ImageEmbedding`` per path, in order.

    ``workers`` threads each take one file at a time: decode it (``embeddings.image_files.read_image``;
    JPEGs at reduced scale when the model's input allows), rotate it upright,
    convert it to RGB, preprocess it and run the model on an interpreter leased for that thread. While
    one thread decodes, the other infers (Pillow and LiteRT release the GIL), so two workers keep two
    cores busy. A file that cannot be read as an image gives an ``ImageEmbedding`` with ``error`` set
    (the file and the reason) and the run goes on; a model failure is raised. At most ``read_ahead``
    (default ``4 * workers``) files are in flight, so any number of paths streams in bounded memory.
    ``fast_jpeg=False`` decodes JPEGs at full size (slower; embeddings differ slightly, see
    ``bench/vision_ingest.py``); ``max_pixels`` is passed to ``read_image``.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    read_ahead = read_ahead or 4 * workers
    total = len(paths) if hasattr(paths, "__len__") else None  # type: ignore[arg-type]
    model.load()
    pending: deque[Future] = deque()
    done = 0
    it = iter(paths)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vision") as pool:
        try:
            for path in it:
                pending.append(pool.submit(_embed_one, Path(path), model, max_pixels, fast_jpeg))
                if len(pending) >= read_ahead:
                    result = pending.popleft().result()
                    done += 1
                    if progress is not None:
                        progress(done, total, str(result.path))
                    yield result
            while pending:
                result = pending.popleft().result()
                done += 1
                if progress is not None:
                    progress(done, total, str(result.path))
                yield result
        finally:
            for f in pending:
                f.cancel()


def image_files(root: str | Path) -> list[Path]:
    """Image files under ``root`` (a file or a folder, recursive), sorted; by suffix (``IMAGE_EXTENSIONS``)."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def with_spec(model: VisionModel, **changes: Any) -> VisionModel:
    """A new ``VisionModel`` whose spec differs by ``changes`` (e.g. ``crop="pad"``, ``name=...``)."""
    return VisionModel(replace(model.spec, **changes), model.num_threads)
