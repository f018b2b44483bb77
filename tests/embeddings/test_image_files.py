"""Image files: finding them, reading any mode as upright 8-bit RGB, refusing bad files by name, capture times."""

from __future__ import annotations

import csv
import logging
import struct
import zlib
from datetime import datetime
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from PIL import ExifTags, Image

from embeddings.image_files import (CAPTURE_TIME_SOURCES, DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, TRUNCATED_POLICIES,
                                    CaptureTimeSource, ImageReadError, TruncatedPolicy, capture_time, exif_position,
                                    find_image_files, read_image)
from embeddings.metadata import parse_image_filename
from tests.conftest import shared_path


def _jpeg(path: Path, size=(40, 30), color=(200, 40, 40), exif: Image.Exif | None = None, mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, "JPEG", quality=95, **({"exif": exif} if exif is not None else {}))
    return path


def _exif(original=None, digitized=None, plain=None, subsec=None, orientation=None) -> Image.Exif:
    exif = Image.Exif()
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    if original is not None:
        sub[ExifTags.Base.DateTimeOriginal] = original
    if digitized is not None:
        sub[ExifTags.Base.DateTimeDigitized] = digitized
    if subsec is not None:
        sub[ExifTags.Base.SubsecTimeOriginal] = subsec
    if plain is not None:
        exif[ExifTags.Base.DateTime] = plain
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    return exif


# ---------------------------------------------------------------------------- finding files
def test_image_extensions():
    assert set(IMAGE_EXTENSIONS) == {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def test_find_image_files_recurses_sorts_and_dedupes(tmp_path):
    for rel in ("b/2.JPG", "b/1.jpeg", "a/x.PNG", "a/deep/y.tif", "a/z.TIFF", "a/w.bmp", "a/notes.txt", "a/v.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip.mp4").write_bytes(b"x")
    odd = tmp_path / "named.dat"
    odd.write_bytes(b"x")
    empty: list[Path] = []
    found = find_image_files([tmp_path / "a", tmp_path / "b", tmp_path / "a" / "x.PNG", odd, tmp_path / "videos"],
                             empty_folders=empty)
    rel = [p.relative_to(tmp_path.resolve()).as_posix() for p in found]
    assert rel == ["a/deep/y.tif", "a/w.bmp", "a/x.PNG", "a/z.TIFF", "b/1.jpeg", "b/2.JPG", "named.dat"]
    assert empty == [tmp_path / "videos"]
    assert find_image_files(str(tmp_path / "b")) == found[4:6]
    with pytest.raises(FileNotFoundError, match="nope.*does not exist: give image files or folders"):
        find_image_files(tmp_path / "nope")


def test_find_image_files_on_the_camtrapr_sample():
    root = shared_path("images", "camtrapR_borneo")
    found = find_image_files(root)
    assert len(found) == 68 and all(p.suffix == ".JPG" for p in found)
    assert found == sorted(found)


# ---------------------------------------------------------------------------- modes
def test_rgb_jpeg_is_returned_loaded_and_8bit(tmp_path):
    image = read_image(_jpeg(tmp_path / "a.jpg", color=(10, 200, 30)))
    assert (image.mode, image.size) == ("RGB", (40, 30))
    assert np.abs(np.asarray(image).astype(int) - (10, 200, 30)).max() <= 3
    assert image.info["truncated"] is False


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = _jpeg(tmp_path / "cmyk.jpg", color=(0, 255, 255, 0), mode="CMYK")  # no cyan, full magenta+yellow: red
    assert Image.open(path).mode == "CMYK"
    red = np.asarray(read_image(path)).astype(int)
    assert red.shape == (30, 40, 3)
    assert red[..., 0].min() > 240 and red[..., 1:].max() < 15


def test_greyscale_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (8, 4), 77).save(path)
    assert np.array_equal(np.asarray(read_image(path)), np.full((4, 8, 3), 77, np.uint8))


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "gradient16.png"
    values = np.linspace(0, 65535, 256).round().astype(np.uint16)
    Image.fromarray(np.tile(values, (4, 1))).save(path)
    assert Image.open(path).mode == "I;16"
    out = np.asarray(read_image(path))
    assert out.dtype == np.uint8 and out.shape == (4, 256, 3)
    row = out[0, :, 0].astype(int)
    assert np.array_equal(row, np.rint(values.astype(int) * 255 / 65535).astype(int))  # the whole range, scaled
    assert (row[0], row[-1]) == (0, 255) and np.all(np.diff(row) >= 0)
    assert len(np.unique(row)) > 200  # a gradient, not a clipped ramp stuck at 255


