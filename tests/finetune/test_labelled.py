"""One rule for the labelled clips of a space: fine-tuning and the lab's replay take the same clips and labels."""

from __future__ import annotations

import numpy as np
import pytest

from finetune import FinetuneError
from finetune.labelled import labelled_clips
from lab.pool import PoolFileError, from_workspace
from store import Annotation
from tests.sampler.synthetic import SPECIES, annotate, build_pool


def _label(store, ids):
    annotate(store, ids, [[SPECIES[i % 2]] for i in range(len(ids))])
    # a second expert disagrees on the first clip: it waits for adjudication, in training and in a replay
    store.upsert_annotation(Annotation(clip_id=ids[0], project_id=1, ls_task_id=1001, ls_annotation_id=9001,
                                       labels=[SPECIES[1]], annotator="bob@example.org"))


def test_the_lab_replays_the_clips_and_labels_finetune_trains_on(store):
    syn = build_pool(store, per_cluster=6)
    ids = [int(c) for c in syn.clip_ids[:10]]
    _label(store, ids)
    clips = labelled_clips(store)
    assert clips.space == "test-space" and clips.parent.id == syn.model.id and clips.n_annotations == 11
    assert clips.clip_ids.tolist() == ids[1:]
    pool = from_workspace(store)
    assert len(pool) == len(clips) and pool.label_lists() == clips.labels
    np.testing.assert_array_equal(pool.embeddings, clips.embeddings(store))


def test_a_labelled_clip_without_an_embedding_is_the_same_error_for_both(store, workspace):
    syn = build_pool(store, per_cluster=12, no_embedding_sites=("C",))
    on_c = [int(c) for c, s in zip(syn.clip_ids, syn.site) if s == "C"][:1]
    on_a = [int(c) for c, s in zip(syn.clip_ids, syn.site) if s == "A"][:5]
    annotate(store, on_a + on_c, [[SPECIES[i % 2]] for i in range(6)])
    message = rf"1 of 6 labelled clips have no embeddings in space 'test-space' \(first clip ids: \[{on_c[0]}\]\)"
    with pytest.raises(FinetuneError, match=message):
        from_workspace(store)
    from finetune import finetune

    with pytest.raises(FinetuneError, match=message):
        finetune(store, workspace.models)


def test_no_labels_is_each_callers_own_message(store, workspace):
    build_pool(store, per_cluster=3)
    assert labelled_clips(store) is None
    with pytest.raises(PoolFileError, match="no active annotations to simulate on"):
        from_workspace(store)
    from finetune import finetune

    with pytest.raises(FinetuneError, match="no active annotations in the store"):
        finetune(store, workspace.models)
