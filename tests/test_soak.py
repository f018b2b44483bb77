"""Round after round, with faults: the loop as a lab lives it, small enough for CI.

Three rounds of ingest new audio -> sample -> push -> annotate (through Label Studio's API) -> pull ->
fine-tune, each command run as the user runs it (a separate process), with kill -9 at a random moment
of ingest, push, pull and fine-tune, Label Studio restarted in the middle of a push, and a recording
replaced on disk after it was sampled. After every round the store and Label Studio must agree:
every clip scored by the current head, no task twice, every annotation in Label Studio equal to the
stored one, no window lost or duplicated, no audio pushed that differs from what was ingested.

The seed of the fault schedule is printed; WORKBENCH_SOAK_SEED replays a schedule.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, shared_path

pytestmark = pytest.mark.labelstudio

SHRIKE = "Lanius collurio_Red-backed Shrike"
WRYNECK = "Jynx torquilla_Eurasian Wryneck"
FOLDERS = {"birdnet_testdata_s1": SHRIKE, "birdnet_testdata_s2": WRYNECK, "avianz_noise": "Noise"}
ROUNDS = 3
PER_ROUND = 4  # files per folder per round


def _cli(argv: list[str], kill_after: float | None = None, timeout: float = 600) -> tuple[int, str, bool]:
    """Run ``workbench ARGV`` as a process; with ``kill_after`` it gets SIGKILL then unless it ended first.

    Returns (exit status, output, killed).
    """
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=kill_after if kill_after is not None else timeout)
        return proc.returncode, out, False
    except subprocess.TimeoutExpired:
        if kill_after is None:
            raise
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return proc.returncode, out, True


def _ok(argv: list[str], allowed: tuple[int, ...] = (0,)) -> str:
    code, out, _ = _cli(argv)
    assert code in allowed, f"workbench {' '.join(argv)} exited {code}:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    return out


def _expected_windows(path: Path) -> int:
    seconds = sf.info(str(path)).frames / sf.info(str(path)).samplerate
    return max(1, int(seconds // 3) + (seconds % 3 >= 1.0))


class Soak:
    def __init__(self, ws, ls, project: str, tmp: Path, seed: int):
        from annotation.client import LabelStudioClient

        self.ws, self.ls, self.project, self.tmp = ws, ls, project, tmp
        self.rng = random.Random(seed)
        self.audio = tmp / "recorders"
        self.sdk = LabelStudioClient(ls.settings, timeout=60).sdk
        self.pushed_before_change: set[int] = set()  # clip ids in Label Studio when a file changed
        self.log: list[str] = []
        self.durations: dict[str, float] = {}  # command -> seconds its last full run took

    # ------------------------------------------------------------------ the user's steps
    def new_audio(self, r: int) -> None:
        for folder in FOLDERS:
            files = sorted(shared_path("audio", "labeled_clips", folder).glob("*.wav"))
            dest = self.audio / folder
            dest.mkdir(parents=True, exist_ok=True)
            for src in files[r * PER_ROUND:(r + 1) * PER_ROUND]:
                shutil.copy(src, dest / src.name)

    def faulty(self, argv: list[str], low: float, high: float, allowed: tuple[int, ...] = (0,)) -> str:
        """Run a command killed at a random moment, then run it again to the end.

        The moment is drawn from [low, high] the first time; later, from the second half of the time the
        same command last took to finish (after its start-up, while it works), so the kills land mid-way.
        """
        last = self.durations.get(argv[0])
        delay = self.rng.uniform(low, high) if last is None else self.rng.uniform(0.5 * last, 0.95 * last)
        code, out, killed = _cli(argv, kill_after=delay)
        self.log.append(f"{argv[0]}: kill -9 after {delay:.2f} s -> {'killed' if killed else f'ended ({code})'}")
        if not killed:
            assert "Traceback" not in out, out[-3000:]
        started = time.monotonic()
        out = _ok(argv, allowed)
        self.durations[argv[0]] = time.monotonic() - started
        return out

    def push_across_a_restart(self, allowed: tuple[int, ...]) -> str:
        """A push during which Label Studio is stopped and started again; then the push the user retries."""
        delay = self.rng.uniform(0.5, 4.0)
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "push", "--project", self.project,
                                 "--label-set", "soak"], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

        def restart() -> None:
            time.sleep(delay)
            self.ls.server.stop()
            self.ls.server.start(timeout=240)

        t = threading.Thread(target=restart)
        t.start()
        out, _ = proc.communicate(timeout=600)
        t.join()
        self.log.append(f"push: Label Studio restarted after {delay:.2f} s -> push ended ({proc.returncode})")
        assert proc.returncode in (0, 1, 2) and "Traceback" not in out, out[-3000:]
        return _ok(["push", "--project", self.project, "--label-set", "soak"], allowed)

    def annotate(self, store, pid: int, r: int) -> None:
        """The expert labels every open task; in round 1 they also edit one label and delete another."""
        for t in self.sdk.tasks.list(project=pid, fields="all"):
            if t.annotations:
                continue
            info = store.clips([t.data["clip_id"]])[0]
            label = FOLDERS[Path(info.path).parent.name]
            self.sdk.annotations.create(id=t.id, result=[{"from_name": "species", "to_name": "audio",
                                                          "type": "choices", "value": {"choices": [label]}}])
        if r == 0:
            tasks = [t for t in self.sdk.tasks.list(project=pid, fields="all") if t.annotations]
            edited, deleted = tasks[0], tasks[1]
            self.sdk.annotations.update(id=edited.annotations[0]["id"], result=[  # a species found by search
                {"from_name": "species", "to_name": "audio", "type": "choices", "value": {"choices": ["Other"]}},
                {"from_name": "taxon", "to_name": "audio", "type": "taxonomy",
                 "value": {"taxonomy": [["Anaxyrus sp.", "Anaxyrus cognatus_Great Plains Toad"]]}}])
            self.sdk.annotations.delete(id=deleted.annotations[0]["id"])

    def replace_a_sampled_recording(self, store, pid: int | None) -> int:
        """A recorder's file is rewritten in place after its clips were sampled: they must not be pushed."""
        if pid is not None:  # tasks pushed before the change carry the content that was ingested
            self.pushed_before_change |= {t.data["clip_id"] for t in self.sdk.tasks.list(project=pid)}
        run = store.last_sampling_run()
        picks = store.selections(run.id)
        info = store.clips([picks[0].clip_id])[0]
        path = Path(info.path)
        data, sr = sf.read(path, dtype="float32")
        sf.write(path, np.ascontiguousarray(data[::-1]) * 0.5, sr)  # other content, same name and length
        self.log.append(f"replaced {path.name} (recording {info.recording_id}) after sampling")
        return info.recording_id

    # ------------------------------------------------------------------ what must hold after every round
    def check(self, store, pid: int, changed: set[int]) -> None:
        from store.sources import file_sha256

        # no window lost or duplicated: every current recording has exactly the windows its file gives
        pool = store.pool()
        infos = store.clips(pool.clip_id)
        spans = [(c.recording_id, c.start_s) for c in infos]
        assert len(spans) == len(set(spans))
        per_rec: dict[int, int] = {}
        for c in infos:
            per_rec[c.recording_id] = per_rec.get(c.recording_id, 0) + 1
        current = [r for r in store.recordings() if r.status == "done"]
        assert {r.id for r in current} == set(per_rec)
        for rec in current:
            assert per_rec[rec.id] == _expected_windows(Path(rec.path)), rec.path
        files = [p for folder in FOLDERS for p in (self.audio / folder).glob("*.wav")]
        assert len(current) == len(files)
        emb = store.embeddings("birdnet-v2.4")
        assert len(np.unique(np.asarray(emb.ids))) == len(emb)  # one embedding per window, never two
        assert set(pool.clip_id.tolist()) <= set(np.asarray(emb.ids).tolist())
        # every clip of the pool is scored by the current model (a head, after round 1)
        mv = store.current_model_version()
        assert store.unscored_clip_ids(mv).size == 0
        # no task twice, and the store knows exactly the tasks Label Studio has
        tasks = list(self.sdk.tasks.list(project=pid, fields="all"))
        clip_of = [t.data["clip_id"] for t in tasks]
        assert len(clip_of) == len(set(clip_of))
        assert store.tasks(pid) == {t.data["clip_id"]: t.id for t in tasks}
        # no audio pushed that differs from what was ingested
        by_id = {r.id: r for r in store.recordings()}
        for t in tasks:
            info = store.clips([t.data["clip_id"]])[0]
            if info.clip_id in self.pushed_before_change:
                continue
            assert info.recording_id not in changed, f"clip {info.clip_id} of a changed file was pushed"
            rec = by_id[info.recording_id]
            if rec.status == "done":
                assert file_sha256(rec.path) == rec.content_hash
        # every annotation in Label Studio is the stored one, and the store has no other active one
        in_ls = {}
        for t in tasks:
            for a in t.annotations:
                # ticks (Other means "the species is in the search") and the species picked in the search
                choices = [c for r in a["result"] if r["from_name"] == "species" for c in r["value"]["choices"]
                           if c != "Other"]
                choices += [p[-1] for r in a["result"] if r["from_name"] == "taxon" for p in r["value"]["taxonomy"]]
                in_ls[a["id"]] = (t.data["clip_id"], sorted(choices))
        stored = {a.ls_annotation_id: (a.clip_id, sorted(a.labels)) for a in store.annotations()
                  if a.project_id == pid}
        assert stored == in_ls


