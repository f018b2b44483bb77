"""Uncertainty measures: how unsure the model is about a clip (higher = more uncertain, all in [0, 1]).

``max_entropy``          max over classes of the binary entropy (bits): BirdNET is multi-label, one
                         sigmoid per class (TABMON's measure)
``mean_entropy``         mean over classes of the binary entropy
``margin``               1 - (top-1 minus top-2 probability)
``least_confidence``     1 - top-1 probability
``ratio``                top-2 / top-1 probability
``categorical_entropy``  entropy of the row normalised to sum 1, divided by log(classes): for
                         single-label, softmax-style models (an image classifier)

The first five are read from the pool's score arrays (the store computed them from the model's
probabilities at scoring time), so they cost nothing per clip. ``categorical_entropy`` needs the
full probability rows: it is computed from the model's memory-mapped probability matrix in chunks
of rows, never the whole matrix at once. ``uncertainty_from_matrix`` computes any measure that way,
for any model version whose matrix the store holds.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, Optional

import numpy as np

from sampler.parameters import UNCERTAINTY_MEASURES  # noqa: F401 - declared with the strategy parameters
from store.probability import OutputType, binary_entropy, categorical_entropy, top_two
from store.store import Pool

UncertaintyMeasure = Literal["max_entropy", "mean_entropy", "margin", "least_confidence", "ratio",
                             "categorical_entropy"]

# Measures the pool's score arrays already hold; the rest need the probability matrix.
POOL_MEASURES = ("max_entropy", "mean_entropy", "margin", "least_confidence", "ratio")

#: How a model's probabilities are to be read (``store.probability.OutputType``).
OUTPUT_TYPES = tuple(t.value for t in OutputType)
#: The measures that read each output type as it is meant (the top-1/top-2 ones read both).
FITTING_MEASURES: dict[str, tuple[str, ...]] = {
    "sigmoid": ("max_entropy", "mean_entropy", "margin", "least_confidence", "ratio"),
    "softmax": ("categorical_entropy", "margin", "least_confidence", "ratio"),
}
#: A strategy's default measure, by its family and the model's output type. For sigmoid outputs the margin
#: (top-1 minus top-2) wins: on the label-efficiency benchmark (bench/label_efficiency.py, README "Which
#: strategy?") max binary entropy picked clips whose top class sat near 0.5, mostly of common classes the
#: head already knew, and fell below random; the margin of the same strategies beat random on every set.
#: Softmax outputs read as one distribution: categorical entropy, or the margin.
DEFAULT_MEASURES: dict[tuple[str, str], str] = {
    ("entropy", "sigmoid"): "margin", ("entropy", "softmax"): "categorical_entropy",
    ("margin", "sigmoid"): "margin", ("margin", "softmax"): "margin",
}
#: Where the labels themselves say clips hold several species (``Pool.multi_label``), sigmoid outputs are read
#: per class: is each label on or off? The margin is near 0 both where two species are confidently present
#: (0.97 / 0.97) and where none is (0.05 / 0.05), so on multi-species soundscapes it picked such windows and
#: fell below random; the mean binary entropy over the classes (the expected per-label uncertainty) beat
#: random there (bench/label_efficiency.py, set soundscape-multi; README "Which strategy?").
MULTI_LABEL_MEASURE = "mean_entropy"
#: Share of labelled clips holding two or more species from which a pool counts as multi-label.
MULTI_LABEL_SHARE = 0.05


def check_measure(measure: Any, parameter: str = "uncertainty", allow_none: bool = False) -> Optional[str]:
    if measure is None and allow_none:
        return None
    if measure not in UNCERTAINTY_MEASURES:
        raise ValueError(f"{parameter} must be one of {sorted(UNCERTAINTY_MEASURES)}"
                         f"{' or None (the one that fits the model)' if allow_none else ''}, got {measure!r}")
    return measure


def output_type_of(pool: Any) -> str:
    """The output type of the model that scored ``pool`` (sigmoid when it does not say)."""
    value = getattr(getattr(pool, "model_version", None), "output_type", None) or "sigmoid"
    return value if value in OUTPUT_TYPES else "sigmoid"


def multi_label_of(pool: Any) -> bool:
    """Whether the pool's labels hold several species per clip (``Pool.multi_label``; unknown: no)."""
    return bool(getattr(pool, "multi_label", None))


