"""Image ingest: frames and detector crops in the store, bad files reported per file, reruns add nothing."""

from __future__ import annotations

import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from embeddings.image_ingest import ingest_images
from store import Store
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def tiny():
    from embeddings.vision import registered_model

    return registered_model("mobilenet-v1-0.25-128-imagenet", shared_path("models", "vision")).load()


def _images(folder, n=6, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"cam{i % 2}" / f"IMG_{i:04d}.JPG"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def _bomb_png(path):
    """A PNG whose header claims 200,000 x 200,000 pixels (it holds almost nothing)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 200_000, 200_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


def test_bad_files_are_named_and_skipped_and_nothing_partial_is_stored(tmp_path, tiny):
    folder = tmp_path / "traps"
    good = _images(folder)
    (folder / "notes.jpg").write_text("camera 3 battery low\n")
    (folder / "empty.png").write_bytes(b"")
    _bomb_png(folder / "bomb.png")
    data = good[0].read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])  # a truncated JPEG: kept, with a note
    store = Store.open(tmp_path / "ws")
    report = ingest_images(folder, store, tiny, root=folder)
    failed = {p.split("/")[-1]: reason for p, reason in report.files_failed}
    assert set(failed) == {"notes.jpg", "empty.png", "bomb.png"}
    assert "not an image" in failed["notes.jpg"] or "text" in failed["notes.jpg"]
    assert "pixels" in failed["bomb.png"] and "empty" in failed["empty.png"]
    assert report.files_new == len(good) + 1 and report.truncated == [str(folder / "cut.jpg")]
    by_name = {r.path.split("/")[-1]: r for r in store.recordings()}
    assert by_name["notes.jpg"].status == "failed" and by_name["bomb.png"].status == "failed"
    assert "empty.png" not in by_name  # every empty file has the same hash: reported only
    pool_paths = {c.path for c in store.clips(store.pool().clip_id)}
    assert pool_paths == {str(p) for p in good} | {str(folder / "cut.jpg")}
    assert {r.site for r in store.recordings(status="done") if "cam" in r.path} == {"cam0", "cam1"}
    again = ingest_images(folder, store, tiny, root=folder)
    assert again.files_new == 0 and again.windows_added == 0 and again.files_skipped == len(good) + 1
    store.close()


class Stop(Exception):
    pass


def test_an_interrupted_ingest_resumes_without_duplicates(tmp_path, tiny):
    folder = tmp_path / "traps"
    _images(folder, n=10)
    store = Store.open(tmp_path / "ws")

    def stop(files_done, total, regions, path):
        if regions >= 4:
            raise Stop

    with pytest.raises(Stop):
        ingest_images(folder, store, tiny, batch_images=4, progress=stop)
    assert 4 <= len(store.pool()) < 10
    report = ingest_images(folder, store, tiny, batch_images=4)
    assert len(store.pool()) == 10 and report.files_new + report.files_skipped == 10
    spans = [(c.recording_id, c.start_s) for c in store.clips(store.pool().clip_id)]
    assert len(set(spans)) == 10
    store.close()


def test_pending_and_failed_frames_are_finished_by_the_next_run_with_their_fields(tmp_path, tiny):
    """A run killed between its transactions leaves pending recordings (some with their regions): the next run
    finishes them in place, fields and all, next to new files, and stores no region twice."""
    folder = tmp_path / "traps"
    paths = _images(folder, n=4)
    store = Store.open(tmp_path / "ws")
    ingest_images(paths[:3], store, tiny, root=folder)
    first = {r.path: r for r in store.recordings()}
    regions = len(store.pool())
    ids = [first[str(p)].id for p in paths[:3]]
    store.update_recordings({ids[0]: {"status": "pending", "site": None, "file_size": 1},  # regions stored, not done
                             ids[1]: {"status": "failed", "error": "cannot be read (EIO)"}})
    report = ingest_images(folder, store, tiny, root=folder)
    assert report.files_new == 3 and report.files_skipped == 1 and report.windows_added == 1  # only the new file's
    after = {r.path: r for r in store.recordings()}
    assert [after[str(p)].id for p in paths[:3]] == ids  # finished in place, no recording added for them
    for p in paths[:3]:
        assert (after[str(p)].status, after[str(p)].error, after[str(p)].site, after[str(p)].file_size) == \
            ("done", None, first[str(p)].site, p.stat().st_size)
    assert after[str(paths[3])].status == "done" and after[str(paths[3])].site == "cam1"
    assert len(store.pool()) == regions + 1
    store.close()


def test_a_copy_in_the_same_run_and_a_changed_image(tmp_path, tiny):
    folder = tmp_path / "traps"
    paths = _images(folder, n=3)
    shutil.copy(paths[0], folder / "cam0" / "copy.JPG")  # the same camera: the same frame
    shutil.copy(paths[0], folder / "cam1" / "other.JPG")  # another camera: a frame of its own
    store = Store.open(tmp_path / "ws")
    report = ingest_images(folder, store, tiny)
    assert report.files_new == 4 and report.files_skipped == 1
    assert report.duplicates == [(str(folder / "cam1" / "other.JPG"), str(paths[0]))]
    Image.new("RGB", (160, 120), "red").save(paths[1])  # the card was rewritten
    again = ingest_images(folder, store, tiny)
    assert again.files_new == 1 and again.replaced == [str(paths[1])]
    assert len(store.pool()) == 4  # the old version left the pool
    store.close()


def _detector_json(path, boxes):
    """MegaDetector batch output: {relative file: [bbox, ...]} (every box an animal at 0.9)."""
    import json

    path.write_text(json.dumps({
        "info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"},
        "images": [{"file": f, "detections": [{"category": "1", "conf": 0.9, "bbox": b} for b in bbs]}
                   for f, bbs in boxes.items()]}))
    return path


def test_detections_after_a_plain_ingest_add_crops_once_and_a_new_run_a_new_set(tmp_path, tiny):
    folder = tmp_path / "traps"
    paths = _images(folder, n=3)
    store = Store.open(tmp_path / "ws")
    assert ingest_images(folder, store, tiny).files_new == 3  # ingest first, run MegaDetector later
    first = _detector_json(folder / "md.json", {"cam0/IMG_0000.JPG": [[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.2, 0.2]],
                                                "cam1/IMG_0001.JPG": [[0.2, 0.2, 0.4, 0.4]],
                                                "cam0/IMG_0002.JPG": []})
    report = ingest_images(folder, store, tiny, detections=first)
    assert (report.files_new, report.windows_added) == (0, 3)
    assert report.crops_added_to == [str(paths[0]), str(paths[1])] and report.files_skipped == 1
    recs = {r.path: r.id for r in store.recordings()}
    assert [(t, box is None) for t, box in store.regions(recs[str(paths[0])])] == [(0.0, True), (1.0, False),
                                                                                  (2.0, False)]
    assert len(store.pool()) == 3 + 3
    again = ingest_images(folder, store, tiny, detections=first)  # a rerun adds nothing
    assert (again.windows_added, again.crops_added_to, again.files_skipped) == (0, [], 3)
    second = _detector_json(folder / "md2.json", {"cam0/IMG_0000.JPG": [[0.6, 0.1, 0.3, 0.3]]})
    other = ingest_images(folder, store, tiny, detections=second)  # another detector run: a set of its own
    assert (other.windows_added, other.crops_added_to) == (1, [str(paths[0])])
    regions = store.regions(recs[str(paths[0])])
    assert [t for t, _ in regions] == [0.0, 1.0, 2.0, 3.0] and regions[3][1][:4] == (0.6, 0.1, 0.3, 0.3)
    assert [r.status for r in store.recordings()] == ["done"] * 3
    store.close()


def test_the_sidecars_country_and_region_reach_recordings_pool_and_clips(tmp_path, tiny):
    """SpeciesNet's own test images, read in place, placed by a sidecar: two in Kenya, one in a US state."""
    folder = shared_path("images", "speciesnet_test")
    csv = tmp_path / "meta.csv"
    csv.write_text("file,site,country,admin1_region\n"
                   f"{folder / 'african_elephants.jpg'},Mara,ken,\n{folder / 'domestic_cattle.jpg'},Mara,KEN,\n"
                   f"{folder / 'american_black_bear.jpg'},Yosemite,USA,US-CA\n")
    store = Store.open(tmp_path / "ws")
    report = ingest_images(folder, store, tiny, metadata_csv=csv)
    assert report.files_new == len([p for p in folder.iterdir() if p.suffix == ".jpg"])
    placed = {r.path.split("/")[-1]: (r.site, r.country, r.admin1_region) for r in store.recordings()}
    assert placed["african_elephants.jpg"] == ("Mara", "KEN", None)
    assert placed["american_black_bear.jpg"] == ("Yosemite", "USA", "CA")
    assert placed["ocelot.jpg"][1:] == (None, None)  # no row: never guessed
    pool = store.pool()
    clips = {c.path.split("/")[-1]: c for c in store.clips(pool.clip_id)}
    assert (clips["american_black_bear.jpg"].country, clips["american_black_bear.jpg"].admin1_region) == ("USA", "CA")
    country = dict(zip(clips, pool.country.tolist()))  # clips() keeps the order asked for
    assert country["domestic_cattle.jpg"] == "KEN" and country["ocelot.jpg"] == ""
    store.close()
