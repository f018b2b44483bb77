"""Auto-validation with a stated guarantee: per species, the lowest score threshold whose precision is at least
the target with the given confidence, learnt from audit labels (Learn-then-Test).

For each threshold t of a fixed grid the null hypothesis "precision of detections at >= t is below the target"
gets a binary Hoeffding-Bentkus p-value (MAPIE's ``compute_hoeffding_bentkus_p_value`` on the share of wrong
detections), and MAPIE's ``control_fwer`` (Bonferroni-Holm by default) rejects a set of thresholds with
family-wise error at most delta = 1 - confidence: with probability >= confidence over the audit draw, every
threshold returned has pool precision >= target (Angelopoulos et al. 2021, as MAPIE's
``BinaryClassificationController(risk="precision")`` does; for uniform audit labels the two give the same
thresholds, which a test checks). Audit labels drawn in score bins at unequal rates are first thinned to equal
inclusion within the bins a threshold can reach (``audit_labels.thin``), so every p-value sees a uniform random
sample of the pool's detections. A species without such a threshold cannot be auto-validated yet; the result
says how many more audit labels would likely let it be, or that more labels will not help at the current
precision.

An audit clip whose experts split evenly (not adjudicated) stays in the sample, and a detection of a species
only some of them named counts as wrong: dropping such clips would leave out the hard ones, where detections
are wrong more often, and overstate precision; counted as wrong, the bound holds whatever the adjudication.

Detections of a species the range model calls absent at the clip's site-week (``store.ranges``) are never
auto-validated, and the thresholds are learnt on the detections that can be.

The guarantee holds for the model the labels did not train: ``finetune`` keeps audit labels out of a head's
training for this reason, but fits its calibration on them. So for a Platt-calibrated (sigmoid) head the grid is
the uncalibrated head's: its thresholds t, fixed before any audit label was seen, become a(logit t) + b on the
calibrated scale (``calibrated_grids``), where the detections are the same clips; the map being learnt from the
audit labels then changes nothing the test relies on. (A temperature-scaled softmax head has no such per-class
map: its thresholds are taken on the calibrated scores, a small data dependence the bound does not cover.)
Thresholds are per species, so the guarantee is too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Sequence

import numpy as np

from finetune.audit_labels import AuditLabels, audit_labels, label_truth, model_scores, relevant_strata, thin
from finetune.calibration import reliability
from store.schema import ModelVersion
from store.store import Store

DEFAULT_GRID = tuple(round(x, 3) for x in np.r_[np.arange(0.05, 0.951, 0.05), 0.975, 0.99])
FWER_METHODS = ("bonferroni_holm", "bonferroni", "fixed_sequence")


class ValidationError(Exception):
    """Auto-validation cannot run: no audit labels, or a setting out of range."""


@dataclass(frozen=True)
class SpeciesThreshold:
    """The auto-validation decision for one species."""

    label: str
    threshold: Optional[float]  # None: cannot be auto-validated yet
    n_audit: int  # audit labels (after thinning) behind the decision
    n_detections: int  # audit detections at the threshold (or at the best candidate when none)
    n_positive: int  # audit clips carrying the species
    precision: Optional[float]  # empirical precision at the threshold (or best candidate)
    p_value: Optional[float]
    more_labels: Optional[int]  # estimated extra audit labels for a threshold to pass (None: will not help)
    note: str

    @property
    def validated(self) -> bool:
        return self.threshold is not None


@dataclass(frozen=True)
class Validation:
    """Thresholds of one model version; ``thresholds`` is what exports and status read."""

    model_version: str
    target_precision: float
    confidence: float
    fwer_method: str
    n_audit: int
    species: list[SpeciesThreshold]
    left_out: dict[str, int]
    out_of_range: dict[str, int] = field(default_factory=dict)  # species -> audit detections cleared by range
    reliability: dict[str, dict] = field(default_factory=dict)  # species -> ECE, n and bins on the audit labels
    disputed: int = 0  # audit labels whose experts split: a detection of a species in dispute counts as wrong

    @property
    def thresholds(self) -> dict[str, float]:
        return {s.label: s.threshold for s in self.species if s.threshold is not None}

    def as_metrics(self) -> dict:
        return {"target_precision": self.target_precision, "confidence": self.confidence,
                "fwer_method": self.fwer_method, "n_audit": self.n_audit, "thresholds": self.thresholds,
                "species": [asdict(s) for s in self.species], "left_out": dict(self.left_out),
                "out_of_range": dict(self.out_of_range), "reliability": dict(self.reliability),
                "disputed": self.disputed,
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _check(target_precision: float, confidence: float, grid: Sequence[float], fwer_method: str) -> np.ndarray:
    if not 0.0 < float(target_precision) < 1.0:
        raise ValidationError(f"--target-precision must be between 0 and 1 (e.g. 0.95), got {target_precision!r}")
    if not 0.0 < float(confidence) < 1.0:
        raise ValidationError(f"--confidence must be between 0 and 1 (e.g. 0.9), got {confidence!r}")
    if fwer_method not in FWER_METHODS:
        raise ValidationError(f"fwer_method must be one of {', '.join(FWER_METHODS)}, got {fwer_method!r}")
    g = np.asarray(sorted({float(x) for x in grid}), dtype=np.float64)
    if g.size == 0 or g[0] <= 0.0 or g[-1] >= 1.0:
        raise ValidationError(f"the threshold grid must hold values within (0, 1), got {list(grid)!r}")
    return g


def _p_values(wrong: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """Binary Hoeffding-Bentkus p-values of "risk (share wrong) > alpha" per threshold (1 where n == 0)."""
    from mapie.risk_control.methods import compute_hoeffding_bentkus_p_value

    out = np.ones(n.size)
    has = n > 0
    if has.any():
        r_hat = wrong[has] / n[has]
        out[has] = compute_hoeffding_bentkus_p_value(r_hat, n[has].astype(float), alpha, binary=True)[:, 0]
    return out


def _labels_needed(precision: float, n_det: int, n_audit: int, alpha: float, delta_each: float) -> Optional[int]:
    """Extra audit labels for a threshold with this empirical precision to pass, if the precision held."""
    if precision <= 1.0 - alpha or n_audit == 0 or n_det == 0:
        return None
    from mapie.risk_control.methods import compute_hoeffding_bentkus_p_value

    rate = n_det / n_audit  # detections per audit label at this threshold
    for n in [int(math.ceil(n_det * 1.25 ** k)) for k in range(1, 60)]:
        p = compute_hoeffding_bentkus_p_value(np.array([1.0 - precision]), np.array([float(n)]), alpha, binary=True)
        if float(p[0, 0]) < delta_each:
            return max(1, int(math.ceil(n / rate)) - n_audit)
    return None


def learn_then_test(scores: np.ndarray, truth: np.ndarray, audit: AuditLabels, *, label: str,
                    target_precision: float, confidence: float, grid: Sequence[float] = DEFAULT_GRID,
                    fwer_method: str = "bonferroni_holm", same_model: Optional[bool] = True,
                    random_state: Optional[int] = 0) -> SpeciesThreshold:
    """One species: the lowest grid threshold with precision >= target at the confidence (or why none)."""
    from mapie.risk_control import control_fwer

    g = _check(target_precision, confidence, grid, fwer_method)
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    alpha, delta = 1.0 - float(target_precision), 1.0 - float(confidence)
    u = np.random.default_rng(random_state).random(len(audit))
    n_det = np.zeros(g.size, dtype=np.int64)
    wrong = np.zeros(g.size, dtype=np.int64)
    n_kept = np.zeros(g.size, dtype=np.int64)
    for k, t in enumerate(g):
        rows = thin(audit, relevant_strata(audit, t, same_model), u)
        det = rows[scores[rows] >= t]
        n_kept[k], n_det[k], wrong[k] = rows.size, det.size, int((~truth[det]).sum())
    p = _p_values(wrong, n_det, alpha)
    valid = np.asarray(control_fwer(p, delta, fwer_method), dtype=np.int64)
    n_pos = int(truth.sum())
    if valid.size:
        k = int(valid.min())  # the lowest controlled threshold auto-validates the most detections
        return SpeciesThreshold(label, float(g[k]), int(n_kept[k]), int(n_det[k]), n_pos,
                                float(1.0 - wrong[k] / n_det[k]), float(p[k]), 0,
                                f"precision >= {target_precision:g} at score >= {g[k]:g} with confidence "
                                f"{confidence:g} ({n_det[k] - wrong[k]} of {n_det[k]} audit detections right)")
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(n_det > 0, 1.0 - wrong / np.maximum(n_det, 1), np.nan)
    if not (n_det > 0).any():
        return SpeciesThreshold(label, None, int(n_kept.max(initial=0)), 0, n_pos, None, None, None,
                                "no audit clip scores it at any threshold: audit more clips where it is detected")
    # the best candidate: the threshold fewest extra labels would let pass (else the most precise one)
    needs = {int(k): _labels_needed(float(prec[k]), int(n_det[k]), int(n_kept[k]), alpha, delta / g.size)
             for k in np.flatnonzero(n_det > 0)}
    helpful = [k for k, m in needs.items() if m is not None]
    k = (min(helpful, key=lambda k: (needs[k], k)) if helpful
         else max(needs, key=lambda k: (prec[k], n_det[k])))
    more = needs[k]
    if more is None:
        note = (f"best audit precision {prec[k]:.3f} (score >= {g[k]:g}, {n_det[k]} detections) is not above "
                f"the target {target_precision:g}: more labels will not help until the model improves")
    else:
        note = (f"audit precision {prec[k]:.3f} at score >= {g[k]:g} on {n_det[k]} detections is too few to "
                f"guarantee {target_precision:g}: about {more} more audit labels would")
    return SpeciesThreshold(label, None, int(n_kept[k]), int(n_det[k]), n_pos, float(prec[k]), float(p[k]), more, note)


def calibrated_grids(model_version: ModelVersion, grid: Sequence[float] = DEFAULT_GRID) -> dict[str, np.ndarray]:
    """Per class of a Platt-calibrated head, ``grid`` (thresholds of the uncalibrated head) on the calibrated
    scale: sigmoid(a logit(t) + b) with the class's scale a > 0 and shift b folded into the head."""
    from store.probability import SIGMOID_CLIP

    cal = (model_version.metrics or {}).get("calibration") or {}
    if cal.get("method") != "platt":
        return {}
    t = np.asarray(sorted({float(x) for x in grid}), dtype=np.float64)
    out = {}
    for label, c in (cal.get("classes") or {}).items():
        a, b = c.get("scale"), c.get("shift")
        if a is not None and float(a) > 0:  # a map that reverses the order has no threshold to carry over
            z = np.clip(float(a) * np.log(t / (1.0 - t)) + float(b or 0.0), -SIGMOID_CLIP, SIGMOID_CLIP)
            out[str(label)] = 1.0 / (1.0 + np.exp(-z))  # float64: the calibrated scores compared with it
    return out


