"""Spectrogram images of annotator clips: what an expert scans before listening, in the app and in Label Studio.

One renderer for both, so the app and the annotators see the same picture: a PNG next to the clip
(``clip-<id>.png`` beside ``clip-<id>.wav``), time in seconds, frequency in kHz, the window the model
scored between two orange lines with the context on both sides dimmed. The STFT is numpy/scipy and the
figure is drawn with numpy and Pillow (matplotlib's magma colours and DejaVu font; no pyplot, nothing
global: safe in Streamlit's threads and in push's worker threads). A PNG is written to a temporary name and renamed, so Label Studio never serves
half an image, and it is reused while it is not older than its clip.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf
from scipy import signal

from annotation.clips import CutClip
from annotation.config import WINDOW_COLOR
from annotation.errors import AnnotationError
from store.atomic import write_atomically

log = logging.getLogger(__name__)

# BirdNET listens up to 15 kHz; above that a field recorder mostly adds hiss.
DEFAULT_MAX_KHZ = 15.0
DYNAMIC_RANGE_DB = 80.0
WIDTH_PX, HEIGHT_PX = 900, 260
PLOT = (58, WIDTH_PX - 10, 8, HEIGHT_PX - 46)  # left, right, top, bottom of the spectrogram in the image
PLOT_WIDTH_PX = PLOT[1] - PLOT[0]
LEVELS = 120  # colour levels of the spectrogram; the same again dimmed, then white, black and orange
WHITE, BLACK, ORANGE = 2 * LEVELS, 2 * LEVELS + 1, 2 * LEVELS + 2


def spectrogram_path(clip_path: Path | str) -> Path:
    """Where a clip's spectrogram lives: the clip's name with ``.png`` (``clip-7.wav`` -> ``clip-7.png``)."""
    return Path(clip_path).with_suffix(".png")


def _fresh(image: Path, clip: Path) -> bool:
    try:
        return image.stat().st_mtime_ns >= clip.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def _stft_db(x: np.ndarray, sr: int, max_khz: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (kHz), frame times (s) and power in dB (top ``DYNAMIC_RANGE_DB`` kept) up to ``max_khz``."""
    nperseg = int(2 ** np.clip(np.round(np.log2(sr * 0.023)), 8, 12))  # ~23 ms: 512 samples at 22.05 kHz
    nperseg = min(nperseg, max(16, x.size))
    hop = max(nperseg // 4, x.size // PLOT_WIDTH_PX)  # no more frames than the plot has pixel columns
    freqs, times, power = signal.spectrogram(x, fs=sr, window="hann", nperseg=nperseg, detrend=False,
                                             noverlap=max(0, nperseg - hop), scaling="spectrum", mode="psd")
    keep = freqs <= max_khz * 1000.0
    db = 10.0 * np.log10(power[keep] + 1e-12)
    top = float(db.max(initial=-120.0))
    return freqs[keep] / 1000.0, times, np.clip(db, top - DYNAMIC_RANGE_DB, top)


def _nice_step(span: float, target: int) -> float:
    """A 1-2-5 tick step giving about ``target`` ticks over ``span``."""
    raw = max(span, 1e-9) / max(1, target)
    base = 10.0 ** np.floor(np.log10(raw))
    return float(next(m * base for m in (1.0, 2.0, 5.0, 10.0) if m * base >= raw))


@lru_cache(maxsize=1)
def _palette() -> list[int]:
    """An 8-bit PNG palette: matplotlib's magma in ``LEVELS`` steps, the same dimmed (the context outside the
    window), then white, black and the window's orange. One byte per pixel encodes several times faster
    than RGB, which was most of a push's time."""
    from matplotlib import colormaps

    magma = (colormaps["magma"](np.linspace(0.0, 1.0, LEVELS))[:, :3] * 255).round()
    orange = [int(WINDOW_COLOR[i:i + 2], 16) for i in (1, 3, 5)]
    table = np.vstack([magma, (magma * 0.65).round(), [[255, 255, 255], [0, 0, 0], orange]]).astype(np.uint8)
    return table.ravel().tolist()


@lru_cache(maxsize=4)
def _font(size: int):
    from matplotlib import get_data_path
    from PIL import ImageFont

    return ImageFont.truetype(str(Path(get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)


def _draw(db: np.ndarray, top_khz: float, duration: float, window: Optional[tuple[float, float]]):
    """The figure as a palette image: the spectrogram (magma, low frequencies at the bottom), the context
    outside the window dimmed, the window's edges in orange, time (s) and frequency (kHz) axes."""
    from PIL import Image, ImageDraw

    left, right, top, bottom = PLOT
    w, h = right - left, bottom - top
    lo = float(db.min(initial=0.0)) if db.size else 0.0
    levels = np.zeros((1, 1), dtype=np.uint8) if not db.size else np.clip(
        (db - lo) / max(float(db.max()) - lo, 1e-9) * (LEVELS - 1), 0, LEVELS - 1).astype(np.uint8)
    rows = (levels.shape[0] - 1 - (np.arange(h) * levels.shape[0] // h)).clip(0)
    cols = np.arange(w) * levels.shape[1] // w
    pixels = levels[np.ix_(rows, cols)]
    x_of = lambda t: int(round(t / duration * (w - 1))) if duration > 0 else 0  # noqa: E731
    if window is not None:
        a, b = (max(0, min(w, x_of(t))) for t in window)
        pixels[:, :a] += LEVELS
        pixels[:, b + 1:] += LEVELS
    image = Image.new("P", (WIDTH_PX, HEIGHT_PX), WHITE)
    image.putpalette(_palette())
    image.paste(Image.fromarray(pixels, "L"), (left, top))
    pen = ImageDraw.Draw(image)
    pen.fontmode = "1"  # palette image: crisp text, no antialiasing colours
    if window is not None:
        for t in window:
            x = left + max(0, min(w - 1, x_of(t)))
            pen.rectangle((x - 1, top, x, bottom - 1), fill=ORANGE)
    pen.rectangle((left - 1, top - 1, right, bottom), outline=BLACK)
    font = _font(11)
    step = _nice_step(duration, 8)
    for i in range(int(duration / step + 1e-9) + 1):
        x = left + x_of(i * step)
        pen.line((x, bottom, x, bottom + 4), fill=BLACK)
        pen.text((x, bottom + 6), f"{i * step:g}", fill=BLACK, font=font, anchor="mt")
    pen.text((left + w // 2, HEIGHT_PX - 6), "s", fill=BLACK, font=font, anchor="mb")
    kstep = _nice_step(top_khz, 5)
    for i in range(int(top_khz / kstep + 1e-9) + 1):
        y = bottom - int(round(i * kstep / top_khz * (h - 1))) if top_khz > 0 else bottom
        pen.line((left - 5, y, left - 1, y), fill=BLACK)
        pen.text((left - 7, y), f"{i * kstep:g}", fill=BLACK, font=font, anchor="rm")
    label = Image.new("P", (30, 14), WHITE)
    label.putpalette(_palette())
    lpen = ImageDraw.Draw(label)
    lpen.fontmode = "1"
    lpen.text((15, 7), "kHz", fill=BLACK, font=font, anchor="mm")
    image.paste(label.rotate(90, expand=True), (4, top + h // 2 - 15))
    return image


def render_spectrogram(clip_path: Path | str, window_start: Optional[float] = None,
                       window_end: Optional[float] = None, *, max_khz: float = DEFAULT_MAX_KHZ,
                       force: bool = False, samples: Optional[np.ndarray] = None,
                       sample_rate: Optional[int] = None) -> Path:
    """The PNG spectrogram of a clip file, with the window ``window_start``..``window_end`` (s) marked.

    Reused when the PNG exists and is not older than the clip (``force`` redraws it). Raises
    ``AnnotationError`` naming the file when it cannot be read or holds no audio. Drawn with numpy and
    Pillow (about 8 ms; matplotlib's figure took about 200 ms, most of a push of many clips). ``samples``
    (mono, at ``sample_rate``) are the file's own, just written: they spare reading it back.
    """
    clip = Path(clip_path)
    out = spectrogram_path(clip)
    if not force and _fresh(out, clip):
        return out
    if samples is not None and sample_rate:
        x, sr = np.asarray(samples, dtype=np.float32).reshape(-1), int(sample_rate)
    else:
        try:
            audio, sr = sf.read(str(clip), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise AnnotationError(f"cannot draw the spectrogram of {clip}: {e}; cut the clip again") from e
        x = audio.mean(axis=1)
    if x.size < 2:
        raise AnnotationError(f"cannot draw the spectrogram of {clip}: it holds no audio; cut the clip again")
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    duration = x.size / sr
    khz, _, db = _stft_db(x, int(sr), min(max_khz, sr / 2000.0))
    window = (float(window_start), float(window_end)) if window_start is not None and window_end is not None else None
    image = _draw(db, float(khz[-1]) if khz.size else sr / 2000.0, duration, window)

    # zlib's Z_RLE (compress_type 3): 2.5x faster, as small
    write_atomically(out, lambda fh: image.save(fh, format="PNG", compress_level=1, compress_type=3), binary=True)
    log.debug("spectrogram %s -> %s", clip, out)
    return out


def clip_spectrogram(cut: CutClip, *, force: bool = False) -> Path:
    """The spectrogram of a cut clip with its scored window marked (``cut_clip``'s output in, PNG path out)."""
    return render_spectrogram(cut.path, cut.window_start, cut.window_end, force=force, samples=cut.samples,
                              sample_rate=cut.sample_rate)


__all__ = ["DEFAULT_MAX_KHZ", "clip_spectrogram", "render_spectrogram", "spectrogram_path"]
