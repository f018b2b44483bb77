"""Uncertainty and confidence scores computed from probability rows (the maths itself: ``store.probability``).

BirdNET is multi-label (a sigmoid per class), so a clip's uncertainty is the binary entropy of each
class, H(p) = -p log2 p - (1-p) log2 (1-p), summarised by its maximum (as TABMON does) and mean.
"""

from __future__ import annotations

import numpy as np

from store.probability import binary_entropy, top_two


def score_rows(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row max and mean binary entropy, top-1 probability, margin (top-1 minus top-2), top index."""
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[1] == 0:
        raise ValueError(f"probabilities must be a 2-d array with at least one class, got shape {probs.shape}")
    if not np.isfinite(probs).all():
        raise ValueError("probabilities contain NaN or infinite values")
    ent = binary_entropy(probs)
    top1, margin = top_two(probs)
    return {
        "max_entropy": ent.max(axis=1),
        "mean_entropy": ent.mean(axis=1),
        "top1": top1,
        "margin": margin,
        "top_index": probs.argmax(axis=1),
    }


def top_k(probabilities: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and probabilities of the ``k`` most probable classes per row, best first."""
    probs = np.asarray(probabilities, dtype=np.float32)
    k = min(k, probs.shape[1])
    idx = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(probs, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)
