"""Read-only summaries of a workspace for the app and ``status``: plain dicts and lists, no UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from store import SamplingRun, Store, StoreError


def pool_summary(store: Store) -> Optional[dict[str, Any]]:
    """Counts and the current model, or None when nothing is scored yet."""
    mv = store.current_model_version()
    if mv is None:
        return None
    counts = store.counts()
    return {"model": mv.name, "clips": counts["clips"], "recordings": counts["recordings"],
            "selected": counts["selected"], "tasks": counts["tasks"], "annotations": counts["annotations"],
            "unscored": int(store.unscored_clip_ids(mv).size)}


def uncertainty_histogram(store: Store, metric: str = "max_entropy", bins: int = 20) -> dict[str, np.ndarray]:
    """Histogram of one score over the pool under the current model."""
    if metric not in ("max_entropy", "mean_entropy", "top1", "margin"):
        raise ValueError(f"metric must be max_entropy, mean_entropy, top1 or margin, got {metric!r}")
    values = getattr(store.pool(), metric)
    upper = 1.0 if metric != "mean_entropy" else max(float(values.max(initial=0.0)), 1e-3)
    counts, edges = np.histogram(values, bins=bins, range=(0.0, upper))
    return {"counts": counts, "edges": edges}


def selection_table(store: Store, run_id: int | None = None,
                    clips_dir: Path | None = None) -> Optional[tuple[SamplingRun, list[dict[str, Any]]]]:
    """The picks of a run (default: the last) with clip metadata, predictions and a playable audio path."""
    run = store.last_sampling_run() if run_id is None else next(
        (r for r in store.sampling_runs() if r.id == run_id), None)
    if run is None:
        return None
    from annotation.clips import check_sources

    picks = store.selections(run.id)
    infos = {c.clip_id: c for c in store.clips([p.clip_id for p in picks])}
    preds = store.predictions(infos.keys(), run.model_version_id) if run.model_version_id else {}
    problems = check_sources(store, infos.values()) if clips_dir is not None else {}
    rows = []
    for p in picks:
        info = infos[p.clip_id]
        top = preds.get(p.clip_id) or []
        when = info.start_time
        problem = problems.get(info.recording_id)
        rows.append({
            "rank": p.rank, "clip_id": p.clip_id, "site": info.site, "device": info.device,
            "time": f"{when:%Y-%m-%d %H:%M}" if when else None,
            "file": Path(info.path).name, "start_s": info.start_s, "end_s": info.end_s,
            "top_label": f"{top[0][0]} ({top[0][1]:.2f})" if top else "",
            "score": round(p.score, 4), "cluster": p.cluster, "stratum": p.stratum, "reason": p.reason,
            "audio": None if problem else _audio_for(info, clips_dir), "audio_problem": problem,
        })
    return run, rows


def _audio_for(info, clips_dir: Path | None):
    """The annotator's clip (window with context, cut once and reused), or None if the source is unreadable."""
    if clips_dir is None:
        return None
    from annotation.clips import cut_clip
    from annotation.errors import AnnotationError

    try:
        return cut_clip(info, clips_dir).path
    except (AnnotationError, OSError, RuntimeError, ValueError):
        return None


def model_history(store: Store) -> list[dict[str, Any]]:
    """One row per model version: the rounds of fine-tuning and their metrics."""
    rows = []
    for mv in store.model_versions():
        m = mv.metrics or {}
        rows.append({"model": mv.name, "kind": mv.kind, "created": f"{mv.created_at:%Y-%m-%d %H:%M}",
                     "classes": mv.dim if mv.kind == "classifier" else len(mv.labels),
                     "n_train": m.get("n_train"), "n_test": m.get("n_test"),
                     "accuracy": m.get("accuracy"), "macro_recall": m.get("macro_recall")})
    return rows


__all__ = ["StoreError", "model_history", "pool_summary", "selection_table", "uncertainty_histogram"]
