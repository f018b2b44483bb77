"""The command line as a user runs it: the demo, errors a user can act on, --db-url."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from workbench.cli import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ls_env(served_workspace):
    return served_workspace.root


def test_demo_offline_runs_the_first_round_and_serves_the_app(ls_env, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_SAMPLES_MIRROR", "http://127.0.0.1:9")  # no network: generated audio
    port = _free_port()
    try:
        assert main(["demo", "--budget", "8", "--app-port", str(port), "--project", f"demo {ls_env.name}"]) == 0
        captured = capsys.readouterr()
        assert "generating field-like recordings" in captured.err
        assert "sampling run 1: 8 clip(s)" in captured.out
        assert "pushed to project" in captured.out and "8 new task(s)" in captured.out
        assert f"Workbench app: http://127.0.0.1:{port}" in captured.out
        assert "password:" in captured.out
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as resp:
            assert resp.status == 200
        # a second demo reuses everything: no new files, no duplicate tasks
        assert main(["demo", "--budget", "8", "--app-port", str(port), "--project", f"demo {ls_env.name}"]) == 0
        out = capsys.readouterr().out
        assert "ingested 0 new file(s), skipped 12 already stored" in out
        assert "sampling run 2: 8 clip(s)" in out and "8 new task(s)" in out
    finally:
        assert main(["stop"]) == 0
    assert "app stopped" in capsys.readouterr().out
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=3)


def test_push_to_a_server_that_is_down_names_the_url(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-real-token-123")
    assert main(["--workspace", str(tmp_path / "ws"), "push"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "127.0.0.1" in err and "Traceback" not in err
    assert "not-a-real-token-123" not in err


def test_wrong_token_is_reported_without_the_token(labelstudio, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABEL_STUDIO_URL", labelstudio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "wrong-token-4567")
    assert main(["--workspace", str(tmp_path / "ws"), "pull"]) == 2
    err = capsys.readouterr().err
    assert "401" in err or "token" in err.lower()
    assert "wrong-token-4567" not in err


def test_sampling_an_empty_workspace_says_what_to_do(tmp_path, capsys):
    assert main(["--workspace", str(tmp_path / "ws"), "sample"]) == 2
    assert "ingest" in capsys.readouterr().err


def test_db_url_points_the_store_elsewhere(tmp_path, capsys):
    db = tmp_path / "elsewhere.db"
    assert main(["--workspace", str(tmp_path / "ws"), "--db-url", f"sqlite:///{db}", "status"]) == 0
    assert db.exists() and not (tmp_path / "ws" / "workbench.db").exists()
    assert "clips              0" in capsys.readouterr().out


def test_ingest_reports_bad_files_by_name(tmp_path, capsys):
    bad = tmp_path / "audio" / "broken.wav"
    bad.parent.mkdir()
    bad.write_text("not audio at all")
    assert main(["--workspace", str(tmp_path / "ws"), "ingest", str(bad.parent)]) == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and "broken.wav" in out


def test_label_sets_are_shown_and_edited(tmp_path, capsys):
    from store import Recording

    from workbench.config import Workspace

    ws = Workspace.resolve(tmp_path / "ws")
    store = ws.open_store()
    labels = ["Strix aluco_Tawny Owl", "Turdus merula_Eurasian Blackbird"]
    mv = store.ensure_model_version("m", "embedding", "m", 2, labels)
    rec = store.add_recording(Recording(path="/x.wav", content_hash="h"))
    import numpy as np

    store.add_clip_batch(rec.id, [(0, 3), (3, 6), (6, 9)], mv, np.array([[0.9, 0.1], [0.8, 0.1], [0.1, 0.2]]),
                         np.zeros((3, 2)))
    assert main(["--workspace", str(ws.root), "labels"]) == 0
    out = capsys.readouterr().out
    assert "Strix aluco_Tawny Owl" in out and "Turdus merula" not in out and "Noise" in out
    assert main(["--workspace", str(ws.root), "labels", "--add", "Turdus merula_Eurasian Blackbird",
                 "--remove", "Other", "--name", "v2"]) == 0
    assert store.label_set().name == "v2"
    assert store.label_set().labels == ["Strix aluco_Tawny Owl", "Turdus merula_Eurasian Blackbird", "Noise"]
    assert main(["--workspace", str(ws.root), "labels", "--remove", "Not a label"]) == 2
    assert "Not a label" in capsys.readouterr().err
    for _ in range(2):  # adding what the set holds changes nothing, however often
        assert main(["--workspace", str(ws.root), "labels", "--add", "Strix aluco_Tawny Owl"]) == 0
        assert "Strix aluco_Tawny Owl already in label set 'v2': nothing changed" in capsys.readouterr().out
    assert store.label_set().name == "v2"  # the newest set is still v2: no copy made


def test_embedding_dtype_comes_from_the_environment(tmp_path, monkeypatch, capsys):
    from workbench.config import Workspace

    monkeypatch.delenv("WORKBENCH_EMBEDDING_DTYPE", raising=False)
    assert Workspace.resolve(tmp_path / "a").open_store().embedding_dtype == "float16"  # the default: 2 KB/window
    monkeypatch.setenv("WORKBENCH_EMBEDDING_DTYPE", "float32")
    assert Workspace.resolve(tmp_path / "c").open_store().embedding_dtype == "float32"
    monkeypatch.setenv("WORKBENCH_EMBEDDING_DTYPE", "float8")
    assert main(["--workspace", str(tmp_path / "b"), "status"]) == 2
    assert "float8" in capsys.readouterr().err


def test_an_mp3_shorter_than_its_header_goes_through_ingest_sample_and_push(ls_env, tmp_path, capsys):
    """Issue 10: this real mp3's header says 10.30 s, it decodes to 10.00 s; push used to stop at its last clip."""
    import shutil

    from tests.conftest import shared_path

    folder = tmp_path / "audio"
    folder.mkdir()
    shutil.copy(shared_path("audio", "annotated", "opensoundscape_GWWA_XC135601.mp3"), folder)
    shutil.copy(shared_path("audio", "recordings", "birdnetgo_lesgol.wav"), folder)
    assert main(["ingest", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "ingested 2 new file(s)" in out and "decodes to 10.00 s" in out
    assert main(["sample", "--strategy", "random", "--budget", "500", "--seed", "3"]) == 0
    picked = int(capsys.readouterr().out.split(": ")[1].split()[0])
    assert main(["push", "--project", f"mp3 {ls_env.name}"]) == 0
    out = capsys.readouterr().out
    assert f"{picked} new task(s), 0 already there" in out and "not pushed" not in out


def test_after_the_advised_re_ingest_push_leaves_the_old_version_out_without_failing(ls_env, tmp_path, capsys,
                                                                                    caplog):
    """A changed file is named once and push exits 1; once it is ingested again its old clips are not "changed"
    any more (nothing is left to fix): push says they belong to a replaced version, and exits 0."""
    import logging
    import shutil

    from tests.conftest import shared_path

    folder = tmp_path / "audio"
    folder.mkdir()
    wav = folder / "lesgol.wav"
    shutil.copy(shared_path("audio", "recordings", "birdnetgo_lesgol.wav"), wav)
    assert main(["ingest", str(folder)]) == 0
    assert main(["sample", "--strategy", "random", "--budget", "1", "--seed", "3"]) == 0
    project = f"replaced {ls_env.name}"
    wav.unlink()  # the recorder's software rewrote the file after sampling
    shutil.copy(shared_path("audio", "recordings", "birdnetanalyzer_tfjs_sample.wav"), wav)
    capsys.readouterr()
    caplog.clear()
    assert main(["push", "--project", project]) == 1
    out = capsys.readouterr().out
    assert out.count("changed since it was ingested") == 1 and "ingest it again" in out
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "not pushed" in r.getMessage()]
    assert main(["ingest", str(wav)]) == 0
    assert "new version stored" in capsys.readouterr().out
    for _ in range(2):  # said on every push of that run, never as a failure
        assert main(["push", "--project", project]) == 0
        out = capsys.readouterr().out
        assert "0 new task(s), 0 already there, 1 of a replaced recording" in out
        assert "changed since" not in out and "not pushed" not in out
        assert ("(lesgol.wav) belongs to a replaced version of its recording (it left the pool): sample again to "
                "label the new version") in out


def test_pull_without_a_project_reads_the_projects_pushed_to_and_creates_none(ls_env, tmp_path, capsys):
    """After `push --project X`, a bare `pull` used to make an empty "Biodiversity workbench" and pull nothing."""
    from annotation.client import LabelStudioClient
    from annotation.settings import DEFAULT_PROJECT
    from tests.annotation.conftest import generate
    from workbench.config import Workspace, labelstudio_settings

    ws = Workspace.resolve(ls_env)
    store = ws.open_store()
    sdk = LabelStudioClient(labelstudio_settings(ws)).sdk
    defaults = lambda: [p.id for p in sdk.projects.list() if p.title == DEFAULT_PROJECT]  # noqa: E731
    before = defaults()
    assert main(["pull"]) == 0
    assert "nothing to pull: this workspace has pushed no task to Label Studio yet" in capsys.readouterr().out
    titles = [f"birds {ls_env.name}", f"frogs {ls_env.name}"]
    for title in titles:  # one batch to each project
        generate(store, tmp_path, n_clips=2)
        assert main(["push", "--project", title]) == 0
    ids = {p.title: p.id for p in sdk.projects.list() if p.title in titles}
    for pid in ids.values():
        task = next(iter(sdk.tasks.list(project=pid)))
        sdk.annotations.create(id=task.id, result=[{"from_name": "species", "to_name": "audio", "type": "choices",
                                                    "value": {"choices": ["Noise"]}}])
    capsys.readouterr()
    assert main(["pull"]) == 0
    out = capsys.readouterr().out
    for title in titles:
        assert f"pulled from project {ids[title]}: 1 new, 0 updated (1 usable" in out
    assert "nothing new" not in out and defaults() == before
    assert main(["pull", "--project", "no such project"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Label Studio project titled 'no such project'" in err
    assert f"'{titles[0]}' (project {ids[titles[0]]}, 2 task(s))" in err and "without --project pulls them" in err
    assert defaults() == before and not [p for p in sdk.projects.list() if p.title == "no such project"]


def test_agreement_lists_to_adjudicate_only_the_clips_training_leaves_out(tmp_path, capsys):
    """A clip whose two answers include one marked ground truth in Label Studio is settled: finetune uses it."""
    from store import Annotation
    from tests.annotation.conftest import SPECIES, generate
    from workbench.config import Workspace

    ws = Workspace.resolve(tmp_path / "ws")
    store = ws.open_store()
    split, judged = generate(store, tmp_path, n_clips=2).clip_ids
    for n, (clip, who, label, truth) in enumerate([(split, "ann", SPECIES[0], False), (split, "bob", SPECIES[1], False),
                                                   (judged, "ann", SPECIES[0], False),
                                                   (judged, "bob", SPECIES[1], True)]):
        store.upsert_annotation(Annotation(clip_id=clip, project_id=1, ls_task_id=10 + clip, ls_annotation_id=100 + n,
                                           labels=[label], annotator=who, ground_truth=truth))
    assert main(["--workspace", str(ws.root), "agreement"]) == 0
    out = capsys.readouterr().out
    assert "1 clip(s) to adjudicate" in out and f"clip {split} (task" in out and f"clip {judged} (task" not in out
    assert "1 disagreement(s) settled, training takes one answer: 1 by ground truth" in out
    from finetune.labelled import labelled_clips

    assert labelled_clips(store).clip_ids.tolist() == [judged]  # what finetune leaves out: the split clip only


def test_overlap_asked_of_a_run_already_pushed_says_it_applies_to_new_tasks(ls_env, tmp_path, capsys):
    from annotation.client import LabelStudioClient
    from tests.annotation.conftest import generate
    from workbench.config import Workspace, labelstudio_settings

    ws = Workspace.resolve(ls_env)
    gen = generate(ws.open_store(), tmp_path, n_clips=4)
    project = f"overlap {ls_env.name}"
    assert main(["push", "--project", project, "--run", str(gen.run_id)]) == 0
    assert "applies to new tasks only" not in capsys.readouterr().out
    assert main(["push", "--project", project, "--run", str(gen.run_id), "--overlap", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "0 new task(s), 4 already there" in out
    assert (f"--overlap applies to new tasks only: 4 task(s) of run {gen.run_id} already exist and keep the number "
            f"of experts they asked for") in out
    sdk = LabelStudioClient(labelstudio_settings(ws)).sdk
    [pid] = [p.id for p in sdk.projects.list() if p.title == project]
    assert {t.overlap for t in sdk.tasks.list(project=pid)} == {1}  # as said: nothing changed


def test_unknown_runs_and_model_versions_point_to_a_listing_that_lists_them(tmp_path, capsys):
    from tests.annotation.conftest import MODEL, generate
    from workbench.config import Workspace

    ws = Workspace.resolve(tmp_path / "ws")
    store = ws.open_store()
    runs = [generate(store, tmp_path, n_clips=2).run_id for _ in range(12)]
    assert main(["--workspace", str(ws.root), "push", "--run", "42"]) == 2
    err = capsys.readouterr().err
    assert f"no sampling run 42 in this store (it holds runs {runs[0]} to {runs[-1]}); `workbench status`" in err
    assert main(["--workspace", str(ws.root), "validate", "--model-version", "nope"]) == 2
    assert "`workbench status` lists them" in capsys.readouterr().err
    assert main(["--workspace", str(ws.root), "status"]) == 0
    out = capsys.readouterr().out
    assert "sampling runs (newest first" in out and f"  run {runs[-1]:<4} " in out and "test, 2 clip(s)" in out
    assert f"... and 2 older (run {runs[0]} to run {runs[1]})" in out
    assert f"model versions (`--model-version NAME`):\n  {MODEL} (embedding, current)" in out


def test_a_command_closes_the_stores_it_opened(tmp_path, monkeypatch, capsys):
    """Run in-process (tests, scripts, a notebook), a command gives its database connections back when it ends,
    errors included."""
    from workbench.config import Workspace

    opened = []
    real = Workspace.open_store

    def recording(self, *a, **kw):
        opened.append(real(self, *a, **kw))
        return opened[-1]

    monkeypatch.setattr(Workspace, "open_store", recording)
    for argv in (["status"], ["sample", "--budget", "3"]):  # the second fails: nothing to sample
        main(["--workspace", str(tmp_path / "ws"), *argv])
    assert len(opened) == 2 and all(s.engine.pool.checkedin() == 0 for s in opened)
