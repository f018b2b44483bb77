"""The records: recordings, their clips, the model versions that scored them, and what a model said per clip.

SQL rows (``Recording``, ``Clip``, ``ClipBox``, ``ModelVersion``, and ``Score``/``Prediction`` rows of
stores written by 0.1.0) plus columnar mirrors kept as matrices beside them: every clip's recording
and start in ``clips``, a model's per-clip scores in ``scores:<model>`` and its top predictions in
``topk:<model>``. Those, and the embeddings and probabilities that come with a batch of clips, are
appended through the vectors part inside the transaction that inserts the clips (``add_clips``), so
a crash leaves either the whole batch or none of it. ``pool()`` reads the mirrors (memory-mapped
columns), or SQL rows for a store written before they existed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
from sqlalchemy import bindparam, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session

from store.errors import StoreError, UnknownMatrix
from store.labels import map_labels
from store.ranges import (DEFAULT_FLOOR, SiteWeek, StoredPrior, check_site_week, pack, prior_source, site_week_at,
                          top_occurrence, unpack)
from store.schema import (Clip, ClipBox, Matrix, Modality, ModelVersion, Prediction, RangePrior, Recording,
                          RecordingStatus, Score)
from store.sql import SessionFactory, in_chunks, insert_missing, insert_rows
from store.uncertainty import score_rows, top_k
from store.vectors import MatrixVectors

TOP_K = 5
# Columns of the per-model ``scores:<model>`` matrix (float32 since 0.2, one row per clip and scoring; the top
# index is exact in float32 up to 2**24 classes).
SCORE_COLUMNS = ("max_entropy", "mean_entropy", "top1", "margin", "top_index")
# Columns of the ``clips`` matrix (float64: exact for ids below 2**53): where each clip sits.
CLIP_COLUMNS = ("recording_id", "start_s")
CLIPS_MATRIX = "clips"
#: The audio model's window (BirdNET V2.4: 3 s); a recording's last window is zero-padded to it.
WINDOW_S = 3.0
#: Recording states whose clips are no sampling candidates: the file changed (replaced) or could not be read.
OUT_OF_POOL = (RecordingStatus.REPLACED, RecordingStatus.FAILED)


_RECORDING_TABLE = Recording.__table__
#: The columns a caller gives (``id`` is the database's).
_RECORDING_FIELDS = tuple(c.name for c in _RECORDING_TABLE.columns if c.name != "id")
_HASH_STORED = select(_RECORDING_TABLE.c.id).where(_RECORDING_TABLE.c.content_hash == bindparam("h")).limit(1)


def _recording_row(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Every column of a new recording: the given fields, ``Recording``'s defaults for the others."""
    row: dict[str, Any] = {}
    for key in fields:
        if key not in _RECORDING_FIELDS:
            raise StoreError(f"recording has no field {key!r}")
    for name in _RECORDING_FIELDS:
        if name in fields:
            row[name] = fields[name]
            continue
        info = Recording.model_fields[name]
        if info.default_factory is not None:
            row[name] = info.default_factory()
        elif info.is_required():
            raise StoreError(f"a new recording needs its {name}")
        else:
            row[name] = info.default
    return row


def _insert_recordings(conn, rows: list[dict[str, Any]]) -> list[int]:
    """Insert full recording rows (``_recording_row``) on ``conn``; their new ids in input order.

    One executemany with RETURNING where the dialect keeps the parameters' order (SQLite >= 3.35, PostgreSQL),
    else one INSERT per row.
    """
    if not rows:
        return []
    stmt = insert(_RECORDING_TABLE)
    if conn.dialect.insert_executemany_returning_sort_by_parameter_order:
        result = conn.execute(stmt.returning(_RECORDING_TABLE.c.id, sort_by_parameter_order=True), rows)
        return [int(i) for i in result.scalars().all()]
    return [int(conn.execute(stmt, row).inserted_primary_key[0]) for row in rows]


@lru_cache(maxsize=64)
def _update_by_id(keys: tuple[str, ...]):
    """UPDATE recording SET <keys> WHERE id = :_id, for an executemany of ``_update_params`` dicts."""
    return (update(_RECORDING_TABLE).where(_RECORDING_TABLE.c.id == bindparam("_id"))
            .values({k: bindparam(f"v_{k}") for k in keys}))


