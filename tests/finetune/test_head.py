"""ClassifierHead: multi-label logistic heads with class weighting, saved without pickle."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import finetune.head as head_module
from finetune import ClassifierHead


def _blobs(n_per: int = 30, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, dim)) * 4
    X = np.vstack([centers[k] + rng.normal(size=(n_per, dim)) for k in range(3)])
    Y = [[c] for c in ("ant", "bee", "cat") for _ in range(n_per)]
    return X, Y


def test_fit_returns_self_and_sets_fitted_attributes():
    X, Y = _blobs()
    head = ClassifierHead(random_state=0)
    assert head.fit(X, Y) is head
    assert head.classes_.tolist() == ["ant", "bee", "cat"]
    assert head.coef_.shape == (3, 16) and head.intercept_.shape == (3,)
    assert head.n_features_in_ == 16 and head.class_counts_.tolist() == [30, 30, 30]
    assert head.constant_classes_ == []
    proba = head.predict_proba(X)
    assert proba.shape == (90, 3) and ((proba >= 0) & (proba <= 1)).all()
    assert (proba.argmax(axis=1) == np.repeat([0, 1, 2], 30)).all()
    assert head.predict(X).sum(axis=1).tolist() == [1] * 90


def test_multi_label_clips_get_every_label():
    rng = np.random.default_rng(1)
    a, b = np.zeros(8), np.zeros(8)
    a[0], b[1] = 3, 3
    X = np.vstack([a + rng.normal(0, 0.3, (20, 8)), b + rng.normal(0, 0.3, (20, 8)),
                   a + b + rng.normal(0, 0.3, (20, 8)), rng.normal(0, 0.3, (20, 8))])
    Y = [["a"]] * 20 + [["b"]] * 20 + [["a", "b"]] * 20 + [[]] * 20
    head = ClassifierHead(random_state=0).fit(X, Y)
    pred = head.predict(X)
    assert pred[40:60].all()  # both species in the clips that hold both
    assert not pred[60:].any()  # clips labelled with no species
    assert (pred[:20] == [True, False]).all() and (pred[20:40] == [False, True]).all()


def test_class_weighting_lifts_rare_class_recall():
    rng = np.random.default_rng(0)

    def draw(n_common, n_rare):
        shift = np.zeros(8)
        shift[0] = 1.5
        X = np.vstack([rng.normal(size=(n_common, 8)), shift + rng.normal(size=(n_rare, 8))])
        return X, [["common"]] * n_common + [["common", "rare"]] * n_rare

    X, Y = draw(1000, 30)
    X_test, _ = draw(0, 400)  # held-out rare clips
    recall = {}
    for cw in ("balanced", None):
        head = ClassifierHead(class_weight=cw, random_state=0).fit(X, Y)
        rare = list(head.classes_).index("rare")
        recall[cw] = head.predict(X_test)[:, rare].mean()
    assert recall["balanced"] > 0.6
    assert recall[None] < 0.2
    assert recall["balanced"] > recall[None] + 0.4


def test_class_without_positives_or_negatives_is_constant():
    X, Y = _blobs()
    Y = [labels + ["bird"] for labels in Y]  # every clip has "bird": no negatives
    head = ClassifierHead(random_state=0).fit(X, Y, classes=["ant", "bee", "bird", "cat", "dog"])
    assert head.constant_classes_ == ["bird", "dog"]  # "dog": no positives
    proba = head.predict_proba(X)
    assert np.allclose(proba[:, 2], 90.5 / 91) and np.allclose(proba[:, 4], 0.5 / 91)
    assert (proba[:, [0, 1, 3]].argmax(axis=1) == np.repeat([0, 1, 2], 30)).all()


def test_random_state_reaches_every_inner_estimator(monkeypatch):
    seen = []

    class Spy(head_module.LogisticRegression):
        def fit(self, X, y, sample_weight=None):
            seen.append(self.random_state)
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr(head_module, "LogisticRegression", Spy)
    X, Y = _blobs()
    ClassifierHead(random_state=11).fit(X, Y)
    assert seen == [11, 11, 11]


def test_save_load_round_trip_without_pickle(tmp_path):
    X, Y = _blobs()
    head = ClassifierHead(C=0.5, max_iter=300, random_state=2).fit(X, Y, classes=["ant", "bee", "cat", "dog"])
    path = head.save(tmp_path / "models" / "head.npz")
    assert path == tmp_path / "models" / "head.npz" and path.exists()
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ["coef", "intercept", "meta"]
    loaded = ClassifierHead.load(path)
    assert loaded.get_params() == head.get_params()
    assert loaded.classes_.tolist() == ["ant", "bee", "cat", "dog"]
    assert loaded.constant_classes_ == ["dog"]
    np.testing.assert_allclose(loaded.predict_proba(X), head.predict_proba(X), rtol=1e-6)


def test_load_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no classifier head at .*missing.npz"):
        ClassifierHead.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz is not a classifier head"):
        ClassifierHead.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, coef=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="other.npz is not a classifier head"):
        ClassifierHead.load(other)


def test_constructor_stores_and_clones():
    head = ClassifierHead(C=-1, class_weight="weird")  # stored, validated at fit
    assert head.get_params() == {"C": -1, "class_weight": "weird", "max_iter": 1000, "random_state": None,
                                 "output_type": "sigmoid"}
    assert clone(head).get_params() == head.get_params()


@pytest.mark.parametrize("params, Y, match", [
    ({"C": 0}, None, r"C must be a number > 0, got 0"),
    ({"class_weight": "weird"}, None, r"class_weight must be 'balanced' or None, got 'weird'"),
    ({"max_iter": 0}, None, r"max_iter must be an integer >= 1, got 0"),
    ({}, "ant", r"Y must be a list of label lists"),
    ({}, [["ant"]] * 89 + ["bee"], r"Y\[89\] is the string 'bee'.*\['bee'\]"),
    ({}, [["ant"]] * 10, r"Y has 10 label lists but X has 90 rows"),
    ({}, [[""]] * 90, r"Y\[0\] holds ''"),
    ({}, [[]] * 90, r"no labels at all"),
])
def test_fit_errors_name_the_problem(params, Y, match):
    X, Y0 = _blobs()
    with pytest.raises(ValueError, match=match):
        ClassifierHead(**params).fit(X, Y0 if Y is None else Y)


def test_label_outside_classes_and_wrong_dim_are_refused():
    X, Y = _blobs()
    with pytest.raises(ValueError, match=r"sample 30 has label 'bee', which is not among the classes"):
        ClassifierHead().fit(X, Y, classes=["ant", "cat"])
    with pytest.raises(NotFittedError):
        ClassifierHead().predict_proba(X)
    head = ClassifierHead(random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match=r"X has 4 features but this head was fitted on 16-d embeddings"):
        head.predict_proba(X[:, :4])
    with pytest.raises(ValueError, match=r"saved as a .npz file"):
        head.save("head.pkl")


def test_softmax_head_for_single_label_data_sums_to_one_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (3, 6))
    X = np.concatenate([c + rng.normal(0, 0.5, (20, 6)) for c in centres])
    Y = [["ant"]] * 20 + [["bee"]] * 20 + [["wasp"]] * 20
    head = ClassifierHead(output_type="softmax", random_state=0).fit(X, Y, classes=["ant", "bee", "moth", "wasp"])
    probs = head.predict_proba(X)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert probs[:, 2].max() < 1e-6 and head.constant_classes_ == ["moth"]  # never seen, never predicted
    pred = head.predict(X)
    assert (pred.sum(axis=1) == 1).all() and (pred.argmax(axis=1) == np.repeat([0, 1, 3], 20)).mean() > 0.95
    again = ClassifierHead.load(head.save(tmp_path / "soft.npz"))
    assert again.output_type == "softmax"
    np.testing.assert_allclose(again.predict_proba(X), probs, atol=1e-6)
    two = ClassifierHead(output_type="softmax", random_state=0).fit(X[:40], Y[:40])
    assert (two.predict(X[:40]).argmax(axis=1) == np.repeat([0, 1], 20)).mean() > 0.95
    with pytest.raises(ValueError, match="exactly one label per clip; sample 0 has 2"):
        ClassifierHead(output_type="softmax").fit(X[:2], [["ant", "bee"], ["ant"]])
    with pytest.raises(ValueError, match="output_type must be"):
        ClassifierHead(output_type="gauss").fit(X, Y)


def test_head_for_reads_outputs_as_the_embedding_model_does():
    from finetune.head import head_for

    assert head_for("softmax", [["a"], ["b"]], C=2.0).get_params() == ClassifierHead(C=2.0, output_type="softmax").get_params()
    assert head_for("softmax", [["a"], ["a", "b"]]).output_type == "sigmoid"  # several labels on one crop
    assert head_for("sigmoid", [["a"], ["b"]]).output_type == "sigmoid"
    assert head_for("sigmoid", [["a"], ["b"]], random_state=3).random_state == 3
