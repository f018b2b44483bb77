"""Camera-trap detector output (MegaDetector's batch format) read into boxes, blank frames and crops.

The format (https://lila.science/megadetector-output-format, written by MegaDetector's
``run_detector_batch``, AddaxAI, SpeciesNet and others)::

    {"info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt", ...},
     "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
     "classification_categories": {"0": "fox", ...},                        # optional
     "images": [{"file": "relative/path.jpg",
                 "detections": [{"category": "1", "conf": 0.93, "bbox": [x_min, y_min, width, height],
                                 "classifications": [["0", 0.9]]}]},        # optional
                {"file": "broken.jpg", "failure": "Failure image access", "detections": null}]}

Boxes are relative to the image ([0, 1]) from its top-left corner. ``read_detections`` never stops at
the first bad entry: every image it cannot use and every box it drops or adjusts is listed in
``DetectionFile.problems`` as ``(file, reason)``; only a file that is not this format at all raises.

- Detections below ``threshold`` are dropped (counted per image); an image whose detections are all
  below it, or that has none, is a blank frame (``ImageDetections.blank``).
- A box reaching slightly out of [0, 1] is clipped to the image (and noted; MegaDetector's 4-decimal rounding,
  under 0.001, is clipped without a note); a box entirely outside the image or with zero or negative size
  is dropped (noted). A category missing from ``detection_categories`` is dropped (the format says to
  treat it as no detection).
- Entries with a ``failure``, files missing under ``image_root``, videos and malformed entries are left
  out of ``images`` (noted): a failed image is not a blank frame.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

from PIL import Image

#: Box overhang (relative) clipped without a note: MegaDetector rounds coordinates to 4 decimals.
ROUNDING_SLACK = 1e-3


class DetectionFormatError(ValueError):
    """A file that is not MegaDetector batch output; the message names the file and what is wrong."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class Problem(NamedTuple):
    """An image or box of a detector file that was left out or adjusted, and why."""

    file: str
    reason: str


@dataclass(frozen=True)
class Detection:
    """One box: the category's name (and id), the detector's confidence, the box relative to the image
    as ``(x_min, y_min, width, height)`` (clipped to the image when it reached out), and the classifier's
    ``(name, confidence)`` pairs when the file holds them."""

    category: str
    category_id: str
    confidence: float
    bbox: tuple[float, float, float, float]
    clipped: bool = False
    classifications: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ImageDetections:
    """The detections of one image at or above the threshold.

    ``file`` is the entry as written in the JSON (backslashes turned into slashes), ``path`` where the
    image is. ``below_threshold`` counts the detections under the threshold, ``dropped`` those at or above
    it that were refused (bad box or category; see ``DetectionFile.problems``).
    """

    file: str
    path: Path
    detections: tuple[Detection, ...]
    below_threshold: int = 0
    dropped: int = 0

    @property
    def blank(self) -> bool:
        """True for a frame with nothing at or above the threshold (and no refused box either)."""
        return not self.detections and not self.dropped


@dataclass
class DetectionFile:
    """What ``read_detections`` found in one detector file."""

    path: Path
    image_root: Path
    threshold: float
    categories: dict[str, str]
    info: dict
    images: list[ImageDetections] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def format_version(self) -> Optional[str]:
        value = self.info.get("format_version")
        return None if value is None else str(value)

    @property
    def blank_frames(self) -> list[ImageDetections]:
        return [im for im in self.images if im.blank]

    @property
    def detections(self) -> list[tuple[ImageDetections, Detection]]:
        """Every kept detection with its image, in file order."""
        return [(im, det) for im in self.images for det in im.detections]


