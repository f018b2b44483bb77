"""Annotate: push a batch to Label Studio, pull the labels back, and see how far each batch has got."""

from __future__ import annotations

from typing import Optional

import streamlit as st

import pandas as pd

from annotation.agreement import agreement
from store import Store
from store.roles import Ledger
from workbench.app_pages.ui import plain, require, shown_errors, store, table, workspace
from workbench.labelling import (DEFAULT_PROJECT, ProjectChoice, batch_progress, connect, find_project,
                                 known_project_ids, project_url, pull, push)


def show_progress(s: Store, project_id: Optional[int]) -> None:
    """Per sampling run: picks, tasks pushed, clips labelled (read from the store after any push or pull)."""
    st.subheader("Batches")
    ids = known_project_ids(s) | ({project_id} if project_id is not None else set())
    table(batch_progress(s, ids), "annotate_progress",
          column_config={"labelled share": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                           format="percent")})
    if not ids:
        st.caption("Pushed tasks are counted once Label Studio can be asked for the project.")


def show_agreement(s: Ledger) -> None:
    """How far experts agree on the clips two of them labelled, what each did, and what to adjudicate."""
    r = agreement(s.annotations())
    st.subheader("Experts")
    if r.annotators:
        table(pd.DataFrame([{"annotator": a.annotator, "answers": a.annotations, "minutes": round(a.seconds / 60, 1),
                             "median seconds": a.median_seconds} for a in r.annotators]), "annotate_annotators")
    if not r.double:
        st.caption("No clip has answers from two experts yet: push with a share for two experts to measure "
                   "agreement.")
        return
    st.caption(f"{r.double} clip(s) labelled by two experts: the same answer on {r.exact:.0%}. Cohen's kappa per "
               f"species (n = doubly labelled clips; below 20, rough).")
    table(pd.DataFrame([{"species": x.label, "kappa": x.kappa, "n": x.n, "both named it": x.both,
                         "one named it": x.one} for x in r.species]), "annotate_agreement")
    if r.to_adjudicate:
        st.caption(f"{len(r.to_adjudicate)} clip(s) to adjudicate: their experts split evenly, so training leaves "
                   f"them out until one answer is marked ground truth in Label Studio or a third expert labels the "
                   f"clip.")
        table(pd.DataFrame([{"clip": d.clip_id, "task": d.task_id,
                             "answers": "; ".join(f"{who}: {', '.join(v)}" for who, v in d.answers.items())}
                            for d in r.to_adjudicate]), "annotate_disagreements")
    if r.settled:
        st.caption(f"{sum(r.settled.values())} disagreement(s) settled, training takes one answer: "
                   + ", ".join(f"{n} by {how}" for how, n in sorted(r.settled.items())) + ".")


st.title("Annotate")
st.caption("Batches go to Label Studio as tasks (clip, spectrogram, the model's guess pre-ticked); the experts' "
           "labels come back with Pull.")
s, ws = store(), workspace()
runs = s.sampling_runs()
require(runs, "No sampling run yet: pick and save a batch on the Sample page (or run `workbench sample --budget 20`).")

with st.expander("Project", expanded=False):
    cols = st.columns([3, 2, 1])
    choice = ProjectChoice(
        title=cols[0].text_input("Label Studio project", value=DEFAULT_PROJECT, key="annotate_project",
                                 help="`--project`: created on the first push, with the label set as its choices"),
        label_set=cols[1].text_input("Label set", value="", key="annotate_label_set", placeholder="the newest",
                                     help="`--label-set`: default the newest, else one made from the pool") or None,
        min_confidence=cols[2].number_input("Min confidence", min_value=0.0, max_value=1.0, value=0.5, step=0.05,
                                            key="annotate_min_confidence",
                                            help="`--min-confidence`: a species joins a new label set when the "
                                                 "model finds it at this confidence"))

client = None
project_id: Optional[int] = None
with shown_errors():  # Label Studio down or the token wrong: one line saying what to do
    client = connect(ws)
    project_id = find_project(client, choice)
if client is not None:
    if project_id is None:
        st.caption(f"Label Studio at {plain(client.settings.url)} is reachable; project “{plain(choice.title)}” does "
                   f"not exist yet: the first push creates it.")
    else:
        st.caption(f"Label Studio project {project_id}: [{plain(choice.title)}]({project_url(ws, project_id)})")

if client is None:
    show_progress(s, None)
    show_agreement(s)
    st.info("Push and Pull need Label Studio: start it with `workbench serve` (or set LABEL_STUDIO_URL), then "
            "reload this page.")
    st.stop()

st.subheader("Push")
run_ids = [r.id for r in reversed(runs)]
run_id = st.selectbox("Sampling run", run_ids, key="annotate_run",
                      format_func=lambda i: next(f"run {r.id}: {r.strategy}, {r.budget} clips, "
                                                 f"{r.created_at:%Y-%m-%d %H:%M}" for r in runs if r.id == i))
cols = st.columns(2)
overlap = cols[0].number_input("Share for two experts", min_value=0.0, max_value=1.0, value=0.0, step=0.05,
                               key="annotate_overlap", help="`--overlap`: a seeded share of the new tasks two "
                                                            "experts label, to measure agreement")
show_source = cols[1].checkbox("Show file, site and time", value=False, key="annotate_show_source",
                               help="`--show-source`: tasks are blind by default (file names often name species)")
if st.button("Push to Label Studio", key="annotate_push", type="primary"):
    with shown_errors(), st.status(f"Pushing run {run_id}...", expanded=True) as status:
        st.write("Cutting each clip with context, drawing its spectrogram, importing the tasks (never twice)...")
        report = push(ws, s, client, choice, run_id=run_id, overlap=float(overlap), show_source=show_source)
        url = project_url(ws, report.project_id)
        status.update(label=f"Pushed run {run_id} to project {report.project_id}: " + report.summary(),
                      state="error" if report.failed else "complete")
        for clip_id, path, reason in report.failed:
            st.warning(plain(f"clip {clip_id} ({path}): {' '.join(reason.split())}"))
        for line in report.replaced_lines():
            st.info(plain(line))
        if report.overlap_note():
            st.info(plain(report.overlap_note("The share for two experts")))
        if report.failed:
            st.caption("Fix those files (or re-ingest them) and push again: the other clips are in Label Studio.")
        st.session_state["annotate_pushed"] = (report.project_id, url)
if "annotate_pushed" in st.session_state:
    pid, url = st.session_state["annotate_pushed"]
    project_id = pid
    st.link_button(f"Open project {pid} in Label Studio", url, key="annotate_open")

st.subheader("Pull")
if st.button("Pull labels", key="annotate_pull"):
    with shown_errors(), st.spinner("Reading new, edited and deleted annotations..."):
        for pid, r in pull(s, client, choice, ws):
            project_id = pid
            st.success(r.summary(pid))
            for problem in r.problems[:20]:
                st.caption(plain(problem))

show_progress(s, project_id)
show_agreement(s)
