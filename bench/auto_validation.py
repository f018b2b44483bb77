"""Auto-validation: does the stated precision guarantee hold, and how much does it auto-validate?

On each set a head (``finetune.head.ClassifierHead``, sigmoid, as ``workbench finetune`` trains it) is fitted on
a seeded 30 % of the clips; the other 70 % are the pool. Over N random splits of the pool into an audit half
(calibration) and a test half, thresholds are learnt on the audit half and judged on the test half:

* **guaranteed**: ``finetune.validate`` (Learn-then-Test, MAPIE's binary Hoeffding-Bentkus p-values,
  Holm over the grid), per species, target precision 0.95, delta 0.1;
* **per species, no guarantee**: the lowest grid threshold whose audit precision reaches the target;
* **one global threshold**: the lowest grid threshold whose audit precision over all species reaches it.

A split is *valid* when the realised precision of the auto-validated test detections (all species together)
is at least the target (a split that auto-validates nothing is valid, and counted apart); *coverage* is the
share of true test detections auto-validated. Sets: ``soundscape`` (real BirdNET windows of real calls mixed
into real backgrounds, ``bench/label_sets.py``), ``clips`` (the shared labelled clips), and ``generated``
(scores whose truth is known: P(right | score) = score ** 0.2, 20,000 clips, 5 species), the last also with a
score-stratified audit (equal draws per score bin, weighted back by the frame) to show the weights at work.

    .venv/bin/python bench/auto_validation.py [--splits 200] [--sets soundscape,clips,generated]

Last line: ``auto-validation at 95% precision (delta 0.1): valid in X of N splits, coverage Y`` (the worst
set's validity, the mean coverage over sets).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from finetune.audit_labels import AuditLabels, uniform  # noqa: E402
from finetune.head import head_for  # noqa: E402
from finetune.validate import DEFAULT_GRID, validate_scores  # noqa: E402

TARGET, CONFIDENCE = 0.95, 0.9


def _load() -> str:
    return "load %.2f %.2f %.2f on %d cores" % (*os.getloadavg(), os.cpu_count() or 1)


def _head_scores(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(scores, truth, classes) of a head on the pool part of a benchmark set."""
    import label_sets

    pool = label_sets.SETS[name]()
    species = [j for j, c in enumerate(pool.classes) if c != "Noise"]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    train, rest = order[: int(0.3 * len(pool))], order[int(0.3 * len(pool)):]
    labels = pool.label_lists(train)
    head = head_for(pool.output_type, labels, random_state=seed).fit(pool.embeddings[train], labels,
                                                                     classes=list(pool.classes))
    scores = head.predict_proba(pool.embeddings[rest]).astype(np.float64)
    return scores[:, species], pool.truth[rest][:, species], [pool.classes[j] for j in species]


