"""Label efficiency: does each sampling strategy beat random, and by how much? The evidence for the defaults.

Builds the benchmark pools of ``bench/label_sets.py`` from ../shared/data (real labelled clips, soundscape
mixes, labelled images, scikit-learn's digits), replays active learning on each with random and every
strategy (same splits, initial sets and seeds: ``lab.simulate``) and prints per set the area under the
learning curve (macro recall against labels) and the labels each strategy needed to reach random's final
macro recall. The workbench's default strategy must never be below random at any budget on any set
(means over seeds) and reach random's final score on the soundscape set with at most half its labels.

    .venv/bin/python bench/label_efficiency.py [--sets soundscape,digits] [--seeds 3] [--strategies a,b]

With scikit-activeml installed (``pip install -e '.[lab]'``) its pool strategies run in the same run, under
the same protocol (``lab.peers``), and the default must stay within 0.01 of the best of them on every set.

Last lines: ``default strategy labels to reach random's final macro recall: X of random's`` (soundscape set)
and ``default AULC minus best peer (worst set): X``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import label_sets  # noqa: E402
from lab.peers import PEERS, PREFIX, available  # noqa: E402
from lab.report import summary_table, versus_peers, write_plot  # noqa: E402
from lab.simulate import DEFAULT_ALIAS, REFERENCE, SIMULATED, simulate  # noqa: E402

#: labels START:STOP:STEP per set (the training part of each set holds about 70 % of its clips)
BUDGETS = {"clips": (10, 100, 10), "soundscape": (20, 200, 20), "soundscape-multi": (10, 150, 20),
           "images": (10, 150, 10), "digits": (20, 200, 20)}
OUT = ROOT / ".cache" / "bench-label-efficiency" / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=",".join(label_sets.SETS))
    p.add_argument("--seeds", type=int, default=3)
    ours = [DEFAULT_ALIAS, *[s for s in SIMULATED if s != REFERENCE]]
    peers = [PREFIX + name for name in PEERS if name != "RandomSampling"] if available() else []
    p.add_argument("--strategies", default=",".join(ours + peers))
    args = p.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    verdicts: dict[str, dict] = {}
    gaps: dict[str, tuple] = {}
    started = time.perf_counter()
    for name in [s for s in args.sets.split(",") if s]:
        pool = label_sets.SETS[name]()
        print(f"\n== {name}: {label_sets.describe(pool)}; labels {':'.join(map(str, BUDGETS[name]))}, "
              f"{args.seeds} seeds", flush=True)
        result = simulate(pool, strategies, seeds=args.seeds, budgets=BUDGETS[name],
                          progress=lambda d, t, m: print(f"\r  {d}/{t} {m[:80]:<80}", end="", file=sys.stderr,
                                                         flush=True))
        print(file=sys.stderr)
        print(summary_table(result), flush=True)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{name}.json").write_text(json.dumps(result.to_json()))
        write_plot(result, OUT / f"{name}.png", title=f"{name}: {pool.source}")
        if DEFAULT_ALIAS in result.summary:
            verdicts[name] = result.summary[DEFAULT_ALIAS]
            gap = versus_peers(result.summary)
            if gap:
                gaps[name] = gap
    print(f"\n== default strategy across sets ({time.perf_counter() - started:.0f} s in all)")
    for name, s in verdicts.items():
        below = ", ".join(map(str, s["below_random_at"])) or "never"
        ratio = s["labels_to_random_final_ratio"]
        print(f"  {name:<11} AULC {s['aulc']:.3f}  below random at: {below}  labels to random's final: "
              f"{'never' if ratio is None else f'{ratio:.2f} of random' + chr(39) + 's'}")
    for name, (_, ours_aulc, best, theirs) in gaps.items():
        print(f"  {name:<11} default AULC {ours_aulc:.3f}, best peer {best} {theirs:.3f}: {ours_aulc - theirs:+.3f}")
    if "soundscape" in verdicts:
        ratio = verdicts["soundscape"]["labels_to_random_final_ratio"]
        print(f"default strategy labels to reach random's final macro recall: "
              f"{'never' if ratio is None else f'{ratio:.2f}'} of random's")
    if gaps:
        worst = min(gaps, key=lambda n: gaps[n][1] - gaps[n][3])
        print(f"default AULC minus best peer (worst set): {gaps[worst][1] - gaps[worst][3]:+.3f} ({worst})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
