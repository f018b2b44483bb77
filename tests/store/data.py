"""What the store's role suites write: one label list and windows with random outputs."""

from __future__ import annotations

import numpy as np

LABELS = [f"Species {i}_Common {i}" for i in range(8)]


def window_batch(n: int, seed: int = 0, dim: int = 4):
    """``n`` consecutive 3 s spans, probabilities over ``LABELS`` and ``dim``-d embeddings."""
    rng = np.random.default_rng(seed)
    return [(3.0 * i, 3.0 * i + 3) for i in range(n)], rng.random((n, len(LABELS))), rng.random((n, dim))
