"""`workbench export`: detections as BirdNET-Analyzer's CSV or Raven selection tables (parsing and printing;
the work is ``finetune.export``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.config import Workspace
from workbench.console import UserError, open_store


def cmd_export(ws: Workspace, args: argparse.Namespace) -> int:
    from finetune.export import detections, write_birdnet_csv, write_raven_tables

    store = open_store(ws, reading=True)
    mv = store.model_version(args.model_version) if args.model_version else store.current_model_version()
    if mv is None:
        raise UserError("the workspace holds no scored clips yet: run `workbench ingest PATH` first")
    found = detections(store, mv, min_confidence=args.min_confidence)
    out = Path(args.out)
    if args.format == "csv":
        path, n = write_birdnet_csv(found, out if out.suffix else out / "BirdNET_CombinedTable.csv")
        print(f"{n} detection(s) of model {mv.name} at confidence >= {args.min_confidence:g} -> {path}")
    else:
        tables = write_raven_tables(found, out)
        print(f"{sum(n for _, n in tables)} detection(s) of model {mv.name} at confidence >= "
              f"{args.min_confidence:g} in {len(tables)} Raven selection table(s) -> {out}")
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("export", help="detections as BirdNET-Analyzer's CSV or Raven selection tables")
    s.add_argument("--format", choices=["csv", "raven"], default="csv",
                   help="csv: BirdNET-Analyzer's combined table; raven: one selection table per recording")
    s.add_argument("--out", required=True, help="a .csv file or a folder (created if missing)")
    s.add_argument("--min-confidence", type=float, default=0.1, help="BirdNET-Analyzer's --min_conf (0.1)")
    s.add_argument("--model-version", help="BirdNET or a fine-tuned head (default: the newest)")
    s.set_defaults(func=cmd_export)
