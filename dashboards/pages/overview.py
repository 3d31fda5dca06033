"""Overview: the market mood at a glance — KPIs, volume and sentiment by topic over time, negative share per
topic with fired alerts on the time axis, and a topic x time heatmap. Everything below the title is live."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboards import charts, data, ui

ctx = ui.context()
st.title("Market overview")


@st.fragment(run_every=ui.live_every(ctx))
def live_overview() -> None:
    window, filters = ui.current_filters(ctx)
    baseline_start = window.start - timedelta(days=ctx.settings.alerts.baseline_days)
    kpis = fetch_kpis(filters, baseline_start)
    fired = ui.fetch(ctx, data.fired_alerts, window.start, window.end)
    now = ui.now_tick(ctx.refresh_seconds)
    cooldown = timedelta(minutes=ctx.settings.alerts.cooldown_minutes)
    active = ui.fetch(ctx, data.fired_alerts, now - cooldown, now + timedelta(seconds=ctx.refresh_seconds))

    cols = st.columns(4)
    cols[0].metric(
        "Items in window", f"{kpis['items']:,}", help="Unique stories unless repeats are included."
    )
    share, base = kpis["negative_share"], kpis["baseline_share"]
    delta = None if share is None or base is None else f"{100 * (share - base):+.1f} pp vs baseline"
    cols[1].metric(
        "Negative share",
        ui.percent(share),
        delta,
        delta_color="inverse",
        help=f"Baseline: the {ctx.settings.alerts.baseline_days} days before the window "
        f"({ui.percent(base)}).",
    )
    cols[2].metric(
        "Active alerts",
        len(active),
        help=f"Alerts fired in the last {ctx.settings.alerts.cooldown_minutes} minutes.",
    )
    failed = int((fired["state"] == "failed").sum()) if not fired.empty else 0
    cols[3].metric(
        "Alerts in range", len(fired), f"{failed} failed" if failed else None, delta_color="inverse"
    )
    st.caption(
        f"{window.start:%Y-%m-%d %H:%M} – {window.end:%Y-%m-%d %H:%M} UTC, "
        f"{ui.duration(window.bucket_seconds)} buckets"
    )

    volume = ui.fetch(ctx, data.sentiment_volume, filters, window.bucket_seconds)
    if volume.empty:
        if not ui.offer_latest(ctx, filters, window):
            ui.empty_note("classified headlines")
        return
    left, right = st.columns(2)
    left.plotly_chart(volume_chart(volume), width="stretch", key="volume_chart")
    right.plotly_chart(sentiment_chart(volume), width="stretch", key="sentiment_chart")
    shares = data.negative_share(volume)
    st.plotly_chart(charts.share_with_alerts(shares, fired), width="stretch", key="share_chart")
    st.plotly_chart(charts.share_heatmap(shares), width="stretch", key="heatmap")
    most_negative(filters)


def fetch_kpis(filters: data.Filters, baseline_start: datetime) -> dict[str, Any]:
    row = ui.fetch(ctx, data.headline_kpis, filters, baseline_start).to_dict("records")[0]
    return {k: (None if v is None or pd.isna(v) else v) for k, v in row.items()} | {
        "items": int(row["items"])
    }


def volume_chart(volume: pd.DataFrame) -> go.Figure:
    by_topic = volume.groupby(["bucket", "topic"], as_index=False)["items"].sum()
    fig = px.bar(
        by_topic,
        x="bucket",
        y="items",
        color="topic",
        title="Volume by topic",
        labels={"bucket": "", "items": "headlines", "topic": "Topic"},
    )
    return charts.compact(fig, legend=False)


def sentiment_chart(volume: pd.DataFrame) -> go.Figure:
    by_sentiment = volume.groupby(["bucket", "sentiment"], as_index=False)["items"].sum()
    fig = px.area(
        by_sentiment,
        x="bucket",
        y="items",
        color="sentiment",
        title="Sentiment over time",
        color_discrete_map=ui.SENTIMENT_COLORS,
        category_orders={"sentiment": list(ui.SENTIMENT_COLORS)},
        labels={"bucket": "", "items": "headlines", "sentiment": "Sentiment"},
    )
    return charts.compact(fig)


def most_negative(filters: data.Filters) -> None:
    """The most negative recent headlines, as plain text (titles are untrusted)."""
    latest = ui.fetch(ctx, data.headlines, filters, "", ("negative",), None, 10, 0)
    if latest.empty:
        return
    st.subheader("Latest negative headlines")
    table = latest.assign(
        time=latest["published_at"].dt.strftime("%m-%d %H:%M"),
        score=latest["sentiment_score"].map("{:+.2f}".format),
    )
    st.table(
        ui.literal_frame(table[["time", "source", "title", "topic", "score"]], ["source", "title", "topic"]),
        hide_index=True,
    )


live_overview()
