"""A batch before it is stored: the strategy's picks on today's pool, and where they sit in embedding space.

``preview`` runs a strategy exactly as ``sampler.sample`` does (same pool, embeddings, exclusions and
probabilities) but writes nothing, so an ML lead can try parameters freely; ``embedding_map`` puts the
picks on a 2-D map of a seeded sample of the pool, to see at a glance whether a batch is spread out or
bunched in one corner.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from sampler import Pick, QueryStrategy, SamplerWarning
from sampler.base import check_budget
from sampler.run import query_store
from store import ModelVersion, Store, StoreError
from store.roles import Vectors

MAP_METHODS = ("PCA", "UMAP")


@dataclass
class Preview:
    """A batch picked but not stored, with what it was picked from."""

    model: ModelVersion
    picks: list[Pick]
    pool_size: int
    excluded: int
    unscored: int  # clips the model has not scored yet: left out of this preview, scored on Save
    seconds: float
    notes: list[str] = field(default_factory=list)  # what the sampler adjusted (SamplerWarning messages)


@contextlib.contextmanager
def sampler_notes() -> Iterator[list[str]]:
    """Collect the sampler's adjustments (a budget above what is left, a quota it could not fill) to show them.

    The CLI lets them reach stderr as warnings; a page has no stderr, so they are gathered here.
    """
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplerWarning)
        yield notes
    notes += list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, SamplerWarning)))


def preview(store: Store, strategy: QueryStrategy, budget: int,
            model_version: Optional[ModelVersion] = None) -> Preview:
    """The batch ``sampler.sample`` would pick now, without storing it or scoring new clips."""
    budget = check_budget(budget)
    mv = model_version or store.current_model_version()
    if mv is None:
        raise StoreError("the store holds no scored clips yet: ingest some audio first")
    started = time.perf_counter()
    with sampler_notes() as notes:
        picks, pool, exclude = query_store(store, clone(strategy), budget, mv)
    return Preview(model=mv, picks=list(picks), pool_size=len(pool),
                   excluded=int(np.isin(pool.clip_id, exclude).sum()),
                   unscored=int(store.unscored_clip_ids(mv).size), seconds=time.perf_counter() - started,
                   notes=notes)


def umap_available() -> bool:
    """UMAP is optional (``pip install umap-learn``); PCA is always there."""
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def pick_group(pick: Pick, colour_by: str) -> str:
    """The label a pick is coloured by on the map and counted under in the bars."""
    if colour_by == "cluster":
        return "no cluster" if pick.cluster is None else f"cluster {pick.cluster}"
    return pick.stratum or "no stratum"


def embedding_map(store: Vectors, pool_clip_ids: np.ndarray, picks: Sequence[Pick], embedding_space: str, *,
                  sample_size: int = 2000, seed: int = 0, method: str = "PCA",
                  colour_by: str = "cluster") -> pd.DataFrame:
    """2-D coordinates of a seeded sample of the pool plus every pick (columns x, y, clip_id, kind, group,
    rank, reason); ``kind`` is "pool" or "pick".

    The projection is fitted on exactly the points shown, so it is cheap at any pool size (only
    ``sample_size`` embeddings are read). Clips without a finite embedding are left off the map.
    """
    if method not in MAP_METHODS:
        raise ValueError(f"method must be one of {', '.join(MAP_METHODS)}, got {method!r}")
    if method == "UMAP" and not umap_available():
        raise ValueError("UMAP needs the umap-learn package (pip install umap-learn); use PCA")
    picked = np.asarray([p.clip_id for p in picks], dtype=np.int64)
    rest = np.setdiff1d(np.asarray(pool_clip_ids, dtype=np.int64), picked)
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(rest, size=min(int(sample_size), rest.size), replace=False)) if rest.size else rest
    ids = np.concatenate([shown, picked])
    view = store.embeddings(embedding_space)
    has = view.contains(ids) if ids.size else np.zeros(0, dtype=bool)
    ids = ids[has]
    x = view.take(ids) if ids.size else np.zeros((0, 1), dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    ids, x = ids[finite], x[finite]
    xy = _project(x, method, seed)
    by_id = {p.clip_id: p for p in picks}
    rows = []
    for cid, (px, py) in zip(ids.tolist(), xy.tolist()):
        p = by_id.get(cid)
        rows.append({"x": px, "y": py, "clip_id": cid, "kind": "pick" if p else "pool",
                     "group": pick_group(p, colour_by) if p else "pool", "rank": p.rank if p else None,
                     "reason": p.reason if p else ""})
    return pd.DataFrame(rows, columns=["x", "y", "clip_id", "kind", "group", "rank", "reason"])


def _project(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    """(n, 2) coordinates; fewer than three points or one dimension are laid out without fitting."""
    n, d = x.shape
    if n < 3 or d < 2:
        out = np.zeros((n, 2))
        out[:, 0] = x[:, 0] if d else 0.0
        return out
    if method == "UMAP":
        import umap

        return umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, n - 1)).fit_transform(x)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(x.astype(np.float64))


def group_counts(picks: Sequence[Pick], colour_by: str = "stratum") -> pd.DataFrame:
    """Picks per stratum (or cluster), largest first: how the batch's quota was shared out."""
    if not picks:
        return pd.DataFrame(columns=["group", "picks"])
    counts = pd.Series([pick_group(p, colour_by) for p in picks]).value_counts()
    frame = counts.rename_axis("group").reset_index(name="picks")
    return frame.sort_values(["picks", "group"], ascending=[False, True], ignore_index=True)


__all__ = ["MAP_METHODS", "Preview", "embedding_map", "group_counts", "pick_group", "preview", "sampler_notes",
           "umap_available"]
