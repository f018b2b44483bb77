"""Image files (camera traps, moth traps): finding them, reading them as 8-bit RGB, and when each was taken.

``read_image`` turns whatever a camera, a scanner or an export wrote into one kind of picture: RGB, 8 bits
per channel, upright (the EXIF orientation applied), fully decoded. The decisions it makes:

- **Transparency** (RGBA, LA, palette or greyscale with a transparent colour) is composited on white
  (``background``): annotators see images on Label Studio's white page, moth-trap crops come off a white
  sheet, and the model should see what the annotator sees. Pass ``background=(0, 0, 0)`` for black.
- **16-bit images** (``I;16`` PNG/TIFF) are scaled by 255/65535, rounded: the whole range maps onto 0-255,
  nothing is clipped, and nothing is stretched per image (a dark night frame stays dark). 32-bit integer
  images whose values fit 0-65535 are taken as 16-bit; other ``I``/``F`` images are stretched min..max.
- **Truncated JPEGs** (a copy cut short, a card pulled while writing) are kept by default
  (``truncated="keep"``): the decodable part is returned, the missing rows are grey, the returned image's
  ``info["truncated"]`` is True and a note saying "truncated ... kept the decodable part" goes to ``notes``
  (or, when no list is given, to the log as a warning: never silently). ``truncated="refuse"`` raises
  instead. A truncated PNG/TIFF/BMP is always refused (their decoders cannot stop cleanly), and so is a JPEG
  cut before its first row.
- **Oversized images** are refused from their header, before decoding: ``max_pixels`` (default 100 MP, above
  any camera trap's sensor: 8-32 MP is typical, 61 MP the largest full-frame cameras) guards against a
  damaged header or a decompression bomb. Pillow's own limit (``Image.MAX_IMAGE_PIXELS``, 89 MP, warns; twice
  that refuses) applies too: raise it as well to read larger images.

``capture_time`` gives the time a picture was taken: EXIF DateTimeOriginal, else DateTimeDigitized, else
DateTime (with their sub-second tags), else the file name (``embeddings.metadata.parse_image_filename``),
else none. Never the file's mtime: copying a card rewrites it. A name holding only a date gives no time.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import struct
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Literal, Optional, Union, get_args

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from embeddings.files import find_files, unusable_file
from embeddings.metadata import parse_image_filename

log = logging.getLogger(__name__)

#: File endings a folder search picks up (any case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
#: Largest image read by default, in pixels (100 MP): checked from the header, before decoding.
DEFAULT_MAX_PIXELS = 100_000_000
#: What ``read_image`` does with a truncated JPEG.
TruncatedPolicy = Literal["keep", "refuse"]
TRUNCATED_POLICIES: tuple[str, ...] = get_args(TruncatedPolicy)
#: Where ``capture_time`` found the time, best first.
CaptureTimeSource = Literal["exif:DateTimeOriginal", "exif:DateTimeDigitized", "exif:DateTime", "filename",
                            "unknown"]
CAPTURE_TIME_SOURCES: tuple[str, ...] = get_args(CaptureTimeSource)
WHITE = (255, 255, 255)

# What Pillow raises on a damaged header or data stream (DecompressionBombError is handled on its own).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError)
_JPEG_EOI = b"\xff\xd9"
_APPLE_DOUBLE = b"\x00\x05\x16\x07"
_EXIF_TIME = re.compile(r"^\s*(\d{4})[:/.-](\d{2})[:/.-](\d{2})[ T](\d{2})[:.-](\d{2})[:.-](\d{2})")
_ORIENTATION = ExifTags.Base.Orientation


class ImageReadError(ValueError):
    """A file that cannot be read as an image; the message names the file and what is wrong with it."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


# ---------------------------------------------------------------------------- finding files
def find_image_files(paths: str | os.PathLike | Iterable[str | os.PathLike],
                     empty_folders: Optional[list[Path]] = None,
                     unreadable: Optional[list[tuple[Path, str]]] = None) -> list[Path]:
    """Image files under ``paths`` (files as given; folders searched recursively), sorted, without repeats.

    Folders contribute files ending in .jpg .jpeg .png .bmp .tif .tiff (any case); a file named explicitly
    is taken whatever its ending, so a wrong file is reported rather than silently ignored. A folder given
    that holds no image (a typo, a folder of videos) is appended to ``empty_folders``. The same contract as
    ``embeddings.ingest.find_audio_files``.
    """
    return find_files(paths, IMAGE_EXTENSIONS, "image files", empty_folders, unreadable)


