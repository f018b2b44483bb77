"""`workbench export`: what a BirdNET user runs or reads elsewhere (parsing and printing; the work is ``finetune``).

``export detections --format csv|raven|parquet`` writes detections as BirdNET-Analyzer's CSV, Raven selection
tables or Parquet (``finetune.export.export_detections``); ``export classifier`` writes a fine-tuned head as a
BirdNET custom classifier (``finetune.custom_classifier.export_head``). The older ``export --format csv|raven
--out PATH`` still means ``export detections``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from finetune.export import FORMATS
from workbench.config import Workspace
from workbench.console import UserError, open_store


def cmd_export_detections(ws: Workspace, args: argparse.Namespace) -> int:
    from finetune.export import export_detections

    if not args.out:
        raise UserError("export needs --out PATH: a .csv file or a folder (`workbench export detections --help`)")
    done = export_detections(open_store(ws, reading=True), Path(args.out), format=args.format,
                             model_version=args.model_version or None, min_confidence=args.min_confidence,
                             range_filter=args.range_filter)
    if done.format == "raven":
        empty = (f" ({done.without_detections} without detections: a 'nocall' row, as BirdNET-Analyzer writes)"
                 if done.without_detections else "")
        print(f"{done.detections} detection(s) of model {done.model.name} at confidence >= {args.min_confidence:g} "
              f"in {len(done.files)} Raven selection table(s), one per recording{empty} -> {Path(args.out)}")
        if done.removed:
            print(f"  removed {len(done.removed)} table(s) an earlier export left there for recordings this one "
                  "does not hold")
    else:
        print(f"{done.detections} detection(s) of model {done.model.name} at confidence >= {args.min_confidence:g} "
              f"-> {done.files[0][0]}")
    return 0


def cmd_export_classifier(ws: Workspace, args: argparse.Namespace) -> int:
    from finetune.custom_classifier import export_head

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a folder, the custom classifier is two files")
    mv, files = export_head(open_store(ws, reading=True), out, model_version=args.model_version or None)
    print(f"model {mv.name} as a BirdNET custom classifier ({len(mv.labels) - len(files.left_out)} classes, logits; "
          f"the loaders apply the sigmoid) -> {files.model} + {files.labels.name}")
    if files.left_out:
        print(f"  not outputs: {', '.join(files.left_out)} (they mark the absence of an event, as in BirdNET-Analyzer's "
              "own custom classifiers)")
    print(f"  BirdNET-Analyzer: --classifier {files.model}   birdnetlib: Analyzer(classifier_model_path=..., "
          f"classifier_labels_path=...)")
    return 0


def _detection_options(s: argparse.ArgumentParser, *, out_required: bool) -> None:
    s.add_argument("--format", choices=list(FORMATS), default="csv",
                   help="csv: BirdNET-Analyzer's combined table; raven: one selection table per recording; "
                        "parquet: the same rows typed, for pandas, R or DuckDB")
    s.add_argument("--out", required=out_required, help="a .csv / .parquet file or a folder (created if missing)")
    s.add_argument("--min-confidence", type=float, default=0.1, help="BirdNET-Analyzer's --min_conf (0.1)")
    s.add_argument("--model-version", help="BirdNET or a fine-tuned head (default: the newest)")
    s.add_argument("--range-filter", action="store_true",
                   help="drop detections of species BirdNET's range model calls absent at the site-week (as "
                        "BirdNET-Analyzer's location filter; `workbench range` computes the priors); without it "
                        "they are marked in the 'In range' column")


def add_parsers(sub) -> None:
    s = sub.add_parser("export", help="detections (CSV, Raven) or a fine-tuned head as a BirdNET custom classifier",
                       description="`export detections` or `export classifier`; `export --format csv|raven --out "
                                   "PATH` (no subcommand) is `export detections`")
    _detection_options(s, out_required=False)  # the older form, without a subcommand
    s.set_defaults(func=cmd_export_detections)
    what = s.add_subparsers(dest="export_what", metavar="{detections,classifier}")
    d = what.add_parser("detections", help="detections as BirdNET-Analyzer's CSV or Raven selection tables")
    _detection_options(d, out_required=True)
    d.set_defaults(func=cmd_export_detections)
    c = what.add_parser("classifier", help="a fine-tuned head as a BirdNET custom classifier (.tflite + labels)",
                        description="Writes CustomClassifier.tflite and CustomClassifier_Labels.txt: BirdNET V2.4 "
                                    "with the head as its last layer, for BirdNET-Analyzer --classifier, BirdNET-Pi, "
                                    "birdnet-go and birdnetlib. Its outputs are logits; those programs apply the "
                                    "sigmoid.")
    c.add_argument("--out", required=True, help="folder for the two files (created if missing)")
    c.add_argument("--model-version", help="a fine-tuned head on BirdNET embeddings (default: the newest)")
    c.set_defaults(func=cmd_export_classifier)