def test_32bit_integer_and_float_images(tmp_path):
    ints = tmp_path / "i32.tif"
    Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.int32), "I").save(ints)
    assert np.asarray(read_image(ints))[0, :, 0].tolist() == [0, 128, 255]
    floats = tmp_path / "f.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F").save(floats)
    assert np.asarray(read_image(floats))[0, :, 0].tolist() == [0, 128, 255]


def test_transparency_is_composited_on_white_by_default(tmp_path):
    path = tmp_path / "rgba.png"
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)      # fully transparent red: background
    rgba[0, 1] = (0, 0, 255, 255)    # opaque blue
    rgba[0, 2] = (0, 0, 0, 128)      # half-transparent black
    Image.fromarray(rgba, "RGBA").save(path)
    white = np.asarray(read_image(path)).astype(int)
    assert white[0, 0].tolist() == [255, 255, 255] and white[0, 1].tolist() == [0, 0, 255]
    assert np.abs(white[0, 2] - 127).max() <= 1
    black = np.asarray(read_image(path, background=(0, 0, 0))).astype(int)
    assert black[0, 0].tolist() == [0, 0, 0] and black[0, 2].tolist() == [0, 0, 0]


@pytest.mark.parametrize("make", ["LA", "P"])
def test_greyscale_alpha_and_palette_transparency(tmp_path, make):
    path = tmp_path / f"{make}.png"
    if make == "LA":
        Image.fromarray(np.array([[[30, 0], [30, 255]]], np.uint8), "LA").save(path)
    else:
        pal = Image.new("P", (2, 1))
        pal.putpalette([0, 0, 0, 30, 30, 30] + [0] * 762)
        pal.putpixel((0, 0), 0)
        pal.putpixel((1, 0), 1)
        pal.save(path, transparency=0)
    out = np.asarray(read_image(path))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [30, 30, 30]


@pytest.mark.parametrize("orientation, size, red_at, blue_at", [
    (1, (40, 20), (5, 10), (35, 10)),   # as stored: red left, blue right
    (3, (40, 20), (35, 10), (5, 10)),   # 180 degrees
    (6, (20, 40), (10, 5), (10, 35)),   # to turn 90 degrees clockwise: left half goes on top
    (8, (20, 40), (10, 35), (10, 5)),   # 90 degrees counter-clockwise: left half goes to the bottom
])
def test_exif_orientation_is_applied(tmp_path, orientation, size, red_at, blue_at):
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=95, exif=_exif(original="2021:05:22 05:30:00", orientation=orientation))
    image = read_image(path)
    assert image.size == size
    assert np.abs(np.asarray(image.getpixel(red_at)) - (255, 0, 0)).max() < 30
    assert np.abs(np.asarray(image.getpixel(blue_at)) - (0, 0, 255)).max() < 30
    assert image.getexif().get(ExifTags.Base.Orientation) in (None, 1)  # applied once, never twice
    assert capture_time(path, image=image) == (datetime(2021, 5, 22, 5, 30), "exif:DateTimeOriginal")


# ---------------------------------------------------------------------------- bad files
@pytest.mark.parametrize("content, reason", [
    (b"", r"is empty \(0 bytes\): the camera or the copy failed"),
    (b"species,count\nleopard cat,2\n", r"is text, not an image \(it begins 'species,count"),
    (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "is an HTML page, not an image: a failed download"),
    (b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ", "macOS resource-fork file"),
    (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "is not an image Pillow can read"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "is truncated or damaged: its header cannot be decoded"),
])
def test_bad_files_are_named_with_the_reason(tmp_path, content, reason):
    path = tmp_path / "IMG_0001.JPG"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    assert info.value.path == path and str(info.value).startswith(f"{path}: ")
    assert isinstance(info.value, ValueError)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match=r"does not exist \(moved or deleted\?\)"):
        read_image(tmp_path / "gone.jpg")
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(ImageReadError, match="is a folder, not an image file"):
        read_image(tmp_path / "dir.jpg")


