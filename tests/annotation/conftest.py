"""Fixtures of the annotation tests: a small generated store (no BirdNET) and the session's Label Studio."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from store import Recording, SamplingRun, Selection, Store
from store.sources import file_sha256

SPECIES = ["Turdus merula_Eurasian Blackbird", "Erithacus rubecula_European Robin", "Parus major_Great Tit",
           "Fringilla coelebs_Common Chaffinch", "Sylvia atricapilla_Eurasian Blackcap",
           "Columba palumbus_Common Wood-Pigeon"]
MODEL = "fake-birdnet"
DIM = 8


@dataclass
class Generated:
    clip_ids: list[int]
    run_id: int
    top: dict[int, str]          # clip id -> its top label
    probabilities: np.ndarray    # (clips, species)
    audio: Path


def write_tone(path: Path, seconds: float, sr: int = 22050, channels: int = 1, seed: int = 0, **kw) -> Path:
    """A short noisy tone (distinct per seed, so every file has its own content hash)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (800 + 50 * (seed % 20)) * t) + 0.02 * rng.standard_normal(t.size)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data.astype(np.float32), sr, **kw)
    return path


def generate(store: Store, tmp_path: Path, n_clips: int = 6, pick: int | None = None, seed: int = 0,
             top_labels: list[str] | None = None) -> Generated:
    """A recording of ``n_clips`` 3 s windows scored by a fake model, and a sampling run picking ``pick`` of them.

    Clip i's top label is ``top_labels[i]`` (default: cycling through SPECIES) with probability 0.6; the
    second label gets 0.25, so it is ticked too (>= 0.1); the rest get 0.02.
    """
    if top_labels is not None:
        n_clips = len(top_labels)
    rng = np.random.default_rng(seed)
    # unique content (the store identifies recordings by content hash), whatever the seed
    audio = write_tone(tmp_path / f"rec-{uuid.uuid4().hex[:8]}.wav", 3.0 * n_clips + 1.0, seed=uuid.uuid4().int % 2**32)
    st = audio.stat()
    rec = store.add_recording(Recording(path=str(audio), content_hash=file_sha256(audio), file_size=st.st_size,
                                        file_mtime_ns=st.st_mtime_ns, site="pond",
                                        device="AM-1", start_time=datetime(2024, 5, 1, 5, 30),
                                        sample_rate=22050, channels=1, duration_s=3.0 * n_clips + 1.0,
                                        status="done"))
    mv = store.ensure_model_version(MODEL, "embedding", MODEL, DIM, SPECIES)
    tops = top_labels or [SPECIES[i % len(SPECIES)] for i in range(n_clips)]
    probs = np.full((n_clips, len(SPECIES)), 0.02, dtype=np.float32)
    for i, lab in enumerate(tops):
        j = SPECIES.index(lab)
        probs[i, j] = 0.6
        probs[i, (j + 1) % len(SPECIES)] = 0.25
    spans = [(3.0 * i, 3.0 * i + 3.0) for i in range(n_clips)]
    ids = store.add_clip_batch(rec.id, spans, mv, probs, rng.standard_normal((n_clips, DIM)).astype(np.float32))
    ids = [int(i) for i in ids]
    chosen = ids[: pick or n_clips]
    run = store.add_sampling_run(
        SamplingRun(strategy="test", params={}, seed=seed, budget=len(chosen), model_version_id=mv.id),
        [Selection(clip_id=c, rank=r + 1, score=1.0 - r / 10, reason="test pick") for r, c in enumerate(chosen)])
    return Generated(clip_ids=chosen, run_id=run.id, top=dict(zip(ids, tops)), probabilities=probs, audio=audio)


@pytest.fixture(scope="session")
def ls_store(labelstudio):
    """The store of the Label Studio session workspace (its clips land under the server's document root)."""
    st = labelstudio.workspace.open_store()
    yield st
    st.close()


@pytest.fixture
def ls_client(labelstudio):
    from annotation.client import LabelStudioClient

    return LabelStudioClient(labelstudio.settings, timeout=60)
