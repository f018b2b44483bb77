"""A model on several threads, fed windows in small chunks, so the caller never waits for the slowest thread.

``InterpreterPool`` lends each thread an interpreter of its own (LiteRT interpreters are not thread-safe);
BirdNET and the vision models both lease theirs from one.

LiteRT's invoke releases the GIL, so one single-threaded interpreter per core is the fastest way to
run a small model on CPU (measured faster than one interpreter with several threads, and than batched
invokes). Splitting each batch evenly between the threads made them wait for each other at every
batch; chunks of a few windows taken from one queue keep every thread busy, and ``submit`` returns at
once, so the caller can store one batch while the next one is being inferred.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np

#: Windows per task: small enough that threads finish a batch together, large enough that queueing is noise.
CHUNK_WINDOWS = 8


class InterpreterPool:
    """Interpreters (not thread-safe) lent to one thread at a time: built on demand by ``build``, then reused."""

    def __init__(self, build: Callable[[], Any]):
        self._build = build
        self._lock = threading.Lock()
        self._idle: list[Any] = []

    @contextmanager
    def lease(self) -> Iterator[Any]:
        with self._lock:
            runner = self._idle.pop() if self._idle else None
        if runner is None:
            runner = self._build()
        try:
            yield runner
        finally:
            with self._lock:
                self._idle.append(runner)


def lease(owner: Any) -> Any:
    """``owner._build``'s interpreters, lent through a pool made on first use and kept in ``owner.__dict__`` (its
    constructor only stores parameters)."""
    pool = owner.__dict__.get("_interpreters")
    if pool is None:
        pool = owner.__dict__.setdefault("_interpreters", InterpreterPool(owner._build))
    return pool.lease()


class Inference:
    """The pending result of one ``ModelThreads.submit``."""

    def __init__(self, futures: list[Future]):
        self._futures = futures

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``[n, classes]`` and embeddings ``[n, dim]`` in the order the windows were given."""
        try:
            parts = [f.result() for f in self._futures]
        finally:
            for f in self._futures:  # an error in one chunk: do not leave the others running for nothing
                f.cancel()
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def cancel(self) -> None:
        for f in self._futures:
            f.cancel()


class ModelThreads:
    """``threads`` threads running ``model.infer_batch`` (which must be thread-safe) on chunks of windows."""

    def __init__(self, model: Any, threads: int, chunk_windows: int = CHUNK_WINDOWS):
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        if not isinstance(chunk_windows, int) or chunk_windows < 1:
            raise ValueError(f"chunk_windows must be a positive int, got {chunk_windows!r}")
        self.model = model
        self.threads = threads
        self.chunk_windows = chunk_windows
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="model")

    def submit(self, windows: Sequence[np.ndarray]) -> Inference:
        """Queue ``windows`` (at least one) for the model threads and return at once."""
        n = len(windows)
        if n == 0:
            raise ValueError("no windows to infer")
        # never fewer chunks than threads, so a short batch still uses every thread
        size = max(1, min(self.chunk_windows, -(-n // self.threads)))
        futures = [self._pool.submit(self.model.infer_batch, windows[i:i + size]) for i in range(0, n, size)]
        return Inference(futures)

    def infer(self, windows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``submit(windows).result()``."""
        return self.submit(windows).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
