"""Rounds: what each round of expert labels bought, as learning curves per class and per site, and where the
head still confuses species."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from finetune.evaluate import recall_statement
from workbench.app_pages import charts
from workbench.app_pages.ui import plain, require, store, table
from workbench.overview import model_history
from workbench.rounds import (X_AXES, calibration_table, class_curves, confusion_frame, heads, learning_curve,
                              reliability_frame, site_curves, validation_table)

X_TITLES = {"n_train": "labelled clips it was trained on (before the held-out evaluation)",
            "n_clips": "labelled clips in all"}
X_SHORT = {"n_train": "training labels", "n_clips": "labelled clips"}

st.title("Rounds")
st.caption("One point per fine-tuned head (`workbench finetune`): macro recall on held-out labelled clips, per "
           "class and per site.")
s = store()
history = model_history(s)
require(history, "No model version yet: run `workbench ingest PATH` or `workbench demo`.")
trained = heads(s)
if not trained:
    table(pd.DataFrame(history), "model_history")
require(trained, "No fine-tuned head yet: label a batch in Label Studio, pull the labels and run "
                 "`workbench finetune`.")

x = st.radio("Labels axis", list(X_AXES), horizontal=True, key="rounds_x", format_func=lambda v: X_TITLES[v])
curve = learning_curve(s, x)
last = curve.iloc[-1]
cols = st.columns(4)
cols[0].metric("Rounds", len(curve))
change = curve["macro_recall"].diff().iloc[-1] if len(curve) > 1 else None
statement = recall_statement(trained[-1].metrics or {})
rough = "rough figure" in statement  # too few held-out clips per class for a number in large type
cols[1].metric("Macro recall", "—" if pd.isna(last["macro_recall"]) else
               ("rough" if rough else f"{last['macro_recall']:.3f}"),
               delta=None if rough or change is None or pd.isna(change) else f"{change:+.3f}",
               help="Mean over classes of the recall on held-out labelled clips; the change since the last round")
cols[2].metric("Worst site", "—" if pd.isna(last["worst_site"]) else str(last["worst_site"]))
cols[3].metric("Its recall", "—" if pd.isna(last["worst_site_recall"]) else f"{last['worst_site_recall']:.3f}")

st.caption(plain(statement[0].upper() + statement[1:] + "."))

overall = curve.melt(id_vars=["round", "model", "labels"], value_vars=["macro_recall", "worst_site_recall"],
                     var_name="measure", value_name="recall").dropna(subset=["recall", "labels"])
left, right = st.columns(2)
left.markdown("**Macro recall and the worst site**")
left.altair_chart(charts.curves(overall, "labels", "recall", "measure", x_title=X_SHORT[x], y_title="recall"),
                  width="stretch", key="rounds_curve")
per_site = site_curves(s, x).dropna(subset=["labels"])
right.markdown("**Recall per site (stratum)**")
if len(per_site):
    right.altair_chart(charts.curves(per_site, "labels", "recall", "site", x_title=X_SHORT[x],
                                     y_title="macro recall"),
                       width="stretch", key="rounds_sites")
else:
    right.caption("No per-site recall recorded yet.")
per_class = class_curves(s, x).dropna(subset=["labels"])
st.markdown("**Recall per class**")
if len(per_class):
    st.altair_chart(charts.curves(per_class, "labels", "recall", "class", x_title=X_SHORT[x], y_title="recall",
                                  height=360, species=True),
                    width="stretch", key="rounds_classes")

st.subheader("Confusion")
names = [mv.name for mv in reversed(trained)]
chosen = st.selectbox("Head", names, key="rounds_confusion_model")
frame = confusion_frame(next(mv for mv in trained if mv.name == chosen))
if frame is None:
    st.info(f"{plain(chosen)} was fine-tuned before confusion counts were recorded: the next `workbench finetune` "
            f"records them.")
else:
    st.caption("Rows: the experts' label of held-out clips; columns: what the head predicted (a clip may count in "
               "several columns); the last column: clips for which it predicted nothing.")
    st.altair_chart(charts.confusion(frame), width="stretch", key="rounds_confusion")

st.subheader("Calibration and auto-validation")
st.caption("Calibration is fitted on the audit stream's labels (`workbench sample --strategy audit`), kept out of "
           "training; thresholds come from `workbench validate` (precision guaranteed per species).")
versions = [mv for mv in reversed(s.model_versions()) if (mv.metrics or {}).get("calibration")
            or (mv.metrics or {}).get("auto_validation")]
if not versions:
    st.caption("No calibrated or validated model yet: label an audit batch, then `workbench finetune` calibrates the "
            "head on it and `workbench validate` sets auto-validation thresholds.")
else:
    pick = st.selectbox("Model", [mv.name for mv in versions], key="rounds_trust_model")
    mv = next(m for m in versions if m.name == pick)
    ece = calibration_table(mv)
    if ece is not None:
        cal = (mv.metrics or {})["calibration"]
        st.caption(plain(f"{cal['method']} on {cal['n_audit']} audit labels; expected calibration error per class "
                         "before and after (after: cross-fitted over folds of the audit labels)."))
        table(ece, "rounds_ece")
        points = reliability_frame(mv)
        classes = sorted(points["class"].unique())
        shown = st.selectbox("Reliability of", classes, key="rounds_reliability_class")
        st.altair_chart(charts.reliability(points[points["class"] == shown]), width="stretch",
                        key="rounds_reliability")
    checked = validation_table(mv)
    if checked is not None:
        v = (mv.metrics or {})["auto_validation"]
        st.caption(plain(f"Auto-validation: precision >= {v['target_precision']:g} with confidence "
                         f"{v['confidence']:g} per species, from {v['n_audit']} audit labels ({v['at']})"
                         + (f"; {v['disputed']} of them disputed by their experts, where a detection of a species "
                            "in dispute counts as wrong until adjudicated" if v.get("disputed") else "") + "."))
        table(checked, "rounds_validation")

st.subheader("Model versions")
table(pd.DataFrame(history), "model_history")
