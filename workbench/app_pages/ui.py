"""What every page shares: the session's workspace and store, one-line errors, and clip cards.

Session state is initialised behind guards (a rerun reuses the store); an error the user can act on
(the same kinds the CLI prints as one line) is shown with ``st.error`` in one line, anything else is
a bug and keeps Streamlit's traceback.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import pandas as pd
import streamlit as st

from store import Store
from workbench.console import is_user_error
from workbench.config import Workspace
from workbench.overview import clip_media

# what Markdown would act on inside a line of text (intraword ``_``, ``-`` and ``(`` are left alone, and
# backticks too: messages quote commands in them, as `workbench serve`)
_MARKDOWN = re.compile(r"([\\*\[\]<>|$~]|(?<!\w)_|_(?!\w))")


def workspace() -> Workspace:
    """The workspace of this session (WORKBENCH_HOME / WORKBENCH_DB_URL, as the CLI reads them)."""
    if "workspace" not in st.session_state:
        st.session_state["workspace"] = Workspace.resolve()
    return st.session_state["workspace"]


def store() -> Store:
    """The session's store, opened once."""
    if "store" not in st.session_state:
        st.session_state["store"] = workspace().open_store()
    return st.session_state["store"]


def plain(text: Any) -> str:
    """Text shown as is: Markdown's special characters escaped (labels hold underscores, paths dollars)."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def one_line(error: BaseException) -> str:
    """An error message on one line, as the CLI prints it."""
    return " ".join(str(error).split()) or type(error).__name__


def table(frame: pd.DataFrame, key: str, **kwargs: Any) -> None:
    """A read-only table in a container keyed ``key`` (a read-only ``st.dataframe`` keeps no key of its own;
    the container makes it findable by tests and by CSS class ``st-key-<key>``)."""
    with st.container(key=key):
        st.dataframe(frame, hide_index=True, width="stretch", **kwargs)


def require(condition: Any, message: str) -> None:
    """A missing prerequisite: say what to do with ``st.info`` and stop the page there."""
    if not condition:
        st.info(message)
        st.stop()


@dataclass
class Outcome:
    failed: bool = False
    message: str = ""


@contextlib.contextmanager
def shown_errors() -> Iterator[Outcome]:
    """Run a user action; an error the user can fix becomes one ``st.error`` line (no traceback)."""
    outcome = Outcome()
    try:
        yield outcome
    except Exception as e:  # noqa: BLE001 - the UI boundary: known errors become one line, bugs re-raise
        if not is_user_error(e):
            raise
        outcome.failed, outcome.message = True, one_line(e)
        st.error(plain(outcome.message))


def clip_cards(rows: Sequence[dict[str, Any]], key: str, default: int = 6) -> None:
    """Rank, clip, place, model label and reason per pick, with its spectrogram and audio player (or, for an
    image clip, the crop and its frame).

    Clips are cut (and drawn) only for the cards shown; a clip whose source changed or vanished says
    why instead of playing.
    """
    if not rows:
        return
    show = len(rows)
    if len(rows) > 1:
        show = st.slider("Clips to show", 1, len(rows), min(default, len(rows)), key=f"{key}_n")
    media = clip_media(store(), [r["clip_id"] for r in rows[:show]], workspace().clips)
    for row in rows[:show]:
        m = media[row["clip_id"]]
        with st.container(border=True):
            left, right = st.columns([1, 3])
            left.markdown(f"**#{row['rank']} · clip {row['clip_id']}**  \n{plain(row.get('site') or '—')} · "
                          f"{plain(row.get('time') or '—')}  \n{plain(row.get('top_label') or '')}")
            left.caption(plain(row["reason"]))
            if m.image is not None:  # an image clip: the crop (or frame) large, the frame with its box beside
                pic, frame = right.columns([3, 2]) if m.frame is not None else (right, None)
                pic.image(str(m.image), width="stretch")
                if frame is not None:
                    frame.image(str(m.frame), width="stretch", caption="in its frame")
            if m.spectrogram is not None:
                right.image(str(m.spectrogram), width="stretch")
            if m.audio is not None:
                right.audio(str(m.audio))
            if m.problem:
                right.caption(plain(m.problem))
