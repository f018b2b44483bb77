"""Schema migrations: a workspace made by the previous release opens, upgrades in place and keeps its data.

The previous release's schema is the DDL its ``SQLModel.metadata.create_all`` emitted
(``fixtures/schema-0.1.0.<dialect>.sql``); its rows are written here with plain SQL as that release
wrote them, and its vector matrices in the unchanged on-disk format.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from store import Store, StoreError, matrices, migrate
from tests.conftest import REPO

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = ["Turdus merula_Eurasian Blackbird", "Parus major_Great Tit", "Noise"]


def _legacy_workspace(url: str, vectors: Path) -> None:
    """A workspace as release 0.1.0 left it: its tables, one recording, three scored clips, a run, a label."""
    engine = create_engine(url)
    ddl = (FIXTURES / f"schema-0.1.0.{engine.dialect.name}.sql").read_text()
    ddl = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
    statements = [s.strip() for s in ddl.split(";") if s.strip()]
    now = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        for stmt in statements:
            conn.execute(text(stmt))
        conn.execute(text("INSERT INTO recording (id, path, content_hash, modality, site, device, start_time, "
                          "sample_rate, channels, duration_s, status, created_at) VALUES (1, '/data/a.wav', 'h1', "
                          "'audio', 'pond', 'AM1', :st, 48000, 1, 9.0, 'done', :now)"),
                     {"st": datetime(2025, 5, 1, 5, 0), "now": now})
        conn.execute(text("INSERT INTO modelversion (id, name, kind, embedding_space, dim, labels, params, metrics, "
                          "ready, created_at) VALUES (1, 'birdnet', 'embedding', 'birdnet', 4, :labels, '{}', '{}', "
                          ":ready, :now)"), {"labels": '["' + '", "'.join(LABELS) + '"]', "ready": True, "now": now})
        for i in range(3):
            conn.execute(text("INSERT INTO clip (id, recording_id, start_s, end_s) VALUES (:i, 1, :s, :e)"),
                         {"i": i + 1, "s": 3.0 * i, "e": 3.0 * i + 3})
            conn.execute(text("INSERT INTO score (clip_id, model_version_id, max_entropy, mean_entropy, top1, margin, "
                              "top_label) VALUES (:i, 1, 0.5, 0.2, 0.8, 0.5, :lab)"), {"i": i + 1, "lab": LABELS[i]})
        conn.execute(text("INSERT INTO samplingrun (id, strategy, params, seed, budget, model_version_id, created_at) "
                          "VALUES (1, 'random', '{}', 0, 1, 1, :now)"), {"now": now})
        conn.execute(text("INSERT INTO selection (id, run_id, clip_id, rank, score, reason) "
                          "VALUES (1, 1, 2, 1, 0.5, 'random pick')"))
        conn.execute(text("INSERT INTO annotation (id, clip_id, project_id, ls_task_id, ls_annotation_id, labels, "
                          "state) VALUES (1, 2, 7, 70, 700, '[\"Parus major_Great Tit\"]', 'active')"))
        ids = np.arange(1, 4, dtype=np.int64)
        rng = np.random.default_rng(0)
        for name, dtype, rows in (("clips", "float64", np.column_stack([np.ones(3), 3.0 * np.arange(3)])),
                                  ("scores:birdnet", "float64",
                                   np.column_stack([np.full(3, .5), np.full(3, .2), np.full(3, .8), np.full(3, .5),
                                                    np.arange(3.0)])),
                                  ("embeddings:birdnet", "float32", rng.random((3, 4))),
                                  ("probabilities:birdnet", "float16", rng.random((3, 3)))):
            n = matrices.write_rows(vectors, name, dtype, rows.shape[1], 0, ids, rows)
            conn.execute(text("INSERT INTO matrix (name, dim, dtype, rows, model_version_id) VALUES (:n, :d, :t, :r, "
                              ":m)"), {"n": name, "d": rows.shape[1], "t": dtype, "r": n,
                                       "m": None if name == "clips" else 1})
        if engine.dialect.name == "postgresql":  # explicit ids above: move the serial sequences past them
            for table in ("recording", "modelversion", "clip", "samplingrun", "selection", "annotation"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    engine.dispose()


def _schema_diff(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)


def test_a_new_database_is_migrated_to_exactly_the_models_schema(db_url, workspace):
    store = Store(db_url, workspace.root / "vectors")
    try:
        assert migrate.current(store.engine) == migrate.head()
        # a change to store/schema.py without a migration shows up here
        assert _schema_diff(store.engine) == []
    finally:
        store.close()


def test_a_workspace_of_the_previous_release_opens_and_upgrades_in_place(db_url, workspace):
    vectors = workspace.root / "vectors"
    _legacy_workspace(db_url, vectors)
    assert migrate.current(create_engine(db_url)) is None  # 0.1.0 had no alembic_version table

    store = Store(db_url, vectors)
    try:
        assert migrate.current(store.engine) == migrate.head()
        assert _schema_diff(store.engine) == []
        [rec] = store.recordings()
        assert (rec.path, rec.site, rec.status, rec.duration_s) == ("/data/a.wav", "pond", "done", 9.0)
        assert rec.frames is None and rec.file_size is None and rec.replaced_by is None
        assert store.model_version("birdnet").output_type == "sigmoid"  # BirdNET: what 0.1.0 only knew
        assert store.simulation_runs() == []
        pool = store.pool()
        assert pool.clip_id.tolist() == [1, 2, 3] and pool.top_label.tolist() == LABELS
        assert store.excluded_clip_ids() == {2}
        [ann] = store.annotations()
        assert ann.labels == ["Parus major_Great Tit"]
        np.testing.assert_array_equal(store.embeddings("birdnet").ids, [1, 2, 3])
        # and the upgraded store takes new data
        mv = store.model_version("birdnet")
        new = store.add_clip_batch(rec.id, [(9.0, 12.0)], mv, np.full((1, 3), 0.3), np.zeros((1, 4)))
        assert len(store.pool()) == 4 and new.tolist() == [4]
    finally:
        store.close()
    again = Store(db_url, vectors)  # reopening finds nothing to do
    try:
        assert len(again.pool()) == 4
    finally:
        again.close()


def test_a_store_written_by_a_newer_release_is_refused_untouched(db_url, workspace):
    Store(db_url, workspace.root / "vectors").close()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="revision '9999'.*newer release; upgrade the workbench"):
        Store(db_url, workspace.root / "vectors")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "9999"
    engine.dispose()


_OPEN_AND_WRITE = textwrap.dedent("""
    import sys
    import numpy as np
    from store import Recording, Store
    st = Store(sys.argv[1], sys.argv[2])
    mv = st.ensure_model_version("m", "embedding", "m", 2, ["a", "b"])
    rec = st.add_recording(Recording(path=sys.argv[3], content_hash=sys.argv[3]))
    st.add_clip_batch(rec.id, [(0.0, 3.0)], mv, np.full((1, 2), 0.5), np.zeros((1, 2)))
    st.close()
