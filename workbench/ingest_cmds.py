"""The command line of ingest: audio and image files into the store (parsing and printing only).

The work is done by ``embeddings.ingest_paths.ingest_paths`` (audio through BirdNET, images through a vision
model, a Ray cluster's shards); this module turns the options into its settings and prints each report.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from store.schema import Modality
from workbench.config import Workspace
from workbench.console import UserError, open_store, score_progress

if TYPE_CHECKING:
    from embeddings.ingest_paths import IngestSettings


class _IngestProgress:
    """One overwritten stderr line per modality ingested (a new line when the next one starts)."""

    def __init__(self) -> None:
        self.part: Optional[Modality] = None

    def __call__(self, part: Modality, files_done: int, files_total: int, windows_done: int,
                 current: Optional[str]) -> None:
        if self.part is not None and part != self.part:
            print(file=sys.stderr)
        self.part = part
        name = Path(current).name if current else ""
        print(f"\r[ingest] {files_done}/{files_total} files, {windows_done} windows {name[:48]:<48}",
              end="", file=sys.stderr, flush=True)


def _settings(ws: Workspace, args: argparse.Namespace) -> IngestSettings:
    """The options as plain settings; the workspace gives the model cache and the default shard folder."""
    from embeddings.ingest_paths import IngestSettings

    cluster = getattr(args, "cluster", None)
    shards, workers = getattr(args, "shards", None), getattr(args, "workers", None)
    keep_shards = getattr(args, "keep_shards", False)
    if cluster is None and (shards is not None or workers is not None or keep_shards):
        raise UserError("--shards, --workers and --keep-shards apply to a cluster ingest: add --cluster ADDRESS "
                        "(or --cluster local)")
    return IngestSettings(
        metadata=args.metadata, vision_model=getattr(args, "vision_model", None), labels=getattr(args, "labels", None),
        model_dir=getattr(args, "model_dir", None), vision_cache=ws.models / "vision",
        models_mirror=os.environ.get("WORKBENCH_MODELS_MIRROR") or None, detections=getattr(args, "detections", None),
        threshold=getattr(args, "threshold", 0.2), cluster=cluster,
        shards=(shards if shards is not None else ws.root / "shards") if cluster is not None else None,
        workers=workers, keep_shards=keep_shards, resample=getattr(args, "resample", None))


def cmd_ingest(ws: Workspace, args: argparse.Namespace) -> int:
    """Audio files through BirdNET, image files through the vision model, into the same store."""
    from embeddings.cluster import ClusterError
    from embeddings.ingest_paths import ingest_paths
    from embeddings.vision import ModelDownloadError

    settings = _settings(ws, args)
    store = open_store(ws)
    shown = _IngestProgress()
    try:
        result = ingest_paths(args.paths, store, settings, progress=shown)
    except (ClusterError, ModelDownloadError) as e:  # unreachable, or offline on the first image ingest
        raise UserError(str(e)) from e
    finally:
        if shown.part is not None:
            print(file=sys.stderr)
    if result.shards is not None:
        report = result.parts[0][1]
        print(f"[cluster] {report.workers} worker(s) on {len(report.nodes)} node(s) embedded {report.shards_computed} "
              f"file(s), {report.shards_reused} taken from shards an earlier run left in {result.shards}; listing "
              f"{report.list_seconds:.1f} s, workers busy {report.worker_seconds:.1f} s, committing "
              f"{report.commit_seconds:.1f} s", file=sys.stderr)
    if result.windows_added:  # the current head scores them at once (BirdNET or a vision model did at ingest)
        from finetune.scoring import score_new_clips

        if score_new_clips(store, progress=score_progress):
            print(file=sys.stderr)
    for kind, report in result.parts:
        _print_report(kind, report)
    for folder in result.empty:
        print(f"  failed: {folder}: a folder holding no audio or image files: give the files or the folder that "
              f"holds them")
    for _folder, reason in result.unreadable:
        print(f"  failed: {reason}")
    if result.failed:  # a cron or Slurm job notices: any file not ingested is a non-zero exit
        print(f"{result.failed} file(s) or folder(s) not ingested (named above): exit status 1", file=sys.stderr)
    return 1 if result.failed else 0


def _print_report(kind: Modality, report) -> None:
    what = (f"{report.windows_added} windows ({report.audio_seconds:.0f} s of audio in {report.wall_seconds:.1f} s)"
            if kind == Modality.AUDIO else
            f"{report.windows_added} image regions (frames or detector crops) in {report.wall_seconds:.1f} s")
    print(f"ingested {report.files_new} new file(s), skipped {report.files_skipped} already stored, "
          f"{len(report.files_failed)} failed; {what}")
    for path, reason in report.files_failed:  # most reasons name their file already
        print(f"  failed: {reason if str(path) in reason else f'{path}: {reason}'}")
    for path, message in report.warnings:
        print(f"  warning: {message}")
    if kind == Modality.IMAGE and report.truncated:
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
              f"device or time; each is stored as a recording of its own (a recorder writing identical files?)"
              + (f", its {copied} window(s) copied from the other's, not embedded again"
                 if (copied := getattr(report, "windows_copied", 0)) else "") + ":")
        for path, other in report.duplicates:
            print(f"    duplicate: {path} = {other}")


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
