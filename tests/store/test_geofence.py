"""Geofence rules as SpeciesNet applies them: its own test cases (cameratrapai, speciesnet/geofence_utils_test.py)
on hand-built rules, our labels mapped by scientific name, and files that do not fit named in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from store.geofence import Geofence, RollUp, ancestor, scientific_names, taxon_name

# SpeciesNet's labels: id;class;order;family;genus;species;common name
BLANK = "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank"
HUMAN = "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human"
LION = "ddf59264-185a-4d35-b647-2785792bdf54;mammalia;carnivora;felidae;panthera;leo;lion"
PANTHERA_GENUS = "fbb23d07-6677-43db-b650-f99ac452c50f;mammalia;carnivora;felidae;panthera;;panthera species"
FELIDAE_FAMILY = "df8514b0-10a5-411f-8ed6-0f415e8153a3;mammalia;carnivora;felidae;;;cat family"
ANIMAL = "1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal"
BROWN_BEAR = "330bb1e9-84d6-4e41-afa9-938aee17ea29;mammalia;carnivora;ursidae;ursus;arctos;brown bear"
POLAR_BEAR = "e7f83bf6-df2c-4ce0-97fc-2f233df23ec4;mammalia;carnivora;ursidae;ursus;maritimus;polar bear"
GIANT_PANDA = "85662682-67c1-4ecb-ba05-ba12e2df6b65;mammalia;carnivora;ursidae;ailuropoda;melanoleuca;giant panda"
PUMA = "9c564562-9429-405c-8529-04cff7752282;mammalia;carnivora;felidae;puma;concolor;puma"
SAND_CAT = "e588253d-d61d-4149-a96c-8c245927a80f;mammalia;carnivora;felidae;felis;margarita;sand cat"

#: SpeciesNet's test geofence map, verbatim in shape
RULES = {
    "mammalia;carnivora;felidae;panthera;leo": {"allow": {"KEN": [], "TZA": []}},
    "mammalia;carnivora;felidae;panthera;": {"allow": {"KEN": [], "TZA": [], "USA": ["AK", "CA"]}},
    "mammalia;carnivora;felidae;;": {"allow": {"FRA": [], "KEN": [], "TZA": [], "USA": []},
                                     "block": {"FRA": [], "USA": ["NY"]}},
    "mammalia;carnivora;felidae;felis;margarita": {"block": {"AUS": []}},
    "mammalia;carnivora;ursidae;;": {"block": {"GBR": []}},
}


@pytest.fixture
def fence() -> Geofence:
    return Geofence.from_dict(RULES, source="test rules")


@pytest.mark.parametrize("label, country, admin1, fenced", [
    (LION, None, None, False),            # no country: never fenced
    (PUMA, "USA", None, False),           # no rule for the label
    (PUMA, "USA", "CA", False),
    (LION, "GBR", None, True),            # allow: a country not listed
    (LION, "KEN", None, False),
    (PANTHERA_GENUS, "USA", None, False),  # allowed regions listed, region unknown: allowed
    (PANTHERA_GENUS, "USA", "NY", True),  # a region not listed
    (PANTHERA_GENUS, "USA", "CA", False),
    (FELIDAE_FAMILY, "FRA", None, True),  # block: the whole country (it is also allowed: block wins)
    (FELIDAE_FAMILY, "TZA", None, False),
    (FELIDAE_FAMILY, "USA", "CA", False),
    (FELIDAE_FAMILY, "USA", "NY", True),  # block: a listed region
    (SAND_CAT, "GBR", None, False),
    (SAND_CAT, "AUS", None, True),
])
def test_speciesnets_rule_cases(fence, label, country, admin1, fenced):
    assert fence.fenced(label, country, admin1) is fenced


def test_a_fenced_top_label_rolls_up_as_speciesnet_does(fence):
    """geofence_animal_classification's cases: family first, the highest allowed sum at the first level that
    reaches the top score; the rolled-up label's own rule counts (Felidae blocked in New York)."""
    labels = [LION, POLAR_BEAR, BLANK, FELIDAE_FAMILY]
    scores = [0.4, 0.3, 0.2, 0.1]
    assert fence.roll_up(scores, labels, "TZA") == (LION, pytest.approx(0.4), "species")
    assert fence.roll_up(scores, labels, "USA") == ("Felidae", pytest.approx(0.5), "family")
    assert fence.roll_up(scores, labels, "USA", "NY") == ("Carnivora", pytest.approx(0.8), "order")
    # the order of the labels does not matter: the top is the best score
    assert fence.roll_up(scores[::-1], labels[::-1], "USA") == ("Felidae", pytest.approx(0.5), "family")


