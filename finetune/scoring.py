"""Scoring the clips a head has not seen: what every face runs after an ingest and before a batch is picked.

A fine-tuned head is the store's current model, but clips ingested after it was trained are scored only by
the embedding model (at ingest). ``score_new_clips`` has the head score exactly those; ``sample_scored`` does
it and then picks and stores a batch (``sampler.run.sample_batch``), as `workbench sample`, `workbench search`
and the app's Save do.
"""

from __future__ import annotations

from typing import Callable, Optional

from finetune.head import ClassifierHead
from finetune.labelled import FinetuneError
from sampler.base import QueryStrategy
from sampler.run import SampleResult, sample_batch
from store.locks import LockName
from store.schema import ModelKind, ModelVersion
from store.store import Store

DEFAULT_CHUNK = 8192  # rows per scoring step; also keeps SQL IN-lists under SQLite's variable limit


def score_new_clips(store: Store, model_version: Optional[ModelVersion] = None, *, chunk_size: int = DEFAULT_CHUNK,
                    progress: Optional[Callable[[int, int], None]] = None) -> int:
    """Score with a head the clips it has not scored yet (ingested after it was trained); return how many.

    Every clip belongs to every current model's pool: audio ingested after a fine-tune is scored by
    BirdNET during ingest, but the head that is current only learns of it here. Only the unscored
    clips are read (chunk by chunk), so this is cheap when called before every sampling. A model
    that is not a fine-tuned head (BirdNET itself) scores its clips at ingest: nothing to do.
    """
    mv = model_version or store.current_model_version()
    if mv is None or mv.kind != ModelKind.CLASSIFIER:
        return 0
    with store.lock(LockName.SCORING):  # read under the lock: a concurrent caller has just scored them
        ids = store.unscored_clip_ids(mv)
        if not ids.size:
            return 0
        if not mv.artifact_path:
            raise FinetuneError(f"model version {mv.name!r} has no saved head to score new clips with")
        head = ClassifierHead.load(mv.artifact_path)
        view = store.embeddings(mv.embedding_space)
        for start in range(0, ids.size, chunk_size):
            chunk = ids[start:start + chunk_size]
            store.write_model_outputs(mv, chunk, head.predict_proba(view.take(chunk)))
            if progress is not None:
                progress(int(min(start + chunk_size, ids.size)), int(ids.size))
    return int(ids.size)


def sample_scored(store: Store, strategy: QueryStrategy, budget: int, *,
                  model_version: ModelVersion | str | int | None = None,
                  progress: Optional[Callable[[int, int], None]] = None) -> SampleResult:
    """A batch picked by ``strategy`` from the pool of ``model_version`` (default: the current one) and stored,
    the clips that model has not scored yet scored by it first (``progress(done, total)``; ``result.scored``
    says how many)."""
    return sample_batch(store, strategy, budget, model_version=model_version, score_new_clips=score_new_clips,
                        progress=progress)
