"""Streamlit page for ML leads: the pool, its uncertainty, and the last batch with why each clip was picked.

A thin layer over the same library the CLI uses. Run it with ``workbench serve`` (or
``streamlit run app.py``); the workspace comes from WORKBENCH_HOME / WORKBENCH_DB_URL.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from workbench.config import Workspace
from workbench.overview import model_history, pool_summary, selection_table, uncertainty_histogram

st.set_page_config(page_title="Biodiversity workbench", layout="wide")
st.title("Biodiversity workbench")

ws = Workspace.resolve()
if "store" not in st.session_state:
    st.session_state["store"] = ws.open_store()
store = st.session_state["store"]

summary = pool_summary(store)
if summary is None:
    st.info(f"The workspace {ws.root} holds no scored clips yet. Run `workbench ingest PATH` or `workbench demo`.")
    st.stop()

st.caption(f"Workspace {ws.root} · model version **{summary['model']}**")
cols = st.columns(5)
for col, (label, key) in zip(cols, [("Clips in pool", "clips"), ("Recordings", "recordings"),
                                    ("Selected", "selected"), ("Tasks in Label Studio", "tasks"),
                                    ("Labels", "annotations")]):
    col.metric(label, f"{summary[key]:,}")

if summary["unscored"]:
    st.warning(f"{summary['unscored']:,} clips ingested after {summary['model']} was trained are not scored by it "
               f"yet, so they are not in this pool: the next `workbench sample` scores them first.")

st.subheader("Uncertainty of the pool")
metric = st.radio("Score", ["max_entropy", "mean_entropy", "top1", "margin"], horizontal=True, key="hist_metric")
hist = uncertainty_histogram(store, metric=metric, bins=20)
st.bar_chart(pd.DataFrame({"clips": hist["counts"]}, index=[f"{e:.2f}" for e in hist["edges"][:-1]]),
             x_label=metric, y_label="clips")

st.subheader("Last selection")
table = selection_table(store, clips_dir=ws.clips)
if table is None:
    st.info("No sampling run yet. Run `workbench sample --budget 20`.")
    st.stop()
run, rows = table
st.caption(f"Run {run.id}: {run.strategy}, budget {run.budget}, seed {run.seed}, {run.created_at:%Y-%m-%d %H:%M} UTC "
           f"· parameters {run.params}")
frame = pd.DataFrame(rows)
st.dataframe(frame[["rank", "clip_id", "site", "time", "top_label", "score", "cluster", "stratum", "reason"]],
             hide_index=True, width="stretch", key="selection_table")

st.subheader("Listen")
show = st.slider("Clips to show", 1, max(1, len(rows)), min(10, len(rows)), key="n_players")
for row in rows[:show]:
    with st.container(border=True):
        left, right = st.columns([1, 2])
        left.markdown(f"**#{row['rank']} · clip {row['clip_id']}**  \n{row['site'] or '—'} · {row['time'] or '—'}  \n"
                      f"{row['top_label']}")
        right.caption(row["reason"])
        audio = row.get("audio")
        if audio is not None:
            right.audio(audio if isinstance(audio, bytes) else str(audio))
        else:
            right.caption(row.get("audio_problem") or "audio not available (the source file cannot be read)")

st.subheader("Rounds")
history = model_history(store)
st.dataframe(pd.DataFrame(history), hide_index=True, width="stretch", key="model_history")
