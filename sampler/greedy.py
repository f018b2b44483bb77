"""Greedy batch construction with lazy evaluation, shared by the core-set and the combined selector.

At each step the candidate with the highest

    gain_i + w_d * min(cap, dist_i / scale) + w_b * balance_g(i)

joins the batch, where ``dist_i`` is the Euclidean distance from candidate i to the nearest clip
already in the batch or in a reference set (labelled clips) and ``balance_g = clip(1 - picked_g /
target_g, 0, 1)`` is how much of its stratum's target is still missing (0 for a stratum without a
target). Every term can only fall as the batch grows, so a stale score is an upper bound: a heap of
stale scores re-scores only the candidates that reach its top (Minoux's accelerated greedy) and
returns exactly the batch that re-scoring every candidate at every step would, in a fraction of the
time (a 1,000-pick batch from 50,000 candidates re-scores a few thousand, not 50 million).
Ties go to the lower candidate index, so callers order candidates by preference.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from sampler.vectors import nearest


@dataclass
class GreedyStep:
    """Why candidate ``index`` joined the batch: its terms at the step it was chosen."""

    index: int
    gain: float
    distance: float  # to the nearest picked or reference clip (inf when there is none)
    nearest: int  # candidate index of that picked clip, or -2 - r for reference row r, -1 for none
    diversity: float  # min(cap, distance / scale)
    balance: float
    total: float


def lazy_greedy(z: np.ndarray, n: int, *, gain: Optional[np.ndarray] = None, w_d: float = 1.0,
                scale: float = 1.0, cap: float = np.inf, reference: Optional[np.ndarray] = None,
                groups: Optional[np.ndarray] = None, targets: Optional[np.ndarray] = None, w_b: float = 0.0,
                accept: Optional[Callable[[int], bool]] = None, batch: int = 256) -> list[GreedyStep]:
    """Up to ``n`` candidates (rows of ``z``) chosen greedily; see the module doc for the objective.

    ``reference``: vectors of clips the batch should keep away from (labelled, pending), in the
    space of ``z``. ``groups`` (stratum index per candidate) and ``targets`` (per stratum) define
    the balance term. ``accept(i)`` may veto the best candidate (a near-duplicate); it is then
    dropped for good. Fewer than ``n`` are returned only when candidates run out.

    Work is done only where it can change the answer: a popped candidate first gets its cheap
    terms (gain, balance) brought up to date with its old distance as a bound; only if that bound
    still beats the rest are its distances (to new picks, and to the reference clips the first
    time) computed — for ``batch`` top candidates at once, as matrix products.
    """
    z = np.ascontiguousarray(z, dtype=np.float32)
    m = z.shape[0]
    n = min(int(n), m)
    gain = np.zeros(m) if gain is None else np.asarray(gain, dtype=np.float64)
    use_d = w_d != 0.0
    mind = np.full(m, np.inf)
    near = np.full(m, -1, dtype=np.int64)
    ref_known = np.ones(m, dtype=bool)
    if use_d and reference is not None and len(reference) > 0:
        reference = np.ascontiguousarray(reference, dtype=np.float32)
        ref_known[:] = False
    groups = np.zeros(m, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    targets = np.zeros(int(groups.max(initial=0)) + 1) if targets is None else np.asarray(targets, dtype=np.float64)
    counts = np.zeros(targets.size, dtype=np.float64)
    sq = np.einsum("ij,ij->i", z, z).astype(np.float64)  # squared norms, for distances as matrix products

    version = np.zeros(m, dtype=np.int64)  # picks already folded into mind[i]
    alive = np.ones(m, dtype=bool)
    picks: list[int] = []
    zp = np.zeros((max(n, 1), z.shape[1]), dtype=np.float32)
    sq_p = np.zeros(max(n, 1))
    steps: list[GreedyStep] = []

    def totals(idx: np.ndarray) -> np.ndarray:
        s = gain[idx].copy()
        if use_d:
            s = s + w_d * np.minimum(cap, mind[idx] / scale)
        if w_b != 0.0:
            t = targets[groups[idx]]
            bal = np.where(t > 0, np.clip(1.0 - counts[groups[idx]] / np.where(t > 0, t, 1.0), 0.0, 1.0), 0.0)
            s = s + w_b * bal
        return s

    def refresh(idx: np.ndarray) -> None:
        """Exact distances of candidates ``idx`` to the reference clips (first time) and to new picks."""
        k = len(picks)
        unknown = idx[~ref_known[idx]]
        if unknown.size:
            d, r = nearest(z[unknown], reference)
            upd = d < mind[unknown]
            mind[unknown[upd]] = d[upd]
            near[unknown[upd]] = -2 - r[upd]
            ref_known[unknown] = True
        stale = idx[version[idx] < k]
        if stale.size:
            stale = stale[np.argsort(-version[stale], kind="stable")]  # newest first: narrow blocks
            pick_ids = np.asarray(picks, dtype=np.int64)
            for sl in range(0, stale.size, 64):
                rows = stale[sl:sl + 64]
                v0 = int(version[rows].min())
                new = zp[v0:k]
                d2 = sq[rows, None] + sq_p[None, v0:k] - 2.0 * (z[rows] @ new.T)
                d2[np.arange(v0, k)[None, :] < version[rows][:, None]] = np.inf  # picks already folded in
                j = np.argmin(d2, axis=1)
                d = np.sqrt(np.maximum(d2[np.arange(rows.size), j], 0.0))
                upd = d < mind[rows]
                mind[rows[upd]] = d[upd]
                near[rows[upd]] = pick_ids[v0 + j[upd]]
            version[stale] = k

    heap = list(zip((-totals(np.arange(m))).tolist(), range(m)))
    heapq.heapify(heap)
    while len(picks) < n and heap:
        neg, i = heapq.heappop(heap)
        if not alive[i]:
            continue
        s = float(totals(np.array([i]))[0])  # gain and balance now, distance as last known (a bound)
        exact = not use_d or (ref_known[i] and version[i] == len(picks))
        if heap and (-s, i) > heap[0]:
            heapq.heappush(heap, (-s, i))  # cannot win yet, whatever its distance turns out to be
            continue
        if not exact:
            # reference distances are needed by most candidates that reach the top once: fetch them
            # in growing batches (as many as already fetched), few large FAISS calls instead of many
            want = batch if ref_known[i] else max(batch, int(ref_known.size - np.count_nonzero(~ref_known)))
            todo = [i]
            while len(todo) < want and heap:
                e = heapq.heappop(heap)
                if alive[e[1]]:
                    todo.append(e[1])
            idx = np.asarray(todo, dtype=np.int64)
            refresh(idx)
            for j, s_j in zip(idx.tolist(), totals(idx).tolist()):
                heapq.heappush(heap, (-s_j, j))
            continue
        if accept is not None and not accept(i):
            alive[i] = False
            continue
        g = int(groups[i])
        k = len(picks)
        t = targets[g]
        steps.append(GreedyStep(index=i, gain=float(gain[i]), distance=float(mind[i]), nearest=int(near[i]),
                                diversity=float(min(cap, mind[i] / scale)) if use_d else 0.0,
                                balance=float(np.clip(1.0 - counts[g] / t, 0.0, 1.0)) if (w_b != 0.0 and t > 0)
                                else 0.0, total=s))
        alive[i] = False
        picks.append(i)
        zp[k] = z[i]
        sq_p[k] = sq[i]
        counts[g] += 1
    return steps
