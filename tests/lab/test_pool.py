"""Pool files: .npz and Parquet read alike; every bad array is named with what was expected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lab.pool import PoolFileError, from_arrays, load_pool_file
from tests.lab.conftest import rare_clusters


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_and_parquet_give_the_same_pool(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, labels, strata = rare_clusters()
    times = np.array([f"2024-05-01T{h % 24:02d}:00:00" for h in range(len(labels))])
    a = load_pool_file(_npz(tmp_path / "pool.npz", embeddings=x, labels=labels, strata=strata, times=times))
    table = pa.table({"embeddings": [row.tolist() for row in x], "labels": labels.tolist(),
                      "strata": strata.tolist(), "times": times.tolist()})
    pq.write_table(table, tmp_path / "pool.parquet")
    b = load_pool_file(tmp_path / "pool.parquet")
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    np.testing.assert_array_equal(a.truth, b.truth)
    assert a.classes == b.classes and a.strata.tolist() == b.strata.tolist()
    assert a.times[5] == np.datetime64("2024-05-01T05:00:00") and (a.times == b.times).all()
    assert not a.multi_label and len(a) == len(labels)


def test_multi_label_pools_with_probabilities(tmp_path):
    x, labels, _ = rare_clusters(n_rare=2)
    classes = ["common", "rare 0", "rare 1"]
    multi = labels[:, None] == np.array(classes)[None, :]
    multi[:3, 1] = True  # a few clips carry two labels
    probs = np.full((len(labels), 3), 0.2)
    pool = load_pool_file(_npz(tmp_path / "m.npz", embeddings=x, labels_multi=multi, classes=np.array(classes),
                               probabilities=probs))
    assert pool.multi_label and pool.label_lists()[0] == ["common", "rare 0"]
    assert pool.probabilities.shape == (len(labels), 3) and pool.probability_classes == classes


def test_parquet_multi_label_classes_come_from_the_schema_metadata(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, labels, _ = rare_clusters(n_rare=2)
    classes = ["common", "rare 0", "rare 1"]
    multi = labels[:, None] == np.array(classes)[None, :]
    table = pa.table({"embeddings": [r.tolist() for r in x], "labels_multi": [r.tolist() for r in multi]})
    table = table.replace_schema_metadata({"classes": json.dumps(classes)})
    pq.write_table(table, tmp_path / "m.parquet")
    pool = load_pool_file(tmp_path / "m.parquet")
    assert pool.classes == classes and pool.truth.sum() == len(labels)


@pytest.mark.parametrize("change, message", [
    (dict(embeddings=np.zeros((10,))), "field 'embeddings' must be an n x d array"),
    (dict(embeddings=np.full((10, 4), np.nan)), "NaN or infinite values in 10 rows"),
    (dict(labels=np.array(["a"] * 10)), "1 class"),
    (dict(labels=np.array(["a", "b"] * 4)), "one label per clip \\(10\\)"),
    (dict(strata=np.array(["s"] * 3)), "field 'strata' must hold one stratum per clip"),
    (dict(times=np.array(["yesterday"] * 10)), "field 'times' must hold ISO date-times"),
    (dict(probabilities=np.full((10, 2), 1.5)), "probabilities in \\[0, 1\\]"),
    (dict(unexpected=np.zeros(10)), "unknown field\\(s\\) \\['unexpected'\\]"),
])
def test_bad_pool_files_name_the_file_and_field(tmp_path, change, message):
    arrays = dict(embeddings=np.random.default_rng(0).random((10, 4)), labels=np.array(["a", "b"] * 5))
    arrays.update(change)
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(PoolFileError, match=message) as info:
        load_pool_file(path)
    assert "bad.npz" in str(info.value)


def test_files_that_are_not_pools(tmp_path):
    with pytest.raises(PoolFileError, match="does not exist"):
        load_pool_file(tmp_path / "none.npz")
    (tmp_path / "pool.csv").write_text("a,b\n")
    with pytest.raises(PoolFileError, match="is .npz or .parquet"):
        load_pool_file(tmp_path / "pool.csv")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(PoolFileError, match="not a readable .npz"):
        load_pool_file(tmp_path / "broken.npz")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(PoolFileError, match="not a readable Parquet"):
        load_pool_file(tmp_path / "broken.parquet")


def test_labels_and_labels_multi_are_exclusive():
    with pytest.raises(PoolFileError, match="exactly one of 'labels'"):
        from_arrays(np.zeros((4, 2)), labels=["a", "b", "a", "b"], labels_multi=np.eye(4, 2, dtype=bool),
                    classes=["a", "b"])


def test_integer_labels_index_the_classes_given_with_them(tmp_path):
    x, labels, _ = rare_clusters()
    classes = sorted(set(labels.tolist()))
    index = np.array([classes.index(c) for c in labels])
    named = load_pool_file(_npz(tmp_path / "named.npz", embeddings=x, labels=labels))
    indexed = load_pool_file(_npz(tmp_path / "indexed.npz", embeddings=x, labels=index, classes=np.array(classes)))
    assert indexed.classes == named.classes == classes  # not '0', '1', ...
    np.testing.assert_array_equal(indexed.truth, named.truth)
    with pytest.raises(PoolFileError, match=rf"labels.* holds class index {len(classes)}, but 'classes' names "
                                            rf"{len(classes)} classes"):
        load_pool_file(_npz(tmp_path / "bad.npz", embeddings=x, labels=np.r_[index[:-1], len(classes)],
                            classes=np.array(classes)))
