"""What a submission means: merged labels from ticks, search and typed names, or a reason an annotator can act on."""

from __future__ import annotations

import pytest

from annotation.answers import read_answer
from annotation.client import preticked, suggestions
from annotation.vocabulary import Vocabulary
from store import AnnotationState

TOAD = "Anaxyrus cognatus_Great Plains Toad"
ROBIN = "Turdus migratorius_American Robin"
VOCAB = Vocabulary.of([TOAD, ROBIN, "Turdus merula_Eurasian Blackbird", "Dog_Dog", "Other", "Noise"])


def ticks(*labels):
    return {"from_name": "species", "to_name": "audio", "type": "choices", "value": {"choices": list(labels)}}


def search(*paths):
    return {"from_name": "taxon", "to_name": "audio", "type": "taxonomy", "value": {"taxonomy": [list(p) for p in paths]}}


def typed(text):
    return {"from_name": "new_species", "to_name": "audio", "type": "textarea", "value": {"text": [text]}}


def test_ticks_search_and_typed_names_merge_into_one_label_list():
    a = read_answer([ticks(ROBIN, "Other"), search(["Anaxyrus sp.", TOAD]), typed("Bufo novus_New Toad")],
                    vocabulary=VOCAB)
    assert a.state == AnnotationState.ACTIVE and a.note is None
    assert a.labels == [ROBIN, TOAD, "Bufo novus_New Toad"] and a.new_names == ("Bufo novus_New Toad",)


def test_a_genus_only_answer_and_a_typed_known_name():
    a = read_answer([ticks("Other"), search(["Anaxyrus sp."]), typed("great plains toad")], vocabulary=VOCAB)
    assert a.labels == ["Anaxyrus sp.", TOAD] and a.new_names == ()


@pytest.mark.parametrize("result, reason", [
    ([], "empty submission"),
    ([ticks("Noise", ROBIN)], "Noise (no species) ticked together with Turdus migratorius_American Robin"),
    ([ticks("Noise"), search(["Anaxyrus sp.", TOAD])], "Noise (no species) ticked together with"),
    ([ticks("Other")], "Other species ticked but no species picked"),
    ([ticks("Made up_Label")], "label(s) the project does not offer: 'Made up_Label'"),
])
def test_unusable_submissions_are_rejected_with_their_real_reason(result, reason):
    a = read_answer(result, vocabulary=VOCAB)
    assert a.state == AnnotationState.REJECTED and reason in a.note


def test_one_species_projects_refuse_two_and_skips_say_so():
    a = read_answer([ticks("Other"), search(["Anaxyrus sp.", TOAD]), typed("Robin")], vocabulary=VOCAB, single=True)
    assert a.state == AnnotationState.REJECTED and "where the model takes one per clip" in a.note
    assert read_answer([], was_cancelled=True, vocabulary=VOCAB).note.startswith("skipped")
    assert read_answer([ticks("Noise")], vocabulary=VOCAB).labels == ["Noise"]


def test_older_projects_keep_their_fixed_label_set():
    assert read_answer([ticks(ROBIN)], allowed={ROBIN, "Noise"}).state == AnnotationState.ACTIVE
    a = read_answer([ticks(TOAD)], allowed={ROBIN, "Noise"})
    assert a.state == AnnotationState.REJECTED and "outside the label set" in a.note
    assert "empty submission" in read_answer([], allowed={ROBIN}).note


def test_pre_annotations_tick_few_species_above_the_threshold_never_other_noise_alone():
    offered = [ROBIN, TOAD, "Turdus merula_Eurasian Blackbird", "Dog_Dog", "Noise", "Other"]
    preds = [(ROBIN, 0.9), ("Other", 0.8), ("Noise", 0.7), (TOAD, 0.6), ("Turdus merula_Eurasian Blackbird", 0.55),
             ("Dog_Dog", 0.52)]
    got = preticked(preds, offered, threshold=0.5)
    assert got == [ROBIN, TOAD, "Turdus merula_Eurasian Blackbird"]  # at most 3, no Other, no Noise with species
    assert preticked([("Noise", 0.9), (ROBIN, 0.6)], offered, 0.5) == ["Noise"]  # Noise only alone
    assert preticked([(ROBIN, 0.4)], offered, 0.5) == []
    shown = suggestions(preds)
    assert [s["alias"] for s in shown] == [ROBIN, TOAD, "Turdus merula_Eurasian Blackbird", "Dog_Dog"]
    assert shown[0]["value"] == "American Robin (Turdus migratorius) 0.90"
