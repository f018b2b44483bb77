"""What every sampling strategy shares: the ``Pick`` record, the strategy base class and pool helpers.

A strategy follows scikit-activeml's shape: the constructor stores parameters only, ``query``
validates them and the inputs, then selects. Parameters come back with ``get_params()``
(scikit-learn's ``BaseEstimator``), so a stored run can rebuild its strategy with
``STRATEGIES[run.strategy](**run.params)``.

The one method, for every strategy::

    query(pool, embeddings, budget, *, exclude=(), probabilities=None) -> list[Pick]

``pool`` is the scored pool (``Store.pool()``, or ``sampler.metadata_pool`` for clips with no model
scores); ``embeddings`` the embedding matrix (``Store.embeddings(space)``, memory-mapped: only the
rows a strategy needs are read); ``exclude`` clip ids never to pick (``Store.excluded_clip_ids()``);
``probabilities`` the pool model's probability matrix (``Store.probabilities(model)``), read only by
measures that need full rows (``categorical_entropy``). ``sampler.sample`` passes all of them.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, ClassVar, Iterable, Optional, Protocol, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from sampler.exclusion import NearDuplicateGuard, check_near_duplicate
from sampler.strata import STRATA_COLUMNS, UNKNOWN, check_strata, stratum_codes, stratum_keys  # noqa: F401
from sampler.uncertainty import (UNCERTAINTY_MEASURES, check_scores, multi_label_of, output_type_of, resolve_measure,  # noqa: F401
                                 uncertainty_scores)
from sampler.vectors import MatrixReader, WorkingSpace, chunks, read_embeddings
from sampler.warnings import SamplerWarning  # noqa: F401 - re-exported
from store.store import Pool

# Candidates read per batch by default: enough to choose well, few enough to stay fast.
DEFAULT_MIN_CANDIDATES = 20_000
DEFAULT_CANDIDATES_PER_PICK = 50
MAX_DEFAULT_CANDIDATES = 100_000


class Embeddings(Protocol):
    """What a strategy needs from an embedding matrix (``store.matrices.MatrixView`` has it)."""

    name: str

    def take(self, clip_ids: np.ndarray | list[int], dtype: Any = np.float32) -> np.ndarray: ...


@dataclass(frozen=True)
class Pick:
    """One selected clip and why: what a reviewer sees next to the clip."""

    clip_id: int
    rank: int  # 1-based position in the batch
    score: float  # the strategy's score for this clip: uncertainty, typicality, distance or objective
    cluster: Optional[int]
    stratum: Optional[str]  # e.g. "site=A|hour=05|species=Turdus merula_Eurasian Blackbird"
    reason: str


@dataclass
class Choice:
    """A pick before ranking: the pool position and why."""

    pos: int
    score: float
    reason: str
    cluster: Optional[int] = None
    stratum: Optional[str] = None


@dataclass
class QueryContext:
    """What one query shares between its steps (and, under ``Stratified``, between strata)."""

    pool: Pool
    reader: MatrixReader
    exclude: np.ndarray  # sorted unique clip ids never to pick
    probabilities: Any
    seed: int
    batch_budget: int  # the whole batch; a stratum's candidate share is scaled from it
    guard: NearDuplicateGuard
    cache: dict = field(default_factory=dict)

    def with_(self, **changes: Any) -> "QueryContext":
        """A copy for a part of the query (same guard and cache)."""
        return replace(self, **changes)

    def _references(self) -> _Growable:
        if "references" not in self.cache:
            ids = self.exclude
            refs = _Growable()
            if self.reader.has_rows:
                ids = ids[self.reader.has(ids)]
                for sl in chunks(ids.size, 65_536):
                    x = self.reader.take(ids[sl])
                    ok = np.isfinite(x).all(axis=1)
                    refs.append(ids[sl][ok], x[ok])
            self.cache["references"] = refs
        return self.cache["references"]

    def excluded_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Clip ids and raw embeddings of the clips to keep away from: the excluded ones that have
        an embedding (read once per query, in chunks) and, under ``Stratified``, those earlier
        strata picked. Memory: (such clips) x dim x 4 bytes; they are the labelled and pending ones.
        """
        refs = self._references()
        return refs.ids, refs.x

    def add_references(self, rows: np.ndarray) -> None:
        """Treat the clips at pool positions ``rows`` like excluded ones from now on (distances,
        near-duplicates): ``Stratified`` calls this after each stratum, so the next stratum's
        strategy keeps away from clips another stratum already picked."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0 or not self.reader.has_rows:
            return
        self._references().append(np.asarray(self.pool.clip_id)[rows], self.embeddings(rows))

    def working_space(self, pca: Optional[int], seed: int, x: np.ndarray) -> tuple[WorkingSpace, np.ndarray]:
        """The space to measure diversity in, and ``x`` in it: the query's shared space when one was
        fitted for this ``pca`` (``Stratified`` fits one on a sample of the whole pool, so every
        stratum measures alike and labelled clips are projected once), else one fitted on ``x``."""
        shared = self.cache.get("space")
        if shared is not None and shared.pca == pca:
            return shared, shared.transform(x)
        space = WorkingSpace(pca, seed=seed)
        return space, space.fit_transform(x)

    def references_in(self, space: WorkingSpace) -> Optional[np.ndarray]:
        """The reference clips (``excluded_vectors``) projected into ``space``; None when there are
        none. For the shared space the projection is kept and extended as references are added."""
        refs = self._references()
        if refs.n == 0:
            return None
        if space is not self.cache.get("space"):
            return space.transform(refs.x)
        done = self.cache.setdefault("projected", _Growable())
        if done.n < refs.n:
            done.append(refs.ids[done.n:], space.transform(refs.x[done.n:]))
        return done.x

    def measure(self, requested: Optional[str], family: str = "entropy") -> str:
        """The uncertainty measure to use: ``requested``, or (None) the one that fits the pool model's outputs.

        A measure that misreads the outputs (binary entropy of softmax outputs, categorical entropy of
        independent sigmoid outputs) is used as asked, with a ``SamplerWarning``. Where the labels hold several
        species per clip (``Pool.multi_label``) sigmoid outputs default to the per-label measure.
        """
        return resolve_measure(requested, output_type_of(self.pool), family, multi_label_of(self.pool))

    def scores(self, rows: np.ndarray, measure: str) -> np.ndarray:
        """Uncertainty of pool positions ``rows``; refuses NaN naming the first clip."""
        s = uncertainty_scores(self.pool, measure, rows, probabilities=self.probabilities)
        check_scores(s, self.pool, rows, measure)
        return s

    def embeddings(self, rows: np.ndarray) -> np.ndarray:
        """Raw embeddings (float32) of pool positions ``rows``."""
        return read_embeddings(self.reader, np.asarray(self.pool.clip_id)[rows])

    def drop_near_excluded(self, rows: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates (pool positions and their embeddings) minus near-duplicates of excluded clips."""
        if not self.guard.active:
            return rows, x
        refs = self._references()
        if refs.n == 0:
            return rows, x
        prepared = self.cache.setdefault("guard_refs", _Growable())  # references in the guard's metric, kept
        if prepared.n < refs.n:
            prepared.append(refs.ids[prepared.n:], self.guard.prepare(refs.x[prepared.n:]))
        keep = ~self.guard.near_excluded(x, prepared.x, prepared=True)
        return rows[keep], x[keep]


