"""Image tasks in a real Label Studio: the crop and its frame served, the box pre-drawn, a corrected box pulled."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import numpy as np
import pytest
from PIL import Image

from annotation.config import image_label_config, modality_of
from store import Recording, SamplingRun, Selection
from store.sources import file_sha256

pytestmark = pytest.mark.labelstudio

LABELS = ["leopard cat", "sambar", "Other", "Noise"]


def _image_run(store, tmp_path, n=2):
    rng = np.random.default_rng(uuid.uuid4().int % 2**32)
    mv = store.ensure_model_version("vision-fake", "embedding", "vision-fake", 4, LABELS[:2], output_type="softmax")
    path = tmp_path / f"StationB__2009-05-0{n}__01-02-03(1).JPG"
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(path, quality=90)
    st = path.stat()
    rec = store.add_recording(Recording(path=str(path), content_hash=file_sha256(path), modality="image",
                                        site="StationB", start_time=datetime(2009, 5, 1, 1, 2, 3),
                                        file_size=st.st_size, file_mtime_ns=st.st_mtime_ns, status="done"))
    probs = np.array([[0.95, 0.05], [0.3, 0.7]], dtype=np.float32)[:n]
    ids = store.add_clip_batch(rec.id, [(1.0, 1.0), (2.0, 2.0)][:n], mv, probs, rng.normal(size=(n, 4)),
                               boxes=[(0.1, 0.2, 0.3, 0.4, "animal", 0.9), (0.5, 0.5, 0.2, 0.2, "animal", 0.7)][:n])
    run = store.add_sampling_run(SamplingRun(strategy="test", params={}, seed=0, budget=n, model_version_id=mv.id),
                                 [Selection(clip_id=int(c), rank=r + 1, score=1.0, reason="test")
                                  for r, c in enumerate(ids)])
    return run, [int(c) for c in ids]


def test_image_tasks_round_trip_with_a_corrected_box(ls_client, ls_store, labelstudio, tmp_path):
    run, clips = _image_run(ls_store, tmp_path)
    label_set = ls_store.add_label_set(f"images-{uuid.uuid4().hex[:6]}", LABELS)
    pid = ls_client.ensure_project(label_set, title=f"images {label_set.name}", modality="image", boxes=True,
                                   clips_dir=labelstudio.workspace.clips)
    project = ls_client.sdk.projects.get(id=pid)
    assert modality_of(project.label_config) == "image" and project.label_config == image_label_config(LABELS, True)
    report = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=run.id)
    assert report.created == 2 and not report.failed
    tasks = {t.data["clip_id"]: t for t in ls_client.sdk.tasks.list(project=pid, fields="all")}
    first = tasks[clips[0]]
    for key in ("image", "frame"):
        r = httpx.get(labelstudio.url + first.data[key], headers={"Authorization": f"Token {labelstudio.token}"})
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"  # JPEGs
    assert "orange box" in first.data["frame_note"] and "site" not in first.data  # blind
    [pred] = first.predictions
    by_name = {r["from_name"]: r for r in pred.result}
    assert by_name["species"]["value"]["choices"] == ["leopard cat"]  # the model's top class, pre-ticked
    assert by_name["box"]["value"]["x"] == pytest.approx(10.0) and by_name["box"]["value"]["width"] == pytest.approx(30)
    # the annotator names the species and moves the box
    ls_client.sdk.annotations.create(id=first.id, result=[
        {"from_name": "species", "to_name": "image", "type": "choices", "value": {"choices": ["sambar"]}},
        {"from_name": "box", "to_name": "frame", "type": "rectanglelabels", "original_width": 400,
         "original_height": 300, "value": {"x": 12.5, "y": 20, "width": 25, "height": 40, "rotation": 0,
                                            "rectanglelabels": ["animal"]}}])
    pulled = ls_client.pull(ls_store, pid)
    assert pulled.new == 1
    [ann] = [a for a in ls_store.annotations() if a.project_id == pid]
    assert ann.labels == ["sambar"] and ann.region == {"x": 0.125, "y": 0.2, "w": 0.25, "h": 0.4}


def test_image_clips_are_not_pushed_into_an_audio_project(ls_client, ls_store, labelstudio, tmp_path):
    from annotation.errors import AnnotationError

    run, _ = _image_run(ls_store, tmp_path, n=1)
    label_set = ls_store.add_label_set(f"audio-{uuid.uuid4().hex[:6]}", LABELS)
    pid = ls_client.ensure_project(label_set, title=f"audio {label_set.name}", clips_dir=labelstudio.workspace.clips)
    with pytest.raises(AnnotationError, match="set up for audio clips, but run .* picked image clips"):
        ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=run.id)
