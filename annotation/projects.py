"""Which Label Studio project a batch goes to, set up as `workbench push` and the app's Annotate page both need.

One function so the command line and the app make the same project from the same settings: the label set
(named, else the newest, else drawn from the pool), a project of its own for image clips, one species per
clip for a softmax image model, and the species search over everything the clips' model knows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional

from annotation.client import LabelStudioClient, sampling_run
from annotation.errors import AnnotationError
from annotation.labelset import label_set_from_pool
from annotation.settings import DEFAULT_IMAGE_PROJECT, DEFAULT_PROJECT
from annotation.vocabulary import vocabulary_for
from store import LabelSet, ModelVersion, Store

log = logging.getLogger(__name__)

DEFAULT_MIN_CONFIDENCE = 0.5


def _run_and_model(store: Store, run_id: Optional[int]) -> tuple[str, Optional[ModelVersion]]:
    """The modality of a sampling run's clips (default: the last run; "audio" without one) and its model."""
    run = sampling_run(store, run_id)
    picks = store.selections(run.id) if run is not None else []
    modality = store.clips([picks[0].clip_id])[0].modality if picks else "audio"
    mv = None
    if run is not None and run.model_version_id is not None:
        mv = store.model_version(int(run.model_version_id))
    return modality, mv or store.current_model_version()


def choose_label_set(store: Store, name: Optional[str] = None, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                     progress: Callable[[str], None] = log.info) -> LabelSet:
    """The label set called ``name``, else the newest, else one drawn from the pool (and stored)."""
    label_set = store.label_set(name) if name else store.label_set()
    if name and label_set is None:
        raise AnnotationError(f"no label set named {name!r}; `workbench labels` shows the current one")
    if label_set is None:
        label_set = label_set_from_pool(store, min_confidence=min_confidence)
        progress(f"label set {label_set.name!r}: {len(label_set.labels)} labels from the pool")
    return label_set


def ensure_batch_project(store: Store, client: LabelStudioClient, clips_dir: Path, *, title: str = DEFAULT_PROJECT,
                         label_set: Optional[str] = None, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                         run_id: Optional[int] = None, boxes: bool = False,
                         progress: Callable[[str], None] = log.info) -> int:
    """The id of the project a sampling run's clips go to (made or updated as needed)."""
    chosen = choose_label_set(store, label_set, min_confidence=min_confidence, progress=progress)
    modality, mv = _run_and_model(store, run_id)
    if modality == "image" and title == DEFAULT_PROJECT:  # image and audio tasks need projects of their own
        title = DEFAULT_IMAGE_PROJECT
    vocabulary = vocabulary_for(store, mv, chosen.labels) if mv is not None else None
    single = modality == "image" and mv is not None and mv.output_type == "softmax"
    return client.ensure_project(chosen, title=title, clips_dir=Path(clips_dir), modality=modality, boxes=boxes,
                                 vocabulary=vocabulary, single=single)
