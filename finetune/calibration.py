"""Calibrated heads: per-class Platt scaling (sigmoid heads) or one temperature (softmax heads), folded into the
head's weights and bias, and reliability (ECE per class with n) to show what it changed.

Platt scaling fits p = sigmoid(a * z + b) on each class's logit z (Wood & Kahl 2024, J Ornithol 165:777, for
BirdNET per species); temperature scaling fits softmax(z / T). Both are affine in the logits, so the head stays
one linear layer: W' = a W, b' = a b0 + b (or W / T, b0 / T), and the store's probabilities, recomputed as
activation(W' e + b'), are the calibrated ones exactly. The maps are fitted on audit labels (a random draw of
the pool, weighted back to it by their inclusion probabilities), never on active-learning picks, which are
uncertain on purpose and so not representative. Reliability after calibration is measured by cross-fitting
the map over folds of the audit labels, so the figure is not the map's own training error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression

from store.probability import OutputType, activate, sigmoid

MIN_PER_SIDE = 3  # positives and negatives a class needs in the audit labels for Platt scaling
N_BINS = 10
FOLDS = 5


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram of one class: per bin of predicted probability, its mean, the observed rate, n."""

    confidence: list[float]
    observed: list[float]
    n: list[int]
    ece: float  # expected calibration error, weighted to the pool
    n_total: int


@dataclass
class CalibrationReport:
    """What calibration did, per class."""

    method: str  # "platt", "temperature" or "none"
    n_audit: int
    scale: dict[str, float] = field(default_factory=dict)  # a per class (platt) or 1 / T (temperature)
    shift: dict[str, float] = field(default_factory=dict)  # b per class (platt)
    before: dict[str, Reliability] = field(default_factory=dict)
    after: dict[str, Reliability] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # class -> why it is left uncalibrated
    temperature: Optional[float] = None

    def as_metrics(self) -> dict:
        def rel(r: Reliability) -> dict:
            return {"ece": r.ece, "n": r.n_total, "bins": [list(x) for x in zip(r.confidence, r.observed, r.n)]}

        return {"method": self.method, "n_audit": self.n_audit, "temperature": self.temperature,
                "classes": {c: {"scale": self.scale.get(c), "shift": self.shift.get(c),
                                "before": rel(self.before[c]) if c in self.before else None,
                                "after": rel(self.after[c]) if c in self.after else None}
                            for c in sorted(set(self.before) | set(self.scale))},
                "skipped": dict(self.skipped)}


