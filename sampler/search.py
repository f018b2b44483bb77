"""Targeted search: "more like these" — the pool's nearest neighbours of example clips.

For hunting a rare species: an expert marks a few clips of it, and the batch is the pool clips
whose embeddings lie closest to them (perch-hoplite's search by example). Exact FAISS k-NN over
the unselected pool, scanned in fixed-size chunks of the memory-mapped matrix, so the pool is never
in RAM at once; the examples' neighbours are interleaved (each example's nearest, then each one's
second nearest ...).
"""

from __future__ import annotations

import numbers
from types import SimpleNamespace
from typing import Any, Literal, Optional, Sequence

import faiss
import numpy as np

from sampler.base import Choice, QueryContext, QueryStrategy, check_choice, ordinal
from sampler.vectors import MatrixReader, chunks, l2_normalize, read_embeddings

SEARCH_METRICS = ("cosine", "l2")
CHUNK_ROWS = 32_768


def nearest_neighbours(reader: MatrixReader, queries: np.ndarray, clip_ids: np.ndarray, k: int, *,
                       metric: str = "cosine", chunk_rows: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` clips of ``clip_ids`` nearest each query row: (distances, clip ids), nearest first.

    ``metric="cosine"``: 1 - cosine similarity; ``"l2"``: Euclidean distance. Rows are read
    ``chunk_rows`` at a time in row order; ties go to the lower clip id. Unused slots: inf, -1.
    """
    q = l2_normalize(queries) if metric == "cosine" else np.ascontiguousarray(queries, dtype=np.float32)
    clip_ids = np.asarray(clip_ids, dtype=np.int64)
    nq = q.shape[0]
    best_d = np.full((nq, 0), np.inf)
    best_i = np.full((nq, 0), -1, dtype=np.int64)
    k = int(min(k, clip_ids.size))
    if k == 0:
        return best_d, best_i
    if reader.has_rows:
        rows = reader.rows_for(clip_ids)
        order = np.argsort(rows, kind="stable")
        clip_ids, rows = clip_ids[order], rows[order]
    for sl in chunks(clip_ids.size, chunk_rows):
        x = reader.rows(rows[sl]) if reader.has_rows else reader.take(clip_ids[sl])
        if not np.isfinite(x).all():
            raise ValueError(f"embeddings in matrix {reader.name!r} contain NaN or infinite values "
                             f"(among clips {int(clip_ids[sl][0])}..{int(clip_ids[sl][-1])})")
        x = l2_normalize(x) if metric == "cosine" else x
        kk = min(k, x.shape[0])
        d2, idx = faiss.knn(q, x, kk)
        d = np.sqrt(np.maximum(d2.astype(np.float64), 0.0))
        d = d ** 2 / 2.0 if metric == "cosine" else d
        ids = clip_ids[sl][idx]
        all_d = np.concatenate([best_d, d], axis=1)
        all_i = np.concatenate([best_i, ids], axis=1)
        keep = np.lexsort((all_i, all_d), axis=-1)[:, :k]
        best_d = np.take_along_axis(all_d, keep, axis=1)
        best_i = np.take_along_axis(all_i, keep, axis=1)
    return best_d, best_i


def check_examples(examples: Any) -> list[int]:
    if isinstance(examples, (str, bytes)) or not isinstance(examples, (Sequence, np.ndarray)):
        raise ValueError(f"examples must be a list of clip ids, got {examples!r}")
    out = []
    for e in examples:
        if isinstance(e, (bool, np.bool_)) or not isinstance(e, numbers.Integral):
            raise ValueError(f"examples must be clip ids (integers), got {e!r} in {list(examples)!r}")
        out.append(int(e))
    if not out:
        raise ValueError("examples is empty: give at least one clip id to search around")
    return list(dict.fromkeys(out))


class MoreLikeThese(QueryStrategy):
    """The unselected pool clips nearest to example clips (targeted search for a rare sound).

    Parameters
    ----------
    examples : list of clip ids
        Clips of what to find more of (labelled or not; they are never picked themselves).
    metric : {"cosine", "l2"}, default "cosine"
        Cosine distance (1 - cosine similarity) or Euclidean distance between embeddings.
    near_duplicate_radius : float >= 0 or None, default None
        Skip neighbours within this distance of an excluded clip or of an earlier pick.
    near_duplicate_metric : {"cosine", "l2"}, default "cosine"

    Deterministic (exact search, ties to the lower clip id). ``cluster`` is the example's index in
    ``examples``; ``score`` the similarity: 1 - cosine distance, or minus the Euclidean distance.
    """

    name = "more_like_these"

    def __init__(self, examples: Sequence[int] = (), metric: Literal["cosine", "l2"] = "cosine",
                 near_duplicate_radius: Optional[float] = None, near_duplicate_metric: str = "cosine"):
        self.examples = examples
        self.metric = metric
        self.near_duplicate_radius = near_duplicate_radius
        self.near_duplicate_metric = near_duplicate_metric

    def _validate_params(self) -> SimpleNamespace:
        p = super()._validate_params()
        p.examples = check_examples(self.examples)
        p.metric = check_choice(self.metric, "metric", SEARCH_METRICS)
        return p

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        examples = np.array(params.examples, dtype=np.int64)
        ids = np.asarray(ctx.pool.clip_id)
        q = read_embeddings(ctx.reader, examples, what=f"an example clip (examples={params.examples})")
        avail = avail[~np.isin(ids[avail], examples)]
        if avail.size == 0:
            return []
        k = min(avail.size, n_pick if not ctx.guard.active else 4 * n_pick + 100)
        dist, nbr = nearest_neighbours(ctx.reader, q, ids[avail], k, metric=params.metric)
        flat = np.unique(nbr[nbr >= 0])
        near = np.isin(ids[avail], flat)  # only neighbours are ever looked up: no dict over the whole pool
        pos_of = dict(zip(ids[avail][near].tolist(), avail[near].tolist()))
        taken: set[int] = set()
        heads = [0] * len(examples)
        out: list[Choice] = []
        x_cache: dict[int, np.ndarray] = {}
        if ctx.guard.active:  # read the neighbours' vectors once and drop near-duplicates of excluded clips
            rows = np.array([pos_of[c] for c in flat.tolist()], dtype=np.int64)
            kept_rows, xs = ctx.drop_near_excluded(rows, ctx.embeddings(rows))
            kept = set(ids[kept_rows].tolist())
            x_cache = {int(ids[r]): xs[j] for j, r in enumerate(kept_rows.tolist())}
            taken |= set(flat.tolist()) - kept
        while len(out) < n_pick:
            progressed = False
            for e in range(len(examples)):
                while heads[e] < nbr.shape[1] and nbr[e, heads[e]] >= 0:
                    c, d, j = int(nbr[e, heads[e]]), float(dist[e, heads[e]]), heads[e] + 1
                    heads[e] += 1
                    if c in taken:
                        continue
                    taken.add(c)
                    if ctx.guard.active and not ctx.guard.accept(c, x_cache[c]):
                        continue
                    sim = 1.0 - d if params.metric == "cosine" else -d
                    what = "cosine distance" if params.metric == "cosine" else "Euclidean distance"
                    out.append(Choice(pos=pos_of[c], score=sim, cluster=e,
                                      reason=f"more like example clip {int(examples[e])}: its {ordinal(j)} nearest "
                                             f"of {avail.size} unselected clips searched, {what} {d:.3f}"))
                    progressed = True
                    break
                if len(out) == n_pick:
                    break
            if not progressed:
                break
        return out
