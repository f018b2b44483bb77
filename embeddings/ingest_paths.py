"""Ingest whatever paths a user gives: audio through BirdNET (here or on a Ray cluster), images through a vision model.

The one service under ``workbench ingest`` (and any other face): it sorts the paths into audio files,
image files and folders holding neither, picks the vision model, and runs each library ingest with the
same progress callback. It prints nothing; the report it returns says what each part did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from embeddings.ingest import IngestReport
from store.schema import Modality
from store.store import Store

#: progress(part, files_done, files_total, windows_done, current_path): part is the modality being ingested
PathsProgress = Callable[[Modality, int, int, int, Optional[str]], None]


@dataclass(frozen=True)
class IngestSettings:
    """How to ingest: the sidecar, the vision model and where it is cached, the cluster's options.

    ``vision_cache`` is the folder a registered vision model is fetched into (the workspace's
    ``models/vision``) and ``models_mirror`` a base URL to fetch it from instead of its home; ``shards``
    is where a cluster ingest's workers leave their windows (required with ``cluster``).
    """

    metadata: Optional[Path] = None
    vision_model: Optional[str] = None
    labels: Optional[Path] = None
    model_dir: Optional[Path] = None
    vision_cache: Optional[Path] = None
    models_mirror: Optional[str] = None
    detections: Optional[Path] = None
    threshold: float = 0.2
    cluster: Optional[str] = None
    shards: Optional[Path] = None
    workers: Optional[int] = None
    keep_shards: bool = False
    resample: Optional[str] = None


@dataclass
class PathsReport:
    """What one ingest of paths did: a report per modality ingested, and the folders it could not use."""

    parts: list[tuple[Modality, IngestReport]] = field(default_factory=list)
    empty: list[Path] = field(default_factory=list)  # folders holding no audio or image files
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (folder, reason) of folders not listed
    shards: Optional[Path] = None  # the cluster's shard folder, when audio went to a cluster

    @property
    def windows_added(self) -> int:
        return sum(r.windows_added for _, r in self.parts)

    @property
    def failed(self) -> int:
        """Files and folders not ingested: a non-zero count is a failed run for a cron or Slurm job."""
        return sum(len(r.files_failed) for _, r in self.parts) + len(self.empty) + len(self.unreadable)


def split_inputs(paths: Sequence[Path]) -> tuple[list[Path], list[Path], list[Path], list[Path], list[tuple[str, str]]]:
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


def vision_model(settings: IngestSettings):
    """The model ``settings.vision_model`` names: a registered name (from ``model_dir`` or fetched, pinned and
    checksummed, into ``vision_cache``), or a .tflite/.onnx file with ``labels``.

    An unknown name is a ValueError; a registered model that cannot be fetched raises ``ModelDownloadError``.
    """
    from embeddings.vision import DEFAULT_MODEL, REGISTRY, fetch_model, model_from_file, registered_model

    name = settings.vision_model or DEFAULT_MODEL
    if name in REGISTRY:
        if settings.model_dir:
            return registered_model(name, settings.model_dir)
        if settings.vision_cache is None:
            raise ValueError(f"vision model {name!r} must be fetched, but no folder to keep it in was given")
        return fetch_model(name, settings.vision_cache, base=settings.models_mirror or None)
    path = Path(name)
    if not path.exists():
        raise ValueError(f"--vision-model {name!r} is neither a registered model ({', '.join(REGISTRY)}) nor a file")
    return model_from_file(path, labels_path=settings.labels)


def ingest_paths(paths: Sequence[Path], store: Store, settings: IngestSettings = IngestSettings(), *,
                 progress: Optional[PathsProgress] = None) -> PathsReport:
    """Ingest the audio and image files under ``paths`` into ``store``; see the module docstring.

    Audio runs when there is any (or when there are no images, so an empty folder is reported by the audio
    ingest as before), on the cluster ``settings.cluster`` names or here; images always run here. A cluster
    that cannot be reached raises ``embeddings.cluster.ClusterError``.
    """
    audio, images, image_roots, empty, unreadable = split_inputs(paths)
    out = PathsReport(empty=empty, unreadable=unreadable)

    def stage(part: Modality):
        return None if progress is None else lambda *args: progress(part, *args)

    if audio or not images:
        if settings.cluster is not None:
            from embeddings.cluster import cluster_ingest

            if settings.shards is None:
                raise ValueError("a cluster ingest needs a shard folder every node reaches (shards)")
            out.shards = settings.shards
            report = cluster_ingest(audio, store, address=settings.cluster, shard_dir=settings.shards,
                                    metadata_csv=settings.metadata, workers=settings.workers,
                                    keep_shards=settings.keep_shards, resample=settings.resample,
                                    progress=stage(Modality.AUDIO))
        else:
            from embeddings.ingest import ingest

            report = ingest(audio, store, metadata_csv=settings.metadata, progress=stage(Modality.AUDIO),
                            resample=settings.resample)
        out.parts.append((Modality.AUDIO, report))
    if images:
        from embeddings.image_ingest import ingest_images

        model = vision_model(settings)
        root = image_roots[0] if len(image_roots) == 1 else None
        out.parts.append((Modality.IMAGE, ingest_images(images, store, model, metadata_csv=settings.metadata,
                                                  detections=settings.detections, threshold=settings.threshold,
                                                  root=root, progress=stage(Modality.IMAGE))))
    return out


__all__ = ["IngestSettings", "PathsProgress", "PathsReport", "ingest_paths", "split_inputs", "vision_model"]
