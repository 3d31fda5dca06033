"""Alerts: what fired, with its numbers and delivery state, and the headlines behind each alert."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import data, ui
from dashboards.app import PAGE_DIR

ctx = ui.context()
st.title("Alerts")
STATES = ("pending", "sent", "failed", "rejected")


@st.fragment(run_every=ui.live_every(ctx))
def live_alerts() -> None:
    window, _ = ui.current_filters(ctx)
    counts = ui.fetch(ctx, data.alert_state_counts, window.start, window.end)
    by_state = dict(zip(counts["state"], counts["alerts"], strict=True))
    cols = st.columns(len(STATES))
    for col, state in zip(cols, STATES, strict=True):
        col.metric(state.capitalize(), int(by_state.get(state, 0)))
    states = st.pills("State", STATES, selection_mode="multi", key="alert_states")
    fired = ui.fetch(ctx, data.fired_alerts, window.start, window.end, tuple(states or ()))
    if fired.empty:
        ui.empty_note("fired alerts")
        return
    alert_table(fired)
    labels: dict[int, str] = {
        int(r.id): f"#{r.id} {r.key_kind}: {r.key_value} at {r.fired_at:%m-%d %H:%M}"
        for r in fired.itertuples()
    }
    chosen = st.selectbox(
        "Headlines behind alert", list(labels), format_func=lambda i: labels[i], key="alert_pick"
    )
    headlines_behind(fired[fired["id"] == chosen].iloc[0])


def alert_table(fired: pd.DataFrame) -> None:
    """The fired alerts with the numbers from their details JSON."""
    table = data.with_alert_numbers(fired)
    st.dataframe(
        table.drop(columns=["details", "alert_key"]),
        hide_index=True,
        width="stretch",
        key="alerts_table",
        column_config={
            "id": st.column_config.NumberColumn("#"),
            "key_kind": "kind",
            "key_value": "key",
            "last_error": "last error",
            "fired_at": st.column_config.DatetimeColumn("fired (UTC)", format="YYYY-MM-DD HH:mm"),
            "window_start": st.column_config.DatetimeColumn("window from", format="MM-DD HH:mm"),
            "window_end": st.column_config.DatetimeColumn("window to", format="MM-DD HH:mm"),
            "sent_at": st.column_config.DatetimeColumn("sent", format="MM-DD HH:mm:ss"),
        },
    )


def headlines_behind(alert: pd.Series) -> None:
    """The chosen alert's delivery error and the headlines in its window, most negative first."""
    behind = ui.fetch(
        ctx,
        data.alert_headlines,
        alert["key_kind"],
        alert["key_value"],
        alert["window_start"].to_pydatetime(),
        alert["window_end"].to_pydatetime(),
    )
    if alert["key_kind"] == "ticker":
        st.page_link(PAGE_DIR / "company.py", label=ui.literal(f"Company page: {alert['key_value']}"),
                     icon=":material/business:", query_params={"company": alert["key_value"]})  # fmt: skip
    if isinstance(alert["last_error"], str) and alert["last_error"]:
        st.warning(f"Last delivery error: {ui.literal(alert['last_error'])}")
    if behind.empty:
        st.info("No headlines are stored for this alert's window.")
        return
    shown = behind.assign(
        time=behind["published_at"].dt.strftime("%m-%d %H:%M"),
        score=behind["sentiment_score"].map("{:+.2f}".format),
    )
    st.table(
        ui.literal_frame(
            shown[["time", "source", "title", "topic", "sentiment", "score"]], ["source", "title", "topic"]
        ),
        hide_index=True,
    )


live_alerts()