""")


def test_processes_opening_a_brand_new_workspace_at_once_all_succeed(db_url, workspace):
    """Before migrations ran under a lock, about half of such starts died with 'table ... already exists'."""
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AND_WRITE, db_url, str(workspace.root / "vectors"),
                               f"/data/{i}.wav"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(4)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    store = Store(db_url, workspace.root / "vectors")
    try:
        assert len(store.recordings()) == 4 and len(store.pool()) == 4
        assert inspect(store.engine).has_table("alembic_version")
    finally:
        store.close()


def test_clip_ids_go_past_32_bits(db_url, workspace):
    """A billion windows a year: clip ids past 2,147,483,647 are numbered on, stored with their outputs and
    picks, and found again (PostgreSQL's INTEGER and its id sequence would stop there)."""
    from store import Recording
    from store.schema import SamplingRun, Selection

    store = Store(db_url, workspace.root / "vectors")
    try:
        rec = store.add_recording(Recording(path="/data/year2.wav", content_hash="y2", status="done"))
        mv = store.ensure_model_version("birdnet", "embedding", "birdnet", 4, LABELS)
        big = 2**31 + 10
        with store.engine.begin() as conn:
            if store.engine.dialect.name == "postgresql":
                conn.execute(text("SELECT setval(pg_get_serial_sequence('clip', 'id'), :v)"), {"v": big})
            else:  # SQLite numbers a rowid on from the largest one stored
                conn.execute(text("INSERT INTO clip (id, recording_id, start_s, end_s) VALUES (:v, :r, 99, 102)"),
                             {"v": big, "r": rec.id})
        embs = np.arange(12, dtype=np.float32).reshape(3, 4)
        ids = store.add_clip_batch(rec.id, [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0)], mv, np.full((3, 3), 0.3), embs)
        assert ids.tolist() == [big + 1, big + 2, big + 3]
        assert set(ids.tolist()) <= set(store.pool(mv).clip_id.tolist())
        np.testing.assert_array_equal(store.embeddings("birdnet").take(ids[::-1]), embs[::-1])
        store.add_sampling_run(SamplingRun(strategy="random", budget=1, model_version_id=mv.id),
                               [Selection(clip_id=int(ids[1]), rank=1, score=0.5, reason="random pick")])
        assert store.excluded_clip_ids() == {big + 2}
        assert [(c.clip_id, c.start_s) for c in store.clips([big + 3])] == [(big + 3, 6.0)]
    finally:
        store.close()