def read_detections(json_path: str | Path, image_root: str | Path | None = None,
                    threshold: float = 0.2) -> DetectionFile:
    """Read a MegaDetector batch-output JSON; see the module docstring for what is kept and noted.

    ``image_root`` is the folder the relative ``file`` entries start from (MegaDetector's image folder);
    by default the JSON's own folder (where AddaxAI writes it). Absolute entries are used as they are.
    ``threshold`` (0.2, MegaDetector v5's typical value) keeps detections with ``conf >= threshold``.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a confidence between 0 and 1; got {threshold!r}")
    json_path = Path(json_path)
    data = _load(json_path)
    root = Path(image_root) if image_root is not None else json_path.parent
    if image_root is not None and not root.is_dir():
        raise ValueError(f"image_root {root} is not a folder: give the folder the detector was run on")
    categories = _categories(json_path, data, "detection_categories", required=True)
    classes = _categories(json_path, data, "classification_categories", required=False)
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    result = DetectionFile(path=json_path, image_root=root, threshold=float(threshold), categories=categories,
                           info=info)
    seen: set[str] = set()
    for index, entry in enumerate(data["images"]):
        image = _image(entry, index, root, categories, classes, float(threshold), seen, result.problems)
        if image is not None:
            result.images.append(image)
    return result


def _load(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise DetectionFormatError(path, "does not exist: give the detector's output JSON") from e
    except IsADirectoryError as e:
        raise DetectionFormatError(path, "is a folder: give the detector's output JSON") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DetectionFormatError(path, f"cannot be read as text ({e})") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DetectionFormatError(path, f"is not JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                                         f"expected MegaDetector batch output") from e
    expected = ('expected MegaDetector batch output: an object with "images" and "detection_categories" '
                '(https://lila.science/megadetector-output-format)')
    if not isinstance(data, dict):
        raise DetectionFormatError(path, f"holds a JSON {type(data).__name__}, not an object; {expected}")
    if "annotations" in data and "categories" in data:
        raise DetectionFormatError(path, f"looks like a COCO file (annotations, categories); {expected}")
    missing = [k for k in ("images", "detection_categories") if k not in data]
    if missing:
        raise DetectionFormatError(path, f"has no {' and no '.join(repr(k) for k in missing)}; {expected}")
    if not isinstance(data["images"], list):
        raise DetectionFormatError(path, f'its "images" is a {type(data["images"]).__name__}, not a list; {expected}')
    return data


def _categories(path: Path, data: dict, key: str, required: bool) -> dict[str, str]:
    raw = data.get(key)
    if raw is None and not required:
        return {}
    if not isinstance(raw, dict):
        raise DetectionFormatError(path, f'its "{key}" is not an object mapping ids to names '
                                         f'(e.g. {{"1": "animal", "2": "person", "3": "vehicle"}})')
    out = {}
    for cid, name in raw.items():
        if not isinstance(name, str) or not name.strip():
            raise DetectionFormatError(path, f'"{key}" gives category {cid!r} the name {name!r}; names must be '
                                             f"non-blank text")
        out[str(cid)] = name
    return out


def _image(entry, index: int, root: Path, categories: dict[str, str], classes: dict[str, str],
           threshold: float, seen: set[str], problems: list[Problem]) -> Optional[ImageDetections]:
    if not isinstance(entry, dict):
        problems.append(Problem(f"images[{index}]", f"is a {type(entry).__name__}, not an object; skipped"))
        return None
    file = entry.get("file")
    if not isinstance(file, str) or not file.strip():
        problems.append(Problem(f"images[{index}]", f"has no file name ({file!r}); skipped"))
        return None
    file = file.replace("\\", "/")
    if file in seen:
        problems.append(Problem(file, f"is listed again (images[{index}]); the first entry is kept"))
        return None
    seen.add(file)
    failure = entry.get("failure")
    if failure is not None:
        problems.append(Problem(file, f"the detector failed on it ({failure}); not a blank frame, skipped"))
        return None
    if "frame_rate" in entry or "frames_processed" in entry:
        problems.append(Problem(file, "is a video: only still images are read; skipped"))
        return None
    raw = entry.get("detections")
    if not isinstance(raw, list):
        problems.append(Problem(file, f'its "detections" is {type(raw).__name__ if raw is not None else "missing"}, '
                                      f"not a list; skipped"))
        return None
    path = Path(file) if Path(file).is_absolute() else root / file
    if not path.is_file():
        problems.append(Problem(file, f"does not exist under {root} (moved, or the wrong image_root?); skipped"))
        return None
    kept: list[Detection] = []
    below = dropped = 0
    for k, det in enumerate(raw):
        where = f"detection {k}"
        if not isinstance(det, dict):
            problems.append(Problem(file, f"{where} is not an object; dropped"))
            dropped += 1
            continue
        conf = det.get("conf")
        if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0 <= conf <= 1:
            problems.append(Problem(file, f"{where} has confidence {conf!r}, not a number in [0, 1]; dropped"))
            dropped += 1
            continue
        if conf < threshold:
            below += 1
            continue
        cid = str(det.get("category"))
        if cid not in categories:
            problems.append(Problem(file, f"{where} has category {det.get('category')!r}, not in "
                                          f"detection_categories; dropped (no detection)"))
            dropped += 1
            continue
        label = f"{where} ({categories[cid]}, {conf:.2f})"
        try:
            box, clipped = _checked_box(det.get("bbox"))
        except ValueError as e:
            problems.append(Problem(file, f"{label}: {e}; dropped"))
            dropped += 1
            continue
        if clipped:
            problems.append(Problem(file, f"{label}: box {_fmt(det['bbox'])} reaches outside the image; clipped to "
                                          f"{_fmt(box)}"))
        kept.append(Detection(category=categories[cid], category_id=cid, confidence=float(conf), bbox=box,
                              clipped=clipped, classifications=_classifications(det, classes, file, label,
                                                                                problems)))
    return ImageDetections(file=file, path=path, detections=tuple(kept), below_threshold=below, dropped=dropped)


def _classifications(det: dict, classes: dict[str, str], file: str, label: str,
                     problems: list[Problem]) -> tuple[tuple[str, float], ...]:
    raw = det.get("classifications")
    if raw is None:
        return ()
    out = []
    for pair in raw if isinstance(raw, list) else [raw]:
        ok = (isinstance(pair, (list, tuple)) and len(pair) == 2 and str(pair[0]) in classes
              and isinstance(pair[1], (int, float)) and not isinstance(pair[1], bool))
        if not ok:
            problems.append(Problem(file, f"{label}: classification {pair!r} is not [category id, confidence] with "
                                          f"an id from classification_categories; classifications ignored"))
            return ()
        out.append((classes[str(pair[0])], float(pair[1])))
    return tuple(out)


def _fmt(box) -> str:
    return "[" + ", ".join(f"{v:.4g}" if isinstance(v, (int, float)) else repr(v) for v in box) + "]"


def _checked_box(bbox) -> tuple[tuple[float, float, float, float], bool]:
    """The box clipped to [0, 1] and whether it was clipped beyond rounding; ValueError says why it is unusable."""
    if (not isinstance(bbox, (list, tuple)) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)):
        raise ValueError(f"box {bbox!r} is not [x_min, y_min, width, height] (four numbers)")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise ValueError(f"box {_fmt(bbox)} has zero or negative size")
    if x >= 0 and y >= 0 and x + w <= 1 and y + h <= 1:
        return (x, y, w, h), False  # inside: the numbers as written
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, 1.0), min(y + h, 1.0)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {_fmt(bbox)} lies entirely outside the image")
    overhang = max(-x, -y, x + w - 1.0, y + h - 1.0, 0.0)
    return (x0, y0, x1 - x0, y1 - y0), overhang > ROUNDING_SLACK


# ---------------------------------------------------------------------------- pixels
def pixel_box(bbox, width: int, height: int) -> tuple[int, int, int, int]:
    """A relative ``(x_min, y_min, width, height)`` box as pixel edges ``(left, top, right, bottom)``.

    Edges are rounded to the nearest pixel and clipped to the image; the box keeps at least one pixel.
    ``PIL.Image.crop`` takes the result as it is. A box that is not four numbers, has no size or lies
    outside the image is a ``ValueError``.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"the image size must be positive; got {width} x {height}")
    (x, y, w, h), _ = _checked_box(bbox)
    left = min(max(int(math.floor(x * width + 0.5)), 0), width - 1)
    top = min(max(int(math.floor(y * height + 0.5)), 0), height - 1)
    right = max(min(int(math.floor((x + w) * width + 0.5)), width), left + 1)
    bottom = max(min(int(math.floor((y + h) * height + 0.5)), height), top + 1)
    return left, top, right, bottom


def crop(image: Image.Image, bbox, padding: float = 0.0) -> Image.Image:
    """The part of ``image`` inside a relative box, widened by ``padding`` (a fraction of the box's width
    and height added on each side: 0.1 gives a box 20% wider and taller), clipped to the image."""
    if isinstance(padding, bool) or not isinstance(padding, (int, float)) or not padding >= 0:
        raise ValueError(f"padding must be a fraction >= 0 of the box size; got {padding!r}")
    (x, y, w, h), _ = _checked_box(bbox)
    if padding:
        x, y, w, h = x - padding * w, y - padding * h, w * (1 + 2 * padding), h * (1 + 2 * padding)
    return image.crop(pixel_box((x, y, w, h), image.width, image.height))