def test_roll_up_sums_to_genus_then_family(fence):
    """With genus among the levels (SpeciesNet's general roll-up; its geofence path starts at family). A polar bear
    outside Alaska rolls up to Ursus, summed over both bears; where Ursus is blocked (Ireland), to Ursidae, summed
    over every bear. Rules do not inherit: Ursidae's block in Britain leaves Ursus allowed there until Ursus is
    blocked too (SpeciesNet's release propagates species rules up when it is built)."""
    rules = {**RULES, "mammalia;carnivora;ursidae;ursus;maritimus": {"allow": {"CAN": [], "USA": ["AK"]}},
             "mammalia;carnivora;ursidae;ursus;": {"block": {"IRL": []}}}
    fence = Geofence.from_dict(rules)
    labels = [POLAR_BEAR, BROWN_BEAR, GIANT_PANDA, HUMAN]
    scores = [0.6, 0.25, 0.1, 0.05]
    levels = ("genus", "family", "order", "class", "kingdom")
    assert fence.roll_up(scores, labels, "USA", "AK", levels=levels).level == "species"
    assert fence.roll_up(scores, labels, "USA", "CA", levels=levels) == ("Ursus", pytest.approx(0.85), "genus")
    assert fence.roll_up(scores, labels, "IRL", levels=levels) == ("Ursidae", pytest.approx(0.95), "family")
    assert fence.roll_up(scores, labels, "GBR", levels=levels) == ("Ursus", pytest.approx(0.85), "genus")
    rules["mammalia;carnivora;ursidae;ursus;"] = {"block": {"IRL": [], "GBR": []}}
    fence = Geofence.from_dict(rules)
    assert fence.roll_up(scores, labels, "GBR", levels=levels) == ("Carnivora", pytest.approx(0.95), "order")
    # SpeciesNet's default levels skip the genus
    assert fence.roll_up(scores, labels, "USA", "CA") == ("Ursidae", pytest.approx(0.95), "family")


def test_roll_up_sums_over_the_top_five_only(fence):
    labels = [LION] + [f"x;mammalia;carnivora;felidae;felis;s{i};cat {i}" for i in range(6)]
    scores = [0.30] + [0.11] * 6
    assert fence.roll_up(scores, labels, "USA") == ("Felidae", pytest.approx(0.74), "family")
    assert fence.roll_up(scores, labels, "USA", top_k=None) == ("Felidae", pytest.approx(0.96), "family")


def test_kingdom_is_the_last_resort_and_unmapped_labels_fail_named(fence):
    rules = {"mammalia;carnivora;felidae;panthera;leo": {"allow": {"KEN": []}},
             **{k: {"block": {"GBR": []}} for k in ("mammalia;carnivora;felidae;;", "mammalia;carnivora;;;",
                                                   "mammalia;;;;")}}
    fence = Geofence.from_dict(rules)
    assert fence.roll_up([0.5, 0.2, 0.3], [LION, HUMAN, ANIMAL], "GBR") == ("animal", pytest.approx(1.0), "kingdom")
    alone = Geofence.from_dict({"mammalia;carnivora;felidae;panthera;leo": {"allow": {"KEN": []}}})
    assert alone.roll_up([0.9, 0.1], ["Panthera leo (Lion)", "Noise"], "GBR") == \
        ("Felidae", pytest.approx(0.9), "family")
    assert str(RollUp("Felidae", 0.9, "family")) == "Felidae (family) 0.90"


