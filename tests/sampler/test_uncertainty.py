"""Uncertainty measures: known values, pool and matrix agree, chunked reads, NaN refused."""

from __future__ import annotations

import numpy as np
import pytest

import sampler.uncertainty as unc
from sampler import (POOL_MEASURES, UNCERTAINTY_MEASURES, UncertaintySampling, uncertainty_from_matrix,
                     uncertainty_from_probabilities, uncertainty_scores)
from store.matrices import MatrixView
from tests.sampler.synthetic import build_pool

ROWS = np.array([[0.5, 0.5, 0.0],   # a coin flip between two classes
                 [0.9, 0.05, 0.05],  # confident
                 [1 / 3, 1 / 3, 1 / 3],  # uniform
                 [0.0, 0.0, 0.0]])  # the model saw nothing


def test_known_values():
    f = uncertainty_from_probabilities
    assert f(ROWS, "max_entropy") == pytest.approx([1.0, 0.469, 0.918, 0.0], abs=1e-3)
    assert f(ROWS, "margin") == pytest.approx([1.0, 0.15, 1.0, 1.0])
    assert f(ROWS, "least_confidence") == pytest.approx([0.5, 0.1, 2 / 3, 1.0])
    assert f(ROWS, "ratio") == pytest.approx([1.0, 0.05 / 0.9, 1.0, 1.0])
    cat = f(ROWS, "categorical_entropy")
    assert cat[2] == pytest.approx(1.0) and cat[3] == pytest.approx(1.0)  # uniform and empty: maximal
    assert cat[0] == pytest.approx(np.log(2) / np.log(3), abs=1e-4)
    assert 0 < cat[1] < cat[0]
    for m in UNCERTAINTY_MEASURES:
        v = f(ROWS, m)
        assert v.shape == (4,) and np.all((v >= 0) & (v <= 1)), m
    # more confident -> less uncertain, for every measure
    for m in UNCERTAINTY_MEASURES:
        assert f(ROWS[[1]], m)[0] < f(ROWS[[0]], m)[0], m


def test_documented_measures_are_the_accepted_ones():
    import re

    documented = set(re.findall(r"^``([a-z_]+)``", unc.__doc__, flags=re.M))
    assert documented == set(UNCERTAINTY_MEASURES)
    assert set(POOL_MEASURES) | {"categorical_entropy"} == set(UNCERTAINTY_MEASURES)
    assert set(unc.UncertaintyMeasure.__args__) == set(UNCERTAINTY_MEASURES)
    with pytest.raises(ValueError, match=r"measure must be one of .*got 'entropy'"):
        uncertainty_from_probabilities(ROWS, "entropy")


def test_pool_scores_match_the_probability_matrix(store):
    syn = build_pool(store, per_cluster=10, hot_clusters=(1,))
    pool = store.pool()
    probs = store.probabilities(syn.model)  # float16 on disk
    for m in POOL_MEASURES:
        from_pool = uncertainty_scores(pool, m)
        from_matrix = uncertainty_from_matrix(probs, pool.clip_id, m, chunk_rows=7)
        assert from_matrix == pytest.approx(from_pool, abs=2e-3), m
    # chunking does not change anything, and clip order is kept
    rev = pool.clip_id[::-1]
    a = uncertainty_from_matrix(probs, rev, "categorical_entropy", chunk_rows=3)
    b = uncertainty_from_matrix(probs, rev, "categorical_entropy", chunk_rows=10_000)
    assert np.array_equal(a, b)
    assert a == pytest.approx(uncertainty_from_probabilities(syn.probabilities, "categorical_entropy")[::-1],
                              abs=2e-3)


def test_categorical_entropy_needs_the_matrix_and_ranks_by_it(store):
    syn = build_pool(store, per_cluster=10, hot_clusters=(2,))
    pool, emb = store.pool(), store.embeddings("test-space")
    with pytest.raises(ValueError, match=r"'categorical_entropy' needs the model's full probability rows"):
        UncertaintySampling(uncertainty="categorical_entropy").query(pool, emb, 3)
    picks = UncertaintySampling(uncertainty="categorical_entropy").query(
        pool, emb, 10, probabilities=store.probabilities(syn.model))
    assert set(syn.of([p.clip_id for p in picks], "cluster")) == {2}  # the hot cluster is the unsure one
    assert picks[0].reason.startswith("normalised categorical entropy")


def test_nan_probabilities_are_refused_naming_the_clip(store):
    syn = build_pool(store, per_cluster=5)
    pool, emb = store.pool(), store.embeddings("test-space")
    probs = store.probabilities(syn.model)
    data = np.array(probs.data, dtype=np.float32)
    data[4, 1] = np.nan
    bad = MatrixView(probs.name, np.asarray(probs.ids), data)
    with pytest.raises(ValueError, match=rf"probabilities of clip {int(probs.ids[4])} in matrix "
                                         r"'probabilities:birdnet-test' contain NaN"):
        UncertaintySampling(uncertainty="categorical_entropy").query(pool, emb, 3, probabilities=bad)
    with pytest.raises(ValueError, match=r"NaN or infinite values in 1 rows \(first: row 0\)"):
        uncertainty_from_probabilities(np.array([[np.nan, 0.2]]), "margin")


