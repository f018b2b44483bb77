"""What every face of the workbench shares when it talks to a person: the user-error type and its check,
progress lines on stderr, and opening a workspace's store with a word when another command holds it."""

from __future__ import annotations

import sys

from workbench import services
from workbench.config import Workspace


class UserError(Exception):
    """An error whose message tells the user what to fix; shown without a traceback."""


def is_user_error(e: BaseException) -> bool:
    """Whether an error is the user's to fix (one line, no traceback) rather than a bug (traceback kept)."""
    from annotation.errors import AnnotationError
    from finetune.train import FinetuneError
    from finetune.validate import ValidationError
    from store import StoreError

    return isinstance(e, (UserError, StoreError, AnnotationError, FinetuneError, ValidationError,
                          services.ServiceError, ValueError, FileNotFoundError))


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


_OPENED: list = []  # stores this command opened; ``close_stores`` closes them when it ends


def open_store(ws: Workspace, reading: bool = False):
    """The workspace's store; a wait for another command's lock is said on stderr. A ``reading`` command opens
    a workspace it cannot write (an archived one) read-only; a writing one is refused naming the folder.
    Closed when the command ends (``close_stores``): its connections and file handles go back at once."""
    store = ws.open_store(on_wait=lambda message: progress(f"[wait] {message}"), read_only=None if reading else False)
    _OPENED.append(store)
    return store


def close_stores() -> None:
    """Close every store this command opened (a command run in-process, as tests and scripts do, leaves none)."""
    while _OPENED:
        _OPENED.pop().close()


def score_progress(done: int, total: int) -> None:
    """New clips scored by a head so far, as one overwritten stderr line."""
    print(f"\r[score] new clips scored by the current head: {done}/{total}", end="", file=sys.stderr, flush=True)
