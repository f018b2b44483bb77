"""Reading recordings as BirdNET windows, a chunk at a time.

Field recordings run for hours, so a file is never loaded whole: ``iter_windows`` reads blocks of
``chunk_s`` seconds with soundfile (WAV, FLAC, OGG, MP3), downmixes them to mono, resamples them with
one streaming resampler (``embeddings.resample``: BirdNET-Analyzer's by default; the output is the same
as if the file had been resampled in one go) and cuts consecutive, non-overlapping windows.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import soundfile as sf

from embeddings.files import unusable_file
from embeddings.resample import DEFAULT as DEFAULT_RESAMPLE, Resample, stream as resample_stream

log = logging.getLogger(__name__)

#: File name endings ingest picks up when it walks a folder (compared case-insensitively).
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")

#: A read that stops this much short of the length the header declares is reported as truncated.
_TRUNCATION_TOLERANCE_S = 0.5


class AudioReadError(ValueError):
    """A file that cannot be read as audio; the message names the file and what is wrong with it."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


#: Formats whose header states the length exactly and whose seeks land on the exact frame.
_EXACT_FORMATS = ("WAV", "WAVEX", "RF64", "W64", "AIFF", "FLAC", "CAF")
#: A decoded length this far from a compressed file's header estimate is noted on the recording.
_LENGTH_NOTE_S = 0.01


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says about a recording.

    ``frames`` is what libsndfile reports: for WAV the frames the file really holds, for MP3 and OGG
    an estimate (decoding may give fewer). ``declared_frames`` is what a WAV's data chunk header
    claims: more than ``frames`` means the file was cut short.
    """

    sample_rate: int
    channels: int
    duration_s: float
    frames: int
    format: str = ""
    declared_frames: Optional[int] = None
    subtype: str = ""

    @property
    def exact(self) -> bool:
        """True when the header's length is exact and seeking is frame-exact (WAV, FLAC, AIFF)."""
        return self.format in _EXACT_FORMATS


@dataclass
class DecodeStats:
    """What reading a recording found; filled in by ``iter_windows`` and complete once it is exhausted.

    ``frames`` counts the frames decoded from the file's start at its native rate: the recording's true
    length, which for MP3 and OGG often differs from the header. ``nonfinite`` counts frames whose
    samples were NaN or infinite (replaced by silence). ``notes`` are the warnings reported.
    """

    sample_rate: int = 0
    header_frames: int = 0
    frames: int = 0
    nonfinite: int = 0
    truncated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe(path: str | Path) -> AudioInfo:
    """Read a file's header; raise ``AudioReadError`` saying why the file is not usable audio."""
    path = Path(path)
    problem = unusable_file(path, "an audio", "recorder")
    if problem is not None:
        raise AudioReadError(path, problem)
    try:
        with sf.SoundFile(str(path)) as f:
            info = AudioInfo(sample_rate=int(f.samplerate), channels=int(f.channels),
                             duration_s=float(f.frames) / float(f.samplerate), frames=int(f.frames),
                             format=str(f.format), declared_frames=_wav_declared_frames(path),
                             subtype=str(f.subtype))
    except sf.LibsndfileError as e:
        raise _open_error(path, e) from e
    except (RuntimeError, OSError) as e:
        raise AudioReadError(path, f"cannot be opened as audio ({e})") from e
    if info.sample_rate <= 0 or info.channels <= 0:
        raise AudioReadError(path, f"has an invalid header (sample rate {info.sample_rate}, "
                                   f"{info.channels} channels): the file is corrupt")
    if info.frames <= 0:
        raise AudioReadError(path, "holds no audio samples (a header without data): the file is truncated")
    return info