# ---------------------------------------------------------------------------- reading
#: min_size: the smallest upright (width, height) a caller needs, or a function of the upright size giving it
SizeNeeded = Union[tuple[int, int], Callable[[int, int], tuple[int, int]]]
#: decode at least this many times the pixels needed per side (as Image.thumbnail's reducing_gap), so the
#: final antialiased resize does the fine filtering (a decode at exactly the size moved embeddings more)
_DRAFT_GAP = 2.0
_ROTATED = (5, 6, 7, 8)


def read_image(path: str | Path, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, *,
               truncated: TruncatedPolicy = "keep", background: tuple[int, int, int] = WHITE,
               notes: Optional[list[str]] = None, min_size: Optional[SizeNeeded] = None) -> Image.Image:
    """The image at ``path`` as a fully loaded 8-bit RGB ``PIL.Image``, upright.

    Raises ``ImageReadError`` (naming the file and what to do) for a missing file, a folder, an empty
    file, a file that is not an image (text, an HTML page, a macOS ``._`` file, random bytes), a damaged
    header or data stream, an image larger than ``max_pixels`` (``None``: Pillow's own limit only), and a
    truncated file unless it is a JPEG read with ``truncated="keep"``. Notes on an image kept despite a
    problem (truncated; unreadable EXIF, so orientation not applied) are appended to ``notes``; without a
    list they are logged as warnings. See the module docstring for the conversions.

    ``min_size`` (the smallest upright size the caller needs, or a function of the upright size) lets a
    JPEG be decoded at the largest DCT reduction that keeps twice that: a model input of 224 px needs far
    less than a camera's 12 MP, and decoding is most of an image's cost. Crops need the full image.
    """
    if truncated not in TRUNCATED_POLICIES:
        raise ValueError(f"truncated must be one of {', '.join(TRUNCATED_POLICIES)}; got {truncated!r}")
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int)
                                   or max_pixels <= 0):
        raise ValueError(f"max_pixels must be a positive whole number of pixels or None; got {max_pixels!r}")
    if len(background) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in background):
        raise ValueError(f"background must be an (r, g, b) of 0-255 integers; got {background!r}")
    path = Path(path)
    _check_file(path)
    found: list[str] = []
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise ImageReadError(path, f"cannot be read ({e.strerror or e}): check the file's permissions") from e
    with fh:
        im = _open(path, fh, max_pixels)
        if min_size is not None and im.format == "JPEG":
            _draft(im, min_size)
        try:
            im.load()
        except _DECODE_ERRORS as e:
            im = _truncated_or_damaged(path, fh, im, e, truncated, max_pixels)
            rows = _decoded_rows(im)
            if rows == 0:
                raise ImageReadError(path, "is truncated before its first row: nothing can be decoded; copy it "
                                           "again from the card, or remove it") from e
            part = f"{rows} of {im.height} rows decoded, the rest grey" if rows is not None else "the rest lost"
            found.append(f"{path}: truncated (the file ends before its image data does); kept the decodable "
                         f"part ({part}). Copy it again from the card if the original is whole")
    exif = _safe_exif(im, path, found)
    rgb = _to_rgb(im, tuple(background), path)
    raw = im.info.get("exif")
    if isinstance(raw, bytes) and raw and rgb is not im:
        rgb.info["exif"] = raw  # the file's own EXIF bytes (JPEG, PNG): nothing to re-encode
    elif exif is not None and len(exif) and "exif" not in rgb.info:
        try:
            rgb.info["exif"] = exif.tobytes()  # kept for capture_time; TIFF tags do not survive convert()
        except _DECODE_ERRORS as e:
            found.append(f"{path}: its EXIF block cannot be kept ({e}); orientation not applied, no EXIF time")
    try:
        rgb = ImageOps.exif_transpose(rgb)
    except _DECODE_ERRORS as e:
        found.append(f"{path}: its EXIF orientation cannot be applied ({e}); the image is kept as stored")
    rgb.info["truncated"] = any("truncated" in n for n in found)
    for note in found:
        if notes is not None:
            notes.append(note)
        else:
            log.warning("%s", note)
    return rgb


def _check_file(path: Path) -> None:
    problem = unusable_file(path, "an image", "camera")
    if problem is not None:
        raise ImageReadError(path, problem)


def _draft(im: Image.Image, min_size: SizeNeeded) -> None:
    """Ask the JPEG decoder for a reduced scale that still gives at least ``_DRAFT_GAP`` x the size needed."""
    try:
        orientation = im.getexif().get(_ORIENTATION, 1)
    except _DECODE_ERRORS:
        orientation = 1
    width, height = im.size
    if orientation in _ROTATED:
        width, height = height, width
    need_w, need_h = min_size(width, height) if callable(min_size) else min_size
    if orientation in _ROTATED:  # the draft works on the stored (unrotated) pixels
        need_w, need_h = need_h, need_w
    im.draft(None, (max(1, int(_DRAFT_GAP * need_w)), max(1, int(_DRAFT_GAP * need_h))))


