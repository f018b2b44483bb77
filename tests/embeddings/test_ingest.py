"""Ingest end to end with the real BirdNET: store contents, bad files, idempotence, resuming."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from embeddings.ingest import IngestReport, file_sha256, find_audio_files, ingest
from store import Store, binary_entropy
from tests.conftest import REPO, shared_path
from tests.embeddings.audio_files import write_tone

SHRIKE = "Lanius collurio_Red-backed Shrike"


def _spans(store: Store) -> list[tuple[int, float, float]]:
    pool = store.pool()
    return [(c.recording_id, c.start_s, c.end_s) for c in store.clips(pool.clip_id)]


# ---------------------------------------------------------------------------- real recordings
@pytest.fixture(scope="module")
def shrike_store(tmp_path_factory, birdnet):
    folder = shared_path("audio", "labeled_clips", "birdnet_testdata_s1")
    st = Store.open(tmp_path_factory.mktemp("shrike"))
    report = ingest(folder, st, model=birdnet)
    yield st, report, sorted(folder.glob("*.wav"))
    st.close()


def test_shrike_clips_are_ingested(shrike_store):
    st, report, files = shrike_store
    assert report.files_new == len(files) == 12 and not report.files_failed
    assert report.windows_added == 12 * 4  # 10 s each: three windows and a padded 1 s tail
    assert report.audio_seconds == pytest.approx(12 * 10.0)
    recs = st.recordings(status="done")
    assert len(recs) == 12
    assert {(r.sample_rate, r.channels, r.modality) for r in recs} == {(48000, 1, "audio")}
    assert all(r.content_hash == file_sha256(r.path) for r in recs)


def test_top_species_is_red_backed_shrike(shrike_store):
    st, _, _ = shrike_store
    mv = st.model_version("birdnet-v2.4")
    pool = st.pool(mv)
    probs = st.probabilities(mv).take(pool.clip_id)
    k = mv.labels.index(SHRIKE)
    for rec_id in np.unique(pool.recording_id):
        rows = pool.recording_id == rec_id
        best = np.argmax(probs[rows, k])
        assert probs[rows, k][best] > 0.9
        assert pool.top_label[rows][best] == SHRIKE
    assert Counter(pool.top_label).most_common(1)[0][0] == SHRIKE


def test_embeddings_are_1024_d_and_keyed_by_clip(shrike_store):
    st, _, _ = shrike_store
    pool = st.pool()
    emb = st.embeddings("birdnet-v2.4")
    assert emb.data.shape == (len(pool), 1024)
    vectors = emb.take(pool.clip_id)
    assert np.isfinite(vectors).all() and np.linalg.norm(vectors, axis=1).min() > 0


def test_stored_max_entropy_matches_stored_probabilities(shrike_store):
    st, _, _ = shrike_store
    mv = st.model_version("birdnet-v2.4")
    pool = st.pool(mv)
    probs = st.probabilities(mv).take(pool.clip_id)  # float16 on disk
    recomputed = binary_entropy(probs).max(axis=1)
    np.testing.assert_allclose(pool.max_entropy, recomputed, atol=2e-3)
    assert pool.max_entropy.max() > 0.5  # some class is genuinely uncertain somewhere


# ---------------------------------------------------------------------------- bad and odd inputs
def _bad_and_good(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "corrupt": folder / "corrupt.wav",
        "empty": folder / "empty.wav",
        "text": folder / "readme.wav",
        "mono8k": write_tone(folder / "mono8k.wav", 5.0, sr=8000),
        "stereo44k": write_tone(folder / "stereo44k.WAV", 4.0, sr=44100, channels=2, seed=1),
        "short": write_tone(folder / "short.flac", 2.0, sr=32000, seed=2, subtype=None),
    }
    files["corrupt"].write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["empty"].touch()
    files["text"].write_text("these are field notes, not audio\n")
    (folder / "notes.txt").write_text("not picked up: not an audio file name\n")
    return files


def test_bad_files_are_reported_by_name_and_good_ones_ingested(tmp_path, store, birdnet):
    files = _bad_and_good(tmp_path / "card")
    report = ingest(tmp_path / "card", store, model=birdnet)

    failed = dict(report.files_failed)
    assert set(failed) == {str(files[k]) for k in ("corrupt", "empty", "text")}
    assert "empty (0 bytes)" in failed[str(files["empty"])]
    assert "text file" in failed[str(files["text"])]
    assert "corrupt.wav" in failed[str(files["corrupt"])]
    assert report.files_new == 3 and report.files_skipped == 0

    done = {Path(r.path).name: r for r in store.recordings(status="done")}
    assert set(done) == {"mono8k.wav", "stereo44k.WAV", "short.flac"}
    assert (done["mono8k.wav"].sample_rate, done["mono8k.wav"].channels) == (8000, 1)
    assert (done["stereo44k.WAV"].sample_rate, done["stereo44k.WAV"].channels) == (44100, 2)
    assert done["short.flac"].duration_s == pytest.approx(2.0)
    # Failed files with content are recorded with their reason (an empty file has no content to key on).
    failed_recs = {Path(r.path).name: r.error for r in store.recordings(status="failed")}
    assert set(failed_recs) == {"corrupt.wav", "readme.wav"}
    assert "text file" in failed_recs["readme.wav"]

    spans = {}
    for rec_id, start, end in _spans(store):
        spans.setdefault(rec_id, []).append((start, end))
    assert spans[done["mono8k.wav"].id] == [(0.0, 3.0), (3.0, 5.0)]
    assert spans[done["stereo44k.WAV"].id] == [(0.0, 3.0), (3.0, 4.0)]  # a tail of 1.0 s or more is kept
    assert spans[done["short.flac"].id] == [(0.0, pytest.approx(2.0))]
    assert report.windows_added == 5


def test_explicit_file_of_unsupported_format(tmp_path, store, birdnet):
    path = tmp_path / "memo.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(300))
    report = ingest([path], store, model=birdnet)
    assert report.files_failed and "unsupported format" in report.files_failed[0][1]


def test_silence_is_ingested(tmp_path, store, birdnet):
    path = tmp_path / "night.wav"
    sf.write(path, np.zeros(48000 * 6, dtype=np.float32), 48000)
    report = ingest([path], store, model=birdnet)
    assert report.files_new == 1 and report.windows_added == 2


def test_missing_path_is_refused_before_anything_runs(tmp_path, store, birdnet):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ingest([tmp_path / "nowhere"], store, model=birdnet)
    assert store.counts()["recordings"] == 0


def test_find_audio_files(tmp_path):
    _bad_and_good(tmp_path / "a" / "b")
    write_tone(tmp_path / "top.ogg", 1.0, subtype=None)
    found = find_audio_files([tmp_path, tmp_path / "top.ogg"])
    assert [p.name for p in found] == ["corrupt.wav", "empty.wav", "mono8k.wav", "readme.wav", "short.flac",
                                       "stereo44k.WAV", "top.ogg"]


# ---------------------------------------------------------------------------- idempotence
def test_same_file_twice_and_a_renamed_copy_add_nothing(tmp_path, store, birdnet):
    original = write_tone(tmp_path / "in" / "dawn.wav", 7.0, sr=32000)
    first = ingest([original], store, model=birdnet)
    assert (first.files_new, first.windows_added) == (1, 3)
    before = store.counts()

    again = ingest([original], store, model=birdnet)
    copy = tmp_path / "backup" / "in" / "dawn_copy.wav"  # a backup: the same site (folder) and time
    copy.parent.mkdir(parents=True)
    shutil.copy(original, copy)
    renamed = ingest([copy], store, model=birdnet)
    both = ingest([original, copy], store, model=birdnet)
    for report in (again, renamed, both):
        assert report.files_new == 0 and report.windows_added == 0 and not report.files_failed
    assert renamed.files_skipped == 1 and both.files_skipped == 2
    assert store.counts() == before


def test_a_copy_in_the_same_run_is_skipped(tmp_path, store, birdnet):
    a = write_tone(tmp_path / "a.wav", 4.0)
    shutil.copy(a, tmp_path / "b.wav")
    report = ingest([tmp_path], store, model=birdnet)
    assert (report.files_new, report.files_skipped, report.windows_added) == (1, 1, 2)


def test_the_same_bytes_at_two_sites_and_times_are_two_recordings(tmp_path, store, birdnet):
    a = write_tone(tmp_path / "siteA" / "20240501_050000.wav", 4.0, seed=9)
    b = tmp_path / "siteB" / "20240601_060000.wav"
    b.parent.mkdir()
    shutil.copy(a, b)  # a faulty recorder writing the same silence, a copied test file
    report = ingest([tmp_path], store, model=birdnet)
    assert (report.files_new, report.files_skipped, report.windows_added) == (2, 0, 4)
    assert report.duplicates == [(str(b), str(a))]
    assert report.windows_copied == 2  # the second file's windows are the first's: copied, not embedded again
    recs = store.recordings(status="done")
    assert [(r.site, r.start_time) for r in recs] == [("siteA", datetime(2024, 5, 1, 5)),
                                                       ("siteB", datetime(2024, 6, 1, 6))]
    assert recs[0].content_hash == recs[1].content_hash
    assert Counter(c.recording_id for c in store.clips(store.pool().clip_id)) == {recs[0].id: 2, recs[1].id: 2}
    (ida, spa), (idb, spb) = (store.recording_clips(r.id) for r in recs)
    mv = store.model_version(birdnet.name)
    assert spa.tolist() == spb.tolist()
    np.testing.assert_array_equal(store.embeddings(mv.embedding_space).take(ida),
                                  store.embeddings(mv.embedding_space).take(idb))
    np.testing.assert_array_equal(store.probabilities(mv).take(ida), store.probabilities(mv).take(idb))
    assert (recs[1].frames, recs[1].duration_s, recs[1].error) == (recs[0].frames, recs[0].duration_s, None)
    # a rerun adds nothing; a third site with the same bytes in a later run is a recording of its own too
    assert ingest([tmp_path], store, model=birdnet).files_skipped == 2
    c = tmp_path / "siteC" / "20240701_070000.wav"
    c.parent.mkdir()
    shutil.copy(a, c)
    third = ingest([c], store, model=birdnet)
    assert (third.files_new, third.duplicates, third.windows_copied) == (1, [(str(c), str(a))], 2)  # from the store
    assert [r.site for r in store.recordings(status="done")] == ["siteA", "siteB", "siteC"]
    # the first file deleted, the same bytes at a fourth time are still a recording of their own, not a move
    a.unlink()
    d = tmp_path / "siteD" / "20240801_080000.wav"
    d.parent.mkdir()
    shutil.copy(c, d)
    assert ingest([d], store, model=birdnet).files_new == 1
    assert [r.site for r in store.recordings(status="done")] == ["siteA", "siteB", "siteC", "siteD"]


def test_a_duplicate_of_a_truncated_file_reports_its_own_truncation(tmp_path, store, birdnet):
    """Copied in the same run, a twin's decode notes name the twin; a stored twin with notes is read again (its
    notes are not kept apart from the path they name), so each file's report speaks of itself."""
    a = write_tone(tmp_path / "siteA" / "20240501_050000.wav", 7.0, seed=4)
    with open(a, "r+b") as fh:  # cut the data short of what the header promises
        fh.truncate(a.stat().st_size - 48000 * 2)
    b = tmp_path / "siteB" / "20240601_060000.wav"
    b.parent.mkdir()
    shutil.copy(a, b)
    report = ingest([tmp_path], store, model=birdnet)
    assert report.files_new == 2 and report.windows_copied > 0 and report.truncated == [str(a), str(b)]
    notes = {r.site: r.error for r in store.recordings(status="done")}
    assert str(a) in notes["siteA"] and notes["siteB"] == notes["siteA"].replace(str(a), str(b))
    c = tmp_path / "siteC" / "20240701_070000.wav"
    c.parent.mkdir()
    shutil.copy(a, c)
    later = ingest([c], store, model=birdnet)
    assert later.files_new == 1 and later.windows_copied == 0 and later.truncated == [str(c)]


