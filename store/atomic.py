"""Writing a file so that a reader never sees half of it: a temporary file in the same folder, then a rename.

``write_atomically`` writes text, bytes or whatever a writer function puts in the open file; ``atomic_path``
hands out the temporary path itself, for writers that want a file name (soundfile, an image library, a
download checked before it is kept). Both use one naming scheme (``.<name>.<random>.tmp`` beside the file),
so a temporary left by a killed process is recognisable, and neither leaves one behind on an error.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator, Union

Content = Union[str, bytes, Callable[[IO], None]]
TMP_SUFFIX = ".tmp"
#: as a plain write leaves a file (readable by all); PRIVATE for what only the owner may read
PUBLIC, PRIVATE = 0o644, 0o600


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path | str, *, mode: int = PUBLIC, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends without an error the file replaces
    ``path`` in one step, else it is removed (and ``path`` left as it was).

    The temporary name is unique per call, so two processes or threads writing the same file never share
    it; it is created private (0600) and given ``mode`` just before the rename, so a ``PRIVATE`` file is
    never readable by others, not even while it is written. With ``fsync`` the content is on disk before the
    rename, and the rename itself is made durable where the filesystem allows (a crash leaves the old file
    or the whole new one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        try:  # the folder's entry (not possible on every filesystem; the file is complete either way)
            _fsync(path.parent)
        except OSError:
            pass


def write_atomically(path: Path | str, content: Content, *, newline: str | None = None, binary: bool = False,
                     mode: int = PUBLIC, fsync: bool = False) -> Path:
    """Write ``content`` (text, bytes, or a function writing to the open file: text, or bytes with ``binary``)
    to ``path`` in one step (``atomic_path``: ``mode`` the file's permissions, 0644 by default; ``fsync`` to
    make it durable before it replaces the old one)."""
    path = Path(path)
    binary = binary or isinstance(content, bytes)
    with atomic_path(path, mode=mode, fsync=fsync) as tmp:
        with (open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8", newline=newline)) as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content)
    return path
