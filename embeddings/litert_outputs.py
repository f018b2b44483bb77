"""LiteRT model files with inner tensors added to their outputs, and constant tensors read from them.

An embedding is an inner tensor of a classifier (the layer feeding its logits). LiteRT frees inner
tensors as it goes, and keeping all of them (``experimental_preserve_all_tensors``) costs about 10 % of
every invoke and 110 MB per BirdNET interpreter. A copy of the model whose first subgraph lists the
embedding among its outputs gives the same numbers bit for bit at full speed.

The copy is made in memory in a few tens of milliseconds, which matters for a command's start-up
(LiteRT's own object API takes half a second to unpack and repack BirdNET's 50 MB): a flatbuffer
table refers to a vector by a forward offset, so a new outputs vector is appended at the end of the
bytes and the subgraph's offset pointed at it; nothing else moves. The result is read back through the
generated schema code to check it. The file on disk is never changed.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Sequence

import numpy as np

#: Where SubGraph.outputs sits in the table's vtable (schema.fbs: tensors 4, inputs 6, outputs 8).
_SUBGRAPH_OUTPUTS = 8
# TFLite's TensorType codes for the constant types read here (schema.fbs).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 9: np.int8}


def _root(path: str | Path, data: bytes | bytearray):
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(data, 0)
        graph = model.Subgraphs(0)
        names = [graph.Tensors(i).Name().decode() for i in range(graph.TensorsLength())]
    except Exception as e:  # bytes that are not a TFLite flatbuffer fail in many ways deep in generated code
        raise ValueError(f"{path} is not a TFLite model file ({type(e).__name__}: {e})") from e
    return model, graph, names


def with_outputs(path: str | Path, names: Sequence[str]) -> bytes:
    """The model at ``path`` with the tensors ``names`` (of its first subgraph) appended to its outputs.

    The interpreter built from these bytes returns the original outputs first, in their order, then
    the named tensors in the order given; tensors already among the outputs are not repeated.
    """
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(Path(path).read_bytes())
    _, graph, tensor_names = _root(path, data)
    index = {name: i for i, name in enumerate(tensor_names)}
    outputs = [int(t) for t in graph.OutputsAsNumpy()]
    for name in names:
        if name not in index:
            raise ValueError(f"{path} has no tensor named {name!r} in its first subgraph")
        if index[name] not in outputs:
            outputs.append(index[name])
    slot = graph._tab.Offset(_SUBGRAPH_OUTPUTS)
    if slot == 0:
        raise ValueError(f"{path}: its first subgraph lists no outputs")
    field = graph._tab.Pos + slot
    data += bytes(-len(data) % 4)  # vectors are 4-byte aligned: a uint32 length, then the int32 indices
    vector = len(data)
    data += struct.pack(f"<I{len(outputs)}i", len(outputs), *outputs)
    struct.pack_into("<I", data, field, vector - field)
    patched = schema.Model.GetRootAs(data, 0).Subgraphs(0)
    if [int(t) for t in patched.OutputsAsNumpy()] != outputs:
        raise ValueError(f"{path}: could not add {list(names)} to its outputs")
    return bytes(data)


def constant(path: str | Path, name: str) -> np.ndarray:
    """The constant tensor ``name`` (weights, bias) of the model at ``path``, as stored in the file."""
    return constants(path, [name])[0]


def constants(path: str | Path, names: Sequence[str]) -> list[np.ndarray]:
    """The constant tensors ``names`` of the model at ``path``, read in one pass over its graph.

    The file is memory-mapped, so only the tensors' pages are read (not all of a 50 MB model). A name the
    model does not have raises ``KeyError``."""
    out = []
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        model, graph, tensor_names = _root(path, data)
        for name in names:
            if name not in tensor_names:
                raise KeyError(name)
            tensor = graph.Tensors(tensor_names.index(name))
            buffer = model.Buffers(tensor.Buffer())
            dtype = _DTYPES.get(int(tensor.Type()))
            if buffer.Offset() > 1:  # models over 2 GB keep their weights after the flatbuffer
                start, size = buffer.Offset(), buffer.Size()
            else:
                vector = buffer._tab.Offset(4)  # Buffer.data: where DataAsNumpy would read, without a copy of it
                start = buffer._tab.Vector(vector) if vector else 0
                size = buffer._tab.VectorLen(vector) if vector else 0
            if not size or dtype is None:
                raise ValueError(f"{path}: tensor {name!r} is not a constant of a plain numeric type")
            shape = [int(v) for v in tensor.ShapeAsNumpy()]
            view = np.frombuffer(data, dtype=dtype, count=size // np.dtype(dtype).itemsize, offset=start)
            out.append(view.reshape(shape).copy())
            del view  # the map cannot close while an array still points into it
    return out
