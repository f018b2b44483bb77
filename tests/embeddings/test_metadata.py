"""Site, device and start time from recorder and camera-trap file names, folders and a CSV sidecar."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from embeddings.metadata import (RecordingMetadata, Sidecar, image_metadata, looks_like_camera_id,
                                 looks_like_device_id, looks_like_station, name_date_only, parse_filename,
                                 parse_folders, parse_image_filename, parse_image_folders, recording_metadata)
from tests.conftest import shared_path


@pytest.mark.parametrize("name, device, start", [
    ("20190522_000000.WAV", None, datetime(2019, 5, 22, 0, 0, 0)),              # AudioMoth
    ("20210101_053012.wav", None, datetime(2021, 1, 1, 5, 30, 12)),
    ("S4A03895_20190522_000000.wav", "S4A03895", datetime(2019, 5, 22)),        # Song Meter SM4
    ("SMM12345_20210101_053000.wav", "SMM12345", datetime(2021, 1, 1, 5, 30)),  # Song Meter Mini
    ("SMA01234_20210101_053000_000.wav", "SMA01234", datetime(2021, 1, 1, 5, 30)),  # with a suffix
    ("2021-05-22T05-30-00.mp3", None, datetime(2021, 5, 22, 5, 30)),             # Bugg, ISO-like
    ("2021-05-22T05_30_00.000Z.mp3", None, datetime(2021, 5, 22, 5, 30)),        # Bugg upload names
    ("site3_rec_20210522_053000_x.flac", "site3_rec", datetime(2021, 5, 22, 5, 30)),
    ("recording 20210522T053000.ogg", None, datetime(2021, 5, 22, 5, 30)),
    ("file01.wav", None, None),
    ("S4A03895_20191399_000000.wav", None, None),  # not a real date: no time stamp, no device
    ("Rain_kk0010.wav", None, None),
])
def test_parse_filename(name, device, start):
    meta = parse_filename(name)
    assert (meta.device, meta.start_time) == (device, start)
    assert meta.site is None


@pytest.mark.parametrize("name, is_device", [
    ("S4A03895", True), ("SMM12345", True), ("24F319055FDF2F5B", True), ("bugg_RPiID-10000000abcdef12", True),
    ("AM07", True), ("recorder-3", True), ("SiteA", False), ("Jura", False), ("north_meadow", False),
])
def test_looks_like_device_id(name, is_device):
    assert looks_like_device_id(name) is is_device


@pytest.mark.parametrize("path, site, device", [
    ("/data/SiteA/20210522_053000.WAV", "SiteA", None),
    ("/data/SiteA/AM07/20210522_053000.WAV", "SiteA", "AM07"),
    ("/data/SiteA/2021-05-22/20210522_053000.WAV", "SiteA", None),               # date folders skipped
    ("/data/proj_x/bugg_RPiID-10000000abc/conf_12ab/2021-05-22T05_30_00.000Z.mp3", "proj_x",
     "bugg_RPiID-10000000abc"),
    ("clip.wav", None, None),
])
def test_parse_folders(path, site, device):
    meta = parse_folders(path)
    assert (meta.site, meta.device) == (site, device)


def test_file_name_device_beats_folder_device():
    meta = recording_metadata("/data/Jura/AM07/S4A03895_20190522_000000.wav")
    assert meta == RecordingMetadata(site="Jura", device="S4A03895", start_time=datetime(2019, 5, 22))


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "meta.csv"
    path.write_text(text)
    return path


def test_sidecar_by_name_and_relative_path(tmp_path):
    csv = _csv(tmp_path, "file,site,device,start_time,latitude,longitude\n"
                         "a.wav,North,R1,2021-05-22T05:30:00,46.5,6.1\n"
                         "sub/b.wav,South,,2021-05-22 06:00:00+02:00,,\n"
                         "c.wav,,,,,\n")
    side = Sidecar(csv).read()
    a = side.lookup(tmp_path / "elsewhere" / "a.wav")  # matched by its (unique) name
    assert a == RecordingMetadata("North", "R1", datetime(2021, 5, 22, 5, 30), 46.5, 6.1)
    b = side.lookup(tmp_path / "sub" / "b.wav")
    assert (b.site, b.device, b.start_time) == ("South", None, datetime(2021, 5, 22, 6, 0))  # wall clock kept
    assert side.lookup(tmp_path / "c.wav") == RecordingMetadata()
    assert side.lookup(tmp_path / "unknown.wav") is None


def test_sidecar_wins_field_by_field(tmp_path):
    csv = _csv(tmp_path, "file,site\nS4A03895_20190522_000000.wav,Jura\n")
    meta = recording_metadata(tmp_path / "card1" / "S4A03895_20190522_000000.wav", Sidecar(csv).read())
    assert meta == RecordingMetadata(site="Jura", device="S4A03895", start_time=datetime(2019, 5, 22))


def test_sidecar_ambiguous_name_needs_a_path(tmp_path):
    csv = _csv(tmp_path, "file,site\nA/x.wav,SiteA\nB/x.wav,SiteB\n")
    side = Sidecar(csv).read()
    assert side.lookup(tmp_path / "B" / "x.wav").site == "SiteB"
    assert side.lookup(tmp_path / "C" / "x.wav") is None


@pytest.mark.parametrize("text, match", [
    ("name,site\na.wav,X\n", "needs a 'file' column"),
    ("file,start_time\na.wav,yesterday\n", r"line 2: start_time 'yesterday' is not an ISO date-time"),
    ("file,latitude\na.wav,north\n", "line 2: latitude 'north' is not a number"),
    ("file,longitude\na.wav,200\n", r"line 2: longitude 200.0 is outside \[-180, 180\]"),
    ("file,site\n,X\n", "line 2: the 'file' column is empty"),
    ("file,country\na.jpg,KEN\nb.jpg,US\n", "line 3: country 'US' is not an ISO 3166-1 alpha-3 code"),
    ("file,country\na.jpg,Kenya\n", "line 2: country 'Kenya' is not an ISO 3166-1 alpha-3 code"),
    ("file,country,admin1_region\na.jpg,USA,California\n", "line 2: admin1_region 'California' is not an ISO 3166-2"),
    ("file,admin1_region\na.jpg,CA\n", "line 2: admin1_region 'CA' needs a country"),
])
def test_sidecar_errors_name_file_line_and_field(tmp_path, text, match):
    csv = _csv(tmp_path, text)
    with pytest.raises(ValueError, match=match) as info:
        Sidecar(csv).read()
    assert "meta.csv" in str(info.value)


def test_sidecar_country_and_region_are_upper_cased(tmp_path):
    csv = _csv(tmp_path, "file,site,country,admin1_region\na.jpg,Kibale,uga,\nb.jpg,Yosemite, usa ,us-ca\n"
                         "c.jpg,Bronx,USA,NY\nd.jpg,Nowhere,,\n")
    side = Sidecar(csv).read()
    assert [(m.country, m.admin1_region) for m in map(side.lookup, ("a.jpg", "b.jpg", "c.jpg", "d.jpg"))] == [
        ("UGA", None), ("USA", "CA"), ("USA", "NY"), (None, None)]


def test_missing_sidecar(tmp_path):
    with pytest.raises(ValueError, match="cannot read the metadata CSV"):
        Sidecar(tmp_path / "nope.csv").read()


# ---------------------------------------------------------------------------- images
@pytest.mark.parametrize("name, site, device, start", [
    ("StationA__2009-04-21__00-40-00(1).JPG", "StationA", None, datetime(2009, 4, 21, 0, 40)),      # camtrapR
    ("StationB__CamB2__2009-04-28__17-48-00(3).JPG", "StationB", "CamB2", datetime(2009, 4, 28, 17, 48)),
    ("Station_3__2009-04-28__17-48-00(1)__PBE.JPG", "Station_3", None, datetime(2009, 4, 28, 17, 48)),
    ("20190522_053000.JPG", None, None, datetime(2019, 5, 22, 5, 30)),                               # recorder-style
    ("CAM01_20190522_053000.JPG", None, "CAM01", datetime(2019, 5, 22, 5, 30)),
    ("20220622000459-108-snapshot.jpg", None, None, datetime(2022, 6, 22, 0, 4, 59)),                # AMI moth trap
    ("vj_ga_hu_1_2019-07-08_0001.JPG", None, None, None),    # a date and a counter: no time of day
    ("StationA__2009-13-21__00-40-00(1).JPG", None, None, None),  # month 13: not a time stamp
    ("IMG_0001.JPG", None, None, None),
    ("10308379_1b6c72e180.jpg", None, None, None),
])
def test_parse_image_filename(name, site, device, start):
    meta = parse_image_filename(name)
    assert (meta.site, meta.device, meta.start_time) == (site, device, start)


def test_name_date_only():
    assert name_date_only("vj_ga_hu_1_2019-07-08_0001.JPG")
    assert name_date_only("20190708.jpg")
    assert not name_date_only("StationA__2009-04-21__00-40-00(1).JPG")
    assert not name_date_only("IMG_0001.JPG")


@pytest.mark.parametrize("name, station", [
    ("StationA", True), ("Station_3", True), ("site-12", True), ("Site 4", True), ("SiteNorth", True),
    ("plot3", True), ("STATIONB", True),
    ("PBE", False), ("ants", False), ("Leopard cat", False), ("Stationary", False), ("pointer", False),
    ("vj_ga_hu_1", False), ("denmark", False),
])
def test_looks_like_station(name, station):
    assert looks_like_station(name) is station


@pytest.mark.parametrize("name, camera", [
    ("cam03", True), ("CT12", True), ("Camera1", True), ("CamB2", True), ("trap-7", True), ("AM07", True),
    ("camel", False), ("PBE", False), ("StationA", False), ("100RECNX", False),
])
def test_looks_like_camera_id(name, camera):
    assert looks_like_camera_id(name) is camera


@pytest.mark.parametrize("path, root, site, device", [
    # with a root: first folder below it is the site, a camera-like next folder the device, the rest ignored
    ("/data/ct/StationA/PBE/IMG_0001.JPG", "/data/ct", "StationA", None),              # camtrapR species folder
    ("/data/ct/Jura/cam03/DCIM/100RECNX/IMG_0001.JPG", "/data/ct", "Jura", "cam03"),
    ("/data/ct/Jura/DCIM/100RECNX/IMG_0001.JPG", "/data/ct", "Jura", None),            # card folders stepped over
    ("/data/ct/Jura/2021-05-22/IMG_0001.JPG", "/data/ct", "Jura", None),
    ("/data/ct/north_meadow/Leopard cat/IMG_0001.JPG", "/data/ct", "north_meadow", None),
    ("/data/ct/IMG_0001.JPG", "/data/ct", None, None),
    # without a root: only folders named like a station or a camera
    ("/data/ct/StationA/PBE/IMG_0001.JPG", None, "StationA", None),
    ("/data/ct/StationA/CamA1/PBE/IMG_0001.JPG", None, "StationA", "CamA1"),
    ("/data/hymenoptera_val/ants/123_abc.jpg", None, None, None),                     # a class folder is no site
    ("/data/Jura/PBE/IMG_0001.JPG", None, None, None),
])
def test_parse_image_folders(path, root, site, device):
    meta = parse_image_folders(path, root)
    assert (meta.site, meta.device) == (site, device)


def test_parse_image_folders_outside_root():
    with pytest.raises(ValueError, match="is not inside the image root /elsewhere"):
        parse_image_folders("/data/StationA/x.jpg", "/elsewhere")


def test_image_metadata_on_the_camtrapr_sample():
    root = shared_path("images", "camtrapR_borneo")
    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        path = root.parent.parent / row["path"]
        for meta in (image_metadata(path), image_metadata(path, root=root)):
            assert meta.site == row["station"]  # never the species folder (PBE, TRA, ...)
            assert meta.device is None and meta.start_time is not None
    first = image_metadata(root / "StationA" / "PBE" / "StationA__2009-04-21__00-40-00(1).JPG")
    assert first == RecordingMetadata(site="StationA", start_time=datetime(2009, 4, 21, 0, 40))


def test_image_metadata_on_the_norway_tunnels():
    root = shared_path("images", "smallmammal_tunnels_norway")
    path = root / "vj_ga_hu_1" / "vj_ga_hu_1_2019-07-09_0002.JPG"
    assert image_metadata(path, root=root) == RecordingMetadata(site="vj_ga_hu_1",
                                                                start_time=datetime(2019, 7, 9, 9, 16, 1))
    assert image_metadata(path).site is None  # without a root nothing says vj_ga_hu_1 is a site


def test_image_metadata_sidecar_wins_field_by_field(tmp_path):
    image = tmp_path / "StationA" / "PBE" / "StationA__2009-04-21__00-40-00(1).JPG"
    image.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(image)
    csv_path = _csv(tmp_path, "file,site,device,latitude,longitude\n"
                              "StationA/PBE/StationA__2009-04-21__00-40-00(1).JPG,Deramakot-A,RCNX-77,4.5,117.2\n")
    meta = image_metadata(image, Sidecar(csv_path).read(), root=tmp_path)
    assert meta == RecordingMetadata("Deramakot-A", "RCNX-77", datetime(2009, 4, 21, 0, 40), 4.5, 117.2)


def test_image_metadata_time_never_from_mtime(tmp_path):
    image = tmp_path / "Jura" / "IMG_0001.JPG"
    image.parent.mkdir()
    Image.new("RGB", (8, 8)).save(image)
    assert image_metadata(image, root=tmp_path) == RecordingMetadata(site="Jura")
