"""The simulation: right answer on a pool where the best strategy is known, determinism, shapes of the output."""

from __future__ import annotations

import numpy as np
import pytest

from lab.simulate import REFERENCE, SimulationSettings, parse_budgets, simulate, simulate_workspace
from tests.lab.conftest import rare_clusters


def test_kcenter_beats_random_where_rare_classes_hide_in_small_clusters(rare_pool):
    result = simulate(rare_pool, ["kcenter"], seeds=2, budgets=(5, 35, 10))
    k, r = result.summary["kcenter"], result.summary[REFERENCE]
    assert k["aulc"] > r["aulc"] + 0.1 and k["final"] > r["final"]
    assert k["labels_to_random_final"] is not None and k["labels_to_random_final"] < 35
    assert k["below_random_at"] == []
    assert result.summary[REFERENCE]["labels_to_random_final"] == 35  # random reaches its own final at the end
    # same split and initial set for every strategy: their first points are identical
    for seed in (0, 1):
        first = [result.curves[s][seed][0] for s in ("kcenter", REFERENCE)]
        assert [(p.labels, p.macro_recall, p.mean_ap) for p in first][0] == [(p.labels, p.macro_recall, p.mean_ap)
                                                                             for p in first][1]
        assert [p.labels for p in result.curves["kcenter"][seed]] == [5, 15, 25, 35]


def test_a_seed_gives_the_same_curves_every_time(rare_pool):
    a = simulate(rare_pool, ["default", "typiclust"], seeds=[3], budgets=(5, 25, 10))
    b = simulate(rare_pool, ["default", "typiclust"], seeds=[3], budgets=(5, 25, 10))
    strip = lambda res: {s: {k: [(p.labels, p.macro_recall, p.mean_ap, p.worst_stratum_recall) for p in v]  # noqa: E731
                             for k, v in runs.items()} for s, runs in res.curves.items()}
    assert strip(a) == strip(b)
    assert a.summary.keys() == {"random", "default", "typiclust"}


def test_the_json_has_summary_and_curves_as_documented(rare_pool):
    data = simulate(rare_pool, ["kcenter"], seeds=1, budgets=(5, 15, 10)).to_json()
    assert set(data["summary"]["kcenter"]) >= {"aulc", "final", "labels_to_random_final", "labels_to_90pct_full",
                                                "below_random_at", "seconds_per_query"}
    assert data["curves"]["kcenter"]["0"][0][0] == 5 and len(data["curves"]["kcenter"]["0"][0]) == 2
    assert set(data["curves_detail"]["kcenter"]["0"][0]) == {"labels", "macro_recall", "map", "worst_stratum_recall",
                                                              "query_seconds"}


@pytest.mark.parametrize("text, message", [("10:5:1", "stop > start"), ("0:10:5", "start >= 1"), ("a:b", "START:STOP"),
                                           ("5:10:0", "step >= 1")])
def test_bad_budgets_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_budgets(text)


def test_bad_requests_are_named(rare_pool):
    with pytest.raises(ValueError, match="unknown strategy 'nonsense'"):
        simulate(rare_pool, ["nonsense"], budgets=(5, 15, 5))
    with pytest.raises(ValueError, match="training part holds only about"):
        simulate(rare_pool, ["kcenter"], budgets=(5, 5000, 5))
    with pytest.raises(ValueError, match="seeds"):
        simulate(rare_pool, ["kcenter"], seeds=0, budgets=(5, 15, 5))
    for bad in (1.5, 0.0, -0.2):  # a test size out of range is named as such, not as a negative training part
        with pytest.raises(ValueError, match=r"--test-size must be a fraction between 0 and 1 \(exclusive\)"):
            simulate(rare_pool, ["kcenter"], budgets=(5, 15, 5), test_size=bad)


def test_a_softmax_single_label_pool_gets_a_softmax_head_and_its_measure(rare_pool):
    rare_pool.output_type = "softmax"
    result = simulate(rare_pool, ["uncertainty"], seeds=1, budgets=(5, 15, 10))
    assert result.params["head_output_type"] == "softmax"
    assert result.summary["uncertainty"]["final"] > 0


def test_simulate_workspace_says_what_it_replays_stores_the_run_and_writes_its_files(tmp_path):
    from store import Store

    x, labels, strata = rare_clusters()
    np.savez(tmp_path / "pool.npz", embeddings=x, labels=labels, strata=strata)
    messages: list[tuple[int, str]] = []
    store = Store.open(tmp_path / "ws")
    try:
        done = simulate_workspace(store, SimulationSettings(strategies=("kcenter",), pool_file=tmp_path / "pool.npz",
                                                            seeds=1, budgets=(5, 15, 10)),
                                  out_dir=tmp_path / "sims", progress=lambda n, total, msg: messages.append((n, msg)))
        assert [r.id for r in store.simulation_runs()] == [done.run.id]
        assert simulate_workspace(store, SimulationSettings(strategies=("kcenter",), pool_file=tmp_path / "pool.npz",
                                                            seeds=1, budgets=(5, 15, 10))).files == []
    finally:
        store.close()
    assert messages[0][0] == 0 and messages[0][1].endswith("kcenter against random, 1 seed(s), labels 5:15:10")
    assert all(n > 0 for n, _ in messages[1:])
    assert done.files[0] == tmp_path / "sims" / f"simulation-{done.run.id}.json" and all(f.exists() for f in done.files)
    assert set(done.result.summary) == {"random", "kcenter"}