def reliability(prob: np.ndarray, truth: np.ndarray, weights: Optional[np.ndarray] = None,
                n_bins: int = N_BINS) -> Reliability:
    """Equal-width reliability bins over [0, 1] and the weighted ECE (sum of |observed - confidence| by mass)."""
    prob = np.asarray(prob, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    w = np.ones_like(prob) if weights is None else np.asarray(weights, dtype=np.float64)
    which = np.minimum((prob * n_bins).astype(np.int64), n_bins - 1)
    conf, obs, ns, ece = [], [], [], 0.0
    total = float(w.sum()) or 1.0
    for b in range(n_bins):
        m = which == b
        if not m.any():
            continue
        wb = float(w[m].sum())
        c, o = float((w[m] * prob[m]).sum() / wb), float((w[m] * truth[m]).sum() / wb)
        conf.append(round(c, 4))
        obs.append(round(o, 4))
        ns.append(int(m.sum()))
        ece += wb / total * abs(o - c)
    return Reliability(conf, obs, ns, round(ece, 4), int(prob.size))


def _platt(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(a, b) of sigmoid(a z + b), weighted, with Platt's smoothed targets so a separable class stays finite."""
    n_pos, n_neg = float(w[y].sum()), float(w[~y].sum())
    hi, lo = (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0)
    target = np.where(y, hi, lo)
    # a soft target t is the pair (1 weighted t, 0 weighted 1 - t)
    X = np.r_[z, z][:, None]
    Y = np.r_[np.ones_like(z), np.zeros_like(z)].astype(int)
    W = np.r_[w * target, w * (1.0 - target)]
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(X, Y, sample_weight=W / W.mean())
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _temperature(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """T minimising the weighted negative log-likelihood of softmax(z / T) (searched on log T)."""
    def nll(log_t: float) -> float:
        p = activate(OutputType.SOFTMAX, z / np.exp(log_t)).astype(np.float64)
        return float(-(w * np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))).sum())

    return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


def _folds(n: int, random_state: Optional[int]) -> list[np.ndarray]:
    k = min(FOLDS, n)
    return np.array_split(np.random.default_rng(random_state).permutation(n), k) if k >= 2 else []


def calibrate_logits(logits: np.ndarray, truth: np.ndarray, classes: list[str], output_type: str,
                     weights: Optional[np.ndarray] = None, random_state: Optional[int] = 0) -> CalibrationReport:
    """Fit the calibration map on held-out logits (n x classes) and their truth (n x classes, bool)."""
    logits = np.asarray(logits, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    n = logits.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    report = CalibrationReport("none", n)
    raw = activate(output_type, logits).astype(np.float64)
    for j, c in enumerate(classes):
        report.before[c] = reliability(raw[:, j], truth[:, j], w)
    if output_type == OutputType.SOFTMAX:
        rows = truth.sum(axis=1) == 1
        if rows.sum() < 2 * MIN_PER_SIDE:
            report.skipped = {c: f"{int(rows.sum())} audit clip(s) with one of the head's labels: too few for a "
                                 f"temperature" for c in classes}
            return report
        y = truth[rows].argmax(axis=1)
        t = _temperature(logits[rows], y, w[rows])
        report.method, report.temperature = "temperature", round(t, 4)
        report.scale = {c: 1.0 / t for c in classes}
        after = np.zeros_like(raw)
        for test in _folds(n, random_state):
            fit = np.setdiff1d(np.flatnonzero(rows), test)
            t_fold = _temperature(logits[fit], truth[fit].argmax(axis=1), w[fit]) if fit.size else t
            after[test] = activate(OutputType.SOFTMAX, logits[test] / t_fold)
        for j, c in enumerate(classes):
            report.after[c] = reliability(after[:, j], truth[:, j], w)
        return report
    for j, c in enumerate(classes):
        y = truth[:, j]
        if y.sum() < MIN_PER_SIDE or (~y).sum() < MIN_PER_SIDE:
            report.skipped[c] = (f"{int(y.sum())} positive and {int((~y).sum())} negative audit clip(s): Platt "
                                 f"scaling needs at least {MIN_PER_SIDE} of each")
            continue
        a, b = _platt(logits[:, j], y, w)
        if not a > 0:
            report.skipped[c] = f"its audit labels run against its scores (slope {a:.3g}): left uncalibrated"
            continue
        report.scale[c], report.shift[c] = round(a, 6), round(b, 6)
        after = np.zeros(n)
        for test in _folds(n, random_state):
            fit = np.setdiff1d(np.arange(n), test)
            yf = y[fit]
            if yf.sum() < 1 or (~yf).sum() < 1:
                af, bf = a, b
            else:
                af, bf = _platt(logits[fit, j], yf, w[fit])
            after[test] = sigmoid(af * logits[test, j] + bf)
        report.after[c] = reliability(after, y, w)
    report.method = "platt" if report.scale else "none"
    return report


def fold_into(coef: np.ndarray, intercept: np.ndarray, classes: list[str],
              report: CalibrationReport) -> tuple[np.ndarray, np.ndarray]:
    """The head's (W, b) with the calibration map folded in: activation(W' x + b') is the calibrated output."""
    coef, intercept = np.array(coef, dtype=np.float64), np.array(intercept, dtype=np.float64)
    for j, c in enumerate(classes):
        a = report.scale.get(c)
        if a is None:
            continue
        coef[j] *= a
        intercept[j] = intercept[j] * a + report.shift.get(c, 0.0)
    return coef, intercept
