"""Cluster ingest on a real two-node Ray cluster started here: same store as single-machine ingest, faults recovered.

What is checked: the store a cluster ingest writes is the one single-machine ingest writes for the same files
(recordings, ids, windows, embeddings and probabilities to the bit, scores, predictions, failed files with
their reasons); a rerun adds nothing; a worker process killed mid-file, a driver killed mid-run (then
rerun) and a whole node lost mid-file all end in that same store, with no window missing or doubled; the
shard format and the committer also without Ray; ``workbench ingest --cluster ADDRESS``.

One cluster for the module (Ray takes seconds to start): a head node and a second node on 127.0.0.1, one CPU
each, a small object store, their own temp folder, ports and authentication token. Every Ray process a node
starts shares the session of its ``ray start --block`` process, and the teardown ends exactly those
sessions (never other Ray processes on the machine, which ``ray stop`` would). The node-loss test runs last.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from embeddings.cluster_shards import read_shard_meta, shard_path
from embeddings.ingest import ingest
from store import Store
from store.sources import file_sha256
from tests.conftest import REPO, shared_path
from tests.embeddings.audio_files import write_tone

pytestmark = [pytest.mark.cluster, pytest.mark.shared_data]

MODEL = "birdnet-v2.4"
RAY_CLI = Path(sys.executable).parent / "ray"
OBJECT_STORE_BYTES = 200 * 1024 * 1024

# Every Ray driver runs in a process of its own, as `workbench ingest --cluster` would: Ray reads its settings
# (token authentication included) when it is first imported, and this test process never connects to Ray.
DRIVER = textwrap.dedent(f"""
    import dataclasses, json, os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {str(REPO)!r})
    from store import Store
    from embeddings.cluster import cluster_ingest
    args = json.loads(sys.argv[1])
    store = Store.open(args.pop("workspace"))
    progress = None
    if "kill_when_shards_wait_in" in args:
        folder = Path(args.pop("kill_when_shards_wait_in"))
        def progress(files_done, files_total, windows_done, path):
            if windows_done > 0 and any(folder.glob("*.npz")):  # some files committed, others wait as shards
                os.kill(os.getpid(), signal.SIGKILL)
    report = cluster_ingest(args.pop("files"), store, progress=progress, **args)
    print("REPORT " + json.dumps(dataclasses.asdict(report)))
