"""Pool: what the recorders gave, where and when, how uncertain each model is about it, and which species."""

from __future__ import annotations

import streamlit as st

from store.status import store_status
from workbench.app_pages import charts
from workbench.app_pages.ui import plain, require, store, table, workspace
from workbench.overview import UNCERTAINTY_COLUMNS, coverage, pool_breakdown, species_tail, uncertainty_by_model

st.title("Pool")
st.caption("Where the clips come from, how uncertain each model version is about them, and the long tail of "
           "species they seem to hold.")
s, ws = store(), workspace()
status = store_status(s)
require(status.model, f"The workspace {ws.root} holds no scored clips yet. Run `workbench ingest PATH` or "
                      f"`workbench demo`.")

current = status.model.name
st.caption(f"Model version **{plain(current)}**")
cols = st.columns(5)
for col, (label, key) in zip(cols, [("Clips in pool", "clips"), ("Recordings", "recordings"),
                                    ("Selected", "selected"), ("Tasks in Label Studio", "tasks"),
                                    ("Labels", "annotations")]):
    col.metric(label, f"{status.counts[key]:,}")
if status.unscored:
    st.warning(f"{status.unscored:,} clips ingested after {plain(current)} was trained are not scored "
               f"by it yet, so they are not in this pool: the next `workbench sample` (or Save on the Sample page) "
               f"scores them first.")

models = [mv for mv in reversed(s.model_versions()) if mv.ready]
names = [mv.name for mv in models]
chosen = st.selectbox("Model version", names, index=names.index(current), key="pool_model",
                      help="The pool as this model version scored it (its top labels and uncertainty).")
pool = s.pool(next(mv for mv in models if mv.name == chosen))
require(len(pool), f"Model version {chosen} has scored no clips.")

st.subheader("Where and when")
parts = pool_breakdown(pool)
by_site, by_device, by_hour, by_day = st.tabs(["Site", "Device", "Hour of day", "Day"])
by_site.altair_chart(charts.bars(parts["site"], "site", sort=True), width="stretch", key="pool_site")
by_device.altair_chart(charts.bars(parts["device"], "device", sort=True), width="stretch", key="pool_device")
by_hour.altair_chart(charts.bars(parts["hour"], "hour", x_type="O"), width="stretch", key="pool_hour")
if parts["hour"].attrs.get("unknown"):
    by_hour.caption(f"{parts['hour'].attrs['unknown']:,} clips have no recording time and are left out.")
if len(parts["day"]):
    by_day.altair_chart(charts.bars(parts["day"], "day", x_type="T"), width="stretch", key="pool_day")
else:
    by_day.caption("No clip has a recording time (give start_time in a metadata CSV or use recorder file names).")

st.markdown("**Coverage: clips per site and hour of day**")
grid = coverage(pool)
if len(grid):
    st.altair_chart(charts.heatmap(grid, "hour", "site", "clips", text=grid["site"].nunique() <= 12),
                    width="stretch", key="pool_coverage")
else:
    st.caption("No clip has a recording time, so there is no hour to place it at.")

st.subheader("Uncertainty per model version")
metric = st.radio("Score", list(UNCERTAINTY_COLUMNS), horizontal=True, key="hist_metric",
                  help="max_entropy / mean_entropy: binary entropy of the classes (high = unsure); top1: the top "
                       "probability; margin: top1 minus the second.")
embedders = [mv.name for mv in models if mv.kind == "embedding"]
compared = st.multiselect("Model versions", names, default=list(dict.fromkeys([current, *embedders[:1]])),
                          key="pool_compare", help="Each pool is read in full: compare a few at a time.")
hist = uncertainty_by_model(s, metric=metric, bins=20, models=compared)
st.altair_chart(charts.histograms(hist, metric), width="stretch", key="pool_uncertainty")

st.subheader("Predicted species: the long tail")
tail = species_tail(pool)
left, right = st.columns([3, 2])
top_n = min(40, len(tail))
left.altair_chart(charts.bars(tail.head(top_n), "species", sort=True, horizontal=True, species=True,
                              height=max(160, 20 * top_n)), width="stretch", key="pool_species_chart")
with right:
    table(tail[["species", "clips", "share"]], "pool_species_table",
          column_config={"share": st.column_config.NumberColumn(format="percent")})
if len(tail) > top_n:
    left.caption(f"The {top_n} most frequent of {len(tail)} species; the table lists them all.")
