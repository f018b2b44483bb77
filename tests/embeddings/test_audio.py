"""Chunked reading: windows, padding, resampling, resuming, and what a bad file says."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr

from embeddings.audio import AudioReadError, DecodeStats, iter_windows, probe
from tests.conftest import shared_path
from tests.embeddings.audio_files import write_tone

WIN = 144000


def _windows(path, **kw):
    return list(iter_windows(path, **kw))


def test_probe_reads_the_header(tmp_path):
    path = write_tone(tmp_path / "stereo.wav", 2.5, sr=32000, channels=2)
    info = probe(path)
    assert (info.sample_rate, info.channels, info.frames) == (32000, 2, 80000)
    assert info.duration_s == pytest.approx(2.5)


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """Ten minutes at 32 kHz: a chirp sweeping the bird band plus noise."""
    path = tmp_path_factory.mktemp("long") / "ten_minutes_32k.wav"
    sr, seconds, period = 32000, 600, 7
    t = np.arange(sr * period) / sr
    chirp = 0.3 * np.sin(2 * np.pi * np.cumsum(1000 + 1000 * t) / sr)
    x = np.resize(chirp.astype(np.float32), sr * seconds)
    x += 0.02 * np.random.default_rng(1).standard_normal(x.shape, dtype=np.float32)
    sf.write(path, x, sr, subtype="PCM_16")
    return path


def test_long_file_windows_do_not_depend_on_chunk_size(long_file, monkeypatch):
    requested = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    big = _windows(long_file, chunk_s=60.0)
    requested.clear()
    small = _windows(long_file, chunk_s=0.7)
    assert requested and max(requested) == int(round(0.7 * 32000)), "reads must stay within one chunk"
    odd = _windows(long_file, chunk_s=7.3)

    assert len(big) == len(small) == len(odd) == 200
    assert [w[:2] for w in big] == [(3.0 * i, 3.0 * i + 3.0) for i in range(200)]
    for a, b, c in zip(big, small, odd):
        np.testing.assert_allclose(a[2], b[2], atol=1e-6)
        np.testing.assert_allclose(a[2], c[2], atol=1e-6)
        assert a[2].dtype == np.float32 and a[2].shape == (WIN,)


@pytest.mark.parametrize("resample", ["analyzer", "soxr-hq"])
def test_long_file_windows_match_a_whole_file_resample(long_file, resample):
    """Streamed in 13 s blocks, the windows are the file resampled in one go: BirdNET-Analyzer's way (librosa's
    kaiser_fast, the default) to the bit, soxr's HQ within its streaming tolerance."""
    whole, sr = sf.read(long_file, dtype="float32")
    if resample == "analyzer":
        import librosa

        reference = librosa.resample(whole, orig_sr=sr, target_sr=48000, res_type="kaiser_fast")
    else:
        reference = soxr.resample(whole, sr, 48000, quality="HQ")
    windows = list(iter_windows(long_file, chunk_s=13.0, resample=resample))
    assert len(windows) == len(reference) // WIN
    streamed = np.concatenate([w[2] for w in windows])
    if resample == "analyzer":
        np.testing.assert_array_equal(streamed, reference[: len(streamed)])
    else:
        np.testing.assert_allclose(streamed, reference[: len(streamed)], atol=1e-5)


