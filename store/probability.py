"""How a model's outputs are read, and the maths on probability rows: the one home of each.

``OutputType`` says how a model's probabilities are to be read: ``sigmoid`` (one independent
probability per class, several classes per clip: BirdNET, the workbench's heads) or ``softmax`` (one
distribution over classes, one class per clip: most image classifiers). ``sigmoid``, ``softmax`` and
``activate`` turn logits into probabilities; ``binary_entropy``, ``categorical_entropy`` and
``top_two`` (top-1 and margin) measure rows of them. Every package imports them from here (``store``
is the bottom of the data flow), so a probability stored at ingest and one recomputed later from an
embedding agree to the last bit the float32 rows hold.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np


class OutputType(StrEnum):
    """How a model's probabilities are to be read (stored as the plain string)."""

    SIGMOID = "sigmoid"
    SOFTMAX = "softmax"


#: Logits are clipped to +-this before the sigmoid: BirdNET-Analyzer's and birdnetlib's activation (sensitivity
#: 1), used for every model so that stored and recomputed probabilities agree (the floor is sigmoid(-15) ~ 3.1e-7).
SIGMOID_CLIP = 15.0
#: Probabilities are kept this far from 0 and 1 inside a logarithm.
ENTROPY_EPS = 1e-12


def _floats(z: np.ndarray) -> np.ndarray:
    """Logits as floats at their own precision (float64 logits of a head stay float64 until the result)."""
    z = np.asarray(z)
    return z if z.dtype in (np.float32, np.float64) else z.astype(np.float32)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Independent per-class probabilities (float32) from logits, clipped at +-``SIGMOID_CLIP``."""
    z = np.clip(_floats(z), -SIGMOID_CLIP, SIGMOID_CLIP)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    """One distribution over the last axis (float32) from logits (a row or rows)."""
    z = _floats(z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def activate(output_type: str, z: np.ndarray) -> np.ndarray:
    """Probabilities from logits as ``output_type`` reads them."""
    if output_type == OutputType.SOFTMAX:
        return softmax(z)
    if output_type == OutputType.SIGMOID:
        return sigmoid(z)
    raise ValueError(f"output_type must be one of {[t.value for t in OutputType]}, got {output_type!r}")


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Binary entropy in bits (float64), elementwise; 0 at p in {0, 1}, 1 at p = 0.5."""
    p = np.clip(np.asarray(p, dtype=np.float64), ENTROPY_EPS, 1 - ENTROPY_EPS)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def categorical_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy of each row read as one distribution (rows are normalised first), divided by log(classes):
    0 for a certain row, 1 for a uniform one; an all-zero row says nothing and counts as 1."""
    p = np.asarray(p, dtype=np.float32)
    k = p.shape[1]
    if k == 1:
        return np.zeros(p.shape[0])
    total = p.sum(axis=1, keepdims=True, dtype=np.float64)
    q = np.clip(p / np.where(total > 0, total, 1.0), ENTROPY_EPS, 1.0)
    ent = -(q * np.log(q)).sum(axis=1)
    ent[total.ravel() <= 0] = np.log(k)
    return np.clip(ent / np.log(k), 0.0, 1.0)


def top_two(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 probability, margin = top-1 minus top-2) of each row, as float64; one class: top-2 is 0."""
    p = np.asarray(p, dtype=np.float32)
    if p.shape[1] >= 2:
        top2 = -np.partition(-p, 1, axis=1)[:, :2].astype(np.float64)
    else:
        top2 = np.concatenate([p, np.zeros_like(p)], axis=1).astype(np.float64)
    return top2[:, 0], top2[:, 0] - top2[:, 1]


__all__ = ["ENTROPY_EPS", "SIGMOID_CLIP", "OutputType", "activate", "binary_entropy", "categorical_entropy",
           "sigmoid", "softmax", "top_two"]
