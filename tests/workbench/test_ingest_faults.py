"""Ingest as a hostile but fair new user runs it (issue 18): everything given reaches the store or is named.

Each test here failed on the workbench before issue 18: it asserts what the user sees (the exit status, the
line printed, the rows in the store).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.embeddings.audio_files import write_tone
from workbench.cli import main
from workbench.config import Workspace


def _unreadable(monkeypatch, folder: Path) -> None:
    """``folder`` cannot be listed: by its mode, and for root (who reads whatever the mode) by refusing it."""
    folder.chmod(0)
    if os.geteuid() == 0:
        real = os.scandir

        def scandir(path="."):
            if Path(path) == folder:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)


def _recordings(ws: Path):
    store = Workspace.resolve(str(ws)).open_store()
    try:
        return store.recordings()
    finally:
        store.close()


def test_symlinked_site_folders_are_followed_and_unreadable_folders_named(tmp_path, monkeypatch, capsys):
    top, elsewhere = tmp_path / "top", tmp_path / "data"
    write_tone(elsewhere / "siteA" / "20240501_050000.wav", 3.0, seed=1)
    write_tone(top / "siteB" / "20240501_050000.wav", 3.0, seed=2)
    (top / "siteA").symlink_to(elsewhere / "siteA", target_is_directory=True)  # ln -s /data/siteA top/siteA
    (top / "siteB" / "loop").symlink_to(top, target_is_directory=True)  # a link back up: each file once
    locked = top / "siteC"
    write_tone(locked / "20240501_050000.wav", 3.0, seed=3)
    _unreadable(monkeypatch, locked)
    try:
        main(["--workspace", str(tmp_path / "ws"), "ingest", str(top)])
    finally:
        locked.chmod(0o755)
    out = capsys.readouterr().out
    assert "ingested 2 new file(s), skipped 0 already stored" in out
    assert out.count(f"failed: {locked} is a folder that cannot be read (Permission denied)") == 1
    assert sorted(r.site for r in _recordings(tmp_path / "ws")) == ["siteA", "siteB"]


def test_the_same_bytes_at_two_sites_are_two_recordings_and_the_output_says_so(tmp_path, capsys):
    a = write_tone(tmp_path / "top" / "siteA" / "20240501_050000.wav", 6.0, seed=5)
    b = tmp_path / "top" / "siteB" / "20240601_060000.wav"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    assert main(["--workspace", str(tmp_path / "ws"), "ingest", str(tmp_path / "top")]) == 0
    out = capsys.readouterr().out
    assert "ingested 2 new file(s)" in out
    assert ("1 file(s) hold the same bytes as another recording at another site, device or time; each is stored as "
            "a recording of its own (a recorder writing identical files?), its 2 window(s) copied from the other's, "
            "not embedded again:") in out and f"duplicate: {b} = {a}" in out
    assert sorted(r.site for r in _recordings(tmp_path / "ws")) == ["siteA", "siteB"]


def test_a_folder_with_one_failing_file_exits_1_with_the_count(tmp_path, capsys):
    folder = tmp_path / "audio"
    write_tone(folder / "good.wav", 3.0)
    (folder / "broken.wav").write_text("not audio at all")
    assert main(["--workspace", str(tmp_path / "ws"), "ingest", str(folder)]) == 1
    captured = capsys.readouterr()
    assert "ingested 1 new file(s), skipped 0 already stored, 1 failed" in captured.out
    assert "1 file(s) or folder(s) not ingested (named above): exit status 1" in captured.err
    assert [r.status for r in _recordings(tmp_path / "ws")] == ["failed", "done"]


def test_an_offline_first_image_ingest_is_one_line_naming_the_real_flags(tmp_path, monkeypatch, capsys):
    from PIL import Image

    (tmp_path / "traps").mkdir()
    Image.new("RGB", (160, 120), "green").save(tmp_path / "traps" / "IMG_0001.JPG")
    monkeypatch.setenv("WORKBENCH_MODELS_MIRROR", "http://127.0.0.1:9")  # no network: nothing answers
    assert main(["--workspace", str(tmp_path / "ws"), "ingest", str(tmp_path / "traps")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: vision model 'mobilenet-v2-imagenet': cannot download") and "\n" not in err
    assert "--vision-model FILE --labels FILE" in err and "--model-dir FOLDER" in err
    assert "--model FILE" not in err and "Traceback" not in err


@pytest.fixture
def read_only_workspace(tmp_path):
    """A workspace with one recording and a label set, then made read-only (an archived copy): mounted read-only
    for root (who writes whatever the mode), its modes taken away otherwise."""
    import shutil
    import subprocess

    from store import Recording

    ws = Workspace.resolve(str(tmp_path / "ws"))
    store = ws.open_store()
    store.add_recording(Recording(path="/data/siteA/a.wav", content_hash="h1", status="done", site="siteA"))
    store.add_label_set("archived", ["Parus major_Great Tit", "Other", "Noise"])
    store.close()
    if os.geteuid() != 0:
        for p in (ws.root, *ws.root.rglob("*")):
            p.chmod(p.stat().st_mode & ~0o222)
        yield ws.root
        for p in (ws.root, *ws.root.rglob("*")):
            p.chmod(p.stat().st_mode | 0o200)
        return
    ro = tmp_path / "archive"
    ro.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "--bind", str(ws.root), str(ro)]).returncode:
        pytest.skip("running as root and cannot bind-mount a read-only copy of the workspace")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)]).returncode:
            pytest.skip("running as root and cannot remount the workspace read-only")
        yield ro
    finally:  # lazily: the commands run in this process may still hold the database open
        subprocess.run(["umount", "--lazy", str(ro)])


def test_a_read_only_workspace_is_read_by_reading_commands_and_named_by_writing_ones(read_only_workspace, capsys,
                                                                                    monkeypatch):
    import socket

    with socket.socket() as sock:  # no server there: a Label Studio a developer runs on 8080 is not this one
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{sock.getsockname()[1]}")
    ws = str(read_only_workspace)
    before = sorted(p.name for p in read_only_workspace.iterdir())
    assert main(["--workspace", ws, "status"]) == 0
    out = capsys.readouterr().out
    assert "recordings         1" in out and "Label Studio: stopped" in out
    assert main(["--workspace", ws, "labels"]) == 0
    assert "label set 'archived' (3 labels)" in capsys.readouterr().out
    for argv in (["sample", "--budget", "1"], ["labels", "--add", "Noise2"]):
        assert main(["--workspace", ws, *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"error: the workspace folder {read_only_workspace} is read-only (an archived copy?): this "
                       f"command writes to its database; copy the folder somewhere writable, or make it writable")
    assert sorted(p.name for p in read_only_workspace.iterdir()) == before  # nothing made in it


_FAKE_SERVICE = """
import http.server, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_stop_in_a_copied_workspace_leaves_the_originals_services_running(tmp_path, capsys):
    """The original's Label Studio and app (stand-ins answering /health, started as services start them: their
    workspace in their environment, their pid and port recorded in the workspace) survive a copy's stop."""
    import json
    import shutil
    import socket
    import subprocess
    import sys
    import time

    from annotation.server import pid_alive

    original = Workspace.resolve(str(tmp_path / "original"))
    procs = []
    for name, key, folder in (("label-studio", "LABEL_STUDIO_BASE_DATA_DIR", original.labelstudio_data),
                              ("streamlit", "WORKBENCH_HOME", original.root)):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, **{key: str(folder)})
        procs.append((subprocess.Popen([sys.executable, "-c", _FAKE_SERVICE, str(port), name], env=env,
                                       start_new_session=True), port))
    (ls, ls_port), (app, app_port) = procs
    original.labelstudio_data.mkdir()
    (original.labelstudio_data / "workbench-server.json").write_text(json.dumps({"pid": ls.pid, "port": ls_port}))
    original.logs.mkdir()
    (original.logs / "app.json").write_text(json.dumps({"pid": app.pid, "url": f"http://127.0.0.1:{app_port}",
                                                        "workspace": str(original.root)}))
    try:
        time.sleep(1.0)  # both answer /health
        shutil.copytree(original.root, tmp_path / "copy")
        copy = str(tmp_path / "copy")
        assert main(["--workspace", copy, "status"]) == 0
        out = capsys.readouterr().out
        assert "app: stopped" in out and "Label Studio: stopped (the Label Studio at" in out
        assert main(["--workspace", copy, "stop"]) == 0
        out = capsys.readouterr().out
        assert "app was not running" in out and "belongs to another workspace; left running" in out
        assert pid_alive(ls.pid) and pid_alive(app.pid)
        assert main(["--workspace", str(original.root), "status"]) == 0
        out = capsys.readouterr().out
        assert f"Label Studio: running at http://127.0.0.1:{ls_port}" in out
        assert f"app: running at http://127.0.0.1:{app_port}" in out
        assert main(["--workspace", str(original.root), "stop"]) == 0
        assert "Label Studio stopped" in capsys.readouterr().out
        for proc, _ in procs:
            proc.wait(timeout=20)
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------- the smaller ones (item 9)
def test_sample_says_how_many_picks_it_hides_and_a_budget_warning_is_one_line(workspace, tmp_path, monkeypatch,
                                                                            capsys):
    from tests.annotation.conftest import generate

    monkeypatch.setenv("WORKBENCH_HOME", str(workspace.root))
    store = workspace.open_store()
    generate(store, tmp_path, n_clips=40, pick=10)  # 30 clips left to pick
    assert main(["sample", "--strategy", "random", "--budget", "25", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("  #") == 20 and "  ... and 5 more (--show N lists more)" in out
    assert main(["sample", "--strategy", "random", "--budget", "1000000", "--seed", "0"]) == 0
    captured = capsys.readouterr()
    [warning] = [line for line in captured.err.splitlines() if "budget" in line]
    assert warning.startswith("warning: budget 1000000 exceeds the 5 clips left in the pool")
    assert "SamplerWarning" not in captured.err and ".py:" not in captured.err and "picks =" not in captured.err
    store.close()


def test_status_into_a_closed_pipe_ends_quietly(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "--workspace", str(tmp_path / "ws"), "status"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `workbench status | head -0`: the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err


def test_ingest_failure_lines_name_a_fifo_and_each_path_once_and_images_speak_of_images(tmp_path, capsys):
    from PIL import Image

    from tests.conftest import shared_path

    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "pipe.wav")
    (folder / "broken.wav").write_text("not audio at all")
    Image.new("RGB", (320, 240), "green").save(folder / "IMG_0001.JPG", quality=90)
    data = (folder / "IMG_0001.JPG").read_bytes()
    (folder / "IMG_0002.JPG").write_bytes(data[: len(data) // 2])  # cut short: kept, with a note
    code = main(["--workspace", str(tmp_path / "ws"), "ingest", str(folder / "pipe.wav"), str(folder / "broken.wav"),
                 str(folder), "--vision-model", "mobilenet-v1-0.25-128-imagenet",
                 "--model-dir", str(shared_path("models", "vision"))])
    out = capsys.readouterr().out
    assert code == 1
    assert f"  failed: {folder / 'pipe.wav'}: is a FIFO (named pipe), not a regular file: give the file itself" in out
    assert "0 bytes" not in out
    assert out.count(str(folder / "broken.wav")) == 1
    assert "1 truncated image(s): the part that decodes was ingested" in out and "NaN" not in out


def test_an_unreachable_ray_cluster_gives_its_advice_once():
    pytest.importorskip("ray", reason="needs Ray for cluster ingest")
    from embeddings.cluster import ClusterError, connect

    with pytest.raises(ClusterError) as e:
        connect("127.0.0.1:9")
    assert str(e.value).count("ray start --head") == 1 and "cannot reach the Ray cluster's head" in str(e.value)


def test_another_workspaces_label_studio_on_our_port_is_named_not_taken_for_ours(tmp_path, monkeypatch, capsys):
    """A workspace never served, while another workspace's Label Studio holds the port: status says whose it is,
    and push says to start this one's, instead of a 401 that sends the user to change a right token."""
    import socket
    import subprocess
    import sys
    import time

    other = Workspace.resolve(str(tmp_path / "other"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, LABEL_STUDIO_BASE_DATA_DIR=str(other.labelstudio_data))
    proc = subprocess.Popen([sys.executable, "-c", _FAKE_SERVICE, str(port)], env=env, start_new_session=True)
    monkeypatch.setenv("WORKBENCH_LS_PORT", str(port))
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    ours = str(tmp_path / "ours")
    try:
        time.sleep(1.0)
        assert main(["--workspace", ours, "status"]) == 0
        assert (f"Label Studio: stopped (the Label Studio at http://127.0.0.1:{port} is the workspace {other.root}'s: "
                "`workbench serve` starts this one's") in capsys.readouterr().out
        assert main(["--workspace", ours, "push"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"error: the Label Studio at http://127.0.0.1:{port} is the workspace {other.root}'s, not this "
                       "one's: start this workspace's own with `workbench serve` (WORKBENCH_LS_PORT=PORT puts it on "
                       "another port), or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY to work in that server")
    finally:
        proc.kill()
        proc.wait()
