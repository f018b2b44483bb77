"""`workbench sample --strategy ...`, `--replay` and `workbench search` on a generated store (no Label Studio)."""

from __future__ import annotations

import dataclasses

import pytest

from sampler import STRATEGIES, Blend, Stratified
from sampler.parameters import (NESTABLE, PARAMETERS, STRATEGY_TABLES, Parameter, check_nestable,
                                offered_strategies)
from tests.sampler.synthetic import build_pool
from workbench import cli
from workbench.cli import main


@pytest.fixture
def ws(workspace, monkeypatch):
    monkeypatch.delenv("WORKBENCH_DB_URL", raising=False)
    store = workspace.open_store()
    syn = build_pool(store, per_cluster=12)
    store.close()
    return workspace, syn


def _run(ws, *argv):
    workspace, _ = ws
    return main(["--workspace", str(workspace.root), *argv])


def _last_run(ws):
    store = ws[0].open_store()
    try:
        run = store.last_sampling_run()
        return run, store.selections(run.id) if run else []
    finally:
        store.close()


def test_each_strategy_table_names_what_its_class_takes():
    assert set(STRATEGY_TABLES) == set(STRATEGIES)
    for name, table in STRATEGY_TABLES.items():
        assert table.constructor_parameters() == set(STRATEGIES[name]().get_params(deep=False)), name
        assert all(p in PARAMETERS for p in table.parameters), name
    assert set(offered_strategies()) | {"more_like_these"} == set(STRATEGIES)


def test_a_parameter_added_to_a_table_shows_in_both_faces(monkeypatch):
    from workbench.strategy_form import strategy_controls

    extra = Parameter("patience", "int", "clips to wait for")
    monkeypatch.setitem(PARAMETERS, "patience", extra)
    table = STRATEGY_TABLES["random"]
    monkeypatch.setitem(STRATEGY_TABLES, "random", dataclasses.replace(table, parameters=(*table.parameters,
                                                                                          "patience")))
    sample = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices["sample"]._actions
                  if "--patience" in a.option_strings)
    assert (sample.dest, sample.type, sample.help) == ("patience", int, "clips to wait for")
    [control] = [c for c in strategy_controls("random") if c.param == "patience"]
    assert (control.option, control.kind, control.help) == ("--patience", "int", "clips to wait for")
    assert "patience" not in {c.param for c in strategy_controls("uncertainty")}


def test_one_nesting_rule_for_inner_parts_and_the_library(ws, capsys):
    for name in set(STRATEGIES) - set(NESTABLE):
        with pytest.raises(ValueError, match="stratified" if name == "stratified" else "plain one"):
            check_nestable(name, "inner")
    assert set(NESTABLE) == {"uncertain_diverse", "uncertainty", "random", "kcenter", "typiclust", "cluster_margin",
                             "combined", "range_conflict"}
    store = ws[0].open_store()
    try:
        pool, emb = store.pool(), store.embeddings(store.pool().model_version.embedding_space)
        with pytest.raises(ValueError, match="inner is 'blend'"):
            Stratified(inner="blend").query(pool, emb, 3)
        with pytest.raises(ValueError, match=r"parts\[0\] is 'cold_start'"):
            Blend(parts=[{"strategy": "cold_start"}]).query(pool, emb, 3)
    finally:
        store.close()
    with pytest.raises(SystemExit):
        _run(ws, "sample", "--strategy", "stratified", "--inner", "blend")
    assert "invalid choice: 'blend'" in capsys.readouterr().err
    assert _run(ws, "sample", "--strategy", "blend", "--parts", "stratified:1") == 2
    assert "--parts (part 1) must not itself be 'stratified'; list all columns in --strata" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(offered_strategies()))
def test_every_strategy_from_the_command_line(ws, name, capsys):
    assert _run(ws, "sample", "--strategy", name, "--budget", "5", "--seed", "2") == 0
    out = capsys.readouterr().out
    assert f"sampling run 1: 5 clip(s) picked with {name}" in out
    assert out.count("  #") == 5
    run, sel = _last_run(ws)
    assert run.strategy == name and len(sel) == 5 and all(s.reason for s in sel)
    if "random_state" in run.params:
        assert run.params["random_state"] == 2 and run.seed == 2


