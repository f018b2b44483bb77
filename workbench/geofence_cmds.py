"""`workbench geofence FILE | --clear`: the workspace's image geofence (SpeciesNet's rule format), checked against
the image models' labels and the sites' countries (parsing and printing; the rules are ``store.geofence``).

The rules are kept as ``<workspace>/geofence.json``; the range-conflict sampler and the push's pre-annotations
read them from there (``workspace_geofence``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from store import StoreError
from store.geofence import Geofence
from workbench.config import Workspace
from workbench.console import UserError, open_store


def workspace_geofence(ws: Workspace) -> Optional[Geofence]:
    """The workspace's geofence, or None when none is set; a damaged copy is a ``UserError`` saying what to do."""
    path = ws.geofence_file
    if not path.exists():
        return None
    try:
        return Geofence.from_file(path)
    except ValueError as e:
        raise UserError(f"{e}; set it again with `workbench geofence FILE`, or `workbench geofence --clear`") from e


def _image_models(store) -> list:
    """Model versions whose pool holds image clips (an image model and the heads trained on it)."""
    out = []
    for mv in store.model_versions():
        if not mv.labels:
            continue
        try:
            pool = store.pool(mv)
        except StoreError:
            continue
        if len(pool) and store.clips([int(pool.clip_id[0])])[0].modality == "image":
            out.append(mv)
    return out


def _listed(names: list[str], show: int) -> str:
    more = f", ... ({len(names) - show} more; --show N lists more)" if len(names) > show else ""
    return ", ".join(names[:show]) + more


def _report(ws: Workspace, fence: Geofence, show: int) -> None:
    store = open_store(ws, reading=True)
    try:
        models = _image_models(store)
        recordings = [r for r in store.recordings() if r.modality == "image"]
    finally:
        store.close()
    if not models:
        print("no image model in the workspace yet: `workbench ingest FOLDER` of images, then run this again to see "
              "which labels the rules cover")
    for mv in models:
        m = fence.mapping(list(mv.labels))
        print(f"model {mv.name}: {m.covered} of {len(mv.labels)} label(s) have a rule (fenced where it says); "
              f"{m.mapped - m.covered} more map to the rules' taxonomy and only roll up")
        if m.unmapped:
            print(f"  {len(m.unmapped)} label(s) the rules cannot map (no genus and species the rules know; never "
                  f"fenced): {_listed(m.unmapped, show)}")
    by_country: dict[Optional[str], set[str]] = {}
    for r in recordings:
        by_country.setdefault(r.country, set()).add(r.site or "(no site)")
    placed = sorted(c for c in by_country if c)
    if placed:
        print(f"countries of the images: {', '.join(f'{c} ({len(by_country[c])} site(s))' for c in placed)}")
    if None in by_country:
        n = sum(1 for r in recordings if r.country is None)
        print(f"{n} image(s) have no country and are never fenced, at site(s): "
              f"{_listed(sorted(by_country[None]), show)}; give a country column (ISO 3166-1 alpha-3) in the "
              f"metadata CSV and ingest again (`workbench ingest --metadata FILE`)")


def cmd_geofence(ws: Workspace, args: argparse.Namespace) -> int:
    from store.atomic import write_atomically

    kept = ws.geofence_file
    if args.clear:
        if args.file is not None:
            raise UserError("give a rules FILE or --clear, not both")
        if kept.exists():
            kept.unlink()
            print(f"geofence removed ({kept}): image predictions are no longer fenced")
        else:
            print("no geofence was set")
        return 0
    if args.file is None:
        fence = workspace_geofence(ws)
        if fence is None:
            print("no geofence set: `workbench geofence FILE` sets one (SpeciesNet's format: taxonomy string -> "
                  "{\"allow\": {ISO3: [admin1, ...]}, \"block\": {...}})")
            return 0
    else:
        try:
            fence = Geofence.from_file(args.file)
        except ValueError as e:
            raise UserError(str(e)) from e
        write_atomically(kept, Path(args.file).read_bytes())
    allow = sum(1 for r in fence.rules.values() if r.allow)
    block = sum(1 for r in fence.rules.values() if r.block)
    print(f"geofence of {len(fence.rules)} taxa ({allow} with allow lists, {block} with block lists), kept as {kept}")
    _report(ws, fence, args.show)
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("geofence", help="image geofence: SpeciesNet-style allow/block lists per species and country "
                                        "(fenced top labels roll up; the range-conflict sampler flags them)")
    s.add_argument("file", nargs="?", type=Path, metavar="FILE",
                   help="rules JSON: taxonomy string (class;order;family;genus;species) -> {\"allow\": {ISO3: "
                        "[admin1, ...]}, \"block\": {...}}; without FILE: show the workspace's")
    s.add_argument("--clear", action="store_true", help="remove the workspace's geofence")
    s.add_argument("--show", type=int, default=20, help="labels and sites to list at most (default 20)")
    s.set_defaults(func=cmd_geofence)
