"""The ledger: what the loop did and was told: sampling runs and their picks, simulations, label sets,
tasks pushed for annotation, the annotations pulled back, and each project's pull watermark.

Plain SQL rows, one transaction per write. It knows clips only by id (foreign keys into the records):
``excluded_clip_ids`` names every clip the loop must not pick again. Annotations are stored in the
state the caller gives (``active``, ``rejected`` for a label outside the label set, ``deleted``);
only active ones are read by default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Optional, Sequence

import numpy as np
from sqlalchemy import func, select, union_all
from sqlalchemy.engine import Engine

from store.errors import StoreError
from store.schema import Annotation, LabelSet, SamplingRun, Selection, SimulationRun, SyncState, Task, utcnow
from store.sql import SessionFactory, insert_missing


class SqlLedger:
    """The ledger in SQL tables of the store's database."""

    def __init__(self, engine: Engine, session: SessionFactory):
        """``engine`` and ``session`` reach the store's database."""
        self.engine = engine
        self._session = session

    # ---------------------------------------------------------------- sampling
    def add_sampling_run(self, run: SamplingRun, picks: Sequence[Selection]) -> SamplingRun:
        """Store a run and its picks together (one transaction)."""
        with self._session(write=True) as s:
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
        return set(self.excluded_clip_ids_array().tolist())

    def excluded_clip_ids_array(self) -> np.ndarray:
        """``excluded_clip_ids`` as a sorted, unique int64 array: what numpy needs at pool scale.

        ``np.isin(pool.clip_id, store.excluded_clip_ids_array())`` masks a 10M-clip pool in well under
        a second, without building a Python set of every excluded id.
        """
        q = union_all(*(select(col.label("clip_id")) for col in (Selection.clip_id, Task.clip_id, Annotation.clip_id)))
        with self.engine.connect() as conn:
            ids = np.fromiter(conn.execute(q).scalars(), dtype=np.int64)
        return np.unique(ids)

    # ---------------------------------------------------------------- simulations (the strategy lab)
    def add_simulation_run(self, run: SimulationRun) -> SimulationRun:
        """Store a finished simulation (parameters, summary, curves) so the app can show it."""
        with self._session(write=True) as s:
            s.add(run)
            s.commit()
            s.refresh(run)
            return run

    def simulation_runs(self) -> list[SimulationRun]:
        """Every stored simulation, oldest first."""
        with self._session() as s:
            return list(s.execute(select(SimulationRun).order_by(SimulationRun.id)).scalars().all())

    # ---------------------------------------------------------------- label sets
    def add_label_set(self, name: str, labels: Sequence[str]) -> LabelSet:
        labels = list(labels)
        if not labels or any(not isinstance(x, str) or not x.strip() for x in labels):
            raise StoreError(f"label set {name!r} needs non-empty string labels, got {labels!r}")
        if len(set(labels)) != len(labels):
            raise StoreError(f"label set {name!r} lists a label twice")
        with self._session(write=True) as s:
            existing = s.execute(select(LabelSet).where(LabelSet.name == name)).scalars().first()
            if existing is None:
                insert_missing(s, LabelSet(name=name, labels=labels))
                s.commit()
                existing = s.execute(select(LabelSet).where(LabelSet.name == name)).scalars().one()
            if list(existing.labels) != labels:
                raise StoreError(f"label set {name!r} already exists with other labels")
            return existing

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

    def task_projects(self) -> dict[int, int]:
        """Label Studio project id -> how many tasks this store pushed there, by project id."""
        with self._session() as s:
            rows = s.execute(select(Task.project_id, func.count()).group_by(Task.project_id)
                             .order_by(Task.project_id)).all()
            return {int(p): int(n) for p, n in rows}

    def add_tasks(self, tasks: Sequence[Task]) -> None:
        with self._session(write=True) as s:
            known = set(s.execute(select(Task.clip_id).where(
                Task.project_id.in_({t.project_id for t in tasks}))).scalars().all())
            s.add_all([t for t in tasks if t.clip_id not in known])
            s.commit()

    def upsert_annotation(self, ann: Annotation) -> str:
        """Insert or update by (project, Label Studio annotation id); returns new|updated|unchanged."""
        with self._session(write=True) as s:
            cur = s.execute(select(Annotation).where(Annotation.project_id == ann.project_id,
                                                  Annotation.ls_annotation_id == ann.ls_annotation_id)).scalars().first()
            if cur is None:
                s.add(ann)
                s.commit()
                return "new"
            fields = ("labels", "annotator", "created_at", "updated_at", "state", "note", "clip_id", "ls_task_id",
                      "region", "lead_time", "ground_truth")
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
        with self._session(write=True) as s:
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
        with self._session(write=True) as s:
            st = s.get(SyncState, project_id) or SyncState(project_id=project_id)
            st.watermark = watermark
            st.updated_at = utcnow()
            s.add(st)
            s.commit()
