"""Altair charts of the app: each takes one of the DataFrames the ``workbench`` helpers return.

Kept apart from the pages so the pages read as layout, and so every chart is built the same way
(tooltips on every mark, the pool in grey, picks in categorical colours).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

POOL_GREY = "#c8c8c8"
# Species labels are "Scientific name_Common name": axes and legends show the common name, tooltips all of it.
SHORT_LABEL = "peek(split(datum.label, '_'))"


def bars(frame: pd.DataFrame, x: str, y: str = "clips", *, x_type: str = "N", sort: bool = False,
         horizontal: bool = False, height: int = 260, species: bool = False) -> alt.Chart:
    """Counts per category; ``sort`` orders bars by count (largest first); ``species`` shows common names."""
    order = alt.EncodingSortField(field=y, order="descending") if sort else None
    angle = {} if horizontal or x_type != "N" else {"labelAngle": 0 if len(frame) <= 12 else -45}
    axis = alt.Axis(labelLimit=240, **angle, **({"labelExpr": SHORT_LABEL} if species else {}))
    cat = alt.X(f"{x}:{x_type}", sort=order, title=x, axis=axis) if not horizontal else \
        alt.Y(f"{x}:{x_type}", sort=order, title=None, axis=axis)
    val = alt.Y(f"{y}:Q", title=y) if not horizontal else alt.X(f"{y}:Q", title=y)
    return alt.Chart(frame).mark_bar().encode(cat, val, tooltip=list(frame.columns)).properties(height=height)


def heatmap(frame: pd.DataFrame, x: str, y: str, value: str, *, height: int | alt.Step | None = None,
            text: bool = False) -> alt.LayerChart | alt.Chart:
    """A grid of counts (x by y), darker for more; ``text`` writes the numbers in the cells."""
    base = alt.Chart(frame).encode(alt.X(f"{x}:O", title=x, axis=alt.Axis(labelAngle=0)),
                                   alt.Y(f"{y}:N", title=None, sort=None))
    cells = base.mark_rect().encode(alt.Color(f"{value}:Q", scale=alt.Scale(scheme="blues"), title=value),
                                    tooltip=list(frame.columns))
    chart = cells
    if text:  # numbers in the non-empty cells only: the gaps stay quiet
        chart = cells + base.transform_filter(alt.datum[value] > 0).mark_text(fontSize=11).encode(
            alt.Text(f"{value}:Q"),
            color=alt.condition(alt.datum[value] > frame[value].max() / 2, alt.value("white"), alt.value("black")))
    return chart.properties(height=height or alt.Step(24))


def histograms(frame: pd.DataFrame, metric: str) -> alt.Chart:
    """One step line per model version over the same bins (share of its pool), to compare pools."""
    return alt.Chart(frame).mark_line(interpolate="step-after", point=True).encode(
        alt.X("bin_start:Q", title=metric), alt.Y("share:Q", title="share of the pool", axis=alt.Axis(format="%")),
        alt.Color("model:N", title="model version"),
        tooltip=["model", alt.Tooltip("bin_start:Q", format=".2f"), alt.Tooltip("bin_end:Q", format=".2f"),
                 "clips", alt.Tooltip("share:Q", format=".1%")]).properties(height=280)


def embedding_map(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    """The pool in grey, picks in colour by group (cluster or stratum), with their rank and reason on hover."""
    pool = alt.Chart(frame[frame["kind"] == "pool"]).mark_circle(size=18, color=POOL_GREY, opacity=0.6).encode(
        alt.X("x:Q", title=f"{title} 1", axis=alt.Axis(labels=False, ticks=False)),
        alt.Y("y:Q", title=f"{title} 2", axis=alt.Axis(labels=False, ticks=False)), tooltip=["clip_id"])
    picks = alt.Chart(frame[frame["kind"] == "pick"]).mark_point(size=90, filled=True, opacity=0.95,
                                                                 stroke="black", strokeWidth=0.6).encode(
        alt.X("x:Q"), alt.Y("y:Q"), alt.Color("group:N", title=None, legend=alt.Legend(orient="bottom", columns=3)),
        tooltip=["rank", "clip_id", "group", "reason"])
    return (pool + picks).properties(height=420)


def group_bars(frame: pd.DataFrame) -> alt.Chart:
    """Picks per stratum or cluster, coloured like the map."""
    return alt.Chart(frame).mark_bar().encode(
        alt.Y("group:N", sort=None, title=None, axis=alt.Axis(labelLimit=220)),
        alt.X("picks:Q", title="picks", axis=alt.Axis(format="d", tickMinStep=1)),
        alt.Color("group:N", legend=None), tooltip=["group", "picks"]).properties(height=alt.Step(22))


def curves(frame: pd.DataFrame, x: str, y: str, series: str, *, x_title: str, y_title: str,
           percent: bool = True, height: int = 300, species: bool = False,
           dashed: str | None = None) -> alt.Chart:
    """Lines with points, one per series (strategy, class, site), y from 0 to 1; x is a count of labels.

    ``species`` shows common names in the legend; the series named ``dashed`` (the random baseline) is
    drawn dashed.
    """
    axis = alt.Axis(format="%") if percent else alt.Axis()
    legend = alt.Legend(labelExpr=SHORT_LABEL, labelLimit=220) if species else alt.Legend(labelLimit=220)
    encodings = [alt.X(f"{x}:Q", title=x_title, axis=alt.Axis(format="d", tickMinStep=1)),
                 alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(domain=[0, 1]), axis=axis),
                 alt.Color(f"{series}:N", title=series, legend=legend)]
    if dashed is not None:
        names = list(dict.fromkeys(frame[series]))
        encodings.append(alt.StrokeDash(f"{series}:N", legend=None, scale=alt.Scale(
            domain=names, range=[[5, 4] if n == dashed else [1, 0] for n in names])))
    return alt.Chart(frame).mark_line(point=True).encode(*encodings, tooltip=list(frame.columns)).properties(
        height=height)


def confusion(frame: pd.DataFrame) -> alt.LayerChart:
    """True label (rows) by predicted label (columns, last: none predicted), clips in the cells."""
    order = list(dict.fromkeys(frame["predicted"]))
    base = alt.Chart(frame).encode(alt.X("predicted:N", sort=order, title="predicted",
                                         axis=alt.Axis(labelAngle=-30, labelLimit=160, labelExpr=SHORT_LABEL)),
                                   alt.Y("true:N", sort=list(dict.fromkeys(frame["true"])), title="true label",
                                         axis=alt.Axis(labelLimit=200, labelExpr=SHORT_LABEL)))
    cells = base.mark_rect().encode(alt.Color("share:Q", scale=alt.Scale(scheme="oranges", domain=[0, 1]),
                                              title="share of the row"),
                                    tooltip=["true", "predicted", "clips", alt.Tooltip("share:Q", format=".0%")])
    text = base.transform_filter(alt.datum.clips > 0).mark_text(fontSize=11).encode(
        alt.Text("clips:Q"), color=alt.condition(alt.datum.share > 0.5, alt.value("white"), alt.value("black")))
    return (cells + text).properties(height=alt.Step(30))


def reliability(frame: pd.DataFrame) -> alt.LayerChart:
    """Observed rate against mean predicted probability per bin, before and after calibration; the diagonal is
    perfect calibration and each point's size its clips."""
    diagonal = alt.Chart(pd.DataFrame({"predicted": [0.0, 1.0], "observed": [0.0, 1.0]})).mark_line(
        color=POOL_GREY, strokeDash=[4, 4]).encode(x="predicted:Q", y="observed:Q")
    points = alt.Chart(frame).mark_line(point=True).encode(
        alt.X("predicted:Q", title="mean predicted probability", scale=alt.Scale(domain=[0, 1])),
        alt.Y("observed:Q", title="observed rate (audit labels)", scale=alt.Scale(domain=[0, 1])),
        alt.Color("stage:N", title=None), alt.Size("clips:Q", legend=None), tooltip=list(frame.columns))
    return (diagonal + points).properties(height=300)
