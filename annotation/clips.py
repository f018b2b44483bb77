"""Audio clips for annotators: the scored window plus some context, as a small WAV Label Studio can serve.

The source is read by seeking (a field recording can be hours long, so it is never loaded whole) with
ingest's own reader, at its native sample rate (no resampling artefacts in what the expert hears), mixed
down to mono: 16-bit PCM where that is exact, 32-bit float otherwise.
A clip is written to a temporary name and renamed, so the server never serves half a file and a rerun
reuses finished clips.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import soundfile as sf

from annotation.errors import AnnotationError
from embeddings.audio import AudioInfo, AudioReadError, probe, read_span
from store import ClipInfo
from store.atomic import atomic_path
from store.roles import Records
from store.sources import check_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CutClip:
    """A clip file and where the model's window lies inside it (seconds from the clip file's start)."""

    path: Path
    window_start: float
    window_end: float
    duration: float
    sample_rate: int
    #: the samples just written (mono float), so the spectrogram need not read the file back; None when reused
    samples: Optional[np.ndarray] = field(default=None, repr=False, compare=False)


def clip_filename(clip_id: int) -> str:
    """The file name of a clip: one per store clip id."""
    return f"clip-{int(clip_id)}.wav"


def check_sources(store: Records, infos: Iterable[ClipInfo]) -> dict[int, Optional[str]]:
    """Per recording of ``infos``: None when its file is still the content that was ingested, else why not.

    Each recording is checked once (size + mtime; a full hash only when they differ). When a hash
    confirms the content (a copy, a touch), the new size and mtime are stored so the next check is cheap.
    """
    out: dict[int, Optional[str]] = {}
    for info in infos:
        if info.recording_id in out:
            continue
        if info.content_hash is None:  # nothing to compare with (a record made by hand)
            out[info.recording_id] = None
            continue
        check = check_source(info.path, info.content_hash, info.file_size, info.file_mtime_ns)
        if check.rehashed:
            store.update_recording(info.recording_id, file_size=check.size, file_mtime_ns=check.mtime_ns)
        out[info.recording_id] = check.problem
    return out


def cut_clip(info: ClipInfo, out_dir: Path | str, context_s: float = 2.0) -> CutClip:
    """Cut ``info``'s window with ``context_s`` seconds on both sides into ``out_dir``.

    The samples are read by ingest's own reader (``embeddings.audio.read_span``): every subtype as
    float, channels averaged, at the file's own rate, so the clip holds what the model scored. It is
    written as 16-bit PCM when that is exact (8/16-bit PCM sources), else as 32-bit float, so a
    float or 24-bit recording is neither silenced nor clipped. The context is clamped to the audio that
    decodes (``info.frames`` when the store knows it: an MP3 header may promise more than there is);
    only a window that itself lies beyond the decoded audio is an error, and so is a clip that would be
    silent where its source window is not. An existing clip file of the expected length is reused
    unless it is silent where the source is not (a clip cut by an earlier release from a float file).
    The caller checks the source first (``check_sources``): the clip must come from the content that
    was ingested.
    """
    if context_s < 0:
        raise ValueError(f"context_s must be >= 0 seconds, got {context_s!r}")
    if info.modality != "audio":
        raise AnnotationError(f"clip {info.clip_id} is a {info.modality!r} clip, not audio: only audio clips are cut")
    if not info.end_s > info.start_s:
        raise AnnotationError(f"clip {info.clip_id} has an empty window ({info.start_s} s to {info.end_s} s)")
    src = Path(info.path)
    out_dir = Path(out_dir)
    out = out_dir / clip_filename(info.clip_id)
    try:
        head = probe(src)
        sr = head.sample_rate
        frames = int(info.frames) if info.frames else head.frames  # decoded length when known
        w0 = int(round(info.start_s * sr))
        w1 = min(frames, int(round(info.end_s * sr)))
        if w0 >= frames:
            raise AnnotationError(
                f"clip {info.clip_id} starts at {info.start_s} s but {src} decodes to only {frames / sr:.2f} s: "
                f"the file changed since it was ingested; re-ingest it")
        a = max(0, int(round((info.start_s - context_s) * sr)))
        b = min(frames, int(round((info.end_s + context_s) * sr)))
        audio = read_span(src, a, b - a)
    except AudioReadError as e:
        raise AnnotationError(f"cannot read clip {info.clip_id} from {src}: {e.reason}; is the file still there "
                              f"and a format libsndfile reads (wav, flac, ogg, mp3)?") from e
    if len(audio) < b - a:  # the header promised more than decodes: keep the context there is
        if a + len(audio) < w1 - sr // 1000:
            raise AnnotationError(f"clip {info.clip_id}'s window ({w0 / sr:.2f}-{w1 / sr:.2f} s) lies beyond the audio "
                                  f"{src} decodes to (it ends at {(a + len(audio)) / sr:.2f} s or earlier): the "
                                  f"file changed or was cut short since it was ingested; re-ingest it")
        b = a + len(audio)
        w1 = min(w1, b)
    result = CutClip(out, (w0 - a) / sr, (w1 - a) / sr, (b - a) / sr, sr)
    source_peak = float(np.max(np.abs(audio[w0 - a:w1 - a]), initial=0.0))
    if _is_complete(out, b - a, sr) and not _silenced(out, source_peak):
        return result
    subtype = _clip_subtype(head)
    with atomic_path(out) as tmp:  # a name of its own per call: app sessions are threads
        sf.write(tmp, np.clip(audio, -1.0, 1.0) if subtype == "PCM_16" else audio, sr, subtype=subtype,
                 format="WAV")
        if _silenced(tmp, source_peak):
            raise AnnotationError(f"clip {info.clip_id} of {src} came out silent although its window holds sound "
                                  f"(peak {source_peak:.2g} of full scale, subtype {head.subtype or head.format}): "
                                  f"not pushed; report this file")
    log.debug("cut clip %s: %s [%.2f s, %.2f s] -> %s", info.clip_id, src, a / sr, b / sr, out)
    return replace(result, samples=np.clip(audio, -1.0, 1.0) if subtype == "PCM_16" else audio)


#: Below this peak (full scale 1.0) a window counts as silent; 1e-5 is -100 dBFS, under any recorder's floor.
SILENCE_PEAK = 1e-5
#: Source subtypes a 16-bit clip holds exactly (PCM of 16 bits or fewer) or beyond what the codec kept (lossy
#: MP3/OGG); anything else (24/32-bit PCM, float, double) is written as 32-bit float.
_PCM16_ENOUGH = ("PCM_S8", "PCM_U8", "PCM_16", "ULAW", "ALAW", "MPEG_LAYER_III", "VORBIS", "OPUS")


def _clip_subtype(head: AudioInfo) -> str:
    return "PCM_16" if head.subtype in _PCM16_ENOUGH else "FLOAT"


def _silenced(path: Path, source_peak: float) -> bool:
    """True when the clip file at ``path`` is silent where its source window is not (as a browser decodes it)."""
    if source_peak < SILENCE_PEAK:
        return False
    try:
        x, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return True
    return float(np.max(np.abs(x), initial=0.0)) < SILENCE_PEAK


def _is_complete(path: Path, frames: int, sample_rate: int) -> bool:
    try:
        got = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return False
    return got.frames == frames and got.samplerate == sample_rate and got.channels == 1
