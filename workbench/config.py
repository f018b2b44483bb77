"""Where a workspace keeps things, and the settings read from the environment.

A workspace folder (``--workspace``, else WORKBENCH_HOME, else ``./workspace``) holds the database,
the vector matrices, the media served to Label Studio, the Label Studio data and the fine-tuned
models. Secrets (the Label Studio token and password) live in ``secrets.json`` inside it (mode 0600)
or come from the environment; they are never written to the database or to logs.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from annotation.settings import DEFAULT_LS_PORT, LabelStudioSettings

DEFAULT_APP_PORT = 8501


@dataclass(frozen=True)
class Workspace:
    root: Path
    db_url: Optional[str] = None

    @classmethod
    def resolve(cls, workspace: str | os.PathLike | None = None, db_url: str | None = None) -> "Workspace":
        root = Path(workspace or os.environ.get("WORKBENCH_HOME") or "workspace").expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise ValueError(f"the workspace {root} is a file, not a folder: give another --workspace "
                             f"(or WORKBENCH_HOME)")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot make the workspace folder {root}: {e.strerror or e}; give another "
                             f"--workspace (or WORKBENCH_HOME)") from e
        return cls(root=root, db_url=db_url or os.environ.get("WORKBENCH_DB_URL") or None)

    @property
    def vectors(self) -> Path:
        return self.root / "vectors"

    @property
    def media(self) -> Path:
        """Document root Label Studio serves local files from."""
        return self.root / "media"

    @property
    def clips(self) -> Path:
        """Audio clips cut for annotators (under the media root)."""
        return self.media / "clips"

    @property
    def labelstudio_data(self) -> Path:
        return self.root / "labelstudio"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def geofence_file(self) -> Path:
        """The image geofence (SpeciesNet's rules) ``workbench geofence FILE`` keeps; absent when none is set."""
        return self.root / "geofence.json"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    def open_store(self, on_wait=None, read_only: Optional[bool] = False):
        """The workspace's store. New embedding matrices are float16 (2 KB per BirdNET window instead of 4 KB;
        bench/storage.py measures what that changes in sampling and fine-tuning: nothing that matters);
        WORKBENCH_EMBEDDING_DTYPE=float32 keeps them exact. An existing matrix keeps its dtype.
        ``on_wait(message)`` hears when the store waits for another process's lock. ``read_only=None`` (what
        reading commands pass) opens the workspace's SQLite file read-only when its folder cannot be written
        (an archived workspace), for writing otherwise."""
        from store import Store

        if read_only is None:
            read_only = self.db_url is None and (self.root / "workbench.db").exists() and not self.writable
        dtype = os.environ.get("WORKBENCH_EMBEDDING_DTYPE") or "float16"
        return Store.open(self.root, self.db_url, embedding_dtype=dtype, on_wait=on_wait, read_only=read_only)

    @property
    def writable(self) -> bool:
        """Whether this process can write the workspace folder (not: a read-only disk, an archived copy)."""
        return os.access(self.root, os.W_OK)


def labelstudio_settings(ws: Workspace, port: int | None = None) -> LabelStudioSettings:
    """Settings from LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY, else the workspace's secrets file.

    The secrets file is created on first use with a random token and password for the local server.
    """
    stored = _load_or_create_secrets(ws)
    port = port or int(os.environ.get("WORKBENCH_LS_PORT") or _running_server_port(ws) or DEFAULT_LS_PORT)
    url = os.environ.get("LABEL_STUDIO_URL") or f"http://127.0.0.1:{port}"
    token = os.environ.get("LABEL_STUDIO_API_KEY") or stored["token"]
    return LabelStudioSettings(url=url.rstrip("/"), token=token, username=stored["username"],
                               password=stored["password"])


def _running_server_port(ws: Workspace) -> Optional[int]:
    """The port the workspace's own Label Studio was started on (so later commands find it)."""
    state = ws.labelstudio_data / "workbench-server.json"
    try:
        return int(json.loads(state.read_text())["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _load_or_create_secrets(ws: Workspace) -> dict:
    path = ws.secrets_file
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); fix it or delete it to make a new login") from e
        missing = {"token", "username", "password"} - set(data)
        if missing:
            raise ValueError(f"{path} lacks {sorted(missing)}; fix it or delete it to make a new login")
        return data
    data = {"username": "annotator@workbench.local", "password": secrets.token_urlsafe(12),
            "token": secrets.token_hex(20)}
    if not ws.writable:  # a read-only (archived) workspace: no local server can have been started with a login
        return data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)
    return data
