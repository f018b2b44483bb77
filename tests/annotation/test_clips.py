"""cut_clip: window + context, clamped to the file, native rate, mono, read by ingest's reader for every subtype, idempotent."""

from __future__ import annotations

import os
from datetime import datetime

import numpy as np
import pytest
import soundfile as sf

from annotation.clips import check_sources, clip_filename, cut_clip
from annotation.errors import AnnotationError
from store import ClipInfo
from tests.conftest import shared_path

SR = 8000


def info(path, start, end, clip_id=7, modality="audio"):
    return ClipInfo(clip_id=clip_id, recording_id=1, path=str(path), modality=modality, start_s=start, end_s=end,
                    site="pond", device="AM-1", start_time=datetime(2024, 5, 1, 5, 0), sample_rate=None)


@pytest.fixture
def ramp(tmp_path):
    """20 s mono 16-bit file whose sample i holds i // 8 (so every sample's position can be read back)."""
    data = (np.arange(20 * SR) // 8).astype(np.int16)
    path = tmp_path / "ramp.wav"
    sf.write(path, data, SR, subtype="PCM_16")
    return path, data


def test_window_with_context_in_the_middle(ramp, tmp_path):
    path, data = ramp
    cut = cut_clip(info(path, 6.0, 9.0), tmp_path / "clips", context_s=2.0)
    assert cut.path == tmp_path / "clips" / clip_filename(7) and cut.path.name == "clip-7.wav"
    assert (cut.window_start, cut.window_end, cut.duration, cut.sample_rate) == (2.0, 5.0, 7.0, SR)
    got, sr = sf.read(cut.path, dtype="int16")
    meta = sf.info(str(cut.path))
    assert sr == SR and meta.channels == 1 and meta.subtype == "PCM_16" and meta.format == "WAV"
    np.testing.assert_array_equal(got, data[4 * SR: 11 * SR])  # exact samples: 4 s .. 11 s


def test_clamped_at_file_start(ramp, tmp_path):
    path, data = ramp
    cut = cut_clip(info(path, 1.0, 4.0), tmp_path, context_s=2.0)
    assert (cut.window_start, cut.window_end, cut.duration) == (1.0, 4.0, 6.0)
    np.testing.assert_array_equal(sf.read(cut.path, dtype="int16")[0], data[: 6 * SR])


def test_clamped_at_file_end(ramp, tmp_path):
    path, data = ramp
    cut = cut_clip(info(path, 18.0, 21.0), tmp_path, context_s=2.0)  # last window runs past the end (20 s)
    assert (cut.window_start, cut.window_end, cut.duration) == (2.0, 4.0, 4.0)
    np.testing.assert_array_equal(sf.read(cut.path, dtype="int16")[0], data[16 * SR:])


def test_zero_context_is_the_window(ramp, tmp_path):
    path, data = ramp
    cut = cut_clip(info(path, 3.0, 6.0), tmp_path, context_s=0.0)
    assert (cut.window_start, cut.window_end) == (0.0, 3.0)
    np.testing.assert_array_equal(sf.read(cut.path, dtype="int16")[0], data[3 * SR: 6 * SR])


def test_reused_when_present_and_recut_when_context_changes(ramp, tmp_path):
    path, _ = ramp
    first = cut_clip(info(path, 6.0, 9.0), tmp_path)
    stamp = first.path.stat().st_mtime_ns
    os.utime(first.path, ns=(stamp - 10**9, stamp - 10**9))
    again = cut_clip(info(path, 6.0, 9.0), tmp_path)
    assert again == first and first.path.stat().st_mtime_ns == stamp - 10**9  # not rewritten
    wider = cut_clip(info(path, 6.0, 9.0), tmp_path, context_s=3.0)
    assert wider.duration == 9.0 and sf.info(str(wider.path)).frames == 9 * SR
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_stereo_is_mixed_to_mono_at_native_rate(tmp_path):
    sr = 44100
    left = np.full(5 * sr, 0.5, dtype=np.float32)
    right = np.zeros(5 * sr, dtype=np.float32)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, right], axis=1), sr, subtype="PCM_16")
    cut = cut_clip(info(path, 1.0, 2.0), tmp_path / "out", context_s=0.5)
    got, got_sr = sf.read(cut.path)
    assert got_sr == sr and got.ndim == 1 and len(got) == 2 * sr
    assert np.allclose(got, 0.25, atol=1e-3)


