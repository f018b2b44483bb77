"""Label config generation and pre-annotation building (no server needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from label_studio_sdk.label_interface import LabelInterface

from annotation.client import build_prediction
from annotation.config import label_config, species_labels, validate_config
from annotation.errors import AnnotationError
from annotation.labelset import display_label

LABELS = ["Turdus merula_Eurasian Blackbird", "Erithacus rubecula_European Robin", "Other", "Noise"]


def test_display_label():
    assert display_label("Turdus merula_Eurasian Blackbird") == "Eurasian Blackbird (Turdus merula)"
    assert display_label("Other") == "Other"
    assert display_label("Homo sapiens_Human vocal_x") == "Human vocal_x (Homo sapiens)"
    assert display_label("_odd") == "_odd"


def test_config_shows_readable_names_and_stores_the_labels():
    xml = label_config(LABELS)
    root = ET.fromstring(xml)
    audio = root.find("Audio")
    assert audio.get("name") == "audio" and audio.get("value") == "$audio"
    choices = root.find("Choices")
    assert (choices.get("name"), choices.get("toName"), choices.get("choice")) == ("species", "audio", "multiple")
    shown = [(c.get("value"), c.get("alias")) for c in choices.findall("Choice")]
    assert shown[0] == ("Eurasian Blackbird (Turdus merula)", "Turdus merula_Eurasian Blackbird")
    assert shown[2] == ("Other", None)
    window = root.find("Labels")
    assert (window.get("name"), window.get("toName"), window.find("Label").get("value")) == ("window", "audio", "window")
    headers = " ".join(h.get("value") for h in root.findall("Header"))
    for field in ("$title", "$review", "$window_start", "$window_end"):
        assert field in headers
    assert "$file" not in xml and "$site" not in xml  # blind: the task text never names the source
    # what Label Studio stores in results is exactly the label set
    assert species_labels(xml) == LABELS
    assert LabelInterface(xml).get_control("species").labels == LABELS


def test_labels_are_xml_escaped():
    odd = ['A&B_<x> "q"', "Other"]
    xml = label_config(odd)
    assert species_labels(xml) == odd
    assert ET.fromstring(xml).find("Choices").find("Choice").get("alias") == odd[0]


def test_bad_label_sets_are_refused():
    with pytest.raises(AnnotationError, match="at least one label"):
        label_config([])
    with pytest.raises(AnnotationError, match="twice"):
        label_config(["Other", "Other"])
    with pytest.raises(AnnotationError, match="invalid Label Studio label config"):
        validate_config("<View><Audio name='a' value='$a'")
    with pytest.raises(AnnotationError, match="no <Choices name='species'>"):
        species_labels("<View><Audio name='a' value='$a'/></View>")


def test_prediction_ticks_label_set_species_above_threshold_and_draws_the_window():
    li = LabelInterface(label_config(LABELS))
    preds = [("Turdus merula_Eurasian Blackbird", 0.7), ("Parus major_Great Tit", 0.2),   # not in the set
             ("Erithacus rubecula_European Robin", 0.12), ("Other", 0.05)]                 # below 0.1
    pred = build_prediction(3, preds, LABELS, (2.0, 5.0), "m1", li)
    assert pred["model_version"] == "m1" and pred["score"] == pytest.approx(0.7)
    by_name = {r["from_name"]: r for r in pred["result"]}
    assert by_name["species"]["value"]["choices"] == ["Turdus merula_Eurasian Blackbird",
                                                      "Erithacus rubecula_European Robin"]
    assert by_name["window"]["value"] == {"start": 2.0, "end": 5.0, "channel": 0, "labels": ["window"]}
    assert li.validate_prediction(pred, return_errors=True) == []


def test_prediction_without_confident_species_has_only_the_window():
    li = LabelInterface(label_config(LABELS))
    pred = build_prediction(3, [("Parus major_Great Tit", 0.9), ("Other", 0.05)], LABELS, (0.0, 3.0), "m1", li)
    assert [r["from_name"] for r in pred["result"]] == ["window"]
    assert pred["score"] == pytest.approx(0.9)


def test_prediction_with_a_label_missing_from_the_config_names_label_and_clip():
    li = LabelInterface(label_config(["Other", "Noise"]))  # the project's config lost a species
    with pytest.raises(AnnotationError, match=r"clip 42: label 'Turdus merula_Eurasian Blackbird' is not a choice"):
        build_prediction(42, [("Turdus merula_Eurasian Blackbird", 0.8)], LABELS, (2.0, 5.0), "m1", li)


def test_config_shows_the_spectrogram_above_the_waveform():
    from annotation.client import task_data
    from annotation.clips import CutClip
    from store import ClipInfo

    xml = label_config(LABELS)
    root = ET.fromstring(xml)
    tags = [child.tag for child in root]
    image = root.find("Image")
    assert (image.get("name"), image.get("value")) == ("spectrogram", "$spectrogram")
    assert tags.index("Image") < tags.index("Audio")
    li = LabelInterface(xml)
    assert [o.name for o in li.objects] == ["spectrogram", "audio"]
    # every control still points at the audio, so predictions made for older projects still fit
    assert {c.name: c.to_name for c in li.controls} == {"window": ["audio"], "species": ["audio"]}
    pred = build_prediction(3, [(LABELS[0], 0.7)], LABELS, (2.0, 5.0), "m1", li)
    assert li.validate_prediction(pred, return_errors=True) == []
    # the task data carries both URLs, the same way
    info = ClipInfo(3, 1, "/rec/a.wav", "audio", 6.0, 9.0, "pond", None, None, 22050)
    data = task_data(info, CutClip(Path("/media/clips/clip-3.wav"), 2.0, 5.0, 7.0, 22050), Path("/media"))
    assert data["title"] == "Clip 3" and not {"file", "site", "time"} & set(data)
    assert "a.wav" in task_data(info, CutClip(Path("/media/clips/clip-3.wav"), 2.0, 5.0, 7.0, 22050), Path("/media"),
                                show_source=True)["title"]
    assert data["audio"] == "/data/local-files/?d=clips/clip-3.wav"
    assert data["spectrogram"] == "/data/local-files/?d=clips/clip-3.png"
    assert li.validate_task({"data": data})


def test_image_tasks_show_a_whole_frame_once_and_ask_for_one_species_from_a_softmax_model():
    from annotation.client import image_task_data
    from annotation.config import image_label_config
    from annotation.images import CutImage
    from store import ClipInfo

    url = "http://127.0.0.1:8080/data/local-files/?d=clips/vocabulary/taxonomy-x.json"
    xml = image_label_config(LABELS, taxonomy_url=url, single=True)
    root = ET.fromstring(xml)
    species = root.find("Choices")
    assert species.get("choice") == "single" and species.get("required") == "true"
    assert root.find("Taxonomy").get("maxUsages") == "1" and "tick all that apply" not in xml
    assert root.find("HyperText").get("name") == "frame" and len(root.findall("Image")) == 1
    info = ClipInfo(5, 2, "/traps/StationB/IMG_0001.JPG", "image", 0.0, 0.0, "StationB", None, None, None)
    whole = CutImage(Path("/media/clips/img-5.jpg"), Path("/media/clips/img-5.jpg"), "The whole frame is the clip.", None)
    crop = CutImage(Path("/media/clips/img-6.jpg"), Path("/media/clips/frame-6.jpg"), "The crop in its frame", (0, 0, 1, 1))
    assert image_task_data(info, whole, Path("/media"))["frame_html"] == ""  # not shown twice
    html = image_task_data(info, crop, Path("/media"))["frame_html"]
    assert html.startswith("<img") and "/data/local-files/?d=clips/frame-6.jpg" in html
    data = image_task_data(info, crop, Path("/media"))
    assert "IMG_0001" not in " ".join(map(str, data.values())) and "StationB" not in " ".join(map(str, data.values()))
    # the multi-label config of a sigmoid model still lets an annotator tick several
    assert ET.fromstring(image_label_config(LABELS, taxonomy_url=url)).find("Choices").get("choice") == "multiple"
