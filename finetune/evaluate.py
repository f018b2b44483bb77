"""Held-out split and the metrics a head is judged by: subset accuracy and recall per class and per site.

Accuracy hides rare species (86 % accuracy can be 64 % average recall), so the headline is macro
recall, broken down per class and per site: stratified sampling is meant to lift the worst site.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Optional, Sequence

import numpy as np


def split_key(labels: Sequence[Sequence[str]]) -> list[str]:
    """One stratification key per clip for multi-label data: its rarest label ("" for no label)."""
    freq = Counter(label for row in labels for label in set(row))
    return [min(row, key=lambda x: (freq[x], x)) if row else "" for row in labels]


def stratified_split(keys: Sequence[str], test_size: float, random_state: Optional[int] = None
                     ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Seeded train/test positions, stratified by ``keys`` where the counts allow.

    Each key sends about ``test_size`` of its clips to the test set, but a key with a single clip
    stays in training (a class never seen in training cannot be learnt). With two or more clips
    the test set is never empty: the last resort is one clip of the largest key. Returns
    (train, test, stratified) where ``stratified`` tells whether every key with at least two clips
    is present on both sides.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction between 0 and 1 (exclusive), got {test_size!r}")
    n = len(keys)
    if n < 2:
        raise ValueError(f"need at least 2 labelled clips to hold some out for evaluation, got {n}")
    rng = np.random.default_rng(random_state)
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    names = sorted(groups)
    members = {k: rng.permutation(groups[k]) for k in names}

    # Largest-remainder apportionment of round(n * test_size), at most size - 1 per key.
    target = max(1, int(round(n * test_size)))
    exact = {k: len(members[k]) * test_size for k in names}
    take = {k: min(int(np.floor(exact[k])), len(members[k]) - 1) for k in names}
    by_remainder = sorted(names, key=lambda k: (-(exact[k] - np.floor(exact[k])), k))
    for k in by_remainder:
        if sum(take.values()) >= target:
            break
        if take[k] < len(members[k]) - 1:
            take[k] += 1
    if sum(take.values()) == 0:  # every key is a singleton: hold out one clip anyway
        largest = max(names, key=lambda k: (len(members[k]), k))
        take[largest] = 1
    test = np.sort(np.concatenate([members[k][:take[k]] for k in names]).astype(np.int64))
    train = np.setdiff1d(np.arange(n), test)
    stratified = all(take[k] >= 1 and take[k] < len(members[k]) for k in names if len(members[k]) >= 2)
    return train, test, stratified


def recall_per_class(truth: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Recall of each class that has at least one positive in ``truth`` (others are undefined, left out)."""
    out = {}
    for j, label in enumerate(classes):
        pos = truth[:, j]
        if pos.any():
            out[str(label)] = float((pred[:, j] & pos).sum() / pos.sum())
    return out


NONE_PREDICTED = "none predicted"


def confusion_counts(truth: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> dict:
    """Which labels the head predicts for the clips of each true label: a multi-label confusion matrix.

    ``counts[i][j]`` is the number of held-out clips labelled ``classes[i]`` for which ``classes[j]`` was
    predicted (the diagonal: hits; a clip with two predictions counts in two columns), and the last
    column counts those clips with no prediction at all: a rare species more often goes unnoticed than
    mistaken. Plain lists, so it is stored as JSON with the model version's metrics.
    """
    truth = np.asarray(truth, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    counts = truth.T.astype(np.int64) @ pred.astype(np.int64)
    silent = truth[~pred.any(axis=1)].sum(axis=0)
    return {"labels": [str(c) for c in classes], "columns": [str(c) for c in classes] + [NONE_PREDICTED],
            "counts": np.column_stack([counts, silent]).astype(int).tolist()}


MIN_RELIABLE_SUPPORT = 20  # held-out clips per class below which a recall is reported as rough, not as a figure


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (95 % for z=1.96): honest at small n, unlike k/n +- 2 se."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def bootstrap_macro_recall(truth: np.ndarray, pred: np.ndarray, classes: Sequence[str], n_boot: int = 1000,
                           random_state: int = 0) -> Optional[tuple[float, float]]:
    """The 2.5 and 97.5 percentiles of macro recall over held-out clips resampled with replacement."""
    truth, pred = np.asarray(truth, dtype=bool), np.asarray(pred, dtype=bool)
    if truth.shape[0] < 2:
        return None
    rng = np.random.default_rng(random_state)
    values = []
    for _ in range(int(n_boot)):
        rows = rng.integers(0, truth.shape[0], truth.shape[0])
        r = recall_per_class(truth[rows], pred[rows], classes)
        if r:
            values.append(np.mean(list(r.values())))
    if not values:
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def recall_statement(metrics: dict) -> str:
    """Macro recall with its interval and n, or, below ``MIN_RELIABLE_SUPPORT`` held-out clips per class, a
    plain statement that the figure is rough: what the CLI prints and the app shows."""
    value = metrics.get("macro_recall")
    n = metrics.get("n_test", 0)
    support = [v for v in (metrics.get("support_per_class") or {}).values() if v > 0]
    fewest = min(support) if support else 0
    if value is None:
        return f"macro recall undefined ({n} held-out clips, none of a labelled class)"
    interval = metrics.get("macro_recall_interval")
    ci = f", 95% interval {interval[0]:.2f}-{interval[1]:.2f}" if interval else ""
    text = f"macro recall {value:.3f}{ci} on {n} held-out clips (fewest per class: {fewest})"
    if fewest < MIN_RELIABLE_SUPPORT:
        text += (f"; below {MIN_RELIABLE_SUPPORT} held-out clips per class this is a rough figure, not a "
                 f"measurement: label more before comparing rounds")
    return text


def evaluate(truth: np.ndarray, pred: np.ndarray, classes: Sequence[str], groups: Iterable[str],
             random_state: int = 0) -> dict:
    """Subset accuracy, macro recall, recall per class, macro recall per group (e.g. site) and the confusion
    counts (``confusion_counts``).

    Undefined values (no positive of a class, or of any class in a group) are left out rather than
    stored as NaN, so the metrics stay valid JSON.
    """
    truth = np.asarray(truth, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    groups = np.asarray(list(groups), dtype=object)
    per_class = recall_per_class(truth, pred, classes)
    metrics: dict = {
        "n_test": int(truth.shape[0]),
        "accuracy": float((truth == pred).all(axis=1).mean()) if truth.shape[0] else None,
        "recall_per_class": per_class,
        "support_per_class": {str(c): int(truth[:, j].sum()) for j, c in enumerate(classes)},
        "confusion": confusion_counts(truth, pred, classes),
    }
    if per_class:
        metrics["macro_recall"] = float(np.mean(list(per_class.values())))
        support = metrics["support_per_class"]
        metrics["recall_interval_per_class"] = {
            c: list(wilson_interval(int(round(r * support[c])), support[c])) for c, r in per_class.items()}
        interval = bootstrap_macro_recall(truth, pred, classes, random_state=random_state)
        if interval is not None:
            metrics["macro_recall_interval"] = list(interval)
    per_group = {}
    for g in sorted(set(groups.tolist())):
        rows = groups == g
        r = recall_per_class(truth[rows], pred[rows], classes)
        if r:
            per_group[str(g)] = float(np.mean(list(r.values())))
    metrics["recall_per_site"] = per_group
    if per_group:
        worst = min(per_group, key=lambda g: (per_group[g], g))
        metrics["worst_site"] = worst
        metrics["worst_site_recall"] = per_group[worst]
    if metrics["accuracy"] is None:
        del metrics["accuracy"]
    return metrics
