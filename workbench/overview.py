"""Read-only summaries of a workspace for the app: plain dicts and DataFrames, no UI (the counts and the current
model that `workbench status` prints too are ``store.status.store_status``).

The app's Pool page is drawn from these; every function takes the store (or a pool read from it) and
is tested without Streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Optional, Protocol, Sequence

import numpy as np
import pandas as pd

from store import ClipInfo, ModelKind, Pool, SamplingRun, Store, StoreError
from store.roles import Records

UNCERTAINTY_COLUMNS = ("max_entropy", "mean_entropy", "top1", "margin")
UNKNOWN = "unknown"


# ------------------------------------------------------------------------------------ the pool
def _counts(codes: np.ndarray, categories: Sequence[Any], name: str) -> pd.DataFrame:
    """Clips per category (by integer codes: cheap at millions of clips), unknown ('') named, zeros dropped."""
    n = np.bincount(codes, minlength=len(categories)) if len(codes) else np.zeros(len(categories), dtype=np.int64)
    names = [str(c) if str(c) else UNKNOWN for c in categories]
    frame = pd.DataFrame({name: names, "clips": n.astype(np.int64)})
    frame = frame[frame["clips"] > 0].groupby(name, as_index=False, sort=True)["clips"].sum()
    return frame.reset_index(drop=True)


def pool_breakdown(pool: Pool) -> dict[str, pd.DataFrame]:
    """Clips per site, device, hour of day (0-23, every hour listed) and day: where the pool comes from."""
    out = {column: _counts(*pool.codes(column), column) for column in ("site", "device")}
    hours = pool.hour
    known = hours >= 0
    out["hour"] = pd.DataFrame({"hour": np.arange(24), "clips": np.bincount(hours[known], minlength=24)[:24]})
    if (~known).any():
        out["hour"].attrs["unknown"] = int((~known).sum())
    days = pool.start_time[~np.isnat(pool.start_time)].astype("datetime64[D]")
    uniq, n = np.unique(days, return_counts=True)
    out["day"] = pd.DataFrame({"day": pd.to_datetime(uniq), "clips": n.astype(np.int64)})
    return out


def coverage(pool: Pool) -> pd.DataFrame:
    """Clips per site and hour of day, every cell listed (zeros too): the gaps a recorder schedule leaves."""
    codes, categories = pool.codes("site")
    hours = pool.hour
    known = hours >= 0
    cells = codes[known].astype(np.int64) * 24 + hours[known]
    grid = np.bincount(cells, minlength=len(categories) * 24).reshape(len(categories), 24)
    sites = [str(c) if str(c) else UNKNOWN for c in categories]
    used = grid.sum(axis=1) > 0
    frame = pd.DataFrame(grid[used], index=pd.Index(np.asarray(sites, dtype=object)[used], name="site"),
                         columns=pd.RangeIndex(24, name="hour"))
    frame = frame.groupby(level=0).sum()  # '' and 'unknown' both mean unknown
    return frame.stack().rename("clips").reset_index()


def species_tail(pool: Pool) -> pd.DataFrame:
    """Clips per predicted species (the pool's top label), most frequent first: the long tail to label."""
    frame = _counts(*pool.codes("top_label"), "species")
    frame = frame.sort_values(["clips", "species"], ascending=[False, True], ignore_index=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    frame["share"] = frame["clips"] / max(1, int(frame["clips"].sum()))
    return frame


def uncertainty_by_model(store: Records, metric: str = "max_entropy", bins: int = 20,
                         models: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Histogram of one score over each model version's pool (long form: model, bin, clips, share).

    The same bins for every model, so a head's pool can be compared with BirdNET's: a head that
    learnt something pushes mass away from the uncertain end. ``models`` (names) limits which pools
    are read (default: every model version's).
    """
    if metric not in UNCERTAINTY_COLUMNS:
        raise ValueError(f"metric must be one of {', '.join(UNCERTAINTY_COLUMNS)}, got {metric!r}")
    values = {}
    for mv in store.model_versions():
        if models is not None and mv.name not in models:
            continue
        pool = store.pool(mv)
        if len(pool):
            values[mv.name] = np.asarray(getattr(pool, metric), dtype=np.float64)
    upper = 1.0
    if metric == "mean_entropy" and values:
        upper = max(1e-3, max(float(v.max(initial=0.0)) for v in values.values()))
    edges = np.linspace(0.0, upper, bins + 1)
    parts = []
    for name, v in values.items():
        counts, _ = np.histogram(v, bins=edges)
        parts.append(pd.DataFrame({"model": name, "bin_start": edges[:-1], "bin_end": edges[1:], "clips": counts,
                                   "share": counts / max(1, v.size)}))
    if not parts:
        return pd.DataFrame(columns=["model", "bin_start", "bin_end", "clips", "share"])
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------------ picks and their clips
class PickLike(Protocol):
    """A stored ``Selection`` or a previewed ``Pick``: both say which clip and why."""

    clip_id: int
    rank: int
    score: float
    cluster: Optional[int]
    stratum: Optional[str]
    reason: str


def pick_rows(store: Records, picks: Sequence[PickLike], model_version_id: Optional[int]) -> list[dict[str, Any]]:
    """One row per pick with the clip's site (and country), time, file and the model's top label, in rank order."""
    infos = {c.clip_id: c for c in store.clips([p.clip_id for p in picks])}
    preds = store.predictions(infos.keys(), model_version_id) if model_version_id else {}
    rows = []
    for p in picks:
        info = infos[p.clip_id]
        top = preds.get(p.clip_id) or []
        when = info.start_time
        if when is not None:
            when = when + timedelta(seconds=float(info.start_s))
        rows.append({
            "rank": p.rank, "clip_id": p.clip_id, "site": info.site, "country": info.country, "device": info.device,
            "time": f"{when:%Y-%m-%d %H:%M:%S}" if when is not None else None,
            "file": Path(info.path).name, "start_s": info.start_s, "end_s": info.end_s,
            "top_label": f"{top[0][0]} ({top[0][1]:.2f})" if top else "",
            "score": round(float(p.score), 4), "cluster": p.cluster, "stratum": p.stratum, "reason": p.reason,
        })
    return rows


@dataclass(frozen=True)
class ClipMedia:
    """What the app plays and shows for a clip: the annotators' WAV and its spectrogram, the image (a crop or
    the frame) and the frame with its box, or why not."""

    audio: Optional[Path]
    spectrogram: Optional[Path]
    problem: Optional[str] = None
    image: Optional[Path] = None
    frame: Optional[Path] = None


def clip_media(store: Store, clip_ids: Iterable[int], clips_dir: Path) -> dict[int, ClipMedia]:
    """The clip files annotators get (cut once, reused) and their spectrograms, per clip id.

    Sources are checked first (a changed or missing recording is named, not played); a clip that
    cannot be cut or drawn says why instead of failing the page.
    """
    from annotation.clips import check_sources, cut_clip
    from annotation.errors import AnnotationError
    from annotation.images import cut_image_clip
    from annotation.spectrogram import clip_spectrogram

    infos: list[ClipInfo] = store.clips(list(clip_ids))
    problems = check_sources(store, infos)
    out: dict[int, ClipMedia] = {}
    for info in infos:
        problem = problems.get(info.recording_id)
        if problem is not None:
            out[info.clip_id] = ClipMedia(None, None, problem)
            continue
        if info.modality == "image":
            try:
                shot = cut_image_clip(info, clips_dir)
            except (AnnotationError, OSError, ValueError) as e:
                out[info.clip_id] = ClipMedia(None, None, str(e))
                continue
            out[info.clip_id] = ClipMedia(None, None, image=shot.path,
                                          frame=shot.frame_path if shot.frame_path != shot.path else None)
            continue
        try:
            cut = cut_clip(info, clips_dir)
        except (AnnotationError, OSError, RuntimeError, ValueError) as e:
            out[info.clip_id] = ClipMedia(None, None, str(e))
            continue
        try:
            out[info.clip_id] = ClipMedia(cut.path, clip_spectrogram(cut))
        except (AnnotationError, OSError, RuntimeError, ValueError) as e:
            out[info.clip_id] = ClipMedia(cut.path, None, f"no spectrogram: {e}")
    return out


def selection_table(store: Store, run_id: int | None = None) -> Optional[tuple[SamplingRun, list[dict[str, Any]]]]:
    """The picks of a run (default: the last) with clip metadata and predictions, or None without runs."""
    run = store.last_sampling_run() if run_id is None else next(
        (r for r in store.sampling_runs() if r.id == run_id), None)
    if run is None:
        return None
    return run, pick_rows(store, store.selections(run.id), run.model_version_id)


# ------------------------------------------------------------------------------------ rounds
def model_history(store: Records) -> list[dict[str, Any]]:
    """One row per model version: the rounds of fine-tuning and their metrics."""
    rows = []
    for mv in store.model_versions():
        m = mv.metrics or {}
        rows.append({"model": mv.name, "kind": mv.kind, "created": f"{mv.created_at:%Y-%m-%d %H:%M}",
                     "classes": mv.dim if mv.kind == ModelKind.CLASSIFIER else len(mv.labels),
                     "n_train": m.get("n_train"), "n_test": m.get("n_test"),
                     "accuracy": m.get("accuracy"), "macro_recall": m.get("macro_recall"),
                     "worst_site": m.get("worst_site"), "worst_site_recall": m.get("worst_site_recall")})
    return rows


__all__ = ["ClipMedia", "StoreError", "clip_media", "coverage", "model_history", "pick_rows", "pool_breakdown",
           "selection_table", "species_tail", "uncertainty_by_model"]