class _Growable:
    """Rows appended in place with amortised doubling (ids and vectors), read as views."""

    def __init__(self) -> None:
        self._ids = np.zeros(0, dtype=np.int64)
        self._x: Optional[np.ndarray] = None
        self.n = 0

    def append(self, ids: np.ndarray, x: np.ndarray) -> None:
        k = int(ids.size)
        if k == 0:
            return
        if self._x is None or self.n + k > self._x.shape[0]:
            cap = max(2 * (self._x.shape[0] if self._x is not None else 0), self.n + k, 256)
            grown = np.empty((cap, x.shape[1]), dtype=np.float32)
            grown_ids = np.empty(cap, dtype=np.int64)
            if self.n:
                grown[:self.n] = self._x[:self.n]
                grown_ids[:self.n] = self._ids[:self.n]
            self._x, self._ids = grown, grown_ids
        self._x[self.n:self.n + k] = x
        self._ids[self.n:self.n + k] = ids
        self.n += k

    @property
    def ids(self) -> np.ndarray:
        return self._ids[:self.n]

    @property
    def x(self) -> np.ndarray:
        return self._x[:self.n] if self._x is not None else np.zeros((0, 0), dtype=np.float32)


class QueryStrategy(BaseEstimator):
    """Base of every pool-based batch strategy.

    Subclasses set ``name`` (the key in ``sampler.STRATEGIES`` and in stored runs), store their
    constructor arguments unchanged, validate them in ``_validate_params`` (returning the resolved
    values, ``seed`` included) and select in ``_select``. ``query`` does the shared part: budget,
    exclusions, the near-duplicate guard, ranks, and a warning when the batch comes out short.
    """

    name: ClassVar[str] = ""

    def query(self, pool: Pool, embeddings: Embeddings, budget: int, *, exclude: Iterable[int] = (),
              probabilities: Any = None) -> list[Pick]:
        """Return up to ``budget`` picks from ``pool`` (ranked 1..n), never a clip in ``exclude``."""
        params = self._validate_params()
        budget = check_budget(budget)
        excluded = exclude_ids(exclude)
        avail = available_indices(pool, excluded)
        n_pick = check_available(pool, avail, budget)
        ctx = QueryContext(pool=pool, reader=MatrixReader(embeddings), exclude=excluded,
                           probabilities=probabilities, seed=params.seed, batch_budget=n_pick,
                           guard=self._guard(params))
        choices = self._select(avail, n_pick, ctx, params)
        return to_picks(pool, choices, n_pick, ctx.guard)

    # ---- for subclasses
    def _validate_params(self) -> SimpleNamespace:
        seed = resolve_seed(self.random_state) if hasattr(self, "random_state") else 0
        radius, metric = check_near_duplicate(getattr(self, "near_duplicate_radius", None),
                                              getattr(self, "near_duplicate_metric", "cosine"))
        return SimpleNamespace(seed=seed, radius=radius, metric=metric)

    def _guard(self, params: SimpleNamespace) -> NearDuplicateGuard:
        return NearDuplicateGuard(params.radius, params.metric)

    def _select(self, avail: np.ndarray, n_pick: int, ctx: QueryContext, params: SimpleNamespace) -> list[Choice]:
        """Choose up to ``n_pick`` of the pool positions ``avail``, best first."""
        raise NotImplementedError


