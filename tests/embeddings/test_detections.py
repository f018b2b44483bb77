"""MegaDetector batch output: boxes over the threshold, blank frames, every problem named, crops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from embeddings.detections import (DetectionFormatError, Problem, crop, pixel_box, read_detections)
from embeddings.image_files import read_image
from tests.conftest import shared_path

ELEPHANT = "speciesnet_test/african_elephants.jpg"
BEAR = "speciesnet_test/american_black_bear.jpg"
DOG = "speciesnet_test/domestic_dog.jpg"
BLANK = "speciesnet_test/blank.jpg"
CAT = "camtrapR_borneo/StationA/PBE/StationA__2009-04-21__00-40-00(1).JPG"
CIVET = "camtrapR_borneo/StationB/MNE/StationB__2009-04-15__07-21-00(1).JPG"


def _det(category, conf, bbox, **extra):
    return {"category": category, "conf": conf, "bbox": bbox, **extra}


def _write(tmp_path: Path, data, name="md.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


@pytest.fixture
def detector_output(tmp_path):
    """Detector output over the shared camera-trap images, with every kind of trouble in it."""
    root = shared_path("images")
    data = {
        "info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt"},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "classification_categories": {"0": "african elephant", "1": "leopard cat"},
        "images": [
            {"file": ELEPHANT, "detections": [
                _det("1", 0.93, [0.1, 0.2, 0.3, 0.4], classifications=[["0", 0.88]]),
                _det("2", 0.6, [0.5, 0.5, 0.25, 0.25])]},
            {"file": BEAR, "detections": [
                _det("1", 0.8, [0.8, 0.1, 0.3, 0.5]),        # reaches 10% past the right edge: clipped, noted
                _det("1", 0.9, [1.2, 0.1, 0.1, 0.1]),        # entirely outside: dropped
                _det("1", 0.7, [0.1, 0.1, 0.0, 0.2]),        # no width: dropped
                _det("1", 0.5, [0.4999, 0.5, 0.5002, 0.2])]},  # MegaDetector rounding: clipped, not noted
            {"file": CAT, "detections": [_det("1", 0.1, [0.2, 0.2, 0.3, 0.3])]},  # below the threshold: blank
            {"file": BLANK, "detections": []},
            {"file": "speciesnet_test/no_such_image.jpg", "detections": [_det("1", 0.9, [0.1, 0.1, 0.2, 0.2])]},
            {"file": "speciesnet_test/blank2.jpg", "failure": "Failure image access", "detections": None},
            {"detections": []},
            "speciesnet_test/human.jpg",
            {"file": "speciesnet_test/human.jpg", "detections": "none"},
            {"file": DOG, "detections": [
                _det("1", "high", [0.1, 0.1, 0.2, 0.2]),
                _det("7", 0.9, [0.1, 0.1, 0.2, 0.2]),
                _det("1", 0.9, [0.1, 0.1, 0.2]),
                _det("1", 0.2, [0.3, 0.3, 0.4, 0.5])]},      # exactly at the threshold: kept
            {"file": ELEPHANT, "detections": []},
            {"file": "videos/clip.mp4", "frame_rate": 30, "frames_processed": [0, 30], "detections": []},
            {"file": CIVET.replace("/", "\\"), "detections": [_det(1, 0.97, [0.25, 0.3, 0.5, 0.4])]},
        ],
    }
    return read_detections(_write(tmp_path, data), image_root=root, threshold=0.2), root


def test_kept_images_detections_and_blank_frames(detector_output):
    result, root = detector_output
    assert result.format_version == "1.4" and result.threshold == 0.2 and result.image_root == root
    assert result.categories == {"1": "animal", "2": "person", "3": "vehicle"}
    by_file = {im.file: im for im in result.images}
    assert list(by_file) == [ELEPHANT, BEAR, CAT, BLANK, DOG, CIVET]
    elephant = by_file[ELEPHANT]
    assert [(d.category, d.confidence, d.bbox) for d in elephant.detections] == [
        ("animal", 0.93, (0.1, 0.2, 0.3, 0.4)), ("person", 0.6, (0.5, 0.5, 0.25, 0.25))]
    assert elephant.detections[0].classifications == (("african elephant", 0.88),)
    assert elephant.path == root / ELEPHANT and not elephant.blank
    bear = by_file[BEAR]
    assert len(bear.detections) == 2 and bear.dropped == 2
    assert bear.detections[0].clipped and bear.detections[0].bbox == pytest.approx((0.8, 0.1, 0.2, 0.5))
    assert not bear.detections[1].clipped and bear.detections[1].bbox == pytest.approx((0.4999, 0.5, 0.5001, 0.2))
    assert by_file[CAT].blank and by_file[CAT].below_threshold == 1
    assert by_file[BLANK].blank and by_file[BLANK].below_threshold == 0
    assert [d.confidence for d in by_file[DOG].detections] == [0.2] and not by_file[DOG].blank
    civet = by_file[CIVET]
    assert civet.path == root / CIVET and civet.detections[0].category_id == "1"
    assert [im.file for im in result.blank_frames] == [CAT, BLANK]
    assert len(result.detections) == 6


def test_every_problem_is_named(detector_output):
    result, _ = detector_output
    problems = result.problems
    assert all(isinstance(p, Problem) for p in problems)
    expected = [
        (BEAR, "detection 0 (animal, 0.80): box [0.8, 0.1, 0.3, 0.5] reaches outside the image; clipped to"),
        (BEAR, "detection 1 (animal, 0.90): box [1.2, 0.1, 0.1, 0.1] lies entirely outside the image; dropped"),
        (BEAR, "detection 2 (animal, 0.70): box [0.1, 0.1, 0, 0.2] has zero or negative size; dropped"),
        ("speciesnet_test/no_such_image.jpg", "does not exist under"),
        ("speciesnet_test/blank2.jpg", "the detector failed on it (Failure image access); not a blank frame"),
        ("images[6]", "has no file name (None); skipped"),
        ("images[7]", "is a str, not an object; skipped"),
        ("speciesnet_test/human.jpg", 'its "detections" is str, not a list; skipped'),
        (DOG, "detection 0 has confidence 'high', not a number in [0, 1]; dropped"),
        (DOG, "detection 1 has category '7', not in detection_categories; dropped"),
        (DOG, "detection 2 (animal, 0.90): box [0.1, 0.1, 0.2] is not [x_min, y_min, width, height]"),
        (ELEPHANT, "is listed again (images[10]); the first entry is kept"),
        ("videos/clip.mp4", "is a video: only still images are read; skipped"),
    ]
    assert len(problems) == len(expected), problems
    for (file, reason), problem in zip(expected, problems):
        assert problem.file == file and reason in problem.reason, problem
    file, reason = problems[0]  # a (file, reason) pair
    assert (file, reason) == problems[0]


def test_crops_match_their_boxes(detector_output):
    result, _ = detector_output
    for image_dets, det in result.detections:
        image = read_image(image_dets.path)
        left, top, right, bottom = pixel_box(det.bbox, image.width, image.height)
        piece = crop(image, det.bbox)
        assert piece.size == (right - left, bottom - top)
        assert abs(piece.width - det.bbox[2] * image.width) <= 1
        assert abs(piece.height - det.bbox[3] * image.height) <= 1
    civet = next(im for im in result.images if im.file == CIVET)
    assert crop(read_image(civet.path), civet.detections[0].bbox).size == (50, 30)  # of 100 x 75


def test_threshold_zero_keeps_everything_and_bad_thresholds_are_refused(tmp_path):
    root = shared_path("images")
    path = _write(tmp_path, {"detection_categories": {"1": "animal"}, "images": [
        {"file": CAT, "detections": [_det("1", 0.01, [0.2, 0.2, 0.3, 0.3])]}]})
    result = read_detections(path, image_root=root, threshold=0)
    assert len(result.images[0].detections) == 1 and result.format_version is None  # info is optional
    for bad in (-0.1, 1.5, "0.2", float("nan")):
        with pytest.raises(ValueError, match="threshold must be a confidence between 0 and 1"):
            read_detections(path, image_root=root, threshold=bad)
    with pytest.raises(ValueError, match="image_root .* is not a folder"):
        read_detections(path, image_root=tmp_path / "nope")


def test_image_root_defaults_to_the_json_folder(tmp_path):
    (tmp_path / "cam1").mkdir()
    Image.new("RGB", (200, 100), (9, 9, 9)).save(tmp_path / "cam1" / "IMG_0001.JPG")
    path = _write(tmp_path, {"info": {"format_version": "1.6"}, "detection_categories": {"1": "animal"},
                             "images": [{"file": "cam1/IMG_0001.JPG", "detections": [_det("1", 0.5, [0, 0, 0.5, 1])]},
                                        {"file": str(tmp_path / "cam1" / "IMG_0001.JPG"), "detections": []}]})
    result = read_detections(path)
    assert result.image_root == tmp_path and result.problems == []
    assert [im.path for im in result.images] == [tmp_path / "cam1" / "IMG_0001.JPG"] * 2
    assert crop(read_image(result.images[0].path), result.images[0].detections[0].bbox).size == (100, 100)


@pytest.mark.parametrize("content, match", [
    ('[{"file": "a.jpg", "detections": []}]', "holds a JSON list, not an object; expected MegaDetector batch output"),
    ('{"images": [], "annotations": [], "categories": []}', "looks like a COCO file"),
    ('{"images": [', r"is not JSON \(line 1, column"),
    ('{"images": []}', "has no 'detection_categories'"),
    ('{"info": {}}', "has no 'images' and no 'detection_categories'"),
    ('{"images": {}, "detection_categories": {"1": "animal"}}', 'its "images" is a dict, not a list'),
    ('{"images": [], "detection_categories": ["animal"]}', 'its "detection_categories" is not an object'),
    ('{"images": [], "detection_categories": {"1": " "}}', "gives category '1' the name ' '"),
])
def test_not_megadetector_output_raises_one_error_naming_the_file(tmp_path, content, match):
    path = _write(tmp_path, content, name="results.json")
    with pytest.raises(DetectionFormatError, match=match) as info:
        read_detections(path)
    assert str(info.value).startswith(f"{path}: ") and info.value.path == path


def test_missing_detector_file(tmp_path):
    with pytest.raises(DetectionFormatError, match="does not exist: give the detector's output JSON"):
        read_detections(tmp_path / "md.json")


@pytest.mark.parametrize("bbox, size, box", [
    ((0.1, 0.2, 0.3, 0.4), (100, 50), (10, 10, 40, 30)),
    ((0.0, 0.0, 1.0, 1.0), (640, 480), (0, 0, 640, 480)),
    ((0.5, 0.5, 0.0001, 0.0001), (100, 100), (50, 50, 51, 51)),  # a sliver keeps one pixel
    ((0.9, 0.9, 0.3, 0.3), (100, 100), (90, 90, 100, 100)),      # clipped to the image
])
def test_pixel_box(bbox, size, box):
    assert pixel_box(bbox, *size) == box


@pytest.mark.parametrize("bbox, match", [
    ((1.1, 0.0, 0.2, 0.2), "entirely outside"),
    ((0.1, 0.1, -0.2, 0.2), "zero or negative size"),
    ((0.1, 0.1, 0.2), "four numbers"),
    ((0.1, 0.1, float("nan"), 0.2), "four numbers"),
])
def test_pixel_box_refuses_unusable_boxes(bbox, match):
    with pytest.raises(ValueError, match=match):
        pixel_box(bbox, 100, 100)


def test_crop_padding():
    image = Image.new("RGB", (100, 100))
    assert crop(image, (0.4, 0.4, 0.2, 0.2)).size == (20, 20)
    assert crop(image, (0.4, 0.4, 0.2, 0.2), padding=0.5).size == (40, 40)
    assert crop(image, (0.0, 0.0, 0.2, 0.2), padding=0.5).size == (30, 30)  # clipped at the corner
    with pytest.raises(ValueError, match="padding must be a fraction >= 0"):
        crop(image, (0.4, 0.4, 0.2, 0.2), padding=-0.1)
