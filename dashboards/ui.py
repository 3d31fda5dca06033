"""Streamlit glue shared by the pages: settings, the cached engine, cached queries, sidebar filters, live
refresh and safe rendering of untrusted text. Pages stay thin: they call ``fetch`` and draw.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
import streamlit as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboards import data
from monitor.labels import TOPICS
from monitor.schema import TICKER_RE
from monitor.settings import Settings
from monitor.store import describe_database, feedback, make_engine, url_text
from monitor.watchlist import Watchlist, read_watchlist

CONNECT_TIMEOUT_S = 5
SENTIMENT_COLORS = {"negative": "#d62728", "neutral": "#9e9e9e", "positive": "#2ca02c"}
_MD_SPECIAL = {c: "\\" + c for c in string.punctuation}


@dataclass(frozen=True, slots=True)
class Context:
    """What every page needs: the settings of this process and the database they name."""

    settings: Settings

    @property
    def url(self) -> str:
        return url_text(self.settings.database.url)

    @property
    def refresh_seconds(self) -> int:
        return max(1, self.settings.dashboard.refresh_seconds)

    def safe_url(self) -> str:
        """What a viewer may see of the database: its kind and name (never host, user or password; the
        dashboard has no login, so it must not hand out where the database lives or who connects)."""
        return describe_database(self.url)


def context() -> Context:
    """Settings from the environment (``streamlit run`` gets them from ``finpulse dashboard``)."""
    return Context(Settings())


@st.cache_resource(show_spinner=False)
def engine_for(url: str) -> Engine:
    """One engine (connection pool) per database URL for the whole server process."""
    if url.startswith(("postgresql", "postgres")) and "connect_timeout" not in url:
        url += ("&" if "?" in url else "?") + f"connect_timeout={CONNECT_TIMEOUT_S}"
    return make_engine(url)


@st.cache_data(ttl=600, max_entries=512, show_spinner=False)
def _cached(
    url: str, name: str, tick: int, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]
) -> Any:
    """Run ``data.<name>`` once per key for every session watching the same thing."""
    del tick  # part of the cache key only
    with engine_for(url).connect() as conn:
        return getattr(data, name)(conn, *args, **dict(kwargs))


def forget_cached_queries() -> None:
    """After a write (a correction): every cached query answers afresh."""
    _cached.clear()


def fetch(ctx: Context, query: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``query(conn, *args, **kwargs)`` for a function of ``dashboards.data``, cached; a database failure
    becomes an error box and stops this page (or fragment) instead of a traceback.

    A query over a time window is cached under that window, whose end ``current_filters`` rounds to the
    range's refresh step; any other query is cached for one refresh interval."""
    if getattr(data, query.__name__, None) is not query:
        raise ValueError(f"{query.__name__} is not a dashboards.data query")
    timed = any(isinstance(a, datetime | data.Filters | data.Window) for a in (*args, *kwargs.values()))
    tick = 0 if timed else int(datetime.now(UTC).timestamp()) // ctx.refresh_seconds
    try:
        return _cached(ctx.url, query.__name__, tick, args, tuple(sorted(kwargs.items())))
    except SQLAlchemyError as exc:
        st.error(f"Database query failed ({exc.__class__.__name__}). Retrying on the next refresh.")
        st.caption(literal(_first_line(exc)))
        st.stop()


def database_problem(ctx: Context) -> str | None:
    """None when the database answers and has FinPulse's tables; otherwise what is wrong, in words."""
    try:
        with engine_for(ctx.url).connect() as conn:
            conn.execute(sa.select(1))
            missing = data.missing_tables(conn)
    except (SQLAlchemyError, OSError, ValueError) as exc:
        return f"cannot reach the database: {exc.__class__.__name__}: {_first_line(exc)}"
    if missing:
        return "finds no FinPulse tables in the database yet (missing: " + ", ".join(missing) + ")"
    ensure_feedback_table(ctx.url)
    return None


@st.cache_resource(show_spinner=False)
def ensure_feedback_table(url: str) -> bool:
    """Create the ``feedback`` table in a database from before corrections existed (once per process)."""
    feedback.create(engine_for(url), checkfirst=True)
    return True


