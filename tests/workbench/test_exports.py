"""`workbench export classifier` and `workbench export detections` as a user runs them, on real recordings."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess

import pytest

from tests.conftest import shared_path
from tests.sampler.synthetic import annotate
from workbench.cli import main

pytestmark = pytest.mark.shared_data

FILES = {"recordings/birdnetgo_tawnyowl.wav": "Strix aluco_Tawny Owl",
         "labeled_clips/birdnet_testdata_s1/file01.wav": "Lanius collurio_Red-backed Shrike",
         "labeled_clips/avianz_noise/Crickets_2000.wav": "Noise"}


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.fixture
def ingested(workspace, monkeypatch, capsys):
    """A workspace holding the FILES (read in place) as BirdNET scored them."""
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    paths = {str(shared_path("audio", *rel.split("/"))): label for rel, label in FILES.items()}
    assert main(["ingest", *paths]) == 0
    capsys.readouterr()
    return workspace, paths


def test_export_classifier_and_detections_of_a_fine_tuned_head(ingested, tmp_path, capsys):
    workspace, paths = ingested
    assert "no fine-tuned head on BirdNET embeddings yet" in _error(capsys, ["export", "classifier", "--out",
                                                                             str(tmp_path / "cc")])
    store = workspace.open_store()
    infos = store.clips(store.pool().clip_id)
    annotate(store, [i.clip_id for i in infos], [[paths[i.path]] for i in infos])
    assert main(["finetune"]) == 0
    head = store.current_model_version()
    capsys.readouterr()

    assert main(["export", "classifier", "--out", str(tmp_path / "cc")]) == 0
    out = capsys.readouterr().out
    assert f"model {head.name} as a BirdNET custom classifier (2 classes, logits" in out
    assert "not outputs: Noise (they mark the absence of an event" in out
    assert (tmp_path / "cc" / "CustomClassifier.tflite").stat().st_size > 20_000_000
    assert (tmp_path / "cc" / "CustomClassifier_Labels.txt").read_text().splitlines() == \
        ["Lanius collurio_Red-backed Shrike", "Strix aluco_Tawny Owl"]
    assert main(["export", "classifier", "--out", str(tmp_path / "named"), "--model-version", head.name]) == 0
    capsys.readouterr()

    assert main(["export", "detections", "--format", "csv", "--out", str(tmp_path / "d.csv"),
                 "--min-confidence", "0.5", "--model-version", head.name]) == 0
    assert f"of model {head.name} at confidence >= 0.5 -> {tmp_path / 'd.csv'}" in capsys.readouterr().out
    with open(tmp_path / "d.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {(r["Scientific name"], r["Common name"]) for r in rows} <= \
        {("Lanius collurio", "Red-backed Shrike"), ("Noise", "Noise"), ("Strix aluco", "Tawny Owl")}
    assert main(["export", "detections", "--format", "raven", "--out", str(tmp_path / "raven")]) == 0
    assert "Raven selection table(s)" in capsys.readouterr().out
    # the older form, without a subcommand, is `export detections` (the current model: the head)
    assert main(["export", "--format", "csv", "--out", str(tmp_path / "old.csv"), "--min-confidence", "0.5"]) == 0
    assert (tmp_path / "old.csv").read_text() == (tmp_path / "d.csv").read_text()
    store.close()


def test_export_errors_name_the_flag_and_what_to_do(ingested, tmp_path, capsys):
    err = _error(capsys, ["export", "classifier", "--out", str(tmp_path / "cc"), "--model-version", "birdnet-v2.4"])
    assert "--model-version birdnet-v2.4 is an embedding model, not a fine-tuned head" in err
    err = _error(capsys, ["export", "classifier", "--out", str(tmp_path / "cc"), "--model-version", "head-x-9"])
    assert "--model-version head-x-9: no such model version" in err and "workbench status" in err
    (tmp_path / "file").write_text("x")
    assert "--out" in _error(capsys, ["export", "classifier", "--out", str(tmp_path / "file")])
    assert "--model-version nope" in _error(capsys, ["export", "detections", "--out", str(tmp_path / "d.csv"),
                                                     "--model-version", "nope"])
    assert "export needs --out PATH" in _error(capsys, ["export", "--format", "csv"])
    with pytest.raises(SystemExit):  # argparse's own one-line usage error
        main(["export", "classifier"])
    assert "the following arguments are required: --out" in capsys.readouterr().err


@pytest.fixture
def read_only_folder(tmp_path):
    """An empty folder nothing can be written into: a read-only bind mount for root (who writes whatever the
    mode), its write bits taken away otherwise."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if shutil.which("mount") is None or subprocess.run(["mount", "--bind", str(folder), str(folder)]).returncode:
        pytest.skip("running as root and cannot bind-mount a folder read-only")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)]).returncode:
            pytest.skip("running as root and cannot remount a folder read-only")
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)])


def test_an_export_to_a_place_it_cannot_write_names_the_flag_and_the_path(ingested, read_only_folder, capsys):
    workspace, paths = ingested
    store = workspace.open_store()
    infos = store.clips(store.pool().clip_id)
    annotate(store, [i.clip_id for i in infos], [[paths[i.path]] for i in infos])
    store.close()
    assert main(["finetune"]) == 0
    capsys.readouterr()
    reason = "read-only file system" if os.geteuid() == 0 else "permission denied"
    for fmt, out in [("csv", read_only_folder / "d.csv"), ("parquet", read_only_folder / "d.parquet"),
                     ("raven", read_only_folder / "R"), ("csv", read_only_folder / "new" / "folder")]:
        err = _error(capsys, ["export", "detections", "--format", fmt, "--out", str(out)])
        assert err == f"error: cannot write --out {out}: {reason}; give --out a place you can write to\n", fmt
    out = read_only_folder / "cc"
    err = _error(capsys, ["export", "classifier", "--out", str(out)])
    assert err == f"error: cannot write --out {out}: {reason}; give --out a place you can write to\n"
    assert list(read_only_folder.iterdir()) == []
