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
