"""Contract of the store interface: what every other package relies on."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from store import Recording, Store

LABELS = [f"Species {i}_Common {i}" for i in range(8)]


def _model(store: Store, dim: int = 4, labels=LABELS):
    return store.ensure_model_version("test-model", "embedding", "test-space", dim, labels)


def _recording(store: Store, name: str = "a.wav", **kw) -> Recording:
    return store.add_recording(Recording(path=f"/data/{name}", content_hash=f"hash-{name}", **kw))


def _batch(n: int, seed: int = 0, dim: int = 4):
    rng = np.random.default_rng(seed)
    return [(3.0 * i, 3.0 * i + 3) for i in range(n)], rng.random((n, len(LABELS))), rng.random((n, dim))


def test_sqlite_store_runs_in_wal_mode(store):
    if store.engine.dialect.name != "sqlite":
        pytest.skip("WAL is a SQLite journal mode")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_store_reopens_with_its_data(workspace):
    st = workspace.open_store()
    mv = _model(st)
    rec = _recording(st)
    spans, probs, emb = _batch(2)
    st.add_clip_batch(rec.id, spans, mv, probs, emb)
    st.close()
    again = workspace.open_store()
    assert len(again.embeddings("test-space")) == 2
    assert len(again.pool()) == 2
