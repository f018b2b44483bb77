"""Stored simulations (the strategy lab) as tables and mean learning curves, for the app's Lab page.

A ``SimulationRun`` keeps, per strategy, a summary (means over seeds) and every seed's curve of
``[labels, macro_recall]`` points; here they become DataFrames to compare runs side by side.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from store import SimulationRun

SUMMARY_COLUMNS = ("aulc", "final", "labels_to_random_final", "labels_to_90pct_full", "final_map",
                   "final_worst_stratum_recall", "seconds_per_query")


def _strategies(run: SimulationRun) -> list[str]:
    return list(run.summary or run.curves or {})


def runs_table(runs: Sequence[SimulationRun]) -> pd.DataFrame:
    """One row per stored simulation, newest first: what was compared, on what, and how long it took."""
    rows = []
    for run in reversed(list(runs)):
        params: dict[str, Any] = run.params or {}
        seeds = params.get("seeds")
        budgets = params.get("budgets")
        rows.append({"id": run.id, "created": f"{run.created_at:%Y-%m-%d %H:%M}", "source": run.source,
                     "strategies": ", ".join(_strategies(run)),
                     "seeds": len(seeds) if isinstance(seeds, list) else seeds,
                     "labels": (f"{budgets[0]} to {budgets[1]}, +{budgets[2]} a round"
                                if isinstance(budgets, list) and len(budgets) == 3 else budgets),
                     "clips": params.get("n_clips"), "seconds": round(float(run.seconds or 0.0), 1)})
    return pd.DataFrame(rows, columns=["id", "created", "source", "strategies", "seeds", "labels", "clips",
                                       "seconds"])


def summary_frame(run: SimulationRun) -> pd.DataFrame:
    """Per strategy, its summary numbers (best area under the learning curve first)."""
    rows = []
    for name, values in (run.summary or {}).items():
        row: dict[str, Any] = {"strategy": name}
        row.update({k: values.get(k) for k in SUMMARY_COLUMNS if k in values})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "aulc" in frame:
        frame = frame.sort_values("aulc", ascending=False, ignore_index=True)
    return frame


def mean_curves(run: SimulationRun) -> pd.DataFrame:
    """Per strategy, the mean macro recall over seeds at each label count (long form, with the seed count).

    Seeds that stopped early (the pool ran out) simply contribute to fewer points; ``seeds`` says how
    many a mean is over.
    """
    rows = []
    for name, per_seed in (run.curves or {}).items():
        points: dict[float, list[float]] = {}
        for curve in per_seed.values():
            for point in curve:
                if len(point) >= 2 and point[1] is not None:
                    points.setdefault(float(point[0]), []).append(float(point[1]))
        for labels in sorted(points):
            values = points[labels]
            rows.append({"run": run.id, "strategy": name, "labels": labels, "macro_recall": float(np.mean(values)),
                         "seeds": len(values)})
    return pd.DataFrame(rows, columns=["run", "strategy", "labels", "macro_recall", "seeds"])


__all__ = ["SUMMARY_COLUMNS", "mean_curves", "runs_table", "summary_frame"]