""")


def _ray_available() -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.data") is None:
        pytest.skip("needs Ray Data for cluster ingest (pip install 'biodiversity-workbench[cluster]')")


# ---------------------------------------------------------------------------- a real two-node cluster
_GIVEN: set[int] = set()


def _free_port() -> int:
    """A port nothing listens on, never one handed out before in this run: the OS may give a port just closed
    again, and Ray refuses two of its components on one port (it did: metrics export = dashboard agent)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def _session_pids(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``: a ``ray start --block`` and everything it started."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # state, ppid, pgrp, session, ...
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def _end_session(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
        for pid in _session_pids(proc.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while _session_pids(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _session_pids(proc.pid):
            break
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _ray_start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    node_ports = [f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
                  f"--runtime-env-agent-port={_free_port()}", f"--metrics-export-port={_free_port()}"]
    with open(log, "wb") as out:
        return subprocess.Popen([str(RAY_CLI), "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                                 f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats",
                                 *node_ports, *args],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


@pytest.fixture(scope="module")
def ray_cluster():
    """``ray start --head`` plus a second ``ray start --address=...`` on this machine: two nodes, one CPU each."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the cluster tests find their Ray processes through /proc (Linux)")
    _ray_available()
    if not RAY_CLI.exists():
        pytest.skip(f"needs the `ray` command next to {sys.executable} (pip install 'biodiversity-workbench[cluster]')")
    root = Path(tempfile.mkdtemp(prefix="wbray-"))  # short: Ray's socket paths live under it
    # Token authentication with a token of this cluster's own: nobody else on the machine can use the cluster,
    # and a token another Ray left in ~/.ray does not matter. The drivers (this process, its subprocesses) use it.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    # a lost node is declared dead after about 5 s instead of about 30 (the node-loss test waits for it)
    health = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "3000",
              "RAY_health_check_failure_threshold": "5"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | auth | health
    port = _free_port()
    address = f"127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    started = time.perf_counter()
    try:
        procs.append(_ray_start(["--head", f"--port={port}", "--include-dashboard=false",
                                 f"--dashboard-port={_free_port()}", f"--ray-client-server-port={_free_port()}",
                                 f"--temp-dir={root / 'ray'}"], root / "head.log", env))
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if procs[0].poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Ray head did not start: {(root / 'head.log').read_text()[-3000:]}")
                time.sleep(0.2)
        cluster = SimpleNamespace(address=address, env=env, procs=procs)

        def add_node() -> dict:
            """Start a worker node (one CPU) and wait until two nodes are alive; their ids and the CPUs."""
            log = root / f"node{len(procs) + 1}.log"
            procs.append(_ray_start([f"--address={address}"], log, env))
            probe = textwrap.dedent(f"""
                import json, time, ray
                ray.init(address={address!r}, log_to_driver=False, logging_level="WARNING")
                deadline = time.monotonic() + 120
                while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
                    time.sleep(0.2)
                print(json.dumps(dict(nodes=[n["NodeID"] for n in ray.nodes() if n["Alive"]],
                                      cpus=ray.cluster_resources().get("CPU"))))
            """)
            out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=180)
            if out.returncode != 0:
                pytest.fail(f"cannot use the Ray cluster: {out.stderr[-3000:]}\n{log.read_text()[-2000:]}")
            return json.loads(out.stdout.strip().splitlines()[-1])

        alive = add_node()
        cluster.add_node, cluster.nodes, cluster.cpus = add_node, alive["nodes"], alive["cpus"]
        cluster.start_seconds = time.perf_counter() - started
        yield cluster
    finally:
        for proc in reversed(procs):
            _end_session(proc)
        shutil.rmtree(root, ignore_errors=True)


def _cluster_ingest(cluster, files, workspace: Path, *, expect_kill: bool = False, **kwargs) -> SimpleNamespace:
    """``cluster_ingest`` in a driver process of its own; its report (``files_failed`` and ``warnings`` as tuples)."""
    args = dict(files=[str(f) for f in files], workspace=str(workspace), address=cluster.address,
                **{k: str(v) if isinstance(v, Path) else v for k, v in kwargs.items()})
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args)], env=cluster.env, capture_output=True,
                          text=True, timeout=600, cwd=REPO)
    if expect_kill:
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        return SimpleNamespace()
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("REPORT ")][-1]
    report = json.loads(line.removeprefix("REPORT "))
    for key in ("files_failed", "warnings"):
        report[key] = [tuple(x) for x in report[key]]
    return SimpleNamespace(**report, process_seconds=time.perf_counter() - started)


# ---------------------------------------------------------------------------- the files and the reference
@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> SimpleNamespace:
    """Real recordings (one at 48 kHz, resampled ones, stereo, an MP3), a long one, and bad files."""
    real = shared_path("audio", "recordings")
    gen = tmp_path_factory.mktemp("cluster-audio")
    long = write_tone(gen / "long.wav", 240.0, sr=48000, seed=11)  # 80 windows: long enough to be killed in
    nan = gen / "all_nan.wav"
    sf.write(nan, np.full(48000 * 4, np.nan, dtype=np.float32), 48000, subtype="FLOAT")
    corrupt = gen / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = gen / "empty.wav"
    empty.touch()
    files = [real / "birdnetanalyzer_tfjs_sample.wav",          # 48 kHz: read as it is
             long,
             real / "birdnetgo_tawnyowl.wav",                   # 48 kHz WAVEX
             real / "opensoundscape_birds_10s.wav",             # 32 kHz: resampled
             real / "pyha_Agelasticus-xanthophthalmus-218235.wav",  # 32 kHz stereo: downmixed and resampled
             real / "birdnetlib_XC563936_soundscape.mp3",       # an MP3: decoded length differs from its header
             corrupt, nan, empty]
    return SimpleNamespace(files=files, long=long, bad={corrupt, nan, empty})


@pytest.fixture(scope="module")
def reference(audio, tmp_path_factory, birdnet):
    """Single-machine ingest of the same files: what every cluster ingest must reproduce."""
    st = Store.open(tmp_path_factory.mktemp("reference"))
    started = time.perf_counter()
    report = ingest(audio.files, st, model=birdnet)
    seconds = time.perf_counter() - started
    yield SimpleNamespace(store=st, report=report, snapshot=_snapshot(st), seconds=seconds)
    st.close()


def _snapshot(st: Store) -> dict:
    """Everything ingest stores, keyed by content and window (ids included: commits go in file order)."""
    recordings = {r.content_hash: dict(id=r.id, path=r.path, status=r.status, error=r.error, modality=r.modality,
                                       site=r.site, device=r.device, start_time=r.start_time, latitude=r.latitude,
                                       longitude=r.longitude, sample_rate=r.sample_rate, channels=r.channels,
                                       duration_s=r.duration_s, frames=r.frames, file_size=r.file_size,
                                       file_mtime_ns=r.file_mtime_ns, replaced_by=r.replaced_by)
                  for r in st.recordings()}
    mv = st.model_version(MODEL)
    pool = st.pool(mv)
    infos = st.clips(pool.clip_id)
    embeddings = st.embeddings(MODEL).take(pool.clip_id)
    probabilities = st.probabilities(mv).take(pool.clip_id)
    predictions = st.predictions(pool.clip_id, mv.id)
    clips = {}
    for i, c in enumerate(infos):
        clips[(c.content_hash, c.start_s)] = dict(
            clip_id=c.clip_id, recording_id=c.recording_id, end_s=c.end_s, embedding=embeddings[i].tobytes(),
            probabilities=probabilities[i].tobytes(), predictions=predictions[c.clip_id],
            scores=(pool.max_entropy[i], pool.mean_entropy[i], pool.top1[i], pool.margin[i], pool.top_label[i]))
    return dict(recordings=recordings, clips=clips, counts=st.counts())


def _assert_same_store(st: Store, reference) -> None:
    got = _snapshot(st)
    want = reference if isinstance(reference, dict) else reference.snapshot
    assert got["recordings"] == want["recordings"]
    assert got["clips"].keys() == want["clips"].keys()  # no window missing, none twice (keys are unique per clip)
    for key, clip in want["clips"].items():
        assert got["clips"][key] == clip, f"window {key} differs"  # embeddings and probabilities: the same bits
    assert got["counts"] == want["counts"]


def _assert_same_report(report, reference) -> None:
    want = reference.report
    assert (report.files_new, report.windows_added) == (want.files_new, want.windows_added)
    assert report.audio_seconds == pytest.approx(want.audio_seconds)
    assert sorted(report.files_failed) == sorted(want.files_failed)
    assert (report.warnings, report.truncated, report.nonfinite) == (want.warnings, want.truncated, want.nonfinite)


# ---------------------------------------------------------------------------- without Ray: shards and commits
def _without_ids(snapshot: dict, hashes: set[str]) -> dict:
    recordings = {h: {k: v for k, v in r.items() if k != "id"}
                  for h, r in snapshot["recordings"].items() if h in hashes}
    clips = {key: {k: v for k, v in c.items() if k not in ("clip_id", "recording_id")}
             for key, c in snapshot["clips"].items() if key[0] in hashes}
    return dict(recordings=recordings, clips=clips)


def test_a_shard_is_written_whole_or_not_at_all(tmp_path):
    from embeddings.cluster_shards import ShardError, ShardMeta, matches, read_shard, write_shard

    meta = ShardMeta(content_hash="ab" * 32, path="/x.wav", model=MODEL, dim=4, n_classes=3, window_s=3.0,
                     sample_rate=48000, resume_s=0.0, info={"sample_rate": 32000}, stats={"frames": 9})
    target = shard_path(tmp_path, MODEL, meta.content_hash)
    rng = np.random.default_rng(0)
    probs, embs = rng.random((2, 3), dtype=np.float32), rng.random((2, 4), dtype=np.float32)
    write_shard(target, meta, np.array([0.0, 3.0]), np.array([3.0, 4.5]), probs, embs)
    shard = read_shard(target)
    assert shard.meta == meta and np.array_equal(shard.probabilities, probs) and np.array_equal(shard.embeddings, embs)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left
    assert matches(shard.meta, meta.content_hash, MODEL, 4, 3, 3.0, 48000, resume_s=6.0) is None  # covers a resume
    assert "starts at" in matches(meta.__class__(**{**meta.__dict__, "resume_s": 9.0}), meta.content_hash, MODEL,
                                  4, 3, 3.0, 48000, resume_s=6.0)
    assert "made by" in matches(shard.meta, meta.content_hash, "other-model", 4, 3, 3.0, 48000, 0.0)

    with pytest.raises(ValueError):  # a shard that does not fit its meta is refused before anything is written
        write_shard(target.with_name("c" * 64 + ".npz"), meta, np.array([0.0]), np.array([3.0]), probs, embs)
    target.write_bytes(target.read_bytes()[:100])  # what a torn write on some other storage would leave
    with pytest.raises(ShardError, match="unreadable"):
        read_shard(target)
    with pytest.raises(ShardError, match="unreadable"):
        read_shard_meta(target)


def test_shards_workers_left_are_committed_without_the_cluster(audio, reference, tmp_path, birdnet):
    """The committer alone: shards made by the worker class in this process, committed by cluster_ingest with
    no cluster reachable (nothing is left to embed, so Ray is never asked): the store matches single-machine
    ingest for those files."""
    from embeddings.cluster import cluster_ingest
    from embeddings.cluster_worker import EmbedFiles

    good = [f for f in audio.files if f not in audio.bad]
    worker = EmbedFiles(str(tmp_path / "shards"), model_factory=lambda: birdnet)
    for f in good:
        assert worker.embed(str(f), file_sha256(f), 0.0)["kind"] == "shard"
    st = Store.open(tmp_path / "ws")
    report = cluster_ingest(good, st, address="127.0.0.1:9", shard_dir=tmp_path / "shards")
    assert report.shards_reused == len(good) and report.shards_computed == 0 and report.files_new == len(good)
    hashes = {file_sha256(f) for f in good}
    assert _without_ids(_snapshot(st), hashes) == _without_ids(reference.snapshot, hashes)
    assert not list((tmp_path / "shards").rglob("*.npz"))
    st.close()


def test_the_same_bytes_at_two_sites_are_two_recordings_from_one_shard(tmp_path, birdnet):
    from embeddings.cluster import cluster_ingest
    from embeddings.cluster_worker import EmbedFiles

    a = write_tone(tmp_path / "audio" / "siteA" / "20240501_050000.wav", 4.0, seed=9)
    b = tmp_path / "audio" / "siteB" / "20240601_060000.wav"
    b.parent.mkdir()
    shutil.copy(a, b)
    EmbedFiles(str(tmp_path / "shards"), model_factory=lambda: birdnet).embed(str(a), file_sha256(a), 0.0)
    st = Store.open(tmp_path / "ws")
    report = cluster_ingest(tmp_path / "audio", st, address="127.0.0.1:9", shard_dir=tmp_path / "shards")
    assert (report.files_new, report.shards_reused, report.windows_added) == (2, 1, 4)
    assert report.duplicates == [(str(b), str(a))]
    assert [r.site for r in st.recordings(status="done")] == ["siteA", "siteB"]
    assert not list((tmp_path / "shards").rglob("*.npz"))  # deleted once both were committed from it
    st.close()


# ---------------------------------------------------------------------------- on the cluster
def test_the_cluster_has_two_nodes(ray_cluster):
    assert len(ray_cluster.nodes) == 2 and ray_cluster.cpus == 2


def test_cluster_ingest_stores_exactly_what_single_machine_ingest_stores(ray_cluster, audio, reference, tmp_path):
    report = _cluster_ingest(ray_cluster, audio.files, tmp_path / "ws", shard_dir=tmp_path / "shards")
    print(f"\n[timing] 2-node cluster start {ray_cluster.start_seconds:.1f} s; single-machine ingest "
          f"{reference.seconds:.1f} s; cluster ingest {report.wall_seconds:.1f} s in a driver process of "
          f"{report.process_seconds:.1f} s (connecting {report.cluster_seconds:.1f} s, listing "
          f"{report.list_seconds:.2f} s, slowest actor start-up {report.startup_seconds:.1f} s, workers busy "
          f"{report.worker_seconds:.1f} s, commits {report.commit_seconds:.2f} s) for {report.audio_seconds:.0f} s "
          f"of audio")
    st = Store.open(tmp_path / "ws")
    _assert_same_store(st, reference)
    _assert_same_report(report, reference)
    failed = dict(report.files_failed)
    assert {Path(p) for p in failed} == audio.bad
    assert "holds no usable audio" in failed[str(audio.files[7])] and "empty (0 bytes)" in failed[str(audio.files[8])]
    assert report.workers == 2 and len(report.nodes) == 2  # both nodes embedded files
    assert report.shards_computed == reference.report.files_new and report.shards_reused == 0
    assert not list((tmp_path / "shards").rglob("*.npz"))  # committed shards are deleted

    again = _cluster_ingest(ray_cluster, audio.files, tmp_path / "ws", shard_dir=tmp_path / "shards")
    assert again.files_new == 0 and again.windows_added == 0
    assert again.files_skipped == reference.report.files_new  # done files are skipped; failed ones are read again
    _assert_same_store(st, reference)
    st.close()


def test_a_worker_killed_mid_file_is_replaced_and_the_file_done_again(ray_cluster, audio, reference, tmp_path):
    shard_dir = tmp_path / "shards"
    target = shard_path(shard_dir, MODEL, file_sha256(audio.long))
    marker = target.with_suffix(".working")  # the worker's note while it computes the shard: its node and pid
    killed: dict = {}
    stop = threading.Event()

    def kill_the_worker_of_the_long_file() -> None:
        while not stop.is_set():
            try:
                note = json.loads(marker.read_text())
            except (OSError, ValueError):
                time.sleep(0.002)
                continue
            time.sleep(0.3)  # well into the file
            os.kill(note["pid"], signal.SIGKILL)
            killed.update(note, shard_existed=target.exists())
            return

    killer = threading.Thread(target=kill_the_worker_of_the_long_file, daemon=True)
    killer.start()
    try:
        report = _cluster_ingest(ray_cluster, audio.files, tmp_path / "ws", shard_dir=shard_dir, keep_shards=True)
    finally:
        stop.set()
        killer.join()
    st = Store.open(tmp_path / "ws")
    assert killed, "the long file's worker was never seen"
    assert not killed["shard_existed"]  # killed mid-file: no shard of it yet
    remade = read_shard_meta(target)
    assert remade.pid != killed["pid"]  # made again, by the restarted actor (or the other one)
    _assert_same_store(st, reference)
    _assert_same_report(report, reference)
    st.close()


def _embedding_workers(cluster) -> list[int]:
    """Live processes of the cluster's nodes running an ``EmbedFiles`` actor (Ray titles them ``ray::MapWorker``)."""
    pids = []
    for proc in cluster.procs:
        for pid in _session_pids(proc.pid):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"MapWorker" in cmd or b"EmbedFiles" in cmd:
                pids.append(pid)
    return pids


def _wait_until_its_workers_are_gone(cluster, timeout_s: float = 60.0) -> None:
    """A SIGKILLed driver's actors are ended by Ray after it, not with it: one busy with a file may finish it
    and write its shard first. Counting the shards left before they are gone made the count race (issue 18)."""
    deadline = time.monotonic() + timeout_s
    while _embedding_workers(cluster):
        if time.monotonic() > deadline:
            pytest.fail(f"the killed driver's workers still run after {timeout_s:.0f} s: {_embedding_workers(cluster)}")
        time.sleep(0.2)


def test_a_killed_driver_is_finished_by_a_rerun(ray_cluster, audio, reference, tmp_path):
    """SIGKILL the driver once some files are committed and others wait as shards; the rerun commits those
    shards without recomputing them, embeds the rest, and the store is the reference's.

    The kill is sure to come whatever order the workers finish in: with one window per commit group, the first
    file (good audio) is committed alone, and the progress call after it, or the next shard's arrival, sees a
    shard waiting. (With one big group, every shard could arrive before the first commit and go in with it.)"""
    workspace, shard_dir = tmp_path / "ws", tmp_path / "shards"
    _cluster_ingest(ray_cluster, audio.files, workspace, expect_kill=True, shard_dir=shard_dir, commit_interval_s=0.0,
                    commit_windows=1, kill_when_shards_wait_in=shard_dir / MODEL)
    _wait_until_its_workers_are_gone(ray_cluster)  # one mid-file when the driver died may still write its shard

    st = Store.open(workspace)
    done = {r.content_hash for r in st.recordings(status="done")}
    waiting = {p.stem for p in (shard_dir / MODEL).glob("*.npz")}
    assert done and waiting and not done & waiting
    assert len(done) < reference.report.files_new

    report = _cluster_ingest(ray_cluster, audio.files, workspace, shard_dir=shard_dir)
    assert report.shards_reused == len(waiting)  # committed as they were, not recomputed
    assert report.files_skipped == len(done)
    _assert_same_store(st, reference)
    assert report.files_new + len(done) == reference.report.files_new
    st.close()


def test_the_command_line_ingests_on_the_cluster(ray_cluster, audio, tmp_path):
    ws = tmp_path / "ws"
    files = [str(audio.files[0]), str(audio.files[3])]

    def workbench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "workbench.cli", "--workspace", str(ws), *args],
                              env=ray_cluster.env, capture_output=True, text=True, timeout=600, cwd=REPO)

    wrong = workbench("ingest", *files, "--shards", str(tmp_path / "s"))
    assert wrong.returncode == 2 and "--cluster" in wrong.stderr
    sidecar = tmp_path / "meta.csv"  # placed and dated: the range model's priors come with the ingest
    sidecar.write_text("file,site,start_time,latitude,longitude\n" +
                       "".join(f"{Path(f).name},jura,2024-05-10T05:00:00,46.6,6.2\n" for f in files))
    proc = workbench("ingest", *files, "--cluster", ray_cluster.address, "--metadata", str(sidecar))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ingested 2 new file(s)" in proc.stdout and "[cluster] 2 worker(s) on " in proc.stderr
    assert "range priors computed for 1 new site-week(s)" in proc.stdout
    st = Store.open(ws)
    assert len(st.recordings(status="done")) == 2
    assert len(st.range_priors(st.model_version(MODEL))) == 1
    st.close()
    assert not list((ws / "shards").rglob("*.npz"))  # the workspace's shard folder, emptied by the commits


def test_a_node_lost_mid_file_is_survived(ray_cluster, audio, tmp_path, birdnet):
    """Kill every Ray process of the second node while it embeds a long file: Ray declares the node dead, the
    actor is made again on the head node and the file done there. (Runs last; starts a new second node after.)"""
    # three long files, handed out one at a time: the second node's worker gets at least one
    files = [write_tone(tmp_path / "audio" / f"long_{seed}.wav", 160.0, sr=48000, seed=seed) for seed in (12, 13, 14)]
    want = Store.open(tmp_path / "reference")
    ingest(files, want, model=birdnet)
    snapshot = _snapshot(want)
    want.close()

    shard_dir = tmp_path / "shards"
    node = ray_cluster.procs[-1]  # `ray start --block` of the second node: its session holds all its processes
    markers = [shard_path(shard_dir, MODEL, file_sha256(f)).with_suffix(".working") for f in files]
    killed: dict = {}
    stop = threading.Event()

    def kill_the_second_node() -> None:
        while not stop.is_set():
            for marker in markers:
                try:
                    note = json.loads(marker.read_text())
                    on_node = note["pid"] in _session_pids(node.pid)
                except (OSError, ValueError):
                    continue
                if on_node:
                    time.sleep(0.5)
                    victims = _session_pids(node.pid)
                    for pid in victims:
                        os.kill(pid, signal.SIGKILL)
                    killed.update(note, processes=len(victims), shard_existed=marker.with_suffix(".npz").exists())
                    return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_the_second_node, daemon=True)
    killer.start()
    try:
        report = _cluster_ingest(ray_cluster, files, tmp_path / "ws", shard_dir=shard_dir, files_in_flight=1)
    finally:
        stop.set()
        killer.join()
    assert killed, "no file was embedded on the second node"
    assert not killed["shard_existed"]
    st = Store.open(tmp_path / "ws")
    _assert_same_store(st, snapshot)
    assert report.files_new == 3 and report.windows_added == 3 * 54  # 53 windows and a 1 s tail each
    st.close()
    ray_cluster.add_node()  # two nodes again, for any test after this one


def test_a_cluster_that_does_not_answer_is_one_line_and_nothing_is_stored(audio, tmp_path):
    """Ray alone would retry for minutes printing warnings; the command names the address and stops."""
    _ray_available()
    ws = tmp_path / "ws"
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "--workspace", str(ws), "ingest",
                           str(audio.files[0]), "--cluster", address],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"cannot reach the Ray cluster's head at '{address}'" in errors[0]
    assert "Traceback" not in proc.stderr
    st = Store.open(ws)
    assert st.recordings() == []
    st.close()
