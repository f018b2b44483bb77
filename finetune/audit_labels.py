"""The labels of the audit stream, with each one's inclusion probability: the only honest data for precision.

Active-learning picks are chosen for being uncertain, so they say little about how often a confident
detection is right; an audit run (``workbench sample --strategy audit``) is a seeded random draw within score
bins, and its run records the sampling frame (clips per bin, picks per bin). A label in bin b of run r was
drawn with probability picked[b] / pool[b]; calibration weighs it by the inverse, and the precision guarantee
thins the sample back to equal inclusion (``thin``), which keeps it a uniform random sample of the pool.

Each clip's answer is the one fine-tuning uses (``annotation.agreement.consensus``). A clip whose experts split
evenly stays in the sample: the species they all named are its labels, and the ones only some named are
``disputed``. Dropping such clips would not be random (experts split on the hard clips, where detections are
wrong more often) and would make precision look better than it is; the precision guarantee instead counts a
detection of a disputed species as wrong, which holds whatever the adjudication decides. Calibration, an
estimate rather than a guarantee, uses the undisputed clips only (``agreed``). An audit pick nobody labelled
(skipped in Label Studio) is simply absent: the estimate assumes skips are unrelated to the species.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from store.roles import Ledger, Vectors

AUDIT_STRATEGY = "audit"
DISAGREED = "experts disagree, not adjudicated"


@dataclass(frozen=True)
class AuditLabels:
    """Audit labels, one row per labelled audit clip (sorted by clip id)."""

    clip_ids: np.ndarray  # int64
    labels: list[list[str]]
    inclusion: np.ndarray  # float64, the probability the clip had of being drawn in its run and bin
    stratum: np.ndarray  # int64, one number per (run, bin): thinning keeps strata at equal inclusion
    top1_bin_high: np.ndarray  # float64, upper edge of the clip's top-1 bin under the run's model
    model_version_ids: np.ndarray  # int64, the model whose top-1 made the bins (-1: unknown)
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> clips not usable
    disputed: Optional[list[list[str]]] = None  # per row, species some experts named and others not (None: none)

    def __post_init__(self) -> None:
        if self.disputed is None:
            object.__setattr__(self, "disputed", [[] for _ in range(len(self.labels))])

    @property
    def n_disputed(self) -> int:
        """Rows whose experts split evenly and nobody adjudicated yet."""
        return sum(1 for d in self.disputed if d)

    def __len__(self) -> int:
        return int(self.clip_ids.size)

    @property
    def weights(self) -> np.ndarray:
        """Pool clips each label stands for (1 / inclusion), for weighted calibration."""
        return 1.0 / self.inclusion

    def subset(self, rows: np.ndarray, why_others: Optional[str] = None) -> "AuditLabels":
        """These rows only; ``why_others`` names why the rest are left out (counted in ``left_out``)."""
        rows = np.asarray(rows, dtype=np.int64)
        left = dict(self.left_out)
        if why_others and len(self) - rows.size:
            left[why_others] = left.get(why_others, 0) + len(self) - int(rows.size)
        return AuditLabels(self.clip_ids[rows], [self.labels[i] for i in rows], self.inclusion[rows],
                           self.stratum[rows], self.top1_bin_high[rows], self.model_version_ids[rows], left,
                           [self.disputed[i] for i in rows])

    @property
    def agreed_rows(self) -> np.ndarray:
        """Positions of the rows without a disputed species."""
        return np.array([i for i, d in enumerate(self.disputed) if not d], dtype=np.int64)

    def agreed(self) -> "AuditLabels":
        """The rows without a disputed species: what calibration and reliability (estimates) are fitted on."""
        return self.subset(self.agreed_rows, DISAGREED)


def uniform(clip_ids: np.ndarray, labels: list[list[str]]) -> AuditLabels:
    """Labels drawn uniformly at random (one stratum): e.g. a random calibration split in a benchmark."""
    n = len(labels)
    return AuditLabels(np.asarray(clip_ids, dtype=np.int64), [list(x) for x in labels], np.ones(n),
                       np.zeros(n, dtype=np.int64), np.ones(n), np.full(n, -1, dtype=np.int64))


def audit_labels(store: Ledger) -> AuditLabels:
    """Every labelled clip of the store's audit runs, with its inclusion probability from its run's frame;
    a clip whose experts split carries the species they all named and, as ``disputed``, the others."""
    from annotation.agreement import answers_by_clip, consensus

    annotations = store.annotations()
    by_clip, split = consensus(annotations)
    disputed: dict[int, list[str]] = {}
    if split:
        answers = answers_by_clip(annotations)
        for c in split:
            sets = [set(a.labels) for a in answers[int(c)].values()]
            agreed = set.intersection(*sets)
            by_clip[int(c)] = sorted(agreed)
            disputed[int(c)] = sorted(set.union(*sets) - agreed)
    rows: dict[int, tuple[float, int, float, int]] = {}
    left_out: dict[str, int] = {}
    stratum_ids: dict[tuple[int, int], int] = {}
    for run in store.sampling_runs():
        if run.strategy != AUDIT_STRATEGY:
            continue
        frame = run.frame or {}
        picks = store.selections(run.id)
        if frame.get("kind") != "score_bins":
            n = sum(1 for p in picks if p.clip_id in by_clip)
            if n:  # an audit of an older release: its bins' sizes are unknown, so its weights are too
                left_out["audit run without a recorded frame"] = left_out.get("audit run without a recorded frame", 0) + n
            continue
        bins = int(frame["bins"])
        for p in picks:
            if p.clip_id not in by_clip:
                continue
            b = min(int(max(p.score, 0.0) * bins), bins - 1)
            picked, members = int(frame["picked"][b]), int(frame["pool"][b])
            if not picked or members < picked:
                left_out["inconsistent frame"] = left_out.get("inconsistent frame", 0) + 1
                continue
            key = (int(run.id), b)
            stratum_ids.setdefault(key, len(stratum_ids))
            rows[int(p.clip_id)] = (picked / members, stratum_ids[key], (b + 1) / bins,
                                    int(run.model_version_id) if run.model_version_id is not None else -1)
    ids = np.array(sorted(rows), dtype=np.int64)
    get = [rows[int(i)] for i in ids]
    return AuditLabels(ids, [sorted(by_clip[int(i)]) for i in ids],
                       np.array([g[0] for g in get], dtype=np.float64), np.array([g[1] for g in get], dtype=np.int64),
                       np.array([g[2] for g in get], dtype=np.float64), np.array([g[3] for g in get], dtype=np.int64),
                       left_out, [disputed.get(int(i), []) for i in ids])


def thin(audit: AuditLabels, keep: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Rows of ``audit`` (among ``keep``) kept so that every kept stratum has the same inclusion probability.

    A row with inclusion p stays with probability p_min / p, where p_min is the smallest inclusion among the
    strata in ``keep``; ``u`` holds one uniform draw per row (fixed per call site, so nested selections
    agree). What remains is a uniform random sample of the pool clips those strata cover.
    """
    keep = np.asarray(keep, dtype=bool)
    if not keep.any():
        return np.zeros(0, dtype=np.int64)
    p_min = float(audit.inclusion[keep].min())
    return np.flatnonzero(keep & (u < p_min / audit.inclusion))


