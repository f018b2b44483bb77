"""LocalLabelStudio: loopback only, busy ports refused, our own server reused, detached server stoppable."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from annotation.errors import AnnotationServerError, LabelStudioServerError
from annotation.server import port_in_use
from workbench.services import local_labelstudio
from workbench.config import LabelStudioSettings, Workspace

REPO = Path(__file__).resolve().parents[2]


def _settings(port: int, token: str = "t0ken-for-tests-123") -> LabelStudioSettings:
    return LabelStudioSettings(url=f"http://127.0.0.1:{port}", token=token, username="u@workbench.local",
                               password="pw-for-tests-456")


def _non_loopback_addresses() -> list[str]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return sorted({i[4][0] for i in infos if not i[4][0].startswith("127.")})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_busy_port_is_refused_with_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert port_in_use(port)
        server = local_labelstudio(Workspace.resolve(tmp_path / "ws"), _settings(port))
        with pytest.raises(LabelStudioServerError, match=rf"port {port} .*already in use.*WORKBENCH_LS_PORT"):
            server.start(timeout=5)
    assert issubclass(LabelStudioServerError, AnnotationServerError)


def test_a_port_in_time_wait_is_free():
    """Right after Label Studio stops, its port lingers in TIME_WAIT; a restart on it must not be refused."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Django's runserver does
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = listener.accept()
        conn.close()  # the server side closes first: its end of the connection sits in TIME_WAIT
        client.close()
    assert not port_in_use(port)


def test_port_defaults_to_the_settings_url(tmp_path):
    ws = Workspace.resolve(tmp_path / "ws")
    assert local_labelstudio(ws, _settings(18123)).url == "http://127.0.0.1:18123"
    assert local_labelstudio(ws, _settings(18123), port=18124).url == "http://127.0.0.1:18124"


def test_short_token_is_refused_without_printing_it(tmp_path):
    server = local_labelstudio(Workspace.resolve(tmp_path / "ws"), _settings(_free_port(), token="abc"))
    with pytest.raises(LabelStudioServerError, match="longer than 5") as e:
        server.start(timeout=5)
    assert "abc" not in str(e.value)


def test_child_environment(tmp_path, monkeypatch):
    for name in ("USERNAME", "PASSWORD", "PORT", "HOST"):
        monkeypatch.setenv(name, "from-the-shell")
    ws = Workspace.resolve(tmp_path / "ws")
    env = local_labelstudio(ws, _settings(18125))._child_env()
    assert not {"USERNAME", "PASSWORD", "PORT", "HOST"} & set(env)
    assert env["LABEL_STUDIO_BASE_DATA_DIR"] == str(ws.labelstudio_data)
    assert env["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] == str(ws.media)
    assert env["LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"] == "true"
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert env["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "true"
    assert env["LABEL_STUDIO_COLLECT_ANALYTICS"] == "false" and env["LABEL_STUDIO_SENTRY_DSN"] == ""
    assert env["LABEL_STUDIO_USER_TOKEN"] == "t0ken-for-tests-123"


@pytest.mark.labelstudio
def test_session_server_is_healthy_reused_and_keeps_secrets_out_of_its_log(labelstudio):
    server = labelstudio.server
    assert server.is_running()
    assert httpx.get(f"{labelstudio.url}/health").status_code == 200
    # another handle on the same workspace and port finds our server and reuses it
    again = local_labelstudio(labelstudio.workspace, labelstudio.settings, port=server.resolved_port)
    started = time.monotonic()
    assert again.start(timeout=5) == labelstudio.url
    assert time.monotonic() - started < 5
    # ... but never starts a second server on the same data dir
    other = local_labelstudio(labelstudio.workspace, labelstudio.settings, port=_free_port())
    with pytest.raises(LabelStudioServerError, match="already runs"):
        other.start(timeout=5)
    # bound to loopback only: the machine's other addresses do not answer
    for ip in _non_loopback_addresses():
        with pytest.raises(OSError):
            socket.create_connection((ip, server.resolved_port), timeout=1).close()
    log = server.log_file.read_text()
    assert f"127.0.0.1:{server.resolved_port}" in log
    assert labelstudio.token not in log and labelstudio.settings.password not in log
    # sign-up without an invite link is refused (the form renders, posting it is forbidden)
    with httpx.Client(base_url=labelstudio.url) as web:
        web.get("/user/signup/")
        r = web.post("/user/signup/", data={"email": "intruder@example.org", "password": "intruder-pass-123",
                                            "csrfmiddlewaretoken": web.cookies.get("csrftoken", "")})
    assert r.status_code == 403 and "CSRF" not in r.text


@pytest.mark.labelstudio
def test_detached_server_outlives_its_starter_and_stops_via_the_state_file(labelstudio, tmp_path):
    # a copy of the session's (already migrated) database makes this a warm start of a few seconds
    ws = Workspace.resolve(tmp_path / "ws")
    ws.labelstudio_data.mkdir(parents=True)
    src = sqlite3.connect(labelstudio.workspace.labelstudio_data / "label_studio.sqlite3")
    dst = sqlite3.connect(ws.labelstudio_data / "label_studio.sqlite3")
    src.backup(dst)
    src.close()
    dst.close()
    port = _free_port()
    s = labelstudio.settings
    script = textwrap.dedent(f"""
        from workbench.services import local_labelstudio
        from workbench.config import LabelStudioSettings, Workspace
        ws = Workspace.resolve({str(ws.root)!r})
        settings = LabelStudioSettings(url={s.url!r}, token={s.token!r}, username={s.username!r},
                                       password={s.password!r})
        print(local_labelstudio(ws, settings, port={port}).start(timeout=120, detach=True))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == f"http://127.0.0.1:{port}"
    server = local_labelstudio(ws, labelstudio.settings, port=port)
    try:
        assert server.is_running()  # the starter has exited; the server lives on
        assert server.state_file.exists()
        assert server.start(timeout=5) == server.url  # reused, not restarted
        assert (ws.logs / "labelstudio.log").exists()
    finally:
        assert server.stop() is True
    assert not server.is_running() and not server.state_file.exists()
    assert server.stop() is False


def test_the_servers_data_holding_its_token_is_private(labelstudio):
    """Label Studio keeps the API token in plain text in its SQLite database: nobody else may read it."""
    data = labelstudio.workspace.labelstudio_data
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    db = data / "label_studio.sqlite3"
    assert db.exists() and stat.S_IMODE(db.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE((labelstudio.workspace.logs / "labelstudio.log").stat().st_mode) & 0o077 == 0


def test_a_data_dir_left_readable_by_an_earlier_release_is_mended(tmp_path):
    ws = Workspace.resolve(tmp_path / "ws")
    ws.labelstudio_data.mkdir(parents=True)
    os.chmod(ws.labelstudio_data, 0o755)
    db = ws.labelstudio_data / "label_studio.sqlite3"
    db.write_bytes(b"token inside")
    os.chmod(db, 0o644)
    local_labelstudio(ws, _settings(_free_port())).protect()
    assert stat.S_IMODE(ws.labelstudio_data.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
