"""Strata and quotas: vectorised columns, exact quotas, graceful degradation, minimums for the long tail."""

from __future__ import annotations

import numpy as np
import pytest

from sampler import STRATA_COLUMNS, allocate_quotas, factorize, metadata_pool, stratum_codes, stratum_keys
from sampler.strata import check_quotas, check_strata, quota_shares, stratum_weights


# --------------------------------------------------------------------------- quotas
def test_quotas_are_exact_when_feasible():
    assert allocate_quotas([10, 10, 10], 9).tolist() == [3, 3, 3]
    assert allocate_quotas([100, 50, 10], 9, weights=[100, 50, 10]).tolist() == [6, 3, 0]  # proportional
    assert allocate_quotas([10, 10], 9, weights=[2, 1]).tolist() == [6, 3]
    assert allocate_quotas([10, 10, 10], 9, weights=[1, 0, 2]).tolist() == [3, 0, 6]  # weight 0: none
    assert sum(allocate_quotas(np.full(48, 5), 8)) == 8


def test_quotas_degrade_gracefully_when_a_stratum_is_small():
    assert allocate_quotas([10, 1, 2], 9).tolist() == [6, 1, 2]  # leftovers go where the clips are
    assert allocate_quotas([1, 1], 10).tolist() == [1, 1]  # budget beyond every clip: all of them
    assert allocate_quotas([0, 5], 3).tolist() == [0, 3]
    assert allocate_quotas([100, 1, 50], 30, weights=[100, 1, 50]).tolist() == [20, 0, 10]


def test_ties_follow_priority():
    assert allocate_quotas([5, 5], 3).tolist() == [2, 1]
    assert allocate_quotas([5, 5], 3, priority=[1, 0]).tolist() == [1, 2]
    with pytest.raises(ValueError, match="priority must list every stratum"):
        allocate_quotas([5, 5], 3, priority=[0, 0])


def test_minimum_per_stratum_goes_to_rare_strata_first():
    # proportional alone gives the rare stratum nothing; the minimum gives it its clip
    assert allocate_quotas([100, 50, 3], 9, weights=[100, 50, 3]).tolist()[2] == 0
    assert allocate_quotas([100, 50, 3], 9, weights=[100, 50, 3], minimum=1).tolist() == [5, 3, 1]
    assert allocate_quotas([100, 50, 3], 9, weights=[100, 50, 3], minimum=5).tolist() == [3, 3, 3]  # capped at 3
    # budget smaller than the minimums: rarest first
    assert allocate_quotas([100, 2, 50, 1], 2, minimum=1).tolist() == [0, 1, 0, 1]
    assert allocate_quotas([100, 2, 50, 1], 5, minimum=2).tolist() == [1, 2, 1, 1]


def test_shares_are_fractional_and_sum_to_the_batch():
    s = quota_shares(np.full(48, 5), 8)
    assert s == pytest.approx(np.full(48, 8 / 48))
    assert quota_shares([10, 1, 2], 9).tolist() == pytest.approx([6, 1, 2])


def test_quota_specs():
    assert check_quotas("equal", ("site",)) == "equal"
    assert check_quotas({"site=A": 2, "hour=05|site=B": 0}, ("site", "hour")) == {"site=A": 2.0,
                                                                                  "hour=05|site=B": 0.0}
    with pytest.raises(ValueError, match=r"quota weight of 'site=A' must be a finite number >= 0, got -1"):
        check_quotas({"site=A": -1}, ("site",))
    with pytest.raises(ValueError, match=r"quota key 'A' must name stratum columns"):
        check_quotas({"A": 1}, ("site",))


# --------------------------------------------------------------------------- columns
def _pool():
    t = np.array(["2024-01-15T05:10:00", "2024-04-02T23:59:59", "2024-07-01T12:00:00", "NaT",
                  "2024-10-31T00:00:00", "2024-12-01T06:00:00"], dtype="datetime64[s]")
    return metadata_pool([10, 11, 12, 13, 14, 15], site=["B", "A", None, "A", "", "B"], start_time=t,
                         recording_id=[1, 2, 3, 2, 4, 1], top_label=["x", "y", "x", "", "y", "z"])


def test_time_and_metadata_columns():
    pool = _pool()
    col = lambda c, **kw: [k.split("=", 1)[1] for k in stratum_keys(pool, (c,), **kw)]  # noqa: E731
    assert col("hour") == ["05", "23", "12", "unknown", "00", "06"]
    assert col("month") == ["01", "04", "07", "unknown", "10", "12"]
    assert col("season") == ["winter", "spring", "summer", "unknown", "autumn", "winter"]
    assert col("season", hemisphere="south") == ["summer", "autumn", "winter", "unknown", "spring", "summer"]
    assert col("site") == ["B", "A", "unknown", "A", "unknown", "B"]
    assert col("species") == ["x", "y", "x", "unknown", "y", "z"]
    assert col("device") == ["unknown"] * 6
    assert list(stratum_keys(pool, ())) == ["all"] * 6
    assert set(STRATA_COLUMNS) == {"site", "device", "hour", "month", "season", "species"}


def test_combined_codes_and_custom_columns():
    pool = _pool()
    codes, keys = stratum_codes(pool, ("site", "habitat"), custom_columns={"habitat": {10: "forest", "11": "reed"}})
    assert [keys[c] for c in codes] == ["site=B|habitat=forest", "site=A|habitat=reed", "site=unknown|habitat=unknown",
                                        "site=A|habitat=unknown", "site=unknown|habitat=unknown",
                                        "site=B|habitat=unknown"]
    assert list(keys) == sorted(keys, key=lambda k: (k.split("|")[0], k.split("|")[1]))
    assert codes[2] == codes[4]
    rows = np.array([5, 0])
    sub, subkeys = stratum_codes(pool, ("site",), rows)
    assert [subkeys[c] for c in sub] == ["site=B", "site=B"]
    w, unused = stratum_weights(keys, {"site=B": 3, "habitat=reed": 2, "site=Z": 9}, np.ones(len(keys)),
                                ("site", "habitat"))
    assert [w[c] for c in codes] == [3, 2, 1, 1, 1, 3] and unused == ["site=Z"]


def test_bad_columns_name_themselves():
    with pytest.raises(ValueError, match=r"unknown stratum column 'habitat' in strata=\('habitat',\)"):
        check_strata(("habitat",))
    assert check_strata(("habitat",), {"habitat": {}}) == ("habitat",)
    with pytest.raises(ValueError, match="would hide the built-in stratum column"):
        stratum_codes(_pool(), ("site",), custom_columns={"site": {1: "x"}})
    with pytest.raises(ValueError, match=r"custom column 'h' has a key that is not a clip id"):
        stratum_codes(_pool(), ("h",), custom_columns={"h": {"abc": "x"}})


def test_factorize_matches_numpy_unique():
    rng = np.random.default_rng(0)
    names = np.array(["Parus major_Great Tit", "Erithacus rubecula_European Robin", "", None, "Ä—ß", "x" * 60],
                     dtype=object)
    values = names[rng.integers(0, names.size, 5000)]
    codes, uniques = factorize(values)
    expected = np.where((values == None) | (values == ""), "unknown", values).astype(str)  # noqa: E711
    assert np.array_equal(np.asarray(uniques, dtype=object)[codes], expected.astype(object))
    assert uniques == sorted(set(expected.tolist()))
    assert factorize(np.array([], dtype=object))[1] == []