def _open(path: Path, fh, max_pixels: Optional[int]) -> Image.Image:
    """Open (header only) and check the size before anything is decoded."""
    try:
        im = Image.open(fh)
    except Image.DecompressionBombError as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        claimed = f"claims {int(m[1]):,} pixels" if m else "is too large"
        raise ImageReadError(path, f"{claimed}, more than Pillow's limit (twice Image.MAX_IMAGE_PIXELS): a damaged "
                                   f"header or a decompression bomb; it was not decoded") from e
    except UnidentifiedImageError as e:
        fh.seek(0)
        raise ImageReadError(path, _not_an_image(fh.read(512))) from e
    except _DECODE_ERRORS as e:
        raise ImageReadError(path, f"is truncated or damaged: its header cannot be decoded ({e}); copy it again "
                                   f"from the card, or remove it") from e
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageReadError(path, f"has no pixels (its header says {width} x {height}): the file is damaged")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(path, f"is {width:,} x {height:,} pixels ({width * height / 1e6:,.0f} MP), more than "
                                   f"max_pixels={max_pixels:,}: a damaged header or a decompression bomb; it was "
                                   f"not decoded (raise max_pixels if the image is genuine)")
    return im


def _not_an_image(head: bytes) -> str:
    if head.startswith(_APPLE_DOUBLE):
        return ("is a macOS resource-fork file ('._' file left by copying from a Mac), not an image: "
                "delete the '._*' files")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.strip() and all(c.isprintable() or c in "\r\n\t" for c in text):
        if text.lstrip().lower().startswith(("<!doctype html", "<html")):
            return "is an HTML page, not an image: a failed download? Download the file again"
        return f"is text, not an image (it begins {text.strip()[:40]!r}): a file saved under the wrong name?"
    if head.startswith(b"\xff\xd8"):
        return "starts like a JPEG but its header is damaged or truncated; copy it again from the card"
    if head.startswith(b"\x89PNG"):
        return "starts like a PNG but its header is damaged or truncated; copy it again"
    return (f"is not an image Pillow can read (it begins with bytes {head[:8].hex(' ')}): the file is damaged or "
            f"not an image (JPEG, PNG, BMP and TIFF are expected)")


def _truncated_or_damaged(path: Path, fh, im: Image.Image, error: Exception, truncated: str,
                          max_pixels: Optional[int]) -> Image.Image:
    """Re-read a truncated JPEG up to where it stops, or raise the error saying why the image is refused."""
    if "truncated" not in str(error).lower():
        raise ImageReadError(path, f"cannot be decoded ({error}): the file is damaged; copy it again from the "
                                   f"card, or remove it") from error
    if truncated == "refuse":
        raise ImageReadError(path, f"is truncated ({error}): the file ends before its image data does; copy it "
                                   f"again from the card (read it with truncated='keep' to use the decodable "
                                   f"part)") from error
    if im.format != "JPEG":
        raise ImageReadError(path, f"is a truncated {im.format or 'image'} ({error}): only a truncated JPEG keeps "
                                   f"its decodable part; copy it again") from error
    fh.seek(0)
    # An end-of-image marker after the data lets libjpeg finish the frame (missing rows grey) without
    # Pillow's process-wide ImageFile.LOAD_TRUNCATED_IMAGES switch.
    kept = _open(path, io.BytesIO(fh.read() + _JPEG_EOI), max_pixels)
    try:
        kept.load()
    except _DECODE_ERRORS as e:
        raise ImageReadError(path, f"is truncated ({error}) and what is left cannot be decoded ({e}); copy it "
                                   f"again from the card, or remove it") from e
    return kept


def _decoded_rows(im: Image.Image) -> Optional[int]:
    """Rows above the uniform grey (128) a truncated baseline JPEG is filled with; None where unknown."""
    if im.mode not in ("L", "RGB"):
        return None
    pixels = np.asarray(im)
    grey = np.all(pixels == 128, axis=tuple(range(1, pixels.ndim)))
    filled = np.flatnonzero(~grey)
    return int(filled[-1]) + 1 if filled.size else 0


def _safe_exif(im: Image.Image, path: Path, found: list[str]) -> Optional[Image.Exif]:
    try:
        return im.getexif()
    except _DECODE_ERRORS as e:
        found.append(f"{path}: its EXIF block cannot be read ({e}); orientation not applied, no EXIF time")
        return None


