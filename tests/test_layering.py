"""Data flows one way and the library never reaches up into the command line."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO

LIBRARY = ("store", "embeddings", "sampler", "annotation", "finetune", "lab")
#: The data flow, bottom up: a package imports only packages of a lower rank (peers not each other). The
#: faces (workbench, and app.py beside it) come last among the shipped code; the benchmarks and the tests may
#: import anything of it, and nothing imports them.
RANK = {"store": 0, "embeddings": 1, "sampler": 1, "annotation": 2, "finetune": 3, "lab": 4, "workbench": 5,
        "bench": 6, "tests": 7}
#: files at the top of the repository, each with the package it belongs with
TOP_FILES = {"app.py": "workbench"}


def _imports(path):
    """(line, top-level package) of every absolute import in a file, those inside functions included."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        for name in names:
            yield node.lineno, name.split(".")[0]


def test_every_import_follows_the_data_flow():
    """store imports none of the others; embeddings and sampler only store (and not each other); annotation
    store and embeddings; finetune not lab; lab not workbench; only workbench (the faces) imports everything
    shipped; no shipped code imports the benchmarks or the tests."""
    offenders = []
    files = [(path, package, rank) for package, rank in RANK.items() for path in sorted((REPO / package).rglob("*.py"))]
    files += [(REPO / name, package, RANK[package]) for name, package in TOP_FILES.items()]
    for path, package, rank in files:
        offenders += [f"{path.relative_to(REPO)}:{line} imports {top}" for line, top in _imports(path)
                      if top in RANK and top != package and RANK[top] >= rank]
    assert offenders == []


def test_the_rank_table_names_every_package_of_the_repository():
    """A package added later is given its place in the data flow (bench/ is a folder of scripts, no package)."""
    assert {p.parent.name for p in REPO.glob("*/__init__.py")} | {"bench"} == set(RANK)


def test_library_packages_never_import_the_cli_package():
    offenders = []
    for package in LIBRARY:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                offenders += [f"{path.relative_to(REPO)}:{node.lineno} imports {n}" for n in names
                              if n == "workbench" or n.startswith("workbench.")]
    assert offenders == []


def test_importing_every_library_module_loads_nothing_of_the_cli():
    modules = [".".join(p.relative_to(REPO).with_suffix("").parts) for package in LIBRARY
               for p in sorted((REPO / package).rglob("*.py")) if "migrations" not in p.parts]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n    importlib.import_module(m.removesuffix('.__init__'))\n"
            "print(sorted(m for m in sys.modules if m == 'workbench' or m.startswith('workbench.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_the_command_line_is_parsing_and_printing_and_nothing_imports_it():
    cli = REPO / "workbench" / "cli.py"
    assert len(cli.read_text().splitlines()) <= 450
    offenders = []
    for path in sorted(REPO.glob("*.py")) + sorted(p for d in (*LIBRARY, "workbench") for p in (REPO / d).rglob("*.py")):
        if path == cli:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(REPO)}:{node.lineno}" for n in names
                          if n == "workbench.cli" or n.startswith("workbench.cli.")]
        if "noqa: SLF001" in path.read_text():
            offenders.append(f"{path.relative_to(REPO)}: noqa: SLF001")
    assert offenders == []
