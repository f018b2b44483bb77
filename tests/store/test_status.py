"""store.status: the figures `workbench status` prints and the app's pages show, from one read of the store."""

from __future__ import annotations

import numpy as np

from store import ModelVersion
from store.status import store_status
from tests.sampler.synthetic import build_pool


def test_an_empty_store_has_no_model_and_nothing_unscored(store):
    status = store_status(store)
    assert status.counts == store.counts() and set(status.counts.values()) == {0}
    assert status.model is None and status.unscored == 0 and status.macro_recall is None


def test_the_status_names_the_current_model_its_recall_and_the_clips_it_has_not_scored(store):
    syn = build_pool(store, per_cluster=3)
    status = store_status(store)
    assert status.model.id == syn.model.id and status.unscored == 0 and status.macro_recall is None
    assert status.counts["clips"] == len(syn.clip_ids) == 24 and status.counts["recordings"] == 3 + 9
    head = store.add_model_version(ModelVersion(name="head-1", kind="classifier", embedding_space="test-space",
                                                dim=2, labels=["a", "b"], metrics={"macro_recall": 0.75}))
    store.write_model_outputs(head, syn.clip_ids[:5], np.full((5, 2), 0.5, dtype=np.float32))
    status = store_status(store)
    assert status.model.name == "head-1" and status.macro_recall == 0.75
    assert status.unscored == 24 - 5 and status.counts["model_versions"] == 2
