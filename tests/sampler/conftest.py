"""Sampler tests run FAISS on one thread: their problems are tiny, and OpenMP threads spinning on a
busy machine (a benchmark next door) can make a 10 ms k-means take seconds."""

from __future__ import annotations

import faiss
import pytest


@pytest.fixture(scope="session", autouse=True)
def _faiss_one_thread():
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
