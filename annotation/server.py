"""A local Label Studio server for one workspace: loopback only, fixed token, no sign-up, no phoning home.

Label Studio reads ``LABEL_STUDIO_X``, then ``HEARTEX_X``, then plain ``X`` from its environment, so plain
USERNAME / PASSWORD / PORT / HOST are removed from the child's environment. A busy port is refused here,
because Label Studio itself would silently move to the next free port and the workbench would talk to
whatever else answers. The token is a secret: it goes to the child's environment only, never to a log.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

import httpx

from annotation.errors import LabelStudioServerError
from annotation.settings import DEFAULT_LS_PORT, LabelStudioSettings
from store.atomic import PRIVATE, write_atomically

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STATE_FILE = "workbench-server.json"
_DROPPED_ENV = ("USERNAME", "PASSWORD", "PORT", "HOST", "HEARTEX_USERNAME", "HEARTEX_PASSWORD",
                "HEARTEX_PORT", "HEARTEX_HOST", "LABEL_STUDIO_HOST", "LABEL_STUDIO_PORT")

__all__ = ["LocalLabelStudio", "LabelStudioServerError", "port_in_use"]


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something answers on ``host:port`` or the port cannot be bound there."""
    for target in (host, "localhost"):
        try:
            with socket.create_connection((target, port), timeout=0.5):
                return True
        except OSError:
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as the server will: a port merely in TIME_WAIT after a restart is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def listening_pids(port: int) -> list[int]:
    """Processes holding a TCP socket that listens on ``port`` (any address), as far as /proc shows them
    (empty where there is no /proc or its entries cannot be read): to tell whose server answers there."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])  # state 0A: LISTEN
    if not inodes:
        return []
    wanted = {f"socket:[{i}]" for i in inodes}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in wanted for fd in (entry / "fd").iterdir()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return sorted(pids)


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (an exited child not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def signal_process(pid: int, sig: int) -> None:
    """Signal a process, or its whole group when it leads its own session; a gone process is fine."""
    try:
        if os.getpgid(pid) == pid:  # started in its own session: signal its whole group
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_gone(pid: int, proc: Optional[subprocess.Popen], timeout: float) -> bool:
    """Wait up to ``timeout`` s for a process to exit (reaping it when it is our child)."""
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.2)
    return False


def _is_label_studio(pid: int) -> bool:
    """Best effort: the pid's command line names label-studio (guards against a recycled pid)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return pid_alive(pid)  # no /proc (macOS): trust the state file
    return "label-studio" in cmd or "label_studio" in cmd


