"""Company: one company's sentiment trend with its volume, against its topic, its headlines and its alerts.
Opened from a headline's or an alert's link (``?company=KEY``) or by searching a ticker or a name."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, data, ui
from dashboards.app import PAGE_DIR

ctx = ui.context()
st.title("Company")

query = st.text_input("Find a company", key="company_search", placeholder="ticker or name, e.g. BA or Boeing")
if query.strip():
    found = ui.fetch(ctx, data.find_companies, query, ui.watchlist(ctx).names)
    if found.empty:
        st.caption("No company with stored headlines matches.")
    for row in found.head(10).itertuples():
        label = ui.literal(f"{row.key} {row.name} ({row.headlines} headlines)")
        st.page_link(PAGE_DIR / "company.py", label=label, query_params={"company": row.key})
key = ui.company_param(ctx, st.query_params.get("company", ""))


@st.fragment(run_every=ui.live_every(ctx))
def live_company(key: str) -> None:
    window, filters = ui.current_filters(ctx)
    name = dict(ui.watchlist(ctx).names).get(key, "")
    st.subheader(ui.literal(f"{key} {name}".strip()))
    trend = ui.fetch(ctx, data.ticker_trend, key, window)
    if trend.empty:
        if not ui.offer_latest(ctx, filters, window):
            ui.empty_note(f"headlines about {key}")
        return
    st.plotly_chart(charts.ticker_trend(trend, key, window), width="stretch", key="company_trend")
    topic = ui.fetch(ctx, data.company_topic, key, window)
    if topic is not None:
        against = ui.fetch(ctx, data.topic_trend, topic, window)
        fig = charts.company_vs_topic(trend, against, key, topic)
        st.plotly_chart(fig, width="stretch", key="company_vs_topic")
    heads = ui.fetch(ctx, data.headlines, filters, "", (), key, 20, 0)
    st.markdown("**Latest headlines**")
    table = heads.assign(time=heads["published_at"].dt.strftime("%m-%d %H:%M"),
                         score=heads["sentiment_score"].map("{:+.2f}".format))  # fmt: skip
    st.table(ui.literal_frame(table[["time", "source", "title", "sentiment", "score", "corrected"]],
                              ["source", "title", "sentiment", "corrected"]), hide_index=True)  # fmt: skip
    st.page_link(PAGE_DIR / "headlines.py", label="All its headlines", icon=":material/article:",
                 query_params={"ticker": key})  # fmt: skip
    fired = ui.fetch(ctx, data.company_alerts, key, window.start, window.end)
    st.markdown("**Alerts**")
    if fired.empty:
        st.caption("No alerts on this company in the time range.")
        return
    shown = fired.assign(fired=fired["fired_at"].dt.strftime("%Y-%m-%d %H:%M"))
    st.table(ui.literal_frame(shown[["fired", "severity", "state"]], ["severity", "state"]), hide_index=True)


if key:
    live_company(key)
elif not query.strip():
    st.info("Search a company above, or open one from a headline or an alert.")