@pytest.mark.parametrize("label, names", [
    ("Cyanocitta cristata (Blue Jay)", [("cyanocitta", "cristata")]),
    ("Turdus merula_Eurasian Blackbird", [("turdus", "merula")]),
    ("African elephant, Loxodonta africana", [("loxodonta", "africana")]),
    ("American black bear, black bear, Ursus americanus, Euarctos americanus",
     [("ursus", "americanus"), ("euarctos", "americanus")]),
    ("Loxodonta africana", [("loxodonta", "africana")]),
    ("Junco hyemalis oreganus (Oregon Junco)", [("junco", "hyemalis")]),
    ("tusker", []), ("Noise", []), ("Blue Jay", []), ("Great Tit_Parus major", []),
])
def test_scientific_names_of_our_labels(label, names):
    assert scientific_names(label) == names


def test_our_labels_map_by_genus_and_species_and_the_rest_are_named():
    fence = Geofence.from_dict({
        "mammalia;proboscidea;elephantidae;loxodonta;africana": {"allow": {"KEN": [], "TZA": []}},
        "mammalia;proboscidea;elephantidae;elephas;maximus": {"allow": {"IND": [], "LKA": []}},
        "mammalia;proboscidea;elephantidae;;": {"allow": {"IND": [], "KEN": [], "LKA": [], "TZA": []}}})
    labels = ["African elephant, Loxodonta africana", "Indian elephant, Elephas maximus",
              "Loxodonta cyclotis (African Forest Elephant)", "tusker", "Noise"]
    m = fence.mapping(labels)
    assert m.keys[2] == "mammalia;proboscidea;elephantidae;loxodonta;cyclotis"  # its genus's lineage
    assert (m.mapped, m.covered, m.unmapped) == (3, 2, ["tusker", "Noise"])
    assert fence.fenced(labels[0], "IND") and not fence.fenced(labels[1], "IND")
    assert not fence.fenced(labels[2], "IND")  # no rule of its own: never fenced, though it rolls up
    assert fence.roll_up([0.7, 0.1, 0.05, 0.15], labels[:4], "IND") == ("Elephantidae", pytest.approx(0.85), "family")
    assert fence.fenced_codes(np.array([0, 1, 0, 0]), labels, np.array([1, 1, 0, 2]), ["", "IND", "KEN"],
                              np.zeros(4, dtype=int), [""]).tolist() == [True, False, False, False]


def test_ancestors_and_names():
    key = "mammalia;carnivora;felidae;panthera;leo"
    assert [ancestor(key, lv) for lv in ("genus", "family", "order", "class", "kingdom")] == [
        "mammalia;carnivora;felidae;panthera;", "mammalia;carnivora;felidae;;", "mammalia;carnivora;;;",
        "mammalia;;;;", ";;;;"]
    assert ancestor("mammalia;carnivora;felidae;;", "genus") is None
    assert [taxon_name(k) for k in (key, "mammalia;carnivora;felidae;;", ";;;;")] == ["Panthera leo", "Felidae",
                                                                                   "animal"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not JSON"),
    ("[]", "expected a JSON object of taxonomy strings"),
    ('{"mammalia;carnivora": {"allow": {}}}', "key 'mammalia;carnivora' is not a taxonomy string"),
    ('{"mammalia;;felidae;;": {"allow": {}}}', "key 'mammalia;;felidae;;' is not a taxonomy string"),
    ('{"mammalia;carnivora;felidae;;": {"allows": {}}}', "'mammalia;carnivora;felidae;;' must be an object with"),
    ('{"mammalia;carnivora;felidae;;": {"allow": {"US": []}}}', "country 'US' is not an ISO 3166-1 alpha-3"),
    ('{"mammalia;carnivora;felidae;;": {"block": {"USA": "NY"}}}', "USA must map to a list of admin1"),
])
def test_bad_files_are_named_in_one_line(tmp_path, content, message):
    path = tmp_path / "rules.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as e:
        Geofence.from_file(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="cannot read the geofence file"):
        Geofence.from_file(tmp_path / "missing.json")


def test_rules_round_trip_through_json(tmp_path, fence):
    again = Geofence.from_dict(json.loads(fence.to_json()))
    assert again.rules == fence.rules
