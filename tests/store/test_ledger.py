"""Contract of the Ledger role (``store.roles.Ledger``): sampling runs, simulations, label sets, tasks,
annotations and watermarks.

Run on every implementation (the ``SqlLedger`` part and ``Store`` delegating to it) and every backend
(SQLite and a real PostgreSQL, ``db_url`` in conftest.py). The clips it refers to are made through ``store``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy.exc import IntegrityError

from store import Annotation, Recording, SamplingRun, Selection, SimulationRun, StoreError, Task, roles
from store.ledger import SqlLedger
from tests.store.conformance import assert_conforms
from tests.store.data import LABELS



@pytest.fixture(params=["SqlLedger", "Store"])
def ledger(request, store):
    """The role under test: the store's ledger part, or the store itself."""
    return store.ledger if request.param == "SqlLedger" else store


def _clip_ids(store, n: int = 5) -> list[int]:
    """``n`` stored clips for the ledger to refer to."""
    mv = store.ensure_model_version("test-model", "embedding", "test-space", 4, LABELS)
    rec = store.add_recording(Recording(path="/data/a.wav", content_hash="hash-a"))
    rng = np.random.default_rng(0)
    spans = [(3.0 * i, 3.0 * i + 3) for i in range(n)]
    return [int(i) for i in store.add_clip_batch(rec.id, spans, mv, rng.random((n, len(LABELS))),
                                                 rng.random((n, 4)))]


def _pick(clip_id: int, rank: int) -> Selection:
    return Selection(clip_id=clip_id, rank=rank, score=1.0 / rank, reason="test")


def test_implementations_conform_to_the_role(store):
    assert isinstance(store.ledger, SqlLedger)
    assert_conforms(store.ledger, roles.Ledger)
    assert_conforms(store, roles.Ledger)
    assert not isinstance(store.records, roles.Ledger)  # the check tells roles apart


# ---------------------------------------------------------------------------- sampling
def test_sampling_runs_keep_their_picks_in_rank_order(ledger, store):
    ids = _clip_ids(store)
    assert ledger.sampling_runs() == [] and ledger.last_sampling_run() is None
    first = ledger.add_sampling_run(SamplingRun(strategy="random", budget=2, seed=1, params={"k": [1, 2]}),
                                    [_pick(ids[3], 2), _pick(ids[0], 1)])
    second = ledger.add_sampling_run(SamplingRun(strategy="entropy", budget=1, seed=2), [_pick(ids[1], 1)])
    assert first.id is not None and second.id > first.id
    assert [r.id for r in ledger.sampling_runs()] == [first.id, second.id]
    assert ledger.last_sampling_run().id == second.id
    assert ledger.sampling_runs()[0].params == {"k": [1, 2]}
    picks = ledger.selections(first.id)
    assert [(p.rank, p.clip_id, p.run_id) for p in picks] == [(1, ids[0], first.id), (2, ids[3], first.id)]
    assert ledger.selections(999) == []


def test_a_run_whose_picks_cannot_be_stored_leaves_no_run(ledger, store):
    ids = _clip_ids(store)
    with pytest.raises(IntegrityError):  # the same clip picked twice in one run
        ledger.add_sampling_run(SamplingRun(strategy="t", budget=2, seed=0), [_pick(ids[0], 1), _pick(ids[0], 2)])
    with pytest.raises(IntegrityError):  # a clip the store does not hold
        ledger.add_sampling_run(SamplingRun(strategy="t", budget=1, seed=0), [_pick(10_000, 1)])
    assert ledger.sampling_runs() == []
    assert ledger.excluded_clip_ids() == set()


def test_exclusions_cover_selected_pushed_and_annotated_clips(ledger, store):
    ids = _clip_ids(store)
    ledger.add_sampling_run(SamplingRun(strategy="t", budget=1, seed=0),
                            [Selection(clip_id=ids[0], rank=1, score=0.5, reason="test")])
    ledger.add_tasks([Task(project_id=1, clip_id=ids[1], ls_task_id=10)])
    ledger.add_tasks([Task(project_id=1, clip_id=ids[1], ls_task_id=10)])  # idempotent
    ledger.upsert_annotation(Annotation(clip_id=ids[2], project_id=1, ls_task_id=11, ls_annotation_id=5,
                                        labels=["x"]))
    assert ledger.excluded_clip_ids() == set(ids[:3])
    assert ledger.tasks(1) == {ids[1]: 10}


