"""Calibrated heads: Platt per class / one temperature, fitted on audit labels and folded into the head."""

from __future__ import annotations

import numpy as np
import pytest

from finetune import finetune
from finetune.calibration import calibrate_logits, fold_into, reliability
from finetune.head import ClassifierHead
from sampler import AuditSample, UncertainDiverse, sample
from store.probability import OutputType, sigmoid, softmax
from tests.sampler.synthetic import annotate, build_pool


def test_platt_scaling_recovers_the_map_of_overconfident_logits_and_lowers_the_ece():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 4, size=(4000, 2))
    truth = rng.random(z.shape) < sigmoid(0.5 * z - 1.0)  # the head is twice too sure and biased upwards
    report = calibrate_logits(z, truth, ["a", "b"], OutputType.SIGMOID)
    assert report.method == "platt" and not report.skipped
    for c in ("a", "b"):
        assert report.scale[c] == pytest.approx(0.5, abs=0.06) and report.shift[c] == pytest.approx(-1.0, abs=0.15)
        assert report.after[c].ece < report.before[c].ece / 3 and report.after[c].n_total == 4000


def test_weights_undo_a_stratified_draw():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, 40_000)
    y = rng.random(z.size) < sigmoid(0.7 * z + 0.5)
    keep = np.where(z > 2, 1.0, 0.1)  # confident clips drawn ten times as often
    rows = np.flatnonzero(rng.random(z.size) < keep)
    weighted = calibrate_logits(z[rows, None], y[rows, None], ["a"], "sigmoid", weights=1 / keep[rows])
    assert weighted.scale["a"] == pytest.approx(0.7, abs=0.08) and weighted.shift["a"] == pytest.approx(0.5, abs=0.12)


def test_folding_the_map_into_the_head_gives_the_calibrated_probabilities_exactly():
    rng = np.random.default_rng(2)
    W, b0, X = rng.normal(size=(3, 8)), rng.normal(size=3), rng.normal(size=(50, 8))
    z = X @ W.T + b0
    truth = rng.random(z.shape) < sigmoid(0.3 * z + 0.2)
    report = calibrate_logits(z, truth, ["a", "b", "c"], "sigmoid")
    W2, b2 = fold_into(W, b0, ["a", "b", "c"], report)
    for j, c in enumerate("abc"):
        np.testing.assert_allclose(sigmoid(X @ W2[j] + b2[j]), sigmoid(report.scale[c] * z[:, j] + report.shift[c]),
                                   rtol=1e-6)


def test_a_class_with_too_few_audit_positives_is_left_uncalibrated_and_named():
    z = np.linspace(-3, 3, 40)[:, None].repeat(2, axis=1)
    truth = np.zeros((40, 2), dtype=bool)
    truth[18:, 0] = True
    truth[[5, 30], 0] = [True, False]
    truth[0, 1] = True
    report = calibrate_logits(z, truth, ["common", "rare"], "sigmoid")
    assert "common" in report.scale and "rare" not in report.scale
    assert report.skipped["rare"].startswith("1 positive and 39 negative audit clip(s)")


def test_temperature_scaling_cools_an_overconfident_softmax_head():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 1.5, size=(3000, 4))
    y = np.array([rng.choice(4, p=p) for p in softmax(z)])
    truth = np.eye(4, dtype=bool)[y]
    report = calibrate_logits(3.0 * z, truth, list("abcd"), OutputType.SOFTMAX)
    assert report.method == "temperature" and report.temperature == pytest.approx(3.0, rel=0.1)
    assert np.mean([report.after[c].ece for c in "abcd"]) < np.mean([report.before[c].ece for c in "abcd"])


def test_reliability_bins_carry_their_counts():
    r = reliability(np.array([0.05, 0.15, 0.95, 0.92]), np.array([0, 0, 1, 0]))
    assert r.n == [1, 1, 2] and r.n_total == 4 and r.observed[-1] == 0.5
    assert r.ece == pytest.approx((0.05 + 0.15 + 2 * abs(0.5 - 0.935)) / 4, abs=1e-3)


def test_finetune_keeps_audit_labels_out_of_training_and_calibrates_the_head_on_them(store, workspace):
    syn = build_pool(store, n_clusters=8, per_cluster=60, noise=0.6, seed=5)  # overlapping clusters
    rng = np.random.default_rng(0)
    _, picks = sample(store, UncertainDiverse(random_state=0), 120)
    al = [p.clip_id for p in picks]
    annotate(store, al, [[s] for s in syn.of(al, "species")])
    _, audit_picks = sample(store, AuditSample(bins=5, random_state=1), 150)
    audit = [p.clip_id for p in audit_picks]
    truth = syn.of(audit, "species")
    noisy = [[s] if rng.random() > 0.15 else [] for s in truth]  # real labels are not what the clusters say
    annotate(store, audit, noisy, start=10_000)

    mv = finetune(store, workspace.models, random_state=0)
    m = mv.metrics
    assert m["audit_held_out"] == 150 and m["n_clips"] == 120 and m["n_fit"] == 120
    cal = m["calibration"]
    assert cal["method"] == "platt" and cal["n_audit"] == 150
    for label, c in cal["classes"].items():
        assert c["before"]["n"] == 150 and len(c["before"]["bins"]) >= 2 and c["after"]["ece"] >= 0
    # the stored probabilities are the calibrated head's, recomputed exactly from the folded layer
    head = ClassifierHead.load(mv.artifact_path)
    ids = syn.clip_ids[:50]
    np.testing.assert_allclose(store.probabilities(mv).take(ids), head.predict_proba(syn.embeddings[:50]), atol=2e-6)
    a = {c: cal["classes"][c]["scale"] for c in cal["classes"] if cal["classes"][c]["scale"]}
    assert a and all(v > 0 for v in a.values())
    eces = [(c["before"]["ece"], c["after"]["ece"]) for c in cal["classes"].values() if c["after"]]
    assert np.mean([after for _, after in eces]) < np.mean([before for before, _ in eces])


def test_a_head_with_almost_only_audit_labels_trains_on_them_and_says_so(store, workspace):
    syn = build_pool(store, per_cluster=20)
    _, audit_picks = sample(store, AuditSample(bins=5, random_state=1), 40)
    audit = [p.clip_id for p in audit_picks]
    annotate(store, audit, [[s] for s in syn.of(audit, "species")])
    mv = finetune(store, workspace.models, random_state=0)
    assert mv.metrics["audit_held_out"] == 0 and sorted(mv.metrics["trained_on_audit_clips"]) == sorted(audit)
    assert "calibration" not in mv.metrics
