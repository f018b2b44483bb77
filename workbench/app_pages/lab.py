"""Lab: which strategy would have beaten random on the labels we already have (replayed, not asked of experts)."""

from __future__ import annotations

import streamlit as st

from workbench.app_pages import charts
from workbench.app_pages.ui import plain, require, shown_errors, store, table
from lab.report import held_out_note, peer_line
from workbench.simulations import mean_curves, runs_table, summary_frame

st.title("Lab")
st.caption("Simulations replay active learning on labelled clips: each strategy against random, same splits and "
           "seeds (`workbench simulate`). Higher and further left is better.")
s = store()

try:  # the lab package may be absent from an older installation: the stored runs are still shown
    from lab.peers import peer_specs
    from lab.simulate import DEFAULT_ALIAS, SIMULATED, SimulationSettings, simulate_workspace
except ImportError:
    simulate_workspace = None

if simulate_workspace is not None:
    with st.expander("Run a simulation on this workspace's labelled clips",
                     expanded=not s.simulation_runs()), st.form("lab_form", border=False):
        cols = st.columns([3, 1, 1, 1, 1, 1])
        strategies = cols[0].multiselect("Strategies (random always runs; skactiveml: the published library's)",
                                         [DEFAULT_ALIAS, *SIMULATED, *peer_specs()], default=[DEFAULT_ALIAS],
                                         key="lab_strategies")
        seeds = cols[1].number_input("Seeds", min_value=1, max_value=20, value=3, key="lab_seeds")
        start = cols[2].number_input("Start labels", min_value=1, value=20, key="lab_start")
        stop = cols[3].number_input("Stop labels", min_value=2, value=120, key="lab_stop")
        step = cols[4].number_input("Per round", min_value=1, value=20, key="lab_step")
        test_size = cols[5].number_input("Held out", min_value=0.05, max_value=0.9, value=0.3, step=0.05,
                                         key="lab_test_size")
        if st.form_submit_button("Run simulation", type="primary", key="lab_run"):
            bar = st.progress(0.0, text="Starting...")
            with shown_errors():
                run = simulate_workspace(s, SimulationSettings(
                    strategies=tuple(strategies or [DEFAULT_ALIAS]), seeds=int(seeds),
                    budgets=(int(start), int(stop), int(step)), test_size=float(test_size)),
                    progress=lambda done, total, msg: bar.progress(min(1.0, done / max(1, total)),
                                                                   text=msg[:120])).run
                bar.empty()
                st.session_state["lab_chosen"] = [run.id]
                st.success(f"Simulation {run.id} stored ({run.seconds:.0f} s).")

runs = s.simulation_runs()
require(runs, "No simulation stored yet: run one above, or `workbench simulate` once some clips are labelled.")

st.subheader("Stored simulations")
table(runs_table(runs), "lab_runs")
ids = [r.id for r in reversed(runs)]
if not set(st.session_state.get("lab_chosen") or []) <= set(ids):
    del st.session_state["lab_chosen"]
chosen = st.multiselect("Compare", ids, default=None if "lab_chosen" in st.session_state else ids[:1],
                        key="lab_chosen", format_func=lambda i: f"simulation {i}")
require(chosen, "Choose one or more simulations to compare.")

columns = st.columns(min(len(chosen), 3))
for n, run_id in enumerate(chosen):
    run = next(r for r in runs if r.id == run_id)
    with columns[n % len(columns)]:
        st.markdown(f"**Simulation {run.id}** · {plain(run.source)} · {run.created_at:%Y-%m-%d %H:%M}")
        st.altair_chart(charts.curves(mean_curves(run), "labels", "macro_recall", "strategy", x_title="labels",
                                      y_title="macro recall (mean over seeds)", dashed="random"), width="stretch",
                        key=f"lab_curves_{run.id}")
        st.caption(plain(held_out_note(run.params or {})))
        against_peers = peer_line(run.summary or {})
        if against_peers:
            st.caption(plain(against_peers))
        table(summary_frame(run), f"lab_summary_{run.id}",
              column_config={"aulc": st.column_config.NumberColumn(format="%.3f"),
                             "final": st.column_config.NumberColumn(format="%.3f")})
