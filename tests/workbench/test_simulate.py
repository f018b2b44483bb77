"""`workbench simulate` as a lead runs it: a pool file or the workspace's own labels, files out, a stored run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.lab.conftest import rare_clusters
from workbench.cli import main


def test_simulate_a_pool_file_writes_json_csv_png_and_stores_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "ws"))
    x, labels, strata = rare_clusters()
    np.savez(tmp_path / "pool.npz", embeddings=x, labels=labels, strata=strata)
    out = tmp_path / "results" / "lab.json"
    assert main(["simulate", "--pool", str(tmp_path / "pool.npz"), "--strategies", "default,kcenter", "--seeds", "2",
                 "--budgets", "5:25:10", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "[simulate]" in captured.err  # progress while it runs
    table = captured.out
    assert "random" in table and "kcenter" in table and "default" in table and "labels to random final" in table
    data = json.loads(out.read_text())
    assert set(data["summary"]) == {"random", "default", "kcenter"}
    assert set(data["curves"]["kcenter"]) == {"0", "1"} and data["curves"]["kcenter"]["0"][-1][0] == 25
    assert out.with_suffix(".csv").read_text().startswith("strategy,seed,labels,macro_recall")
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    from workbench.config import Workspace

    store = Workspace.resolve(tmp_path / "ws").open_store()
    [run] = store.simulation_runs()
    assert run.summary == data["summary"] and run.source.endswith("pool.npz")
    store.close()


def test_simulate_the_workspaces_own_labels(workspace, tmp_path, monkeypatch, capsys):
    from store import Annotation
    from tests.annotation.conftest import SPECIES, generate

    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    store = workspace.open_store()
    gen = generate(store, tmp_path, n_clips=40)
    for n, clip in enumerate(gen.clip_ids):
        store.upsert_annotation(Annotation(clip_id=clip, project_id=1, ls_task_id=n, ls_annotation_id=n,
                                           labels=[SPECIES[n % 3]]))
    assert main(["simulate", "--strategies", "uncertainty", "--seeds", "1", "--budgets", "6:18:6"]) == 0
    out = capsys.readouterr().out
    assert "simulation 1 stored" in out and (workspace.root / "simulations" / "simulation-1.json").exists()
    assert store.simulation_runs()[0].source == "workspace"
    store.close()


def test_bad_pool_files_and_budgets_are_one_line_errors(tmp_path, capsys):
    ws = ["--workspace", str(tmp_path / "ws")]
    np.savez(tmp_path / "bad.npz", embeddings=np.zeros((5, 3)), labels=np.array(["a"] * 5))
    assert main(ws + ["simulate", "--pool", str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.npz" in err and "1 class" in err and "Traceback" not in err
    assert main(ws + ["simulate", "--pool", str(tmp_path / "bad.npz"), "--budgets", "20"]) == 2
    assert "START:STOP:STEP" in capsys.readouterr().err
    assert main(ws + ["simulate"]) == 2
    assert "no active annotations" in capsys.readouterr().err


def test_an_empty_pool_file_and_a_text_file_named_npz_are_one_line_each(tmp_path, monkeypatch, capsys):
    """Issue 18: a 0-byte pool ended in numpy's EOFError traceback; a text file was called "pickled data"."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "ws"))
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "notes.npz").write_text("embeddings,labels\n0.1,a\n")
    for name, says in (("empty.npz", "is empty (0 bytes)"), ("notes.npz", "is not a readable .npz archive")):
        assert main(["simulate", "--pool", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {tmp_path / name} {says}") and "\n" not in err
        assert "pickled" not in err and "Traceback" not in err


def test_simulate_compares_the_default_with_scikit_activeml_on_a_pool_file(tmp_path, monkeypatch, capsys):
    pytest.importorskip("skactiveml", reason="needs scikit-activeml (pip install -e '.[lab]')")
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "ws"))
    x, labels, strata = rare_clusters()
    np.savez(tmp_path / "pool.npz", embeddings=x, labels=labels, strata=strata)
    assert main(["simulate", "--pool", str(tmp_path / "pool.npz"), "--strategies",
                 "default,skactiveml:TypiClust,skactiveml:Badge", "--seeds", "1", "--budgets", "10:30:10"]) == 0
    table = capsys.readouterr().out
    assert "skactiveml:TypiClust" in table and "skactiveml:Badge" in table and "default" in table
    assert main(["simulate", "--pool", str(tmp_path / "pool.npz"), "--strategies", "skactiveml:Nope"]) == 2
    assert "unknown scikit-activeml strategy 'Nope'" in capsys.readouterr().err
