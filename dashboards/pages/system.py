"""System: the model in use and its evaluation figures, worker throughput and lag, DLQ, database size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboards import data, ui
from dashboards.model_card import load_model_card, metrics_table

STALE_AFTER = timedelta(minutes=2)
ctx = ui.context()
st.title("System")


@st.fragment(run_every=ui.live_every(ctx))
def live_workers() -> None:
    st.subheader("Workers")
    beats = ui.fetch(ctx, data.worker_heartbeats_frame)
    if beats.empty:
        st.info("No worker has reported yet (start one with `finpulse worker` or `finpulse run`).")
        return
    now = datetime.now(UTC)
    beats = beats.assign(age_s=(now - beats["updated_at"]).dt.total_seconds().round(0))
    beats["status"] = beats["age_s"].map(lambda s: "live" if s <= STALE_AFTER.total_seconds() else "stale")
    live = beats[beats["status"] == "live"]
    cols = st.columns(4)
    cols[0].metric("Live workers", f"{len(live)} / {len(beats)}")
    cols[1].metric("Throughput", f"{live['items_per_second'].sum():.1f} items/s")
    cols[2].metric(
        "Consumer lag", f"{int(live['lag'].sum()):,}", help="Messages behind, summed over live workers."
    )
    cols[3].metric(
        "Dead-lettered", f"{int(beats['dlq_total'].sum()):,}", help="Messages sent to the DLQ topic."
    )
    st.dataframe(
        beats,
        hide_index=True,
        width="stretch",
        key="workers",
        column_config={
            "updated_at": st.column_config.DatetimeColumn("last seen", format="HH:mm:ss"),
            "age_s": st.column_config.NumberColumn("age (s)"),
        },
    )


def model_section() -> None:
    st.subheader("Model")
    card = load_model_card(ctx.settings.model.path)
    if not card.available:
        st.info(f"Model card: not available ({ui.literal(card.reason)}).")
        return
    note = card.summary.pop("licence_note", None)
    summary = pd.DataFrame(
        {"field": list(card.summary), "value": [ui.literal(v) for v in card.summary.values()]}
    )
    if not summary.empty:
        st.table(summary, hide_index=True, hide_header=True)
    if card.metrics.empty:
        st.caption("The model card lists no evaluation figures.")
    else:
        st.markdown("**Evaluation** (from the model card)")
        st.dataframe(metrics_table(card.metrics), width="stretch", key="model_metrics")
    if note:
        st.caption(ui.literal(note))


@st.fragment(run_every=ui.live_every(ctx))
def live_database() -> None:
    st.subheader("Database")
    size = ui.fetch(ctx, data.database_size_bytes)
    stats = ui.fetch(ctx, data.table_stats)
    cols = st.columns(3)
    cols[0].metric("Size", "n/a" if size is None else f"{size / 1e6:,.1f} MB")
    cols[1].metric("Headlines stored", f"{int(stats.loc[stats['table'] == 'news_items', 'rows'].sum()):,}")
    newest = stats.loc[stats["table"] == "news_items", "latest"].iloc[0]
    age = (
        "—"
        if newest is None or pd.isna(newest)
        else f"{(datetime.now(UTC) - newest).total_seconds() / 60:,.0f} min"
    )
    cols[2].metric("Newest headline age", age)
    st.caption(f"Database: {ui.literal(ctx.safe_url())}")
    st.dataframe(stats, hide_index=True, width="stretch", key="table_stats")


live_workers()
model_section()
live_database()
