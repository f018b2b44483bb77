"""Source files are immutable facts: a recording's clips describe the content that was hashed at ingest.

Before anything is cut from a source again (clips for annotators, audio in the app), the file on disk
is checked against what the store recorded: a cheap size + modification-time comparison, and the full
SHA-256 only when those differ (a copy or a ``touch`` changes the mtime, not the content).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

_HASH_BLOCK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's content, read in 1 MiB blocks (a recording is never loaded whole)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class SourceCheck:
    """The outcome of checking a source file: ``problem`` is None when it is the file that was ingested.

    ``size`` and ``mtime_ns`` are the file's current ones when its content was confirmed by a full hash
    (the caller may store them, so the next check is cheap again).
    """

    problem: Optional[str] = None
    size: Optional[int] = None
    mtime_ns: Optional[int] = None
    rehashed: bool = False


def check_source(path: str | Path, content_hash: str, size: Optional[int] = None,
                 mtime_ns: Optional[int] = None) -> SourceCheck:
    """Is the file at ``path`` still the content ``content_hash``? Cheap when size and mtime still match."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return SourceCheck(f"{path} is missing (moved or deleted since it was ingested): put it back, or ingest "
                           f"it from where it is now")
    except OSError as e:
        return SourceCheck(f"{path} cannot be read ({e.strerror or e})")
    if not path.is_file():
        return SourceCheck(f"{path} is not a file any more")
    if size is not None and mtime_ns is not None and st.st_size == size and st.st_mtime_ns == mtime_ns:
        return SourceCheck()
    try:
        digest = file_sha256(path)
    except OSError as e:
        return SourceCheck(f"{path} cannot be read ({e.strerror or e})")
    if digest != content_hash:
        return SourceCheck(f"{path} changed since it was ingested (its content is not the one its clips were "
                           f"made from): ingest it again to make a new version of the recording")
    return SourceCheck(size=st.st_size, mtime_ns=st.st_mtime_ns, rehashed=True)