# ---------------------------------------------------------------------------- interrupted runs
class Stop(Exception):
    pass


def test_interrupted_ingest_resumes_without_duplicates(tmp_path, workspace, birdnet):
    folder = tmp_path / "rec"
    write_tone(folder / "long.wav", 24.5, sr=32000, seed=5)  # 8 full windows + 0.5 s dropped
    write_tone(folder / "zz_next.wav", 6.0, sr=48000, seed=6)

    reference = Store.open(tmp_path / "reference", embedding_dtype=workspace.open_store().embedding_dtype)
    ingest(folder, reference, model=birdnet, batch_windows=2)
    expected = sorted((s, e) for _, s, e in _spans(reference))
    expected_vectors = _vectors_by_span(reference)
    reference.close()

    st = workspace.open_store()
    batches = []

    def stop_after_two_batches(files_done, files_total, windows_done, path):
        batches.append(windows_done)
        if windows_done >= 4:
            raise Stop

    with pytest.raises(Stop):
        ingest(folder, st, model=birdnet, batch_windows=2, progress=stop_after_two_batches)
    assert st.counts()["clips"] == 4
    rec = st.recordings()[0]
    assert rec.status == "pending" and st.ingested_until(rec.id) == 12.0

    report = ingest(folder, st, model=birdnet, batch_windows=2)
    assert report.files_new == 2 and report.windows_added == 6  # only what was missing
    spans = _spans(st)
    assert len(spans) == len(set(spans)) == 10
    assert sorted((s, e) for _, s, e in spans) == expected
    assert {r.status for r in st.recordings()} == {"done"}
    assert len(st.embeddings("birdnet-v2.4")) == 10
    # long.wav is resampled (32 kHz): the windows after the resume point are bit-identical anyway
    resumed = _vectors_by_span(st)
    assert resumed.keys() == expected_vectors.keys()
    for key, vector in expected_vectors.items():
        np.testing.assert_array_equal(resumed[key], vector, err_msg=f"window {key}")
    st.close()


