"""`workbench export`: what a BirdNET user runs or reads elsewhere (parsing and printing; the work is ``finetune``).

``export detections --format csv|raven`` writes detections as BirdNET-Analyzer's CSV or Raven selection tables
(``finetune.export``); ``export classifier`` writes a fine-tuned head as a BirdNET custom classifier
(``finetune.custom_classifier``). The older ``export --format csv|raven --out PATH`` still means
``export detections``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from store.schema import ModelKind
from workbench.config import Workspace
from workbench.console import UserError, open_store


def _named_model_version(store, name: str):
    from store import StoreError

    try:
        return store.model_version(name)
    except StoreError as e:
        raise UserError(f"--model-version {name}: no such model version in this workspace (`workbench status` "
                        "lists them)") from e


def cmd_export_detections(ws: Workspace, args: argparse.Namespace) -> int:
    from finetune.export import detections, write_birdnet_csv, write_parquet, write_raven_tables

    if not args.out:
        raise UserError("export needs --out PATH: a .csv file or a folder (`workbench export detections --help`)")
    store = open_store(ws, reading=True)
    mv = _named_model_version(store, args.model_version) if args.model_version else store.current_model_version()
    if mv is None:
        raise UserError("the workspace holds no scored clips yet: run `workbench ingest PATH` first")
    found = detections(store, mv, min_confidence=args.min_confidence, range_filter=args.range_filter)
    out = Path(args.out)
    if args.format == "csv":
        path, n = write_birdnet_csv(found, out if out.suffix else out / "BirdNET_CombinedTable.csv")
        print(f"{n} detection(s) of model {mv.name} at confidence >= {args.min_confidence:g} -> {path}")
    elif args.format == "parquet":
        path, n = write_parquet(found, out if out.suffix else out / "detections.parquet")
        print(f"{n} detection(s) of model {mv.name} at confidence >= {args.min_confidence:g} -> {path}")
    else:
        tables = write_raven_tables(found, out)
        print(f"{sum(n for _, n in tables)} detection(s) of model {mv.name} at confidence >= "
              f"{args.min_confidence:g} in {len(tables)} Raven selection table(s) -> {out}")
    return 0


def cmd_export_classifier(ws: Workspace, args: argparse.Namespace) -> int:
    from finetune.custom_classifier import BIRDNET_SPACE, export_model_version

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a folder, the custom classifier is two files")
    store = open_store(ws, reading=True)
    if args.model_version:
        mv = _named_model_version(store, args.model_version)
        if mv.kind != ModelKind.CLASSIFIER:
            raise UserError(f"--model-version {mv.name} is an embedding model, not a fine-tuned head: name a head "
                            "(`workbench status` lists them) or leave the flag out for the newest")
        if mv.embedding_space != BIRDNET_SPACE:
            raise UserError(f"--model-version {mv.name} was trained on {mv.embedding_space!r} embeddings; a BirdNET "
                            f"custom classifier needs a head on BirdNET V2.4's ({BIRDNET_SPACE!r})")
    else:
        heads = [m for m in store.model_versions() if m.kind == ModelKind.CLASSIFIER and m.ready
                 and m.embedding_space == BIRDNET_SPACE]
        if not heads:
            raise UserError("no fine-tuned head on BirdNET embeddings yet: label clips, run `workbench finetune`, "
                            "then export (or name one with --model-version)")
        mv = heads[-1]
    try:
        files = export_model_version(mv, out)
    except ValueError as e:
        raise UserError(f"--model-version {mv.name}: {e}") from e
    print(f"model {mv.name} as a BirdNET custom classifier ({len(mv.labels)} classes, logits; the loaders apply "
          f"the sigmoid) -> {files.model} + {files.labels.name}")
    print(f"  BirdNET-Analyzer: --classifier {files.model}   birdnetlib: Analyzer(classifier_model_path=..., "
          f"classifier_labels_path=...)")
    return 0


def _detection_options(s: argparse.ArgumentParser, *, out_required: bool) -> None:
    s.add_argument("--format", choices=["csv", "raven", "parquet"], default="csv",
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