def test_combined_with_every_knob(ws, capsys, tmp_path):
    csv = tmp_path / "zone.csv"
    workspace, syn = ws
    csv.write_text("clip_id,zone\n" + "".join(f"{c},{'reed' if k < 4 else 'wood'}\n"
                                                for c, k in zip(syn.clip_ids, syn.cluster)))
    assert _run(ws, "sample", "--strategy", "combined", "--budget", "6", "--weights", "u=1,d=0.5,b=2",
                "--strata", "site,zone", "--quotas", "site=A:2,zone=reed|site=B:0", "--min-per-stratum", "1",
                "--pca", "0", "--n-candidates", "100", "--near-duplicate-radius", "0.01",
                "--near-duplicate-metric", "l2", "--uncertainty", "ratio", "--custom-column", f"zone={csv}",
                "--hemisphere", "south") == 0
    run, sel = _last_run(ws)
    p = run.params
    assert p["weights"] == {"uncertainty": 1.0, "diversity": 0.5, "balance": 2.0}
    assert p["strata"] == ["site", "zone"] and p["quotas"] == {"site=A": 2.0, "zone=reed|site=B": 0.0}
    assert (p["min_per_stratum"], p["pca"], p["n_candidates"], p["uncertainty"], p["hemisphere"]) == \
        (1, None, 100, "ratio", "south")
    assert (p["near_duplicate_radius"], p["near_duplicate_metric"]) == (0.01, "l2")
    assert p["custom_columns"]["zone"][str(syn.clip_ids[0])] == "reed"
    assert all("zone=" in s.stratum for s in sel)
    assert "+ balance" in capsys.readouterr().out


def test_stratified_passes_options_to_its_inner_strategy(ws):
    assert _run(ws, "sample", "--strategy", "stratified", "--inner", "kcenter", "--strata", "hour",
                "--quotas", "proportional", "--candidates", "uncertain", "--near-duplicate-radius", "0.05",
                "--budget", "8", "--seed", "4") == 0
    run, sel = _last_run(ws)
    assert run.params["strata"] == ["hour"] and run.params["quotas"] == "proportional"
    assert run.params["inner"]["strategy"] == "kcenter"
    assert run.params["inner"]["params"]["candidates"] == "uncertain"
    assert run.params["inner"]["params"]["near_duplicate_radius"] == 0.05
    assert run.params["inner"]["params"]["random_state"] == 4
    assert {s.stratum for s in sel} == {"hour=05", "hour=06", "hour=07", "hour=08"}


def test_default_sample_is_unchanged(ws, capsys):
    assert _run(ws, "sample", "--budget", "4") == 0
    run, _ = _last_run(ws)
    assert run.strategy == "combined" and run.seed == 0
    assert run.params["strata"] == ["site", "hour", "species"] and run.params["quotas"] == "equal"
    assert run.params["weights"] is None and run.params["pca"] == 128  # all three weights 1
    assert "(seed 0)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "random", "--weights", "u=1"], "--weights do(es) not apply to --strategy random"),
    (["--strategy", "combined", "--weights", "x=1"], "--weights 'x=1': expected items like u=1,d=1,b=0.5"),
    (["--strategy", "combined", "--quotas", "site=A"], "--quotas 'site=A': expected equal, proportional"),
    (["--strategy", "stratified", "--strata", "habitat"], "unknown stratum column 'habitat'"),
    (["--strategy", "kcenter", "--inner", "random"], "--inner applies only to --strategy stratified"),
    (["--budget", "0"], "budget must be a positive integer (clips to pick), got 0"),
    (["--strategy", "combined", "--custom-column", "zone"], "--custom-column 'zone': expected NAME=FILE.csv"),
    (["--replay", "7"], "no sampling run 7 in this store"),
    # settings the strategy checks are named by their options, as the user typed them
    (["--pca", "-3"], "error: --pca must be 0 (none) or an integer >= 1"),
    (["--strategy", "uncertain_diverse", "--n-clusters", "0"], "error: --n-clusters must be left out or an integer"),
    (["--strategy", "blend", "--parts", "kcenter:0,random:0"], "error: --parts (part 1, its share) must be a number"),
    (["--strata", "planet"], "unknown stratum column 'planet' in --strata ('planet',)"),
])
def test_mistakes_are_one_line_errors(ws, capsys, argv, message):
    assert _run(ws, "sample", *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert _last_run(ws)[0] is None  # nothing stored


def test_replay_a_run(ws, capsys):
    assert _run(ws, "sample", "--strategy", "combined", "--strata", "site", "--budget", "5", "--seed", "9") == 0
    assert _run(ws, "sample", "--strategy", "typiclust", "--budget", "5") == 0
    capsys.readouterr()
    assert _run(ws, "sample", "--replay", "1", "--show", "2") == 0
    out = capsys.readouterr().out
    assert "replayed sampling run 1 (combined, seed 9): 5 clip(s), identical to the stored batch" in out
    assert out.count("  #") == 2


def test_search_stores_a_run(ws, capsys):
    workspace, syn = ws
    example = int(syn.clip_ids[syn.cluster == 2][0])
    assert _run(ws, "search", str(example), "--budget", "4") == 0
    out = capsys.readouterr().out
    assert f"sampling run 1: 4 clip(s) like clip(s) {example}" in out
    run, sel = _last_run(ws)
    assert run.strategy == "more_like_these" and run.params["examples"] == [example]
    assert set(syn.of([s.clip_id for s in sel], "cluster")) == {2}
    assert _run(ws, "search", "999999") == 2
    assert capsys.readouterr().err.strip() == ("error: no clip with id 999999: search takes ids of clips in this "
                                               "workspace (`workbench sample` and the app print them)")
