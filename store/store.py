"""The one interface to persistence. Every other package talks to ``Store``, never to SQL or files.

SQLModel tables hold the records (any SQLAlchemy URL; SQLite in WAL mode by default) and
append-only matrices in ``vectors_dir`` hold embeddings and probabilities, keyed by clip id. Each
write method is one transaction: after a crash, a rerun sees either all of a batch or none of it.

``Store`` is composed of three parts, one per role (``store.roles``): ``records``
(``store.records``: recordings, clips, model versions, the pool), ``vectors`` (``store.vectors``:
matrices and output layers) and ``ledger`` (``store.ledger``: runs, label sets, tasks, annotations,
watermarks). They share the engine, its session factory and the vectors folder; every public
method of ``Store`` hands its call to one of them, so callers keep the one narrow interface.

Scale (pools of tens of millions of windows): besides the SQL rows, every clip's recording and
start go to the ``clips`` matrix and every model's per-clip scores to ``scores:<model>``, in the
same transaction, so ``pool()`` reads memory-mapped columns instead of one SQL row per clip (the
Score rows stay, for SQL users). Bulk writes go through the driver's fastest path (COPY on
PostgreSQL, executemany elsewhere). Embeddings may be kept as float16 (``embedding_dtype``).
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, ContextManager, Iterable, Mapping, Optional, Sequence

import numpy as np
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError
from sqlmodel import Session, create_engine

from store import locks, matrices, migrate
from store.errors import StoreError
from store.records import (CLIP_COLUMNS, CLIPS_MATRIX, OUT_OF_POOL, SCORE_COLUMNS, TOP_K, Box, ClipInfo, Pool,
                           SqlRecords)
from store.ledger import SqlLedger
from store.ranges import DEFAULT_FLOOR, SiteWeek, StoredPrior
from store.schema import (Annotation, Clip, RecordingStatus, LabelSet, ModelVersion, Recording, SamplingRun, Selection,
                          SimulationRun, Task)
from store.sql import SessionFactory, session_factory, sqlite_begin, sqlite_pragmas, sqlite_read_pragmas
from store.vectors import EMBEDDING_DTYPES, ComputedProbabilities, EmbeddingDtype, MatrixVectors, OutputLayer

# what callers imported from here before the parts moved to their own modules stays importable from here
__all__ = ["CLIP_COLUMNS", "CLIPS_MATRIX", "EMBEDDING_DTYPES", "OUT_OF_POOL", "SCORE_COLUMNS", "TOP_K", "Box",
           "ClipInfo", "ComputedProbabilities", "EmbeddingDtype", "OutputLayer", "Pool", "Store", "StoreError",
           "mask_password"]

log = logging.getLogger(__name__)


def _log_wait(message: str) -> None:
    log.warning("%s", message)


def mask_password(url: str) -> str:
    """A database URL fit to show: its password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", str(url))


def _writable(db: Path) -> bool:
    """Whether this process can write the SQLite file ``db`` and make its journal files beside it."""
    return os.access(db.parent, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))