class LocalLabelStudio:
    """Start, find, reuse and stop a workspace's own Label Studio on 127.0.0.1.

    Parameters
    ----------
    data_dir : path
        The server's data dir (its SQLite database, which holds the API token, and uploads). Kept
        private: the folder is made 0700 and the server runs with umask 077, so its database is 0600.
    document_root : path
        The local-files document root: the server serves files below it (the clips for annotators).
    settings : LabelStudioSettings
        Username, password and API token of the server's one user (created on the data dir's first start).
    port : int, optional
        Port on 127.0.0.1; default the port of ``settings.url`` (else 8080).
    log_file : path, optional
        Where the server's output goes (default ``labelstudio.log`` in the data dir).
    secrets_hint : str
        Where the user fixes a wrong token, for error messages (e.g. the workspace's secrets file).
    """

    def __init__(self, data_dir: Path | str, document_root: Path | str, settings: LabelStudioSettings,
                 port: Optional[int] = None, log_file: Path | str | None = None, secrets_hint: str = ""):
        self.data_dir = Path(data_dir)
        self.document_root = Path(document_root)
        self.settings = settings
        self.port = port
        self._log_file = Path(log_file) if log_file is not None else None
        self.secrets_hint = secrets_hint
        self._proc: Optional[subprocess.Popen] = None

    # ------------------------------------------------------------------ where
    @property
    def resolved_port(self) -> int:
        """The resolved port: the one given, else the port of the settings URL, else 8080."""
        if self.port is not None:
            return int(self.port)
        return urlparse(self.settings.url).port or DEFAULT_LS_PORT

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.resolved_port}"

    @property
    def state_file(self) -> Path:
        """pid + port of a running server we started (detached or not)."""
        return self.data_dir / STATE_FILE

    @property
    def log_file(self) -> Path:
        return self._log_file or self.data_dir / "labelstudio.log"

    # ------------------------------------------------------------------ state
    def _healthy(self, timeout: float = 2.0) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def is_running(self) -> bool:
        """True when a Label Studio answers ``/health`` on this server's URL."""
        return self._healthy()

    def _read_state(self) -> Optional[dict[str, Any]]:
        """The state file of a still-living server of ours; a stale file is removed."""
        try:
            state = json.loads(self.state_file.read_text())
            pid = int(state["pid"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as e:
            log.warning("ignoring unreadable server state file %s (%s)", self.state_file, e)
            self.state_file.unlink(missing_ok=True)
            return None
        if not (pid_alive(pid) and _is_label_studio(pid)):
            self.state_file.unlink(missing_ok=True)
            return None
        return state

    def _write_state(self, pid: int, detached: bool) -> None:
        # private, as every file of the data dir is (``protect``: its database holds the API token)
        write_atomically(self.state_file, json.dumps({"pid": pid, "port": self.resolved_port, "detached": detached,
                                                      "started_at": datetime.now(timezone.utc).isoformat()}),
                         mode=PRIVATE)

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        env.update({
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "LABEL_STUDIO_USERNAME": self.settings.username,
            "LABEL_STUDIO_PASSWORD": self.settings.password,
            "LABEL_STUDIO_USER_TOKEN": self.settings.token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.document_root),
            "LABEL_STUDIO_SENTRY_DSN": "",
            "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
            "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
            "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
            "LABEL_STUDIO_CONVERTER_DOWNLOAD_RESOURCES": "false",
        })
        return env

    @staticmethod
    def _executable() -> str:
        beside = Path(sys.executable).parent / "label-studio"
        exe = str(beside) if beside.exists() else shutil.which("label-studio")
        if not exe:
            raise LabelStudioServerError(
                "the `label-studio` executable was not found next to this Python or on PATH; install the "
                "server with `pip install 'biodiversity-workbench[server]'` (label-studio==1.23.2), or run "
                "Label Studio elsewhere and set LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY")
        return exe

    # ------------------------------------------------------------------ start / stop
    def start(self, timeout: float = 180.0, detach: bool = False) -> str:
        """Start the server (or reuse ours if it already runs) and wait until ``/health`` answers; return its URL.

        ``detach=True`` lets the server outlive this process (``stop()`` finds it again through the
        state file in the data dir); otherwise it is stopped when this process exits.
        """
        if len(self.settings.token) <= 5:
            raise LabelStudioServerError("the Label Studio token must be longer than 5 characters (Label "
                                         "Studio ignores shorter ones); set LABEL_STUDIO_API_KEY or fix "
                                         f"'token' in {self.secrets_hint or 'the settings'}")
        state = self._read_state()
        if state is not None and int(state.get("port", -1)) == self.resolved_port and self._healthy():
            log.info("reusing the workspace's Label Studio at %s (pid %s)", self.url, state["pid"])
            return self.url
        if state is not None:  # two servers on one data dir would corrupt it
            where = (f"on port {state.get('port')}, not {self.resolved_port}"
                     if int(state.get("port", -1)) != self.resolved_port else f"but does not answer {self.url}/health")
            raise LabelStudioServerError(
                f"this workspace's Label Studio already runs (pid {state['pid']}) {where}; stop it first "
                f"(`workbench stop` or LocalLabelStudio.stop()), then start again")
        if port_in_use(self.resolved_port):
            raise LabelStudioServerError(
                f"port {self.resolved_port} on {HOST} is already in use by another program, so Label Studio cannot "
                f"start at {self.url}; stop that program or choose another port (WORKBENCH_LS_PORT=...)")
        exe = self._executable()
        for d in (self.document_root, self.log_file.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.protect()
        log.info("starting Label Studio at %s (data dir %s, log %s)", self.url, self.data_dir, self.log_file)
        cmd = [exe, "start", "--no-browser", "--internal-host", HOST, "--port", str(self.resolved_port)]
        with open(os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as logfh:
            logfh.write(f"\n--- workbench: starting Label Studio at {self.url} "
                        f"({datetime.now(timezone.utc).isoformat()})\n".encode())
            logfh.flush()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logfh, stderr=subprocess.STDOUT,
                                          env=self._child_env(), cwd=str(self.data_dir),
                                          start_new_session=True, umask=0o077)
        self._write_state(self._proc.pid, detach)
        if not detach:
            atexit.register(self._stop_at_exit)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.state_file.unlink(missing_ok=True)
                raise LabelStudioServerError(
                    f"Label Studio exited with code {self._proc.returncode} before answering at {self.url}; "
                    f"see {self.log_file}:\n{self._log_tail()}")
            if self._healthy(timeout=1.0):
                log.info("Label Studio is up at %s (pid %s)", self.url, self._proc.pid)
                return self.url
            time.sleep(0.5)
        self.stop()
        raise LabelStudioServerError(f"Label Studio did not answer {self.url}/health within {timeout:.0f} s; "
                                     f"see {self.log_file}, or retry with a longer timeout")

    def protect(self) -> None:
        """Make the data dir 0700 and every file in it private: its database holds the API token in plain text.

        Done before every start, so a data dir made by an earlier release (0755, database 0644) is mended.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        for path in self.data_dir.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o077:
                os.chmod(path, path.stat().st_mode & 0o700)
        if self.log_file.exists():
            os.chmod(self.log_file, 0o600)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(line.replace(self.settings.token, "***").replace(self.settings.password, "***")
                         for line in text)

    def _stop_at_exit(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self.stop()

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM the server we started, or the detached one named in the state file; True if one was stopped."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            pid = proc.pid
        else:
            state = self._read_state()
            if state is None:
                return False
            pid = int(state["pid"])
        log.info("stopping Label Studio (pid %s)", pid)
        signal_process(pid, signal.SIGTERM)
        if not wait_gone(pid, proc, timeout):
            log.warning("Label Studio (pid %s) ignored SIGTERM for %.0f s; killing it", pid, timeout)
            signal_process(pid, signal.SIGKILL)
            wait_gone(pid, proc, 5.0)
        self.state_file.unlink(missing_ok=True)
        return True

    def __repr__(self) -> str:
        return f"LocalLabelStudio(data_dir={str(self.data_dir)!r}, url={self.url!r})"
