"""Images in, scored and embedded regions out: camera-trap and moth-trap frames through the same store as audio.

An image file is a ``Recording`` (modality "image", identified by its content hash, so a copy or a rerun
adds nothing) whose clips are regions: the whole frame, or, with a detector's output (MegaDetector batch
JSON), one crop per detection at or above the threshold, so sampling, labelling and fine-tuning work per
animal; a frame where the detector found nothing is kept as a "blank" candidate. Each region's box is
stored with its clip (``store.ClipBox``) in the same transaction as its scores and embedding.

Each worker thread decodes an image (cropping, resizing) and runs the model on it with an interpreter of
its own, while the other worker does the same: Pillow and LiteRT release the GIL, so both cores stay busy;
a separate thread writes the previous batch to the store meanwhile. A file that cannot be read (truncated past its
first row, not an image, a decompression bomb) is recorded as failed with its reason and the run goes
on; nothing of it is stored but that reason. An image's regions are committed together, so a run killed
half-way resumes with the next image and never stores a region twice.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from embeddings.detections import Detection, ImageDetections, crop, read_detections
from embeddings.image_files import IMAGE_EXTENSIONS, ImageReadError, find_image_files, read_image
from embeddings.files import unreadable_folder
from embeddings.ingest import IngestReport, ProgressCallback
from embeddings.known_files import FileState, KnownFile, KnownFiles, stat_and_hash
from embeddings.metadata import RecordingMetadata, Sidecar, image_metadata
from store import LockName, Modality, ModelKind, Recording, RecordingStatus, Store
from store.roles import Records
from store.store import Box

log = logging.getLogger(__name__)

BLANK: Box = (0.0, 0.0, 1.0, 1.0, "blank", None)


@dataclass
class _Image:
    """One file on its way: its regions prepared as model inputs, or why it cannot be ingested."""

    path: Path
    content_hash: Optional[str] = None
    existing: Optional[Recording] = None
    skip: Optional[str] = None
    error: Optional[str] = None
    meta: RecordingMetadata = field(default_factory=RecordingMetadata)
    size: int = 0
    mtime_ns: int = 0
    regions: list[tuple[int, Optional[Box]]] = field(default_factory=list)
    probabilities: Optional[np.ndarray] = None  # one row per region
    embeddings: Optional[np.ndarray] = None
    notes: list[str] = field(default_factory=list)
    decision: Optional[KnownFile] = None
    adds_crops: bool = False  # a stored frame getting a detector's crops (nothing else of it changes)


def _prepare(path: Path, known: KnownFiles, model: Any, detections: Optional[dict[Path, ImageDetections]],
             sidecar: Optional[Sidecar], root: Optional[Path], max_pixels: Optional[int]) -> _Image:
    """Hash, skip what is stored, decode, cut the regions and preprocess them (runs on a worker thread)."""
    job = _Image(path)
    hashed = stat_and_hash(path, lambda p: f"{p}: is empty (0 bytes): the camera or the copy failed; copy it "
                                           f"again or delete it")
    if hashed.stat is not None:
        job.size, job.mtime_ns = hashed.stat.st_size, hashed.stat.st_mtime_ns
    if hashed.problem is not None or hashed.digest is None or hashed.stat is None:
        job.error = hashed.problem or f"{path}: cannot be read"
        return job
    job.content_hash = hashed.digest
    # the run's own files are decided on the calling thread (``_decide_in_run``): here only the store is asked, and
    # the metadata (EXIF) is read only when another recording holds the same bytes
    job.decision = known.decide(path, job.content_hash, hashed.stat,
                                lambda: image_metadata(path, sidecar, root=root))
    job.existing = job.decision.existing
    found = detections.get(path.resolve()) if detections is not None else None
    if job.decision.skip:
        job.skip = job.decision.reason
        if found is None or not found.detections or job.existing is None:
            return job
        job.regions = _new_detection_set(known.store, job.existing.id, found)
        if not job.regions:
            job.skip += "; its detections are stored too"
            return job
        job.skip, job.adds_crops = None, True  # the usual order: frames first, the detector's boxes later
    whole = found is None or not found.detections  # crops need every pixel; a whole frame only the model's input
    try:
        image = read_image(path, max_pixels=max_pixels, notes=job.notes,
                           min_size=model.pixels_needed if whole and hasattr(model, "pixels_needed") else None)
    except ImageReadError as e:
        job.error = str(e)
        return job
    job.meta = image_metadata(path, sidecar, root=root, image=image)
    if found is None:
        job.regions = [(0, None)]
        parts = [image]
    elif not found.detections:
        job.regions = [(0, BLANK)]
        parts = [image]
    else:
        if not job.adds_crops:
            job.regions = [(k, _box(d)) for k, d in enumerate(found.detections, 1)]
        parts = [crop(image, d.bbox) for d in found.detections]
    try:
        inputs = [model.preprocess(part) for part in parts]
    except (ValueError, OSError) as e:
        job.error = f"{path}: cannot be prepared for the model ({e})"
        return job
    # the model runs here too, on this thread's own interpreter: each worker decodes one image while the
    # other infers (Pillow and LiteRT release the GIL), which keeps both cores busy with the least handing over
    job.probabilities, job.embeddings = model.infer_batch(inputs)
    return job


def _box(d: Detection) -> Box:
    return (*d.bbox, d.category, float(d.confidence))


def _box_key(box: Box) -> tuple:
    return (*(round(float(v), 6) for v in box[:4]), box[4])


def _new_detection_set(store: Records, recording_id: int, found: ImageDetections) -> list[tuple[int, Optional[Box]]]:
    """Regions for a stored frame's detections, or [] when each of those boxes is stored already (a rerun).

    A detector's boxes for a frame are one detection set: crops numbered after the frame's clips already
    stored, so a second detector run with other boxes adds a set of its own and the first stays as it was.
    """
    stored = store.regions(recording_id)
    known = {_box_key(box) for _, box in stored if box is not None}
    boxes = [_box(d) for d in found.detections]
    if all(_box_key(box) in known for box in boxes):
        return []
    first = int(max((start for start, _ in stored), default=0.0)) + 1
    return [(first + i, box) for i, box in enumerate(boxes)]


def ingest_images(paths: str | os.PathLike | Iterable[str | os.PathLike], store: Store, model: Any, *,
                  metadata_csv: str | os.PathLike | None = None, detections: str | os.PathLike | None = None,
                  threshold: float = 0.2, root: str | os.PathLike | None = None, batch_images: int = 64,
                  workers: Optional[int] = None, max_pixels: Optional[int] = 100_000_000,
                  progress: Optional[ProgressCallback] = None) -> IngestReport:
    """Ingest image files and folders into ``store`` with the vision ``model``; see the module docstring.

    ``detections`` is a MegaDetector batch-output JSON (its relative paths resolved from ``root``, else
    from the JSON's folder); its problems (files it names that do not exist, boxes outside the image)
    are reported in ``warnings`` per file. ``root`` is the folder the images were copied to (its first
    level below names the site); ``metadata_csv`` a sidecar (file, site, device, start_time, ...) that
    overrides what names and folders say. ``progress(files_done, files_total, regions_done, path)``.
    """
    started = time.perf_counter()
    if not isinstance(batch_images, int) or batch_images < 1:
        raise ValueError(f"batch_images must be a positive int, got {batch_images!r}")
    # one more worker than cores: while one waits on the GIL (EXIF, numpy glue), the cores stay on decode and invoke
    workers = workers or min(4, (os.cpu_count() or 1) + 1)
    empty: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    files = find_image_files(paths, empty, unreadable)
    sidecar = Sidecar(metadata_csv).read() if metadata_csv is not None else None
    root_path = Path(root).resolve() if root is not None else None
    report = IngestReport()
    by_path: Optional[dict[Path, ImageDetections]] = None
    if detections is not None:
        det = read_detections(detections, image_root=root, threshold=threshold)
        by_path = {im.path.resolve(): im for im in det.images}
        for problem in det.problems:
            report.warnings.append((str(problem.file), f"detector output {Path(detections).name}: {problem.file}: "
                                                       f"{problem.reason}"))
    model.load()
    mv = store.ensure_model_version(model.name, ModelKind.EMBEDDING, model.name, model.dim, list(model.labels),
                                    output_type=model.output_type)
    done = 0

    def tick(path: Optional[Path]) -> None:
        if progress is not None:
            progress(done, len(files), report.windows_added, None if path is None else str(path))

    with store.lock(LockName.INGEST), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image") as readers, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-store") as writer:
        pending: deque[Future] = deque()
        known = KnownFiles(store, in_run=False)  # the workers ask the store; this thread checks the run's files
        run = KnownFiles(store)  # only its record of this run's files is used
        queue = iter(files)
        ahead = max(4, 2 * batch_images)

        def refill() -> None:
            for path in queue:
                pending.append(readers.submit(_prepare, path, known, model, by_path, sidecar, root_path, max_pixels))
                if len(pending) >= ahead:
                    return

        refill()
        batch: list[_Image] = []
        writing: Optional[Future] = None  # the previous batch's store writes, overlapping this batch's inference
        n_written, last_path = 0, None
        while pending or batch:
            if pending:
                job = pending.popleft().result()
                refill()
                if job.decision is not None and not job.skip:
                    _decide_in_run(run, job, report)
                if job.skip:
                    report.files_skipped += 1
                    done += 1
                    log.info("skipped %s: %s", job.path, job.skip)
                    tick(job.path)
                elif job.error:
                    _fail(store, job, report)
                    done += 1
                    tick(job.path)
                else:
                    batch.append(job)
            if batch and (len(batch) >= batch_images or not pending):
                probs = np.concatenate([job.probabilities for job in batch])
                embs = np.concatenate([job.embeddings for job in batch])
                if writing is not None:
                    writing.result()  # one batch written at a time, in order; its errors surface here
                    done += n_written
                    tick(last_path)
                writing = writer.submit(_store_batch, store, mv, batch, probs, embs, report)
                n_written, last_path = len(batch), batch[-1].path
                batch = []
        if writing is not None:
            writing.result()
            done += n_written
            tick(last_path)
    report.files_failed += [unreadable_folder(f, reason) for f, reason in unreadable]
    for folder in empty:
        report.files_failed.append((str(folder), f"{folder} is a folder holding no image files "
                                                  f"({', '.join(IMAGE_EXTENSIONS)}): give the files or the folder "
                                                  f"that holds them"))
    report.wall_seconds = time.perf_counter() - started
    return report


def _decide_in_run(run: KnownFiles, job: _Image, report: IngestReport) -> None:
    """Against the files of this run, in file order: a copy with the same site and time is skipped, the same
    bytes at another site or time are a duplicate (a recording of its own, reported)."""
    state = run.earlier(job.path, job.content_hash, job.meta)
    if state is not None and state.skip:
        job.skip, job.error = state.reason, None
        return
    duplicate = state if state is not None else job.decision
    if duplicate.state == FileState.DUPLICATE:
        log.info("%s holds the same bytes as %s (another site, device or time): stored as a recording of its own",
                 job.path, duplicate.reason)
        report.duplicates.append((str(job.path), duplicate.reason))


def _store_batch(store: Records, mv: Any, batch: list[_Image], probs: np.ndarray, embs: np.ndarray,
                 report: IngestReport) -> None:
    """Store a batch in three transactions: its recordings (pending), all their regions with scores, boxes and
    embeddings, and the recordings done. A crash in between leaves pending recordings that the next run
    finishes (regions already stored are skipped)."""
    fields = {id(job): dict(path=str(job.path), modality=Modality.IMAGE, site=job.meta.site, device=job.meta.device,
                            start_time=job.meta.start_time, latitude=job.meta.latitude,
                            longitude=job.meta.longitude, country=job.meta.country,
                            admin1_region=job.meta.admin1_region, file_size=job.size, file_mtime_ns=job.mtime_ns)
              for job in batch}
    new = [job for job in batch if job.existing is None]
    # plain rows through SQL Core (no Recording objects): these writes hold the GIL the readers need
    ids = store.insert_recordings([dict(content_hash=job.content_hash, status=RecordingStatus.PENDING,
                                        **fields[id(job)]) for job in new])
    rec_of = {id(job): rec_id for job, rec_id in zip(new, ids)}
    again = {}  # a pending recording of a killed run, or a failed one read again
    for job in batch:
        if job.adds_crops:  # a stored frame: its crops go in with the others, in one transaction, nothing else
            rec_of[id(job)] = job.existing.id
        elif job.existing is not None:
            rec_of[id(job)] = job.existing.id
            again[job.existing.id] = dict(status=RecordingStatus.PENDING, error=None, **fields[id(job)])
    if again:
        store.update_recordings(again)
    rec_ids = [rec_of[id(job)] for job in batch for _ in job.regions]
    spans = [(float(k), float(k)) for job in batch for k, _ in job.regions]
    ids = store.add_clips(rec_ids, spans, mv, probs, embs, boxes=[box for job in batch for _, box in job.regions])
    report.windows_added += len(ids)
    for job in batch:
        for note in job.notes:
            report.warnings.append((str(job.path), note))
        if any("truncated" in note for note in job.notes):
            report.truncated.append(str(job.path))
    ingested = [job for job in batch if not job.adds_crops]
    store.update_recordings({rec_of[id(job)]: {"status": RecordingStatus.DONE, "error": "; ".join(job.notes) or None}
                             for job in ingested})
    old = store.replace_recordings({str(job.path): rec_of[id(job)] for job in ingested})
    changed = {r.path for r in store.recordings(ids=old)} if old else set()
    report.replaced += [str(job.path) for job in ingested if str(job.path) in changed]
    report.files_new += len(ingested)
    report.crops_added_to += [str(job.path) for job in batch if job.adds_crops]


def _fail(store: Records, job: _Image, report: IngestReport) -> None:
    log.warning("not ingested: %s", job.error)
    if job.content_hash is not None and not job.adds_crops:  # a stored frame keeps what it has
        if job.existing is None:
            store.add_recording(Recording(path=str(job.path), content_hash=job.content_hash, modality="image",
                                          status=RecordingStatus.FAILED, error=job.error))
        else:
            store.update_recording(job.existing.id, path=str(job.path), status=RecordingStatus.FAILED, error=job.error)
    report.files_failed.append((str(job.path), job.error or "unknown error"))
