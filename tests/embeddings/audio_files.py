"""Audio files written on the fly for the tests (the shared real recordings are read in place)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def write_tone(path: Path, seconds: float, sr: int = 48000, channels: int = 1, freq: float = 3000.0,
               seed: int = 0, subtype: str | None = "PCM_16") -> Path:
    """A bird-band tone with a little noise, written to ``path`` (format from its suffix)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)
    data = np.stack([mono * (0.5 + 0.5 * c) for c in range(channels)], axis=1) if channels > 1 else mono
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data.astype(np.float32), sr, subtype=subtype)
    return path
