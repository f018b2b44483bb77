"""Contract of the store as a whole: one interface made of three roles, on every backend.

What each role promises is tested in test_records.py, test_vectors.py and test_ledger.py, on the
role's part and on ``Store``; here what spans them: the database itself, reopening, the counts.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from store import Annotation, Recording, SamplingRun, Selection, Store, Task, roles
from tests.store.conformance import members

LABELS = [f"Species {i}_Common {i}" for i in range(8)]
ROLES = (roles.Records, roles.Vectors, roles.Ledger)
#: what Store offers besides its roles: opening and closing, locks, the overview, and its parts and settings
OWN = {"open", "close", "lock", "counts", "url", "engine", "on_wait", "vectors_dir", "records", "vectors", "ledger",
       "read_only"}


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


def test_the_store_is_its_three_roles_and_what_spans_them(store):
    public = {n for n in dir(Store) if not n.startswith("_")} | {n for n in vars(store) if not n.startswith("_")}
    by_role = [set(members(role)) for role in ROLES]
    assert all(not (a & b) for i, a in enumerate(by_role) for b in by_role[i + 1:])  # each method in one role
    assert public == set().union(*by_role) | OWN
    assert store.records.vectors is store.vectors  # the records append through the same vectors part


def test_counts_cover_records_and_ledger(store):
    assert set(store.counts().values()) == {0}
    mv = _model(store)
    rec = _recording(store, status="done")
    _recording(store, "b.wav", status="failed")
    spans, probs, emb = _batch(4)
    ids = [int(i) for i in store.add_clip_batch(rec.id, spans, mv, probs, emb)]
    for run in range(2):  # the same clip picked by two runs is one selected clip
        store.add_sampling_run(SamplingRun(strategy="t", budget=2, seed=run),
                               [Selection(clip_id=ids[0], rank=1, score=0.5, reason="t"),
                                Selection(clip_id=ids[run + 1], rank=2, score=0.4, reason="t")])
    store.add_tasks([Task(project_id=1, clip_id=i, ls_task_id=10 + i) for i in ids[:3]])
    store.upsert_annotation(Annotation(clip_id=ids[0], project_id=1, ls_task_id=10, ls_annotation_id=1, labels=["A"]))
    store.upsert_annotation(Annotation(clip_id=ids[1], project_id=1, ls_task_id=11, ls_annotation_id=2, labels=["Z"],
                                       state="rejected"))
    assert store.counts() == {"recordings": 1, "failed_recordings": 1, "clips": 4, "sampling_runs": 2, "selected": 3,
                              "tasks": 3, "annotations": 1, "model_versions": 1}


def test_store_reopens_with_its_data(workspace):
    st = workspace.open_store()
    mv = _model(st)
    rec = _recording(st)
    spans, probs, emb = _batch(2)
    ids = st.add_clip_batch(rec.id, spans, mv, probs, emb)
    st.upsert_annotation(Annotation(clip_id=int(ids[0]), project_id=1, ls_task_id=7, ls_annotation_id=1, labels=["A"]))
    st.close()
    again = workspace.open_store()
    assert len(again.embeddings("test-space")) == 2
    assert len(again.pool()) == 2
    assert [a.labels for a in again.annotations()] == [["A"]]


def test_a_consumer_typed_against_a_role_runs_on_that_roles_part_alone(store):
    """What a function typed ``Records`` or ``Ledger`` reads is in that role: the part alone answers as the store."""
    from sampler.run import labels_are_multi
    from tests.sampler.synthetic import annotate, build_pool
    from workbench.overview import model_history, pick_rows

    syn = build_pool(store, per_cluster=2)
    annotate(store, syn.clip_ids[:3], [["Parus major_Great Tit"]] * 3)
    assert labels_are_multi(store.ledger) is labels_are_multi(store) is False
    assert model_history(store.records) == model_history(store)
    picks = [Selection(clip_id=int(c), rank=i + 1, score=0.5, reason="t") for i, c in enumerate(syn.clip_ids[:2])]
    assert pick_rows(store.records, picks, syn.model.id) == pick_rows(store, picks, syn.model.id)
