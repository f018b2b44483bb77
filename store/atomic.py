"""Writing a file so that a reader never sees half of it: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Union

Content = Union[str, bytes, Callable[[IO], None]]


def write_atomically(path: Path | str, content: Content, *, newline: str | None = None, binary: bool = False) -> Path:
    """Write ``content`` (text, bytes, or a function writing to the open file: text, or bytes with ``binary``)
    to ``path`` in one step.

    The temporary name is unique per call, so two processes or threads writing the same file never
    share it; the file is readable by all (0644), as a plain write would leave it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = binary or isinstance(content, bytes)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline=newline)) as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
