"""Labels by name: which class a label, a scientific name or a common name means (any case).

BirdNET's classes are ``"Scientific name_Common name"``; a head's labels, a label set or an annotator may
write either half, or the whole label, in any case. ``LabelIndex`` answers "which class is this?" for
all of them with one rule, in one place: the annotators' vocabulary (``annotation.vocabulary``) resolves
typed names with it and the range priors (``store.ranges``) map a head's labels onto the range model's
classes with it. It sits in the store, the lowest package, because both of those read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional, Sequence


def normalise_name(text: str) -> str:
    """A typed name with its spaces tidied: ``"  anaxyrus   cognatus "`` -> ``"anaxyrus cognatus"``."""
    return " ".join(str(text).split())


def name_keys(label: str) -> tuple[str, str, str]:
    """(whole label, scientific name, common name) of a label, tidied and case-folded.

    ``"Turdus merula_Eurasian Blackbird"`` -> ``("turdus merula_eurasian blackbird", "turdus merula",
    "eurasian blackbird")``; a plain name (no ``_``) gives itself three times.
    """
    scientific, sep, common = label.partition("_")
    whole = normalise_name(label).casefold()
    if not sep:
        return whole, whole, whole
    return whole, normalise_name(scientific).casefold(), normalise_name(common).casefold()


@dataclass(frozen=True)
class LabelIndex:
    """The classes of a model (``labels``, in its order), found by label, scientific or common name.

    An exact label wins over a scientific name, which wins over a common name; among classes of equal
    standing the first in order wins (BirdNET V2.4 repeats neither a scientific nor a common name).
    """

    labels: tuple[str, ...]

    @cached_property
    def _by_key(self) -> tuple[dict[str, int], ...]:
        tables: tuple[dict[str, int], ...] = ({}, {}, {})
        for i, label in enumerate(self.labels):
            for table, key in zip(tables, name_keys(label)):
                table.setdefault(key, i)
        return tables

    def find(self, name: str) -> Optional[int]:
        """The index of the class ``name`` means, or None when it names none."""
        key = normalise_name(name).casefold()
        for table in self._by_key:
            if key in table:
                return table[key]
        return None


@dataclass(frozen=True)
class LabelMapping:
    """``labels`` (a head's) mapped onto ``classes`` (another model's): ``index[i]`` is the class label i
    means, -1 where it names none (those are ``unmapped``, never dropped silently)."""

    labels: tuple[str, ...]
    classes: tuple[str, ...]
    index: tuple[int, ...]

    @property
    def unmapped(self) -> list[str]:
        """The labels that name no class, in order."""
        return [label for label, i in zip(self.labels, self.index) if i < 0]

    @property
    def mapped(self) -> int:
        return sum(1 for i in self.index if i >= 0)


#: BirdNET V2.4's classes that are sounds, not taxa ("Human vocal_Human vocal" reads like a binomial): they
#: have no range, and a head's "Noise" must never be filtered by a range model.
NON_TAXA = frozenset({"Dog", "Engine", "Environmental", "Fireworks", "Gun", "Human non-vocal", "Human vocal",
                      "Human whistle", "Noise", "Power tools", "Siren"})


def is_taxon(label: str) -> bool:
    """Whether a ``"Scientific_Common"`` (or plain) label names a taxon rather than a kind of sound."""
    return label.partition("_")[0].strip() not in NON_TAXA


def map_labels(labels: Sequence[str], classes: Sequence[str], *, taxa_only: bool = False) -> LabelMapping:
    """Each of ``labels`` as a class of ``classes``: by exact label, scientific name or common name (any case);
    with ``taxa_only`` a label meaning one of BirdNET's non-taxa (Noise, Dog, Engine, ...) names none."""
    index = LabelIndex(tuple(classes))
    found = tuple(-1 if (i := index.find(label)) is None or (taxa_only and not is_taxon(classes[i])) else i
                  for label in labels)
    return LabelMapping(tuple(labels), tuple(classes), found)