def _first_line(exc: BaseException) -> str:
    """The driver's own message (SQLAlchemy wraps it with the SQL and a link), first line, bounded."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0][:300] if lines else ""


def now_tick(step_seconds: int) -> datetime:
    """The current time rounded *up* to ``step_seconds``: the same for every query of one refresh, and never
    before now, so a window ending there holds the newest headline (rounded down, a headline could stay out
    of every page for up to a step: 10 minutes with a 600 s refresh, 12 on the 30-day range)."""
    now = int(datetime.now(UTC).timestamp())
    return datetime.fromtimestamp(-(-now // step_seconds) * step_seconds, UTC)


def step_seconds(ctx: Context, bucket_seconds: int) -> int:
    """How often a range's window moves: the refresh interval, or 1/60 of a bucket for long ranges (a month
    of 12-hour buckets need not be re-aggregated every 15 s)."""
    return max(ctx.refresh_seconds, bucket_seconds // 60)


def live_every(ctx: Context) -> timedelta | None:
    """run_every for live fragments: the refresh interval, or None when the analyst paused live updates."""
    return timedelta(seconds=ctx.refresh_seconds) if st.session_state.get("live", True) else None


def sidebar(ctx: Context) -> None:
    """Filters shared by all pages (rendered by app.py so they survive page switches)."""
    with st.sidebar:
        st.selectbox("Time range", list(data.TIME_RANGES), index=2, key="range")
        st.multiselect("Topics", TOPICS, key="topics", placeholder="All topics")
        sources = fetch(ctx, data.list_sources)
        st.multiselect("Sources", sources, key="sources", placeholder="All sources")
        if watchlist(ctx).names:
            st.toggle("Watchlist only", key="watchlist_only",
                      help="Only headlines naming a company of FINPULSE_ENTITIES_WATCHLIST.")  # fmt: skip
        st.checkbox(
            "Include repeated stories",
            key="include_duplicates",
            help="Items flagged as repeats of a story already seen are left out by default.",
        )
        if st.session_state.get("as_of"):
            st.caption(f"Showing the data up to {st.session_state['as_of']:%Y-%m-%d %H:%M} UTC.")
            st.button("Back to now", key="back_to_now", on_click=jump_to, args=(None,))
        st.toggle(
            "Live updates",
            value=True,
            key="live",
            help=f"Refresh the panels every {ctx.refresh_seconds} s without reloading the page.",
        )


def current_filters(ctx: Context) -> tuple[data.Window, data.Filters]:
    """The sidebar's choices as a window ending now (or at the time jumped to, see ``jump_to``) and
    data.Filters."""
    label = st.session_state.get("range", "Last 24 hours")
    end = st.session_state.get("as_of") or now_tick(step_seconds(ctx, data.TIME_RANGES[label][1]))
    window = data.window_for(label, end)
    filters = data.Filters(
        start=window.start,
        end=window.end,
        topics=tuple(st.session_state.get("topics", ())),
        sources=tuple(st.session_state.get("sources", ())),
        include_duplicates=bool(st.session_state.get("include_duplicates", False)),
        companies=tuple(sorted(watchlist(ctx).keys)) if st.session_state.get("watchlist_only") else (),
    )
    return window, filters


def jump_to(when: datetime | None) -> None:
    """Let every page's window end at ``when`` (the latest data of a replayed history or a quiet weekend)
    instead of now; None goes back to now."""
    st.session_state["as_of"] = when


def offer_latest(ctx: Context, filters: data.Filters, window: data.Window) -> bool:
    """When the window is empty but older data exists: say so, with a button that moves the window to end at
    the latest headline. True when it offered."""
    latest = fetch(ctx, data.latest_time, filters)
    if latest is None or latest >= filters.start:
        return False
    end = datetime.fromtimestamp(
        (int(latest.timestamp()) // window.bucket_seconds + 1) * window.bucket_seconds, UTC
    )
    st.info(f"No headlines in this time range. The latest data is from {latest:%Y-%m-%d %H:%M} UTC.")
    st.button("Jump to the latest data", key="jump_latest", type="primary", on_click=jump_to, args=(end,))
    return True


def ticker_param(value: object) -> str:
    """A ``?ticker=`` value from the URL, kept only if it is a ticker symbol (anyone can craft the link: text
    such as ``[login](https://evil)`` must never reach a label or a Markdown element)."""
    symbol = str(value or "").strip().lstrip("$").upper()
    return symbol if TICKER_RE.fullmatch(symbol) else ""


def company_param(ctx: Context, value: object) -> str:
    """A ``?company=`` value from the URL, kept only when it is an entity key with stored headlines (the link
    can be crafted: anything else is dropped before it reaches a label)."""
    key = data.entity_key(str(value or ""))[:64]
    if not key:
        return ""
    found = fetch(ctx, data.find_companies, key)
    return key if key in set(found["key"]) else ""


@st.cache_data(ttl=60, show_spinner=False)
def _watchlist(path: str | None) -> Watchlist:
    return read_watchlist(path)


def watchlist(ctx: Context) -> Watchlist:
    """The companies of ``FINPULSE_ENTITIES_WATCHLIST`` (re-read every minute; empty when none is set)."""
    return _watchlist(ctx.settings.entities.watchlist)


def literal(text: object) -> str:
    """Untrusted text made safe for Markdown-rendering elements (st.table cells, captions): every ASCII
    punctuation character is backslash-escaped, so no link, image, HTML, LaTeX or directive survives."""
    return "".join(_MD_SPECIAL.get(ch, ch) for ch in str(text)).replace("\n", " ")


def literal_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A copy of ``frame`` whose text columns are ``literal``-escaped (for st.table)."""
    out = frame.copy()
    for col in columns:
        out[col] = out[col].map(
            lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else literal(v)
        )
    return out


def percent(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{100 * value:.1f}%"


def duration(seconds: int) -> str:
    """600 -> "10 min", 10800 -> "3 h"."""
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds // 60} min"


def empty_note(what: str) -> None:
    st.info(f"No {what} in this time range yet. Widen the range or check that the worker is running.")
