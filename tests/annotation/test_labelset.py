"""Label sets from the pool: confident top labels, most frequent first, capped, plus Other and Noise."""

from __future__ import annotations

import pytest

from annotation.labelset import derive_label_set, label_set_from_pool
from tests.annotation.conftest import SPECIES, generate

A, B, C, D = SPECIES[:4]


def test_species_by_frequency_then_extras(store, tmp_path):
    generate(store, tmp_path, top_labels=[A, B, B, C, B, A, D])  # top1 = 0.6 for every clip
    ls = label_set_from_pool(store)
    assert ls.labels == [B, A, D, C, "Other", "Noise"]  # ties (C, D) by label
    assert store.label_set(ls.name).labels == ls.labels
    assert label_set_from_pool(store).id == ls.id  # same pool, same set


def test_min_confidence_cap_and_name(store, tmp_path):
    generate(store, tmp_path, top_labels=[A, B, B, C, A, B])
    assert label_set_from_pool(store, max_species=2, name="two").labels == [B, A, "Other", "Noise"]
    assert label_set_from_pool(store, min_confidence=0.9, name="none").labels == ["Other", "Noise"]
    assert label_set_from_pool(store, extra=(), name="bare").labels == [B, A, C]
    generate(store, tmp_path, top_labels=[D])  # ties: by label, so the order is reproducible
    assert label_set_from_pool(store, extra=(), name="ties").labels == [B, A, D, C]
    with pytest.raises(ValueError, match="min_confidence"):
        label_set_from_pool(store, min_confidence=2)
    with pytest.raises(ValueError, match="max_species"):
        label_set_from_pool(store, max_species=0)


def test_derive_makes_a_new_named_set(store, tmp_path):
    generate(store, tmp_path, top_labels=[A, B])
    base = label_set_from_pool(store)
    new = derive_label_set(store, base, add=[D], remove=[B], name="edited")
    assert new.name == "edited" and new.id != base.id
    assert new.labels == [A, D, "Other", "Noise"]
    assert store.label_set(base.name).labels == base.labels  # the old set is untouched
    with pytest.raises(ValueError, match="not in it"):
        derive_label_set(store, base, remove=["Nope"])
    assert derive_label_set(store, new, add=[A]) is new  # nothing to change: no copy of the same set
