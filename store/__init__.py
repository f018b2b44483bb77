"""Persistence for the workbench: one narrow interface (``Store``) over SQL records and vector matrices."""

from store.locks import LockName
from store.probability import OutputType
from store.schema import (Annotation, AnnotationState, Clip, ClipBox, LabelSet, Matrix, Modality, ModelKind, ModelVersion,
                          Prediction, Recording, RecordingStatus, SamplingRun, Score, Selection, SimulationRun, SyncState, Task)
from store.store import ClipInfo, Pool, Store, StoreError, mask_password
from store.uncertainty import binary_entropy, score_rows, top_k

__all__ = ["Annotation", "AnnotationState", "Clip", "ClipBox", "ClipInfo", "LabelSet", "LockName", "Matrix", "Modality",
           "ModelKind", "ModelVersion", "OutputType", "Pool", "Prediction", "Recording", "RecordingStatus", "SamplingRun",
           "Score", "Selection", "SimulationRun", "Store", "StoreError", "SyncState", "Task", "mask_password",
           "binary_entropy", "score_rows", "top_k"]
