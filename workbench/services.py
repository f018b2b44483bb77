"""Start, find and stop the workspace's background services: Label Studio and the Streamlit app.

Both bind to 127.0.0.1 and outlive the command that started them (``workbench stop`` ends them);
their pid and URL are kept in small JSON files in the workspace so any later command finds them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from annotation.server import listening_pids, pid_alive, port_in_use, signal_process, wait_gone
from workbench.config import DEFAULT_APP_PORT, Workspace, labelstudio_settings

APP_FILE = Path(__file__).resolve().parents[1] / "app.py"


class ServiceError(RuntimeError):
    pass


def _app_state_file(ws: Workspace) -> Path:
    return ws.logs / "app.json"


def _environment(pid: int) -> Optional[dict[str, str]]:
    """The environment process ``pid`` was started with, or None where it cannot be read (no /proc)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _started_for(pid: int, key: str, folder: Path) -> bool:
    """Whether process ``pid`` was started for ``folder`` (its ``key`` variable names it), as far as can be seen:
    a recorded pid alone is no proof, since a copied workspace holds the original's records."""
    env = _environment(pid)
    return env is None or Path(env.get(key, "")) == folder


def app_info(ws: Workspace) -> Optional[dict]:
    """The app this workspace started, while it runs (not one another workspace, say the original of a copy, runs)."""
    path = _app_state_file(ws)
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    pid = int(info["pid"])
    if Path(info.get("workspace", ws.root)) != ws.root or not _started_for(pid, "WORKBENCH_HOME", ws.root):
        return None
    return info if pid_alive(pid) else None


def _labelstudio_is_ours(ws: Workspace, server) -> bool:
    """Whether the Label Studio answering on the server's URL is the one this workspace started (its data dir)."""
    try:
        pid = int(json.loads(server.state_file.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return pid_alive(pid) and _started_for(pid, "LABEL_STUDIO_BASE_DATA_DIR", ws.labelstudio_data)


def labelstudio_of_another_workspace(ws: Workspace) -> Optional[Path]:
    """The workspace whose Label Studio answers on this workspace's Label Studio port, when it is not this one
    (the data dir it was started with says whose it is); None when it is ours, nobody's, or cannot be told."""
    from urllib.parse import urlparse

    settings = labelstudio_settings(ws)
    if _labelstudio_is_ours(ws, local_labelstudio(ws, settings)):  # the usual case: no walk through /proc
        return None
    port = urlparse(settings.url).port
    for pid in listening_pids(port) if port else []:
        folder = (_environment(pid) or {}).get("LABEL_STUDIO_BASE_DATA_DIR")
        if folder:
            return None if Path(folder) == ws.labelstudio_data else Path(folder).parent
    return None


def start_app(ws: Workspace, port: int = DEFAULT_APP_PORT, timeout: float = 60.0) -> str:
    """Start the Streamlit app on 127.0.0.1:port in the background (reused if already running)."""
    running = app_info(ws)
    if running:
        return running["url"]
    if not APP_FILE.exists():
        raise ServiceError(f"{APP_FILE} not found: install the workbench from its source folder (pip install -e .)")
    if port_in_use(port):
        raise ServiceError(f"port {port} on 127.0.0.1 is busy; pick another with --app-port")
    ws.logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, WORKBENCH_HOME=str(ws.root), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    if ws.db_url:
        env["WORKBENCH_DB_URL"] = ws.db_url
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP_FILE), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    with open(ws.logs / "app.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"the app exited at start (status {proc.returncode}); see {ws.logs / 'app.log'}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    _app_state_file(ws).write_text(json.dumps({"pid": proc.pid, "url": url,
                                                               "workspace": str(ws.root)}))
                    return url
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    proc.terminate()
    raise ServiceError(f"the app did not answer on {url} within {timeout:.0f} s; see {ws.logs / 'app.log'}")


def stop_app(ws: Workspace) -> bool:
    info = app_info(ws)
    _app_state_file(ws).unlink(missing_ok=True)  # a copied workspace's record of the original's app goes too
    if not info:
        return False
    pid = int(info["pid"])
    if not pid_alive(pid):
        return False
    signal_process(pid, signal.SIGTERM)
    if not wait_gone(pid, None, 10.0):
        signal_process(pid, signal.SIGKILL)
    return True


def local_labelstudio(ws: Workspace, settings=None, port: Optional[int] = None):
    """The workspace's own Label Studio: data in ``labelstudio/``, clips served from ``media/``, log in ``logs/``."""
    from annotation.server import LocalLabelStudio

    return LocalLabelStudio(ws.labelstudio_data, ws.media, settings or labelstudio_settings(ws), port=port,
                            log_file=ws.logs / "labelstudio.log", secrets_hint=str(ws.secrets_file))


def start_all(ws: Workspace, *, app_port: int = DEFAULT_APP_PORT, with_app: bool = True,
              progress: Callable[[str], None] | None = None) -> dict[str, str]:
    """Start (or reuse) the local Label Studio and the app; return their URLs."""
    settings = labelstudio_settings(ws)
    if os.environ.get("LABEL_STUDIO_URL"):
        info = {"labelstudio": settings.url}  # an external server the user pointed us at
    else:
        server = local_labelstudio(ws, settings)
        if progress and not server.is_running():
            progress("[serve] starting Label Studio on 127.0.0.1 (first start migrates its database: ~30 s)")
        info = {"labelstudio": server.start(detach=True)}
    if with_app:
        info["app"] = start_app(ws, app_port)
    return info


def stop_all(ws: Workspace) -> list[str]:
    lines = []
    server = local_labelstudio(ws)
    if server.is_running() and _labelstudio_is_ours(ws, server):
        lines.append("Label Studio stopped" if server.stop() is not False else "Label Studio was not running")
    elif server.is_running():  # another workspace's (the original of a copied one): left alone
        server.state_file.unlink(missing_ok=True)
        lines.append(f"Label Studio was not running (the one at {server.url} belongs to another workspace; "
                     f"left running)")
    else:
        lines.append("Label Studio was not running")
    lines.append("app stopped" if stop_app(ws) else "app was not running")
    return lines


def status(ws: Workspace) -> dict[str, str]:
    server = local_labelstudio(ws)
    app = app_info(ws)
    if not server.is_running():
        labelstudio = "stopped"
    elif os.environ.get("LABEL_STUDIO_URL") or _labelstudio_is_ours(ws, server):
        labelstudio = f"running at {server.url}"
    elif (other := labelstudio_of_another_workspace(ws)) is not None:
        labelstudio = (f"stopped (the Label Studio at {server.url} is the workspace {other}'s: `workbench serve` "
                       "starts this one's, WORKBENCH_LS_PORT=PORT on another port)")
    elif not server.state_file.exists():  # a server we did not start and cannot place: the user's own
        labelstudio = f"running at {server.url}"
    else:
        labelstudio = f"stopped (the Label Studio at {server.url} belongs to another workspace)"
    return {"Label Studio": labelstudio, "app": f"running at {app['url']}" if app else "stopped"}
