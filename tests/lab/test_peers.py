"""scikit-activeml's strategies in the lab: every peer through the same checks, under the lab's protocol."""

from __future__ import annotations

import numpy as np
import pytest

from lab.peers import PEERS, PeerError
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
    from lab.pool import from_arrays

    with pytest.raises(ValueError, match="unknown scikit-activeml strategy 'Nope'"):
        simulate(rare_pool, ["skactiveml:Nope"], seeds=[0], budgets=(10, 20, 10))
    rng = np.random.default_rng(0)
    multi = from_arrays(rng.normal(size=(60, 4)).astype(np.float32), labels_multi=rng.random((60, 3)) > 0.5,
                        classes=["a", "b", "c"], source="multi")
    with pytest.raises(PeerError, match="take one label per clip"):
        simulate(multi, ["skactiveml:CoreSet"], seeds=[0], budgets=(10, 20, 10))
