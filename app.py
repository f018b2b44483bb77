"""The ML lead's cockpit: pool, sampling, annotation, rounds and the strategy lab, one page each.

A thin layer over the same library the CLI uses (the pages live in ``workbench/app_pages``; what they
show comes from plain functions in ``workbench``). Run it with ``workbench serve`` (or ``streamlit run
app.py``); the workspace comes from WORKBENCH_HOME / WORKBENCH_DB_URL.
"""

from __future__ import annotations

import streamlit as st

from workbench.app_pages.ui import plain, shown_errors, workspace

PAGES = "workbench/app_pages"

st.set_page_config(page_title="Biodiversity workbench", layout="wide")
navigation = st.navigation([
    st.Page(f"{PAGES}/pool.py", title="Pool", icon=":material/graphic_eq:", default=True),  # served at /
    st.Page(f"{PAGES}/sample.py", title="Sample", icon=":material/checklist:", url_path="sample"),
    st.Page(f"{PAGES}/annotate.py", title="Annotate", icon=":material/label:", url_path="annotate"),
    st.Page(f"{PAGES}/rounds.py", title="Rounds", icon=":material/monitoring:", url_path="rounds"),
    st.Page(f"{PAGES}/lab.py", title="Lab", icon=":material/science:", url_path="lab"),
])
st.sidebar.caption(f"Workspace  \n{plain(workspace().root)}")
with shown_errors():  # a workspace the page cannot read (a vectors file cut short, a folder gone) is one line
    navigation.run()
