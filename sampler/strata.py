"""Strata: which group each clip belongs to (site, device, time of day or year, predicted species,
custom columns), and how a batch budget is shared between the groups.

Everything here is vectorised over the pool arrays: a pool of millions of clips is turned into one
integer stratum code per clip (text is only built for the distinct strata), so stratifying a
1,000,000-clip pool costs well under a second.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from sampler.parameters import HEMISPHERES, QUOTA_MODES, STRATA_COLUMNS  # noqa: F401 - declared with the parameters
from store.store import Pool

UNKNOWN = "unknown"

_SEASONS_NORTH = np.array(["winter", "winter", "spring", "spring", "spring", "summer", "summer", "summer",
                           "autumn", "autumn", "autumn", "winter"], dtype=object)  # by month - 1
_SEASONS_SOUTH = np.array(["summer", "summer", "autumn", "autumn", "autumn", "winter", "winter", "winter",
                           "spring", "spring", "spring", "summer"], dtype=object)


# --------------------------------------------------------------------------- validation
def check_custom_columns(custom_columns: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Custom stratum columns as ``{name: (sorted clip ids, values)}``.

    ``custom_columns`` maps a column name to ``{clip_id: value}``; keys may be ints or the strings a
    stored run's JSON turns them into. Clips missing from a column fall in ``"unknown"``.
    """
    if custom_columns is None:
        return {}
    if not isinstance(custom_columns, Mapping):
        raise ValueError(f"custom_columns must be a dict {{column name: {{clip id: value}}}}, got {custom_columns!r}")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, mapping in custom_columns.items():
        if not isinstance(name, str) or not name or "=" in name or "|" in name:
            raise ValueError(f"custom column name must be a non-empty string without '=' or '|', got {name!r}")
        if name in STRATA_COLUMNS:
            raise ValueError(f"custom column {name!r} would hide the built-in stratum column of that name; rename it")
        if isinstance(mapping, tuple) and len(mapping) == 2 and isinstance(mapping[0], np.ndarray):
            out[name] = mapping  # already checked
            continue
        if not isinstance(mapping, Mapping):
            raise ValueError(f"custom column {name!r} must map clip id -> value, got {type(mapping).__name__}")
        try:
            ids = np.array([int(k) for k in mapping.keys()], dtype=np.int64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"custom column {name!r} has a key that is not a clip id: {e}") from e
        values = np.array(["" if v is None else str(v) for v in mapping.values()], dtype=object)
        order = np.argsort(ids, kind="stable")
        ids, values = ids[order], values[order]
        if ids.size and np.any(ids[1:] == ids[:-1]):
            raise ValueError(f"custom column {name!r} lists clip {int(ids[1:][ids[1:] == ids[:-1]][0])} twice")
        out[name] = (ids, values)
    return out


def check_strata(strata: Any, custom_columns: Optional[Mapping[str, Any]] = None) -> tuple[str, ...]:
    """Strata column names as a tuple; refuse unknown names, repeats and a bare string."""
    if isinstance(strata, str):
        raise ValueError(f"strata must be a sequence of column names, got the string {strata!r}; "
                         f"write ({strata!r},)")
    try:
        cols = tuple(strata)
    except TypeError as e:
        raise ValueError(f"strata must be a sequence of column names, got {strata!r}") from e
    custom = set(custom_columns or ())
    for col in cols:
        if col not in STRATA_COLUMNS and col not in custom:
            extra = (f" or a custom column {sorted(custom)}" if custom
                     else " (or a custom column given in custom_columns)")
            raise ValueError(f"unknown stratum column {col!r} in strata={cols!r}; "
                             f"expected some of {sorted(STRATA_COLUMNS)}{extra}")
    if len(set(cols)) != len(cols):
        raise ValueError(f"strata lists a column twice: {cols!r}")
    return cols


def check_hemisphere(hemisphere: Any) -> str:
    if hemisphere not in HEMISPHERES:
        raise ValueError(f"hemisphere must be one of {list(HEMISPHERES)} (for the 'season' column), got {hemisphere!r}")
    return hemisphere


