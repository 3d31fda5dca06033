"""Tickers: top movers by negative share (window vs the window before it) and one ticker's trend."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, data, ui
from dashboards.app import PAGE_DIR

MIN_ITEMS = 5
ctx = ui.context()
st.title("Tickers")


@st.fragment(run_every=ui.live_every(ctx))
def live_tickers() -> None:
    window, _ = ui.current_filters(ctx)
    movers = ui.fetch(ctx, data.ticker_movers, window.start, window.end, MIN_ITEMS, 25)
    if movers.empty:
        ui.empty_note(f"tickers with at least {MIN_ITEMS} headlines")
        return
    st.subheader("Top movers by negative share")
    st.caption(
        "Change of the negative share against the previous window of the same length; "
        f"tickers with at least {MIN_ITEMS} unique headlines."
    )
    st.dataframe(
        movers,
        hide_index=True,
        width="stretch",
        key="movers",
        column_config={
            "ticker": st.column_config.TextColumn(
                "ticker", help="~Name: a provisional entity, an unknown name recurring across stories"
            ),
            "items": st.column_config.NumberColumn("headlines"),
            "negative_share": st.column_config.ProgressColumn(
                "negative share", min_value=0, max_value=1, format="percent"
            ),
            "avg_score": st.column_config.NumberColumn("avg score", format="%.2f"),
            "prev_items": st.column_config.NumberColumn("headlines before"),
            "prev_negative_share": st.column_config.NumberColumn("negative before", format="percent"),
            "share_change": st.column_config.NumberColumn("change", format="percent"),
        },
    )
    options = movers["ticker"].tolist()
    wanted = ui.ticker_param(st.query_params.get("ticker", ""))
    if wanted and wanted not in options:
        options.append(wanted)
    choice = st.selectbox("Ticker", options, index=options.index(wanted) if wanted else 0, key="ticker")
    trend = ui.fetch(ctx, data.ticker_trend, choice, window)
    if trend.empty:
        ui.empty_note(f"headlines about {choice}")
        return
    st.plotly_chart(charts.ticker_trend(trend, choice, window), width="stretch", key="ticker_chart")
    st.page_link(
        PAGE_DIR / "headlines.py",
        label=f"Headlines about {choice}",
        icon=":material/article:",
        query_params={"ticker": choice},
    )


live_tickers()