def test_flac_input(tmp_path):
    data = (np.arange(10 * SR) // 8).astype(np.int16)
    path = tmp_path / "in.flac"
    sf.write(path, data, SR, subtype="PCM_16")
    cut = cut_clip(info(path, 3.0, 6.0), tmp_path / "out")
    np.testing.assert_array_equal(sf.read(cut.path, dtype="int16")[0], data[1 * SR: 8 * SR])


def test_mp3_input(tmp_path):
    sr = 16000
    t = np.arange(12 * sr) / sr
    path = tmp_path / "in.mp3"
    sf.write(path, (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, format="MP3")
    frames = sf.info(str(path)).frames
    cut = cut_clip(info(path, 6.0, 9.0), tmp_path / "out")
    meta = sf.info(str(cut.path))
    assert meta.samplerate == sr and meta.channels == 1 and meta.subtype == "PCM_16"
    assert meta.frames == min(frames, 11 * sr) - 4 * sr
    assert (cut.window_start, cut.window_end) == (2.0, 5.0)
    got = sf.read(cut.path)[0]
    assert 0.2 < np.abs(got).max() <= 0.5  # the tone, not silence


def test_errors_name_the_clip_and_file(ramp, tmp_path):
    path, _ = ramp
    with pytest.raises(AnnotationError, match=r"clip 7 starts at 25.0 s .*decodes to only 20.00 s"):
        cut_clip(info(path, 25.0, 28.0), tmp_path)
    with pytest.raises(AnnotationError, match=r"cannot read clip 7 from .*missing.wav"):
        cut_clip(info(tmp_path / "missing.wav", 0.0, 3.0), tmp_path)
    with pytest.raises(AnnotationError, match="not audio"):
        cut_clip(info(path, 0.0, 3.0, modality="image"), tmp_path)
    with pytest.raises(ValueError, match="context_s"):
        cut_clip(info(path, 0.0, 3.0), tmp_path, context_s=-1)


def test_an_mp3_whose_header_promises_more_than_decodes_is_clamped_not_refused(tmp_path):
    """The header of this real mp3 says 10.30 s; it decodes to 10.00 s. Its last window still gets its clip."""
    src = shared_path("audio", "annotated", "opensoundscape_GWWA_XC135601.mp3")
    decoded = 441216
    last = info(src, 9.0, 10.004898, clip_id=10)
    for frames in (decoded, None):  # the decoded length as 0.2 stores it, and a 0.1 recording without it
        last.frames = frames
        cut = cut_clip(last, tmp_path / f"clips-{frames}", context_s=2.0)
        meta = sf.info(str(cut.path))
        assert meta.frames == decoded - 7 * 44100  # context from 7.0 s to the end of the decoded audio
        assert (cut.window_start, cut.window_end) == (2.0, pytest.approx(3.0049, abs=1e-4))
    beyond = info(src, 10.2, 10.3, clip_id=11)
    with pytest.raises(AnnotationError, match="clip 11's window .*lies beyond the audio .*GWWA"):
        cut_clip(beyond, tmp_path / "none", context_s=0.0)


def test_sources_are_checked_cheaply_and_by_hash_when_their_mtime_moved(ramp, tmp_path):
    from store import Recording, Store
    from store.sources import file_sha256

    path, _ = ramp
    store = Store.open(tmp_path / "ws")
    st = path.stat()
    rec = store.add_recording(Recording(path=str(path), content_hash=file_sha256(path), file_size=st.st_size,
                                        file_mtime_ns=st.st_mtime_ns, status="done"))
    clip = info(path, 0.0, 3.0)
    clip.recording_id, clip.content_hash = rec.id, rec.content_hash
    clip.file_size, clip.file_mtime_ns = st.st_size, st.st_mtime_ns
    assert check_sources(store, [clip]) == {rec.id: None}
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: same content
    assert check_sources(store, [clip]) == {rec.id: None}
    assert store.recordings()[0].file_mtime_ns == st.st_mtime_ns + 10**9  # remembered: cheap next time
    data = path.read_bytes()
    path.write_bytes(data[:-2] + b"\x01\x02")  # same size, other content
    assert "ramp.wav changed since it was ingested" in check_sources(store, [clip])[rec.id]
    path.unlink()
    assert "ramp.wav is missing" in check_sources(store, [clip])[rec.id]
    store.close()


# ---------------------------------------------------------------------------- audio as recorded, every subtype
def _field_like(sr: int, seconds: float, channels: int = 1, seed: int = 3) -> np.ndarray:
    """A quiet chirp over noise (peak ~0.2): every sample distinct, so a shifted or silenced clip shows."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.15 * np.sin(2 * np.pi * (1500 + 400 * t) * t) + 0.02 * rng.standard_normal(t.size)
    return np.stack([x * (0.5 + 0.5 * c) for c in range(channels)], axis=1) if channels > 1 else x


def _write(path, data, sr, subtype, fmt=None):
    if fmt == "OGG":  # libsndfile's vorbis encoder crashes on one large write: feed it blocks
        with sf.SoundFile(path, "w", sr, data.shape[1] if data.ndim > 1 else 1, subtype=subtype, format=fmt) as f:
            for i in range(0, len(data), 4096):
                f.write(data[i:i + 4096])
    else:
        sf.write(path, data, sr, subtype=subtype, format=fmt)


SUBTYPES = [  # (file name, format, subtype, channels, clip subtype, tolerance against the decoded source)
    ("u8.wav", "WAV", "PCM_U8", 1, "PCM_16", 0.0),
    ("s16.wav", "WAV", "PCM_16", 1, "PCM_16", 0.0),
    ("s24.wav", "WAV", "PCM_24", 1, "FLOAT", 0.0),
    ("s32.wav", "WAV", "PCM_32", 1, "FLOAT", 0.0),
    ("float.wav", "WAV", "FLOAT", 1, "FLOAT", 0.0),
    ("double.wav", "WAV", "DOUBLE", 1, "FLOAT", 0.0),
    ("float-stereo.wav", "WAV", "FLOAT", 2, "FLOAT", 0.0),
    ("s24-4ch.wav", "WAV", "PCM_24", 4, "FLOAT", 0.0),
    ("s8.flac", "FLAC", "PCM_S8", 1, "PCM_16", 0.0),
    ("s24.flac", "FLAC", "PCM_24", 2, "FLOAT", 0.0),
    ("vorbis.ogg", "OGG", "VORBIS", 1, "PCM_16", 1.0 / 32767),
    ("layer3.mp3", "MP3", "MPEG_LAYER_III", 2, "PCM_16", 1.0 / 32767),
]


@pytest.mark.parametrize("name,fmt,subtype,channels,clip_subtype,tol", SUBTYPES, ids=[s[0] for s in SUBTYPES])
def test_every_subtype_gives_the_samples_of_its_window(tmp_path, name, fmt, subtype, channels, clip_subtype, tol):
    """The clip holds the source window's samples as ingest decodes them (float, channels averaged)."""
    sr = 22050
    path = tmp_path / name
    _write(path, _field_like(sr, 12.0, channels).astype(np.float32), sr, subtype, fmt)
    decoded = sf.read(str(path), dtype="float32", always_2d=True)[0].mean(axis=1, dtype=np.float32)
    cut = cut_clip(info(path, 6.0, 9.0), tmp_path / "clips", context_s=2.0)
    meta = sf.info(str(cut.path))
    assert (meta.samplerate, meta.channels, meta.subtype) == (sr, 1, clip_subtype)
    got = sf.read(str(cut.path), dtype="float32")[0]
    want = decoded[4 * sr: 4 * sr + len(got)]
    assert len(got) == min(len(decoded), 11 * sr) - 4 * sr
    np.testing.assert_allclose(got, want, rtol=0, atol=tol + 1.0 / 32767 * (clip_subtype == "PCM_16"))
    assert np.abs(got).max() > 0.1  # audible, not digital silence


def test_a_float_recording_is_heard_as_recorded(tmp_path):
    """The issue's repro: a real field recording saved as 32-bit float gives audible clips true to the source."""
    src = shared_path("audio", "recordings", "opensoundscape_birds_10s.wav")
    data, sr = sf.read(str(src), dtype="float64")
    path = tmp_path / "birds-float.wav"
    sf.write(path, data, sr, subtype="FLOAT")
    cut = cut_clip(info(path, 3.0, 6.0), tmp_path / "clips", context_s=2.0)
    got = sf.read(str(cut.path), dtype="float32")[0]
    mono = data if data.ndim == 1 else data.mean(axis=1)
    np.testing.assert_allclose(got, mono[1 * sr: 8 * sr].astype(np.float32), atol=1e-6)
    assert np.abs(got).max() > 0.01


def test_a_silent_clip_left_by_an_earlier_release_is_cut_again(tmp_path):
    """0.2 cut float files as int16 and wrote digital silence of the right length: such a clip is not reused."""
    sr = 16000
    path = tmp_path / "float.wav"
    sf.write(path, _field_like(sr, 10.0), sr, subtype="FLOAT")
    out = tmp_path / "clips"
    out.mkdir()
    sf.write(out / clip_filename(7), np.zeros(7 * sr, dtype=np.int16), sr, subtype="PCM_16")
    cut = cut_clip(info(path, 3.0, 6.0), out, context_s=2.0)
    assert np.abs(sf.read(str(cut.path))[0]).max() > 0.1


def test_a_clip_that_would_come_out_silent_is_refused_naming_the_file(tmp_path, monkeypatch):
    import annotation.clips as clips

    sr = 16000
    path = tmp_path / "float.wav"
    sf.write(path, _field_like(sr, 10.0), sr, subtype="FLOAT")
    real_write = clips.sf.write
    monkeypatch.setattr(clips.sf, "write", lambda file, data, *a, **kw: real_write(file, np.zeros_like(data), *a, **kw))
    with pytest.raises(AnnotationError, match=r"clip 7 of .*float.wav came out silent although its window holds sound"):
        cut_clip(info(path, 3.0, 6.0), tmp_path / "clips")
    assert not (tmp_path / "clips" / clip_filename(7)).exists()


def test_a_silent_window_is_a_silent_clip(tmp_path):
    sr = 16000
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(10 * sr, dtype=np.float32), sr, subtype="FLOAT")
    cut = cut_clip(info(path, 3.0, 6.0), tmp_path / "clips")
    assert np.abs(sf.read(str(cut.path))[0]).max() == 0.0
