"""The dashboard's Plotly figures from small aggregated frames (no Streamlit, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from dashboards import charts, data

T0 = pd.Timestamp("2026-01-05 12:00", tz="UTC")


def shares() -> pd.DataFrame:
    volume = pd.DataFrame(
        [
            (T0, "Energy | Oil", "negative", 6), (T0, "Energy | Oil", "positive", 2),
            (T0 + pd.Timedelta(hours=1), "Energy | Oil", "negative", 1),  # one headline: too few to plot
            (T0, "Earnings", "neutral", 4),
        ],
        columns=["bucket", "topic", "sentiment", "items"],
    )  # fmt: skip
    return data.negative_share(volume)


def test_share_chart_has_overall_line_gaps_for_thin_buckets_and_alert_markers() -> None:
    fired = pd.DataFrame({"fired_at": [T0 + pd.Timedelta(minutes=30)], "key_kind": ["topic"],
                          "key_value": ["Energy | Oil"], "state": ["failed"]})  # fmt: skip
    fig = charts.share_with_alerts(shares(), fired)
    traces = {t.name: t for t in fig.data}
    assert list(traces["all topics"].y) == [0.5, 1.0]  # 6 of 12, then 1 of 1
    energy = traces["Energy | Oil"]
    assert energy.y[0] == 0.75 and (energy.y[1] is None or pd.isna(energy.y[1]))
    assert list(traces["alert fired"].text) == ["topic: Energy | Oil (failed)"]
    assert len(fig.layout.shapes) == 1  # the dotted line at the alert


def test_heatmap_is_topic_by_time_with_empty_cells() -> None:
    fig = charts.share_heatmap(shares())
    heat = fig.data[0]
    assert list(heat.y) == ["Earnings", "Energy | Oil"] and len(heat.x) == 2
    assert heat.z[0][0] == 0.0 and pd.isna(heat.z[0][1])


def test_ticker_trend_spans_the_whole_window() -> None:
    window = data.Window(datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC), 3600)
    trend = pd.DataFrame({"bucket": [T0], "items": [4], "negative": [1], "avg_score": [0.1],
                          "negative_share": [0.25]})  # fmt: skip
    fig = charts.ticker_trend(trend, "XOM", window)
    assert [pd.Timestamp(x) for x in fig.layout.xaxis.range] == [
        pd.Timestamp(window.start),
        pd.Timestamp(window.end),
    ]
    centre = (T0 + timedelta(minutes=30)).tz_localize(None)  # Plotly keeps UTC times as naive values
    assert pd.Timestamp(fig.data[0].x[0]) == centre  # the bar sits in the middle of its bucket


def test_every_share_chart_shows_its_volume() -> None:
    fig = charts.share_with_alerts(shares(), pd.DataFrame())
    volume = next(t for t in fig.data if t.type == "bar")
    assert list(volume.y) == [12, 1] and volume.yaxis == "y2"  # 12 headlines, then 1
    heat = charts.share_heatmap(shares()).data[0]
    assert heat.text[1][0] == 8 and heat.texttemplate == "%{text:.0f}"  # Energy | Oil's first cell: 8 items
