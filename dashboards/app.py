"""Streamlit entry point: ``finpulse dashboard`` runs ``streamlit run dashboards/app.py``.

The database comes from the settings (``FINPULSE_DATABASE_URL``). This script checks the database, draws
the shared sidebar filters, then runs the selected page from ``pages/``.
"""

from __future__ import annotations

import streamlit as st

from dashboards import ui

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
    st.Page("pages/headlines.py", title="Headlines", icon=":material/article:"),
    st.Page("pages/tickers.py", title="Tickers", icon=":material/candlestick_chart:"),
    st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications_active:"),
    st.Page("pages/system.py", title="System", icon=":material/monitor_heart:"),
]


def main() -> None:
    st.set_page_config(page_title="FinPulse", page_icon=":material/monitoring:", layout="wide")
    ctx = ui.context()
    page = st.navigation(PAGES)
    problem = ui.database_problem(ctx)
    if problem is not None:
        show_database_problem(ctx, problem)
        return
    ui.sidebar(ctx)
    page.run()


def show_database_problem(ctx: ui.Context, problem: str) -> None:
    """A readable page instead of a traceback; it re-checks on its own and reloads once the database is
    back."""
    st.title("FinPulse")
    st.error(f"The dashboard {ui.literal(problem)}.")
    st.markdown(
        f"Database: `{ctx.safe_url()}` (set `FINPULSE_DATABASE_URL` or `finpulse --database-url`). "
        "Start the pipeline with `finpulse run` to create and fill it."
    )

    @st.fragment(run_every=ctx.refresh_seconds)
    def recheck() -> None:
        st.caption(f"Checking again every {ctx.refresh_seconds} s.")
        if ui.database_problem(ctx) is None:
            st.rerun()

    recheck()


main()