def _wav_declared_frames(path: Path) -> Optional[int]:
    """Frames a RIFF/WAVE file's data chunk header claims, or None (not WAV, or a streaming placeholder).

    libsndfile quietly reports only the frames the file holds, so a WAV cut short (a copy interrupted,
    a recorder that lost power before closing the file) looks complete; its header still says how
    long it should be.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(fh.fileno()).st_size
            block_align, pos = 0, 12
            while pos + 8 <= size:
                fh.seek(pos)
                chunk = fh.read(8)
                cid, n = chunk[:4], int.from_bytes(chunk[4:8], "little")
                if cid == b"fmt ":
                    fmt = fh.read(min(n, 16))
                    block_align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else 0
                elif cid == b"data":
                    if n in (0, 0xFFFFFFFF) or block_align <= 0:  # size not written yet (streaming writers)
                        return None
                    return n // block_align
                pos += 8 + n + (n & 1)
    except OSError:
        return None
    return None


def _open_error(path: Path, error: Exception) -> AudioReadError:
    """Turn libsndfile's terse open error into a reason a user can act on."""
    detail = str(getattr(error, "error_string", "") or error)
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as e:
        return AudioReadError(path, f"cannot be read ({e.strerror or e})")
    if _looks_like_text(head):
        preview = head[:40].decode("utf-8", errors="replace").splitlines()[0] if head.strip() else ""
        return AudioReadError(path, f"is a text file, not audio (it starts with {preview!r}); "
                                    "remove it from the recordings folder")
    suffix = path.suffix.lower()
    if suffix and suffix not in AUDIO_EXTENSIONS:
        return AudioReadError(path, f"has an unsupported format ({suffix}; libsndfile: {detail}); "
                                    f"convert it to WAV or FLAC")
    known_magic = (head.startswith(b"RIFF") or head.startswith(b"RF64") or head.startswith(b"fLaC")
                   or head.startswith(b"OggS") or head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3"))
    if known_magic:
        return AudioReadError(path, f"is corrupt or truncated: its header cannot be decoded (libsndfile: {detail}); "
                                    "copy it again from the recorder")
    return AudioReadError(path, f"is not a readable audio file: corrupt, or in a format libsndfile does not "
                                f"know (libsndfile: {detail}); expected WAV, FLAC, OGG or MP3")


def _read_blocks(path: Path, first_frame: int, block: int,
                 warn: Callable[[str], None]) -> Iterator[np.ndarray]:
    """Blocks of ``block`` frames (float32, frames x channels) from ``first_frame`` on.

    A decode error (truncated or damaged FLAC/OGG/MP3) loses the whole block being read, so the
    block is read again in one-second steps to keep every frame before the damage.
    """
    def open_at(pos: int) -> sf.SoundFile:
        try:
            f = sf.SoundFile(str(path))
        except sf.LibsndfileError as e:
            raise _open_error(path, e) from e
        if pos:
            try:
                f.seek(pos)
            except (sf.LibsndfileError, RuntimeError) as e:
                f.close()
                raise AudioReadError(path, f"cannot seek to {pos / f.samplerate:.1f} s ({e}); "
                                           "the file may be truncated") from e
        return f

    pos = first_frame
    step = block
    f = open_at(pos)
    try:
        sr = f.samplerate
        while True:
            try:
                data = f.read(step, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                if step > sr:  # retry this block in small steps to keep what decodes
                    f.close()
                    f = open_at(pos)
                    step = int(sr)
                    continue
                if pos == first_frame:
                    raise AudioReadError(path, f"is corrupt: no audio could be decoded ({e}); "
                                               "copy it again from the recorder") from e
                warn(f"{path}: decoding failed at {pos / sr:.1f} s ({e}); the file is truncated or damaged "
                     f"there, keeping the {pos / sr:.1f} s before it")
                return
            if data.shape[0] == 0:
                return
            pos += data.shape[0]
            yield data
            if data.shape[0] < step:
                return
    finally:
        f.close()


def _mono(data: np.ndarray, stats: DecodeStats) -> tuple[np.ndarray, bool]:
    """Frames x channels -> one channel (the mean), NaN/inf replaced by silence and counted in ``stats``;
    also whether any sample was finite. Ingest and the clips annotators hear read through this one rule."""
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    finite = np.isfinite(mono)
    if finite.all():
        return mono, bool(mono.size)
    stats.nonfinite += int(mono.shape[0] - finite.sum())
    return np.where(finite, mono, np.float32(0.0)), bool(finite.any())


def read_span(path: str | Path, start_frame: int, frames: int, *,
              stats: Optional[DecodeStats] = None) -> np.ndarray:
    """Mono float32 samples ``start_frame`` .. ``start_frame + frames`` of a recording at its own rate.

    The audio as ingest decodes it (every subtype as float, channels averaged, NaN/inf as silence),
    without resampling: what an expert hears is what the model scored. Reads by seeking (libsndfile
    seeks WAV, FLAC, OGG and MP3 to the exact frame), so an hours-long file is never decoded whole.
    Fewer samples come back when the file decodes to less; a damaged block keeps what precedes it.
    Raises ``AudioReadError`` naming the file when nothing can be read.
    """
    path = Path(path)
    if start_frame < 0 or frames < 0:
        raise ValueError(f"start_frame and frames must be >= 0, got {start_frame!r} and {frames!r}")
    stats = stats if stats is not None else DecodeStats()
    parts: list[np.ndarray] = []
    got = 0
    if frames:
        for data in _read_blocks(path, int(start_frame), int(frames), lambda msg: stats.notes.append(msg)):
            data = data[: frames - got]
            parts.append(_mono(data, stats)[0])
            got += data.shape[0]
            if got >= frames:
                break
    stats.frames = int(start_frame) + got
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * len(text)


def iter_windows(path: str | Path, *, start_s: float = 0.0, window_s: float = 3.0, target_sr: int = 48000,
                 chunk_s: float = 60.0, min_last_s: float = 1.0,
                 on_warning: Optional[Callable[[str], None]] = None,
                 stats: Optional[DecodeStats] = None,
                 resample: Resample | str = DEFAULT_RESAMPLE) -> Iterator[tuple[float, float, np.ndarray]]:
    """Yield ``(start_s, end_s, samples)`` for consecutive windows of a recording, mono at ``target_sr``.

    Reads ``chunk_s`` seconds at a time, so memory stays bounded whatever the file's length. The last
    partial window is zero-padded when it holds at least ``min_last_s`` seconds, or when it is the
    whole file (a file shorter than one window still gives one window); its ``end_s`` is where the
    decoded audio really ends. ``start_s`` resumes a file part-way: windows before it are not yielded,
    and those after are bit-identical to an uninterrupted read (a file that is resampled, or whose
    format does not seek exactly, is decoded again from its start; only exact formats at the target
    rate are seeked).

    Problems are reported through ``on_warning`` (default: a logged warning) and recorded in
    ``stats``: a WAV whose header claims more data than the file holds, a file whose decoding stops
    early, a decoded length that differs from an MP3/OGG header's estimate, NaN or infinite samples
    (replaced by silence). A file that cannot be decoded at all, or holds no finite sample, raises
    ``AudioReadError`` before any window is yielded. ``resample`` names the resampler for audio not at
    ``target_sr`` (``embeddings.resample``).
    """
    path = Path(path)
    for name, value in (("window_s", window_s), ("chunk_s", chunk_s), ("target_sr", target_sr)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if start_s < 0:
        raise ValueError(f"start_s must be >= 0, got {start_s!r}")
    stats = stats if stats is not None else DecodeStats()
    win = int(round(window_s * target_sr))
    min_last = int(round(min_last_s * target_sr))
    warn = on_warning or (lambda msg: log.warning("%s", msg))

    def note(msg: str) -> None:
        stats.notes.append(msg)
        warn(msg)

    info = probe(path)
    in_sr = info.sample_rate
    stats.sample_rate, stats.header_frames = in_sr, info.frames
    if info.declared_frames is not None and info.declared_frames > info.frames:
        stats.truncated = True
        note(f"{path}: its header declares {info.declared_frames / in_sr:.1f} s but the file holds only "
             f"{info.frames / in_sr:.1f} s: the file is truncated (a copy cut short, or a recorder that lost "
             f"power); keeping the audio that is there")
    resampler = resample_stream(resample, in_sr, target_sr)
    seek = resampler is None and info.exact  # else decode from the start: the only way to be bit-exact
    first_frame = int(round(start_s * in_sr)) if seek else 0
    if seek and first_frame >= info.frames:
        stats.frames = info.frames
        return
    block = max(1, int(round(chunk_s * in_sr)))
    origin = first_frame / in_sr  # time of the first decoded frame
    pending = np.zeros(0, dtype=np.float32)
    index = 0
    frames_read = 0
    seen_finite = False
    deferred: list[float] = []  # window starts held back while every sample so far was NaN/inf (all zeros)

    def cut(final: bool) -> Iterator[tuple[float, float, np.ndarray]]:
        nonlocal pending, index
        while pending.shape[0] >= win or (final and pending.shape[0] > 0):
            rest = min(win, pending.shape[0])
            t = round(origin + index * window_s, 6)
            end = t + window_s if rest == win else round(t + rest / target_sr, 6)
            keep = rest == win or rest >= min_last or (index == 0 and origin == 0.0)
            samples = pending[:win]
            pending, index = pending[win:], index + 1
            if not keep or t < start_s - 1e-6:
                continue
            if not seen_finite:
                deferred.append(t)
                continue
            out = np.zeros(win, dtype=np.float32)
            out[:rest] = samples
            yield t, end, out

    def flush_deferred() -> Iterator[tuple[float, float, np.ndarray]]:
        for t in deferred:
            yield t, t + window_s, np.zeros(win, dtype=np.float32)
        deferred.clear()

    for data in _read_blocks(path, first_frame, block, note):
        frames_read += data.shape[0]
        mono, finite = _mono(data, stats)
        if not seen_finite and finite:
            seen_finite = True
            yield from flush_deferred()
        out = mono if resampler is None else resampler.resample_chunk(np.ascontiguousarray(mono))
        pending = np.concatenate([pending, out]) if pending.size else out
        yield from cut(final=False)
    if resampler is not None:
        pending = np.concatenate([pending, resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)])
    stats.frames = first_frame + frames_read
    if not seen_finite and stats.nonfinite:
        raise AudioReadError(path, f"holds no usable audio: all {stats.nonfinite} of its samples are NaN or "
                                   f"infinite; the file is corrupt (re-export it from the recorder or the editor)")
    # the tail: the last partial window ends where the decoded audio ends (the resampler's flush
    # can pad a few samples beyond it)
    total = int(round((stats.frames - first_frame) * target_sr / in_sr)) - index * win
    pending = pending[:max(0, total)]
    yield from cut(final=True)
    if stats.nonfinite:
        note(f"{path}: {stats.nonfinite} samples ({100 * stats.nonfinite / max(1, frames_read):.2g}%) were NaN or "
             f"infinite and were replaced by silence; check the recorder or the software that wrote the file")
    if any("decoding failed" in n for n in stats.notes):
        stats.truncated = True
    elif not stats.truncated:
        diff = stats.frames - info.frames
        if info.exact and -diff > _TRUNCATION_TOLERANCE_S * in_sr:
            stats.truncated = True
            note(f"{path}: the header declares {info.duration_s:.1f} s but the audio ends at "
                 f"{stats.duration_s:.1f} s; the file is truncated, keeping what is there")
        elif not info.exact and abs(diff) > _LENGTH_NOTE_S * in_sr:
            note(f"{path}: its header estimates {info.duration_s:.2f} s but it decodes to {stats.duration_s:.2f} s "
                 f"(usual for {info.format or 'compressed'} files); the decoded length is used")