# --------------------------------------------------------------------------- factorising columns
def factorize(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer codes and sorted distinct strings of a string/object array; None and '' become "unknown".

    Vectorised: the strings are hashed as fixed-width code points (no per-row Python), the hashes
    deduplicated with ``np.unique`` and the result checked string by string against a
    representative, with an exact (slower) fallback should two strings ever share a hash.
    """
    values = np.asarray(values)
    n = values.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), []
    if values.dtype == object:
        missing = (values == None) | (values == "")  # noqa: E711 - elementwise on an object array
        s = np.where(missing, UNKNOWN, values).astype(str)
    else:
        s = values.astype(str)
        s = np.where(s == "", UNKNOWN, s)
    width = s.dtype.itemsize // 4
    points = s.view(np.uint32).reshape(n, width)
    mult = np.random.default_rng(12345).integers(1, 2**63, size=width, dtype=np.uint64) | np.uint64(1)
    h = np.empty(n, dtype=np.uint64)
    step = max(1, 4_000_000 // width)
    for i in range(0, n, step):
        h[i:i + step] = (points[i:i + step].astype(np.uint64) * mult).sum(axis=1)  # wraps mod 2**64
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    reps = s[first]
    if not np.array_equal(reps[inverse], s):  # a hash collision: do it exactly
        reps, inverse = np.unique(s, return_inverse=True)
    order = np.argsort(reps, kind="stable")
    remap = np.empty(order.size, dtype=np.int64)
    remap[order] = np.arange(order.size)
    return remap[inverse.ravel()], [str(x) for x in reps[order]]


def _factorize_per_recording(values: np.ndarray, recording_id: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``factorize`` for a column that is constant within a recording (site, device): factorise one
    value per recording, after checking that the column really is constant per recording."""
    rec = np.asarray(recording_id)
    if rec.shape[0] != values.shape[0] or values.shape[0] == 0:
        return factorize(values)
    _, first, inverse = np.unique(rec, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    reps = values[first]
    if not np.array_equal(reps[inverse], values):
        return factorize(values)
    codes, uniques = factorize(reps)
    return codes[inverse], uniques


def _from_pool_codes(codes: np.ndarray, categories: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A string column from the pool's own integer codes (``Pool.codes``): no per-clip string work."""
    cats = np.asarray(categories, dtype=object)
    cats = np.where((cats == None) | (cats == "") | (cats == "None"), UNKNOWN, cats)  # noqa: E711
    cat_codes, values = factorize(cats)
    return cat_codes[np.asarray(codes)[rows]], values


def _time_codes(start_time: np.ndarray, column: str, hemisphere: str) -> tuple[np.ndarray, list[str]]:
    t = np.asarray(start_time).astype("datetime64[s]")
    known = ~np.isnat(t)
    if column == "hour":
        raw = np.where(known, t.astype("datetime64[h]").astype(np.int64) % 24, -1)
        names = {h: f"{h:02d}" for h in range(24)}
    else:
        month = np.where(known, t.astype("datetime64[M]").astype(np.int64) % 12, -1)  # 0 = January
        if column == "month":
            raw = month
            names = {m: f"{m + 1:02d}" for m in range(12)}
        else:
            table = _SEASONS_NORTH if hemisphere == "north" else _SEASONS_SOUTH
            season_order = ["winter", "spring", "summer", "autumn"]
            idx = np.array([season_order.index(s) for s in table], dtype=np.int64)
            raw = np.where(known, idx[np.maximum(month, 0)], -1)
            names = dict(enumerate(season_order))
    present = np.unique(raw)
    labels = [names[int(v)] if v >= 0 else UNKNOWN for v in present]
    order = np.argsort(labels, kind="stable")
    remap = np.empty(present.size, dtype=np.int64)
    remap[order] = np.arange(present.size)
    codes = remap[np.searchsorted(present, raw)]
    return codes, [labels[i] for i in order]


def _custom_codes(pool: Pool, rows: np.ndarray, ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    clip_ids = np.asarray(pool.clip_id)[rows]
    col = np.full(clip_ids.size, "", dtype=object)
    if ids.size:
        pos = np.minimum(np.searchsorted(ids, clip_ids), ids.size - 1)
        hit = ids[pos] == clip_ids
        col[hit] = values[pos[hit]]
    return factorize(col)


def _column_codes(pool: Pool, column: str, rows: Optional[np.ndarray],
                  custom: Mapping[str, tuple[np.ndarray, np.ndarray]], hemisphere: str) -> tuple[np.ndarray, list[str]]:
    rows = np.arange(len(pool)) if rows is None else np.asarray(rows, dtype=np.int64)
    if column in ("site", "device", "species"):
        attr = "top_label" if column == "species" else column
        if callable(getattr(pool, "codes", None)):
            return _from_pool_codes(*pool.codes(attr), rows)
        if column == "species":
            return factorize(np.asarray(pool.top_label)[rows])
        return _factorize_per_recording(np.asarray(getattr(pool, column))[rows], np.asarray(pool.recording_id)[rows])
    if column in ("hour", "month", "season"):
        return _time_codes(np.asarray(pool.start_time)[rows], column, hemisphere)
    if column in custom:
        return _custom_codes(pool, rows, *custom[column])
    raise ValueError(f"unknown stratum column {column!r}; expected one of {sorted(STRATA_COLUMNS)} "
                     f"or a custom column {sorted(custom)}")


class StratumKeys(Sequence[str]):
    """The keys of the strata present, built on demand: ``keys[s]`` reads ``"site=A|hour=05|species=X"``.

    A pool can hold 100,000 site x hour x species combinations; only the strata a reason mentions
    are ever turned into text. ``column_values(col)`` gives one column's value for every stratum.
    """

    def __init__(self, columns: Sequence[str], values: Sequence[Sequence[str]], parts: Sequence[np.ndarray]):
        self.columns = tuple(columns)
        self._values = [np.asarray(v, dtype=object) for v in values]
        self._parts = list(parts)
        self._n = int(parts[0].size) if parts else 1

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, s):  # type: ignore[override]
        if isinstance(s, slice):
            return [self[i] for i in range(*s.indices(self._n))]
        s = int(s)
        if not -self._n <= s < self._n:
            raise IndexError(f"stratum {s} out of range ({self._n} strata)")
        if not self.columns:
            return "all"
        return "|".join(f"{c}={v[p[s]]}" for c, v, p in zip(self.columns, self._values, self._parts))

    def column_values(self, column: str) -> np.ndarray:
        """Value of ``column`` for every stratum (object array)."""
        j = self.columns.index(column)
        return self._values[j][self._parts[j]]

    def __repr__(self) -> str:
        return f"StratumKeys({len(self)} strata over {self.columns})"


def stratum_codes(pool: Pool, columns: Sequence[str], rows: Optional[np.ndarray] = None, *,
                  custom_columns: Optional[Mapping[str, Any]] = None,
                  hemisphere: str = "north") -> tuple[np.ndarray, StratumKeys]:
    """Each clip's stratum as an integer code (per row in ``rows``) and the strata's keys.

    Keys read ``"site=A|hour=05|species=X"`` (``"all"`` when no columns are given) and are in
    sorted order of the column values, so code 0 is the first stratum.
    """
    n = len(pool) if rows is None else len(rows)
    if not columns:
        return np.zeros(n, dtype=np.int64), StratumKeys((), (), ())
    custom = check_custom_columns(custom_columns)
    combined = np.zeros(n, dtype=np.int64)
    per_column: list[list[str]] = []
    for col in columns:
        codes, values = _column_codes(pool, col, rows, custom, hemisphere)
        combined = combined * max(len(values), 1) + codes
        per_column.append(values)
    present, inverse = np.unique(combined, return_inverse=True)
    parts = []
    rest = present
    for values in reversed(per_column):
        rest, part = np.divmod(rest, max(len(values), 1))
        parts.append(part)
    return inverse.ravel().astype(np.int64), StratumKeys(columns, per_column, parts[::-1])


def stratum_keys(pool: Pool, columns: Sequence[str], rows: Optional[np.ndarray] = None, *,
                 custom_columns: Optional[Mapping[str, Any]] = None, hemisphere: str = "north") -> np.ndarray:
    """Each clip's stratum key as text (object array), e.g. ``"site=A|hour=05|species=X"``."""
    codes, keys = stratum_codes(pool, columns, rows, custom_columns=custom_columns, hemisphere=hemisphere)
    if codes.size == 0:
        return np.zeros(0, dtype=object)
    present, inverse = np.unique(codes, return_inverse=True)
    return np.array([keys[int(s)] for s in present], dtype=object)[inverse.ravel()]


# --------------------------------------------------------------------------- quotas
def check_quotas(quotas: Any, columns: Sequence[str]) -> str | dict[str, float]:
    """``"equal"``, ``"proportional"`` or ``{stratum condition: weight}``; refuse anything else.

    A condition names some of the stratum columns (``"site=A"`` or ``"site=A|hour=05"``); a
    stratum's weight is the product of the weights of every condition it matches, 1 when none.
    """
    if isinstance(quotas, str):
        if quotas not in QUOTA_MODES:
            raise ValueError(f"quotas must be one of {list(QUOTA_MODES)} or a dict {{stratum: weight}}, got {quotas!r}")
        return quotas
    if not isinstance(quotas, Mapping) or not quotas:
        raise ValueError(f"quotas must be one of {list(QUOTA_MODES)} or a non-empty dict {{stratum: weight}}, "
                         f"got {quotas!r}")
    out: dict[str, float] = {}
    for key, weight in quotas.items():
        conds = _parse_condition(key, columns)
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"quota weight of {key!r} must be a finite number >= 0, got {weight!r}")
        out["|".join(f"{c}={v}" for c, v in conds)] = float(weight)
    return out


def _parse_condition(key: Any, columns: Sequence[str]) -> list[tuple[str, str]]:
    if not isinstance(key, str) or not key:
        raise ValueError(f"quota key must be text like 'site=A' or 'site=A|hour=05', got {key!r}")
    conds = []
    for part in key.split("|"):
        col, sep, value = part.partition("=")
        if not sep or col not in columns:
            raise ValueError(f"quota key {key!r} must name stratum columns of strata={tuple(columns)!r} "
                             f"as 'column=value' joined by '|'")
        conds.append((col, value))
    return conds


def stratum_weights(keys: StratumKeys, quotas: str | Mapping[str, float], capacity: np.ndarray,
                    columns: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Weight of each stratum under ``quotas`` and the weight keys that matched no stratum."""
    capacity = np.asarray(capacity, dtype=np.float64)
    if quotas == "equal":
        return np.ones(len(keys)), []
    if quotas == "proportional":
        return capacity.copy(), []
    w = np.ones(len(keys))
    unused = []
    for wk, weight in quotas.items():
        match = np.ones(len(keys), dtype=bool)
        for col, value in _parse_condition(wk, columns):
            match &= keys.column_values(col) == value
        if match.any():
            w[match] *= weight
        else:
            unused.append(wk)
    return w, unused


def _priority_rank(k: int, priority: Optional[Sequence[int]]) -> np.ndarray:
    order = np.arange(k) if priority is None else np.asarray(priority, dtype=np.int64)
    if sorted(order.tolist()) != list(range(k)):
        raise ValueError("priority must list every stratum index exactly once")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank


def _check_allocation(cap: np.ndarray, budget: int, weights: Any, minimum: int) -> np.ndarray:
    k = cap.size
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (k,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be {k} finite numbers >= 0, one per stratum")
    if budget < 0 or minimum < 0:
        raise ValueError(f"budget and minimum must be >= 0, got budget={budget}, minimum={minimum}")
    return w


def quota_shares(capacity: Sequence[int] | np.ndarray, budget: int, *,
                 weights: Optional[Sequence[float] | np.ndarray] = None, minimum: int = 0) -> np.ndarray:
    """Each stratum's share of the batch before rounding: ``clip(level x weight, min, capacity)``.

    The level is the one water-filling settles at (see ``allocate_quotas``); the shares sum to
    ``min(budget, clips in weighted strata)``. Fractional shares (a batch smaller than the number
    of strata) favour no stratum, which is what a balance term wants.
    """
    cap = np.asarray(capacity, dtype=np.int64)
    w = _check_allocation(cap, int(budget), weights, int(minimum))
    eligible = (w > 0) & (cap > 0)
    cap_e = np.where(eligible, cap, 0).astype(np.float64)
    total = float(min(int(budget), int(cap_e.sum())))
    lo = np.where(eligible, np.minimum(cap_e, int(minimum)), 0.0)
    if total == 0:
        return np.zeros(cap.size)
    if lo.sum() >= total:
        return lo * (total / lo.sum())
    w_e = np.where(eligible, w, 0.0)
    low, high = 0.0, float(np.max(cap_e[eligible] / w_e[eligible]))
    for _ in range(200):  # bisection on the water level; the filled total is non-decreasing in it
        mid = (low + high) / 2
        if np.clip(mid * w_e, lo, cap_e).sum() < total:
            low = mid
        else:
            high = mid
    return np.clip(high * w_e, lo, cap_e)


def allocate_quotas(capacity: Sequence[int] | np.ndarray, budget: int, *,
                    weights: Optional[Sequence[float] | np.ndarray] = None, minimum: int = 0,
                    priority: Optional[Sequence[int]] = None) -> np.ndarray:
    """How many clips each stratum gets: ``clip(level x weight, min, capacity)`` summing to the budget.

    Water-filling: the common level rises until the batch is full, so a stratum with too few clips
    keeps all it has and the rest of its share goes to the others (graceful degradation); rounding
    follows the largest remainder, ties in ``priority`` order (default: stratum index). A stratum
    with weight 0 gets nothing. ``minimum`` is honoured first; when the budget cannot give every
    stratum its minimum, the rarest strata (fewest clips) get theirs first — the long tail of rare
    predicted species is what a minimum is for. The total is ``min(budget, clips in weighted strata)``.
    """
    cap = np.asarray(capacity, dtype=np.int64)
    k = cap.size
    w = _check_allocation(cap, int(budget), weights, int(minimum))
    rank = _priority_rank(k, priority)
    eligible = (w > 0) & (cap > 0)
    cap_e = np.where(eligible, cap, 0)
    total = int(min(int(budget), int(cap_e.sum())))
    lo = np.where(eligible, np.minimum(cap_e, int(minimum)), 0)
    q = np.zeros(k, dtype=np.int64)
    if total == 0:
        return q
    if lo.sum() >= total:  # minimums alone fill the batch: rarest strata first, one clip a round
        by_rarity = sorted(np.flatnonzero(lo > 0).tolist(), key=lambda s: (cap[s], rank[s]))
        left, r = total, 0
        while left > 0:
            r += 1
            for s in by_rarity:
                if lo[s] >= r and left > 0:
                    q[s] += 1
                    left -= 1
        return q
    x = quota_shares(cap, total, weights=w, minimum=int(minimum))
    q = np.clip(np.floor(x + 1e-9).astype(np.int64), lo, cap_e)
    frac = x - q
    while q.sum() < total:  # largest remainders first, ties by priority
        open_ = np.flatnonzero(q < cap_e)
        give = open_[np.lexsort((rank[open_], -frac[open_]))][:total - int(q.sum())]
        q[give] += 1
        frac[give] -= 1.0
    while q.sum() > total:  # only from float round-off: take back from the smallest remainders
        over = np.flatnonzero(q > lo)
        s = min(over.tolist(), key=lambda s: (frac[s], -rank[s]))
        q[s] -= 1
        frac[s] += 1.0
    return q
