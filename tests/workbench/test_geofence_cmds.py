"""`workbench geofence FILE | --clear`: rules checked and kept in the workspace, with what they cover of the image
model's labels and which sites have no country."""

from __future__ import annotations

import json

from tests.conftest import CANID_RULES, placed_images
from workbench.cli import main
from workbench.config import Workspace


def test_geofence_keeps_the_rules_and_says_what_they_cover(tmp_path, capsys):
    ws = Workspace.resolve(tmp_path / "ws")
    placed_images(ws.root, {"domestic_dog.jpg": ("Kent", "GBR", ""),
                            "american_black_bear.jpg": ("Yosemite", "USA", "CA")}).close()
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(CANID_RULES))
    assert main(["--workspace", str(ws.root), "geofence", str(rules)]) == 0
    out = capsys.readouterr().out
    kept = ws.root / "geofence.json"
    assert kept.read_bytes() == rules.read_bytes()
    assert f"geofence of 5 taxa (5 with allow lists, 0 with block lists), kept as {kept}" in out
    # ImageNet's 1,001 labels: grey and Arctic wolf (Canis lupus), red wolf, coyote have rules; the dingo's genus is
    # in the rules (it rolls up); the rest name no genus and species the rules know
    assert ("model mobilenet-v2-imagenet: 4 of 1001 label(s) have a rule (fenced where it says); 1 more map to the "
            "rules' taxonomy and only roll up") in out
    assert "996 label(s) the rules cannot map" in out
    assert "label(s) the rules cannot map (no genus and species the rules know; never fenced): background, tench" \
           in out
    assert "countries of the images: GBR (1 site(s)), USA (1 site(s))" in out
    assert "8 image(s) have no country and are never fenced, at site(s): (no site)" in out

    assert main(["--workspace", str(ws.root), "geofence"]) == 0  # shows the kept one
    assert "geofence of 5 taxa" in capsys.readouterr().out
    assert main(["--workspace", str(ws.root), "geofence", "--clear"]) == 0
    assert "geofence removed" in capsys.readouterr().out and not kept.exists()
    assert main(["--workspace", str(ws.root), "geofence"]) == 0
    assert "no geofence set" in capsys.readouterr().out


def test_a_bad_rules_file_is_one_line_naming_file_and_key_and_nothing_is_kept(tmp_path, capsys):
    ws = Workspace.resolve(tmp_path / "ws")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"mammalia;carnivora;canidae": {"allow": {"GBR": []}}}))
    assert main(["--workspace", str(ws.root), "geofence", str(rules)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(rules) in err and "key 'mammalia;carnivora;canidae' is not a taxonomy string" in err
    assert len(err.splitlines()) == 1 and not (ws.root / "geofence.json").exists()


def test_sample_fences_with_the_workspaces_geofence(tmp_path, capsys):
    ws = Workspace.resolve(tmp_path / "ws")
    placed_images(ws.root, {"domestic_dog.jpg": ("Kent", "GBR", "")}).close()
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(CANID_RULES))
    assert main(["--workspace", str(ws.root), "geofence", str(rules)]) == 0
    capsys.readouterr()
    assert main(["--workspace", str(ws.root), "sample", "--strategy", "range_conflict", "--min-score", "0.3",
                 "--budget", "2"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[1]
    assert first.startswith("  #1   clip ") and "geofence: timber wolf, grey wolf, gray wolf, Canis lupus detected " \
        "with top-1 0.33 in GBR, where the geofence does not allow it; SpeciesNet would call it Canidae (family) " \
        "0.71" in first
