"""Spectrogram images of annotator clips: what an expert scans before listening, in the app and in Label Studio.

One renderer for both, so the app and the annotators see the same picture: a PNG next to the clip
(``clip-<id>.png`` beside ``clip-<id>.wav``), time in seconds, frequency in kHz, the window the model
scored between two orange lines with the context on both sides dimmed. The STFT is numpy/scipy and the
figure is drawn with matplotlib's Agg canvas directly (no pyplot, no global backend switch: safe in
Streamlit's threads). A PNG is written to a temporary name and renamed, so Label Studio never serves
half an image, and it is reused while it is not older than its clip.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import signal

from annotation.clips import CutClip
from annotation.config import WINDOW_COLOR
from annotation.errors import AnnotationError

log = logging.getLogger(__name__)

# BirdNET listens up to 15 kHz; above that a field recorder mostly adds hiss.
DEFAULT_MAX_KHZ = 15.0
DYNAMIC_RANGE_DB = 80.0
WIDTH_PX, HEIGHT_PX, DPI = 900, 260, 100


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
    freqs, times, power = signal.spectrogram(x, fs=sr, window="hann", nperseg=nperseg,
                                             noverlap=nperseg * 3 // 4, scaling="spectrum", mode="psd")
    keep = freqs <= max_khz * 1000.0
    db = 10.0 * np.log10(power[keep] + 1e-12)
    top = float(db.max(initial=-120.0))
    return freqs[keep] / 1000.0, times, np.clip(db, top - DYNAMIC_RANGE_DB, top)


def render_spectrogram(clip_path: Path | str, window_start: Optional[float] = None,
                       window_end: Optional[float] = None, *, max_khz: float = DEFAULT_MAX_KHZ,
                       force: bool = False) -> Path:
    """The PNG spectrogram of a clip file, with the window ``window_start``..``window_end`` (s) marked.

    Reused when the PNG exists and is not older than the clip (``force`` redraws it). Raises
    ``AnnotationError`` naming the file when it cannot be read or holds no audio.
    """
    clip = Path(clip_path)
    out = spectrogram_path(clip)
    if not force and _fresh(out, clip):
        return out
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
    khz, times, db = _stft_db(x, int(sr), min(max_khz, sr / 2000.0))

    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.065, 0.19, 0.925, 0.77))
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
              extent=(0.0, duration, 0.0, float(khz[-1]) if khz.size else sr / 2000.0))
    if window_start is not None and window_end is not None:
        for side in ((0.0, window_start), (window_end, duration)):
            if side[1] > side[0]:
                ax.axvspan(*side, color="black", alpha=0.35, linewidth=0)
        for edge in (window_start, window_end):
            ax.axvline(edge, color=WINDOW_COLOR, linewidth=2)
    ax.set_xlim(0.0, duration)
    ax.set_xlabel("s", labelpad=1)
    ax.set_ylabel("kHz", labelpad=2)
    ax.tick_params(labelsize=8, length=3, pad=2)

    tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=DPI)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log.debug("spectrogram %s -> %s", clip, out)
    return out


def clip_spectrogram(cut: CutClip, *, force: bool = False) -> Path:
    """The spectrogram of a cut clip with its scored window marked (``cut_clip``'s output in, PNG path out)."""
    return render_spectrogram(cut.path, cut.window_start, cut.window_end, force=force)


__all__ = ["DEFAULT_MAX_KHZ", "clip_spectrogram", "render_spectrogram", "spectrogram_path"]