def test_memory_stays_within_a_chunk(long_file):
    # The whole file resampled to 48 kHz float32 would take 115 MB; chunked reading must stay far below.
    tracemalloc.start()
    try:
        n = sum(1 for _ in iter_windows(long_file, chunk_s=5.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 200
    assert peak < 20e6, f"peak traced memory {peak / 1e6:.1f} MB"


@pytest.mark.parametrize("seconds, spans", [
    (2.0, [(0.0, 2.0)]),                       # shorter than a window: one padded window
    (0.4, [(0.0, 0.4)]),                       # even very short, when it is the only window
    (7.5, [(0.0, 3.0), (3.0, 6.0), (6.0, 7.5)]),  # a 1.5 s tail is kept, padded
    (6.5, [(0.0, 3.0), (3.0, 6.0)]),          # a 0.5 s tail is dropped
    (6.0, [(0.0, 3.0), (3.0, 6.0)]),
])
def test_last_partial_window(tmp_path, seconds, spans):
    path = write_tone(tmp_path / "clip.wav", seconds, sr=48000)
    windows = _windows(path)
    assert [(s, pytest.approx(e)) for s, e, _ in windows] == spans
    last_start, last_end, last = windows[-1]
    real = int(round((last_end - last_start) * 48000))
    assert last.shape == (WIN,)
    if real < WIN:
        assert np.all(last[real:] == 0) and np.any(last[:real] != 0)


def test_stereo_44k_is_downmixed_and_resampled(tmp_path):
    stereo = write_tone(tmp_path / "stereo.wav", 6.0, sr=44100, channels=2)
    data, _ = sf.read(stereo, dtype="float32")
    mono = tmp_path / "mono.wav"
    sf.write(mono, data.mean(axis=1), 44100, subtype="FLOAT")
    a, b = _windows(stereo), _windows(mono)
    assert len(a) == len(b) == 2
    for (sa, ea, wa), (sb, eb, wb) in zip(a, b):
        assert (sa, ea) == (sb, eb)
        np.testing.assert_allclose(wa, wb, atol=1e-4)


def test_8khz_keeps_its_pitch(tmp_path):
    path = write_tone(tmp_path / "low.wav", 6.0, sr=8000, freq=3000.0)
    (_, _, w), _ = _windows(path)
    spectrum = np.abs(np.fft.rfft(w))
    peak_hz = np.argmax(spectrum) * 48000 / len(w)
    assert peak_hz == pytest.approx(3000.0, abs=2.0)


def test_resume_from_start_s(tmp_path):
    path = write_tone(tmp_path / "twelve.wav", 12.0, sr=48000)
    full = _windows(path)
    resumed = _windows(path, start_s=6.0)
    assert [w[:2] for w in resumed] == [(6.0, 9.0), (9.0, 12.0)]
    for a, b in zip(full[2:], resumed):
        np.testing.assert_array_equal(a[2], b[2])
    assert _windows(path, start_s=12.0) == []


@pytest.mark.parametrize("name, sr, subtype", [("twelve32.wav", 32000, "PCM_16"), ("twelve.mp3", 44100, None),
                                                ("twelve.ogg", 48000, None)])
def test_resume_is_bit_identical_to_an_uninterrupted_read(tmp_path, name, sr, subtype):
    """A resampled or compressed file resumed part-way gives exactly the windows of a read from the start."""
    path = write_tone(tmp_path / name, 12.0, sr=sr, subtype=subtype)
    full = _windows(path)
    resumed = _windows(path, start_s=6.0)
    assert [w[:2] for w in resumed] == [w[:2] for w in full[2:]]
    for a, b in zip(full[2:], resumed):
        np.testing.assert_array_equal(a[2], b[2])


def test_a_wav_cut_short_is_detected_from_its_header(tmp_path):
    """libsndfile reports only the frames a cut WAV holds; its header still says how long it should be."""
    good = write_tone(tmp_path / "good.wav", 12.0, sr=48000)
    path = tmp_path / "cut.wav"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert probe(path).declared_frames == 12 * 48000 and probe(path).frames < 7 * 48000
    stats, warnings = DecodeStats(), []
    windows = list(iter_windows(path, on_warning=warnings.append, stats=stats))
    assert [w[0] for w in windows] == [0.0, 3.0] and windows[-1][1] == pytest.approx(6.0, abs=1e-3)
    assert stats.truncated and len(warnings) == 1
    assert "cut.wav" in warnings[0] and "declares 12.0 s" in warnings[0] and "truncated" in warnings[0]
    assert probe(good).declared_frames == probe(good).frames  # a whole file is not flagged


def test_nan_samples_are_counted_and_replaced_by_silence(tmp_path):
    x = np.sin(np.linspace(0, 2000, 16000 * 6)).astype(np.float32)
    x[16000:16100] = np.nan
    x[20000] = np.inf
    path = tmp_path / "holes.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    stats, warnings = DecodeStats(), []
    windows = list(iter_windows(path, on_warning=warnings.append, stats=stats))
    assert len(windows) == 2 and all(np.isfinite(w[2]).all() for w in windows)
    assert stats.nonfinite == 101
    assert len(warnings) == 1 and "holes.wav" in warnings[0] and "101 samples" in warnings[0]


def test_a_file_of_nothing_but_nan_fails_by_name_before_any_window(tmp_path):
    path = tmp_path / "allnan.wav"
    sf.write(path, np.full(16000 * 10, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    got = []
    with pytest.raises(AudioReadError, match="allnan.wav.*all 160000 of its samples are NaN or infinite"):
        for w in iter_windows(path, chunk_s=1.0):
            got.append(w)
    assert got == []  # nothing reached the caller, so nothing partial can be stored
    # leading NaN followed by audio: the held-back windows come out, in order
    x = np.full(16000 * 9, np.nan, dtype=np.float32)
    x[16000 * 7:] = 0.1
    sf.write(path, x, 16000, subtype="FLOAT")
    windows = list(iter_windows(path, chunk_s=1.0, on_warning=lambda m: None))
    assert [w[0] for w in windows] == [0.0, 3.0, 6.0] and not windows[0][2].any() and windows[2][2].any()


def test_an_mp3_keeps_its_decoded_length_not_its_header_estimate():
    path = shared_path("audio", "annotated", "opensoundscape_GWWA_XC135601.mp3")
    info = probe(path)
    assert info.frames == 454177 and not info.exact  # the header's estimate: 10.30 s
    stats, warnings = DecodeStats(), []
    windows = list(iter_windows(path, on_warning=warnings.append, stats=stats))
    assert stats.frames == 441216 and stats.duration_s == pytest.approx(10.005, abs=1e-3)
    assert windows[-1][:2] == (9.0, pytest.approx(10.0049, abs=1e-4))
    assert not stats.truncated and len(warnings) == 1 and "decodes to 10.00 s" in warnings[0]


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3"])
def test_compressed_formats(tmp_path, fmt):
    path = write_tone(tmp_path / f"clip.{fmt}", 6.0, sr=32000, subtype=None)
    windows = _windows(path)
    assert [w[:2] for w in windows][:2] == [(0.0, 3.0), (3.0, 6.0)]
    assert all(np.isfinite(w[2]).all() for w in windows)


def test_silence_is_valid_audio(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000 * 4, dtype=np.float32), 16000)
    windows = _windows(path)
    assert len(windows) == 2 and all(not w[2].any() for w in windows)


def test_truncated_flac_keeps_what_decodes_and_warns(tmp_path):
    path = write_tone(tmp_path / "cut.flac", 12.0, sr=32000, subtype=None)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    warnings: list[str] = []
    windows = list(iter_windows(path, on_warning=warnings.append))
    assert 1 <= len(windows) < 4
    assert warnings and "cut.flac" in warnings[0] and "truncated" in warnings[0]


# ---------------------------------------------------------------------------- bad files
def _error(path) -> str:
    with pytest.raises(AudioReadError) as info:
        probe(path)
    with pytest.raises(AudioReadError):
        list(iter_windows(path))
    assert isinstance(info.value, ValueError)
    assert info.value.path == path
    message = str(info.value)
    assert path.name in message
    return message


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    assert "empty (0 bytes)" in _error(path)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("site A, recorder 3, battery low\n")
    assert "text file" in _error(path)


def test_random_bytes_named_wav(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    assert "not a readable audio file" in _error(path)


def test_wav_truncated_in_its_header(tmp_path):
    good = write_tone(tmp_path / "good.wav", 3.0)
    path = tmp_path / "cut.wav"
    path.write_bytes(good.read_bytes()[:30])
    assert "corrupt or truncated" in _error(path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "voice_memo.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    assert "unsupported format" in _error(path)


def test_missing_file_and_folder(tmp_path):
    assert "does not exist" in _error(tmp_path / "gone.wav")
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    assert "folder" in _error(folder)


def test_bad_arguments(tmp_path):
    path = write_tone(tmp_path / "ok.wav", 1.0)
    with pytest.raises(ValueError, match="window_s"):
        list(iter_windows(path, window_s=0))
    with pytest.raises(ValueError, match="start_s"):
        list(iter_windows(path, start_s=-1))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = write_tone(tmp_path / "locked.wav", 1.0)
    path.chmod(0)
    assert "cannot" in _error(path)
