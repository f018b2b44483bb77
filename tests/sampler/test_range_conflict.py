"""The range-conflict term: a confident detection of a species the range model calls absent there is picked first."""

from __future__ import annotations

import warnings
from datetime import datetime

import numpy as np
import pytest

from sampler import RangeConflict, SamplerWarning, range_conflicts, sample
from store import Recording
from store.ranges import SiteWeek, week_of

LABELS = ["Turdus merula_Eurasian Blackbird", "Parus major_Great Tit", "Jynx torquilla_Eurasian Wryneck"]
WHEN = datetime(2024, 5, 1, 6)


def _pool(store, rng):
    """40 clips at a placed site (Wryneck absent there), 10 at a site without coordinates.

    Placed: clip 0 is a confident Wryneck (0.93, the one conflict), clip 1 a doubtful one (0.45: not
    confident), the rest Blackbirds and Tits near 0.5-0.6. Unplaced: clip 0 a confident Wryneck (0.97),
    whose occurrence is unknown, so it is no conflict however confident.
    """
    mv = store.ensure_model_version("birdnet-syn", "embedding", "space", 8, LABELS)
    placed = store.add_recording(Recording(path="/data/p.wav", content_hash="p", site="P", latitude=47.0,
                                           longitude=7.0, start_time=WHEN, status="done"))
    unplaced = store.add_recording(Recording(path="/data/u.wav", content_hash="u", site="U", start_time=WHEN,
                                             status="done"))
    ids = {}
    for rec, n, wryneck in ((placed, 40, (0.93, 0.45)), (unplaced, 10, (0.97,))):
        probs = np.full((n, 3), 0.02)
        probs[np.arange(n), rng.integers(0, 2, n)] = rng.uniform(0.5, 0.6, n)
        for j, p in enumerate(wryneck):
            probs[j] = [0.02, 0.02, p]
        ids[rec.site] = store.add_clip_batch(rec.id, [(3.0 * j, 3.0 * j + 3) for j in range(n)], mv, probs,
                                             rng.normal(size=(n, 8)))
    occurrence = np.array([0.8, 0.6, 0.004], dtype=np.float32)
    store.add_range_priors(mv, "meta", {SiteWeek(47.0, 7.0, week_of(WHEN)): occurrence})
    return mv, ids


def test_the_confident_out_of_range_detection_is_picked_first_with_its_reason(store):
    mv, ids = _pool(store, np.random.default_rng(0))
    run, picks = sample(store, RangeConflict(), 5, model_version=mv)
    assert picks[0].clip_id == int(ids["P"][0]) and picks[0].score == pytest.approx(0.93)
    assert picks[0].reason.startswith("range conflict: Jynx torquilla_Eurasian Wryneck detected with top-1 0.93 "
                                      "where the range model gives it occurrence 0.0040 at this site-week")
    unplaced = set(ids["U"].tolist())
    for p in picks[1:]:  # the rest: the most uncertain, each saying its top species and what the range model knows
        assert p.reason.startswith("no range conflict left (1 found)") and "(top-1 " in p.reason
        assert ("unknown at its site-week" in p.reason) == (p.clip_id in unplaced)
    assert (run.strategy, run.params["min_score"], run.params["max_occurrence"]) == ("range_conflict", 0.5, 0.03)
    # a stricter cut: 0.004 is not below 0.003, so nothing conflicts
    strict = RangeConflict(max_occurrence=0.003).query(store.pool(mv), store.embeddings("space"), 3)
    assert all(p.reason.startswith("no range conflict left (0 found)") for p in strict)


def test_conflicts_need_a_known_occurrence_and_a_confident_score():
    top1 = np.array([0.9, 0.95, 0.4, 0.9, 0.8])
    occ = np.array([0.01, np.nan, 0.0, 0.5, 0.0])
    assert range_conflicts(top1, occ, np.arange(5)).tolist() == [0, 4]
    assert range_conflicts(top1, None, np.arange(5)).tolist() == []
    assert range_conflicts(top1, occ, np.arange(5), min_score=0.85).tolist() == [0]


def test_a_pool_without_range_priors_is_said_so_and_falls_back_to_uncertainty(store):
    mv = store.ensure_model_version("birdnet-syn", "embedding", "space", 8, LABELS)
    rec = store.add_recording(Recording(path="/data/x.wav", content_hash="x", status="done"))
    store.add_clip_batch(rec.id, [(0.0, 3.0), (3.0, 6.0)], mv, np.full((2, 3), 0.5), np.ones((2, 8)))
    assert store.pool(mv).range_occurrence is None
    with pytest.warns(SamplerWarning, match=r"no range occurrences .* run `workbench range`"):
        picks = RangeConflict().query(store.pool(mv), store.embeddings("space"), 2)
    assert len(picks) == 2 and all("no range conflict left" in p.reason for p in picks)