@pytest.fixture
def soak(served_workspace, labelstudio, tmp_path):
    seed = int(os.environ.get("WORKBENCH_SOAK_SEED") or random.SystemRandom().randrange(10**6))
    print(f"soak seed {seed} (replay with WORKBENCH_SOAK_SEED={seed})")
    return Soak(served_workspace, labelstudio, f"soak {served_workspace.root.name}", tmp_path, seed)


def test_three_rounds_with_kills_restarts_and_a_changed_file(soak):
    from store import Store  # noqa: F401 - the store is read in-process between the user's commands

    s = soak
    store = s.ws.open_store()
    store.add_label_set("soak", [SHRIKE, WRYNECK, "Other", "Noise"])
    changed: set[int] = set()
    pid = None
    try:
        for r in range(ROUNDS):
            s.new_audio(r)
            s.faulty(["ingest", str(s.audio)], 1.0, 6.0)
            s.faulty(["sample", "--budget", "9", "--seed", str(r), "--strata", "site"], 0.5, 3.0)
            # the new audio joined the current head's pool before it was sampled from
            mv = store.current_model_version()
            assert store.unscored_clip_ids(mv).size == 0
            assert len(store.pool(mv)) == sum(_expected_windows(p) for f in FOLDERS
                                              for p in (s.audio / f).glob("*.wav"))
            allowed = (0,)
            if r == 1:
                changed.add(s.replace_a_sampled_recording(store, pid))
                allowed = (0, 1)  # push names the clips of the changed file and exits 1
            s.faulty(["push", "--project", s.project, "--label-set", "soak"], 0.5, 4.0, allowed)
            out = s.push_across_a_restart(allowed)
            if r == 1:
                assert "changed since it was ingested" in out
            pid = int(out.split("project ")[1].split(":")[0])
            s.annotate(store, pid, r)
            s.faulty(["pull", "--project", s.project, "--label-set", "soak"], 0.5, 4.0)
            s.faulty(["finetune"], 1.0, 6.0)
            # the next sample scores clips ingested after this head; check it the way the loop sees it
            _ok(["status"])
            s.check(store, pid, changed)
        # the changed file was re-ingested in the last round: a new version, the old one out of the pool
        replaced = [rec for rec in store.recordings() if rec.status == "replaced"]
        assert {rec.id for rec in replaced} == changed and all(rec.replaced_by for rec in replaced)
        assert store.current_model_version().name.startswith("head-")
    finally:
        print("\n".join(s.log))  # the fault schedule, shown with the seed when the test fails
        store.close()
