"""The command line of ingest: audio and image files into the store (parsing and printing only).

The work is done by ``embeddings`` (audio through BirdNET, images through a vision model, a Ray cluster's
shards); this module finds the files under the paths given, picks the model and prints each report.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from workbench.config import Workspace
from workbench.console import UserError, open_store, score_new_clips


def _ingest_progress(files_done: int, files_total: int, windows_done: int, current: str | None) -> None:
    name = Path(current).name if current else ""
    print(f"\r[ingest] {files_done}/{files_total} files, {windows_done} windows {name[:48]:<48}",
          end="", file=sys.stderr, flush=True)


def _split_inputs(paths: Sequence[Path]) -> tuple[list[Path], list[Path], list[Path], list[Path], list[tuple[str, str]]]:
    """(audio files, image files, image folders given, folders holding neither, (folder, reason) of folders that
    cannot be read) under the paths given."""
    from embeddings.files import unreadable_folder
    from embeddings.image_files import IMAGE_EXTENSIONS, find_image_files
    from embeddings.ingest import find_audio_files

    explicit_images = [p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    others = [p for p in paths if p not in explicit_images]
    no_audio: list[Path] = []
    no_images: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    audio = find_audio_files(others, no_audio, unreadable) if others else []
    folders = [p for p in others if p.is_dir()]
    images = find_image_files([*explicit_images, *folders], no_images) if explicit_images or folders else []
    empty = [p for p in no_audio if p in no_images]
    image_roots = [p for p in folders if p not in no_images]
    failed = [unreadable_folder(folder, reason) for folder, reason in dict(unreadable).items()]
    return audio, images, image_roots, empty, failed


def _vision_model(ws: Workspace, args: argparse.Namespace):
    """The model named by --vision-model: a registered name (from --model-dir or fetched, pinned and
    checksummed, into the workspace), or a .tflite/.onnx file with --labels."""
    from embeddings.vision import (DEFAULT_MODEL, REGISTRY, ModelDownloadError, fetch_model, model_from_file,
                                   registered_model)

    name = args.vision_model or DEFAULT_MODEL
    if name in REGISTRY:
        if args.model_dir:
            return registered_model(name, args.model_dir)
        try:
            return fetch_model(name, ws.models / "vision", base=os.environ.get("WORKBENCH_MODELS_MIRROR") or None)
        except ModelDownloadError as e:  # offline on the first image ingest: what to do, in one line
            raise UserError(str(e)) from e
    path = Path(name)
    if not path.exists():
        raise UserError(f"--vision-model {name!r} is neither a registered model ({', '.join(REGISTRY)}) nor a file")
    return model_from_file(path, labels_path=args.labels)


def cmd_ingest(ws: Workspace, args: argparse.Namespace) -> int:
    """Audio files through BirdNET, image files through the vision model, into the same store."""
    from embeddings.ingest import IngestReport, ingest

    audio, images, image_roots, empty, unreadable = _split_inputs(args.paths)
    cluster = getattr(args, "cluster", None)
    if cluster is None and (getattr(args, "shards", None) is not None or getattr(args, "workers", None) is not None
                            or getattr(args, "keep_shards", False)):
        raise UserError("--shards, --workers and --keep-shards apply to a cluster ingest: add --cluster ADDRESS "
                        "(or --cluster local)")
    store = open_store(ws)
    reports: list[IngestReport] = []
    if (audio or not images) and cluster is not None:
        from embeddings.cluster import ClusterError, cluster_ingest

        # audio on the Ray cluster (images, if any, still go through the vision model on this machine)
        shards = args.shards if args.shards is not None else ws.root / "shards"
        try:
            report = cluster_ingest(audio, store, address=cluster, shard_dir=shards, metadata_csv=args.metadata,
                                    workers=args.workers, keep_shards=args.keep_shards,
                                    resample=getattr(args, "resample", None), progress=_ingest_progress)
        except ClusterError as e:
            raise UserError(str(e)) from e
        reports.append(report)
        print(file=sys.stderr)
        print(f"[cluster] {report.workers} worker(s) on {len(report.nodes)} node(s) embedded {report.shards_computed} "
              f"file(s), {report.shards_reused} taken from shards an earlier run left in {shards}; listing "
              f"{report.list_seconds:.1f} s, workers busy {report.worker_seconds:.1f} s, committing "
              f"{report.commit_seconds:.1f} s", file=sys.stderr)
    elif audio or not images:
        reports.append(ingest(audio, store, metadata_csv=args.metadata, progress=_ingest_progress,
                              resample=getattr(args, "resample", None)))
        print(file=sys.stderr)
    if images:
        from embeddings.image_ingest import ingest_images

        model = _vision_model(ws, args)
        root = image_roots[0] if len(image_roots) == 1 else None
        reports.append(ingest_images(images, store, model, metadata_csv=args.metadata, detections=args.detections,
                                     threshold=args.threshold, root=root, progress=_ingest_progress))
        print(file=sys.stderr)
    if sum(r.windows_added for r in reports):
        score_new_clips(store)
    for report, kind in zip(reports, (["audio"] if audio or not images else []) + (["images"] if images else [])):
        what = (f"{report.windows_added} windows ({report.audio_seconds:.0f} s of audio in {report.wall_seconds:.1f} s)"
                if kind == "audio" else
                f"{report.windows_added} image regions (frames or detector crops) in {report.wall_seconds:.1f} s")
        print(f"ingested {report.files_new} new file(s), skipped {report.files_skipped} already stored, "
              f"{len(report.files_failed)} failed; {what}")
        for path, reason in report.files_failed:  # most reasons name their file already
            print(f"  failed: {reason if str(path) in reason else f'{path}: {reason}'}")
        for path, message in report.warnings:
            print(f"  warning: {message}")
        if kind == "images" and report.truncated:
            print(f"  {len(report.truncated)} truncated image(s): the part that decodes was ingested")
        elif report.truncated or report.nonfinite:
            print(f"  {len(report.truncated)} truncated file(s), {len(report.nonfinite)} file(s) with NaN/infinite "
                  f"samples ({sum(report.nonfinite.values())} replaced by silence)")
        for path in report.replaced:
            print(f"  changed since last ingested: {path} (new version stored; the old one's clips left the pool)")
        if getattr(report, "range_priors_added", 0):
            print(f"  range priors computed for {report.range_priors_added} new site-week(s) (`workbench range` "
                  f"lists species in range)")
        if report.crops_added_to:
            print(f"  detector crops added to {len(report.crops_added_to)} frame(s) ingested before")
        if report.duplicates:
            print(f"  {len(report.duplicates)} file(s) hold the same bytes as another recording at another site, "
                  f"device or time; each is stored as a recording of its own (a recorder writing identical files?):")
            for path, other in report.duplicates:
                print(f"    duplicate: {path} = {other}")
    for folder in empty:
        print(f"  failed: {folder}: a folder holding no audio or image files: give the files or the folder that "
              f"holds them")
    for _folder, reason in unreadable:
        print(f"  failed: {reason}")
    failed = sum(len(r.files_failed) for r in reports) + len(empty) + len(unreadable)
    if failed:  # a cron or Slurm job notices: any file not ingested is a non-zero exit
        print(f"{failed} file(s) or folder(s) not ingested (named above): exit status 1", file=sys.stderr)
    return 1 if failed else 0


def add_parser(sub) -> None:
    """``workbench ingest`` on the command line's subparsers."""
    s = sub.add_parser("ingest", help="store audio (BirdNET windows) and images (vision-model regions) of files "
                                      "or folders")
    s.add_argument("paths", nargs="+", type=Path)
    s.add_argument("--metadata", type=Path, help="CSV sidecar: file, site, device, start_time, latitude, longitude, "
                                                        "country (ISO3), admin1_region")
    s.add_argument("--vision-model", help="images: a registered model (default mobilenet-v2-imagenet, fetched once, "
                                          "pinned and checksummed) or a .tflite/.onnx file (with --labels)")
    s.add_argument("--labels", type=Path, help="images: the labels file of a --vision-model FILE")
    s.add_argument("--model-dir", type=Path, help="images: a folder already holding the registered model's files")
    s.add_argument("--detections", type=Path, help="images: MegaDetector batch-output JSON: one clip per detection "
                                                   "(a crop), frames without any kept as blank")
    s.add_argument("--threshold", type=float, default=0.2, help="images: detector confidence to keep a box (0.2)")
    s.add_argument("--cluster", metavar="ADDRESS|local",
                   help="audio: decode and embed on a Ray cluster (the head's host:port, 'auto', ray://host:port) "
                        "or on a Ray started on this machine ('local'); needs pip install "
                        "'biodiversity-workbench[cluster]' on every node and the audio at the same path on each")
    s.add_argument("--shards", type=Path, help="cluster: folder every node and this machine reach where workers leave "
                                               "each recording's windows until they are committed (default: the "
                                               "workspace's shards/)")
    s.add_argument("--workers", type=int, help="cluster: model workers (Ray actors, one CPU each; default: the "
                                               "cluster's CPUs)")
    s.add_argument("--keep-shards", action="store_true", help="cluster: keep shards after they are committed")
    s.add_argument("--resample", choices=["analyzer", "soxr-hq"],
                   help="audio not at 48 kHz: 'analyzer' (BirdNET-Analyzer's resampling, librosa kaiser_fast: "
                        "detections match BirdNET-Analyzer's; the default for a new workspace) or 'soxr-hq' (what "
                        "workspaces made before 0.4 used); recorded with the workspace's BirdNET version")
    s.set_defaults(func=cmd_ingest)