def _to_rgb(im: Image.Image, background: tuple[int, int, int], path: Path) -> Image.Image:
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_to_8bit(np.asarray(im), mode), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", im.size, background + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise ImageReadError(path, f"its colour mode {mode} cannot be converted to RGB ({e})") from e


def _to_8bit(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit (and 32-bit integer within 0-65535) scaled by 255/65535; other I/F stretched min..max."""
    x = values.astype(np.float64)
    x[~np.isfinite(x)] = 0.0
    if mode.startswith("I;16") or (mode == "I" and x.size and x.min() >= 0 and x.max() <= 65535):
        scaled = x * (255.0 / 65535.0)
    elif mode == "F" and x.size and x.min() >= 0 and x.max() <= 1:
        scaled = x * 255.0
    else:
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        scaled = (x - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(x)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- when and where
def capture_time(path: str | Path, image: Optional[Image.Image] = None) -> tuple[Optional[datetime], str]:
    """When the picture was taken, as a naive local time, and where that came from.

    The source is one of ``CAPTURE_TIME_SOURCES``: EXIF DateTimeOriginal, DateTimeDigitized, DateTime (each
    with its sub-second tag when present; an offset tag is ignored: the wall clock is kept), then the file
    name (camtrapR ``StationA__2009-04-21__00-40-00(1).JPG``, recorder-style ``20190522_053000.JPG``,
    ``20220622000459-108-snapshot.jpg``), else ``(None, "unknown")``. A name with only a date
    (``vj_ga_hu_1_2019-07-08_0001.JPG``) gives no time: midnight would be a false time of day. The file's
    mtime is never used. ``image``: the already opened or read image (``read_image`` keeps the EXIF), to
    save opening the file again; a file that cannot be opened just has no EXIF time.
    """
    exif = _exif_of(path, image)
    if exif is not None:
        try:
            sub = exif.get_ifd(ExifTags.IFD.Exif)
        except _DECODE_ERRORS:
            sub = {}
        candidates = (
            (sub.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTimeOriginal),
             sub.get(ExifTags.Base.SubsecTimeOriginal), "exif:DateTimeOriginal"),
            (sub.get(ExifTags.Base.DateTimeDigitized) or exif.get(ExifTags.Base.DateTimeDigitized),
             sub.get(ExifTags.Base.SubsecTimeDigitized), "exif:DateTimeDigitized"),
            (exif.get(ExifTags.Base.DateTime), sub.get(ExifTags.Base.SubsecTime), "exif:DateTime"),
        )
        for value, subsec, source in candidates:
            when = _exif_datetime(value, subsec)
            if when is not None:
                return when, source
    named = parse_image_filename(path).start_time
    if named is not None:
        return named, "filename"
    return None, "unknown"


def exif_position(path: str | Path, image: Optional[Image.Image] = None) -> tuple[Optional[float], Optional[float]]:
    """(latitude, longitude) in decimal degrees from the EXIF GPS tags, or (None, None).

    Out-of-range values and exactly (0, 0) (what some cameras write without a fix) count as unknown.
    """
    exif = _exif_of(path, image)
    if exif is None:
        return None, None
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except _DECODE_ERRORS:
        return None, None
    lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "S", 90)
    lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "W", 180)
    if lat is None or lon is None or (lat == 0 and lon == 0):
        return None, None
    return lat, lon


def _exif_of(path: str | Path, image: Optional[Image.Image]) -> Optional[Image.Exif]:
    try:
        if image is not None:
            return image.getexif()
        with Image.open(path) as im:  # the header only: no pixel is decoded
            return im.getexif()
    except (*_DECODE_ERRORS, Image.DecompressionBombError):
        return None


def _exif_datetime(value, subsec=None) -> Optional[datetime]:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    m = _EXIF_TIME.match(value.replace("\x00", ""))
    if not m:
        return None  # blank ("    :  :  ") or not a date
    try:
        when = datetime(*(int(g) for g in m.groups()))
    except ValueError:
        return None  # 0000:00:00 00:00:00 and other impossible dates
    digits = re.sub(r"\D", "", subsec.decode("ascii", "replace") if isinstance(subsec, bytes) else str(subsec or ""))
    if digits:
        when = when.replace(microsecond=int(digits[:6].ljust(6, "0")))
    return when


def _degrees(dms, ref, negative: str, limit: float) -> Optional[float]:
    try:
        d, m, s = (float(v) for v in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip().upper().startswith(negative):
        value = -value
    if not math.isfinite(value) or abs(value) > limit:
        return None
    return value
