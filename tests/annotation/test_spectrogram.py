"""Spectrogram images of clips: drawn once, reused, redrawn when the clip changes, and served by Label Studio."""

from __future__ import annotations

import os
import time
import uuid

import httpx
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from annotation.clips import cut_clip
from annotation.errors import AnnotationError
from annotation.spectrogram import clip_spectrogram, render_spectrogram, spectrogram_path
from tests.annotation.conftest import generate, write_tone

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_clip_gets_a_png_beside_it_with_its_window(tmp_path):
    wav = write_tone(tmp_path / "clip-3.wav", 7.0, sr=22050)
    out = render_spectrogram(wav, 2.0, 5.0)
    assert out == spectrogram_path(wav) == tmp_path / "clip-3.png"
    assert out.read_bytes()[:8] == PNG
    width, height = Image.open(out).size
    assert width > 2 * height > 200
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_the_window_is_marked_in_orange(tmp_path):
    wav = write_tone(tmp_path / "clip-4.wav", 7.0, sr=22050)
    marked = np.asarray(Image.open(render_spectrogram(wav, 2.0, 5.0)).convert("RGB"), dtype=int)
    plain = np.asarray(Image.open(render_spectrogram(wav, None, None, force=True)).convert("RGB"), dtype=int)
    orange = (marked[..., 0] > 200) & (marked[..., 1] > 130) & (marked[..., 1] < 190) & (marked[..., 2] < 80)
    columns = np.flatnonzero(orange.sum(axis=0) > marked.shape[0] // 2)  # two vertical lines, top to bottom
    assert columns.size >= 2 and columns.max() - columns.min() > marked.shape[1] // 4
    assert not ((plain[..., 0] > 200) & (plain[..., 1] > 130) & (plain[..., 1] < 190)
                & (plain[..., 2] < 80)).sum(axis=0).max() > plain.shape[0] // 2


def test_an_image_is_reused_until_its_clip_changes(tmp_path):
    wav = write_tone(tmp_path / "clip-5.wav", 5.0)
    first = render_spectrogram(wav, 1.0, 4.0)
    stamp = first.stat().st_mtime_ns
    assert render_spectrogram(wav, 1.0, 4.0).stat().st_mtime_ns == stamp  # reused
    time.sleep(0.01)
    write_tone(wav, 5.0, seed=3)  # the clip was cut again
    os.utime(wav, ns=(stamp + 10**9, stamp + 10**9))
    assert render_spectrogram(wav, 1.0, 4.0).stat().st_mtime_ns > stamp


def test_a_cut_clip_is_drawn_with_the_window_cut_clip_reports(store, tmp_path):
    gen = generate(store, tmp_path, n_clips=3)
    [info] = store.clips(gen.clip_ids[1:2])
    cut = cut_clip(info, tmp_path / "clips")
    out = clip_spectrogram(cut)
    assert out == cut.path.with_suffix(".png") and out.read_bytes()[:8] == PNG


def test_high_sample_rates_and_stereo_draw_too(tmp_path):
    wav = write_tone(tmp_path / "clip-6.wav", 4.0, sr=96000, channels=2)
    assert render_spectrogram(wav, 0.5, 3.5).read_bytes()[:8] == PNG


def test_unreadable_or_empty_clips_are_named(tmp_path):
    bad = tmp_path / "clip-7.wav"
    bad.write_bytes(b"not a wav")
    with pytest.raises(AnnotationError, match="clip-7.wav"):
        render_spectrogram(bad, 0.0, 3.0)
    empty = tmp_path / "clip-8.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AnnotationError, match="holds no audio"):
        render_spectrogram(empty, 0.0, 3.0)
    assert not spectrogram_path(bad).exists() and not spectrogram_path(empty).exists()


@pytest.mark.labelstudio
def test_pushed_tasks_link_a_spectrogram_label_studio_serves(ls_client, ls_store, labelstudio, tmp_path):
    gen = generate(ls_store, tmp_path, n_clips=2)
    label_set = ls_store.add_label_set(f"spec-{uuid.uuid4().hex[:8]}", ["Turdus merula_Eurasian Blackbird", "Other"])
    pid = ls_client.ensure_project(label_set, title=f"spectrogram {label_set.name}",
                                   clips_dir=labelstudio.workspace.clips)
    report = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    assert report.created == 2 and not report.failed
    tasks = list(ls_client.sdk.tasks.list(project=pid, fields="all"))
    session = httpx.Client(base_url=labelstudio.url, headers={"Authorization": f"Token {labelstudio.token}"},
                           timeout=30)
    for t in tasks:
        url = t.data["spectrogram"]
        assert url == f"/data/local-files/?d=clips/clip-{t.data['clip_id']}.png"
        assert t.data["audio"] == url.replace(".png", ".wav")  # same scheme as the audio
        resp = session.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
        assert resp.headers["content-type"].startswith("image/png") and resp.content[:8] == PNG


@pytest.mark.labelstudio
def test_a_clip_whose_spectrogram_cannot_be_drawn_is_a_per_clip_failure(ls_client, ls_store, labelstudio, tmp_path,
                                                                         monkeypatch):
    import annotation.spectrogram as spectrogram

    gen = generate(ls_store, tmp_path, n_clips=3)
    label_set = ls_store.add_label_set(f"spec-{uuid.uuid4().hex[:8]}", ["Turdus merula_Eurasian Blackbird", "Other"])
    pid = ls_client.ensure_project(label_set, title=f"spectrogram {label_set.name}",
                                   clips_dir=labelstudio.workspace.clips)
    broken = gen.clip_ids[1]
    real = spectrogram.clip_spectrogram

    def flaky(cut, **kw):
        if cut.path.name == f"clip-{broken}.wav":
            raise AnnotationError(f"cannot draw the spectrogram of {cut.path}: disk full")
        return real(cut, **kw)

    monkeypatch.setattr(spectrogram, "clip_spectrogram", flaky)
    report = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    assert report.created == 2 and [f[0] for f in report.failed] == [broken]
    assert "disk full" in report.failed[0][2]
    monkeypatch.setattr(spectrogram, "clip_spectrogram", real)
    again = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)  # retried, once
    assert (again.created, again.failed) == (1, [])


OLD_CONFIG_LINE = '  <Image name="spectrogram" value="$spectrogram"/>\n'


@pytest.mark.labelstudio
def test_a_project_made_before_spectrograms_takes_the_new_config(ls_client, ls_store, labelstudio, tmp_path):
    """A project of an earlier release (no <Image>, tasks without a spectrogram) is updated and pushed to."""
    from annotation.config import label_config

    gen = generate(ls_store, tmp_path, n_clips=2)
    label_set = ls_store.add_label_set(f"old-{uuid.uuid4().hex[:8]}", ["Turdus merula_Eurasian Blackbird", "Other"])
    title = f"old project {label_set.name}"
    old = label_config(label_set.labels).replace(OLD_CONFIG_LINE, "")
    assert "<Image" not in old
    pid = int(ls_client.sdk.projects.create(title=title, label_config=old,
                                            description=f"workbench label set: {label_set.name}").id)
    ls_client.sdk.projects.import_tasks(id=pid, request=[{"data": {"audio": "/data/local-files/?d=clips/x.wav",
                                                                   "clip_id": 10**9, "window_start": 0,
                                                                   "window_end": 3, "site": "s", "time": "t",
                                                                   "file": "x.wav"}}])
    assert ls_client.ensure_project(label_set, title=title, clips_dir=labelstudio.workspace.clips) == pid
    assert ls_client.sdk.projects.get(id=pid).label_config == label_config(label_set.labels)
    report = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    assert report.created == 2 and not report.failed