# --------------------------------------------------------------------------- the measure follows the outputs
def test_default_measures_follow_the_output_type():
    assert unc.resolve_measure(None, "sigmoid") == "margin"
    assert unc.resolve_measure(None, "softmax") == "categorical_entropy"
    assert unc.resolve_measure(None, "softmax", "margin") == "margin"
    for output_type, fitting in unc.FITTING_MEASURES.items():
        assert set(fitting) <= set(UNCERTAINTY_MEASURES)
        assert unc.DEFAULT_MEASURES[("entropy", output_type)] in fitting


@pytest.mark.parametrize("measure, output_type", [("categorical_entropy", "sigmoid"), ("max_entropy", "softmax"),
                                                  ("mean_entropy", "softmax")])
def test_a_measure_that_misreads_the_outputs_warns(measure, output_type):
    from sampler import SamplerWarning

    with pytest.warns(SamplerWarning, match=f"'{measure}' does not fit {output_type} outputs"):
        assert unc.resolve_measure(measure, output_type) == measure


def test_a_softmax_pool_is_ranked_by_categorical_entropy_unless_told_otherwise(store):
    import warnings

    from sampler import SamplerWarning

    syn = build_pool(store, per_cluster=5)
    store.update_model_version(syn.model.id, output_type="softmax")
    pool = store.pool(store.model_version(syn.model.id))
    probs, emb = store.probabilities(syn.model), store.embeddings("test-space")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplerWarning)  # the default fits: no warning
        picks = UncertaintySampling().query(pool, emb, 3, probabilities=probs)
    assert all(p.reason.startswith("normalised categorical entropy") for p in picks)
    with pytest.warns(SamplerWarning, match="'max_entropy' does not fit softmax"):
        UncertaintySampling(uncertainty="max_entropy").query(pool, emb, 3, probabilities=probs)


def test_a_partial_window_counts_for_its_audio_and_the_batch_says_how_many_it_holds(store):
    """A recording's zero-padded last window is as 'uncertain' as a call to the model; its uncertainty counts
    for the share that holds audio, so equally unsure full windows come first, and the run reports the share."""
    from dataclasses import replace

    from sampler import UncertaintySampling, sample
    from sampler.run import partial_windows
    from sampler.uncertainty import uncertainty_scores

    syn = build_pool(store, partial_tails=True)
    pool = store.pool()
    partial = pool.content < 0.999
    assert partial.any() and np.allclose(pool.content[partial], 1 / 3)
    assert 0.02 < partial.mean() < 0.5
    flat = replace(pool, margin=np.zeros(len(pool)), content=pool.content)  # every clip maximally unsure
    scores = uncertainty_scores(flat, "margin")
    np.testing.assert_allclose(scores[partial], 1 / 3)
    np.testing.assert_allclose(scores[~partial], 1.0)
    picks = UncertaintySampling().query(flat, store.embeddings("test-space"), int((~partial).sum()))
    assert not partial[np.searchsorted(pool.clip_id, [p.clip_id for p in picks])].any()
    run, _ = sample(store, UncertaintySampling(), 20)
    share = partial_windows(store, run)
    assert share.batch == 20 and share.pool_share == pytest.approx(partial.mean())
    assert share.statement().startswith(f"{share.picked} of 20 picks are partial windows")
    assert len(syn.clip_ids) == len(pool)
    # what `workbench sample` prints comes from the pool the batch was picked from (read once)
    from sampler.run import sample_batch

    done = sample_batch(store, UncertaintySampling(), 20)
    assert done.partial == partial_windows(store, done.run) and done.partial.pool_share == share.pool_share


def test_on_multi_label_labels_two_confident_species_and_an_empty_window_are_not_uncertain(store):
    """Sigmoid outputs of soundscape windows: two species confidently present (0.97 / 0.97) or none (0.05 /
    0.05) are known answers; one species at 0.5 is the question. The margin calls the first two most uncertain;
    once labels hold several species per clip the default reads each label on or off and asks the third."""
    from dataclasses import replace

    from sampler import UncertaintySampling
    from store.uncertainty import score_rows

    build_pool(store, n_clusters=3, per_cluster=20)
    pool = store.pool()
    n, c = len(pool), len(pool.model_version.labels)
    kind = np.arange(n) % 3  # 0: two confident species, 1: an empty window, 2: one species in doubt
    probs = np.full((n, c), 0.02)
    probs[kind == 0, :2] = 0.97
    probs[kind == 1, :2] = 0.05
    probs[kind == 2, 0] = 0.5
    sc = score_rows(probs)
    scored = replace(pool, max_entropy=sc["max_entropy"], mean_entropy=sc["mean_entropy"], top1=sc["top1"],
                     margin=sc["margin"])
    space = store.embeddings("test-space")
    single = UncertaintySampling().query(replace(scored, multi_label=False), space, n // 3)
    multi = UncertaintySampling().query(replace(scored, multi_label=True), space, n // 3)
    kind_of = dict(zip(pool.clip_id.tolist(), kind.tolist()))
    assert {kind_of[p.clip_id] for p in single} <= {0, 1}  # the margin's picks: the known answers
    assert {kind_of[p.clip_id] for p in multi} == {2}


def test_labels_say_whether_clips_hold_several_species():
    from sampler.uncertainty import is_multi_label

    assert is_multi_label([]) is None
    assert is_multi_label([["a"]] * 99 + [["a", "b"]]) is False
    assert is_multi_label([["a"]] * 90 + [["a", "b"]] * 10 + [[]] * 5) is True
