"""Several experts on one clip: how far they agree, where they disagree, and the one answer training uses.

Agreement is measured per species on the clips two experts labelled, as Cohen's kappa of "present / not
present" (scikit-learn's ``cohen_kappa_score``) with its n, so a lead sees which species experts confuse.
Fine-tuning never trains on both copies of a doubly labelled clip: it takes the adjudicated answer (an
annotation marked ground truth in Label Studio), else the only answer, else the answer a strict majority of
experts gave; a clip whose experts split evenly waits for adjudication and is reported, never guessed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from statistics import median
from typing import Iterable, Optional, Sequence

from store import Annotation, AnnotationState


@dataclass(frozen=True)
class SpeciesAgreement:
    """Agreement on one species over ``n`` doubly labelled clips; ``kappa`` None when it is undefined (both
    experts gave the same constant answer, so chance agreement is total)."""

    label: str
    n: int
    kappa: Optional[float]
    both: int       # clips where both experts named it
    one: int        # clips where only one did
    observed: float  # share of the n clips with the same answer for this species


@dataclass(frozen=True)
class AnnotatorSummary:
    annotator: str
    annotations: int
    seconds: float              # total lead time Label Studio measured
    median_seconds: Optional[float]


class Settled(StrEnum):
    """How the answer training takes for a clip was reached (``consensus``)."""

    GROUND_TRUTH = "ground truth"  # adjudicated: an answer marked ground truth in Label Studio
    ONLY = "only answer"
    MAJORITY = "majority"          # a strict majority of the experts gave it
    SPLIT = "split"                # the experts split evenly: the clip waits for adjudication


@dataclass(frozen=True)
class Disagreement:
    clip_id: int
    task_id: int
    project_id: int
    answers: dict[str, list[str]]  # annotator -> labels
    settled: Settled = Settled.SPLIT


@dataclass
class AgreementReport:
    """``disagreements``: every clip whose experts' answers differ; ``to_adjudicate``: those training leaves out."""

    double: int = 0                    # clips with answers from two or more experts
    exact: float = float("nan")        # share of them where the first two experts gave the same label set
    species: list[SpeciesAgreement] = field(default_factory=list)
    annotators: list[AnnotatorSummary] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def to_adjudicate(self) -> list[Disagreement]:
        """The clips whose experts split evenly and nobody adjudicated: what fine-tuning leaves out."""
        return [d for d in self.disagreements if d.settled == Settled.SPLIT]

    @property
    def settled(self) -> "Counter[Settled]":
        """How many disagreements were settled, by how (ground truth, majority)."""
        return Counter(d.settled for d in self.disagreements if d.settled != Settled.SPLIT)


def _who(a: Annotation) -> str:
    return a.annotator or f"annotation {a.ls_annotation_id}"


def answers_by_clip(annotations: Iterable[Annotation]) -> dict[int, dict[str, Annotation]]:
    """clip id -> annotator -> that annotator's latest active answer (an expert who edits keeps one answer)."""
    out: dict[int, dict[str, Annotation]] = {}
    for a in annotations:
        if a.state != AnnotationState.ACTIVE:
            continue
        mine = out.setdefault(int(a.clip_id), {})
        cur = mine.get(_who(a))
        if cur is None or ((a.updated_at or a.created_at), a.id or 0) >= ((cur.updated_at or cur.created_at), cur.id or 0):
            mine[_who(a)] = a
    return out


def consensus(annotations: Iterable[Annotation]) -> tuple[dict[int, list[str]], list[int]]:
    """The labels training uses per clip, and the clips left out because their experts split evenly.

    Ground truth (adjudicated in Label Studio) wins; else a single expert's answer; else the label set a
    strict majority of the experts gave.
    """
    labels: dict[int, list[str]] = {}
    split: list[int] = []
    for clip_id, answers in sorted(answers_by_clip(annotations).items()):
        answer, how = settle(answers)
        if how == Settled.SPLIT:
            split.append(clip_id)
        else:
            labels[clip_id] = answer
    return labels, split


def settle(answers: dict[str, Annotation]) -> tuple[list[str], Settled]:
    """The labels training takes from one clip's answers (annotator -> answer) and how they were reached; no
    labels when the experts split evenly. One rule for ``consensus`` and ``agreement``, so the clips listed to
    adjudicate are exactly the ones fine-tuning leaves out."""
    truth = [a for a in answers.values() if a.ground_truth]
    if truth:
        chosen = max(truth, key=lambda a: (a.updated_at or a.created_at, a.id or 0))
        return sorted(set(chosen.labels)), Settled.GROUND_TRUTH
    votes = Counter(tuple(sorted(set(a.labels))) for a in answers.values())
    best, count = votes.most_common(1)[0]
    if count == len(answers) == 1:
        return list(best), Settled.ONLY
    if count * 2 > len(answers):
        return list(best), Settled.MAJORITY
    return [], Settled.SPLIT


def _kappa(a: Sequence[int], b: Sequence[int]) -> Optional[float]:
    from sklearn.metrics import cohen_kappa_score

    if len(set(a) | set(b)) < 2:
        return None
    value = float(cohen_kappa_score(a, b))
    return None if math.isnan(value) else value


def agreement(annotations: Sequence[Annotation]) -> AgreementReport:
    """Per-species agreement of the first two experts (by name) on every doubly labelled clip, what each
    expert did and how long it took, and the clips whose answers differ, each with how training settles it."""
    report = AgreementReport()
    by_clip = answers_by_clip(annotations)
    pairs: list[tuple[set[str], set[str]]] = []
    for clip_id, answers in sorted(by_clip.items()):
        if len(answers) < 2:
            continue
        first, second = (answers[k] for k in sorted(answers)[:2])
        pairs.append((set(first.labels), set(second.labels)))
        if len({tuple(sorted(set(a.labels))) for a in answers.values()}) > 1:
            report.disagreements.append(Disagreement(clip_id, int(first.ls_task_id), int(first.project_id),
                                                     {k: sorted(set(v.labels)) for k, v in sorted(answers.items())},
                                                     settle(answers)[1]))
    report.double = len(pairs)
    if pairs:
        report.exact = sum(x == y for x, y in pairs) / len(pairs)
        for label in sorted(set().union(*(x | y for x, y in pairs))):
            a = [int(label in x) for x, _ in pairs]
            b = [int(label in y) for _, y in pairs]
            both = sum(i and j for i, j in zip(a, b))
            one = sum(i != j for i, j in zip(a, b))
            report.species.append(SpeciesAgreement(label, len(pairs), _kappa(a, b), both, one,
                                                   1.0 - one / len(pairs)))
    per: dict[str, list[Annotation]] = {}
    for a in annotations:
        if a.state == AnnotationState.ACTIVE:
            per.setdefault(_who(a), []).append(a)
    for who, mine in sorted(per.items()):
        times = [float(a.lead_time) for a in mine if a.lead_time is not None]
        report.annotators.append(AnnotatorSummary(who, len(mine), sum(times), median(times) if times else None))
    return report