def validate_scores(scores: np.ndarray, audit: AuditLabels, classes: Sequence[str], *, target_precision: float = 0.95,
                    confidence: float = 0.9, grid: Sequence[float] = DEFAULT_GRID,
                    fwer_method: str = "bonferroni_holm", same_model: Optional[bool] = True,
                    random_state: Optional[int] = 0, model_version: str = "",
                    only_evident: bool = True, grids: Optional[dict[str, Sequence[float]]] = None) -> Validation:
    """Thresholds for every class of ``scores`` (n_audit x classes) against the audit labels; ``grids`` gives a
    class its own grid (``calibrated_grids``), the others use ``grid``.

    With ``only_evident`` classes no audit clip carries and no audit clip scores at the grid's lowest
    threshold are left out of the result (BirdNET has 6,522; a lab audits a few dozen)."""
    g = _check(target_precision, confidence, grid, fwer_method)
    classes = list(classes)
    truth = label_truth(audit.labels, classes)
    out = []
    for j, label in enumerate(classes):
        own = g if not grids or label not in grids else _check(target_precision, confidence, grids[label],
                                                                fwer_method)
        if only_evident and not truth[:, j].any() and not (scores[:, j] >= own[0]).any():
            continue
        out.append(learn_then_test(scores[:, j], truth[:, j], audit, label=label, target_precision=target_precision,
                                   confidence=confidence, grid=own, fwer_method=fwer_method, same_model=same_model,
                                   random_state=random_state))
    return Validation(model_version, float(target_precision), float(confidence), fwer_method, len(audit), out,
                      dict(audit.left_out), disputed=audit.n_disputed)


