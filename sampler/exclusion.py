"""Never the same sound twice: excluded clips and near-duplicates of them or of earlier picks.

Excluded clips (already selected, pushed or labelled: ``Store.excluded_clip_ids()``) are dropped
from the pool by id. With a ``near_duplicate_radius`` a candidate is also skipped when its
embedding lies within that radius of an excluded clip or of a clip already picked for this batch
(ten windows of one wren song are one label's worth of information). Every strategy goes through
``NearDuplicateGuard``, so the rule is the same everywhere.
"""

from __future__ import annotations

import numbers
from typing import Any, Literal, Optional

import numpy as np

from sampler.parameters import NEAR_DUPLICATE_METRICS
from sampler.vectors import l2_normalize, nearest

NearDuplicateMetric = Literal["cosine", "l2"]

def check_near_duplicate(radius: Any, metric: Any) -> tuple[Optional[float], str]:
    if metric not in NEAR_DUPLICATE_METRICS:
        raise ValueError(f"near_duplicate_metric must be one of {sorted(NEAR_DUPLICATE_METRICS)}, got {metric!r}")
    if radius is None:
        return None, metric
    if isinstance(radius, bool) or not isinstance(radius, numbers.Real) or not np.isfinite(radius) or radius < 0:
        raise ValueError(f"near_duplicate_radius must be None or a finite number >= 0 "
                         f"({NEAR_DUPLICATE_METRICS[metric]}), got {radius!r}")
    return float(radius), metric


def _space(x: np.ndarray, metric: str) -> np.ndarray:
    return l2_normalize(x) if metric == "cosine" else np.ascontiguousarray(x, dtype=np.float32)


def _as_metric(euclid: np.ndarray, metric: str) -> np.ndarray:
    # between unit vectors, |a - b|^2 = 2 - 2 cos, so cosine distance = |a - b|^2 / 2
    return euclid ** 2 / 2.0 if metric == "cosine" else euclid


def near_duplicate_distance(x: np.ndarray, reference: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Distance (in ``metric``) from each row of ``x`` to its nearest ``reference`` row, and that row."""
    if reference.shape[0] == 0:
        return np.full(x.shape[0], np.inf), np.full(x.shape[0], -1, dtype=np.int64)
    d, i = nearest(_space(x, metric), _space(reference, metric))
    return _as_metric(d, metric), i


class NearDuplicateGuard:
    """Skips candidates within ``radius`` of an excluded clip or of a clip already picked.

    One guard serves a whole batch (under ``Stratified``, every stratum), so a pick in one stratum
    also keeps its near-duplicates in another out. ``radius=None`` disables the check.
    """

    def __init__(self, radius: Optional[float], metric: str = "cosine"):
        self.radius = radius
        self.metric = metric
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._ids: list[int] = []
        self.skipped: int = 0

    @property
    def active(self) -> bool:
        return self.radius is not None

    def near_excluded(self, x: np.ndarray, excluded_x: np.ndarray, *, prepared: bool = False) -> np.ndarray:
        """Mask of rows of ``x`` within the radius of an excluded clip's embedding.

        ``prepared``: ``excluded_x`` is already in the metric's space (``prepare``), so a caller
        checking many candidate sets against the same clips normalises them once.
        """
        if not self.active or excluded_x.shape[0] == 0 or x.shape[0] == 0:
            return np.zeros(x.shape[0], dtype=bool)
        if prepared:
            d, _ = nearest(_space(x, self.metric), excluded_x)
            d = _as_metric(d, self.metric)
        else:
            d, _ = near_duplicate_distance(x, excluded_x, self.metric)
        near = d <= self.radius
        self.skipped += int(near.sum())
        return near

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Vectors in the space the metric is measured in (unit length for cosine)."""
        return _space(x, self.metric)

    def accept(self, clip_id: int, vector: Optional[np.ndarray]) -> bool:
        """True (and remember the clip) unless it lies within the radius of an earlier accepted one."""
        if not self.active:
            return True
        v = _space(np.asarray(vector, dtype=np.float32).reshape(1, -1), self.metric)[0]
        n = len(self._ids)
        if n:
            diff = self._vectors[:n] - v
            d = _as_metric(np.sqrt(np.einsum("ij,ij->i", diff, diff).astype(np.float64)), self.metric)
            if float(d.min()) <= self.radius:
                self.skipped += 1
                return False
        if self._vectors.shape[0] <= n or self._vectors.shape[1] != v.shape[0]:
            grown = np.zeros((max(16, 2 * n), v.shape[0]), dtype=np.float32)
            if n:
                grown[:n] = self._vectors[:n]
            self._vectors = grown
        self._vectors[n] = v
        self._ids.append(int(clip_id))
        return True
