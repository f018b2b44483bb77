"""A generated pool whose best strategy is known: rare classes hide in small, tight clusters."""

from __future__ import annotations

import numpy as np
import pytest


def rare_clusters(n_common: int = 300, n_rare: int = 8, per_rare: int = 6, dim: int = 16, seed: int = 0):
    """One common class and ``n_rare`` rare ones, each a tight, well separated cluster.

    Random picking spends its labels on the common class; a farthest-first (k-center) batch covers
    every cluster within a few rounds, so it must beat random here.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (n_rare + 1, dim))
    x = [centres[0] + rng.normal(0, 0.5, (n_common, dim))]
    labels = ["common"] * n_common
    for k in range(n_rare):
        x.append(centres[k + 1] + rng.normal(0, 0.5, (per_rare, dim)))
        labels += [f"rare {k}"] * per_rare
    strata = np.array([f"site {i % 3}" for i in range(len(labels))])
    return np.concatenate(x).astype(np.float32), np.array(labels), strata


@pytest.fixture
def rare_pool():
    from lab.pool import from_arrays

    x, labels, strata = rare_clusters()
    return from_arrays(x, labels=labels, strata=strata, source="rare clusters")