def validate(store: Store, model_version: Optional[ModelVersion] = None, *, target_precision: float = 0.95,
             confidence: float = 0.9, grid: Sequence[float] = DEFAULT_GRID, fwer_method: str = "bonferroni_holm",
             random_state: Optional[int] = 0, record: bool = True) -> Validation:
    """Auto-validation thresholds of a model version (default: the current one) from the store's audit labels;
    with ``record`` they are kept in the version's metrics (``auto_validation``) for exports and status."""
    mv = model_version or store.current_model_version()
    if mv is None:
        raise ValidationError("the workspace holds no scored clips yet: run `workbench ingest PATH` first")
    _check(target_precision, confidence, grid, fwer_method)
    audit = audit_labels(store)
    if not len(audit):
        why = "; ".join(f"{n} {reason}" for reason, n in audit.left_out.items())
        raise ValidationError("no audit labels yet: draw an audit batch (`workbench sample --strategy audit`), "
                              "push and label it, pull, then validate" + (f" (left out: {why})" if why else ""))
    seen = np.asarray((mv.metrics or {}).get("trained_on_audit_clips", []), dtype=np.int64)
    if seen.size:  # a head that had to train on audit labels: they say nothing honest about it
        audit = audit.subset(np.flatnonzero(~np.isin(audit.clip_ids, seen)), f"{mv.name} was trained on them")
    if len(audit):
        audit = audit.subset(np.flatnonzero(store.probabilities(mv).contains(audit.clip_ids)),
                             f"not scored by {mv.name}")
    if not len(audit):
        why = "; ".join(f"{n} {reason}" for reason, n in audit.left_out.items())
        raise ValidationError(f"no audit label can judge model {mv.name} ({why}): draw a new audit batch "
                              "(`workbench sample --strategy audit`), label it and pull")
    raw = model_scores(store, mv, audit.clip_ids)
    scores = out_of_range_cleared(store, mv, audit.clip_ids, raw)
    low = min(float(x) for x in grid)
    cleared = ((raw >= low) & (scores < low)).sum(axis=0)
    same = bool(len(audit)) and bool((audit.model_version_ids == mv.id).all())
    result = validate_scores(scores, audit, mv.labels, target_precision=target_precision, confidence=confidence,
                             grid=grid, fwer_method=fwer_method, same_model=same, random_state=random_state,
                             model_version=mv.name, grids=calibrated_grids(mv, grid))
    result.out_of_range.update({str(mv.labels[j]): int(cleared[j]) for j in np.flatnonzero(cleared)})
    # how calibrated the model's own scores are, where audit labels allow (BirdNET's raw scores included);
    # an estimate, so on the clips whose experts agree
    rows = audit.agreed_rows
    truth = label_truth([audit.labels[i] for i in rows], list(mv.labels))
    for j in np.flatnonzero(truth.any(axis=0)):
        r = reliability(raw[rows, j], truth[:, j], audit.weights[rows])
        result.reliability[str(mv.labels[j])] = {"ece": r.ece, "n": r.n_total,
                                                  "bins": [list(x) for x in zip(r.confidence, r.observed, r.n)]}
    if record:
        store.merge_model_metrics(mv.id, auto_validation=result.as_metrics())
    return result


