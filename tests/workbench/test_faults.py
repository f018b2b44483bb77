"""The loop under a user's year: new audio after a fine-tune, two commands at once, bad settings.

Each test here failed on the workbench of release 0.1.0 (issue 7).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from store import Annotation, Recording
from tests.annotation.conftest import MODEL, SPECIES, generate, write_tone
from tests.conftest import REPO, shared_path
from workbench.cli import main


def _label(store, clip_ids, labels) -> None:
    for n, (clip, label) in enumerate(zip(clip_ids, labels)):
        store.upsert_annotation(Annotation(clip_id=int(clip), project_id=1, ls_task_id=1000 + n,
                                           ls_annotation_id=5000 + n + 100 * int(clip), labels=[label]))


def _more_audio(store, tmp_path, n: int, seed: int) -> list[int]:
    """A new recording scored by the embedding model, as an ingest after the fine-tune would add it."""
    audio = write_tone(tmp_path / f"new-{seed}.wav", 3.0 * n, seed=seed)
    rec = store.add_recording(Recording(path=str(audio), content_hash=uuid.uuid4().hex, status="done"))
    mv = store.model_version(MODEL)
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(len(SPECIES)), n).astype(np.float32)
    return store.add_clip_batch(rec.id, [(3.0 * i, 3.0 * i + 3) for i in range(n)], mv, probs,
                                rng.standard_normal((n, 8)).astype(np.float32)).tolist()


def test_audio_ingested_after_a_finetune_is_scored_and_sampled(workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    store = workspace.open_store()
    gen = generate(store, tmp_path, n_clips=12)
    _label(store, gen.clip_ids, [SPECIES[i % 2] for i in range(12)])
    assert main(["finetune"]) == 0
    head = store.current_model_version()
    assert head.kind == "classifier"
    new = _more_audio(store, tmp_path, 5, seed=3)
    assert store.unscored_clip_ids(head).tolist() == sorted(new)
    capsys.readouterr()
    assert main(["status"]) == 0
    assert "unscored by it     5" in capsys.readouterr().out
    # every clip of the first recording is selected or labelled: only the new ones are left to pick
    assert main(["sample", "--strategy", "random", "--budget", "5", "--seed", "1"]) == 0
    assert "5 clip(s) picked" in capsys.readouterr().out
    picked = {s.clip_id for s in store.selections(store.last_sampling_run().id)}
    assert picked == set(new)
    assert store.unscored_clip_ids(head).size == 0 and set(new) <= set(store.pool(head).clip_id.tolist())
    store.close()


_TWO_INGESTS = """
import sys
from workbench.cli import main
sys.exit(main(["--workspace", sys.argv[1]] + (["--db-url", sys.argv[3]] if len(sys.argv) > 3 else [])
              + ["ingest", sys.argv[2]]))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_ingests_of_one_folder_at_once_store_every_window_once(backend, tmp_path, request):
    folder = shared_path("audio", "labeled_clips", "birdnet_testdata_s2")
    args = [str(tmp_path / "ws"), str(folder)]
    if backend == "postgresql":
        from tests.conftest import new_postgres_database

        args.append(new_postgres_database(request.getfixturevalue("postgres_server")))
    procs = [subprocess.Popen([sys.executable, "-c", _TWO_INGESTS, *args], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    assert not any("Traceback" in err for _, err in outs)
    stdout = "".join(o for o, _ in outs)
    assert "ingested 12 new file(s)" in stdout and "skipped 12 already stored" in stdout
    from workbench.config import Workspace

    store = Workspace.resolve(args[0], args[2] if len(args) > 2 else None).open_store()
    try:
        infos = store.clips(store.pool().clip_id)
        spans = [(c.recording_id, c.start_s) for c in infos]
        assert len(spans) == len(set(spans)) == 12 * 4 and len(store.recordings()) == 12
        assert len(store.embeddings("birdnet-v2.4")) == 48
    finally:
        store.close()


_SAMPLE = """
import sys
from workbench.cli import main
sys.exit(main(["--workspace", sys.argv[1], "sample", "--strategy", "random", "--budget", "6", "--seed", sys.argv[2]]))
"""


def test_two_samplings_at_once_never_pick_the_same_clip(workspace, tmp_path):
    store = workspace.open_store()
    generate(store, tmp_path, n_clips=30, pick=1)
    store.close()
    procs = [subprocess.Popen([sys.executable, "-c", _SAMPLE, str(workspace.root), str(seed)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    store = workspace.open_store()
    runs = store.sampling_runs()[1:]
    picks = [s.clip_id for r in runs for s in store.selections(r.id)]
    assert len(runs) == 2 and len(picks) == len(set(picks)) == 12  # same seed, yet disjoint batches
    store.close()


def test_commands_on_a_brand_new_workspace_at_once(tmp_path):
    code = "import sys\nfrom workbench.cli import main\nsys.exit(main(['--workspace', sys.argv[1], 'status']))"
    for attempt in range(3):
        ws = tmp_path / f"ws{attempt}"
        procs = [subprocess.Popen([sys.executable, "-c", code, str(ws)], cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, [o[1][-1500:] for o in outs]


# ---------------------------------------------------------------------------- one-line errors
def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_finetune_without_labels_or_with_one_class_says_what_to_do(workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    assert "ingest some audio first" in _error(capsys, ["finetune"])
    store = workspace.open_store()
    gen = generate(store, tmp_path, n_clips=4)
    assert "no active annotations" in _error(capsys, ["finetune"])
    _label(store, gen.clip_ids, [SPECIES[0]] * 4)
    assert "at least two classes" in _error(capsys, ["finetune"])
    store.close()


def test_bad_database_urls_and_workspaces_are_one_line_errors(tmp_path, capsys):
    ws = ["--workspace", str(tmp_path / "ws")]
    err = _error(capsys, ws + ["--db-url", "postgresql+psycopg://lab:s3cret@127.0.0.1:1/wb", "status"])
    assert "cannot open the database" in err and "s3cret" not in err and "lab:***@" in err
    assert "cannot be used" in _error(capsys, ws + ["--db-url", "not a url", "status"])
    err = _error(capsys, ws + ["--db-url", "mysql://lab:s3cret@db/wb", "status"])
    assert "No module named" in err and "s3cret" not in err
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert "is a file, not a folder" in _error(capsys, ["--workspace", str(a_file), "status"])


def test_a_budget_beyond_any_pool_is_refused_in_one_line(workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    store = workspace.open_store()
    generate(store, tmp_path, n_clips=4, pick=1)
    store.close()
    assert "beyond any pool" in _error(capsys, ["sample", "--budget", "99999999999999999999999"])


def test_status_masks_the_database_password(postgres_server, tmp_path, capsys):
    from tests.conftest import new_postgres_database

    url = new_postgres_database(postgres_server).replace("workbench@", "workbench:hunter2@")
    assert main(["--workspace", str(tmp_path / "ws"), "--db-url", url, "status"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "workbench:***@" in out


def test_a_team_on_postgresql_ingests_samples_and_reads_at_once(postgres_server, tmp_path):
    """Several people and jobs on one PostgreSQL store with vectors on a folder they all reach."""
    from tests.conftest import new_postgres_database

    url = new_postgres_database(postgres_server)
    shared_vectors = tmp_path / "team"
    folder = shared_path("audio", "labeled_clips")
    first, rest = folder / "birdnet_testdata_s1", folder / "birdnet_testdata_s2"
    base = [sys.executable, "-m", "workbench.cli", "--workspace", str(shared_vectors), "--db-url", url]
    assert subprocess.run(base + ["ingest", str(first)], cwd=REPO, capture_output=True).returncode == 0
    jobs = [subprocess.Popen(base + args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for args in (["ingest", str(rest)], ["sample", "--strategy", "random", "--budget", "5", "--seed", "1"],
                         ["sample", "--budget", "5", "--seed", "2"], ["status"])]
    outs = [j.communicate(timeout=600) for j in jobs]
    assert [j.returncode for j in jobs] == [0] * 4, [o[1][-1500:] for o in outs]
    assert not any("Traceback" in err for _, err in outs)
    from workbench.config import Workspace

    store = Workspace.resolve(shared_vectors, url).open_store()
    try:
        picks = [s.clip_id for r in store.sampling_runs() for s in store.selections(r.id)]
        assert len(picks) == len(set(picks)) == 10  # two samplings at once, no clip twice
        spans = [(c.recording_id, c.start_s) for c in store.clips(store.pool().clip_id)]
        assert len(spans) == len(set(spans)) == 24 * 4 and len(store.embeddings("birdnet-v2.4")) == 96
    finally:
        store.close()


def test_a_vectors_file_cut_short_is_one_line_naming_it_for_reading_and_writing_commands(workspace, tmp_path,
                                                                                         monkeypatch, capsys):
    from tests.test_app import build

    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    build(workspace, tmp_path)
    scores = next((workspace.root / "vectors").glob("scores__*.float32"))
    with open(scores, "r+b") as fh:  # a workspace copied by a job that was killed half-way
        fh.truncate(scores.stat().st_size // 3)
    for argv in (["status"], ["sample", "--budget", "3"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: matrix 'scores:birdnet-test': {scores} holds ") and "\n" not in err, err
        assert "restore the workspace's vectors folder" in err
    store = workspace.open_store()
    assert not store.sampling_runs()  # nothing stored by the refused sample
    store.close()