def label_truth(labels: list[list[str]], classes: list[str]) -> np.ndarray:
    """(n x classes) bool: the clip carries the class. Labels outside ``classes`` (Noise, other species)
    make every class of that clip negative."""
    index = {c: j for j, c in enumerate(classes)}
    out = np.zeros((len(labels), len(classes)), dtype=bool)
    for i, row in enumerate(labels):
        for label in row:
            j = index.get(label)
            if j is not None:
                out[i, j] = True
    return out


def model_scores(store: Vectors, model_version, clip_ids: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """The model's probabilities (n x classes, float64) for the given clips, stored or recomputed."""
    rows = store.probabilities(model_version)
    out = np.zeros((clip_ids.size, len(model_version.labels)), dtype=np.float64)
    for start in range(0, clip_ids.size, chunk):
        part = clip_ids[start:start + chunk]
        out[start:start + part.size] = np.asarray(rows.take(part), dtype=np.float64)
    return out


def relevant_strata(audit: AuditLabels, threshold: float, same_model: Optional[bool]) -> np.ndarray:
    """Rows whose stratum can hold a detection at ``threshold``: under the model that drew the bins a class
    score never exceeds the top-1, so bins whose top edge is at or below the threshold hold none; under
    another model any bin can."""
    if same_model:
        return audit.top1_bin_high > threshold
    return np.ones(len(audit), dtype=bool)