def _generated(n: int = 20_000, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    species = rng.integers(k, size=n)
    score = rng.beta(1.5, 1.5, n)
    right = rng.random(n) < score ** 0.2  # precision 0.95 from a score of about 0.8
    scores = np.zeros((n, k))
    scores[np.arange(n), species] = score
    truth = np.zeros((n, k), dtype=bool)
    truth[np.arange(n), species] = right
    return scores, truth, [f"species {j}" for j in range(k)]


def _lowest_reaching(scores: np.ndarray, truth: np.ndarray) -> float | None:
    for t in sorted(DEFAULT_GRID):
        det = scores >= t
        if det.sum() and truth[det].mean() >= TARGET:
            return t
    return None


def _judge(scores: np.ndarray, truth: np.ndarray, cut: np.ndarray) -> tuple[bool, bool, float]:
    """(valid, vacuous, coverage) of per-class cuts (inf = never) on test rows."""
    auto = scores >= cut[None, :]
    n = int(auto.sum())
    precision = float(truth[auto].mean()) if n else 1.0
    positives = int(truth.sum())
    return precision >= TARGET, n == 0, (float((auto & truth).sum()) / positives if positives else 0.0)


def _stratified(scores: np.ndarray, lists: list[list[str]], rows: np.ndarray, per_bin: int, bins: int,
                rng) -> tuple[np.ndarray, AuditLabels]:
    """A score-binned audit of ``rows``: equal draws per top-1 bin, with each draw's inclusion probability."""
    top = scores[rows].max(axis=1)
    which = np.minimum((top * bins).astype(int), bins - 1)
    picked, incl, strat = [], [], []
    for b in range(bins):
        members = rows[which == b]
        take = rng.choice(members, min(per_bin, members.size), replace=False)
        picked.append(take)
        incl += [take.size / members.size] * take.size
        strat += [b] * take.size
    picked = np.concatenate(picked)
    strat = np.array(strat)
    return picked, AuditLabels(picked, [lists[i] for i in picked], np.array(incl), strat, (strat + 1) / bins,
                               np.zeros(picked.size, dtype=np.int64))


def run_set(name: str, scores: np.ndarray, truth: np.ndarray, classes: list[str], splits: int,
            stratified: bool = False) -> dict:
    rng = np.random.default_rng(1)
    tally = {k: {"valid": 0, "vacuous": 0, "coverage": []} for k in ("guaranteed", "per species", "global")}
    validated_species = []
    n = scores.shape[0]
    lists = [[classes[j] for j in np.flatnonzero(row)] for row in truth]  # the audit's labels: the truth
    for r in range(splits):
        order = rng.permutation(n)
        cal, test = order[: n // 2], order[n // 2:]
        if stratified:
            cal, audit = _stratified(scores, lists, cal, per_bin=max(20, n // 20), bins=5, rng=rng)
        else:
            audit = uniform(cal, [lists[i] for i in cal])
        result = validate_scores(scores[cal], audit, classes, target_precision=TARGET, confidence=CONFIDENCE,
                                 random_state=r, only_evident=False)
        cut = {"guaranteed": np.array([result.thresholds.get(c, np.inf) for c in classes])}
        validated_species.append(len(result.thresholds))
        per = [_lowest_reaching(scores[cal, j], truth[cal, j]) for j in range(len(classes))]
        cut["per species"] = np.array([np.inf if t is None else t for t in per])
        g = _lowest_reaching(scores[cal], truth[cal])
        cut["global"] = np.full(len(classes), np.inf if g is None else g)
        for kind, c in cut.items():
            valid, vacuous, coverage = _judge(scores[test], truth[test], c)
            tally[kind]["valid"] += valid
            tally[kind]["vacuous"] += vacuous
            tally[kind]["coverage"].append(coverage)
        print(f"\r  {name}: split {r + 1}/{splits}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(f"  {'method':<22} {'valid splits':>14} {'vacuous':>8} {'coverage':>9}")
    for kind, t in tally.items():
        print(f"  {kind:<22} {t['valid']:>8d} / {splits:<4d} {t['vacuous']:>8d} {np.mean(t['coverage']):>9.3f}")
    print(f"  species auto-validated per split (guaranteed): mean {np.mean(validated_species):.2f} of {len(classes)}")
    return {"valid": tally["guaranteed"]["valid"], "coverage": float(np.mean(tally["guaranteed"]["coverage"]))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--splits", type=int, default=200)
    p.add_argument("--sets", default="soundscape,clips,generated")
    args = p.parse_args(argv)
    started = time.perf_counter()
    results = {}
    for name in [s for s in args.sets.split(",") if s]:
        if name == "generated":
            data = _generated()
        else:
            data = _head_scores(name)
        scores, truth, classes = data
        print(f"\n== {name}: {scores.shape[0]} pool clips, {len(classes)} species, {int(truth.sum())} true "
              f"detections; {args.splits} audit/test splits; {_load()}", flush=True)
        results[name] = run_set(name, scores, truth, classes, args.splits)
        if name == "generated":
            print(f"\n== generated, score-stratified audit (5 bins, equal draws, weighted by the frame)", flush=True)
            results["generated-stratified"] = run_set("generated-stratified", scores, truth, classes, args.splits,
                                                      stratified=True)
    print(f"\n({time.perf_counter() - started:.0f} s; {_load()})")
    worst = min(results.values(), key=lambda r: r["valid"])
    coverage = float(np.mean([r["coverage"] for r in results.values()]))
    print(f"auto-validation at {TARGET:.0%} precision (delta {1 - CONFIDENCE:.1g}): valid in {worst['valid']} of "
          f"{args.splits} splits, coverage {coverage:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
