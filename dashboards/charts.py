"""Plotly figures built from the data module's small, already-aggregated frames (no Streamlit here)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.data import Window

MAX_LINES = 8  # negative-share lines: the busiest topics only, or the chart turns to spaghetti
MIN_POINT_ITEMS = 3  # a share over fewer headlines is noise: left as a gap in the topic's line


def compact(fig: go.Figure, legend: bool = True) -> go.Figure:
    fig.update_layout(
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        height=320,
        showlegend=legend,
        legend={"orientation": "h", "y": -0.15},
        hovermode="x unified",
    )
    return fig


def share_with_alerts(shares: pd.DataFrame, fired: pd.DataFrame) -> go.Figure:
    """Negative share per topic over time (busiest topics), with fired alerts marked on the time axis."""
    busiest = shares.groupby("topic")["items"].sum().nlargest(MAX_LINES).index
    overall = shares.groupby("bucket", as_index=False)[["items", "negative"]].sum()
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(  # the volume behind every share: a share of 3 items is not a trend
        go.Bar(x=overall["bucket"], y=overall["items"], name="headlines (right axis)", marker_color="#dde6ef",
               hovertemplate="%{y} headlines"),
        secondary_y=True,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=overall["bucket"],
            y=overall["negative"] / overall["items"],
            mode="lines",
            name="all topics",
            line={"color": "black", "width": 3},
            customdata=overall[["items"]],
            hovertemplate="%{y:.0%} of %{customdata[0]} headlines",
        )
    )
    for topic in busiest:
        part = shares[shares["topic"] == topic].copy()
        part.loc[part["items"] < MIN_POINT_ITEMS, "negative_share"] = None
        fig.add_trace(
            go.Scatter(
                x=part["bucket"],
                y=part["negative_share"],
                mode="lines",
                name=topic,
                customdata=part[["items"]],
                hovertemplate="%{y:.0%} of %{customdata[0]} headlines",
            )
        )
    if not fired.empty:
        for when in fired["fired_at"]:
            fig.add_vline(x=when, line_dash="dot", line_color="#d62728", opacity=0.6)
        labels = fired["key_kind"] + ": " + fired["key_value"] + " (" + fired["state"] + ")"
        fig.add_trace(
            go.Scatter(
                x=fired["fired_at"],
                y=[1.02] * len(fired),
                mode="markers",
                name="alert fired",
                marker={"symbol": "triangle-down", "size": 12, "color": "#d62728"},
                text=labels,
                hovertemplate="%{text}<extra>alert</extra>",
            )
        )
    fig.update_layout(
        title="Negative share by topic (▼ fired alerts), with volume", yaxis_tickformat=".0%",
        yaxis_range=[0, 1.06],
    )  # fmt: skip
    fig.update_yaxes(title_text="headlines", secondary_y=True, showgrid=False, rangemode="tozero")
    fig.update_layout(yaxis={"overlaying": "y2"}, yaxis2={"side": "right"})  # the bars behind the lines
    return compact(fig)


def share_heatmap(shares: pd.DataFrame) -> go.Figure:
    """Topic x time heatmap of negative share; empty cells mean no headlines in that bucket."""
    grid = shares.pivot_table(index="topic", columns="bucket", values="negative_share", aggfunc="mean")
    counts = shares.pivot_table(index="topic", columns="bucket", values="items", aggfunc="sum")
    fig = go.Figure(
        go.Heatmap(
            z=grid.values,
            x=list(grid.columns),
            y=list(grid.index),
            zmin=0,
            zmax=1,
            colorscale="Reds",
            customdata=counts.reindex_like(grid).values,
            text=counts.reindex_like(grid).values,  # each cell shows its volume
            texttemplate="%{text:.0f}",
            textfont={"size": 9},
            colorbar={"tickformat": ".0%"},
            hovertemplate="%{y}<br>%{x}<br>%{z:.0%} negative of %{customdata} headlines<extra></extra>",
        )
    )
    fig.update_layout(
        title="Negative share: topic × time (numbers: headlines per cell)",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        height=max(260, 22 * len(grid.index) + 80),
    )
    return fig


def ticker_trend(trend: pd.DataFrame, ticker: str, window: Window) -> go.Figure:
    """Volume bars and negative share / average score lines for one ticker, over the whole window (so one
    busy bucket still reads as a point in time)."""
    middle = trend["bucket"] + pd.Timedelta(seconds=window.bucket_seconds / 2)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(
            x=middle,
            y=trend["items"],
            width=800 * window.bucket_seconds,  # ms: 80% of a bucket
            name="headlines",
            marker_color="#9ecae1",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=middle,
            y=trend["negative_share"],
            name="negative share",
            mode="lines+markers",
            line_color="#d62728",
        ),
        secondary_y=True,
    )
    fig.add_trace(
        go.Scatter(
            x=middle,
            y=trend["avg_score"],
            name="avg score (−1…1)",
            mode="lines",
            line={"color": "#2ca02c", "dash": "dot"},
        ),
        secondary_y=True,
    )
    fig.update_yaxes(title_text="headlines", secondary_y=False)
    fig.update_yaxes(range=[-1, 1], secondary_y=True, title_text="share / score")
    fig.update_layout(title=f"{ticker}: sentiment and volume", xaxis_range=[window.start, window.end])
    return compact(fig)


def company_vs_topic(company: pd.DataFrame, topic: pd.DataFrame, key: str, topic_name: str) -> go.Figure:
    """Negative share of one company against its topic's, per bucket, each with its volume (bars)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for frame_, name, colour, bar in (
        (company, key, "#d62728", "#f4b6b6"),
        (topic, topic_name, "#1f77b4", "#c6dbef"),
    ):
        fig.add_trace(go.Bar(x=frame_["bucket"], y=frame_["items"], name=f"{name}: headlines", marker_color=bar,
                             opacity=0.6), secondary_y=True)  # fmt: skip
        share = frame_["negative_share"].where(frame_["items"] >= MIN_POINT_ITEMS)
        fig.add_trace(go.Scatter(x=frame_["bucket"], y=share, name=f"{name}: negative share", mode="lines+markers",
                                 line_color=colour, customdata=frame_[["items"]],
                                 hovertemplate="%{y:.0%} of %{customdata[0]} headlines"))  # fmt: skip
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", secondary_y=False, title_text="negative share")
    fig.update_yaxes(secondary_y=True, title_text="headlines", showgrid=False, rangemode="tozero")
    fig.update_layout(title=f"{key} against its topic, {topic_name}", barmode="group",
                      yaxis={"overlaying": "y2"}, yaxis2={"side": "right"})  # fmt: skip
    return compact(fig)