def out_of_range_cleared(store: Store, model_version: ModelVersion, clip_ids: np.ndarray,
                         scores: np.ndarray, lookup: Any = None, positions: Optional[np.ndarray] = None) -> np.ndarray:
    """``scores`` with 0 where the range model calls the species absent at the clip's site-week: such a
    detection is never auto-validated, so the guarantee is stated for the detections that can be. A caller
    walking a pool in chunks passes one ``lookup`` (``store.ranges.range_lookup``) and each chunk's positions."""
    from store.ranges import range_lookup

    if not clip_ids.size:
        return scores
    if lookup is None:
        lookup, positions = range_lookup(store, clip_ids, model_version), None
    out = lookup.in_range(positions=positions)
    return np.where(out == False, 0.0, scores)  # noqa: E712 (an object array of True, False and None)


def auto_validated(model_version: ModelVersion) -> dict[str, float]:
    """The recorded thresholds of a model version (empty when ``validate`` never ran for it)."""
    return dict(((model_version.metrics or {}).get("auto_validation") or {}).get("thresholds", {}))


def pool_counts(store: Store, model_version: ModelVersion, thresholds: dict[str, float], *,
                min_confidence: float = 0.1, chunk: int = 8192,
                progress: Optional[Callable[[int, int], None]] = None) -> tuple[int, int]:
    """(detections at >= ``min_confidence`` in the pool, of them auto-validated): what review is spared."""
    if not thresholds:
        cut = None
    else:
        cut = np.array([thresholds.get(str(c), np.inf) for c in model_version.labels])
    from store.ranges import range_lookup

    rows = store.probabilities(model_version)
    ids = np.asarray(store.pool(model_version).clip_id, dtype=np.int64)
    lookup = range_lookup(store, ids, model_version) if cut is not None and ids.size else None
    total = validated = 0
    for start in range(0, ids.size, chunk):
        part = ids[start:start + chunk]
        p = np.asarray(rows.take(part), dtype=np.float64)
        hit = p >= min_confidence
        total += int(hit.sum())
        if cut is not None:
            cleared = out_of_range_cleared(store, model_version, part, p, lookup, np.arange(start, start + part.size))
            validated += int((hit & (cleared >= cut)).sum())
        if progress is not None:
            progress(min(start + chunk, ids.size), int(ids.size))  # clips counted so far, of the pool
    return total, validated