def is_multi_label(label_lists: Any) -> Optional[bool]:
    """From the labels experts gave (one list per clip): do at least ``MULTI_LABEL_SHARE`` of the clips carry
    two or more? None without labels."""
    counts = [len(row) for row in label_lists]
    if not counts:
        return None
    return sum(c >= 2 for c in counts) >= MULTI_LABEL_SHARE * len(counts)


def resolve_measure(measure: Optional[str], output_type: str, family: str = "entropy",
                    multi_label: bool = False) -> str:
    """``measure``, or the default of ``family`` for ``output_type`` (and, for sigmoid outputs, for labels that
    hold several species per clip); warns when ``measure`` misreads the outputs."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {list(OUTPUT_TYPES)}, got {output_type!r}")
    if measure is None:
        if multi_label and output_type == OutputType.SIGMOID:
            return MULTI_LABEL_MEASURE
        return DEFAULT_MEASURES[(family, output_type)]
    check_measure(measure)
    if measure not in FITTING_MEASURES[output_type]:
        from sampler.warnings import SamplerWarning

        fits = ", ".join(FITTING_MEASURES[output_type])
        warnings.warn(f"uncertainty {measure!r} does not fit {output_type} outputs ("
                      f"{'one distribution over classes per clip' if output_type == 'softmax' else 'independent per-class probabilities'}): "
                      f"it misreads them; measures that fit: {fits} (or leave the measure unset)",
                      SamplerWarning, stacklevel=4)
    return measure


def uncertainty_from_probabilities(probabilities: np.ndarray, measure: str) -> np.ndarray:
    """``measure`` of each row of a (rows x classes) probability array, as float64."""
    check_measure(measure, "measure")
    p = np.asarray(probabilities, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] == 0:
        raise ValueError(f"probabilities must be a 2-d array with at least one class, got shape {p.shape}")
    bad = ~np.isfinite(p).all(axis=1)
    if bad.any():
        raise ValueError(f"probabilities contain NaN or infinite values in {int(bad.sum())} rows "
                         f"(first: row {int(np.flatnonzero(bad)[0])})")
    if measure in ("max_entropy", "mean_entropy"):
        ent = binary_entropy(p)
        return ent.max(axis=1) if measure == "max_entropy" else ent.mean(axis=1)
    if measure == "categorical_entropy":
        return categorical_entropy(p)
    return _from_top2(*top_two(p), measure)


def _from_top2(top1: np.ndarray, margin: np.ndarray, measure: str) -> np.ndarray:
    if measure == "margin":
        return 1.0 - margin
    if measure == "least_confidence":
        return 1.0 - top1
    # ratio: top-2 / top-1; a row with top-1 = 0 says nothing, so it counts as maximally uncertain
    top2 = top1 - margin
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(top1 > 0, top2 / np.where(top1 > 0, top1, 1.0), 1.0)
    return np.where(np.isnan(top1) | np.isnan(margin), np.nan, np.clip(r, 0.0, 1.0))


def uncertainty_from_matrix(matrix: Any, clip_ids: np.ndarray, measure: str, *,
                            chunk_rows: int = 4096) -> np.ndarray:
    """``measure`` for ``clip_ids`` from a probability matrix (``MatrixView`` or ``MatrixReader``).

    Rows are read ``chunk_rows`` at a time, in row order (sequential on disk), so memory stays at
    one chunk of probabilities whatever the pool size. Raises KeyError naming a clip with no row.
    """
    from sampler.vectors import MatrixReader

    reader = matrix if isinstance(matrix, MatrixReader) else MatrixReader(matrix)
    clip_ids = np.asarray(clip_ids, dtype=np.int64)
    out = np.empty(clip_ids.size, dtype=np.float64)
    if clip_ids.size == 0:
        return out
    rows = reader.rows_for(clip_ids) if reader.has_rows else np.arange(clip_ids.size)
    order = np.argsort(rows, kind="stable")
    for i in range(0, order.size, chunk_rows):
        sel = order[i:i + chunk_rows]
        p = reader.rows(rows[sel]) if reader.has_rows else reader.take(clip_ids[sel])
        bad = ~np.isfinite(p).all(axis=1)
        if bad.any():
            raise ValueError(f"probabilities of clip {int(clip_ids[sel][bad][0])} in matrix {reader.name!r} contain "
                             f"NaN or infinite values ({int(bad.sum())} such clips in this chunk); re-score them "
                             "before sampling")
        out[sel] = uncertainty_from_probabilities(p, measure)
    return out


def uncertainty_scores(pool: Pool, measure: str, rows: Optional[np.ndarray] = None, *,
                       probabilities: Any = None) -> np.ndarray:
    """Per-clip uncertainty under ``measure`` for pool positions ``rows`` (default all), as float64.

    Pool measures are vectorised over the pool's score arrays; ``categorical_entropy`` reads
    ``probabilities`` (the pool model's probability matrix) in chunks and refuses to run without it.
    NaN is returned where the pool holds no score (a pool built from metadata only).

    A partial window (a recording's zero-padded last 3 s, ``Pool.content`` < 1) counts for the share of it
    that holds audio: the model is unsure of padding as much as of calls, and an expert's label of 1 s of
    audio says a third of what a full window's says. On the shared labelled recordings (a quarter of the
    windows partial) the default's picks were 52 % partial windows unweighted, about the pool's share weighted.
    """
    raw = _unweighted_scores(pool, measure, rows, probabilities=probabilities)
    content = getattr(pool, "content", None)
    if content is None:
        return raw
    return raw * (np.asarray(content, dtype=np.float64) if rows is None else np.asarray(content, dtype=np.float64)[rows])


def partial_share(pool: Pool, positions: np.ndarray) -> Optional[float]:
    """Share of the given pool positions that are partial (zero-padded) windows; None when unknown."""
    content = getattr(pool, "content", None)
    if content is None or not len(positions):
        return None
    return float((np.asarray(content)[np.asarray(positions, dtype=np.int64)] < 0.999).mean())


def _unweighted_scores(pool: Pool, measure: str, rows: Optional[np.ndarray] = None, *,
                       probabilities: Any = None) -> np.ndarray:
    check_measure(measure, "uncertainty")
    take = (lambda a: np.asarray(a, dtype=np.float64)) if rows is None else \
        (lambda a: np.asarray(a, dtype=np.float64)[rows])
    if measure == "max_entropy":
        return take(pool.max_entropy)
    if measure == "mean_entropy":
        return take(pool.mean_entropy)
    if measure in ("margin", "least_confidence", "ratio"):
        return _from_top2(take(pool.top1), take(pool.margin), measure)
    if probabilities is None:
        raise ValueError(f"uncertainty {measure!r} needs the model's full probability rows: pass "
                         f"probabilities=store.probabilities(model) to query (sampler.sample does), "
                         f"or use one of {list(POOL_MEASURES)}")
    ids = np.asarray(pool.clip_id) if rows is None else np.asarray(pool.clip_id)[rows]
    try:
        return uncertainty_from_matrix(probabilities, ids, measure)
    except KeyError as e:
        raise ValueError(f"probabilities missing for uncertainty {measure!r}: {e.args[0] if e.args else e}") from e


def check_scores(scores: np.ndarray, pool: Pool, rows: np.ndarray, measure: str) -> None:
    """Refuse NaN scores, naming how many clips and the first one (a half-scored pool must not be sampled)."""
    bad = np.flatnonzero(np.isnan(scores))
    if bad.size:
        first = int(np.asarray(pool.clip_id)[rows[bad[0]]])
        raise ValueError(f"uncertainty {measure!r} is NaN for {bad.size} clips (first: clip {first}) under model "
                         f"{pool.model_version.name!r}; re-score them before sampling (or, with no model "
                         f"scores at all, use the 'cold_start' strategy)")
