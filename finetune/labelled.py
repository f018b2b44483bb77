"""The labelled clips of an embedding space: one rule for fine-tuning and for the lab's replay.

Which space (the current model's, else the newest embedding model's), which labels per clip (one
answer per clip: ``annotation.agreement.consensus``) and what a labelled clip without an embedding in
that space is (an error naming it: a head trained without it, or a replay judged without it, would
silently describe other data than the experts labelled).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from store.roles import Records, Vectors
from store.schema import ModelKind, ModelVersion
from store.store import Store

log = logging.getLogger(__name__)


class FinetuneError(Exception):
    """Training cannot start or finish: no labels, nothing to contrast, clips without embeddings."""


def resolve_space(store: Records, embedding_space: str | None = None) -> tuple[str, ModelVersion]:
    """The embedding space to train in (default: the current model's) and the embedding model that makes it."""
    embedders = [m for m in store.model_versions() if m.kind == ModelKind.EMBEDDING]
    if embedding_space is None:
        current = store.current_model_version()
        if current is not None:
            embedding_space = current.embedding_space
        elif embedders:
            embedding_space = embedders[-1].embedding_space
        else:
            raise FinetuneError("the store holds no embedding model yet: ingest some audio first")
    parents = [m for m in embedders if m.embedding_space == embedding_space]
    if not parents:
        known = sorted({m.embedding_space for m in embedders})
        raise FinetuneError(f"no embedding model in this store makes embedding space {embedding_space!r}; "
                            f"known spaces: {known}")
    return embedding_space, parents[-1]


@dataclass
class LabelledClips:
    """Clip ids (sorted) and one label list each, in ``space`` (made by ``parent``); ``n_annotations`` read."""

    space: str
    parent: ModelVersion
    clip_ids: np.ndarray
    labels: list[list[str]]
    n_annotations: int

    def __len__(self) -> int:
        return int(self.clip_ids.size)

    def embeddings(self, store: Vectors) -> np.ndarray:
        """The clips' embeddings in ``space``, in order; a clip without one is a ``FinetuneError`` naming it."""
        view = store.embeddings(self.space)
        missing = self.clip_ids[~view.contains(self.clip_ids)]
        if missing.size:
            raise FinetuneError(f"{missing.size} of {self.clip_ids.size} labelled clips have no embeddings in space "
                                f"{self.space!r} (first clip ids: {missing[:5].tolist()}); re-ingest their recordings "
                                "with embeddings or fine-tune in another space")
        return view.take(self.clip_ids)


def labelled_clips(store: Store, embedding_space: str | None = None) -> Optional[LabelledClips]:
    """The store's labelled clips in ``embedding_space`` (see ``resolve_space``), one answer per clip.

    The answer is the adjudicated one, the only one, or the majority's; clips whose experts split evenly
    wait for adjudication (logged). None when the store holds no annotations at all: what to do about
    that is the caller's to say (label and pull before a fine-tune; or give a pool file to the lab).
    """
    from annotation.agreement import consensus

    anns = store.annotations()
    if not anns:
        return None
    space, parent = resolve_space(store, embedding_space)
    by_clip, split = consensus(anns)
    if split:
        log.warning("%d clip(s) left out of training: their experts disagree and nobody adjudicated yet "
                    "(`workbench agreement` lists them; e.g. clip %s)", len(split), split[0])
    ids = np.array(sorted(by_clip), dtype=np.int64)
    return LabelledClips(space, parent, ids, [sorted(by_clip[int(i)]) for i in ids], len(anns))


__all__ = ["FinetuneError", "LabelledClips", "labelled_clips", "resolve_space"]
