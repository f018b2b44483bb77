"""Reading recordings as BirdNET windows, a chunk at a time.

Field recordings run for hours, so a file is never loaded whole: ``iter_windows`` reads blocks of
``chunk_s`` seconds with soundfile (WAV, FLAC, OGG, MP3), downmixes them to mono, resamples them with
one streaming soxr resampler (so the output is continuous across blocks, as if the file had been
resampled in one go) and cuts consecutive, non-overlapping windows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import soundfile as sf
import soxr

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


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says about a recording."""

    sample_rate: int
    channels: int
    duration_s: float
    frames: int
    format: str = ""


def probe(path: str | Path) -> AudioInfo:
    """Read a file's header; raise ``AudioReadError`` saying why the file is not usable audio."""
    path = Path(path)
    try:
        if path.is_dir():
            raise AudioReadError(path, "is a folder, not an audio file")
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise AudioReadError(path, "does not exist (moved or deleted?)") from e
    except OSError as e:
        raise AudioReadError(path, f"cannot be read ({e.strerror or e})") from e
    if size == 0:
        raise AudioReadError(path, "is empty (0 bytes): the recorder or the copy failed; "
                                   "copy the file again or delete it")
    try:
        with sf.SoundFile(str(path)) as f:
            info = AudioInfo(sample_rate=int(f.samplerate), channels=int(f.channels),
                             duration_s=float(f.frames) / float(f.samplerate), frames=int(f.frames),
                             format=str(f.format))
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
                 on_warning: Optional[Callable[[str], None]] = None
                 ) -> Iterator[tuple[float, float, np.ndarray]]:
    """Yield ``(start_s, end_s, samples)`` for consecutive windows of a recording, mono at ``target_sr``.

    Reads ``chunk_s`` seconds at a time, so memory stays bounded whatever the file's length. The last
    partial window is zero-padded when it holds at least ``min_last_s`` seconds, or when it is the
    whole file (a file shorter than one window still gives one window); its ``end_s`` is where the
    audio really ends. ``start_s`` resumes a file part-way (windows then start at ``start_s``).

    A file whose data stops before its header says (a truncated copy, a recorder that lost power)
    yields the windows it has and reports the truncation through ``on_warning`` (default: a
    logged warning); a file that cannot be decoded at all raises ``AudioReadError``.
    """
    path = Path(path)
    for name, value in (("window_s", window_s), ("chunk_s", chunk_s), ("target_sr", target_sr)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if start_s < 0:
        raise ValueError(f"start_s must be >= 0, got {start_s!r}")
    win = int(round(window_s * target_sr))
    min_last = int(round(min_last_s * target_sr))
    warn = on_warning or (lambda msg: log.warning("%s", msg))
    warned: list[str] = []

    def warn_once(msg: str) -> None:
        warned.append(msg)
        warn(msg)

    info = probe(path)
    in_sr = info.sample_rate
    first_frame = int(round(start_s * in_sr))
    if first_frame >= info.frames:
        return
    block = max(1, int(round(chunk_s * in_sr)))
    resampler = None if in_sr == target_sr else soxr.ResampleStream(in_sr, target_sr, 1, dtype="float32",
                                                                      quality="HQ")
    pending = np.zeros(0, dtype=np.float32)
    index = 0
    frames_read = 0
    for data in _read_blocks(path, first_frame, block, warn_once):
        frames_read += data.shape[0]
        mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
        if not np.isfinite(mono).all():
            mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0)
        out = mono if resampler is None else resampler.resample_chunk(np.ascontiguousarray(mono))
        pending = np.concatenate([pending, out]) if pending.size else out
        while pending.shape[0] >= win:
            t = start_s + index * window_s
            yield t, t + window_s, np.array(pending[:win], dtype=np.float32)
            pending = pending[win:]
            index += 1
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        pending = np.concatenate([pending, tail])
        while pending.shape[0] >= win:  # the flush can complete a window
            t = start_s + index * window_s
            yield t, t + window_s, np.array(pending[:win], dtype=np.float32)
            pending = pending[win:]
            index += 1
    expected = info.frames - first_frame
    if not warned and expected - frames_read > _TRUNCATION_TOLERANCE_S * in_sr:
        warn(f"{path}: the header declares {info.duration_s:.1f} s but the audio ends at "
             f"{(first_frame + frames_read) / in_sr:.1f} s; the file is truncated, keeping what is there")
    rest = pending.shape[0]
    t = start_s + index * window_s
    if rest > 0 and (rest >= min_last or (index == 0 and start_s == 0.0)):
        samples = np.zeros(win, dtype=np.float32)
        samples[:rest] = pending
        yield t, round(t + rest / target_sr, 6), samples
