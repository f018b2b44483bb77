"""Combined: three weights move the batch as an ML lead expects, and every reason shows the three terms."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from sampler import Combined, most_uncertain
from tests.sampler.synthetic import build_pool

REASON = re.compile(r"^combined (-?\d+\.\d+) = uncertainty (\d\.\d{3}) x ([\d.]+) \(max binary entropy; "
                    r"\d+(?:st|nd|rd|th) most uncertain of \d+ candidates\) "
                    r"\+ diversity (\d\.\d{3}) x ([\d.]+) \((.+); typical spacing (\d\.\d+)\) "
                    r"\+ balance (\d\.\d{3}) x ([\d.]+) \((.+)\)$")


def _inputs(store):
    pool = store.pool()
    return pool, store.embeddings(pool.model_version.embedding_space)


def test_without_diversity_and_balance_it_is_uncertainty_order(store):
    build_pool(store, hot_clusters=(0, 1))
    pool, emb = _inputs(store)
    picks = Combined(weights={"diversity": 0, "balance": 0}, uncertainty="max_entropy", random_state=0).query(pool, emb, 15)
    expected = pool.clip_id[most_uncertain(pool.max_entropy, pool.clip_id, 15)]
    assert [p.clip_id for p in picks] == expected.tolist()
    assert [p.score for p in picks] == sorted((p.score for p in picks), reverse=True)


def test_without_uncertainty_it_spreads(store):
    syn = build_pool(store, hot_clusters=(0, 1))
    pool, emb = _inputs(store)
    spread = Combined(weights={"uncertainty": 0, "balance": 0}, random_state=0).query(pool, emb, 8)
    assert sorted(syn.of([p.clip_id for p in spread], "cluster")) == list(range(8))
    both = Combined(weights={"balance": 0}, random_state=0).query(pool, emb, 8)
    # uncertainty pulls the first picks into the hot clusters, diversity then spreads the rest
    assert set(syn.of([p.clip_id for p in both[:2]], "cluster")) == {0, 1}
    assert len(set(syn.of([p.clip_id for p in both], "cluster"))) == 8
    plain = Combined(weights={"diversity": 0, "balance": 0}, random_state=0).query(pool, emb, 8)
    assert set(syn.of([p.clip_id for p in plain], "cluster")) == {0, 1}


def test_balance_weight_spreads_over_strata(store):
    syn = build_pool(store, hot_clusters=(0,))
    pool, emb = _inputs(store)
    hot_site = Counter(syn.of([p.clip_id for p in Combined(weights={"diversity": 0, "balance": 0}, strata=("site",),
                                                            random_state=0).query(pool, emb, 9)], "site"))
    balanced = Combined(weights={"diversity": 0, "balance": 5}, strata=("site",), random_state=0).query(pool, emb, 9)
    assert Counter(syn.of([p.clip_id for p in balanced], "site")) == {"A": 3, "B": 3, "C": 3}
    assert hot_site != {"A": 3, "B": 3, "C": 3}  # the check can fail: uncertainty alone is not balanced
    weighted = Combined(weights={"diversity": 0, "balance": 5}, strata=("site",), quotas={"site=A": 2},
                        random_state=0).query(pool, emb, 8)
    assert Counter(syn.of([p.clip_id for p in weighted], "site")) == {"A": 4, "B": 2, "C": 2}


def test_labelled_clips_push_the_batch_away(store):
    syn = build_pool(store, hot_clusters=(0, 1))
    pool, emb = _inputs(store)
    labelled = syn.clip_ids[np.isin(syn.cluster, (0, 1))][:6].tolist()
    picks = Combined(weights={"uncertainty": 1, "diversity": 3, "balance": 0}, random_state=0).query(
        pool, emb, 6, exclude=labelled)
    assert not {0, 1} & set(syn.of([p.clip_id for p in picks], "cluster"))
    assert "labelled, pending or picked for another stratum" in picks[0].reason


def test_reasons_give_the_three_terms_and_add_up(store):
    build_pool(store)
    pool, emb = _inputs(store)
    w = {"uncertainty": 1.0, "diversity": 0.5, "balance": 2.0}
    picks = Combined(weights=w, strata=("site", "hour"), uncertainty="max_entropy", random_state=0).query(pool, emb, 12)
    for p in picks:
        m = REASON.match(p.reason)
        assert m, p.reason
        total, u, wu, d, wd, d_txt, _, b, wb, b_txt = m.groups()
        assert float(total) == pytest.approx(p.score, abs=1e-3)
        assert float(u) * float(wu) + float(d) * float(wd) + float(b) * float(wb) == pytest.approx(p.score, abs=0.005)
        assert (float(wu), float(wd), float(wb)) == (1.0, 0.5, 2.0)
        assert b_txt.startswith(f"stratum {p.stratum}: ")
    assert "nothing picked or labelled yet" in picks[0].reason
    assert len({p.reason.split(" + ")[0] for p in picks}) == len(picks)  # the uncertainty parts tell picks apart
    assert "to picked clip" in picks[-1].reason


def test_same_seed_same_batch_and_all_zero_weights_refused(store):
    build_pool(store, structured=False)
    pool, emb = _inputs(store)
    assert Combined(random_state=5).query(pool, emb, 10) == Combined(random_state=5).query(pool, emb, 10)
    with pytest.raises(ValueError, match=r"weights are all 0"):
        Combined(weights={"uncertainty": 0, "diversity": 0, "balance": 0}).query(pool, emb, 3)