@pytest.fixture
def cut_jpeg(tmp_path):
    """A real camera-trap JPEG (2048 x 1536) cut to 40% of its bytes, as a copy interrupted."""
    data = shared_path("images", "speciesnet_test", "domestic_dog.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * 0.4)])
    return path


def test_truncated_jpeg_is_kept_with_a_note(cut_jpeg):
    notes: list[str] = []
    image = read_image(cut_jpeg, notes=notes)
    assert image.size == (2048, 1536) and image.mode == "RGB" and image.info["truncated"] is True
    assert len(notes) == 1 and notes[0].startswith(f"{cut_jpeg}: truncated")
    assert "kept the decodable part" in notes[0]
    rows = int(notes[0].split("(")[2].split(" of ")[0])
    assert 0 < rows < 1536
    pixels = np.asarray(image)
    assert np.all(pixels[rows:] == 128) and not np.all(pixels[rows - 1] == 128)  # below: grey; above: the photo


def test_truncated_jpeg_without_a_notes_list_is_logged(cut_jpeg, caplog):
    with caplog.at_level(logging.WARNING, logger="embeddings.image_files"):
        read_image(cut_jpeg)
    assert any("truncated" in r.getMessage() and "kept the decodable part" in r.getMessage() for r in caplog.records)


def test_truncated_jpeg_refused_on_request(cut_jpeg):
    with pytest.raises(ImageReadError, match="is truncated .*copy it again from the card .*truncated='keep'"):
        read_image(cut_jpeg, truncated="refuse")


def test_jpeg_cut_inside_its_header(tmp_path):
    data = shared_path("images", "speciesnet_test", "domestic_dog.jpg").read_bytes()
    path = tmp_path / "stub.jpg"
    path.write_bytes(data[:1200])
    with pytest.raises(ImageReadError, match="truncated or damaged"):
        read_image(path)


def test_truncated_png_is_refused_even_when_keeping(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, (120, 120, 3), dtype=np.uint8)
    whole = tmp_path / "whole.png"
    Image.fromarray(noise).save(whole)
    path = tmp_path / "cut.png"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="is a truncated PNG .*only a truncated JPEG keeps its decodable part"):
        read_image(path, truncated="keep")


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (8-bit RGB) and that holds no pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_refused_from_its_header(tmp_path):
    path = _png_header(tmp_path / "bomb.png", 200_000, 200_000)
    with pytest.raises(ImageReadError, match=r"claims 40,000,000,000 pixels.*decompression bomb; it was not decoded"):
        read_image(path)


def test_max_pixels_refuses_before_decoding(tmp_path):
    path = _png_header(tmp_path / "big.png", 12_000, 9_000)  # 108 MP claimed, 64 bytes of data
    with pytest.raises(ImageReadError, match=r"is 12,000 x 9,000 pixels \(108 MP\), more than max_pixels=100,000,000"):
        with pytest.warns(Image.DecompressionBombWarning):  # Pillow's own warning above 89 MP comes first
            read_image(path)
    assert DEFAULT_MAX_PIXELS == 100_000_000
    small = _jpeg(tmp_path / "small.jpg", size=(100, 100))
    with pytest.raises(ImageReadError, match="is 100 x 100 pixels .*max_pixels=5,000"):
        read_image(small, max_pixels=5000)
    assert read_image(small, max_pixels=None).size == (100, 100)


def test_damaged_data_stream(tmp_path):
    whole = tmp_path / "whole.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(whole)
    data = bytearray(whole.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start + 10: start + 400] = bytes(390)  # zeros over the compressed pixels (the CRC no longer matches)
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="damaged"):
        read_image(path)


def test_options_are_validated_and_documented(tmp_path):
    assert TRUNCATED_POLICIES == get_args(TruncatedPolicy) == ("keep", "refuse")
    path = _jpeg(tmp_path / "a.jpg")
    for policy in TRUNCATED_POLICIES:
        read_image(path, truncated=policy)
    with pytest.raises(ValueError, match="truncated must be one of keep, refuse; got 'skip'"):
        read_image(path, truncated="skip")
    with pytest.raises(ValueError, match="max_pixels must be a positive whole number"):
        read_image(path, max_pixels=0)
    with pytest.raises(ValueError, match="background must be an"):
        read_image(path, background=(0, 0))


