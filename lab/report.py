"""A simulation as files and text: JSON, CSV of every curve point, a PNG of the curves, a summary table."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional

from lab.simulate import REFERENCE, SimulationResult
from store.atomic import write_atomically


def held_out_note(params: dict) -> str:
    """How many held-out clips the scores stand on, and a plain warning when that is too few per class."""
    from finetune.evaluate import MIN_RELIABLE_SUPPORT

    n, fewest = params.get("n_test"), params.get("min_test_per_class")
    if n is None or fewest is None:
        return "held-out size not recorded (a simulation of an earlier release)"
    note = f"scores on {n} held-out clips per seed (fewest per class: {fewest})"
    if fewest < MIN_RELIABLE_SUPPORT:
        note += (f"; below {MIN_RELIABLE_SUPPORT} per class these scores are rough: differences between strategies "
                 f"may be noise")
    return note


def summary_table(result: SimulationResult) -> str:
    """One line per strategy: area under the curve, final macro recall, labels to reach random's final."""
    start, stop, _ = result.params["budgets"]
    width = max([20, *(len(n) for n in result.summary)])
    lines = [f"{'strategy':<{width}} {'AULC':>6} {'final':>6} {'mAP':>6} {'worst':>6}  {'labels to random final':>22}  "
             f"{'to 90% full':>11}  {'s/query':>7}  below random at"]
    for name, s in sorted(result.summary.items(), key=lambda kv: (kv[0] != REFERENCE, -kv[1]["aulc"])):
        reach = s["labels_to_random_final"]
        reach_txt = "never" if reach is None else f"{reach} ({s['labels_to_random_final_ratio']:.2f} x)"
        worst = s["final_worst_stratum_recall"]
        full90 = s["labels_to_90pct_full"]
        below = ", ".join(map(str, s["below_random_at"])) or "-"
        lines.append(f"{name:<{width}} {s['aulc']:6.3f} {s['final']:6.3f} {s['final_map']:6.3f} "
                     f"{'  -  ' if worst is None else f'{worst:6.3f}'}  {reach_txt:>22}  "
                     f"{'never' if full90 is None else full90:>11}  {s['seconds_per_query']:7.3f}  {below}")
    against_peers = peer_line(result.summary)
    if against_peers:
        lines.append(against_peers)
    lines.append(f"(macro recall on the held-out part, means over seeds {result.params['seeds']}, labels "
                 f"{start}..{stop}; full-data macro recall "
                 f"{sum(result.full_data.values()) / len(result.full_data):.3f}; {held_out_note(result.params)})")
    return "\n".join(lines)


def versus_peers(summary: dict[str, dict]) -> Optional[tuple[str, float, str, float]]:
    """(ours, its AULC, best peer, its AULC): the default (or our best strategy when the default did not
    run) against scikit-activeml's best, from a summary; None without peers or without ours."""
    from lab.peers import is_peer
    from lab.simulate import DEFAULT_ALIAS

    peers = {n: s["aulc"] for n, s in summary.items() if is_peer(n)}
    ours = {n: s["aulc"] for n, s in summary.items() if not is_peer(n) and n != REFERENCE}
    if not peers or not ours:
        return None
    name = DEFAULT_ALIAS if DEFAULT_ALIAS in ours else max(ours, key=ours.get)
    best = max(peers, key=peers.get)
    return name, ours[name], best, peers[best]


def peer_line(summary: dict[str, dict]) -> Optional[str]:
    """``default AULC minus best peer (skactiveml:TypiClust): +0.012`` or None without peers."""
    v = versus_peers(summary)
    if v is None:
        return None
    name, ours, best, theirs = v
    return f"{name} AULC minus best peer ({best}): {ours - theirs:+.3f} ({ours:.3f} against {theirs:.3f})"


def write_json(result: SimulationResult, path: Path | str) -> Path:
    path = Path(path)
    write_atomically(path, json.dumps(result.to_json(), indent=1))
    return path


def write_csv(result: SimulationResult, path: Path | str) -> Path:
    def rows(fh) -> None:
        w = csv.writer(fh)
        w.writerow(["strategy", "seed", "labels", "macro_recall", "map", "worst_stratum_recall", "query_seconds"])
        for name, runs in result.curves.items():
            for seed, points in runs.items():
                for p in points:
                    w.writerow([name, seed, p.labels, f"{p.macro_recall:.6f}", f"{p.mean_ap:.6f}",
                                "" if p.worst_stratum_recall is None else f"{p.worst_stratum_recall:.6f}",
                                f"{p.query_seconds:.4f}"])

    return write_atomically(path, rows, newline="")


def write_plot(result: SimulationResult, path: Path | str, title: Optional[str] = None) -> Path:
    """Mean learning curves (macro recall and mAP against labels), random dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for ax, metric, label in ((axes[0], "macro_recall", "macro recall"), (axes[1], "map", "mean average precision")):
        for name in result.curves:
            x, y = result.mean_curve(name, metric)
            ax.plot(x, y, "--" if name == REFERENCE else "-", color="black" if name == REFERENCE else None,
                    marker="o", markersize=3, label=name, linewidth=2 if name == REFERENCE else 1.4)
        ax.set_xlabel("labels")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or f"{result.params.get('source', '')}: mean over seeds {result.params['seeds']}")
    fig.tight_layout()
    write_atomically(path, lambda fh: fig.savefig(fh, format="png"), binary=True)
    plt.close(fig)
    return path


def write_all(result: SimulationResult, out: Path | str) -> list[Path]:
    """``out`` (a .json path): the JSON there, and .csv and .png next to it."""
    out = Path(out)
    stem = out.with_suffix("")
    return [write_json(result, out), write_csv(result, stem.with_suffix(".csv")),
            write_plot(result, stem.with_suffix(".png"))]