def _update_params(recording_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
    return {"_id": int(recording_id), **{f"v_{k}": v for k, v in fields.items()}}


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
    #: occurrence of each clip's top-1 label at its recording's site-week (``store.ranges``; NaN where unknown),
    #: or None when the store holds no range priors for the model's classes
    range_occurrence: Optional[np.ndarray] = None
    #: share of each audio window that holds audio (a recording's last window is zero-padded to the model's
    #: 3 s: 1 s of audio is 0.333); 1.0 for images and where the recording's length is unknown. Derived from
    #: the recording's decoded length, so it costs no byte per clip in the store. None: not known at all.
    content: Optional[np.ndarray] = None
    #: whether the experts' labels hold several species per clip (``sampler.uncertainty.is_multi_label``),
    #: which decides how sigmoid outputs are read by default; None: not known (no labels yet)
    multi_label: Optional[bool] = None
    #: each clip's recording's country (ISO 3166-1 alpha-3) and admin1 region, '' where unknown (geofence rules
    #: read them: ``store.geofence``); None in a pool built without them
    country: Optional[np.ndarray] = None
    admin1_region: Optional[np.ndarray] = None
    # (codes, categories) per string column, filled by the store; see ``codes``
    _codes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, init=False, repr=False,
                                                             compare=False)

    def __len__(self) -> int:
        return int(self.clip_id.shape[0])

    def codes(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """Integer codes and categories of a string column: ``column == categories[codes]``.

        For ``site``, ``device``, ``top_label``, ``country`` and ``admin1_region``. Grouping millions of clips by
        integer codes (np.bincount, np.unique on ints) is far cheaper than by Python strings. A pool from the
        store comes with them (no per-clip string work); for a pool built by hand they are
        computed here once. Categories may include values no clip holds (e.g. every label of
        the model); they describe the arrays as built, not later in-place edits.
        """
        if column not in ("site", "device", "top_label", "country", "admin1_region"):
            raise ValueError(f"codes are kept for the string columns site, device, top_label, country and "
                             f"admin1_region, not {column!r}")
        if getattr(self, column) is None:
            raise ValueError(f"this pool has no {column} column (built without it)")
        if column not in self._codes:
            categories, codes = np.unique(np.asarray(getattr(self, column)).astype(str), return_inverse=True)
            self._codes[column] = (codes.astype(np.int32).ravel(), categories.astype(object))
        return self._codes[column]

    @property
    def hour(self) -> np.ndarray:
        """Hour of day (0-23) of each clip start, -1 where unknown."""
        out = np.full(len(self), -1, dtype=np.int64)
        known = ~np.isnat(self.start_time)
        hours = self.start_time[known].astype("datetime64[h]").astype(np.int64) % 24
        out[known] = hours
        return out


#: A region of an image: (x, y, w, h) normalised to the frame, the detector's category and confidence.
Box = tuple[float, float, float, float, str, Optional[float]]


@dataclass
class ClipInfo:
    """A clip with what its recording says about it: where to cut it from and how to check that file."""

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
    content_hash: Optional[str] = None
    file_size: Optional[int] = None
    file_mtime_ns: Optional[int] = None
    frames: Optional[int] = None  # decoded frames of the recording (None: ingested before 0.2)
    status: str = RecordingStatus.DONE
    box: Optional[Box] = None  # image regions: (x, y, w, h, category, confidence), normalised to the frame
    country: Optional[str] = None  # ISO 3166-1 alpha-3 of the recording (geofence rules apply there)
    admin1_region: Optional[str] = None


class SqlRecords:
    """Records in SQL tables, with the per-clip columns the pool reads kept as matrices by ``vectors``."""

    def __init__(self, engine: Engine, session: SessionFactory, vectors: MatrixVectors):
        """``engine`` and ``session`` reach the store's database; ``vectors`` keeps the matrices written with clips."""
        self.engine = engine
        self._session = session
        self.vectors = vectors
        self._probe_sql: Optional[str] = None  # find_recordings' probe in the driver's parameter style

    # ---------------------------------------------------------------- recordings and clips
    def find_recordings(self, content_hash: str) -> list[Recording]:
        """Every recording of this content (the same bytes at other sites or times too), oldest first.

        Asked once per file by every ingest, mostly of content never stored: that answer comes from one
        indexed probe on a pooled driver connection (no session, no ORM objects, one statement: its own
        snapshot); only found content is loaded as ``Recording`` objects.
        """
        if not self._hash_stored(content_hash):
            return []
        with self._session() as s:
            return list(s.execute(select(Recording).where(Recording.content_hash == content_hash)
                                  .order_by(Recording.id)).scalars().all())

    def _hash_stored(self, content_hash: str) -> bool:
        """Whether any recording holds this content: the driver's own cursor where its parameter style is known
        (about a seventh of a Core execute's Python work, which holds the GIL the ingest's readers need)."""
        if self._probe_sql is None:
            marks = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(self.engine.dialect.paramstyle)
            prep = self.engine.dialect.identifier_preparer
            self._probe_sql = "" if marks is None else (
                f"SELECT 1 FROM {prep.quote(_RECORDING_TABLE.name)} WHERE {prep.quote('content_hash')} = {marks} "
                f"LIMIT 1")
        if not self._probe_sql:  # another driver: through SQLAlchemy Core
            with self.engine.connect() as conn:
                return conn.execute(_HASH_STORED, {"h": content_hash}).first() is not None
        dbapi = self.engine.raw_connection()
        try:
            cur = dbapi.cursor()
            try:
                cur.execute(self._probe_sql, (content_hash,))
                return cur.fetchone() is not None
            finally:
                cur.close()
        finally:
            dbapi.close()  # back to the pool, which ends the driver's transaction (PostgreSQL)

    def add_recording(self, recording: Recording) -> Recording:
        """Insert a new recording (status ``pending``); its clips arrive with ``add_clip_batch``."""
        with self._session(write=True) as s:
            s.add(recording)
            s.commit()
            s.refresh(recording)
            return recording

    def add_recordings(self, recordings: Sequence[Recording]) -> list[Recording]:
        """Insert many new recordings in one transaction (a bulk load's thousands of files); return them with ids.

        Refuses, naming it, a content hash already stored at the same path or given twice for one path,
        before writing anything (the same bytes at another path are another recording).
        """
        recordings = list(recordings)
        keys = [(r.content_hash, r.path) for r in recordings]
        if len(set(keys)) != len(keys):
            seen: set[tuple[str, str]] = set()
            dup = next(k for k in keys if k in seen or seen.add(k))
            raise StoreError(f"recording content_hash {dup[0]!r} appears twice in one batch for {dup[1]}")
        with self._session(write=True) as s:
            for chunk in in_chunks(sorted({h for h, _ in keys})):
                stored = s.execute(select(Recording.content_hash, Recording.path)
                                   .where(Recording.content_hash.in_(chunk))).all()
                known = next((k for k in map(tuple, stored) if k in set(keys)), None)
                if known is not None:
                    raise StoreError(f"a recording with content_hash {known[0]!r} is already stored for {known[1]}; "
                                     "find it with find_recordings instead of adding it again")
            ids = _insert_recordings(s.connection(), [{c: getattr(r, c) for c in _RECORDING_FIELDS}
                                                      for r in recordings])
            s.commit()
        for rec, rec_id in zip(recordings, ids):
            rec.id = rec_id
            make_transient_to_detached(rec)  # as if committed through a session: a stored row, not a new one
        return recordings

    def insert_recordings(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """``add_recordings`` from plain field dicts (no ``Recording`` objects made): their ids, in order.

        A field left out gets ``Recording``'s default; ``path`` and ``content_hash`` are required. The same
        checks as ``add_recordings``, before writing anything; one Core executemany in one transaction.
        """
        full = [_recording_row(row) for row in rows]
        keys = [(r["content_hash"], r["path"]) for r in full]
        if len(set(keys)) != len(keys):
            seen: set[tuple[str, str]] = set()
            dup = next(k for k in keys if k in seen or seen.add(k))
            raise StoreError(f"recording content_hash {dup[0]!r} appears twice in one batch for {dup[1]}")
        with self._session(write=True) as s:
            conn = s.connection()
            wanted = set(keys)
            for chunk in in_chunks(sorted({h for h, _ in keys})):
                stored = conn.execute(select(Recording.content_hash, Recording.path)
                                      .where(Recording.content_hash.in_(chunk))).all()
                known = next((k for k in map(tuple, stored) if k in wanted), None)
                if known is not None:
                    raise StoreError(f"a recording with content_hash {known[0]!r} is already stored for {known[1]}; "
                                     "find it with find_recordings instead of adding it again")
            ids = _insert_recordings(conn, full)
            s.commit()
            return ids

    def update_recording(self, recording_id: int, **fields: Any) -> Recording:
        with self._session(write=True) as s:
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

    def update_recordings(self, updates: dict[int, dict[str, Any]]) -> None:
        """Set fields of many recordings in one transaction (a batch of images finished at once)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for rec_id, fields in updates.items():
            for key in fields:
                if key not in _RECORDING_FIELDS:
                    raise StoreError(f"recording has no field {key!r}")
            groups.setdefault(tuple(sorted(fields)), []).append(_update_params(rec_id, fields))
        with self._session(write=True) as s:
            conn = s.connection()
            for keys, params in groups.items():  # one executemany per set of fields (usually one)
                if keys:
                    conn.execute(_update_by_id(keys), params)
            s.commit()

    def replace_recordings(self, path: str | dict[str, int], new_recording_id: Optional[int] = None) -> list[int]:
        """Mark every other recording ingested from ``path`` as replaced by ``new_recording_id``; return their ids.

        The file at ``path`` changed and its new content was ingested: the old versions' clips leave the
        pool (``pool`` skips replaced recordings); their labels and embeddings stay, still true of the
        content they were made from. ``path`` may also be a {path: new recording id} dict (a batch, one
        transaction).
        """
        latest = dict(path) if isinstance(path, dict) else {path: new_recording_id}
        with self._session(write=True) as s:
            conn = s.connection()
            old: list[tuple[int, str]] = []
            for chunk in in_chunks(list(latest)):
                old += [(int(i), p) for i, p in conn.execute(
                    select(Recording.id, Recording.path).where(Recording.path.in_(chunk),
                                                               Recording.status != RecordingStatus.REPLACED)
                    .order_by(Recording.id))]
            old = [(i, p) for i, p in old if i != latest[p]]
            if old:
                conn.execute(_update_by_id(("error", "replaced_by", "status")), [_update_params(i, {
                    "status": RecordingStatus.REPLACED, "replaced_by": latest[p],
                    "error": f"the file changed; its new content is recording {latest[p]}"}) for i, p in old])
            s.commit()
            return [i for i, _ in old]

    def recordings(self, status: str | None = None, ids: Optional[Iterable[int]] = None) -> list[Recording]:
        """Every recording (or those in ``status``, or of ``ids``, or both), oldest first."""
        q = select(Recording).order_by(Recording.id)
        if status is not None:
            q = q.where(Recording.status == status)
        with self._session() as s:
            if ids is None:
                return list(s.execute(q).scalars().all())
            out: list[Recording] = []
            for chunk in in_chunks(sorted({int(i) for i in ids})):
                out += s.execute(q.where(Recording.id.in_(chunk))).scalars().all()
            return out

    def ingested_until(self, recording_id: int) -> float:
        """End (s) of the last committed clip of a recording: where a resumed ingest continues."""
        with self._session() as s:
            end = s.execute(select(func.max(Clip.end_s)).where(Clip.recording_id == recording_id)).scalar()
            return float(end or 0.0)

    def add_clip_batch(self, recording_id: int, spans: Sequence[tuple[float, float]],
                       model: ModelVersion, probabilities: np.ndarray,
                       embeddings: np.ndarray | None = None, boxes: Optional[Sequence[Optional[Box]]] = None
                       ) -> np.ndarray:
        """Add clips of a recording with the model's outputs, in one transaction; return clip ids.

        Spans already stored for this recording are skipped (idempotent on rerun).
        """
        return self.add_clips(np.full(len(spans), recording_id, dtype=np.int64), spans, model,
                              probabilities, embeddings, boxes)

    def add_clips(self, recording_ids: np.ndarray | Sequence[int],
                  spans: np.ndarray | Sequence[tuple[float, float]], model: ModelVersion,
                  probabilities: np.ndarray, embeddings: np.ndarray | None = None,
                  boxes: Optional[Sequence[Optional[Box]]] = None) -> np.ndarray:
        """Bulk path: clips of any number of recordings with the model's outputs, in one transaction.

        ``recording_ids[i]`` owns clip ``spans[i]`` = (start_s, end_s). Returns the new clips' ids in
        input order; clips already stored (same recording and start) are skipped, so a rerun adds
        nothing. Rows go in through the driver's fastest path, so batches of 100k clips are the
        intended use (a million clips with five predictions each load in well under a minute on
        SQLite); recordings must exist (``add_recording``). ``boxes[i]`` (x, y, w, h, category,
        confidence), for regions of images, is stored with clip i in the same transaction (None: no box).
        """
        rec = np.asarray(recording_ids, dtype=np.int64).ravel()
        span = np.asarray(spans, dtype=np.float64).reshape(-1, 2) if len(spans) else np.zeros((0, 2))
        n = span.shape[0]
        if rec.shape[0] != n:
            raise StoreError(f"recording_ids holds {rec.shape[0]} ids for {n} spans; give one recording per clip")
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if probabilities.shape != (n, len(model.labels)):
            raise StoreError(f"model {model.name!r} has {len(model.labels)} classes; got probabilities of "
                             f"shape {probabilities.shape} for {n} clips")
        if embeddings is not None and np.shape(embeddings) != (n, model.dim):
            raise StoreError(f"model {model.name!r} makes {model.dim}-d embeddings; got shape {np.shape(embeddings)}")
        if boxes is not None:
            boxes = list(boxes)
            if len(boxes) != n:
                raise StoreError(f"boxes holds {len(boxes)} entries for {n} clips; give one (or None) per clip")
            for i, b in enumerate(boxes):
                if b is not None and (len(b) != 6 or not all(0.0 <= float(v) <= 1.0 for v in b[:4])
                                      or not (float(b[2]) > 0 and float(b[3]) > 0)):
                    raise StoreError(f"box {i} must be (x, y, w, h, category, confidence) with coordinates in [0, "
                                     f"1] and a positive size, got {b!r}")
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        keys = list(zip(rec.tolist(), span[:, 0].tolist()))
        if len(set(keys)) != n:
            seen: set[tuple[int, float]] = set()
            dup = next(k for k in keys if k in seen or seen.add(k))
            raise StoreError(f"clip at start_s={dup[1]} of recording {dup[0]} appears twice in one batch")
        recs = np.unique(rec).tolist()
        with self._session(write=True) as s:
            conn = s.connection()
            known: set[int] = set()
            existing: set[tuple[int, float]] = set()
            for chunk in in_chunks(recs):
                known.update(conn.execute(select(Recording.id).where(Recording.id.in_(chunk))).scalars())
                existing.update((int(r), float(t)) for r, t in conn.execute(
                    select(Clip.recording_id, Clip.start_s).where(Clip.recording_id.in_(chunk))))
            if len(known) != len(recs):
                raise StoreError(f"no recording with id {next(r for r in recs if r not in known)}; "
                                 "add it with add_recording before its clips")
            keep = np.fromiter((k not in existing for k in keys), dtype=bool, count=n)
            if not keep.any():
                return np.zeros(0, dtype=np.int64)
            rec, span = rec[keep], span[keep]
            insert_rows(conn, Clip, ("recording_id", "start_s", "end_s"),
                         zip(rec.tolist(), span[:, 0].tolist(), span[:, 1].tolist()))
            id_of: dict[tuple[int, float], int] = {}
            for chunk in in_chunks(recs):
                id_of.update(((int(r), float(t)), int(i)) for i, r, t in conn.execute(
                    select(Clip.id, Clip.recording_id, Clip.start_s).where(Clip.recording_id.in_(chunk))))
            ids = np.fromiter((id_of[k] for k in zip(rec.tolist(), span[:, 0].tolist())), dtype=np.int64,
                              count=rec.shape[0])
            if s.get(Matrix, CLIPS_MATRIX) is None:
                self._backfill_clips(s, exclude_from=int(ids.min()))
            self.vectors.append_matrix(s, CLIPS_MATRIX, "float64", None, ids, np.column_stack([rec, span[:, 0]]))
            if boxes is not None:
                kept = [b for b, k in zip(boxes, keep.tolist()) if k]
                insert_rows(conn, ClipBox, ("clip_id", "x", "y", "w", "h", "category", "confidence"),
                             [(int(i), float(b[0]), float(b[1]), float(b[2]), float(b[3]), str(b[4]),
                               None if b[5] is None else float(b[5])) for i, b in zip(ids.tolist(), kept)
                              if b is not None])
            self._write_outputs(s, model, ids, probabilities[keep],
                                None if embeddings is None else np.asarray(embeddings)[keep])
            s.commit()
            return ids

    def recording_clips(self, recording_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(clip ids, (n x 2) start and end s) of a recording's clips, by start."""
        with self._session() as s:
            rows = s.execute(select(Clip.id, Clip.start_s, Clip.end_s).where(Clip.recording_id == recording_id)
                             .order_by(Clip.start_s)).all()
        return (np.array([r[0] for r in rows], dtype=np.int64),
                np.array([(r[1], r[2]) for r in rows], dtype=np.float64).reshape(-1, 2))

    def regions(self, recording_id: int) -> list[tuple[float, Optional[Box]]]:
        """(start_s, box or None) of each clip of a recording, by start: an image's frame and detector crops."""
        with self._session() as s:
            rows = s.execute(select(Clip.start_s, ClipBox).outerjoin(ClipBox, ClipBox.clip_id == Clip.id)
                             .where(Clip.recording_id == recording_id).order_by(Clip.start_s)).all()
        return [(float(t), None if b is None else (b.x, b.y, b.w, b.h, b.category, b.confidence)) for t, b in rows]

    def clips(self, clip_ids: Iterable[int]) -> list[ClipInfo]:
        """Clip and recording details for the given ids, in the order given."""
        ids = [int(i) for i in clip_ids]
        rows = []
        with self._session() as s:
            for chunk in in_chunks(ids):  # stays under the database's bound-parameter limit
                rows += s.execute(select(Clip, Recording, ClipBox).join(Recording, Clip.recording_id == Recording.id)
                                  .outerjoin(ClipBox, ClipBox.clip_id == Clip.id)
                                  .where(Clip.id.in_(chunk))).all()
        by_id = {c.id: ClipInfo(c.id, r.id, r.path, r.modality, c.start_s, c.end_s, r.site, r.device,
                                r.start_time, r.sample_rate, r.content_hash, r.file_size, r.file_mtime_ns, r.frames,
                                r.status, None if b is None else (b.x, b.y, b.w, b.h, b.category, b.confidence),
                                r.country, r.admin1_region)
                 for c, r, b in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise StoreError(f"no clip with id {missing[0]}")
        return [by_id[i] for i in ids]

    # ---------------------------------------------------------------- model versions
    def ensure_model_version(self, name: str, kind: str, embedding_space: str, dim: int,
                             labels: Sequence[str], params: dict | None = None,
                             output_type: str = "sigmoid") -> ModelVersion:
        """Get the model version ``name``, creating it; refuse one that differs in space, dim, labels or output type."""
        with self._session(write=True) as s:
            mv = s.execute(select(ModelVersion).where(ModelVersion.name == name)).scalars().first()
            if mv is None:  # made here, or by a concurrent ingest in between: either way read back the stored one
                insert_missing(s, ModelVersion(name=name, kind=kind, embedding_space=embedding_space, dim=dim,
                                                labels=list(labels), params=params or {}, output_type=output_type))
                s.commit()
                mv = s.execute(select(ModelVersion).where(ModelVersion.name == name)).scalars().one()
        if (mv.kind, mv.embedding_space, mv.dim, mv.output_type) != (kind, embedding_space, dim, output_type) \
                or list(mv.labels) != list(labels):
            raise StoreError(
                f"this store already holds model {name!r} as a {mv.kind} in space {mv.embedding_space!r} with "
                f"dim {mv.dim}, {len(mv.labels)} labels and {mv.output_type} outputs; refusing to mix it with a "
                f"{kind} in space {embedding_space!r} with dim {dim}, {len(labels)} labels and {output_type} outputs")
        return mv

    def add_model_version(self, mv: ModelVersion) -> ModelVersion:
        with self._session(write=True) as s:
            if s.execute(select(ModelVersion).where(ModelVersion.name == mv.name)).scalars().first():
                raise StoreError(f"a model version named {mv.name!r} already exists")
            s.add(mv)
            s.commit()
            s.refresh(mv)
            return mv

    def update_model_version(self, model_version_id: int, **fields: Any) -> ModelVersion:
        with self._session(write=True) as s:
            mv = s.get(ModelVersion, model_version_id)
            if mv is None:
                raise StoreError(f"no model version with id {model_version_id}")
            for key, value in fields.items():
                setattr(mv, key, value)
            s.add(mv)
            s.commit()
            s.refresh(mv)
            return mv

    def merge_model_metrics(self, model_version_id: int, **metrics: Any) -> ModelVersion:
        """Set some keys of a model version's metrics, keeping the others as stored NOW (read and written in one
        transaction, the row locked): ``validate`` and a rescoring writing at once both keep their figures."""
        with self._session(write=True) as s:
            mv = s.get(ModelVersion, model_version_id, with_for_update=True, populate_existing=True)
            if mv is None:
                raise StoreError(f"no model version with id {model_version_id}")
            mv.metrics = {**(mv.metrics or {}), **metrics}
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
            # scores live in the model's scores matrix (0.1.0 stores: Score rows); EXISTS is one probe per model
            in_matrix = exists().where(Matrix.name == literal("scores:") + ModelVersion.name, Matrix.rows > 0)
            in_rows = exists().where(Score.model_version_id == ModelVersion.id)
            return s.execute(select(ModelVersion).where(or_(in_matrix, in_rows), ModelVersion.ready)
                             .order_by(ModelVersion.id.desc())).scalars().first()

    # ---------------------------------------------------------------- model outputs
    def write_model_outputs(self, model: ModelVersion, clip_ids: np.ndarray, probabilities: np.ndarray) -> None:
        """Store (or replace) a model's probabilities, scores and top predictions for existing clips."""
        clip_ids = np.asarray(clip_ids, dtype=np.int64)
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if probabilities.shape != (len(clip_ids), len(model.labels)):
            raise StoreError(f"model {model.name!r} has {len(model.labels)} classes; got probabilities "
                             f"of shape {probabilities.shape} for {len(clip_ids)} clips")
        with self._session(write=True) as s:
            for chunk in in_chunks(clip_ids.tolist()):
                for table in (Score, Prediction):
                    s.execute(delete(table).where(table.model_version_id == model.id, table.clip_id.in_(chunk)))
            self._write_outputs(s, model, clip_ids, probabilities, None)
            s.commit()

    def _backfill_clips(self, s: Session, exclude_from: int) -> None:
        """Create the ``clips`` matrix with every clip stored before it existed (ids below ``exclude_from``).

        Runs once per store, in the transaction that first appends to the matrix, so the matrix always
        covers every clip and ``pool()`` needs no SQL count to trust it.
        """
        self.vectors.append_matrix(s, CLIPS_MATRIX, "float64", None, np.zeros(0, np.int64), np.zeros((0, 2)))
        q = (select(Clip.id, Clip.recording_id, Clip.start_s).where(Clip.id < exclude_from).order_by(Clip.id)
             .execution_options(yield_per=500_000))
        for part in s.execute(q).partitions():
            arr = np.array(part, dtype=np.float64).reshape(-1, 3)
            self.vectors.append_matrix(s, CLIPS_MATRIX, "float64", None, arr[:, 0].astype(np.int64), arr[:, 1:])

    def _backfill_scores(self, s: Session, model: ModelVersion) -> None:
        """Create ``scores:<model>`` with the model's Score rows written before score matrices existed.

        Runs once per model version, before its first new outputs, in the same transaction.
        """
        name = f"scores:{model.name}"
        self.vectors.append_matrix(s, name, "float32", model, np.zeros(0, np.int64),
                                   np.zeros((0, len(SCORE_COLUMNS))))
        index = {label: float(i) for i, label in enumerate(model.labels)}
        q = (select(Score.clip_id, Score.max_entropy, Score.mean_entropy, Score.top1, Score.margin, Score.top_label)
             .where(Score.model_version_id == model.id).order_by(Score.clip_id).execution_options(yield_per=500_000))
        for part in s.execute(q).partitions():
            arr = np.array([r[:5] + (index.get(r[5], -1.0),) for r in part], dtype=np.float64).reshape(-1, 6)
            self.vectors.append_matrix(s, name, "float64", model, arr[:, 0].astype(np.int64), arr[:, 1:])

    def _write_outputs(self, s: Session, model: ModelVersion, ids: np.ndarray, probs: np.ndarray,
                       embeddings: np.ndarray | None) -> None:
        """A model's outputs for ``ids``: its scores and top predictions as compact matrix rows (no SQL row per
        clip), and its full probability rows only when they cannot be recomputed from the embedding (a
        model whose output layer the store holds: BirdNET, the fine-tuned heads)."""
        if s.get(Matrix, f"scores:{model.name}") is None:
            self._backfill_scores(s, model)  # a model scored by 0.1.0 kept its scores in SQL rows
        if s.get(Matrix, CLIPS_MATRIX) is None:  # a store older than the clips matrix: the pool needs it
            self._backfill_clips(s, exclude_from=int(ids.max()) + 1 if ids.size else 0)
        scores = score_rows(probs)
        self.vectors.append_matrix(s, f"scores:{model.name}", "float32", model, ids,
                                   np.column_stack([scores[c] for c in SCORE_COLUMNS]))
        idx, vals = top_k(probs, TOP_K)
        self.vectors.append_matrix(s, f"topk:{model.name}", "float32", model, ids, np.column_stack([idx, vals]))
        if self.vectors.output_layer(model) is None:
            self.vectors.append_matrix(s, f"probabilities:{model.name}", "float16", model, ids, probs)
        if embeddings is not None:
            self.vectors.append_matrix(s, f"embeddings:{model.embedding_space}", self.vectors.embedding_dtype, model,
                                       ids, embeddings)

    # ---------------------------------------------------------------- predictions and the pool
    def predictions(self, clip_ids: Iterable[int], model_version_id: int) -> dict[int, list[tuple[str, float]]]:
        """Top predictions per clip under one model version, best first (``TOP_K`` of them)."""
        ids = [int(i) for i in clip_ids]
        out: dict[int, list[tuple[str, float]]] = {i: [] for i in ids}
        mv = self.model_version(int(model_version_id))
        try:
            view = self.vectors.matrix(f"topk:{mv.name}")
        except UnknownMatrix:
            view = None
        if view is not None and ids:
            arr = np.asarray(ids, dtype=np.int64)
            have = view.contains(arr)
            if have.any():
                rows = view.take(arr[have], dtype=np.float64)
                k = rows.shape[1] // 2
                for clip, row in zip(arr[have].tolist(), rows):
                    out[clip] = [(mv.labels[int(j)], float(p)) for j, p in zip(row[:k], row[k:])]
            ids = arr[~have].tolist()  # clips scored by 0.1.0 keep SQL rows
        rows = []
        with self._session() as s:
            for chunk in in_chunks(ids):
                rows += s.execute(select(Prediction).where(Prediction.model_version_id == model_version_id,
                                                           Prediction.clip_id.in_(chunk))
                                  .order_by(Prediction.clip_id, Prediction.rank)).scalars().all()
        for p in rows:
            out[p.clip_id].append((p.label, p.probability))
        return out

    def pool(self, model_version: ModelVersion | None = None) -> Pool:
        """Every scored clip under ``model_version`` (default: the current one) with its metadata.

        Clips of recordings that were replaced (their file changed) or failed are left out. Clips the
        model has not scored yet (ingested after a head was trained) are not in its pool:
        ``unscored_clip_ids`` lists them, and the loop scores them before sampling.

        Read from the memory-mapped ``scores:<model>`` and ``clips`` matrices (about 0.1 s per
        million clips, a few bytes per clip per column: site, device and top_label reference one
        string object per distinct value, with integer codes in ``Pool.codes``). A store written
        before those matrices existed, or whose matrices do not cover the Score rows, is read from
        SQL, one row per clip, with the same result.
        """
        mv = model_version or self.current_model_version()
        if mv is None:
            raise StoreError("the store holds no scored clips yet: ingest some audio first")
        return self._pool_from_matrices(mv) or self._pool_from_sql(mv)

    def unscored_clip_ids(self, model_version: ModelVersion) -> np.ndarray:
        """Clips with an embedding in the model's space that the model has not scored yet (sorted int64 ids).

        Read from the matrices' id files (no SQL row per clip), so it stays cheap at millions of clips.
        """
        try:
            embedded_view = self.vectors.embeddings(model_version.embedding_space)
        except UnknownMatrix:
            return np.zeros(0, dtype=np.int64)
        try:
            scored_view = self.vectors.matrix(f"scores:{model_version.name}")
        except UnknownMatrix:
            return np.asarray(embedded_view.ids, dtype=np.int64)[embedded_view.unique_rows()]
        if len(scored_view) == len(embedded_view) and scored_view.monotonic and embedded_view.monotonic \
                and np.array_equal(scored_view.ids, embedded_view.ids):
            return np.zeros(0, dtype=np.int64)  # the usual case, one linear pass instead of a sort
        return np.setdiff1d(np.asarray(embedded_view.ids), np.asarray(scored_view.ids)).astype(np.int64)

    def _recording_table(self) -> dict[str, np.ndarray]:
        """Recordings by sorted id: site, device, country and admin1 codes ('' = unknown), start (NaT = unknown)
        and site-week.

        Recordings are few (one per file), so their metadata is joined to clips in numpy.
        """
        with self.engine.connect() as conn:
            recs = conn.execute(select(Recording.id, Recording.site, Recording.device, Recording.start_time,
                                       Recording.status, Recording.latitude, Recording.longitude,
                                       Recording.duration_s, Recording.modality, Recording.country,
                                       Recording.admin1_region)
                                .order_by(Recording.id)).all()
        out: dict[str, np.ndarray] = {"id": np.array([r[0] for r in recs], dtype=np.int64),
                                      "out": np.array([r[4] in OUT_OF_POOL for r in recs], dtype=bool)}
        for key, col in (("site", 1), ("device", 2), ("country", 9), ("admin1_region", 10)):
            cats, codes = np.unique(np.array([r[col] or "" for r in recs], dtype=str), return_inverse=True)
            out[key], out[key + "_categories"] = codes.astype(np.int32).ravel(), cats.astype(object)
        out["start"] = np.array([np.datetime64(r[3], "ms") if r[3] is not None else np.datetime64("NaT", "ms")
                                 for r in recs], dtype="datetime64[ms]")
        out["site_week"] = [site_week_at(r[5], r[6], r[3]) for r in recs]  # type: ignore[assignment]
        # audio recordings' decoded length (s); NaN for images and unknown lengths (their windows count as full)
        out["duration"] = np.array([r[7] if r[7] is not None and r[8] == Modality.AUDIO else np.nan for r in recs],
                                   dtype=np.float64)
        return out

    def _assemble_pool(self, mv: ModelVersion, clip_id: np.ndarray, recording_id: np.ndarray,
                       start_s: np.ndarray, scores: dict[str, np.ndarray], top_label: np.ndarray,
                       top_codes: Optional[tuple[np.ndarray, np.ndarray]]) -> Pool:
        recs = self._recording_table()
        rec_ids = recs["id"]
        if rec_ids.size and recording_id.size and 0 <= recording_id.min() and recording_id.max() <= rec_ids[-1] \
                < 4 * rec_ids.size + 1_000_000:  # dense ids: one lookup per clip, no binary search
            lut = np.zeros(int(rec_ids[-1]) + 1, dtype=np.int64)
            lut[rec_ids] = np.arange(rec_ids.size)
            idx = lut[recording_id]
        else:
            idx = np.searchsorted(rec_ids, recording_id)
        if recs["out"].any():  # clips of replaced or failed recordings are not candidates any more
            keep = ~recs["out"][idx]
            clip_id, recording_id, start_s, idx = clip_id[keep], recording_id[keep], start_s[keep], idx[keep]
            scores = {k: v[keep] for k, v in scores.items()}
            top_label = top_label[keep]
            if top_codes is not None:
                top_codes = (top_codes[0][keep], top_codes[1])
        offsets = np.rint(start_s * 1000).astype(np.int64).astype("timedelta64[ms]")
        starts = (recs["start"][idx] + offsets).astype("datetime64[s]")
        site_codes, device_codes = recs["site"][idx], recs["device"][idx]
        pool = Pool(model_version=mv, clip_id=clip_id, recording_id=recording_id,
                    site=recs["site_categories"][site_codes], device=recs["device_categories"][device_codes],
                    start_time=starts, max_entropy=scores["max_entropy"], mean_entropy=scores["mean_entropy"],
                    top1=scores["top1"], margin=scores["margin"], top_label=top_label,
                    country=recs["country_categories"][recs["country"][idx]],
                    admin1_region=recs["admin1_region_categories"][recs["admin1_region"][idx]])
        pool.range_occurrence = self._range_occurrence(mv, recs["site_week"], idx, top_label, top_codes)
        with np.errstate(invalid="ignore"):
            left = recs["duration"][idx] - start_s if idx.size else np.zeros(0)
        pool.content = np.where(np.isnan(left), 1.0, np.clip(left / WINDOW_S, 0.0, 1.0))
        pool._codes["site"] = (site_codes, recs["site_categories"])
        pool._codes["device"] = (device_codes, recs["device_categories"])
        for key in ("country", "admin1_region"):
            pool._codes[key] = (recs[key][idx], recs[f"{key}_categories"])
        if top_codes is not None:
            pool._codes["top_label"] = top_codes
        return pool

    def _range_occurrence(self, mv: ModelVersion, site_weeks: list[Optional[SiteWeek]], idx: np.ndarray, top_label: np.ndarray,
                          top_codes: Optional[tuple[np.ndarray, np.ndarray]]) -> Optional[np.ndarray]:
        """Each clip's top-1 label's occurrence at its site-week (NaN unknown); None without stored priors."""
        source, priors = prior_source(self, mv)
        if source is None:
            return None
        mapping = map_labels(list(mv.labels), source.labels, taxa_only=True)
        if top_codes is not None and len(top_codes[1]) == len(mv.labels):
            top_index = top_codes[0]
        else:  # a pool read from SQL rows: top labels as strings
            position = {label: i for i, label in enumerate(mv.labels)}
            top_index = np.fromiter((position.get(t, -1) for t in top_label), dtype=np.int64, count=top_label.size)
        occurrence = top_occurrence(site_weeks, idx, np.maximum(top_index, 0), priors, mapping)
        occurrence[np.asarray(top_index) < 0] = np.nan
        return occurrence

    # ---------------------------------------------------------------- range priors
    def add_range_priors(self, model: ModelVersion, range_model: str, priors: Mapping[SiteWeek, np.ndarray],
                         floor: float = DEFAULT_FLOOR) -> int:
        """Store (or replace) the occurrence of each of ``model``'s classes per site-week, in one transaction.

        ``priors`` maps (latitude, longitude, week) to a range model's output over ``model.labels``; only
        classes at or above ``floor`` are kept (see ``store.schema.RangePrior``). Returns the rows written.
        """
        if not isinstance(floor, (int, float)) or isinstance(floor, bool) or not 0.0 <= float(floor) < 1.0:
            raise StoreError(f"floor must be a number in [0, 1), got {floor!r}")
        n = len(model.labels)
        if n > 65_536:
            raise StoreError(f"model {model.name!r} has {n} classes; range priors index at most 65,536")
        rows = []
        for key, values in priors.items():
            try:
                sw = check_site_week(*key)
            except (TypeError, ValueError) as e:
                raise StoreError(f"range prior {key!r}: {e}") from e
            occ = np.asarray(values, dtype=np.float32)
            if occ.shape != (n,):
                raise StoreError(f"range prior at {sw}: model {model.name!r} has {n} classes, got shape {occ.shape}")
            if not (np.isfinite(occ).all() and occ.min(initial=0.0) >= 0.0 and occ.max(initial=0.0) <= 1.0):
                raise StoreError(f"range prior at {sw}: occurrences must be finite and in [0, 1]")
            classes, values_ = pack(occ, float(floor))
            rows.append(RangePrior(model_version_id=model.id, latitude=sw.latitude, longitude=sw.longitude,
                                   week=sw.week, range_model=str(range_model), floor=float(floor), n_classes=n,
                                   classes=classes, occurrence=values_))
        with self._session(write=True) as s:
            if s.get(ModelVersion, model.id) is None:
                raise StoreError(f"no model version with id {model.id}; add it before its range priors")
            for row in rows:
                s.merge(row)
            s.commit()
        return len(rows)

    def range_priors(self, model: ModelVersion, site_weeks: Optional[Iterable[SiteWeek]] = None
                     ) -> dict[SiteWeek, StoredPrior]:
        """The stored priors over ``model``'s classes (of ``site_weeks``, default all), in stored order."""
        wanted = None if site_weeks is None else {SiteWeek(float(a), float(b), int(w)) for a, b, w in site_weeks}
        with self._session() as s:
            stored = s.execute(select(RangePrior).where(RangePrior.model_version_id == model.id)
                               .order_by(RangePrior.latitude, RangePrior.longitude, RangePrior.week)).scalars().all()
        out: dict[SiteWeek, StoredPrior] = {}
        for r in stored:
            sw = SiteWeek(float(r.latitude), float(r.longitude), int(r.week))
            if wanted is None or sw in wanted:
                out[sw] = StoredPrior(sw, unpack(r.classes, r.occurrence, r.n_classes), float(r.floor), r.range_model)
        return out

    def _pool_from_matrices(self, mv: ModelVersion) -> Optional[Pool]:
        """The pool from memory-mapped columns, or None for a model scored only before they existed."""
        name = f"scores:{mv.name}"
        try:
            view, clips = self.vectors.matrix(name), self.vectors.matrix(CLIPS_MATRIX)
        except UnknownMatrix:
            return None
        # both matrices are complete by construction: created with every row stored before them
        # (see _backfill_scores / _backfill_clips), then written in the transactions that write the rows
        rows = view.unique_rows()
        everything = view.monotonic
        clip_id = np.array(view.ids if everything else view.ids[rows], dtype=np.int64)
        if len(clips) == clip_id.shape[0] and clips.monotonic and np.array_equal(clips.ids, clip_id):
            recording_id = clips.data[:, 0].astype(np.int64)  # the pool is every clip, in file order
            start_s = np.array(clips.data[:, 1], dtype=np.float64)
        else:
            try:
                crow = clips.rows_for(clip_id)
            except KeyError:
                return None  # clips stored before the clips matrix existed
            recording_id = clips.data[crow, 0].astype(np.int64)
            start_s = np.array(clips.data[crow, 1], dtype=np.float64)
        cols = {c: np.array(view.data[:, j] if everything else view.data[rows, j], dtype=np.float64)
                for j, c in enumerate(SCORE_COLUMNS)}
        labels = np.array(mv.labels, dtype=object)
        top_index = cols.pop("top_index").astype(np.int32)
        return self._assemble_pool(mv, clip_id, recording_id, start_s, cols, labels[top_index],
                                   (top_index, labels))

    def _pool_from_sql(self, mv: ModelVersion) -> Pool:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Score.clip_id, Clip.recording_id, Clip.start_s, Score.max_entropy, Score.mean_entropy,
                       Score.top1, Score.margin, Score.top_label)
                .join(Clip, Clip.id == Score.clip_id)
                .where(Score.model_version_id == mv.id).order_by(Score.clip_id)).all()
        cols = list(zip(*rows)) if rows else [()] * 8
        scores = {c: np.array(cols[3 + j], dtype=np.float64)
                  for j, c in enumerate(("max_entropy", "mean_entropy", "top1", "margin"))}
        return self._assemble_pool(mv, np.array(cols[0], dtype=np.int64), np.array(cols[1], dtype=np.int64),
                                   np.array(cols[2], dtype=np.float64), scores,
                                   np.array(cols[7], dtype=object), None)
