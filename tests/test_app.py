"""The Streamlit page, driven with AppTest over a real store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from store import Recording, SamplingRun, Selection
from store.sources import file_sha256

APP = str(Path(__file__).resolve().parents[1] / "app.py")
LABELS = ["Turdus merula_Eurasian Blackbird", "Erithacus rubecula_European Robin", "Parus major_Great Tit"]


@pytest.fixture
def ws_env(workspace, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    monkeypatch.delenv("WORKBENCH_DB_URL", raising=False)
    return workspace


def _fill(workspace, tmp_path, with_run=True):
    store = workspace.open_store()
    mv = store.ensure_model_version("birdnet-test", "embedding", "birdnet-test", 8, LABELS)
    audio = tmp_path / "rec.wav"
    sf.write(audio, np.random.default_rng(0).normal(0, 0.1, 16000 * 12).astype(np.float32), 16000)
    rec = store.add_recording(Recording(path=str(audio), content_hash=file_sha256(audio), site="site-A",
                                        start_time=datetime(2024, 5, 1, 5, 0), sample_rate=16000))
    rng = np.random.default_rng(1)
    ids = store.add_clip_batch(rec.id, [(3.0 * i, 3.0 * i + 3) for i in range(4)], mv,
                               rng.random((4, 3)), rng.random((4, 8)))
    if with_run:
        store.add_sampling_run(SamplingRun(strategy="UncertainDiverse", budget=2, seed=7, params={"k": 1},
                                           model_version_id=mv.id),
                               [Selection(clip_id=int(ids[1]), rank=1, score=0.9, cluster=0, stratum="site=site-A",
                                          reason="most uncertain of its cluster"),
                                Selection(clip_id=int(ids[3]), rank=2, score=0.8, cluster=1, stratum="site=site-A",
                                          reason="second cluster")])
    store.close()


def test_empty_workspace_says_what_to_run(ws_env):
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert any("workbench demo" in i.value for i in at.info)


def test_pool_without_a_run_shows_the_distribution_and_a_hint(ws_env, tmp_path):
    _fill(ws_env, tmp_path, with_run=False)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert at.metric[0].value == "4"
    assert any("workbench sample" in i.value for i in at.info)


def test_last_selection_with_reasons_and_audio(ws_env, tmp_path):
    _fill(ws_env, tmp_path)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["reason"].tolist() == ["most uncertain of its cluster", "second cluster"]
    assert table["site"].tolist() == ["site-A", "site-A"]
    assert len(at.get("audio")) == 2
    at.radio(key="hist_metric").set_value("top1").run()
    assert not at.exception


def test_a_changed_source_is_not_played_and_says_why(ws_env, tmp_path):
    _fill(ws_env, tmp_path)
    sf.write(tmp_path / "rec.wav", np.zeros(16000 * 12, dtype=np.float32), 16000)  # replaced after ingest
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert len(at.get("audio")) == 0
    assert sum("changed since it was ingested" in c.value for c in at.caption) == 2


def test_clips_the_current_head_has_not_scored_are_counted(ws_env, tmp_path):
    from finetune.head import ClassifierHead
    from store import ModelVersion

    _fill(ws_env, tmp_path)
    store = ws_env.open_store()
    rng = np.random.default_rng(0)
    head = ClassifierHead().fit(rng.random((6, 8)), [["a"], ["b"]] * 3, classes=["a", "b"])
    path = head.save(ws_env.models / "head.npz")
    mv = store.add_model_version(ModelVersion(name="head-1", kind="classifier", embedding_space="birdnet-test",
                                              dim=2, labels=["a", "b"], artifact_path=str(path)))
    view = store.embeddings("birdnet-test")
    store.write_model_outputs(mv, view.ids[:2], head.predict_proba(np.asarray(view.data[:2])))
    store.close()
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert any("2 clips ingested after head-1" in w.value for w in at.warning)
