"""What every sampling strategy shares: the ``Pick`` record, the strategy base class and pool helpers.

A strategy follows scikit-activeml's shape: the constructor stores parameters only, ``query`` validates
them and the inputs, then selects. Parameters come back with ``get_params()`` (scikit-learn's
``BaseEstimator``), so a stored run can rebuild its strategy with ``STRATEGIES[run.strategy](**run.params)``.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Optional, Protocol, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from store.store import Pool

# Pool columns a batch can be stratified over; "species" is the model's top predicted label.
STRATA_COLUMNS: dict[str, str] = {
    "site": "recording site",
    "device": "recorder",
    "hour": "hour of day of the clip start (local time at the site)",
    "species": "top predicted label under the pool's model version",
}

# Uncertainty measures (higher = more uncertain) and how a reason sentence names them.
UNCERTAINTY_MEASURES: dict[str, str] = {
    "max_entropy": "max binary entropy",
    "mean_entropy": "mean binary entropy",
    "margin": "1 - margin (top-1 minus top-2 probability)",
    "least_confidence": "1 - top-1 probability",
}

UNKNOWN = "unknown"


class SamplerWarning(UserWarning):
    """A request the sampler adjusted rather than refused (e.g. a budget larger than the pool)."""


class Embeddings(Protocol):
    """What a strategy needs from an embedding matrix (``store.matrices.MatrixView`` has it)."""

    name: str

    def take(self, clip_ids: np.ndarray | list[int], dtype: Any = np.float32) -> np.ndarray: ...


@dataclass(frozen=True)
class Pick:
    """One selected clip and why: what a reviewer sees next to the clip."""

    clip_id: int
    rank: int  # 1-based position in the batch
    score: float  # the strategy's uncertainty for this clip (higher = more uncertain)
    cluster: Optional[int]
    stratum: Optional[str]  # e.g. "site=A|hour=05|species=Turdus merula_Eurasian Blackbird"
    reason: str


class QueryStrategy(BaseEstimator):
    """Base of every pool-based batch strategy.

    Subclasses set ``name`` (the key in ``sampler.STRATEGIES`` and in stored runs), store their
    constructor arguments unchanged and implement ``query``.
    """

    name: ClassVar[str] = ""

    def query(self, pool: Pool, embeddings: Embeddings, budget: int, *,
              exclude: Iterable[int] = ()) -> list[Pick]:
        """Return up to ``budget`` picks from ``pool`` (ranked 1..n), never a clip in ``exclude``."""
        raise NotImplementedError


# --------------------------------------------------------------------------- validation helpers
def check_budget(budget: Any) -> int:
    """The budget as an int; refuse anything but a positive integer."""
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, numbers.Integral):
        raise ValueError(f"budget must be a positive integer (clips to pick), got {budget!r}")
    if budget <= 0:
        raise ValueError(f"budget must be a positive integer (clips to pick), got {budget}")
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


def check_strata(strata: Any) -> tuple[str, ...]:
    """Strata column names as a tuple; refuse unknown names, repeats and a bare string."""
    if isinstance(strata, str):
        raise ValueError(f"strata must be a sequence of column names, got the string {strata!r}; "
                         f"write ({strata!r},)")
    try:
        cols = tuple(strata)
    except TypeError as e:
        raise ValueError(f"strata must be a sequence of column names, got {strata!r}") from e
    for col in cols:
        if col not in STRATA_COLUMNS:
            raise ValueError(f"unknown stratum column {col!r} in strata={cols!r}; "
                             f"expected some of {sorted(STRATA_COLUMNS)}")
    if len(set(cols)) != len(cols):
        raise ValueError(f"strata lists a column twice: {cols!r}")
    return cols


# --------------------------------------------------------------------------- pool helpers
def uncertainty_scores(pool: Pool, measure: str) -> np.ndarray:
    """Per-clip uncertainty under ``measure`` (higher = more uncertain), as float64."""
    if measure == "max_entropy":
        return np.asarray(pool.max_entropy, dtype=np.float64)
    if measure == "mean_entropy":
        return np.asarray(pool.mean_entropy, dtype=np.float64)
    if measure == "margin":
        return 1.0 - np.asarray(pool.margin, dtype=np.float64)
    if measure == "least_confidence":
        return 1.0 - np.asarray(pool.top1, dtype=np.float64)
    raise ValueError(f"unknown uncertainty measure {measure!r}; expected one of {sorted(UNCERTAINTY_MEASURES)}")


def stratum_column(pool: Pool, column: str, rows: Optional[np.ndarray] = None) -> np.ndarray:
    """One stratum column as strings (object array) for ``rows`` (default all); missing -> ``"unknown"``."""
    take = (lambda a: a) if rows is None else (lambda a: np.asarray(a)[rows])
    if column == "site":
        values = [str(x) if x else UNKNOWN for x in take(pool.site)]
    elif column == "device":
        values = [str(x) if x else UNKNOWN for x in take(pool.device)]
    elif column == "hour":
        hours = take(pool.start_time).astype("datetime64[h]")
        values = [UNKNOWN if np.isnat(h) else f"{int(h.astype(np.int64)) % 24:02d}" for h in hours]
    elif column == "species":
        values = [str(x) if x else UNKNOWN for x in take(pool.top_label)]
    else:
        raise ValueError(f"unknown stratum column {column!r}; expected one of {sorted(STRATA_COLUMNS)}")
    return np.array(values, dtype=object)


def stratum_keys(pool: Pool, columns: Sequence[str], rows: Optional[np.ndarray] = None) -> np.ndarray:
    """Each clip's stratum as ``"site=A|hour=05|species=X"`` (``"all"`` when no columns are given).

    ``rows`` restricts the work to some pool positions (a sampler only needs its candidates).
    """
    n = len(pool) if rows is None else len(rows)
    if not columns:
        return np.full(n, "all", dtype=object)
    cols = [stratum_column(pool, c, rows) for c in columns]
    return np.array(["|".join(f"{name}={col[i]}" for name, col in zip(columns, cols)) for i in range(n)],
                    dtype=object)


def available_indices(pool: Pool, exclude: Iterable[int]) -> np.ndarray:
    """Pool positions of the clips not in ``exclude``."""
    excluded = np.fromiter((int(c) for c in exclude), dtype=np.int64)
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


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
