"""Site, device and start time from recorder file names, folders and a CSV sidecar."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from embeddings.metadata import (RecordingMetadata, Sidecar, looks_like_device_id, parse_filename,
                                 parse_folders, recording_metadata)


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
])
def test_sidecar_errors_name_file_line_and_field(tmp_path, text, match):
    csv = _csv(tmp_path, text)
    with pytest.raises(ValueError, match=match) as info:
        Sidecar(csv).read()
    assert "meta.csv" in str(info.value)


def test_missing_sidecar(tmp_path):
    with pytest.raises(ValueError, match="cannot read the metadata CSV"):
        Sidecar(tmp_path / "nope.csv").read()
