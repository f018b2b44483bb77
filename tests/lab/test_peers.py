"""scikit-activeml's strategies in the lab: every peer through the same checks, under the lab's protocol."""

from __future__ import annotations

import numpy as np
import pytest

from lab.peers import MISSING, PEERS, labels_vector
from lab.simulate import simulate

pytest.importorskip("skactiveml", reason="needs scikit-activeml (pip install -e '.[lab]')")


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_every_peer_runs_under_the_same_protocol_as_ours(rare_pool, peer):
    name = f"skactiveml:{peer}"
    result = simulate(rare_pool, ["default", name], seeds=[0], budgets=(10, 30, 10))
    assert set(result.summary) == {"random", "default", name}
    curve = result.curves[name][0]
    assert [p.labels for p in curve] == [10, 20, 30]  # a batch of exactly the budget every round
    # the same initial set as ours: the first point (before any query) is the same head on the same labels
    assert curve[0].macro_recall == pytest.approx(result.curves["default"][0][0].macro_recall)
    assert 0.0 <= result.summary[name]["aulc"] <= 1.0 and result.params["strategies"][name]["strategy"] == name


def test_a_peer_is_seeded_and_repeatable(rare_pool):
    a = simulate(rare_pool, ["skactiveml:TypiClust"], seeds=[1], budgets=(10, 30, 10))
    b = simulate(rare_pool, ["skactiveml:TypiClust"], seeds=[1], budgets=(10, 30, 10))
    assert [p.macro_recall for p in a.curves["skactiveml:TypiClust"][1]] == \
           [p.macro_recall for p in b.curves["skactiveml:TypiClust"][1]]


def test_typicality_first_beats_random_where_rare_classes_hide_in_small_clusters(rare_pool):
    r = simulate(rare_pool, ["skactiveml:TypiClust"], seeds=[0, 1], budgets=(10, 60, 10))
    assert r.summary["skactiveml:TypiClust"]["aulc"] > r.summary["random"]["aulc"]


def test_peers_refuse_what_they_cannot_do_by_name(rare_pool):
    with pytest.raises(ValueError, match="unknown scikit-activeml strategy 'Nope'"):
        simulate(rare_pool, ["skactiveml:Nope"], seeds=[0], budgets=(10, 20, 10))


@pytest.fixture
def multi_pool():
    """Soundscape-like windows: 0-2 of 3 species each, one cluster per label set."""
    from lab.pool import from_arrays

    rng = np.random.default_rng(0)
    sets = rng.integers(0, 2, size=(90, 3)) * (rng.random((90, 1)) > 0.15)
    centres = rng.normal(size=(8, 6)) * 3
    x = centres[sets @ np.array([1, 2, 4])] + rng.normal(size=(90, 6))
    return from_arrays(x.astype(np.float32), labels_multi=sets.astype(bool), classes=["a", "b", "c"], source="multi")


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_every_peer_runs_on_a_multi_label_pool(multi_pool, peer):
    assert multi_pool.multi_label
    name = f"skactiveml:{peer}"
    result = simulate(multi_pool, ["default", name], seeds=[0], budgets=(10, 30, 10))
    assert [p.labels for p in result.curves[name][0]] == [10, 20, 30]
    assert result.params["head_output_type"] == "sigmoid" and 0.0 <= result.summary[name]["aulc"] <= 1.0


def test_a_classifier_peer_sees_label_sets_as_classes():
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=bool)
    y, n = labels_vector(truth, [0, 1, 2, 3, 4], [0, 1, 2, 3])
    # sets (0,), (0, 1), (), (0, 1): numbered over the sorted sets the labelled clips hold
    assert n == 3 and y.tolist() == [1, 2, 0, 2, MISSING]
    one = np.eye(3, dtype=bool)[[2, 0, 1]]
    y, n = labels_vector(one, [0, 1, 2], [1, 2])
    assert n == 3 and y.tolist() == [MISSING, 0, 1]  # one label per clip: the pool's own classes
