"""Everything the dashboard reads, as pure functions of a connection and parameters returning DataFrames.

Rules: bound SQL parameters only (SQLAlchemy Core expressions), aggregation in SQL (the pages never pull a
whole table into pandas; row-level queries are paginated or limited), and the same code on SQLite and
PostgreSQL. Nothing here imports Streamlit, so it is tested on its own. Pages call these by name through
``dashboards.ui.fetch``, which caches them.
"""

from dashboards.data.alerts import alert_headlines, alert_state_counts, fired_alerts, with_alert_numbers
from dashboards.data.base import MAX_ROWS, TIME_RANGES, Filters, Window, entity_key, safe_url, window_for
from dashboards.data.company import company_alerts, company_topic, find_companies, topic_trend
from dashboards.data.feedback import item_corrections
from dashboards.data.headlines import count_headlines, headline_detail, headlines
from dashboards.data.news import (
    headline_kpis,
    latest_time,
    list_sources,
    negative_share,
    sentiment_volume,
    ticker_movers,
    ticker_trend,
)
from dashboards.data.system import (
    REQUIRED_TABLES,
    database_size_bytes,
    missing_tables,
    table_stats,
    worker_heartbeats_frame,
)

__all__ = [
    "MAX_ROWS",
    "REQUIRED_TABLES",
    "TIME_RANGES",
    "Filters",
    "Window",
    "alert_headlines",
    "alert_state_counts",
    "company_alerts",
    "company_topic",
    "count_headlines",
    "database_size_bytes",
    "entity_key",
    "find_companies",
    "fired_alerts",
    "headline_detail",
    "headline_kpis",
    "headlines",
    "item_corrections",
    "latest_time",
    "list_sources",
    "missing_tables",
    "negative_share",
    "safe_url",
    "sentiment_volume",
    "table_stats",
    "ticker_movers",
    "ticker_trend",
    "topic_trend",
    "window_for",
    "with_alert_numbers",
    "worker_heartbeats_frame",
]
