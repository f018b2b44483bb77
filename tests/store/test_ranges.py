"""Range priors read for clips (``store.ranges``) and labels mapped by name (``store.labels``), on every backend."""

from __future__ import annotations

import importlib.util
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from store import Recording
from store.labels import LabelIndex, map_labels
from store.ranges import SiteWeek, check_site_week, range_lookup, week_of

CLASSES = ["Turdus merula_Eurasian Blackbird", "Parus major_Great Tit", "Jynx torquilla_Eurasian Wryneck",
           "Dog_Dog"]


def _birdnetlib_utils():
    """birdnetlib's ``utils`` module, loaded from its file (importing the package needs tflite_runtime)."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the oracle is birdnetlib 0.18.1's week arithmetic (a dependency); it is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "utils.py"
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("_birdnetlib_utils", path))
    module.__spec__.loader.exec_module(module)
    return module


def test_week_of_is_birdnetlibs_on_every_day_of_a_common_and_a_leap_year():
    utils = _birdnetlib_utils()
    for year in (2023, 2024):
        day = date(year, 1, 1)
        while day.year == year:
            moment = datetime(year, day.month, day.day, 23, 59)
            assert week_of(day) == week_of(moment) == utils.return_week_48_from_datetime(moment), day
            day += timedelta(days=1)
    assert (week_of(date(2024, 1, 1)), week_of(date(2024, 12, 31)), week_of(date(2019, 5, 22))) == (1, 48, 19)


@pytest.mark.parametrize("args, match", [
    ((90.5, 0, 1), r"^latitude must be a number in \[-90, 90\] \(decimal degrees\), got 90\.5$"),
    ((float("nan"), 0, 1), r"^latitude must be"),
    ((0, 180.5, 1), r"^longitude must be a number in \[-180, 180\]"),
    ((0, 0, 2.0), r"^week must be an integer 1-48 .*got 2\.0$"),
    ((0, 0, -2), r"^week must be an integer"),
])
def test_site_weeks_are_checked_with_one_line_errors(args, match):
    with pytest.raises(ValueError, match=match):
        check_site_week(*args)
    assert check_site_week(-90, 180, -1) == SiteWeek(-90.0, 180.0, -1)


def test_labels_map_by_label_scientific_or_common_name_and_the_rest_are_reported():
    heads = ["turdus merula_eurasian blackbird", "Parus major", "  eurasian   WRYNECK ", "Dog", "Tawny Owl",
             "Noise"]
    mapping = map_labels(heads, CLASSES)
    assert mapping.index == (0, 1, 2, 3, -1, -1)
    assert mapping.unmapped == ["Tawny Owl", "Noise"] and mapping.mapped == 4
    # an exact label beats a common name that happens to equal it
    assert LabelIndex(("A b_Robin", "Robin")).find("robin") == 1


def _add(store, name, **kw):
    return store.add_recording(Recording(path=f"/data/{name}", content_hash=name, status="done", **kw))


def test_range_lookup_gives_each_clip_its_site_week_and_unknown_where_it_has_none(store):
    """The lookup of step 4: clip -> recording -> site-week -> stored occurrence, never guessed."""
    mv = store.ensure_model_version("birdnet", "embedding", "space", 2, CLASSES)
    head = store.add_model_version(type(mv)(name="head-1", kind="classifier", embedding_space="space", dim=3,
                                            labels=["Great Tit", "Tawny Owl", "Eurasian Wryneck"],
                                            parent_id=mv.id))
    when = datetime(2024, 5, 22, 5, 0)
    placed = _add(store, "a.wav", latitude=47.05, longitude=6.98, start_time=when)
    later = _add(store, "b.wav", latitude=47.05, longitude=6.98, start_time=datetime(2024, 8, 1))  # not computed
    unplaced = _add(store, "c.wav", start_time=when)
    clip_ids = []
    for rec in (placed, later, unplaced):
        clip_ids += store.add_clip_batch(rec.id, [(0.0, 3.0)], mv, np.full((1, 4), 0.2), np.zeros((1, 2))).tolist()
    store.add_range_priors(mv, "meta", {SiteWeek(47.05, 6.98, week_of(when)):
                                        np.array([0.9, 0.5, 0.01, 0.0], dtype=np.float32)}, floor=0.001)

    found = range_lookup(store, clip_ids, head)
    assert found.site_week == (SiteWeek(47.05, 6.98, 19), SiteWeek(47.05, 6.98, 29), None)
    assert found.uncomputed == (SiteWeek(47.05, 6.98, 29),)
    assert found.mapping.unmapped == ["Tawny Owl"]
    occ = found.occurrence()
    np.testing.assert_allclose(occ[0], [0.5, np.nan, 0.01])
    assert np.isnan(occ[1:]).all()
    assert found.in_range(0.03).tolist() == [[True, None, False], [None] * 3, [None] * 3]
