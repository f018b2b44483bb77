"""Which project a sampling run's clips go to: the run named (or the last), its modality and its model."""

from __future__ import annotations

import pytest

from annotation.client import sampling_run
from annotation.errors import AnnotationError
from annotation.projects import ensure_batch_project
from sampler import UncertainDiverse, sample
from tests.sampler.synthetic import build_pool


def test_the_run_is_the_one_named_or_the_last_and_an_unknown_one_is_named(store, tmp_path):
    build_pool(store, n_clusters=3, per_cluster=10)
    assert sampling_run(store, None) is None  # no run yet: the caller decides what that means
    first, _ = sample(store, UncertainDiverse(random_state=0), 3)
    last, _ = sample(store, UncertainDiverse(random_state=1), 3)
    assert sampling_run(store, None).id == last.id and sampling_run(store, first.id).id == first.id
    with pytest.raises(AnnotationError, match=fr"no sampling run 99 in this store \(it holds runs {first.id} to "
                                              fr"{last.id}\); `workbench status` lists the runs"):
        ensure_batch_project(store, None, tmp_path, run_id=99)  # refused before Label Studio is asked anything
