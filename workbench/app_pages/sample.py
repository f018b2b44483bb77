"""Sample: try any strategy with any parameters on today's pool (nothing stored), look at the batch, then save it.

Save stores the run exactly as ``workbench sample`` does (new clips scored by the current head first);
below, any stored batch with the reason, spectrogram and audio of every pick.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from sampler.defaults import DEFAULT_STRATEGY
from sampler.range_conflict import with_geofence
from store.status import store_status
from workbench.app_pages import charts
from workbench.app_pages.ui import clip_cards, plain, require, shown_errors, store, table, workspace
from workbench.overview import pick_rows, selection_table
from workbench.preview import MAP_METHODS, embedding_map, group_counts, preview, sampler_notes, umap_available
from workbench.strategy_form import (Control, build_strategy, command_line, inner_names, strategy_controls,
                                     strategy_description, strategy_names)

TABLE_COLUMNS = ["rank", "clip_id", "site", "country", "time", "top_label", "score", "cluster", "stratum", "reason"]


def control_widget(col: Any, control: Control, key: str) -> Any:
    """One strategy parameter as a widget showing the strategy's default; the CLI option is in the help."""
    label = control.param.replace("_", " ")
    help_text = f"{control.help} (`{control.option}`)" if control.help else f"`{control.option}`"
    if control.kind == "choice":
        options = ([None] if control.optional else []) + list(control.choices)
        return col.selectbox(label, options, index=options.index(control.default), key=key, help=help_text,
                             format_func=lambda v: "default (fits the model)" if v is None else str(v))
    if control.kind == "multi":
        options = list(dict.fromkeys([*control.choices, *control.default]))
        return col.multiselect(label, options, default=list(control.default), key=key, help=help_text)
    if control.kind == "int":
        return col.number_input(label, min_value=0, value=control.default, step=1, key=key, help=help_text,
                                placeholder="default")
    if control.kind == "float":
        step = 1.0 if (control.default or 0) >= 1 else 0.01
        return col.number_input(label, min_value=0.0, value=control.default, step=step, key=key, help=help_text,
                                placeholder="none", format="%g")
    if control.kind == "lines":
        return col.text_area(label, value=control.default, key=key, help=help_text, height=68,
                             placeholder="NAME=/path/to/file.csv, one per line")
    return col.text_input(label, value=control.default, key=key, help=help_text)


def batch_table(rows: list[dict[str, Any]], key: str) -> None:
    table(pd.DataFrame(rows, columns=TABLE_COLUMNS), key)


st.title("Sample")
st.caption("Pick the next batch: any strategy, every parameter. Preview runs it on today's pool without storing "
           "anything; Save stores it as `workbench sample` does.")
s, ws = store(), workspace()
current = store_status(s).model
require(current, f"The workspace {ws.root} holds no scored clips yet. Run `workbench ingest PATH` or "
         f"`workbench demo`.")

# ------------------------------------------------------------------------------------ the strategy
models = [mv for mv in reversed(s.model_versions()) if mv.ready]
top = st.columns([2, 2, 1, 1])
name = top[0].selectbox("Strategy", strategy_names(), key="sample_strategy",
                        index=strategy_names().index(DEFAULT_STRATEGY), format_func=lambda n: n.replace("_", " "),
                        help=f"`--strategy`; default {DEFAULT_STRATEGY}, the benchmark's choice (README, 'Which "
                             f"strategy?').")
model_name = top[1].selectbox("Model version", [mv.name for mv in models], key="sample_model",
                              index=[mv.name for mv in models].index(current.name),
                              help="Whose scores rank the pool (`--model-version`; default: the newest head).")
budget = int(top[2].number_input("Budget", min_value=1, value=20, step=1, key="sample_budget",
                                 help="Clips to pick (`--budget`)."))
seed = int(top[3].number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="sample_seed",
                               help="Same seed, same batch (`--seed`)."))
st.caption(plain(strategy_description(name)))
inner = None
if name == "stratified":
    inner = st.selectbox("Inner strategy (run inside each stratum)", inner_names(), key="sample_inner",
                         index=inner_names().index("uncertainty"), help="`--inner`")

values: dict[str, Any] = {}
with st.expander("Parameters", expanded=True):
    controls = strategy_controls(name, inner)
    grid = st.columns(3)
    for i, control in enumerate(controls):
        values[control.param] = control_widget(grid[i % 3], control, f"sample_{name}_{inner or ''}_{control.param}")
st.code(command_line(name, values, budget=budget, seed=seed, inner=inner), language="bash")
settings = (name, inner, model_name, budget, seed, repr(sorted(values.items())))
mv = next(m for m in models if m.name == model_name)

