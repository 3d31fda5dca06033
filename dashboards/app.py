"""Streamlit entry point: ``finpulse dashboard`` runs ``streamlit run dashboards/app.py``.

The database comes from the settings (``FINPULSE_DATABASE_URL``). This script checks the database, draws
the shared sidebar filters, then runs the selected page from ``pages/``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboards import ui

PAGE_DIR = Path(__file__).resolve().parent / "pages"
# file stem -> (title, icon); the first is the landing page.
PAGES = {
    "overview": ("Overview", ":material/monitoring:"),
    "headlines": ("Headlines", ":material/article:"),
    "tickers": ("Tickers", ":material/candlestick_chart:"),
    "company": ("Company", ":material/business:"),
    "alerts": ("Alerts", ":material/notifications_active:"),
    "system": ("System", ":material/monitor_heart:"),
}


def main(landing: str = "overview") -> None:
    """Check the database, draw the shared sidebar, run the selected page (``landing`` when the URL names
    none)."""
    st.set_page_config(page_title="FinPulse", page_icon=":material/monitoring:", layout="wide")
    ctx = ui.context()
    pages = [
        st.Page(PAGE_DIR / f"{stem}.py", title=title, icon=icon, default=stem == landing)
        for stem, (title, icon) in PAGES.items()
    ]
    page = st.navigation(pages)
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


if __name__ == "__main__":
    main()