def to_picks(pool: Pool, choices: Sequence[Choice], n_pick: int, guard: NearDuplicateGuard) -> list[Pick]:
    """Ranked picks; a short batch (near-duplicates, too few candidates) is a ``SamplerWarning``."""
    ids = np.asarray(pool.clip_id)
    picks = [Pick(clip_id=int(ids[c.pos]), rank=r, score=float(c.score), cluster=c.cluster, stratum=c.stratum,
                  reason=c.reason) for r, c in enumerate(choices, start=1)]
    if len({p.clip_id for p in picks}) != len(picks):  # a bug in a strategy, never the user's fault
        raise RuntimeError("a strategy picked the same clip twice")
    if len(picks) < n_pick:
        why = (f"; {guard.skipped} candidates were near-duplicates (within {guard.radius:g}, {guard.metric}) "
               "of excluded or picked clips") if guard.active and guard.skipped else ""
        warnings.warn(f"picked {len(picks)} of the {n_pick} clips asked for: the strategy ran out of eligible "
                      f"candidates{why}; raise n_candidates or lower near_duplicate_radius",
                      SamplerWarning, stacklevel=3)
    return picks


# --------------------------------------------------------------------------- validation helpers
#: The largest budget accepted: what a 32-bit SQL integer (PostgreSQL's INTEGER) holds.
MAX_BUDGET = 2**31 - 1


def check_budget(budget: Any) -> int:
    """The budget as an int; refuse anything but a positive integer."""
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, numbers.Integral):
        raise ValueError(f"budget must be a positive integer (clips to pick), got {budget!r}")
    if budget <= 0:
        raise ValueError(f"budget must be a positive integer (clips to pick), got {budget}")
    if budget > MAX_BUDGET:
        raise ValueError(f"budget {budget} is beyond any pool: give at most {MAX_BUDGET:,} clips (a budget above "
                         f"the pool's size picks every clip left)")
    return int(budget)


def resolve_seed(random_state: Any) -> int:
    """A concrete int seed (what FAISS takes) from None, an int or a numpy Generator/RandomState.

    None draws a fresh seed from the OS, so a run can still record the seed it actually used.
    """
    if random_state is None:
        return int(np.random.default_rng().integers(0, 2**31 - 1))
    if isinstance(random_state, (bool, np.bool_)):
        raise ValueError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")
    if isinstance(random_state, numbers.Integral):
        if not 0 <= int(random_state) < 2**31:
            raise ValueError(f"random_state must be an int in [0, 2**31), got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise ValueError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")


