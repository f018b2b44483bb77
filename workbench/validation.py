"""`workbench validate`: per species, the score above which detections are auto-validated with a stated precision
guarantee (parsing and printing; the work is ``finetune.validate``)."""

from __future__ import annotations

import argparse
import sys

from workbench.config import Workspace
from workbench.console import UserError, open_store


def cmd_validate(ws: Workspace, args: argparse.Namespace) -> int:
    from finetune.validate import ValidationError, pool_counts, validate
    from store import StoreError

    store = open_store(ws)
    try:
        mv = store.model_version(args.model_version) if args.model_version else store.current_model_version()
    except StoreError as e:
        raise UserError(f"--model-version {args.model_version}: no such model version (`workbench status` lists "
                        "them)") from e
    try:
        result = validate(store, mv, target_precision=args.target_precision, confidence=args.confidence,
                          fwer_method=args.fwer, random_state=args.seed)
    except ValidationError as e:
        raise UserError(str(e)) from e
    ok = [s for s in result.species if s.validated]
    print(f"model {result.model_version}: {result.n_audit} audit label(s); precision >= {result.target_precision:g} "
          f"with confidence {result.confidence:g} ({result.fwer_method}, per species)")
    for why, n in sorted(result.left_out.items()):
        print(f"  left out: {n} audit label(s): {why}")
    if result.disputed:
        print(f"  disputed: {result.disputed} audit label(s) whose experts split: a detection of a species in "
              "dispute counts as wrong until someone adjudicates (`workbench agreement` lists them)")
    shown = [s for s in result.species if s.validated or s.n_positive or args.all]
    for s in sorted(shown, key=lambda s: (not s.validated, s.label)):
        mark = f"auto-validated at >= {s.threshold:.3f}" if s.validated else "review"
        rel = result.reliability.get(s.label)
        ece = f", ECE {rel['ece']:.3f} on n={rel['n']}" if rel else ""
        print(f"  {mark:<28} {s.label}  (audit positives {s.n_positive}{ece}): {s.note}")
    for label, n in sorted(result.out_of_range.items()):
        print(f"  out of range: {n} audit detection(s) of {label} where the range model calls it absent: never "
              "auto-validated")
    if len(shown) < len(result.species):
        print(f"  review                       {len(result.species) - len(shown)} more species scored in audit clips "
              "but never labelled there (--all lists them)")
    total, auto = pool_counts(store, store.model_version(result.model_version), result.thresholds,
                              min_confidence=args.min_confidence,
                              progress=lambda done, total: print(f"\r[validate] counted {done}/{total} pool clips",
                                                                 end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    print(f"{len(ok)} of {len(result.species)} species with audit evidence can be auto-validated; "
          f"{auto} of {total} pool detection(s) at >= {args.min_confidence:g} are auto-validated, the rest go to "
          "review (`workbench export detections` marks them)")
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("validate", help="per-species thresholds that auto-validate detections with a precision "
                                        "guarantee, learnt from audit labels",
                       description="Learn-then-Test on the audit stream's labels (`workbench sample --strategy "
                                   "audit`): for each species the lowest score whose precision is at least "
                                   "--target-precision with probability --confidence. Recorded on the model; "
                                   "exports mark detections at or above it as auto-validated.")
    s.add_argument("--target-precision", type=float, default=0.95, help="precision to guarantee (0.95)")
    s.add_argument("--confidence", type=float, default=0.9, help="probability that the guarantee holds (0.9)")
    s.add_argument("--fwer", choices=["bonferroni_holm", "bonferroni", "fixed_sequence"], default="bonferroni_holm",
                   help="multiple-testing control over the threshold grid (MAPIE's; Holm by default)")
    s.add_argument("--model-version", help="BirdNET or a fine-tuned head (default: the newest)")
    s.add_argument("--min-confidence", type=float, default=0.1, help="detections counted from this score (0.1)")
    s.add_argument("--seed", type=int, default=0, help="seed of the thinning of score-stratified audits")
    s.add_argument("--all", action="store_true", help="list species no audit label carries too")
    s.set_defaults(func=cmd_validate)