def test_an_image_whose_top_label_is_fenced_at_its_country_is_picked_with_the_roll_up(tmp_path):
    """SpeciesNet's test dog, which the default vision model calls a grey wolf (0.33), on a camera in Kent: no
    wolves in Britain, so it is a conflict, and its reason says what SpeciesNet would call it (the dog family,
    summed over the wolves and the coyote among its top 5). The ocelot (top label a monitor, no binomial) and
    the bear in California (a terrier) are never fenced."""
    import json

    from tests.conftest import CANID_RULES, placed_images

    store = placed_images(tmp_path / "ws", {"domestic_dog.jpg": ("Kent", "GBR", ""),
                                            "ocelot.jpg": ("Kent", "GBR", ""),
                                            "american_black_bear.jpg": ("Yosemite", "USA", "CA")})
    try:
        rules = tmp_path / "rules.json"
        rules.write_text(json.dumps(CANID_RULES))
        dog = next(c.clip_id for c in store.clips(store.pool().clip_id) if c.path.endswith("domestic_dog.jpg"))
        with warnings.catch_warnings():
            warnings.simplefilter("error", SamplerWarning)
            run, picks = sample(store, RangeConflict(geofence=str(rules), min_score=0.3), 3)
        assert picks[0].clip_id == dog and picks[0].score == pytest.approx(0.33, abs=0.01)
        assert picks[0].reason.startswith("geofence: timber wolf, grey wolf, gray wolf, Canis lupus detected with "
                                          "top-1 0.33 in GBR, where the geofence does not allow it; SpeciesNet would "
                                          "call it Canidae (family) 0.7")
        assert picks[0].reason.endswith("the 1st of 1 conflicts") and picks[0].stratum.startswith("species=timber")
        assert all(p.reason.startswith("no range conflict left (1 found)") for p in picks[1:])
        assert run.params["geofence"] == str(rules)
        # wolves allowed in Britain: nothing conflicts; the default min_score (0.5) is above the wolf's 0.33 anyway
        rules.write_text(json.dumps({**CANID_RULES, "mammalia;carnivora;canidae;canis;lupus": {"allow": {"GBR": []}}}))
        pool = store.pool()
        for strategy in (RangeConflict(geofence=str(rules), min_score=0.3), RangeConflict(geofence=str(rules))):
            again = strategy.query(pool, store.embeddings(pool.model_version.embedding_space), 2,
                                   probabilities=store.probabilities(pool.model_version))
            assert all(p.reason.startswith("no range conflict left (0 found)") for p in again)
    finally:
        store.close()


def test_a_geofence_without_countries_is_said_so_and_a_bad_file_named(store, tmp_path):
    mv = store.ensure_model_version("birdnet-syn", "embedding", "space", 8, LABELS)
    rec = store.add_recording(Recording(path="/data/x.wav", content_hash="x", status="done"))
    store.add_clip_batch(rec.id, [(0.0, 3.0), (3.0, 6.0)], mv, np.full((2, 3), 0.5), np.ones((2, 8)))
    rules = tmp_path / "rules.json"
    rules.write_text('{"aves;piciformes;picidae;jynx;torquilla": {"allow": {"CHE": []}}}')
    with pytest.warns(SamplerWarning, match=r"no clip of the pool has a country .* the geofence fences nothing"):
        RangeConflict(geofence=str(rules)).query(store.pool(mv), store.embeddings("space"), 2)
    rules.write_text('{"aves;piciformes": {}}')
    with pytest.raises(ValueError, match=f"{rules}: key 'aves;piciformes' is not a taxonomy string"):
        RangeConflict(geofence=str(rules)).query(store.pool(mv), store.embeddings("space"), 2)


def test_with_geofence_fences_every_range_conflict_given_none_and_nothing_without_a_file(tmp_path):
    from sampler import Blend, Stratified, UncertaintySampling
    from sampler.range_conflict import with_geofence

    rules = tmp_path / "geofence.json"
    assert with_geofence(RangeConflict(), rules).geofence is None  # no file kept: nothing to fence with
    assert with_geofence(RangeConflict(), None).geofence is None
    rules.write_text("{}")
    assert with_geofence(RangeConflict(), rules).geofence == str(rules)
    assert with_geofence(RangeConflict(geofence="/own.json"), rules).geofence == "/own.json"  # its own kept
    inner = with_geofence(Stratified(inner=RangeConflict()), rules).get_params(deep=False)["inner"]
    assert inner.geofence == str(rules)
    assert "geofence" not in with_geofence(UncertaintySampling(), rules).get_params(deep=False)
    # a blend's range-conflict parts, named or built, and nothing else of it
    blend = with_geofence(Blend(parts=[{"strategy": "range_conflict", "share": 0.5},
                                       {"strategy": RangeConflict(), "share": 0.3},
                                       {"strategy": "range_conflict", "params": {"geofence": "/own.json"}, "share": 0.1},
                                       {"strategy": "kcenter", "share": 0.1}]), rules)
    named, built, own, other = blend.get_params(deep=False)["parts"]
    assert named["params"] == {"geofence": str(rules)} and built["strategy"].geofence == str(rules)
    assert own["params"] == {"geofence": "/own.json"} and "params" not in other