def test_excluded_ids_come_sorted_and_unique_as_int64(ledger, store):
    ids = _clip_ids(store)
    empty = ledger.excluded_clip_ids_array()
    assert empty.dtype == np.int64 and empty.size == 0
    ledger.add_sampling_run(SamplingRun(strategy="t", budget=2, seed=0), [_pick(ids[4], 1), _pick(ids[2], 2)])
    ledger.add_tasks([Task(project_id=1, clip_id=ids[4], ls_task_id=10)])  # selected and pushed: once
    arr = ledger.excluded_clip_ids_array()
    assert arr.dtype == np.int64 and arr.tolist() == sorted({ids[2], ids[4]})


# ---------------------------------------------------------------------------- simulations
def test_simulation_runs_keep_their_curves(ledger):
    assert ledger.simulation_runs() == []
    curves = {"entropy": {"0": [[10, 0.25, 0.5], [20, 0.5, 0.75]]}}
    run = ledger.add_simulation_run(SimulationRun(source="workspace", params={"budgets": [10, 20]},
                                                  summary={"entropy": {"aulc": 0.4}}, curves=curves, seconds=1.5))
    later = ledger.add_simulation_run(SimulationRun(source="pool.npz"))
    stored = ledger.simulation_runs()
    assert [r.id for r in stored] == [run.id, later.id]
    assert (stored[0].curves, stored[0].summary, stored[0].seconds) == (curves, {"entropy": {"aulc": 0.4}}, 1.5)


# ---------------------------------------------------------------------------- label sets
def test_label_sets_are_validated(ledger):
    assert ledger.add_label_set("v1", ["A", "B"]).labels == ["A", "B"]
    assert ledger.add_label_set("v1", ["A", "B"]).name == "v1"  # same content: reused
    with pytest.raises(StoreError, match="other labels"):
        ledger.add_label_set("v1", ["A"])
    with pytest.raises(StoreError, match="twice"):
        ledger.add_label_set("v2", ["A", "A"])
    with pytest.raises(StoreError, match="non-empty"):
        ledger.add_label_set("v3", ["A", " "])
    assert ledger.label_set().name == "v1"


def test_label_sets_are_found_by_name_or_newest(ledger):
    assert ledger.label_set() is None
    v1 = ledger.add_label_set("v1", ["A", "B"])
    v2 = ledger.add_label_set("v2", ["A", "B", "C"])
    assert ledger.add_label_set("v1", ("A", "B")).id == v1.id  # any sequence of the same labels
    assert ledger.label_set().id == v2.id
    assert ledger.label_set("v1").labels == ["A", "B"]
    assert ledger.label_set("v9") is None
    with pytest.raises(StoreError, match="non-empty"):
        ledger.add_label_set("v4", [])


# ---------------------------------------------------------------------------- tasks and annotations
def test_tasks_are_kept_per_project_and_pushed_once(ledger, store):
    ids = _clip_ids(store)
    ledger.add_tasks([])
    ledger.add_tasks([Task(project_id=1, clip_id=ids[0], ls_task_id=10), Task(project_id=1, clip_id=ids[1],
                                                                               ls_task_id=11)])
    ledger.add_tasks([Task(project_id=2, clip_id=ids[0], ls_task_id=20)])
    ledger.add_tasks([Task(project_id=1, clip_id=ids[0], ls_task_id=99)])  # pushed already: the first one stays
    assert ledger.tasks(1) == {ids[0]: 10, ids[1]: 11}
    assert ledger.tasks(2) == {ids[0]: 20}
    assert ledger.tasks(3) == {}
    assert store.counts()["tasks"] == 3