buttons = st.columns([1, 1, 6])
if buttons[0].button("Preview", key="sample_preview", type="secondary"):
    with shown_errors():
        with st.spinner("Picking..."):
            strategy = with_geofence(build_strategy(name, values, seed=seed, inner=inner), ws.geofence_file)
            result = preview(s, strategy, budget, mv)
        st.session_state["sample_last_preview"] = {"preview": result, "settings": settings}
if buttons[1].button("Save", key="sample_save", type="primary"):
    from finetune.scoring import sample_scored

    with shown_errors():
        strategy = with_geofence(build_strategy(name, values, seed=seed, inner=inner), ws.geofence_file)
        bar = st.progress(0.0, text="Scoring new clips with the model, then picking and storing the batch...")
        with sampler_notes() as notes:
            saved = sample_scored(s, strategy, budget, model_version=mv,
                                  progress=lambda done, total: bar.progress(
                                      done / max(1, total), text=f"Scoring new clips: {done}/{total}"))
        run, picks = saved.run, saved.picks
        bar.empty()
        for note in notes:
            st.warning(plain(note))
        shown = st.session_state.get("sample_last_preview")
        same = ""
        if shown and shown["settings"] == settings:
            same = (" (the batch previewed)" if [p.clip_id for p in picks] == [p.clip_id for p in
                                                                               shown["preview"].picks]
                    else " (not the batch previewed: the pool changed since)")
        st.success(f"Stored sampling run {run.id}: {len(picks)} clips picked with {run.strategy}, seed {run.seed}"
                   f"{same}. Push it from the Annotate page (or `workbench push`).")
        st.session_state["sample_run"] = run.id
        st.session_state.pop("sample_last_preview", None)  # its clips are taken now: the batch is shown below

# ------------------------------------------------------------------------------------ the preview
shown = st.session_state.get("sample_last_preview")
if shown is not None:
    p = shown["preview"]
    st.subheader("Preview (not stored)")
    if shown["settings"] != settings:
        st.caption("The settings changed since this preview: press Preview again to see their batch.")
    st.caption(f"{len(p.picks)} picks from a pool of {p.pool_size:,} clips scored by {plain(p.model.name)} "
               f"({p.excluded:,} already selected, pushed or labelled) in {p.seconds:.2f} s.")
    for note in p.notes:
        st.warning(plain(note))
    if p.unscored:
        st.warning(f"{p.unscored:,} clips are not scored by {plain(p.model.name)} yet and are left out of this "
                   f"preview; Save scores them first, so its batch may differ.")
    if p.picks:
        opts = st.columns([1, 1, 2])
        colour_by = opts[0].radio("Colour picks by", ["cluster", "stratum"], horizontal=True, key="sample_colour")
        methods = [m for m in MAP_METHODS if m != "UMAP" or umap_available()]
        method = opts[1].radio("Map", methods, horizontal=True, key="sample_map_method",
                               help="PCA of a seeded sample of the pool plus the picks"
                                    + ("" if umap_available() else "; UMAP needs `pip install umap-learn`"))
        sample_size = opts[2].slider("Pool clips on the map", 100, 5000, 2000, step=100, key="sample_map_n")
        left, right = st.columns([2, 1])
        with shown_errors():
            frame = embedding_map(s, s.pool(p.model).clip_id, p.picks, p.model.embedding_space,
                                  sample_size=sample_size, seed=seed, method=method, colour_by=colour_by)
            left.altair_chart(charts.embedding_map(frame, method), width="stretch", key="sample_map")
        right.markdown(f"**Picks per {colour_by}**")
        right.altair_chart(charts.group_bars(group_counts(p.picks, colour_by)), width="stretch",
                           key="sample_quota")
        rows = pick_rows(s, p.picks, p.model.id)
        batch_table(rows, "sample_preview_table")
        clip_cards(rows, key="sample_preview_clips")
    else:
        st.info("The strategy picked nothing: every clip of the pool is already selected, pushed or labelled.")

# ------------------------------------------------------------------------------------ stored batches
st.subheader("Stored batches")
runs = s.sampling_runs()
if not runs:
    st.info("No sampling run stored yet: Preview a batch above and Save it (or run `workbench sample --budget 20`).")
    st.stop()
ids = [r.id for r in reversed(runs)]
if st.session_state.get("sample_run") not in ids:
    st.session_state["sample_run"] = ids[0]
run_id = st.selectbox("Sampling run", ids, key="sample_run",
                      format_func=lambda i: next(f"run {r.id}: {r.strategy}, {r.budget} clips, "
                                                 f"{r.created_at:%Y-%m-%d %H:%M}" for r in runs if r.id == i))
run, rows = selection_table(s, run_id)
st.caption(plain(f"Run {run.id}: {run.strategy}, budget {run.budget}, seed {run.seed}, "
                 f"{run.created_at:%Y-%m-%d %H:%M} UTC · parameters {run.params}"))
batch_table(rows, "selection_table")
clip_cards(rows, key="sample_run_clips")
