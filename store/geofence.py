"""Geofence: which species may occur in which country, and what to say instead when the top label may not.

Wildlife Insights and SpeciesNet fence image predictions by geography (no African elephant on an Asian camera
trap). The rules are SpeciesNet's ``geofence`` JSON (google/cameratrapai, ``data/geofence_release.*.json``): a
taxonomy string ``class;order;family;genus;species`` (lower case; ``mammalia;carnivora;felidae;panthera;`` for a
genus, ``mammalia;carnivora;felidae;;`` for a family) mapped to
``{"allow": {ISO3: [admin1, ...]}, "block": {ISO3: [...]}}``, an empty region list meaning the whole country.

The semantics mirror ``speciesnet/geofence_utils.py`` (cameratrapai, Apache-2.0), reimplemented here (the
speciesnet package pulls TensorFlow and PyTorch):

* ``should_geofence_animal_classification``: a label is fenced only when a country is known and the label's own
  taxonomy string has a rule (no inheritance: SpeciesNet's release propagates species rules up to genus, family
  and order when it is built). It is fenced when ``allow`` is non-empty and the country is not in it, or the
  country lists regions and the admin1 region (when known) is not among them; or when ``block`` lists the
  country with no regions, or with the admin1 region among its regions.
* ``geofence_animal_classification``: when the top label is fenced, roll up over the levels family, order,
  class, kingdom (in that order; SpeciesNet skips genus there): at each level sum the scores of the labels under
  each ancestor, take the highest-summed ancestor that is not itself fenced, and stop at the first level where
  that sum reaches the top score (``roll_up_labels_to_first_matching_level`` with threshold top - 1e-10).
  SpeciesNet sums over the classifier's top 5 classes; so does ``roll_up`` by default (``top_k``).

Our models' labels are mapped onto the rules' taxonomy by scientific name: ``Genus species (Common)`` (iNat),
``Genus species_Common`` (BirdNET), ``common, ..., Genus species`` (ImageNet), a plain binomial, or a taxonomy
string itself (5 parts, or SpeciesNet's 7 with id and common name). A binomial the rules hold as a species is
that key; one whose genus the rules know (from any key under it) gets that genus's lineage (it rolls up, though
no rule of its own fences it); the rest are unmapped (``GeofenceMapping.unmapped``): never fenced, and left
out of roll-up sums.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np

#: Taxonomy levels, most specific first; a taxonomy string holds the first five below the kingdom.
LEVELS = ("species", "genus", "family", "order", "class", "kingdom")
#: Where SpeciesNet rolls a fenced top label up to (``geofence_animal_classification``), in order.
GEOFENCE_LEVELS = ("family", "order", "class", "kingdom")
#: SpeciesNet's classifier reports its top 5 classes; roll-ups sum over those.
TOP_K = 5
#: SpeciesNet's name of the kingdom-level roll-up (its taxonomy string is ``;;;;``).
KINGDOM = "animal"
UNKNOWN = "unknown"

_ISO3 = re.compile(r"^[A-Z]{3}$")
_BINOMIAL = re.compile(r"^([A-Z][a-z-]+) ([a-z][a-z-]+)(?: [a-z][a-z-]+)?$")
_PARENS = re.compile(r"^(?P<name>[^()]+?)\s*\((?P<common>[^()]*)\)$")


class Rule(NamedTuple):
    """One taxon's rule: countries (ISO3) to admin1 regions (empty: the whole country); None when absent."""

    allow: Optional[Mapping[str, tuple[str, ...]]]
    block: Optional[Mapping[str, tuple[str, ...]]]


class RollUp(NamedTuple):
    """What a clip is called after geofencing: the label (the top label, or an allowed ancestor's name), its
    score (summed over the labels under it) and its level (``species`` when the top label was kept)."""

    label: str
    score: float
    level: str

    def __str__(self) -> str:
        return f"{self.label} {self.score:.2f}" if self.level == "species" else \
            f"{self.label} ({self.level}) {self.score:.2f}"