def check_int(value: Any, name: str, *, minimum: int = 1, allow_none: bool = False, what: str = "") -> Optional[int]:
    """``value`` as an int >= ``minimum`` (or None when allowed), else a ValueError naming it."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        expected = f"{'None or ' if allow_none else ''}an integer >= {minimum}{f' ({what})' if what else ''}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def check_choice(value: Any, name: str, options: Sequence[str]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


# --------------------------------------------------------------------------- pool helpers
def exclude_ids(exclude: Iterable[int]) -> np.ndarray:
    """Excluded clip ids as a sorted unique int64 array (from a set, list or array)."""
    if isinstance(exclude, np.ndarray):
        arr = exclude.astype(np.int64, copy=False).ravel()
    else:
        arr = np.fromiter((int(c) for c in exclude), dtype=np.int64)
    return np.unique(arr)


def available_indices(pool: Pool, exclude: Iterable[int] | np.ndarray) -> np.ndarray:
    """Pool positions of the clips not in ``exclude``."""
    excluded = exclude if isinstance(exclude, np.ndarray) else exclude_ids(exclude)
    if excluded.size == 0:
        return np.arange(len(pool))
    return np.flatnonzero(~np.isin(pool.clip_id, excluded))


def check_available(pool: Pool, available: np.ndarray, budget: int) -> int:
    """How many clips to pick: the budget, or (with a ``SamplerWarning``) all that remain.

    A budget beyond the unlabelled pool is a normal end of an active-learning loop, so it shrinks
    rather than fails (as scikit-activeml does); an empty pool is an error.
    """
    n_excluded = len(pool) - available.size
    if available.size == 0:
        raise ValueError(f"no clips left to sample: the pool under model {pool.model_version.name!r} holds "
                         f"{len(pool)} clips and all {n_excluded} are already selected, pushed or labelled")
    if budget > available.size:
        warnings.warn(f"budget {budget} exceeds the {available.size} clips left in the pool "
                      f"({len(pool)} scored, {n_excluded} already selected, pushed or labelled); "
                      f"picking all {available.size}", SamplerWarning, stacklevel=3)
        return int(available.size)
    return budget


def candidate_count(n_pick: int, n_available: int, batch_budget: int, n_candidates: Optional[int]) -> int:
    """How many candidates to read for ``n_pick`` picks (a stratum's share of the batch's candidates).

    Default for a batch of B: max(50 x B, 20,000), at most 100,000; a stratum gets the share of
    its picks, never fewer candidates than picks.
    """
    total = n_candidates if n_candidates is not None else min(
        max(DEFAULT_CANDIDATES_PER_PICK * batch_budget, DEFAULT_MIN_CANDIDATES), MAX_DEFAULT_CANDIDATES)
    share = math.ceil(total * n_pick / max(batch_budget, 1))
    return int(min(n_available, max(share, n_pick)))


def most_uncertain(scores: np.ndarray, clip_ids: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` highest scores, highest first; ties go to the lower clip id."""
    scores = np.asarray(scores, dtype=np.float64)
    clip_ids = np.asarray(clip_ids, dtype=np.int64)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if n < scores.size:  # sort only the clips at or above the n-th score (ties included), not the pool
        kth = np.partition(scores, scores.size - n)[scores.size - n]
        top = np.flatnonzero(scores >= kth)
    else:
        top = np.arange(scores.size)
    return top[np.lexsort((clip_ids[top], -scores[top]))][:n]


def random_subset(avail: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` of the pool positions ``avail``, a seeded uniform sample in random order."""
    if n >= avail.size:
        return np.random.default_rng(seed).permutation(avail)
    return np.random.default_rng(seed).choice(avail, n, replace=False)


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def pick_candidates(ctx: QueryContext, avail: np.ndarray, n_pick: int, *, mode: str, measure: str,
                    n_candidates: Optional[int], seed: int) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
    """Candidate pool positions, their uncertainty (None for random ones) and raw embeddings.

    ``mode="uncertain"``: the most uncertain, most uncertain first; ``"random"``: a seeded uniform
    sample (cold start, representativeness). Near-duplicates of excluded clips are dropped here.
    Only these rows of the embedding matrix are read.
    """
    m = candidate_count(n_pick, avail.size, ctx.batch_budget, n_candidates)
    if mode == "uncertain":
        scores = ctx.scores(avail, measure)
        top = most_uncertain(scores, np.asarray(ctx.pool.clip_id)[avail], m)
        rows, cand_scores = avail[top], scores[top]
    else:
        rows, cand_scores = random_subset(avail, m, seed), None
    x = ctx.embeddings(rows)
    keep, x = ctx.drop_near_excluded(np.arange(rows.size), x)
    return rows[keep], (None if cand_scores is None else cand_scores[keep]), x


def take_in_order(ctx: QueryContext, rows: np.ndarray, n: int) -> list[int]:
    """The first ``n`` of the pool positions ``rows`` (in preference order) that pass the guard.

    Without a near-duplicate radius no embedding is read; with one, embeddings are read a block at
    a time, only as far down the order as the batch needs.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not ctx.guard.active:
        return rows[:n].tolist()
    ids = np.asarray(ctx.pool.clip_id)
    chosen: list[int] = []
    for sl in chunks(rows.size, max(2 * n, 256)):
        r, x = ctx.drop_near_excluded(rows[sl], ctx.embeddings(rows[sl]))
        for j in range(r.size):
            if ctx.guard.accept(int(ids[r[j]]), x[j]):
                chosen.append(int(r[j]))
                if len(chosen) == n:
                    return chosen
    return chosen