def _vectors_by_span(store: Store) -> dict[tuple[str, float], np.ndarray]:
    pool = store.pool()
    infos = store.clips(pool.clip_id)
    vectors = store.embeddings("birdnet-v2.4").take(pool.clip_id)
    return {(Path(c.path).name, c.start_s): v for c, v in zip(infos, vectors)}


def test_killed_process_resumes_without_duplicates(tmp_path, workspace, birdnet):
    """A hard exit (no cleanup, reader thread still running) after the second committed batch."""
    audio = write_tone(tmp_path / "rec" / "long.wav", 21.0, sr=48000, seed=7)  # 7 windows
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from store import Store
        from embeddings.ingest import ingest
        st = Store.open({str(workspace.root)!r})
        def kill(files_done, files_total, windows_done, path):
            if windows_done >= 4:
                os._exit(9)
        ingest([{str(audio)!r}], st, batch_windows=2, workers=1, progress=kill)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]

    st = workspace.open_store()
    assert st.counts()["clips"] == 4
    report = ingest([audio], st, model=birdnet, batch_windows=2)
    assert report.windows_added == 3
    spans = _spans(st)
    assert sorted(s for _, s, _ in spans) == [3.0 * i for i in range(7)]
    assert len(st.embeddings("birdnet-v2.4")) == 7 and len(st.probabilities(st.model_version("birdnet-v2.4"))) == 7
    st.close()


