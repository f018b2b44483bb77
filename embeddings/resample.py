"""Resampling a recording to the model's rate: a setting recorded with the embedding model version.

BirdNET hears 48 kHz. Audio at another rate is resampled first, and the filter changes what the model
says: at 32 kHz top-1 agreed with BirdNET-Analyzer on 72 % of the windows with soxr's HQ filter, while
feeding the model windows resampled BirdNET-Analyzer's way reproduces its outputs to 3e-6 (issue 18).
Users compare our detections with BirdNET-Analyzer's, so its resampling is the default:

* ``analyzer`` (default): what BirdNET-Analyzer and birdnetlib do, ``librosa.load(..., res_type="kaiser_fast")``,
  that is resampy's ``kaiser_fast`` windowed sinc, with librosa's output length (``ceil(n * ratio)``). It is
  streamed here block by block with the same samples as resampling the whole file at once (each output
  sample is computed from the same inputs in the same order; see ``AnalyzerStream``), so hours of audio
  never sit in memory.
* ``soxr-hq``: soxr's HQ filter, what ingest used before 0.4 (a store made then keeps it).

A store's embedding model version records its resampler (``params["resample"]``; a version without it was
made with ``soxr-hq``), and an ingest with another one is refused: one embedding space, one resampler.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Optional, Protocol

import numpy as np


class Resample(str, Enum):
    """How audio reaches the model's sample rate."""

    ANALYZER = "analyzer"
    SOXR_HQ = "soxr-hq"


DEFAULT = Resample.ANALYZER
#: What a model version made before the setting existed used.
LEGACY = Resample.SOXR_HQ


class Stream(Protocol):
    """A streaming resampler: blocks in, resampled blocks out; ``last`` flushes the end."""

    def resample_chunk(self, x: np.ndarray, last: bool = False) -> np.ndarray: ...


def parse(value: "Resample | str") -> Resample:
    """The setting named ``value``; a wrong name is refused naming the accepted ones."""
    try:
        return Resample(value)
    except ValueError:
        raise ValueError(f"resample must be one of {[r.value for r in Resample]}, got {value!r}") from None


def stream(kind: "Resample | str", sr_in: int, sr_out: int) -> Optional[Stream]:
    """A streaming resampler from ``sr_in`` to ``sr_out`` (None when the rates are equal)."""
    if sr_in == sr_out:
        return None
    if parse(kind) == Resample.SOXR_HQ:
        import soxr

        return soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")
    return AnalyzerStream(sr_in, sr_out)


class AnalyzerStream:
    """librosa's ``resample(y, res_type="kaiser_fast")`` of a whole signal, computed block by block.

    resampy computes output sample t from the inputs within the filter's reach of input time t / ratio;
    this keeps those inputs buffered, computes each output sample once all of them have arrived, with
    resampy's own kernel and its times shifted by a whole number of samples (an exact float operation), and
    at the end pads to librosa's length with zeros, as ``librosa.util.fix_length`` does.
    """

    def __init__(self, sr_in: int, sr_out: int):
        from resampy.filters import get_filter

        self.sr_in, self.sr_out = int(sr_in), int(sr_out)
        ratio = float(sr_out) / sr_in
        window, self.precision, _ = get_filter("kaiser_fast")
        self.window = ratio * window if ratio < 1 else window
        self.delta = np.diff(self.window, append=self.window[-1])
        self.scale = min(1.0, ratio)
        self.increment = 1.0 / ratio
        self.reach = self.window.shape[0] // int(self.scale * self.precision) + 2  # input samples either side
        self.buffer = np.zeros(0, dtype=np.float32)
        self.base = 0       # input index of buffer[0]
        self.seen = 0       # input samples so far
        self.done = 0       # output samples so far

    def _compute(self, end: int) -> np.ndarray:
        from resampy.interpn import resample_f_s

        n = max(0, end - self.done)
        y = np.zeros(n, dtype=np.float32)
        if n:
            times = np.arange(self.done, end) * self.increment - self.base
            resample_f_s(self.buffer, times, self.window, self.delta, self.precision, self.scale, y)
        self.done = max(self.done, end)
        return y

    def resample_chunk(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        self.buffer = np.concatenate([self.buffer, x]) if self.buffer.size else x.copy()
        self.seen += x.shape[0]
        if last:
            # resampy's length (floor), then librosa's fix_length to ceil(n * ratio) with zeros
            y = self._compute(int(self.seen * float(self.sr_out) / float(self.sr_in)))
            full = math.ceil(self.seen * (float(self.sr_out) / self.sr_in))
            return np.concatenate([y, np.zeros(max(0, full - self.done), dtype=np.float32)])
        # every output whose right wing lies inside what has arrived
        ready = int(max(0, self.seen - self.reach - 1) * (float(self.sr_out) / self.sr_in))
        y = self._compute(ready)
        keep_from = max(self.base, int(self.done * self.increment) - self.reach)
        self.buffer, self.base = self.buffer[keep_from - self.base:], keep_from
        return y


def recorded(model_version, asked: "Resample | str | None" = None) -> Resample:
    """The resampler a store's embedding model version was made with; ``asked`` (None: that one) must be it.

    A version made before the setting existed (no ``params["resample"]``) was made with ``soxr-hq``.
    """
    have = parse((model_version.params or {}).get("resample", LEGACY.value))
    if asked is not None and parse(asked) != have:
        raise ValueError(f"this store's {model_version.name} windows were resampled with {have.value}; resampling "
                         f"with {parse(asked).value} would mix two embedding spaces: ingest with --resample "
                         f"{have.value} (resample={have.value!r}), or into a new workspace")
    return have


def params(asked: "Resample | str | None") -> dict:
    """What a new embedding model version records of the resampler."""
    return {"resample": (parse(asked) if asked is not None else DEFAULT).value}
