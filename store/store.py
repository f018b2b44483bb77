"""The one interface to persistence. Every other package talks to ``Store``, never to SQL or files.

SQLModel tables hold the records (any SQLAlchemy URL; SQLite in WAL mode by default) and
append-only matrices in ``vectors_dir`` hold embeddings and probabilities, keyed by clip id. Each
write method is one transaction: after a crash, a rerun sees either all of a batch or none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from sqlalchemy import delete, event, func, insert, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from store import matrices
from store.schema import (Annotation, Clip, LabelSet, Matrix, ModelVersion, Prediction, Recording,
                          SamplingRun, Score, Selection, SyncState, Task, utcnow)
from store.uncertainty import score_rows, top_k

TOP_K = 5


class StoreError(Exception):
    """A request the store cannot honour (mismatched model, unknown record)."""


@dataclass
class Pool:
    """The scored pool under one model version, as parallel arrays (one entry per clip)."""

    model_version: ModelVersion
    clip_id: np.ndarray
    recording_id: np.ndarray
    site: np.ndarray
    device: np.ndarray
    start_time: np.ndarray  # datetime64[s] of the clip start; NaT when the recording time is unknown
    max_entropy: np.ndarray
    mean_entropy: np.ndarray
    top1: np.ndarray
    margin: np.ndarray
    top_label: np.ndarray

    def __len__(self) -> int:
        return int(self.clip_id.shape[0])

    @property
    def hour(self) -> np.ndarray:
        """Hour of day (0-23) of each clip start, -1 where unknown."""
        out = np.full(len(self), -1, dtype=np.int64)
        known = ~np.isnat(self.start_time)
        hours = self.start_time[known].astype("datetime64[h]").astype(np.int64) % 24
        out[known] = hours
        return out


@dataclass
class ClipInfo:
    clip_id: int
    recording_id: int
    path: str
    modality: str
    start_s: float
    end_s: float
    site: Optional[str]
    device: Optional[str]
    start_time: Optional[datetime]
    sample_rate: Optional[int]


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Store:
    """Records in a SQL database, vectors in memory-mappable matrices next to it."""

    def __init__(self, url: str, vectors_dir: Path | str):
        self.url = url
        self.vectors_dir = Path(vectors_dir)
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        SQLModel.metadata.create_all(self.engine)

    @classmethod
    def open(cls, workspace: Path | str, db_url: str | None = None) -> "Store":
        """Open the workspace's store: its SQLite file, or ``db_url`` (any SQLAlchemy URL)."""
        workspace = Path(workspace)
        workspace.mkdir(parents=True, exist_ok=True)
        url = db_url or f"sqlite:///{(workspace / 'workbench.db').resolve()}"
        return cls(url, workspace / "vectors")

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ---------------------------------------------------------------- recordings and clips
    def find_recording(self, content_hash: str) -> Optional[Recording]:
        with self._session() as s:
            return s.execute(select(Recording).where(Recording.content_hash == content_hash)).scalars().first()

    def add_recording(self, recording: Recording) -> Recording:
        """Insert a new recording (status ``pending``); its clips arrive with ``add_clip_batch``."""
        with self._session() as s:
            s.add(recording)
            s.commit()
            s.refresh(recording)
            return recording

    def update_recording(self, recording_id: int, **fields: Any) -> Recording:
        with self._session() as s:
            rec = s.get(Recording, recording_id)
            if rec is None:
                raise StoreError(f"no recording with id {recording_id}")
            for key, value in fields.items():
                if not hasattr(rec, key):
                    raise StoreError(f"recording has no field {key!r}")
                setattr(rec, key, value)
            s.add(rec)
            s.commit()
            s.refresh(rec)
            return rec

    def recordings(self, status: str | None = None) -> list[Recording]:
        with self._session() as s:
            q = select(Recording).order_by(Recording.id)
            if status is not None:
                q = q.where(Recording.status == status)
            return list(s.execute(q).scalars().all())

    def ingested_until(self, recording_id: int) -> float:
        """End (s) of the last committed clip of a recording: where a resumed ingest continues."""
        with self._session() as s:
            end = s.execute(select(func.max(Clip.end_s)).where(Clip.recording_id == recording_id)).scalar()
            return float(end or 0.0)

    def add_clip_batch(self, recording_id: int, spans: Sequence[tuple[float, float]],
                       model: ModelVersion, probabilities: np.ndarray,
                       embeddings: np.ndarray | None = None) -> np.ndarray:
        """Add clips of a recording with the model's outputs, in one transaction; return clip ids.

        Spans already stored for this recording are skipped (idempotent on rerun).
        """
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if probabilities.shape != (len(spans), len(model.labels)):
            raise StoreError(f"model {model.name!r} has {len(model.labels)} classes; got probabilities of "
                             f"shape {probabilities.shape} for {len(spans)} clips")
        if embeddings is not None and embeddings.shape != (len(spans), model.dim):
            raise StoreError(f"model {model.name!r} makes {model.dim}-d embeddings; got shape {embeddings.shape}")
        with self._session() as s:
            existing = set(s.execute(select(Clip.start_s).where(Clip.recording_id == recording_id)).scalars().all())
            keep = [i for i, (start, _) in enumerate(spans) if float(start) not in existing]
            if not keep:
                return np.zeros(0, dtype=np.int64)
            clips = [Clip(recording_id=recording_id, start_s=float(spans[i][0]), end_s=float(spans[i][1]))
                     for i in keep]
            s.add_all(clips)
            s.flush()
            ids = np.array([c.id for c in clips], dtype=np.int64)
            self._write_outputs(s, model, ids, probabilities[keep],
                                None if embeddings is None else np.asarray(embeddings)[keep])
            s.commit()
            return ids

    def clips(self, clip_ids: Iterable[int]) -> list[ClipInfo]:
        """Clip and recording details for the given ids, in the order given."""
        ids = [int(i) for i in clip_ids]
        with self._session() as s:
            rows = s.execute(select(Clip, Recording).join(Recording, Clip.recording_id == Recording.id)
                          .where(Clip.id.in_(ids))).all()
        by_id = {c.id: ClipInfo(c.id, r.id, r.path, r.modality, c.start_s, c.end_s, r.site, r.device,
                                r.start_time, r.sample_rate) for c, r in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise StoreError(f"no clip with id {missing[0]}")
        return [by_id[i] for i in ids]

    # ---------------------------------------------------------------- model versions
    def ensure_model_version(self, name: str, kind: str, embedding_space: str, dim: int,
                             labels: Sequence[str], params: dict | None = None) -> ModelVersion:
        """Get the model version ``name``, creating it; refuse one that differs in space, dim or labels."""
        with self._session() as s:
            mv = s.execute(select(ModelVersion).where(ModelVersion.name == name)).scalars().first()
            if mv is None:
                mv = ModelVersion(name=name, kind=kind, embedding_space=embedding_space, dim=dim,
                                  labels=list(labels), params=params or {})
                s.add(mv)
                s.commit()
                s.refresh(mv)
                return mv
        if (mv.kind, mv.embedding_space, mv.dim) != (kind, embedding_space, dim) or list(mv.labels) != list(labels):
            raise StoreError(
                f"this store already holds model {name!r} as a {mv.kind} in space {mv.embedding_space!r} with "
                f"dim {mv.dim} and {len(mv.labels)} labels; refusing to mix it with a {kind} in space "
                f"{embedding_space!r} with dim {dim} and {len(labels)} labels")
        return mv

    def add_model_version(self, mv: ModelVersion) -> ModelVersion:
        with self._session() as s:
            if s.execute(select(ModelVersion).where(ModelVersion.name == mv.name)).scalars().first():
                raise StoreError(f"a model version named {mv.name!r} already exists")
            s.add(mv)
            s.commit()
            s.refresh(mv)
            return mv

    def update_model_version(self, model_version_id: int, **fields: Any) -> ModelVersion:
        with self._session() as s:
            mv = s.get(ModelVersion, model_version_id)
            if mv is None:
                raise StoreError(f"no model version with id {model_version_id}")
            for key, value in fields.items():
                setattr(mv, key, value)
            s.add(mv)
            s.commit()
            s.refresh(mv)
            return mv

    def model_version(self, name_or_id: str | int) -> ModelVersion:
        with self._session() as s:
            if isinstance(name_or_id, int):
                mv = s.get(ModelVersion, name_or_id)
            else:
                mv = s.execute(select(ModelVersion).where(ModelVersion.name == name_or_id)).scalars().first()
        if mv is None:
            raise StoreError(f"no model version {name_or_id!r} in this store")
        return mv

    def model_versions(self) -> list[ModelVersion]:
        with self._session() as s:
            return list(s.execute(select(ModelVersion).order_by(ModelVersion.id)).scalars().all())

    def current_model_version(self) -> Optional[ModelVersion]:
        """The newest ready model version that has scored clips: what ``sample`` uses by default.

        A head that is still re-scoring the pool (``ready`` False) is skipped, so a crash half-way
        through re-scoring never leaves sampling on a partly scored pool.
        """
        with self._session() as s:
            scored = select(Score.model_version_id).distinct()
            return s.execute(select(ModelVersion).where(ModelVersion.id.in_(scored), ModelVersion.ready)
                          .order_by(ModelVersion.id.desc())).scalars().first()

    # ---------------------------------------------------------------- model outputs and vectors
    def write_model_outputs(self, model: ModelVersion, clip_ids: np.ndarray, probabilities: np.ndarray) -> None:
        """Store (or replace) a model's probabilities, scores and top predictions for existing clips."""
        clip_ids = np.asarray(clip_ids, dtype=np.int64)
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if probabilities.shape != (len(clip_ids), len(model.labels)):
            raise StoreError(f"model {model.name!r} has {len(model.labels)} classes; got probabilities "
                             f"of shape {probabilities.shape} for {len(clip_ids)} clips")
        with self._session() as s:
            for table in (Score, Prediction):
                s.execute(delete(table).where(table.model_version_id == model.id, table.clip_id.in_(clip_ids.tolist())))
            self._write_outputs(s, model, clip_ids, probabilities, None)
            s.commit()

    def _write_outputs(self, s: Session, model: ModelVersion, ids: np.ndarray, probs: np.ndarray,
                       embeddings: np.ndarray | None) -> None:
        scores = score_rows(probs)
        labels = model.labels
        s.execute(insert(Score), [
            {"clip_id": int(cid), "model_version_id": model.id, "max_entropy": float(scores["max_entropy"][i]),
             "mean_entropy": float(scores["mean_entropy"][i]), "top1": float(scores["top1"][i]),
             "margin": float(scores["margin"][i]), "top_label": labels[int(scores["top_index"][i])]}
            for i, cid in enumerate(ids)])
        idx, vals = top_k(probs, TOP_K)
        s.execute(insert(Prediction), [
            {"clip_id": int(cid), "model_version_id": model.id, "rank": r + 1,
             "label": labels[int(idx[i, r])], "probability": float(vals[i, r])}
            for i, cid in enumerate(ids) for r in range(idx.shape[1])])
        self._append_matrix(s, f"probabilities:{model.name}", "float16", model, ids, probs)
        if embeddings is not None:
            self._append_matrix(s, f"embeddings:{model.embedding_space}", "float32", model, ids, embeddings)

    def _append_matrix(self, s: Session, name: str, dtype: str, model: ModelVersion,
                       ids: np.ndarray, rows: np.ndarray) -> None:
        dim = int(rows.shape[1])
        m = s.get(Matrix, name)
        if m is None:
            m = Matrix(name=name, dim=dim, dtype=dtype, rows=0, model_version_id=model.id)
        elif m.dim != dim:
            raise StoreError(f"matrix {name!r} holds {m.dim}-d rows; refusing {dim}-d rows "
                             f"(a different model under the same name?)")
        m.rows = matrices.write_rows(self.vectors_dir, name, m.dtype, m.dim, m.rows, ids, rows)
        s.add(m)

    def matrix(self, name: str) -> matrices.MatrixView:
        """Committed rows of a matrix (memory-mapped), e.g. ``embeddings:birdnet-v2.4``."""
        with self._session() as s:
            m = s.get(Matrix, name)
        if m is None:
            raise StoreError(f"no matrix {name!r} in this store")
        return matrices.read_view(self.vectors_dir, name, m.dtype, m.dim, m.rows)

    def embeddings(self, embedding_space: str) -> matrices.MatrixView:
        return self.matrix(f"embeddings:{embedding_space}")

    def probabilities(self, model: ModelVersion) -> matrices.MatrixView:
        return self.matrix(f"probabilities:{model.name}")

    def predictions(self, clip_ids: Iterable[int], model_version_id: int) -> dict[int, list[tuple[str, float]]]:
        """Top predictions per clip under one model version, best first."""
        ids = [int(i) for i in clip_ids]
        out: dict[int, list[tuple[str, float]]] = {i: [] for i in ids}
        with self._session() as s:
            rows = s.execute(select(Prediction).where(Prediction.model_version_id == model_version_id,
                                                   Prediction.clip_id.in_(ids))
                          .order_by(Prediction.clip_id, Prediction.rank)).scalars().all()
        for p in rows:
            out[p.clip_id].append((p.label, p.probability))
        return out

    def pool(self, model_version: ModelVersion | None = None) -> Pool:
        """Every scored clip under ``model_version`` (default: the current one) with its metadata."""
        mv = model_version or self.current_model_version()
        if mv is None:
            raise StoreError("the store holds no scored clips yet: ingest some audio first")
        # recordings are few: their metadata is joined in numpy, not per clip row in SQL
        with self.engine.connect() as conn:
            recs = conn.execute(select(Recording.id, Recording.site, Recording.device, Recording.start_time)).all()
            rows = conn.execute(
                select(Score.clip_id, Clip.recording_id, Clip.start_s, Score.max_entropy, Score.mean_entropy,
                       Score.top1, Score.margin, Score.top_label)
                .join(Clip, Clip.id == Score.clip_id)
                .where(Score.model_version_id == mv.id).order_by(Score.clip_id)).all()
        n = len(rows)
        cols = list(zip(*rows)) if n else [()] * 8
        rec_ids = np.array([r[0] for r in recs], dtype=np.int64)
        order = np.argsort(rec_ids)
        recording_id = np.array(cols[1], dtype=np.int64)
        idx = order[np.searchsorted(rec_ids[order], recording_id)] if n else np.zeros(0, np.int64)
        site = np.array([r[1] or "" for r in recs], dtype=object)
        device = np.array([r[2] or "" for r in recs], dtype=object)
        rec_start = np.array([np.datetime64(r[3], "ms") if r[3] is not None else np.datetime64("NaT", "ms")
                              for r in recs], dtype="datetime64[ms]")
        offsets = (np.array(cols[2], dtype=np.float64) * 1000).round().astype("timedelta64[ms]")
        starts = (rec_start[idx] + offsets).astype("datetime64[s]")
        return Pool(model_version=mv, clip_id=np.array(cols[0], dtype=np.int64), recording_id=recording_id,
                    site=site[idx], device=device[idx], start_time=starts,
                    max_entropy=np.array(cols[3], dtype=np.float64), mean_entropy=np.array(cols[4], dtype=np.float64),
                    top1=np.array(cols[5], dtype=np.float64), margin=np.array(cols[6], dtype=np.float64),
                    top_label=np.array(cols[7], dtype=object))

    # ---------------------------------------------------------------- sampling
    def add_sampling_run(self, run: SamplingRun, picks: Sequence[Selection]) -> SamplingRun:
        """Store a run and its picks together (one transaction)."""
        with self._session() as s:
            s.add(run)
            s.flush()
            for p in picks:
                p.run_id = run.id
                s.add(p)
            s.commit()
            s.refresh(run)
            return run

    def sampling_runs(self) -> list[SamplingRun]:
        with self._session() as s:
            return list(s.execute(select(SamplingRun).order_by(SamplingRun.id)).scalars().all())

    def last_sampling_run(self) -> Optional[SamplingRun]:
        with self._session() as s:
            return s.execute(select(SamplingRun).order_by(SamplingRun.id.desc())).scalars().first()

    def selections(self, run_id: int) -> list[Selection]:
        with self._session() as s:
            return list(s.execute(select(Selection).where(Selection.run_id == run_id)
                               .order_by(Selection.rank)).scalars().all())

    def excluded_clip_ids(self) -> set[int]:
        """Clips never to select again: already selected, pushed as tasks or annotated."""
        with self._session() as s:
            out: set[int] = set()
            for col in (Selection.clip_id, Task.clip_id, Annotation.clip_id):
                out.update(s.execute(select(col).distinct()).scalars().all())
            return out

    # ---------------------------------------------------------------- label sets
    def add_label_set(self, name: str, labels: Sequence[str]) -> LabelSet:
        labels = list(labels)
        if not labels or any(not isinstance(x, str) or not x.strip() for x in labels):
            raise StoreError(f"label set {name!r} needs non-empty string labels, got {labels!r}")
        if len(set(labels)) != len(labels):
            raise StoreError(f"label set {name!r} lists a label twice")
        with self._session() as s:
            existing = s.execute(select(LabelSet).where(LabelSet.name == name)).scalars().first()
            if existing is not None:
                if list(existing.labels) != labels:
                    raise StoreError(f"label set {name!r} already exists with other labels")
                return existing
            ls = LabelSet(name=name, labels=labels)
            s.add(ls)
            s.commit()
            s.refresh(ls)
            return ls

    def label_set(self, name: str | None = None) -> Optional[LabelSet]:
        """The label set called ``name``, or the newest one."""
        with self._session() as s:
            q = select(LabelSet)
            q = q.where(LabelSet.name == name) if name else q.order_by(LabelSet.id.desc())
            return s.execute(q).scalars().first()

    # ---------------------------------------------------------------- tasks and annotations
    def tasks(self, project_id: int) -> dict[int, int]:
        """clip id -> Label Studio task id, for one project."""
        with self._session() as s:
            rows = s.execute(select(Task.clip_id, Task.ls_task_id).where(Task.project_id == project_id)).all()
            return {int(c): int(t) for c, t in rows}

    def add_tasks(self, tasks: Sequence[Task]) -> None:
        with self._session() as s:
            known = set(s.execute(select(Task.clip_id).where(
                Task.project_id.in_({t.project_id for t in tasks}))).scalars().all())
            s.add_all([t for t in tasks if t.clip_id not in known])
            s.commit()

    def upsert_annotation(self, ann: Annotation) -> str:
        """Insert or update by (project, Label Studio annotation id); returns new|updated|unchanged."""
        with self._session() as s:
            cur = s.execute(select(Annotation).where(Annotation.project_id == ann.project_id,
                                                  Annotation.ls_annotation_id == ann.ls_annotation_id)).scalars().first()
            if cur is None:
                s.add(ann)
                s.commit()
                return "new"
            fields = ("labels", "annotator", "created_at", "updated_at", "state", "note", "clip_id", "ls_task_id")
            if all(getattr(cur, f) == getattr(ann, f) for f in fields):
                return "unchanged"
            for f in fields:
                setattr(cur, f, getattr(ann, f))
            s.add(cur)
            s.commit()
            return "updated"

    def mark_annotations_deleted(self, project_id: int, ls_task_id: int, keep: Iterable[int]) -> int:
        """Mark a task's stored annotations that Label Studio no longer has as deleted; return how many."""
        keep = set(int(k) for k in keep)
        with self._session() as s:
            rows = s.execute(select(Annotation).where(Annotation.project_id == project_id,
                                                   Annotation.ls_task_id == ls_task_id,
                                                   Annotation.state != "deleted")).scalars().all()
            gone = [a for a in rows if a.ls_annotation_id not in keep]
            for a in gone:
                a.state = "deleted"
                a.updated_at = utcnow()
                s.add(a)
            s.commit()
            return len(gone)

    def annotations(self, state: str | None = "active") -> list[Annotation]:
        with self._session() as s:
            q = select(Annotation).order_by(Annotation.id)
            if state is not None:
                q = q.where(Annotation.state == state)
            return list(s.execute(q).scalars().all())

    def watermark(self, project_id: int) -> Optional[datetime]:
        with self._session() as s:
            st = s.get(SyncState, project_id)
            return st.watermark if st else None

    def set_watermark(self, project_id: int, watermark: datetime) -> None:
        with self._session() as s:
            st = s.get(SyncState, project_id) or SyncState(project_id=project_id)
            st.watermark = watermark
            st.updated_at = utcnow()
            s.add(st)
            s.commit()

    # ---------------------------------------------------------------- overview
    def counts(self) -> dict[str, int]:
        with self._session() as s:
            def count(q) -> int:
                return int(s.execute(q).scalar() or 0)
            return {
                "recordings": count(select(func.count()).select_from(Recording).where(Recording.status == "done")),
                "failed_recordings": count(select(func.count()).select_from(Recording)
                                           .where(Recording.status == "failed")),
                "clips": count(select(func.count()).select_from(Clip)),
                "sampling_runs": count(select(func.count()).select_from(SamplingRun)),
                "selected": count(select(func.count(Selection.clip_id.distinct()))),
                "tasks": count(select(func.count()).select_from(Task)),
                "annotations": count(select(func.count()).select_from(Annotation)
                                     .where(Annotation.state == "active")),
                "model_versions": count(select(func.count()).select_from(ModelVersion)),
            }
