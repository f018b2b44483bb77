"""`workbench validate` as a lead runs it: an audit batch on real recordings, labelled, then per-species
thresholds with a precision guarantee, a calibrated head, and exports marking auto-validated detections."""

from __future__ import annotations

import csv
from datetime import datetime, timezone

import numpy as np
import pytest

from store import Annotation
from tests.conftest import shared_path
from tests.sampler.synthetic import annotate
from workbench.cli import main

pytestmark = pytest.mark.shared_data

FOLDERS = {"labeled_clips/birdnet_testdata_s1": "Lanius collurio_Red-backed Shrike",
           "labeled_clips/birdnet_testdata_s2": "Jynx torquilla_Eurasian Wryneck",
           "labeled_clips/avianz_noise": "Noise"}


def test_audit_validate_finetune_validate_export(workspace, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    label_of = {}
    for rel, label in FOLDERS.items():
        for f in sorted(shared_path("audio", *rel.split("/")).iterdir()):
            label_of[str(f)] = label
    # the shrikes recorded in the Jura, the wrynecks (a Eurasian bird) "in" Ithaca, NY: out of range there
    sidecar = tmp_path / "sites.csv"
    place = {"Lanius": ("jura", 46.6, 6.2), "Jynx": ("ithaca", 42.48, -76.45), "Noise": ("jura", 46.6, 6.2)}
    sidecar.write_text("file,site,start_time,latitude,longitude\n" + "".join(
        f"{f},{place[label.split()[0]][0]},2024-05-20T06:00:00,{place[label.split()[0]][1]},"
        f"{place[label.split()[0]][2]}\n" for f, label in label_of.items()))
    assert main(["ingest", *label_of, "--metadata", str(sidecar)]) == 0
    assert main(["validate"]) == 2
    assert "no audit labels yet: draw an audit batch (`workbench sample --strategy audit`)" in capsys.readouterr().err

    store = workspace.open_store()
    n_pool = len(store.pool())
    assert main(["sample", "--strategy", "random", "--budget", "40", "--seed", "0"]) == 0
    assert main(["sample", "--strategy", "audit", "--bins", "5", "--budget", str(n_pool - 40), "--seed", "1"]) == 0
    capsys.readouterr()
    runs = store.sampling_runs()
    assert [r.strategy for r in runs] == ["random", "audit"] and sum(runs[-1].frame["picked"]) == n_pool - 40
    for k, run in enumerate(runs):
        ids = [s.clip_id for s in store.selections(run.id)]
        annotate(store, ids, [[label_of[i.path]] for i in store.clips(ids)], start=1 + 10_000 * k)
    # a second expert hears something else on two audit clips: they stay in, judged conservatively
    other = {"Noise": "Lanius collurio_Red-backed Shrike"}
    when = datetime(2024, 6, 3, tzinfo=timezone.utc)
    disputed = store.clips([s.clip_id for s in store.selections(runs[-1].id)][:2])
    for k, clip in enumerate(disputed):
        store.upsert_annotation(Annotation(clip_id=clip.clip_id, project_id=1, ls_task_id=80_000 + k,
                                           ls_annotation_id=85_000 + k, annotator="second@lab", state="active",
                                           labels=[other.get(label_of[clip.path], "Noise")], created_at=when,
                                           updated_at=when))

    # BirdNET itself, judged on the audit labels: file labels are not window truth, so not every window is right
    assert main(["validate", "--target-precision", "0.8", "--confidence", "0.9"]) == 0
    out = capsys.readouterr().out
    assert f"model birdnet-v2.4: {n_pool - 40} audit label(s); precision >= 0.8 with confidence 0.9" in out
    assert "disputed: 2 audit label(s) whose experts split: a detection of a species in dispute counts as wrong" in out
    assert "left out" not in out
    birdnet = store.model_version("birdnet-v2.4")
    # BirdNET's raw scores judged for calibration the same way (ECE with n, on the audit labels experts agree on)
    rel = birdnet.metrics["auto_validation"]["reliability"]["Lanius collurio_Red-backed Shrike"]
    assert rel["n"] == n_pool - 42 and 0 <= rel["ece"] <= 1 and f"ECE {rel['ece']:.3f} on n={n_pool - 42}" in out
    thresholds = birdnet.metrics["auto_validation"]["thresholds"]
    assert "Lanius collurio_Red-backed Shrike" in thresholds, out
    # out of range where they were recorded: the wrynecks' detections are never auto-validated
    assert "Jynx torquilla_Eurasian Wryneck" not in thresholds
    assert "audit detection(s) of Jynx torquilla_Eurasian Wryneck where the range model calls it absent" in out
    assert "auto-validated at >= " in out and "pool detection(s) at >= 0.1 are auto-validated" in out

    assert main(["finetune", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    head = store.current_model_version()
    assert head.metrics["audit_held_out"] == n_pool - 42 and head.metrics["n_clips"] == 40  # 2 wait for adjudication
    assert f"calibration (platt) on {n_pool - 42} audit label(s) kept out of training" in out
    assert head.metrics["calibration"]["method"] == "platt"

    assert main(["validate", "--target-precision", "0.8"]) == 0
    out = capsys.readouterr().out
    assert f"model {head.name}: {n_pool - 40} audit label(s)" in out
    head = store.model_version(head.name)
    cut = head.metrics["auto_validation"]["thresholds"]
    assert cut, out
    # the head's calibration was fitted on these audit labels: its thresholds are the uncalibrated head's grid
    # carried through that map, not grid values chosen on the scale the labels made
    from finetune.validate import calibrated_grids

    grids = calibrated_grids(head)
    assert all(label in grids and np.abs(grids[label] - t).min() < 1e-9 for label, t in cut.items()), (cut, grids)

    assert main(["export", "detections", "--out", str(tmp_path / "d.csv"), "--min-confidence", "0.05"]) == 0
    with open(tmp_path / "d.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["Auto-validated"] for r in rows} == {"yes", "no"}
    for r in rows:
        label = f"{r['Scientific name']}_{r['Common name']}" if r["Scientific name"] != "Noise" else "Noise"
        assert (r["Auto-validated"] == "yes") == (label in cut and float(r["Confidence"]) >= cut[label] - 5e-5
                                                  and r["In range"] != "no")
        split = any(c.path == r["File"] and abs(c.start_s - float(r["Start (s)"])) < 1e-3 for c in disputed)
        assert r["Expert label"] == ("" if split else label_of[r["File"]]) and r["Site"]  # every window labelled
    assert {r["In range"] for r in rows if r["Site"] == "ithaca" and r["Scientific name"] == "Jynx torquilla"} == \
        {"no"}
    assert main(["export", "detections", "--out", str(tmp_path / "f.csv"), "--min-confidence", "0.05",
                 "--range-filter"]) == 0
    with open(tmp_path / "f.csv", newline="") as fh:
        kept = list(csv.DictReader(fh))
    assert kept and all(r["In range"] != "no" for r in kept)
    assert len(kept) == sum(r["In range"] != "no" for r in rows)
    # the same rows, typed, as Parquet
    import pyarrow.parquet as pq

    assert main(["export", "detections", "--format", "parquet", "--out", str(tmp_path / "d.parquet"),
                 "--min-confidence", "0.05"]) == 0
    table = pq.read_table(tmp_path / "d.parquet").to_pylist()
    assert len(table) == len(rows) and [t["confidence"] for t in table] == \
        pytest.approx([float(r["Confidence"]) for r in rows], abs=1e-4)
    assert [t["auto_validated"] for t in table] == [r["Auto-validated"] == "yes" for r in rows]
    assert [t["in_range"] for t in table] == [{"yes": True, "no": False, "": None}[r["In range"]] for r in rows]
    assert all(t["recorded_at"] is not None and t["site"] for t in table)
    store.close()
