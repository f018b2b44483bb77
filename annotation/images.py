"""Image clips for annotators: the crop (or the whole frame) and, for a crop, its frame with the box drawn.

A detector's crop shows the animal large enough to identify; the frame around it shows where it was
and what else is in the picture. Both are JPEGs next to each other in the clips folder
(``clip-<id>.jpg``, ``clip-<id>-frame.jpg``), written to a temporary name and renamed, reused while
present. The source is read with ``embeddings.image_files.read_image`` (upright, 8-bit RGB), so what an
annotator sees is what the model saw. Callers check the source first (``annotation.clips.check_sources``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from PIL import Image, ImageDraw

from annotation.config import WINDOW_COLOR
from annotation.errors import AnnotationError
from store import ClipInfo
from store.atomic import write_atomically

MAX_SIDE = 1280  # px: enough to identify a species, small enough to load fast in Label Studio
QUALITY = 88


@dataclass(frozen=True)
class CutImage:
    """The clip's image, the frame shown with it (the same file for a whole-frame clip), and a note."""

    path: Path
    frame_path: Path
    note: str
    box: Optional[tuple[float, float, float, float]]  # normalised (x, y, w, h) of a crop in its frame


def image_filenames(clip_id: int) -> tuple[str, str]:
    return f"clip-{int(clip_id)}.jpg", f"clip-{int(clip_id)}-frame.jpg"


def cut_image_clip(info: ClipInfo, out_dir: Path | str) -> CutImage:
    """Write the clip's image (the crop, or the frame) and its frame with the box drawn; reuse them if present."""
    from embeddings.detections import crop
    from embeddings.image_files import ImageReadError, read_image

    if info.modality != "image":
        raise AnnotationError(f"clip {info.clip_id} is a {info.modality!r} clip, not an image")
    out_dir = Path(out_dir)
    name, frame_name = image_filenames(info.clip_id)
    out, frame_out = out_dir / name, out_dir / frame_name
    box = info.box
    is_crop = box is not None and box[4] != "blank" and (box[2], box[3]) != (1.0, 1.0)
    if box is None:
        note = "The whole frame is the clip."
    elif box[4] == "blank":
        note = "The detector found nothing in this frame: is it really empty?"
    else:
        conf = "" if box[5] is None else f" {box[5]:.2f}"
        note = f"The crop in its frame (orange box: detector's {box[4]}{conf})."
    result = CutImage(out, frame_out if is_crop else out, note, tuple(box[:4]) if is_crop else None)
    if out.exists() and (not is_crop or frame_out.exists()):
        return result
    try:
        image = read_image(info.path, notes=[])
    except ImageReadError as e:
        raise AnnotationError(f"cannot read clip {info.clip_id}: {e}") from e
    out_dir.mkdir(parents=True, exist_ok=True)
    if is_crop:
        _save(crop(image, box[:4]), out)
        framed = image.copy()
        draw = ImageDraw.Draw(framed)
        w, h = framed.size
        x, y, bw, bh = box[:4]
        draw.rectangle([x * w, y * h, (x + bw) * w, (y + bh) * h], outline=WINDOW_COLOR,
                       width=max(3, round(min(w, h) / 150)))
        _save(framed, frame_out)
    else:
        _save(image, out)
    return result


def _save(image: Image.Image, path: Path) -> None:
    image = image.copy()
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    write_atomically(path, lambda fh: image.save(fh, format="JPEG", quality=QUALITY), binary=True)