class Store:
    """Records in a SQL database, vectors in memory-mappable matrices next to it, and the loop's ledger.

    ``records``, ``vectors`` and ``ledger`` are the parts that do the work; the methods below delegate to them.
    """

    def __init__(self, url: str, vectors_dir: Path | str, embedding_dtype: EmbeddingDtype = "float32",
                 on_wait: Optional[locks.WaitCallback] = None, read_only: bool = False):
        """``embedding_dtype`` applies to embedding matrices this store creates; an existing matrix keeps
        the dtype recorded in its ``Matrix`` row.

        float32 (default) is exact and right for small pools. float16 halves the disk and page cache
        an embedding matrix needs (1M x 1,024 windows: 2 GB instead of 4 GB; 10M: 20 GB instead of
        40 GB) at about 3 significant digits, which leaves cosine neighbours and k-means on
        L2-normalised BirdNET embeddings practically unchanged: pick it once the matrix no longer fits
        comfortably in RAM (from about a million windows). Values beyond float16's range (65,504) are
        refused. ``MatrixView.take`` always returns float32.

        ``on_wait(message)`` is told when this store waits for a lock another process holds (default: a
        logged warning), so a command that has to wait says for whom.

        ``read_only`` opens it for reading only (an archived workspace on a read-only disk or folder): a
        SQLite file is opened read-only as it is (no journal files made, no migration; a schema older than
        this code's is refused by name). A SQLite store whose folder cannot be written, opened for
        writing, is refused naming the folder.
        """
        if embedding_dtype not in EMBEDDING_DTYPES:
            raise ValueError(f"embedding_dtype must be one of {list(EMBEDDING_DTYPES)}, got {embedding_dtype!r}")
        self.url = url
        self.on_wait: locks.WaitCallback = on_wait or _log_wait
        try:
            self.engine: Engine = create_engine(url)
        except (ArgumentError, NoSuchModuleError, ImportError) as e:
            raise StoreError(f"database URL {mask_password(url)!r} cannot be used: {e}; give an SQLAlchemy URL such as "
                             f"sqlite:////path/workbench.db or postgresql+psycopg://user@host/db (PostgreSQL needs "
                             f"pip install 'biodiversity-workbench[postgres]')") from e
        self.read_only = read_only
        db = locks.sqlite_path(self.engine)
        if db is not None and not read_only and not _writable(db):
            self.engine.dispose()
            raise StoreError(f"the workspace folder {db.parent} is read-only (an archived copy?): this command "
                             f"writes to its database; copy the folder somewhere writable, or make it writable")
        if db is not None and read_only:
            self.engine.dispose()  # the file as it is: no WAL or journal files made beside it, nothing written
            wal = db.with_name(db.name + "-wal")
            # commits still in a WAL file are read through it (SQLite then needs its -shm); else the file alone
            flags = "mode=ro" if wal.exists() and wal.stat().st_size > 0 else "mode=ro&immutable=1"
            self.engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(
                f"file:{db}?{flags}", uri=True, check_same_thread=False))
            event.listen(self.engine, "connect", sqlite_read_pragmas)
            event.listen(self.engine, "begin", sqlite_begin)
        elif self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", sqlite_pragmas)
            event.listen(self.engine, "begin", sqlite_begin)
        self._sessions: SessionFactory = session_factory(self.engine)
        try:
            if read_only:
                at, want = migrate.current(self.engine), migrate.head()
                if at != want:
                    raise StoreError(f"the store at {mask_password(url)} is at schema revision {at or '0.1.0'}, "
                                     f"this workbench reads {want}: open it once with write access to upgrade it")
            else:
                migrate.upgrade(self.engine, on_wait=self.on_wait)
        except (OperationalError, InterfaceError) as e:
            self.engine.dispose()
            reason = str(getattr(e, "orig", e)).strip().splitlines()[0] if str(getattr(e, "orig", e)).strip() else e
            raise StoreError(f"cannot open the database at {mask_password(url)}: {reason}; check that the server "
                             f"runs and the URL (host, port, user, database name) is right") from e
        self.vectors = MatrixVectors(self._sessions, Path(vectors_dir), embedding_dtype)
        self.records = SqlRecords(self.engine, self._sessions, self.vectors)
        self.ledger = SqlLedger(self.engine, self._sessions)

    @property
    def vectors_dir(self) -> Path:
        """The folder of the vector matrices and output layers."""
        return self.vectors.vectors_dir

    @property
    def embedding_dtype(self) -> str:
        """The dtype of embedding matrices this store creates (float32 or float16)."""
        return self.vectors.embedding_dtype

    @classmethod
    def open(cls, workspace: Path | str, db_url: str | None = None, embedding_dtype: EmbeddingDtype = "float32",
             on_wait: Optional[locks.WaitCallback] = None, read_only: bool = False) -> "Store":
        """Open the workspace's store: its SQLite file, or ``db_url`` (any SQLAlchemy URL)."""
        workspace = Path(workspace)
        if not read_only:
            workspace.mkdir(parents=True, exist_ok=True)
        url = db_url or f"sqlite:///{(workspace / 'workbench.db').resolve()}"
        return cls(url, workspace / "vectors", embedding_dtype=embedding_dtype, on_wait=on_wait, read_only=read_only)

    def close(self) -> None:
        self.engine.dispose()

    def lock(self, name: str) -> ContextManager[None]:
        """Hold the store-wide lock ``name`` (e.g. ``ingest``, ``selection``, ``annotation``) for a ``with`` block.

        Every process using this store (on PostgreSQL: every host) shares it; a second holder waits and is
        told so through ``on_wait``. The loop's stages take one each, so two commands of the same kind run
        one after the other while different kinds (an ingest and a sample) run side by side.
        """
        return locks.exclusive(self.engine, name, on_wait=self.on_wait)

    def _session(self, write: bool = False) -> Session:
        """A session; ``write`` sessions on SQLite begin with BEGIN IMMEDIATE (see ``store.sql.session_factory``)."""
        return self._sessions(write)

    # ---------------------------------------------------------------- vectors (store.vectors)
    def embeddings(self, embedding_space: str) -> matrices.MatrixView:
        """Committed embeddings of a space."""
        return self.vectors.embeddings(embedding_space)

    def probabilities(self, model: ModelVersion) -> matrices.MatrixView | ComputedProbabilities:
        """The model's probability rows: stored, or recomputed from the embeddings with its output layer."""
        return self.vectors.probabilities(model)

    def set_output_layer(self, model: ModelVersion, weights: np.ndarray, bias: np.ndarray, activation: str) -> None:
        """Keep a model's output layer, once per version."""
        self.vectors.set_output_layer(model, weights, bias, activation)

    def output_layer(self, model: ModelVersion) -> Optional[OutputLayer]:
        """The model's output layer when the store keeps one, else None."""
        return self.vectors.output_layer(model)

    # ---------------------------------------------------------------- records (store.records)
    def find_recordings(self, content_hash: str) -> list[Recording]:
        """Every recording of this content (the same bytes at other sites or times too), oldest first."""
        return self.records.find_recordings(content_hash)

    def add_recording(self, recording: Recording) -> Recording:
        """Insert a new recording (status ``pending``); its clips arrive with ``add_clip_batch``."""
        return self.records.add_recording(recording)

    def add_recordings(self, recordings: Sequence[Recording]) -> list[Recording]:
        """Insert many new recordings in one transaction (a bulk load's thousands of files); return them with ids."""
        return self.records.add_recordings(recordings)

    def insert_recordings(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """``add_recordings`` from plain field dicts (no ``Recording`` objects made); their ids, in order."""
        return self.records.insert_recordings(rows)

    def update_recording(self, recording_id: int, **fields: Any) -> Recording:
        """Set fields of one recording; refuses an unknown recording or field."""
        return self.records.update_recording(recording_id, **fields)

    def update_recordings(self, updates: dict[int, dict[str, Any]]) -> None:
        """Set fields of many recordings in one transaction (a batch of images finished at once)."""
        self.records.update_recordings(updates)

    def replace_recordings(self, path: str | dict[str, int], new_recording_id: Optional[int] = None) -> list[int]:
        """Mark every other recording ingested from ``path`` as replaced by ``new_recording_id``; return their ids."""
        return self.records.replace_recordings(path, new_recording_id)

    def recordings(self, status: str | None = None, ids: Optional[Iterable[int]] = None) -> list[Recording]:
        """Every recording (or those in ``status``, or of ``ids``, or both), oldest first."""
        return self.records.recordings(status, ids)

    def ingested_until(self, recording_id: int) -> float:
        """End (s) of the last committed clip of a recording: where a resumed ingest continues."""
        return self.records.ingested_until(recording_id)

    def add_clip_batch(self, recording_id: int, spans: Sequence[tuple[float, float]],
                       model: ModelVersion, probabilities: np.ndarray,
                       embeddings: np.ndarray | None = None, boxes: Optional[Sequence[Optional[Box]]] = None
                       ) -> np.ndarray:
        """Add clips of a recording with the model's outputs, in one transaction; return clip ids."""
        return self.records.add_clip_batch(recording_id, spans, model, probabilities, embeddings, boxes)

    def add_clips(self, recording_ids: np.ndarray | Sequence[int],
                  spans: np.ndarray | Sequence[tuple[float, float]], model: ModelVersion,
                  probabilities: np.ndarray, embeddings: np.ndarray | None = None,
                  boxes: Optional[Sequence[Optional[Box]]] = None) -> np.ndarray:
        """Bulk path: clips of any number of recordings with the model's outputs, in one transaction."""
        return self.records.add_clips(recording_ids, spans, model, probabilities, embeddings, boxes)

    def recording_clips(self, recording_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(clip ids, (n x 2) start and end s) of a recording's clips, by start."""
        return self.records.recording_clips(recording_id)

    def regions(self, recording_id: int) -> list[tuple[float, Optional[Box]]]:
        """(start_s, box or None) of each clip of a recording, by start: an image's frame and detector crops."""
        return self.records.regions(recording_id)

    def clips(self, clip_ids: Iterable[int]) -> list[ClipInfo]:
        """Clip and recording details for the given ids, in the order given."""
        return self.records.clips(clip_ids)

    def ensure_model_version(self, name: str, kind: str, embedding_space: str, dim: int,
                             labels: Sequence[str], params: dict | None = None,
                             output_type: str = "sigmoid") -> ModelVersion:
        """Get the model version ``name``, creating it; refuse one that differs in space, dim, labels or output type."""
        return self.records.ensure_model_version(name, kind, embedding_space, dim, labels, params, output_type)

    def add_model_version(self, mv: ModelVersion) -> ModelVersion:
        """Insert a new model version; refuses a name already stored."""
        return self.records.add_model_version(mv)

    def update_model_version(self, model_version_id: int, **fields: Any) -> ModelVersion:
        """Set fields of one model version; refuses an unknown id."""
        return self.records.update_model_version(model_version_id, **fields)

    def merge_model_metrics(self, model_version_id: int, **metrics: Any) -> ModelVersion:
        """Set some metrics of one model version, keeping the others as stored now (one locked transaction)."""
        return self.records.merge_model_metrics(model_version_id, **metrics)

    def model_version(self, name_or_id: str | int) -> ModelVersion:
        """The model version with this name or id; refuses an unknown one."""
        return self.records.model_version(name_or_id)

    def model_versions(self) -> list[ModelVersion]:
        """Every model version, oldest first."""
        return self.records.model_versions()

    def current_model_version(self) -> Optional[ModelVersion]:
        """The newest ready model version that has scored clips: what ``sample`` uses by default."""
        return self.records.current_model_version()

    def write_model_outputs(self, model: ModelVersion, clip_ids: np.ndarray, probabilities: np.ndarray) -> None:
        """Store (or replace) a model's probabilities, scores and top predictions for existing clips."""
        self.records.write_model_outputs(model, clip_ids, probabilities)

    def predictions(self, clip_ids: Iterable[int], model_version_id: int) -> dict[int, list[tuple[str, float]]]:
        """Top predictions per clip under one model version, best first (``TOP_K`` of them)."""
        return self.records.predictions(clip_ids, model_version_id)

    def pool(self, model_version: ModelVersion | None = None) -> Pool:
        """Every scored clip under ``model_version`` (default: the current one) with its metadata."""
        return self.records.pool(model_version)

    def unscored_clip_ids(self, model_version: ModelVersion) -> np.ndarray:
        """Clips with an embedding in the model's space that the model has not scored yet (sorted int64 ids)."""
        return self.records.unscored_clip_ids(model_version)

    def add_range_priors(self, model: ModelVersion, range_model: str, priors: Mapping[SiteWeek, np.ndarray],
                         floor: float = DEFAULT_FLOOR) -> int:
        """Store (or replace) a range model's occurrence of each of ``model``'s classes per site-week."""
        return self.records.add_range_priors(model, range_model, priors, floor)

    def range_priors(self, model: ModelVersion, site_weeks: Optional[Iterable[SiteWeek]] = None
                     ) -> dict[SiteWeek, StoredPrior]:
        """The stored range priors over ``model``'s classes (of ``site_weeks``, default all)."""
        return self.records.range_priors(model, site_weeks)

    # ---------------------------------------------------------------- ledger (store.ledger)
    def add_sampling_run(self, run: SamplingRun, picks: Sequence[Selection]) -> SamplingRun:
        """Store a run and its picks together (one transaction)."""
        return self.ledger.add_sampling_run(run, picks)

    def sampling_runs(self) -> list[SamplingRun]:
        """Every sampling run, oldest first."""
        return self.ledger.sampling_runs()

    def last_sampling_run(self) -> Optional[SamplingRun]:
        """The newest sampling run, or None."""
        return self.ledger.last_sampling_run()

    def selections(self, run_id: int) -> list[Selection]:
        """The picks of one sampling run, by rank."""
        return self.ledger.selections(run_id)

    def excluded_clip_ids(self) -> set[int]:
        """Clips never to select again: already selected, pushed as tasks or annotated."""
        return self.ledger.excluded_clip_ids()

    def excluded_clip_ids_array(self) -> np.ndarray:
        """``excluded_clip_ids`` as a sorted, unique int64 array: what numpy needs at pool scale."""
        return self.ledger.excluded_clip_ids_array()

    def add_simulation_run(self, run: SimulationRun) -> SimulationRun:
        """Store a finished simulation (parameters, summary, curves) so the app can show it."""
        return self.ledger.add_simulation_run(run)

    def simulation_runs(self) -> list[SimulationRun]:
        """Every stored simulation, oldest first."""
        return self.ledger.simulation_runs()

    def add_label_set(self, name: str, labels: Sequence[str]) -> LabelSet:
        """Store a label set (or reuse the same one); refuses empty, repeated or changed labels."""
        return self.ledger.add_label_set(name, labels)

    def label_set(self, name: str | None = None) -> Optional[LabelSet]:
        """The label set called ``name``, or the newest one."""
        return self.ledger.label_set(name)

    def tasks(self, project_id: int) -> dict[int, int]:
        """clip id -> Label Studio task id, for one project."""
        return self.ledger.tasks(project_id)

    def task_projects(self) -> dict[int, int]:
        """Label Studio project id -> how many tasks this store pushed there (the projects a pull reads)."""
        return self.ledger.task_projects()

    def add_tasks(self, tasks: Sequence[Task]) -> None:
        """Store pushed tasks in one transaction, skipping clips that already have a task in the batch's projects."""
        self.ledger.add_tasks(tasks)

    def upsert_annotation(self, ann: Annotation) -> str:
        """Insert or update by (project, Label Studio annotation id); returns new|updated|unchanged."""
        return self.ledger.upsert_annotation(ann)

    def mark_annotations_deleted(self, project_id: int, ls_task_id: int, keep: Iterable[int]) -> int:
        """Mark a task's stored annotations that Label Studio no longer has as deleted; return how many."""
        return self.ledger.mark_annotations_deleted(project_id, ls_task_id, keep)

    def annotations(self, state: str | None = "active") -> list[Annotation]:
        """Stored annotations in ``state`` (default: active; None: all), oldest first."""
        return self.ledger.annotations(state)

    def watermark(self, project_id: int) -> Optional[datetime]:
        """The project's pull watermark, or None before its first pull."""
        return self.ledger.watermark(project_id)

    def set_watermark(self, project_id: int, watermark: datetime) -> None:
        """Set the project's pull watermark."""
        self.ledger.set_watermark(project_id, watermark)

    # ---------------------------------------------------------------- overview
    def counts(self) -> dict[str, int]:
        """How many recordings, clips, runs, picks, tasks, annotations and model versions the store holds.

        Kept here rather than in one part: it counts the records' tables and the ledger's in one read
        transaction, so the figures belong to one moment.
        """
        with self._session() as s:
            def count(q) -> int:
                return int(s.execute(q).scalar() or 0)
            return {
                "recordings": count(select(func.count()).select_from(Recording)
                                    .where(Recording.status == RecordingStatus.DONE)),
                "failed_recordings": count(select(func.count()).select_from(Recording)
                                           .where(Recording.status == RecordingStatus.FAILED)),
                "clips": count(select(func.count()).select_from(Clip)),
                "sampling_runs": count(select(func.count()).select_from(SamplingRun)),
                "selected": count(select(func.count(Selection.clip_id.distinct()))),
                "tasks": count(select(func.count()).select_from(Task)),
                "annotations": count(select(func.count()).select_from(Annotation)
                                     .where(Annotation.state == "active")),
                "model_versions": count(select(func.count()).select_from(ModelVersion)),
            }