def test_annotation_upsert_and_deletion(ledger, store):
    cid = _clip_ids(store, 2)[0]
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ann = dict(clip_id=cid, project_id=1, ls_task_id=7, annotator="a@x", created_at=t0, updated_at=t0)
    assert ledger.upsert_annotation(Annotation(ls_annotation_id=1, labels=["A"], **ann)) == "new"
    assert ledger.upsert_annotation(Annotation(ls_annotation_id=1, labels=["A"], **ann)) == "unchanged"
    assert ledger.upsert_annotation(Annotation(ls_annotation_id=1, labels=["B"], **ann)) == "updated"
    assert ledger.upsert_annotation(Annotation(ls_annotation_id=2, labels=["C"], **ann)) == "new"
    assert ledger.mark_annotations_deleted(1, 7, keep=[2]) == 1
    active = ledger.annotations()
    assert [(a.ls_annotation_id, a.labels) for a in active] == [(2, ["C"])]
    assert [a.labels for a in ledger.annotations(state="deleted")] == [["B"]]


def test_an_annotation_with_a_label_outside_the_set_is_kept_as_rejected(ledger, store):
    ids = _clip_ids(store, 2)
    ledger.add_label_set("v1", ["A", "B"])
    note = "label 'Z' is not in label set 'v1'"
    bad = dict(clip_id=ids[0], project_id=1, ls_task_id=7, ls_annotation_id=1, labels=["Z"])
    assert ledger.upsert_annotation(Annotation(state="rejected", note=note, **bad)) == "new"
    assert ledger.upsert_annotation(Annotation(state="rejected", note=note, **bad)) == "unchanged"
    assert ledger.annotations() == []  # never trained on
    rejected = ledger.annotations(state="rejected")
    assert [(a.labels, a.note) for a in rejected] == [(["Z"], note)]
    assert ids[0] in ledger.excluded_clip_ids()  # and never sampled again
    assert store.counts()["annotations"] == 0
    # the annotator fixes the label in Label Studio: the same annotation becomes active
    fixed = dict(bad, labels=["A"])
    assert ledger.upsert_annotation(Annotation(state="active", **fixed)) == "updated"
    assert [(a.labels, a.state, a.note) for a in ledger.annotations()] == [(["A"], "active", None)]
    assert [a.ls_annotation_id for a in ledger.annotations(state=None)] == [1]


def test_annotations_are_deleted_per_task_once(ledger, store):
    ids = _clip_ids(store, 2)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for ann_id, (task, clip) in enumerate([(7, ids[0]), (7, ids[0]), (8, ids[1])], start=1):
        ledger.upsert_annotation(Annotation(clip_id=clip, project_id=1, ls_task_id=task, ls_annotation_id=ann_id,
                                            labels=["A"], updated_at=t0))
    assert ledger.mark_annotations_deleted(1, 99, keep=[]) == 0  # a task with no annotations
    assert ledger.mark_annotations_deleted(2, 7, keep=[]) == 0  # another project's task 7
    assert ledger.mark_annotations_deleted(1, 7, keep=[2]) == 1
    assert ledger.mark_annotations_deleted(1, 7, keep=[2]) == 0  # already deleted
    deleted = ledger.annotations(state="deleted")
    assert [a.ls_annotation_id for a in deleted] == [1]
    assert deleted[0].updated_at > t0  # stamped when it was deleted (aware UTC, as every event time)
    assert sorted(a.ls_annotation_id for a in ledger.annotations()) == [2, 3]


def test_an_annotation_of_an_unknown_clip_is_refused(ledger, store):
    _clip_ids(store, 1)
    with pytest.raises(IntegrityError):
        ledger.upsert_annotation(Annotation(clip_id=10_000, project_id=1, ls_task_id=7, ls_annotation_id=1,
                                            labels=["A"]))
    assert ledger.annotations(state=None) == []


def test_watermark_round_trip(ledger):
    assert ledger.watermark(3) is None
    t = datetime(2026, 11, 25, 3, 4, 5, 123456, tzinfo=timezone.utc)
    ledger.set_watermark(3, t)
    assert ledger.watermark(3) == t


def test_watermarks_move_per_project(ledger):
    t = datetime(2026, 11, 25, 3, 4, 5, tzinfo=timezone.utc)
    ledger.set_watermark(1, t)
    ledger.set_watermark(2, t - timedelta(days=1))
    ledger.set_watermark(1, t + timedelta(hours=1))
    assert ledger.watermark(1) == t + timedelta(hours=1)
    assert ledger.watermark(2) == t - timedelta(days=1)
    assert ledger.watermark(4) is None
