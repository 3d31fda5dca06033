"""Headlines: search and filter, newest first, paginated; select a row (or open ``?item=<id>``) for details."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import data, explain_view, ui
from dashboards.app import PAGE_DIR
from monitor.labels import SENTIMENTS

PAGE_SIZE = 50
GRID_COLUMNS = ["published_at", "source", "title", "url", "topic", "sentiment", "sentiment_score",
                "sentiment_confidence", "is_duplicate", "tickers", "corrected"]  # fmt: skip
ctx = ui.context()
st.title("Headlines")

search_col, sentiment_col, ticker_col = st.columns([3, 2, 1])
search = search_col.text_input("Search titles", key="search", placeholder="e.g. guidance, downgrade, $AAPL")
sentiments = sentiment_col.multiselect("Sentiment", SENTIMENTS, key="sentiments", placeholder="All")
ticker = ticker_col.text_input(
    "Ticker", value=ui.ticker_param(st.query_params.get("ticker", "")), key="ticker_filter"
).strip()


@st.fragment(run_every=ui.live_every(ctx))
def live_table() -> None:
    _, filters = ui.current_filters(ctx)
    total = ui.fetch(ctx, data.count_headlines, filters, search, tuple(sentiments), ticker or None)
    if total == 0:
        ui.empty_note("headlines match these filters")
        return
    pages = max(1, math.ceil(min(total, 10_000) / PAGE_SIZE))
    if st.session_state.get("page", 1) > pages:  # the filters changed under a deep page
        st.session_state["page"] = 1
    page = st.number_input("Page", min_value=1, max_value=pages, value=1, step=1, key="page")
    shown = "more than 10,000" if total > 10_000 else f"{total:,}"
    noun = "headline" if total == 1 else "headlines"
    st.caption(f"{shown} {noun}, newest first — page {page} of {pages}. Select a row for details.")
    rows = ui.fetch(
        ctx,
        data.headlines,
        filters,
        search,
        tuple(sentiments),
        ticker or None,
        PAGE_SIZE,
        (int(page) - 1) * PAGE_SIZE,
    )
    event = headline_grid(rows)
    selected = event.selection.rows if event is not None else []
    if selected and selected[0] < len(rows):
        chosen = str(rows.iloc[selected[0]]["id"])
        if st.query_params.get("item") != chosen:  # details live outside this fragment (their form must
            st.query_params["item"] = chosen  # not be redrawn by the live refresh): rerun the page
            st.rerun()


def headline_grid(rows: pd.DataFrame) -> Any:
    """One page of headlines; selecting a row reruns the fragment with the selection."""
    return st.dataframe(
        rows[GRID_COLUMNS],
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(rows), 640),
        on_select="rerun",
        selection_mode="single-row",
        key="headline_table",
        column_config={
            "published_at": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm"),
            "title": st.column_config.TextColumn("title", width="large"),
            "url": st.column_config.LinkColumn("link", display_text=":material/open_in_new:"),
            "sentiment_score": st.column_config.NumberColumn("score", format="%.2f"),
            "sentiment_confidence": st.column_config.ProgressColumn("confidence", min_value=0, max_value=1),
            "is_duplicate": st.column_config.CheckboxColumn("repeat"),
            "corrected": st.column_config.TextColumn(
                "corrected", help="An analyst's correction (tags unchanged)"
            ),
        },
    )


def details(item_id: str) -> None:
    """Everything stored about one item; all news text shown literally."""
    row = ui.fetch(ctx, data.headline_detail, item_id)
    if row.empty:
        st.warning("That headline is not in the database.")
        return
    item = row.iloc[0]
    st.subheader("Details")
    explain_view.saved_note(str(item["id"]))
    st.text(str(item["title"]))
    fields = {
        "published": f"{item['published_at']:%Y-%m-%d %H:%M:%S} UTC",
        "source": item["source"],
        "topic": f"{item['topic']} ({item['topic_confidence']:.0%})"
        if pd.notna(item["topic"])
        else "not tagged",
        "sentiment": (
            f"{item['sentiment']} (score {item['sentiment_score']:+.2f}, "
            f"confidence {item['sentiment_confidence']:.0%})"
        )
        if pd.notna(item["sentiment"])
        else "",
        "tickers": item["tickers"] or "none",
        "corrected": item["corrected"] or "—",
        "repeat of": item["duplicate_of"] or "—",
        "model": item["model_version"] or "",
        "id": item["id"],
    }
    st.table(
        pd.DataFrame({"field": list(fields), "value": [ui.literal(v) for v in fields.values()]}),
        hide_index=True,
        hide_header=True,
    )
    for key in [k for k in str(item["tickers"] or "").split(", ") if k]:
        st.page_link(PAGE_DIR / "company.py", label=ui.literal(f"Company page: {key}"),
                     icon=":material/business:", query_params={"company": key})  # fmt: skip
    if item["url"]:
        st.link_button("Open article", item["url"])
    if item["body"]:
        with st.expander("Body"):
            st.text(str(item["body"])[:5_000])
    if pd.notna(item["topic"]):
        explain_view.show_explanation(ctx, str(item["title"]))
        explain_view.correction_form(ctx, item)
        history = ui.fetch(ctx, data.item_corrections, str(item["id"]))
        if not history.empty:
            st.caption("Corrections of this headline")
            st.table(
                ui.literal_frame(
                    history[
                        ["created_at", "analyst", "old_sentiment", "new_sentiment", "old_topic", "new_topic"]
                    ],
                    ["analyst", "old_sentiment", "new_sentiment", "old_topic", "new_topic"],
                ),
                hide_index=True,
            )


live_table()
if "item" in st.query_params:
    details(st.query_params["item"])
