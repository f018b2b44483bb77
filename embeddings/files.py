"""Finding the input files under the paths a user gives: one rule for audio and images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Sequence


def find_files(paths: str | os.PathLike | Iterable[str | os.PathLike], extensions: Sequence[str], what: str,
               empty_folders: Optional[list[Path]] = None) -> list[Path]:
    """Files under ``paths`` (files as given; folders searched recursively), sorted, without repeats.

    Folders contribute files ending in one of ``extensions`` (any case); a file named explicitly is taken
    whatever its ending, so a wrong file is reported rather than silently ignored. A folder given that
    holds no such file (a typo, a folder named ``x.wav``) is appended to ``empty_folders``; a path that
    does not exist is refused, naming it and ``what`` (e.g. "audio files").
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: dict[Path, None] = {}
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            before = len(found)
            for sub in sorted(p.rglob("*")):
                if sub.suffix.lower() in extensions and sub.is_file():
                    found.setdefault(sub.resolve(), None)
            if len(found) == before and empty_folders is not None and not any(  # nothing new: truly none?
                    sub.suffix.lower() in extensions and sub.is_file() for sub in p.rglob("*")):
                empty_folders.append(p)
        elif p.exists():
            found.setdefault(p.resolve(), None)
        else:
            raise FileNotFoundError(f"{p} does not exist: give {what} or folders holding them")
    return list(found)


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