@dataclass(frozen=True)
class GeofenceMapping:
    """A model's ``labels`` on the rules' taxonomy: ``keys[i]`` is label i's taxonomy string ('' unmapped)."""

    labels: tuple[str, ...]
    keys: tuple[str, ...]
    ruled: tuple[bool, ...]  # label i's own taxonomy string has a rule (it can be fenced)

    @property
    def unmapped(self) -> list[str]:
        """Labels with no taxonomy in the rules: never fenced, and left out of roll-ups."""
        return [label for label, key in zip(self.labels, self.keys) if not key]

    @property
    def mapped(self) -> int:
        return sum(1 for key in self.keys if key)

    @property
    def covered(self) -> int:
        """Labels with a rule of their own."""
        return sum(self.ruled)


def check_country(value: Any, what: str = "country") -> Optional[str]:
    """An ISO 3166-1 alpha-3 code upper-cased, or None for None/''; a one-line ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    code = str(value).strip().upper()
    if not _ISO3.match(code):
        raise ValueError(f"{what} {value!r} is not an ISO 3166-1 alpha-3 code (three letters, e.g. KEN, IND, USA)")
    return code


def _parts(key: str) -> Optional[list[str]]:
    """The five parts of a taxonomy string (lower case, trailing parts empty for higher taxa), or None."""
    parts = [p.strip().lower() for p in key.split(";")]
    if len(parts) == 7:  # SpeciesNet's labels: id;class;order;family;genus;species;common name
        if not any(parts[1:6]) and parts[6] != KINGDOM:
            return None  # blank, vehicle: no taxon (SpeciesNet's "animal" label is the kingdom)
        parts = parts[1:6]
    if len(parts) != 5:
        return None
    first_empty = next((i for i, p in enumerate(parts) if not p), 5)
    if any(parts[first_empty:]):  # a gap (mammalia;;felidae;;) names no taxon
        return None
    return parts


def ancestor(key: str, level: str) -> Optional[str]:
    """The taxonomy string of ``key``'s ancestor at ``level`` (``get_ancestor_at_level``), or None when ``key``
    does not reach that level (a genus has no species ancestor)."""
    parts = key.split(";")
    depth = {"species": 5, "genus": 4, "family": 3, "order": 2, "class": 1, "kingdom": 0}[level]
    if level == "kingdom":
        return ";;;;"  # every taxon of the rules is an animal (blank, human-made and vehicle labels map to none)
    if not parts[depth - 1]:
        return None
    return ";".join(parts[:depth] + [""] * (5 - depth))


def taxon_name(key: str) -> str:
    """How a taxonomy string reads: ``Loxodonta africana``, ``Elephantidae``, ``animal`` for ``;;;;``."""
    parts = [p for p in key.split(";") if p]
    if not parts:
        return KINGDOM
    if len(parts) == 5:
        return f"{parts[3].capitalize()} {parts[4]}"
    return parts[-1].capitalize()


def scientific_names(label: str) -> list[tuple[str, str]]:
    """(genus, species) of each binomial a model label names, lower case, most likely the accepted name first.

    ``Cyanocitta cristata (Blue Jay)``, ``Turdus merula_Eurasian Blackbird``, ``Loxodonta africana``, a trinomial's
    genus and species; ImageNet's ``American black bear, black bear, Ursus americanus, Euarctos americanus`` gives
    both of its binomials (the accepted one, then the synonym). A common name alone gives none.
    """
    text = " ".join(str(label).split())
    m = _PARENS.match(text)
    candidates = [m["name"]] if m else [text.partition("_")[0], *text.split(",")[1:]]
    out = []
    for c in candidates:
        b = _BINOMIAL.match(c.strip())
        if b and (b[1].lower(), b[2].lower()) not in out:
            out.append((b[1].lower(), b[2].lower()))
    return out


def _regions(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object of ISO3 country codes to admin1 region lists, got "
                         f"{type(value).__name__}")
    out = {}
    for country, regions in value.items():
        code = check_country(country, f"{where}: country")
        if code is None:
            raise ValueError(f"{where}: an empty country code")
        if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
            raise ValueError(f"{where}: {country} must map to a list of admin1 region codes ([] for the whole "
                             f"country), got {regions!r}")
        out[code] = tuple(r.strip().upper() for r in regions)
    return out


@dataclass(frozen=True)
class Geofence:
    """SpeciesNet-style geofence rules by taxonomy string (see the module docstring for the semantics).

    ``source`` says where they came from (a file name), for messages.
    """

    rules: Mapping[str, Rule]
    source: str = ""
    _mapped: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_file(cls, path: str | Path) -> "Geofence":
        """Read and validate a rules file; errors are one line naming the file (and the key)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ValueError(f"cannot read the geofence file {path}: {e.strerror or e}") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"geofence file {path} is not JSON: {e}") from e
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "geofence") -> "Geofence":
        """Rules from SpeciesNet's JSON shape, validated: taxonomy strings to {"allow": {...}, "block": {...}}."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object of taxonomy strings (class;order;family;genus;"
                             f"species) to rules, got {type(data).__name__}")
        rules: dict[str, Rule] = {}
        for key, rule in data.items():
            parts = _parts(key) if isinstance(key, str) else None
            if parts is None or len(key.split(";")) != 5:
                raise ValueError(f"{source}: key {key!r} is not a taxonomy string class;order;family;genus;species "
                                 f"(5 parts separated by ';', empty trailing parts for a genus or family)")
            where = f"{source}: {key!r}"
            if not isinstance(rule, dict) or not rule or set(rule) - {"allow", "block"}:
                raise ValueError(f"{where} must be an object with \"allow\" and/or \"block\" (country code -> "
                                 f"admin1 regions), got {rule!r}"[:300])
            rules[";".join(parts)] = Rule(
                allow=_regions(rule["allow"], f"{where} allow") if "allow" in rule else None,
                block=_regions(rule["block"], f"{where} block") if "block" in rule else None)
        return cls(rules, source)

    def to_json(self) -> str:
        """The rules in SpeciesNet's shape (what ``from_dict`` reads back)."""
        out = {k: {name: {c: list(r) for c, r in getattr(rule, name).items()}
                   for name in ("allow", "block") if getattr(rule, name) is not None}
               for k, rule in self.rules.items()}
        return json.dumps(out, indent=1, sort_keys=True) + "\n"

    # ------------------------------------------------------------------ labels -> taxonomy
    @cached_property
    def _index(self) -> tuple[dict[tuple[str, str], str], dict[str, Optional[str]]]:
        """(genus, species) -> species key; genus -> its lineage ``class;order;family;genus`` (None: ambiguous)."""
        species: dict[tuple[str, str], str] = {}
        lineage: dict[str, Optional[str]] = {}
        for key in self.rules:
            parts = key.split(";")
            if parts[4]:
                species.setdefault((parts[3], parts[4]), key)
            if parts[3]:
                line = ";".join(parts[:4])
                if lineage.setdefault(parts[3], line) not in (line, None):
                    lineage[parts[3]] = None  # one genus name under two families: do not guess
        return species, lineage

    def taxonomy(self, label: str) -> Optional[str]:
        """``label``'s taxonomy string on these rules (see the module docstring), or None."""
        if label in self._mapped:
            return self._mapped[label]
        key: Optional[str] = None
        if ";" in label:
            parts = _parts(label)
            key = ";".join(parts) if parts is not None else None
        else:
            names = scientific_names(label)
            species, lineage = self._index
            key = next((species[n] for n in names if n in species), None)
            if key is None:
                key = next((f"{lineage[g]};{sp}" for g, sp in names if lineage.get(g)), None)
        self._mapped[label] = key
        return key

    def mapping(self, labels: Sequence[str]) -> GeofenceMapping:
        """Each of a model's ``labels`` on the rules' taxonomy, and which have a rule of their own."""
        keys = tuple(self.taxonomy(label) or "" for label in labels)
        return GeofenceMapping(tuple(labels), keys, tuple(bool(k) and k in self.rules for k in keys))

    # ------------------------------------------------------------------ the rules
    def fenced(self, label: str, country: Optional[str], admin1: Optional[str] = None) -> bool:
        """Whether ``label`` (a model label or a taxonomy string) may not be predicted in ``country`` (ISO3) and
        ``admin1`` region: SpeciesNet's ``should_geofence_animal_classification``. Never without a country."""
        if not country:
            return False
        key = self.taxonomy(label)
        rule = self.rules.get(key) if key is not None else None
        if rule is None:
            return False
        if rule.allow:
            if country not in rule.allow:
                return True
            regions = rule.allow[country]
            if admin1 and regions and admin1 not in regions:
                return True
        if rule.block and country in rule.block:
            regions = rule.block[country]
            if not regions or (admin1 and admin1 in regions):
                return True
        return False

    def roll_up(self, scores: Sequence[float] | np.ndarray, labels: Sequence[str], country: Optional[str],
                admin1: Optional[str] = None, *, levels: Sequence[str] = GEOFENCE_LEVELS,
                top_k: Optional[int] = TOP_K) -> RollUp:
        """The top label when it is allowed at ``country``/``admin1``, else its first allowed roll-up.

        SpeciesNet's ``geofence_animal_classification``: over ``levels`` in order (default family, order,
        class, kingdom), the highest summed score of an ancestor that is not fenced, at the first level where it
        reaches the top score. ``top_k`` (SpeciesNet: 5) limits the sums to the best classes; None sums all.
        No such ancestor (labels outside the rules' taxonomy): ``unknown`` with the top score.
        """
        unknown = [lv for lv in levels if lv not in LEVELS or lv == "species"]
        if unknown:
            raise ValueError(f"levels must be taxonomy levels above the species ({', '.join(LEVELS[1:])}), "
                             f"got {unknown}")
        s = np.asarray(scores, dtype=np.float64).ravel()
        if s.size != len(labels) or s.size == 0:
            raise ValueError(f"roll_up needs one score per label, got {s.size} scores for {len(labels)} labels")
        order = np.argsort(-s, kind="stable")
        if top_k is not None:
            order = order[:int(top_k)]
        top = int(order[0])
        if not self.fenced(labels[top], country, admin1):
            return RollUp(labels[top], float(s[top]), "species")
        keys = [(self.taxonomy(labels[i]), float(s[i])) for i in order]
        for level in levels:
            sums: dict[str, float] = {}
            for key, score in keys:
                up = ancestor(key, level) if key else None
                if up is not None:
                    sums[up] = sums.get(up, 0.0) + score
            best, best_score = None, 0.0
            for up, total in sums.items():  # first seen wins ties, as in SpeciesNet (its classes come best first)
                if total > best_score and not self.fenced(up, country, admin1):
                    best, best_score = up, total
            if best is not None and best_score > float(s[top]) - 1e-10:
                return RollUp(taxon_name(best), best_score, level)
        return RollUp(UNKNOWN, float(s[top]), UNKNOWN)

    def fenced_codes(self, label_codes: np.ndarray, label_categories: Sequence[str], country_codes: np.ndarray,
                     country_categories: Sequence[str], admin1_codes: np.ndarray, admin1_categories: Sequence[str]
                     ) -> np.ndarray:
        """``fenced`` for many clips given as integer codes of (label, country, admin1) into their categories
        ('' = unknown): each distinct triple is judged once, so millions of clips cost a few numpy passes."""
        n_c, n_a = max(len(country_categories), 1), max(len(admin1_categories), 1)
        combined = ((np.asarray(label_codes, dtype=np.int64) * n_c + np.asarray(country_codes, dtype=np.int64)) * n_a
                    + np.asarray(admin1_codes, dtype=np.int64))
        distinct, inverse = np.unique(combined, return_inverse=True)
        verdict = np.array([self.fenced(str(label_categories[d // (n_c * n_a)]),
                                        str(country_categories[(d // n_a) % n_c]) or None,
                                        str(admin1_categories[d % n_a]) or None) for d in distinct.tolist()],
                           dtype=bool)
        return verdict[inverse.ravel()] if distinct.size else np.zeros(0, dtype=bool)


__all__ = ["GEOFENCE_LEVELS", "KINGDOM", "LEVELS", "TOP_K", "UNKNOWN", "Geofence", "GeofenceMapping", "RollUp",
           "Rule", "ancestor", "check_country", "scientific_names", "taxon_name"]
