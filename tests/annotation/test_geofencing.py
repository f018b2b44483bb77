"""Image pre-annotations under a geofence: a fenced species is never pre-ticked and the suggestion shows the
roll-up (push-free: the task payloads are built as a push builds them, without a Label Studio server)."""

from __future__ import annotations

import pytest

from annotation.config import config_for, validate_config
from annotation.geofencing import fenced_choices
from store.geofence import Geofence
from tests.conftest import CANID_RULES, placed_images

WOLF = "timber wolf, grey wolf, gray wolf, Canis lupus"
COYOTE = "coyote, prairie wolf, brush wolf, Canis latrans"
FOX = "red fox, Vulpes vulpes"


def _offered(preds):
    return [{"value": f"{label} {p:.2f}", "alias": label} for label, p in preds]


def test_a_fenced_top_label_ticks_nothing_and_its_suggestion_is_the_roll_up():
    fence = Geofence.from_dict(CANID_RULES)
    preds = [(WOLF, 0.6), (COYOTE, 0.3), ("monitor", 0.1)]
    choices = [WOLF, COYOTE, "monitor", "Noise", "Other"]
    tickable, offered = fenced_choices(preds, _offered(preds), choices, fence, "GBR")
    assert tickable == []
    assert offered[0] == {"alias": WOLF, "value": f"Canidae (family) 0.90 (rolled up: {WOLF} 0.60 is not allowed "
                                                  f"in GBR)"}
    assert offered[1]["value"] == f"{COYOTE} 0.30 (not allowed in GBR)" and offered[2]["value"] == "monitor 0.10"
    # in Minnesota wolves are allowed, coyotes too; in North Carolina the wolf is fenced, the coyote is not
    assert fenced_choices(preds, _offered(preds), choices, fence, "USA", "MN") == (choices, _offered(preds))
    tickable, offered = fenced_choices(preds, _offered(preds), choices, fence, "USA", "NC")
    assert tickable == [] and offered[0]["value"].startswith("Canidae (family) 0.90 (rolled up: ")
    # a fenced species below an allowed top: never ticked, the rest as before
    preds = [("monitor", 0.5), (COYOTE, 0.3)]
    tickable, offered = fenced_choices(preds, _offered(preds), choices, fence, "GBR")
    assert tickable == [WOLF, "monitor", "Noise", "Other"] and offered[1]["value"].endswith("(not allowed in GBR)")
    # no geofence, no country: unchanged
    assert fenced_choices(preds, _offered(preds), choices, None, "GBR") == (choices, _offered(preds))
    assert fenced_choices(preds, _offered(preds), choices, fence, None) == (choices, _offered(preds))


@pytest.mark.parametrize("country, ticked", [("GBR", []), ("POL", [WOLF])])
def test_image_tasks_of_a_push_never_pretick_a_fenced_species(tmp_path, country, ticked):
    """SpeciesNet's dog, called a grey wolf (0.33), red wolf (0.25), coyote (0.14), dhole by the default vision
    model, on a camera in Britain (no wolves: nothing ticked, the suggestion is Canidae) or in Poland (wolves
    allowed, red wolves and coyotes not: those two are not ticked; the dhole, whose genus the rules lack, is
    never fenced, but the project takes one species, so only the best is ticked)."""
    from annotation.client import LabelStudioClient, decision_threshold

    store = placed_images(tmp_path / "ws", {"domestic_dog.jpg": ("Site", country, "")})
    try:
        mv = store.pool().model_version
        dog = next(c.clip_id for c in store.clips(store.pool().clip_id) if c.path.endswith("domestic_dog.jpg"))
        labels = [label for label, _ in store.predictions([dog], mv.id)[dog]] + ["Noise", "Other"]
        interface = validate_config(config_for(labels, "image", single=True))
        clips = tmp_path / "media" / "clips"
        tasks, failed = LabelStudioClient._build_tasks(store, clips, clips.parent, [dog], mv, labels, interface,
                                                       2.0, decision_threshold(mv), dynamic=False,
                                                       geofence=Geofence.from_dict(CANID_RULES))
        assert failed == []
        [task] = tasks
        species = [r for r in task["predictions"][0]["result"] if r["from_name"] == "species"]
        assert [c for r in species for c in r["value"]["choices"]] == ticked
        top = task["data"]["suggestions"][0]
        assert top["alias"] == WOLF
        assert top["value"].startswith("Canidae (family) 0.7") == (country == "GBR")
    finally:
        store.close()


def test_a_multi_choice_project_may_have_several_species_preticked():
    from annotation.client import build_prediction

    labels = ["Canis lupus", "Cuon alpinus", "Noise", "Other"]
    preds = [("Canis lupus", 0.6), ("Cuon alpinus", 0.55), ("Noise", 0.01)]
    for single, ticked in ((True, ["Canis lupus"]), (False, ["Canis lupus", "Cuon alpinus"])):
        interface = validate_config(config_for(labels, "image", single=single))
        pred = build_prediction(1, preds, labels, None, "m", interface, min_probability=0.5)
        assert [c for r in pred["result"] for c in r["value"]["choices"]] == ticked
