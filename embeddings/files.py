"""Finding the input files under the paths a user gives: one rule for audio and images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Sequence


def find_files(paths: str | os.PathLike | Iterable[str | os.PathLike], extensions: Sequence[str], what: str,
               empty_folders: Optional[list[Path]] = None,
               unreadable: Optional[list[tuple[Path, str]]] = None) -> list[Path]:
    """Files under ``paths`` (files as given; folders searched recursively), sorted, without repeats.

    Folders contribute files ending in one of ``extensions`` (any case); a file named explicitly is taken
    whatever its ending, so a wrong file is reported rather than silently ignored. Symlinked folders are
    followed (a site linked into the tree is part of it), each folder and file once however often it is
    linked. A folder given that holds no such file (a typo, a folder named ``x.wav``) is appended to
    ``empty_folders``; a folder that cannot be listed to ``unreadable`` as (folder, reason), so it is
    reported rather than silently missing; a path that does not exist is refused, naming it and ``what``.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: dict[Path, None] = {}
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            matching = sorted(_walk(p, extensions, unreadable))
            if not matching and empty_folders is not None:
                empty_folders.append(p)
            for sub in matching:
                found.setdefault(sub.resolve(), None)
        elif p.exists():
            found.setdefault(p.resolve(), None)
        else:
            raise FileNotFoundError(f"{p} does not exist: give {what} or folders holding them")
    return list(found)


def _walk(folder: Path, extensions: Sequence[str], unreadable: Optional[list[tuple[Path, str]]]) -> list[Path]:
    """Files ending in ``extensions`` below ``folder``, symlinked folders followed, each real folder once."""
    visited: set[tuple[int, int]] = set()
    files: list[Path] = []

    def failed(e: OSError) -> None:
        if unreadable is not None:
            unreadable.append((Path(e.filename or folder), e.strerror or str(e)))

    for top, dirs, names in os.walk(folder, onerror=failed, followlinks=True):
        try:
            st = os.stat(top)
        except OSError as e:
            failed(e)
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in visited:  # a link back up the tree, or the same folder linked twice
            dirs[:] = []
            continue
        visited.add((st.st_dev, st.st_ino))
        for name in names:
            sub = Path(top) / name
            if sub.suffix.lower() in extensions and sub.is_file():
                files.append(sub)
    return files


def unreadable_folder(folder: Path, reason: str) -> tuple[str, str]:
    """The failure line of a folder that cannot be listed: (folder, what happened and what to do)."""
    return str(folder), (f"{folder} is a folder that cannot be read ({reason}): none of its files were ingested; "
                         f"give this user read access to it and ingest again")


def unusable_file(path: Path, kind: str, device: str) -> Optional[str]:
    """Why ``path`` cannot be read as a ``kind`` file at all (a folder, missing, unreadable, empty), or None.

    ``device`` names what wrote it ("recorder", "camera") in the advice for an empty file. The caller wraps
    the reason in its own error (``AudioReadError``, ``ImageReadError``), which names the file.
    """
    try:
        if path.is_dir():
            return f"is a folder, not {kind} file"
        size = path.stat().st_size
    except FileNotFoundError:
        return "does not exist (moved or deleted?)"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if size == 0:
        return f"is empty (0 bytes): the {device} or the copy failed; copy the file again or delete it"
    return None
