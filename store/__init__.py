"""Persistence for the workbench: one narrow interface (``Store``) over SQL records and vector matrices."""

from store.schema import (Annotation, AnnotationState, Clip, ClipBox, LabelSet, Matrix, ModelVersion, Prediction, Recording,
                          SamplingRun, Score, Selection, SimulationRun, SyncState, Task)
from store.store import ClipInfo, Pool, Store, StoreError, mask_password
from store.uncertainty import binary_entropy, score_rows, top_k

__all__ = ["Annotation", "AnnotationState", "Clip", "ClipBox", "ClipInfo", "LabelSet", "Matrix", "ModelVersion", "Pool", "Prediction",
           "Recording", "SamplingRun", "Score", "Selection", "SimulationRun", "Store", "StoreError", "SyncState", "Task", "mask_password",
           "binary_entropy", "score_rows", "top_k"]
