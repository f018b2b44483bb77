"""Camera-trap images through the whole loop, on real parts: a real vision model on real images, a detector
file made here, a real Label Studio, a softmax head fine-tuned on the experts' labels, the pool re-scored."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import shared_path
from workbench.cli import main

pytestmark = pytest.mark.labelstudio


@pytest.fixture
def camtrap(tmp_path):
    """The camtrapR images (copied: the test rewrites one) with their species, and a MegaDetector file."""
    src = shared_path("images", "camtrapR_borneo")
    rows = [r for r in csv.DictReader(open(src / "labels.csv")) if r["label"] != "UNID"]
    root = tmp_path / "camtrap"
    species = {}
    for r in rows:
        rel = Path(r["path"]).relative_to("images/camtrapR_borneo")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_path(r["path"]), root / rel)
        species[rel.as_posix()] = r["species"].split(" (")[0]
    entries = []
    for n, rel in enumerate(sorted(species)):
        dets = [] if n % 5 == 0 else [{"category": "1", "conf": 0.91, "bbox": [0.1, 0.15, 0.7, 0.7]}]
        if n == 1:
            dets.append({"category": "1", "conf": 0.05, "bbox": [0.0, 0.0, 0.2, 0.2]})  # below the threshold
        if n == 2:
            dets.append({"category": "1", "conf": 0.8, "bbox": [1.2, 0.3, 0.2, 0.2]})  # outside the frame
        entries.append({"file": rel, "detections": dets})
    entries.append({"file": "StationZ/XXX/missing.JPG", "detections": []})
    detections = root / "megadetector.json"
    detections.write_text(json.dumps({"images": entries, "detection_categories": {"1": "animal"},
                                      "info": {"format_version": "1.4"}}))
    return root, species, detections


def test_camera_trap_images_round_trip_through_label_studio(camtrap, served_workspace, labelstudio, capsys):
    root, species, detections = camtrap
    models = shared_path("models", "vision")
    ws = served_workspace
    project = f"camtrap {ws.root.name}"
    assert main(["ingest", str(root), "--model-dir", str(models), "--detections", str(detections)]) == 0
    out = capsys.readouterr().out
    assert f"ingested {len(species)} new file(s)" in out
    assert "missing.JPG" in out and "outside" in out  # the detector file's problems, per file
    store = ws.open_store()
    recs = store.recordings()
    assert {r.modality for r in recs} == {"image"} and all(r.start_time is not None for r in recs)
    assert {r.site for r in recs} == {"StationA", "StationB", "StationC"}
    mv = store.model_version("mobilenet-v2-imagenet")
    assert mv.output_type == "softmax"
    pool = store.pool(mv)
    infos = store.clips(pool.clip_id)
    blanks = [c for c in infos if c.box and c.box[4] == "blank"]
    crops = [c for c in infos if c.box and c.box[4] == "animal"]
    assert len(blanks) == len([n for n in range(len(species)) if n % 5 == 0]) and len(crops) == len(species) - len(blanks)
    assert crops[0].box[:4] == pytest.approx((0.1, 0.15, 0.7, 0.7))

    labels = sorted(set(species.values()))
    store.add_label_set("camtrap", labels + ["Other", "Noise"])
    assert main(["sample", "--model-version", mv.name, "--budget", "30", "--seed", "1", "--strata", "site"]) == 0
    assert main(["push", "--project", project, "--label-set", "camtrap"]) == 0
    out = capsys.readouterr().out
    assert "30 new task(s)" in out

    from annotation.client import LabelStudioClient

    sdk = LabelStudioClient(labelstudio.settings).sdk
    [pid] = [p.id for p in sdk.projects.list() if p.title == project]
    tasks = list(sdk.tasks.list(project=pid, fields="all"))
    assert len(tasks) == 30
    import httpx

    for t in tasks[:3]:  # the crop and its frame are served to the annotator
        for key in ("image", "frame"):
            r = httpx.get(labelstudio.url + t.data[key], headers={"Authorization": f"Token {labelstudio.token}"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("image/")
    for t in tasks:
        info = store.clips([t.data["clip_id"]])[0]
        truth = species[Path(info.path).relative_to(root).as_posix()]
        sdk.annotations.create(id=t.id, result=[{"from_name": "species", "to_name": "image", "type": "choices",
                                                  "value": {"choices": [truth]}}])
    assert main(["pull", "--project", project, "--label-set", "camtrap"]) == 0
    assert "30 new" in capsys.readouterr().out

    assert main(["finetune"]) == 0
    head = store.current_model_version()
    assert head.kind == "classifier" and head.output_type == "softmax" and head.embedding_space == mv.name
    assert head.metrics["scored_clips"] == len(pool)
    scored = store.pool(head)
    assert len(scored) == len(pool)
    # the head learnt the species: on the clips nobody labelled, its top label is mostly right
    labelled = {a.clip_id for a in store.annotations()}
    rest = [(c, lab) for c, lab in zip(scored.clip_id.tolist(), scored.top_label.tolist()) if c not in labelled]
    truth = {c.clip_id: species[Path(c.path).relative_to(root).as_posix()] for c in store.clips([c for c, _ in rest])}
    hits = sum(lab == truth[c] for c, lab in rest)
    assert hits / len(rest) > 0.5, Counter((truth[c], lab) for c, lab in rest)
    # the next round ranks images by categorical entropy, the measure that fits a softmax head
    assert main(["sample", "--budget", "5", "--seed", "2", "--strata", "site"]) == 0
    assert "normalised categorical entropy" in capsys.readouterr().out
    store.close()
