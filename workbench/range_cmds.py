"""`workbench range`: BirdNET's range priors for every site-week with coordinates (parsing and printing; the
work is ``embeddings.range_priors``)."""

from __future__ import annotations

import argparse

from workbench.config import Workspace
from workbench.console import UserError, open_store


def cmd_range(ws: Workspace, args: argparse.Namespace) -> int:
    from embeddings.range_priors import compute_range_priors

    store = open_store(ws)
    try:
        report = compute_range_priors(store, threshold=args.threshold, refresh=True)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from e
    if report.model_version is None:
        raise UserError("the workspace holds no BirdNET model version yet (the range priors are over its classes): "
                        "run `workbench ingest PATH` on audio first")
    if not report.site_weeks:
        print(f"no recording has coordinates and a start time ({report.without_site_week} without): give them in a "
              f"metadata CSV (`workbench ingest --metadata FILE`, columns latitude, longitude, start_time)")
    else:
        print(f"{len(report.site_weeks)} site-week(s) computed with {report.range_model} "
              f"({report.bytes_stored / max(report.computed, 1):.0f} bytes stored per site-week); species in range "
              f"at occurrence >= {report.threshold:g}:")
        for s in report.site_weeks:
            sites = f" {', '.join(s.sites)}" if s.sites else ""
            print(f"  {s.site_week}{sites}: {s.in_range} species ({s.recordings} recording(s))")
        if report.without_site_week:
            print(f"{report.without_site_week} recording(s) without coordinates or a start time get no range prior")
    for head, labels in report.unmapped.items():
        print(f"head {head}: {len(labels)} label(s) name no BirdNET class and get no range prior: "
              f"{', '.join(labels)}")
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("range", help="BirdNET's range priors for every site-week with coordinates (species in range)")
    s.add_argument("--threshold", type=float, default=0.03,
                   help="occurrence at which a species counts as in range (BirdNET-Analyzer's sf_thresh, 0.03)")
    s.set_defaults(func=cmd_range)