def test_every_shared_image_reads(tmp_path):
    files = find_image_files(shared_path("images"))
    assert len(files) > 400
    for path in files:
        image = read_image(path)
        assert image.mode == "RGB" and image.width > 0


# ---------------------------------------------------------------------------- capture time
def test_capture_time_sources_are_documented():
    assert CAPTURE_TIME_SOURCES == get_args(CaptureTimeSource)


def test_capture_time_exif_cascade(tmp_path):
    both = _jpeg(tmp_path / "a.jpg", exif=_exif(original="2021:05:22 05:30:00", digitized="2021:05:22 05:31:00",
                                                plain="2022:01:01 12:00:00", subsec="25"))
    assert capture_time(both) == (datetime(2021, 5, 22, 5, 30, 0, 250000), "exif:DateTimeOriginal")
    digitized = _jpeg(tmp_path / "b.jpg", exif=_exif(original="0000:00:00 00:00:00", digitized="2021:05:22 05:31:00"))
    assert capture_time(digitized) == (datetime(2021, 5, 22, 5, 31), "exif:DateTimeDigitized")
    plain = _jpeg(tmp_path / "c.jpg", exif=_exif(original="    :  :     :  :  ", plain="2021-05-22 05:32:00"))
    assert capture_time(plain) == (datetime(2021, 5, 22, 5, 32), "exif:DateTime")


def test_capture_time_falls_back_to_the_name_never_the_mtime(tmp_path):
    named = _jpeg(tmp_path / "StationA__2009-04-21__00-40-00(1).JPG")
    assert capture_time(named) == (datetime(2009, 4, 21, 0, 40), "filename")
    exif_first = _jpeg(tmp_path / "20190522_053000.jpg", exif=_exif(original="2019:05:22 05:30:07"))
    assert capture_time(exif_first) == (datetime(2019, 5, 22, 5, 30, 7), "exif:DateTimeOriginal")
    assert capture_time(_jpeg(tmp_path / "IMG_0001.JPG")) == (None, "unknown")  # the file has an mtime: unused
    date_only = _jpeg(tmp_path / "vj_ga_hu_1_2019-07-08_0001.JPG")
    assert capture_time(date_only) == (None, "unknown")
    assert capture_time(tmp_path / "missing" / "20220622000459-108-snapshot.jpg") == (
        datetime(2022, 6, 22, 0, 4, 59), "filename")
    text = tmp_path / "CAM01_20210101_053000.jpg"
    text.write_text("not an image")
    assert capture_time(text) == (datetime(2021, 1, 1, 5, 30), "filename")


def test_capture_time_on_the_camtrapr_sample():
    root = shared_path("images", "camtrapR_borneo")
    files = find_image_files(root)
    exif = [capture_time(p) for p in files]
    named = [parse_image_filename(p).start_time for p in files]
    assert all(source == "exif:DateTimeOriginal" for _, source in exif)
    assert sum(t is not None for t in named) == 68
    assert [t for t, _ in exif] == named  # the names were made from the EXIF times: they agree, all 68
    assert named[0] == datetime(2009, 4, 21, 0, 40)


def test_capture_time_on_the_norway_tunnels_matches_their_labels():
    root = shared_path("images", "smallmammal_tunnels_norway")
    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 300
    for row in rows:
        path = root.parent.parent / row["path"]
        assert capture_time(path) == (datetime.fromisoformat(f"{row['date']}T{row['time']}"), "exif:DateTimeOriginal")
        assert parse_image_filename(path).start_time is None  # the names hold a date only


def test_exif_gps_position(tmp_path):
    exif = Image.Exif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "S"
    gps[ExifTags.GPS.GPSLatitude] = (4.0, 30.0, 0.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (117.0, 15.0, 36.0)
    path = _jpeg(tmp_path / "gps.jpg", exif=exif)
    lat, lon = exif_position(path)
    assert lat == pytest.approx(-4.5) and lon == pytest.approx(117.26)
    assert exif_position(_jpeg(tmp_path / "none.jpg")) == (None, None)
