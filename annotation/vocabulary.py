"""Every name an annotator can give a clip: all the model's classes, a genus level, and names experts added.

Active learning sends experts the clips where the model is wrong, so the species an expert hears is often
not among the pool's frequent ones. The species control offers the clip's likely species one click away;
the ``Taxonomy`` control below it searches everything the model knows (BirdNET: 6,522 classes), grouped by
genus from the scientific names, where ``"Anaxyrus sp."`` (identified to genus only) is itself an answer;
a text field takes a name the model does not know at all.

Label Studio's Taxonomy fetches its tree from ``apiUrl`` in the annotator's browser, so the tree is a JSON
file served from the local-files document root, named by its content hash: a vocabulary that grows gets a
new file and so a new project config, and a cached old tree is never shown for a new one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable, Optional, Sequence

from annotation.labelset import DEFAULT_EXTRA, display_label
from store.atomic import write_atomically
from store.labels import NON_TAXA, LabelIndex, name_keys, normalise_name  # noqa: F401 - normalise_name is re-exported

GENUS_SUFFIX = " sp."
NOISE, OTHER = "Noise", "Other"
_GENUS = re.compile(r"^[A-Z][a-z]+$")


def genus_of(label: str) -> Optional[str]:
    """The genus of a ``"Genus species_Common"`` label (or of a ``"Genus sp."`` answer); None for others."""
    if label.endswith(GENUS_SUFFIX):
        head = label[: -len(GENUS_SUFFIX)]
        return head if _GENUS.match(head) else None
    head = label.partition("_")[0].strip()
    if head in NON_TAXA:
        return None
    scientific = head.split()
    if len(scientific) >= 2 and _GENUS.match(scientific[0]) and scientific[1][:1].islower():
        return scientific[0]
    return None


def genus_label(genus: str) -> str:
    """The stored label of an identification to genus only: ``"Anaxyrus sp."``."""
    return f"{genus}{GENUS_SUFFIX}"


def is_genus_label(label: str) -> bool:
    return label.endswith(GENUS_SUFFIX) and genus_of(label) is not None


def _is_full(name: str) -> bool:
    """A ``"Scientific_Common"`` name: both halves given."""
    scientific, sep, common = name.partition("_")
    return bool(sep and scientific.strip() and common.strip())


def one_spelling_each(names: Iterable[str]) -> dict[str, str]:
    """Each of ``names`` (new species typed in one pull) -> the spelling its species is stored under.

    Full ``"Scientific_Common"`` names are one species when equal in any case; a bare name belongs to the full
    name whose scientific or common name it is, else to the bare names equal to it in any case. A group's
    spelling is its full name when it has one, else the first in sort order, so the result does not depend on
    which answer came first.
    """
    names = list(dict.fromkeys(n for n in map(normalise_name, names) if n))
    full: dict[str, list[str]] = {}
    bare: dict[str, list[str]] = {}
    for n in names:
        (full if _is_full(n) else bare).setdefault(name_keys(n)[0], []).append(n)
    out = {n: min(group) for group in full.values() for n in group}
    by_half: dict[str, str] = {}
    for spelling in sorted(set(out.values())):
        _, scientific, common = name_keys(spelling)
        by_half.setdefault(scientific, spelling)
        by_half.setdefault(common, spelling)
    for key, group in bare.items():
        spelling = by_half.get(key, min(group))
        out.update({n: spelling for n in group})
    return out


@dataclass(frozen=True)
class Vocabulary:
    """The names annotators may give: ``labels`` (model classes, label-set labels and added names), in order.

    ``resolve`` maps what an annotator typed onto a stored label when it names a known class by its label,
    its common name or its scientific name (any case; ``store.labels.LabelIndex``, the rule the range priors
    map a head's labels with too), or by how the annotator saw it (``"Common (Scientific)"``), so the same
    species never becomes two classes.
    """

    labels: tuple[str, ...]

    @classmethod
    def of(cls, *sources: Iterable[str]) -> "Vocabulary":
        seen = dict.fromkeys(x for src in sources for x in src if x and x.strip())
        return cls(tuple(seen))

    def __contains__(self, label: object) -> bool:
        return label in self._set or (isinstance(label, str) and is_genus_label(label)
                                      and genus_of(label) in self._genera)

    @cached_property
    def _set(self) -> frozenset[str]:
        return frozenset(self.labels)

    @cached_property
    def _index(self) -> LabelIndex:
        return LabelIndex(self.labels)

    @cached_property
    def _shown(self) -> dict[str, str]:
        """Each label as the annotator saw it (``display_label``), case-folded -> the label."""
        shown: dict[str, str] = {}
        for label in self.labels:
            shown.setdefault(display_label(label).casefold(), label)
        return shown

    @cached_property
    def _genera(self) -> frozenset[str]:
        return frozenset(g for g in map(genus_of, self.labels) if g)

    @cached_property
    def _bare(self) -> dict[str, str]:
        """Names experts added with one half only (``"made-up warbler"``), case-folded -> the label."""
        return {normalise_name(x).casefold(): x for x in reversed(self.labels)
                if not _is_full(x) and x not in DEFAULT_EXTRA and not is_genus_label(x)}

    def resolve(self, text: str) -> str:
        """The stored label a typed name means, else the tidied name itself (a new name)."""
        name = normalise_name(text)
        found = self._index.find(name)
        if found is not None:
            return self.labels[found]
        if name.casefold() in self._shown:
            return self._shown[name.casefold()]
        if _is_full(name):  # "Xus yus_Made-up Warbler" where an earlier answer named it "made-up warbler"
            _, scientific, common = name_keys(name)
            for half in (scientific, common):
                if half in self._bare:
                    return self._bare[half]
        genus = name[: -len(GENUS_SUFFIX)] if name.endswith(GENUS_SUFFIX) else None
        if genus and genus.capitalize() in self._genera:
            return genus_label(genus.capitalize())
        return name

    def joined(self, typed: Iterable[str]) -> "Vocabulary":
        """This vocabulary and the new names among ``typed`` (what experts typed in one pull), one spelling per
        species (``one_spelling_each``): resolving against it, two spellings of one new species in the same pull
        mean one label, whichever answer came first."""
        new = [x for x in (self.resolve(t) for t in typed if normalise_name(t)) if x not in self]
        return Vocabulary.of(self.labels, sorted(set(one_spelling_each(new).values()))) if new else self

    def tree(self) -> list[dict]:
        """Label Studio Taxonomy items: a node per genus (itself selectable, "Genus sp.") holding its species,
        and the classes without a genus (``Dog``, ``Engine``, image classes) at the top; Other and Noise are
        left out (the species control has them). Titles read ``Common (Scientific)``: the built-in search
        finds a species by either name."""
        by_genus: dict[str, list[str]] = {}
        loose: list[str] = []
        for label in self.labels:
            if label in DEFAULT_EXTRA or is_genus_label(label):
                continue
            genus = genus_of(label)
            (by_genus.setdefault(genus, []) if genus else loose).append(label)
        nodes = [{"value": display_label(x), "alias": x} for x in loose]
        for genus, members in by_genus.items():
            children = sorted(({"value": display_label(x), "alias": x} for x in members), key=lambda n: n["value"])
            nodes.append({"value": f"{genus} sp. (genus only)", "alias": genus_label(genus), "children": children})
        return sorted(nodes, key=lambda n: n["value"].casefold())

    def write_tree(self, folder: Path) -> Path:
        """The tree as ``taxonomy-<hash>.json`` in ``folder`` (written once, atomically); its path."""
        body = json.dumps(self.tree(), ensure_ascii=False, separators=(",", ":")).encode()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"taxonomy-{hashlib.sha1(body).hexdigest()[:12]}.json"
        if not path.exists() or path.read_bytes() != body:
            write_atomically(path, body)
        return path


def model_labels(store, model_version) -> list[str]:
    """The classes of a model version and of the models it was derived from (a head's base: BirdNET's 6,522)."""
    out: list[str] = []
    mv, seen = model_version, set()
    while mv is not None and mv.id not in seen:
        seen.add(mv.id)
        out.extend(mv.labels or [])
        mv = store.model_version(int(mv.parent_id)) if mv.parent_id is not None else None
    return out


def vocabulary_for(store, model_version, label_set_labels: Sequence[str] = ()) -> Vocabulary:
    """What annotators of clips scored by ``model_version`` may name: the label set, every class of the model
    and its ancestors, and every label an expert has already given (names added in earlier rounds)."""
    return Vocabulary.of(label_set_labels, model_labels(store, model_version), _given(store), DEFAULT_EXTRA)


def _given(store) -> list[str]:
    """Every label an expert has given (names added in earlier rounds among them)."""
    return [lab for a in store.annotations() for lab in a.labels]


def store_vocabulary(store, label_set_labels: Sequence[str] = ()) -> Vocabulary:
    """Every name a project of this store can have offered: all models' classes, label sets, given labels."""
    models = [lab for mv in store.model_versions() for lab in (mv.labels or [])]
    return Vocabulary.of(label_set_labels, models, _given(store), DEFAULT_EXTRA)