# ---------------------------------------------------------------------------- metadata and progress
def test_metadata_reaches_the_recording(tmp_path, store, birdnet):
    folder = tmp_path / "Jura"
    sm4 = write_tone(folder / "S4A03895_20190522_050000.wav", 3.0, sr=22050)
    moth = write_tone(folder / "AM07" / "20210522_053000.WAV", 3.0, sr=48000, seed=1)
    plain = write_tone(folder / "plain.wav", 3.0, seed=2)
    csv = tmp_path / "sites.csv"
    csv.write_text("file,site,device,start_time,latitude,longitude\n"
                   "Jura/plain.wav,Jura-North,R9,2022-04-01T06:00:00,46.5,6.2\n")
    report = ingest([folder], store, model=birdnet, metadata_csv=csv)
    assert report.files_new == 3
    recs = {Path(r.path).name: r for r in store.recordings()}
    r = recs[sm4.name]
    assert (r.site, r.device, r.start_time) == ("Jura", "S4A03895", datetime(2019, 5, 22, 5, 0))
    r = recs[moth.name]
    assert (r.site, r.device, r.start_time) == ("Jura", "AM07", datetime(2021, 5, 22, 5, 30))
    r = recs[plain.name]
    assert (r.site, r.device, r.start_time, r.latitude, r.longitude) == (
        "Jura-North", "R9", datetime(2022, 4, 1, 6, 0), 46.5, 6.2)
    pool = store.pool()
    assert set(pool.site) == {"Jura", "Jura-North"}
    assert sorted(pool.hour.tolist()) == [5, 5, 6]


def test_progress_reports_every_file(tmp_path, store, birdnet):
    for i in range(3):
        write_tone(tmp_path / f"f{i}.wav", 3.0, seed=i)
    (tmp_path / "bad.wav").write_text("oops")
    calls = []
    report = ingest(tmp_path, store, model=birdnet, progress=lambda *a: calls.append(a))
    assert isinstance(report, IngestReport)
    assert calls[-1][:3] == (4, 4, 3)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert {Path(c[3]).name for c in calls} == {"bad.wav", "f0.wav", "f1.wav", "f2.wav"}
    assert report.wall_seconds > 0 and report.realtime_factor > 0


def test_bad_parameters(tmp_path, store, birdnet):
    with pytest.raises(ValueError, match="batch_windows"):
        ingest([tmp_path], store, model=birdnet, batch_windows=0)
    with pytest.raises(ValueError, match="workers"):
        ingest([tmp_path], store, model=birdnet, workers=0)


def test_truncated_file_keeps_its_audio_and_says_so(tmp_path, store, birdnet):
    path = write_tone(tmp_path / "cut.flac", 12.0, sr=32000, subtype=None)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    report = ingest([path], store, model=birdnet)
    assert report.files_new == 1 and 1 <= report.windows_added < 4
    assert report.warnings and report.warnings[0][0] == str(path) and "truncated" in report.warnings[0][1]
    rec = store.recordings()[0]
    assert rec.status == "done" and "truncated" in rec.error


