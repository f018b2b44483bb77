"""What an expert's submission in Label Studio means: the labels it gives, or why it cannot be used.

A submission has three places to name species (the clip's suggestions, the taxonomy search, a typed new
name) and two special answers (Noise: no species; Other: "the species is below"). They are merged into one
list of stored labels. A submission that cannot be trained on is kept as ``rejected`` with the reason in
words the annotator can act on (the same words are written back to the task, see ``client.pull``): nothing
chosen, Noise together with a species, Other without a species, two species where the model takes one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from annotation.config import BOX, NEW_SPECIES, SPECIES, TAXON
from annotation.vocabulary import NOISE, OTHER, Vocabulary, normalise_name
from store import AnnotationState

SKIPPED = "skipped by the annotator in Label Studio"
_SPLIT = re.compile(r"[;,\n]+")


@dataclass(frozen=True)
class Answer:
    """The stored form of one submission: labels, state, and the reason when it is rejected."""

    labels: list[str]
    state: AnnotationState
    note: Optional[str] = None
    region: Optional[dict[str, float]] = None
    new_names: tuple[str, ...] = ()  # typed names the vocabulary did not know (new species)


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """Field of an SDK model or of a plain dict (the SDK returns both, depending on the endpoint)."""
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)



def _results(result: Iterable[Any]) -> tuple[list[str], list[str], list[str], Optional[dict[str, float]]]:
    """(species ticks, taxonomy picks, typed names, box) of a Label Studio result list."""
    ticks: list[str] = []
    picks: list[str] = []
    typed: list[str] = []
    region = None
    for item in result or []:
        name, kind, value = field_of(item, "from_name"), field_of(item, "type"), field_of(item, "value") or {}
        if name == SPECIES and kind == "choices":
            ticks += [str(x) for x in value.get("choices") or []]
        elif name == TAXON and kind == "taxonomy":
            picks += [str(path[-1]) for path in value.get("taxonomy") or [] if path]  # the deepest node chosen
        elif name == NEW_SPECIES and kind == "textarea":
            typed += [t for text in value.get("text") or [] for t in _SPLIT.split(str(text)) if normalise_name(t)]
        elif name == BOX and kind == "rectanglelabels":
            try:  # percent of the frame in Label Studio, normalised in the store
                region = {k: round(float(value[src]) / 100.0, 6) for k, src in
                          (("x", "x"), ("y", "y"), ("w", "width"), ("h", "height"))}
            except (KeyError, TypeError, ValueError):
                region = None
    return ticks, picks, typed, region


def typed_names(result: Iterable[Any]) -> list[str]:
    """The names typed into a submission's new-species field (as typed; ``read_answer`` resolves them)."""
    return _results(result)[2]


def read_answer(result: Iterable[Any], *, was_cancelled: bool = False, vocabulary: Optional[Vocabulary] = None,
                allowed: Iterable[str] = (), single: bool = False) -> Answer:
    """The labels of one submission, or the reason it is rejected.

    ``vocabulary``: the names of this release's projects (suggestions, taxonomy, typed names); without it
    (an older project with fixed choices) a label must be one of ``allowed``. ``single``: the project asks
    for one species per clip.
    """
    ticks, picks, typed, region = _results(result)
    rejected = lambda note: Answer(list(dict.fromkeys(ticks + picks + typed)), AnnotationState.REJECTED,  # noqa: E731
                                   note, region)
    if was_cancelled:
        return rejected(SKIPPED)
    if vocabulary is None:
        labels = list(dict.fromkeys(ticks))
        outside = [x for x in labels if x not in set(allowed)]
        if outside:
            return rejected(f"label(s) outside the label set: {', '.join(repr(x) for x in outside)}; kept, never "
                            f"trained on; add them to a new label set or correct the annotation in Label Studio")
        if not labels:
            return rejected("empty submission: no species chosen (tick Noise for a clip without any species)")
        return Answer(labels, AnnotationState.ACTIVE, None, region)

    resolved = [vocabulary.resolve(t) for t in typed]
    new = tuple(x for x in resolved if x not in vocabulary)
    unknown = [x for x in ticks + picks if x not in vocabulary and x not in (NOISE, OTHER)]
    if unknown:
        return rejected(f"label(s) the project does not offer: {', '.join(repr(x) for x in unknown)}; kept, never "
                        f"trained on; correct the annotation in Label Studio")
    named = list(dict.fromkeys([x for x in ticks if x not in (NOISE, OTHER)] + picks + resolved))
    if not ticks and not named:
        return rejected("empty submission: nothing chosen; tick the species you hear, Noise when there is "
                        "none, or Other species and pick or name it")
    if NOISE in ticks and named:
        return rejected(f"Noise (no species) ticked together with {', '.join(named)}: keep one or the other")
    if OTHER in ticks and not picks and not resolved:
        return rejected("Other species ticked but no species picked in the search or typed below it: pick or "
                        "name the species")
    if single and len(named) > 1:
        return rejected(f"{len(named)} species given ({', '.join(named)}) where the model takes one per clip: "
                        f"keep the main one")
    labels = [NOISE] if NOISE in ticks else named
    return Answer(labels, AnnotationState.ACTIVE, None, region, new)
