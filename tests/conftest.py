"""Shared fixtures: where the shared test data lives, and a fresh workspace per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test with a clear reason where it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared test data at {path} (absent in this clone)")
    return path


@pytest.fixture
def workspace(tmp_path):
    from workbench.config import Workspace

    return Workspace.resolve(tmp_path / "ws")


@pytest.fixture
def store(workspace):
    st = workspace.open_store()
    yield st
    st.close()


# ---------------------------------------------------------------------------- Label Studio (one per session)
@pytest.fixture(scope="session")
def labelstudio(tmp_path_factory):
    """ONE real Label Studio for the whole session: free port on 127.0.0.1, fresh data dir, random token.

    Yields a namespace with ``url``, ``token``, ``settings`` (LabelStudioSettings), ``workspace`` (whose
    ``media`` is the server's local-files document root) and ``server`` (the LocalLabelStudio).
    Cold start (database migrations) takes about 20-40 s.
    """
    import secrets
    import shutil
    import socket
    import sys
    from types import SimpleNamespace

    if not (Path(sys.executable).parent / "label-studio").exists() and shutil.which("label-studio") is None:
        pytest.skip("needs the `label-studio` executable (pip install 'biodiversity-workbench[server]')")
    from workbench.services import local_labelstudio
    from workbench.config import LabelStudioSettings, Workspace

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ws = Workspace.resolve(tmp_path_factory.mktemp("labelstudio") / "ws")
    settings = LabelStudioSettings(url=f"http://127.0.0.1:{port}", token=secrets.token_hex(20),
                                   username="tester@workbench.local", password=secrets.token_urlsafe(12))
    server = local_labelstudio(ws, settings, port=port)
    server.start(timeout=240)
    try:
        yield SimpleNamespace(url=server.url, token=settings.token, settings=settings, workspace=ws, server=server)
    finally:
        server.stop()


@pytest.fixture
def served_workspace(labelstudio, tmp_path, monkeypatch):
    """A fresh workspace under the session Label Studio's document root, with the CLI pointed at that server."""
    from workbench.config import Workspace

    root = labelstudio.workspace.media / f"ws-{tmp_path.name}"
    monkeypatch.setenv("WORKBENCH_HOME", str(root))
    monkeypatch.delenv("WORKBENCH_DB_URL", raising=False)
    monkeypatch.setenv("LABEL_STUDIO_URL", labelstudio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", labelstudio.token)
    monkeypatch.setenv("LABEL_STUDIO_DOCUMENT_ROOT", str(labelstudio.workspace.media))
    return Workspace.resolve(root)