# ---------------------------------------------------------------------------- damaged and changed files
def test_a_wav_cut_short_and_nan_samples_are_counted_per_file(tmp_path, store, birdnet):
    folder = tmp_path / "rec"
    good = write_tone(tmp_path / "whole.wav", 12.0, sr=48000, seed=11)
    folder.mkdir()
    (folder / "cut.wav").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    x = np.sin(np.linspace(0, 3000, 16000 * 6)).astype(np.float32)
    x[100:150] = np.nan
    sf.write(folder / "holes.wav", x, 16000, subtype="FLOAT")
    sf.write(folder / "allnan.wav", np.full(16000 * 6, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    report = ingest(folder, store, model=birdnet)
    assert report.files_new == 2
    assert report.truncated == [str(folder / "cut.wav")]
    assert report.nonfinite == {str(folder / "holes.wav"): 50}
    [(failed, reason)] = report.files_failed
    assert failed == str(folder / "allnan.wav") and "NaN or infinite" in reason
    by_name = {Path(r.path).name: r for r in store.recordings()}
    assert by_name["allnan.wav"].status == "failed"
    assert not any(Path(c.path).name == "allnan.wav" for c in store.clips(store.pool().clip_id))  # nothing partial
    assert "truncated" in by_name["cut.wav"].error and by_name["cut.wav"].duration_s == pytest.approx(6.0, abs=1e-3)
    assert "replaced by silence" in by_name["holes.wav"].error


def test_an_explicit_folder_without_audio_is_reported_not_ignored(tmp_path, store, birdnet):
    (tmp_path / "x.wav").mkdir()
    report = ingest([tmp_path / "x.wav"], store, model=birdnet)
    assert report.files_new == 0
    [(path, reason)] = report.files_failed
    assert path == str(tmp_path / "x.wav") and "folder holding no audio files" in reason


def test_an_mp3_stores_its_decoded_length(tmp_path, store, birdnet):
    src = shared_path("audio", "annotated", "opensoundscape_GWWA_XC135601.mp3")
    report = ingest([src], store, model=birdnet)
    assert report.files_new == 1 and not report.truncated
    [rec] = store.recordings()
    assert rec.frames == 441216 and rec.duration_s == pytest.approx(441216 / 44100)
    assert "decodes to 10.00 s" in rec.error and rec.status == "done"
    assert max(c.end_s for c in store.clips(store.pool().clip_id)) == pytest.approx(10.005, abs=1e-3)


def test_a_changed_file_becomes_a_new_recording_and_the_old_leaves_the_pool(tmp_path, store, birdnet):
    path = write_tone(tmp_path / "site" / "rec.wav", 9.0, sr=48000, seed=1)
    ingest([path], store, model=birdnet)
    [old] = store.recordings()
    assert (old.file_size, old.file_mtime_ns) == (path.stat().st_size, path.stat().st_mtime_ns)
    old_clips = set(store.pool().clip_id.tolist())
    write_tone(path, 6.0, sr=48000, seed=2)  # the recorder's file is replaced in place
    report = ingest([path], store, model=birdnet)
    assert report.files_new == 1 and report.replaced == [str(path)]
    old, new = store.recordings()
    assert (old.status, old.replaced_by, new.status) == ("replaced", new.id, "done")
    pool = set(store.pool().clip_id.tolist())
    assert len(pool) == 2 and not pool & old_clips
    assert len(store.embeddings("birdnet-v2.4")) == 5  # the old content's vectors stay, for its labels
    # the file goes back to its first content: that recording is current again, nothing re-embedded
    write_tone(path, 9.0, sr=48000, seed=1)
    again = ingest([path], store, model=birdnet)
    assert again.windows_added == 0
    old, new = store.recordings()
    assert (old.status, new.status, new.replaced_by) == ("done", "replaced", old.id)
    assert set(store.pool().clip_id.tolist()) == old_clips


def test_a_moved_file_is_followed_not_ingested_again(tmp_path, store, birdnet):
    path = write_tone(tmp_path / "inbox" / "rec.wav", 6.0, sr=48000, seed=3)
    ingest([path], store, model=birdnet)
    moved = tmp_path / "archive" / "rec.wav"
    moved.parent.mkdir()
    shutil.move(path, moved)
    report = ingest([moved], store, model=birdnet)
    assert report.files_skipped == 1 and report.windows_added == 0
    [rec] = store.recordings()
    assert rec.path == str(moved) and rec.status == "done"
