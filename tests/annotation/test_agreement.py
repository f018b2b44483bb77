"""Agreement between experts against a hand computation, and the one answer per clip training uses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from annotation.agreement import Settled, agreement, consensus
from store import Annotation

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
A, B = "Turdus merula_Eurasian Blackbird", "Erithacus rubecula_European Robin"


def ann(i, clip, who, labels, *, minutes=0, gt=False, lead=None, state="active"):
    return Annotation(id=i, clip_id=clip, project_id=1, ls_task_id=100 + clip, ls_annotation_id=i, labels=labels,
                      annotator=who, created_at=T0 + timedelta(minutes=minutes), updated_at=T0 + timedelta(minutes=minutes),
                      ground_truth=gt, lead_time=lead, state=state)


def test_kappa_per_species_matches_a_hand_computation():
    # 4 clips labelled by both ann and bob:     blackbird: ann 1,1,0,0 / bob 1,0,0,0
    anns = [ann(1, 1, "ann", [A], lead=10), ann(2, 1, "bob", [A], lead=20),
            ann(3, 2, "ann", [A, B], lead=30), ann(4, 2, "bob", [B], lead=40),
            ann(5, 3, "ann", [B]), ann(6, 3, "bob", [B]),
            ann(7, 4, "ann", ["Noise"]), ann(8, 4, "bob", ["Noise"]),
            ann(9, 5, "ann", [A])]  # clip 5: one expert only
    r = agreement(anns)
    assert r.double == 4 and r.exact == pytest.approx(3 / 4)
    by = {s.label: s for s in r.species}
    # blackbird: observed agreement 3/4; p(ann yes)=1/2, p(bob yes)=1/4 -> chance = 1/2*1/4 + 1/2*3/4 = 1/2
    # kappa = (0.75 - 0.5) / (1 - 0.5) = 0.5
    assert by[A].kappa == pytest.approx(0.5) and (by[A].n, by[A].both, by[A].one) == (4, 1, 1)
    # robin: ann 0,1,1,0 / bob 0,1,1,0 -> perfect
    assert by[B].kappa == pytest.approx(1.0)
    assert [d.clip_id for d in r.disagreements] == [2]
    assert r.disagreements[0].answers == {"ann": sorted([A, B]), "bob": [B]}
    ann_stats = next(a for a in r.annotators if a.annotator == "ann")
    assert (ann_stats.annotations, ann_stats.seconds, ann_stats.median_seconds) == (5, 40.0, 20.0)


def test_training_takes_ground_truth_else_the_majority_and_never_an_even_split():
    anns = [ann(1, 1, "ann", [A]), ann(2, 1, "bob", [B]),                        # split: left out
            ann(3, 2, "ann", [A]), ann(4, 2, "bob", [B]), ann(5, 2, "cy", [B]),    # majority: robin
            ann(6, 3, "ann", [A]), ann(7, 3, "bob", [B], gt=True),                # adjudicated: robin
            ann(8, 4, "ann", [A]), ann(9, 4, "ann", [B], minutes=5),             # one expert edited: latest
            ann(10, 5, "bob", [A]), ann(11, 5, "ann", [B], state="rejected")]    # rejected answers do not vote
    labels, split = consensus(anns)
    assert split == [1]
    assert labels == {2: [B], 3: [B], 4: [B], 5: [A]}


def test_an_adjudicated_or_majority_clip_is_not_to_adjudicate_and_the_rest_is_what_training_leaves_out():
    anns = [ann(1, 1, "ann", [A]), ann(2, 1, "bob", [B]),                        # split: to adjudicate
            ann(3, 2, "ann", [A]), ann(4, 2, "bob", [B], gt=True),                # adjudicated in Label Studio
            ann(5, 3, "ann", [A]), ann(6, 3, "bob", [B]), ann(7, 3, "cy", [B])]   # a majority settles it
    r = agreement(anns)
    assert [d.clip_id for d in r.disagreements] == [1, 2, 3]
    assert [d.clip_id for d in r.to_adjudicate] == [1] == consensus(anns)[1]
    assert r.settled == {Settled.GROUND_TRUTH: 1, Settled.MAJORITY: 1}
