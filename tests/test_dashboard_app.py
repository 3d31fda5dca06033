"""Every dashboard page through Streamlit's AppTest (headless script runs) against seeded, empty, blank and
unreachable databases, plus the ``finpulse dashboard`` command line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest
from test_dashboard_data import REAL_SHAPED_CARD

from dashboards import cli, seed, ui
from monitor.cli import build_parser
from monitor.settings import Settings
from monitor.store import init_db, make_engine

APP = Path(cli.APP)
PAGES = ("overview", "headlines", "tickers", "alerts", "system")


@pytest.fixture(scope="module")
def seeded_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """2,000 synthetic items (older than 5 minutes), alerts, heartbeats, and the known/hostile headlines."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'seeded.db'}"
    engine = make_engine(url)
    now = datetime.now(UTC)
    seed.seed_demo(engine, 2_000, now - timedelta(minutes=5), span=timedelta(days=7))
    seed.seed_known(engine, now)
    engine.dispose()
    return url


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    card = REAL_SHAPED_CARD | {"model": "finpulse-test-7"}
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    return tmp_path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> Iterator[pytest.MonkeyPatch]:
    """Environment for one app run; Streamlit's process-wide caches start empty."""
    monkeypatch.setenv("FINPULSE_MODEL_PATH", str(model_dir))
    monkeypatch.setenv("FINPULSE_DASHBOARD_REFRESH_SECONDS", "5")
    st.cache_data.clear()
    st.cache_resource.clear()
    yield monkeypatch
    st.cache_data.clear()
    st.cache_resource.clear()


def _app(landing: str) -> None:
    """AppTest script: the dashboard's entrypoint with ``landing`` as the page the URL selects. (AppTest runs
    only the page script on reruns and page switches, so each page test starts a fresh app on its page.)"""
    from dashboards import app

    app.main(landing)


def open_page(page: str, url: str, env: pytest.MonkeyPatch, **query: str) -> AppTest:
    env.setenv("FINPULSE_DATABASE_URL", url)
    at = AppTest.from_function(_app, args=(page,), default_timeout=90)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown_text(at: AppTest) -> str:
    """Everything the page rendered as Markdown (tables' cells included)."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [e.value for e in at.info] + [e.value for e in at.warning]
    for table in at.table:
        parts += [str(v) for v in table.value.to_numpy().ravel()]
    return "\n".join(parts)


def test_overview_shows_kpis_charts_and_escaped_headlines(seeded_url: str, env: pytest.MonkeyPatch) -> None:
    at = open_page("overview", seeded_url, env)
    assert at.title[0].value == "Market overview"
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics) == {"Items in window", "Negative share", "Active alerts", "Alerts in range"}
    assert int(metrics["Items in window"].replace(",", "")) > 0
    assert metrics["Active alerts"] == "3"
    assert len(at.get("plotly_chart")) == 4
    titles = at.table[0].value["title"].tolist()
    assert ui.literal(seed.KNOWN_HEADLINE) in titles
    assert ui.literal(seed.HOSTILE_HEADLINE) in titles  # escaped: shown as text, never as HTML/Markdown
    assert "<script>" not in markdown_text(at)


def test_overview_filters_narrow_the_view(seeded_url: str, env: pytest.MonkeyPatch) -> None:
    at = open_page("overview", seeded_url, env)
    before = int(at.metric[0].value.replace(",", ""))
    # The sidebar is drawn by the entrypoint, which AppTest skips on reruns: set the filters through
    # their widget keys (the state a click sets) and rerun the page.
    at.session_state["topics"] = ["Legal | Regulation"]
    at.session_state["range"] = "Last hour"
    at.run()
    assert not at.exception
    after = int(at.metric[0].value.replace(",", ""))
    assert 0 < after < before
    assert set(at.table[0].value["topic"]) == {ui.literal("Legal | Regulation")}


def test_headlines_table_search_and_details(seeded_url: str, env: pytest.MonkeyPatch) -> None:
    at = open_page("headlines", seeded_url, env)
    assert at.title[0].value == "Headlines"
    assert len(at.dataframe[0].value) == 50  # one page, newest first
    assert at.dataframe[0].value["title"].iloc[0] == seed.KNOWN_HEADLINE  # the newest item
    at.text_input(key="search").input("umbrella corp").run()
    assert at.dataframe[0].value["title"].tolist() == [seed.KNOWN_HEADLINE]


def test_headline_details_show_untrusted_text_literally(seeded_url: str, env: pytest.MonkeyPatch) -> None:
    engine = make_engine(seeded_url)
    hostile = seed.seed_known(engine, datetime.now(UTC))[1]  # same ids: the existing rows are kept
    at = open_page("headlines", seeded_url, env, item=hostile.id)
    assert at.subheader[0].value == "Details"
    assert seed.HOSTILE_HEADLINE in [t.value for t in at.text]  # st.text: plain text, never parsed
    fields = dict(at.table[0].value.to_numpy().tolist())
    assert fields["tickers"] == "ACME" and fields["source"] == ui.literal("Evil Wire <b>")
    assert not at.get("link_button")  # its javascript: URL was dropped
    assert "<script>" not in markdown_text(at)


def test_tickers_page_ranks_movers_and_draws_a_trend(seeded_url: str, env: pytest.MonkeyPatch) -> None:
    at = open_page("tickers", seeded_url, env)
    movers = at.dataframe[0].value
    assert set(movers["ticker"]) <= set(seed.TICKERS) and len(movers) > 0
    assert movers["share_change"].is_monotonic_decreasing
    assert at.selectbox(key="ticker").value == movers["ticker"].iloc[0]
    assert len(at.get("plotly_chart")) == 1
    deep = open_page("tickers", seeded_url, env, ticker="UMBR")  # below the movers' minimum volume
    assert deep.selectbox(key="ticker").value == "UMBR" and len(deep.get("plotly_chart")) == 1


@pytest.mark.parametrize("page", ["tickers", "headlines"])
def test_a_crafted_ticker_link_is_not_rendered(page: str, seeded_url: str, env: pytest.MonkeyPatch) -> None:
    crafted = "X](https://evil.example/login) **urgent** <img src=x onerror=alert(1)>"
    at = open_page(page, seeded_url, env, ticker=crafted)
    rendered = markdown_text(at) + " ".join(str(getattr(e, "label", "")) for e in at.main)
    if page == "tickers":
        rendered += " ".join(str(o) for o in at.selectbox(key="ticker").options)
    else:
        rendered += at.text_input(key="ticker_filter").value
    assert "evil.example" not in rendered.lower() and "onerror" not in rendered.lower()


def test_alerts_page_lists_states_and_headlines_behind(seeded_url: str, env: pytest.MonkeyPatch) -> None:
    at = open_page("alerts", seeded_url, env)
    assert {m.label: m.value for m in at.metric} == {
        "Pending": "1",
        "Sent": "1",
        "Failed": "1",
        "Rejected": "0",
    }
    table = at.dataframe[0].value
    assert table["state"].tolist() == ["pending", "sent", "failed"]
    assert {"share", "baseline_share", "z"} <= set(table.columns)  # numbers from the details JSON
    assert len(at.table[0].value) > 0  # headlines behind the newest alert
    failed_id = int(table.loc[table["state"] == "failed", "id"].iloc[0])
    at.selectbox(key="alert_pick").select(failed_id).run()
    assert "HTTP 500" in at.warning[0].value
    assert set(at.table[0].value["title"].str.slice(0, 3)) == {"XOM"}  # ticker alert: XOM stories only


def test_system_page_shows_model_card_workers_and_database(seeded_url: str, env: pytest.MonkeyPatch) -> None:
    at = open_page("system", seeded_url, env)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Dead-lettered"] == "1" and metrics["Headlines stored"] == "2,003"
    assert metrics["Size"].endswith("MB")
    card = next(d.value for d in at.dataframe if "macro_f1" in d.value.columns)
    assert card.loc["fpb", "macro_f1"] == 0.84 and card.loc["tweets-topic", "macro_f1"] == 0.81
    assert ui.literal("finpulse-test-7") in markdown_text(at)
    env.setenv("FINPULSE_MODEL_PATH", str(Path(seeded_url.removeprefix("sqlite:///")).parent / "no-model"))
    bare = open_page("system", seeded_url, env)
    assert any("not available" in i.value for i in bare.info)


@pytest.mark.parametrize("page", PAGES)
def test_empty_database_gives_calm_pages(page: str, tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    init_db(make_engine(url))
    at = open_page(page, url, env)
    assert at.title and not at.error
    if page != "system":
        assert any("No " in i.value for i in at.info), [i.value for i in at.info]


def test_blank_database_says_it_is_not_initialised(tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    at = open_page("overview", f"sqlite:///{tmp_path / 'blank.db'}", env)
    assert at.error[0].value.startswith("The dashboard finds no FinPulse tables in the database yet")
    assert not at.get("plotly_chart")


def test_query_failing_mid_session_shows_an_error_in_the_panel(
    tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'vanishing.db'}"
    engine = make_engine(url)
    seed.seed_demo(engine, 200, span=timedelta(days=1))
    at = open_page("headlines", url, env)
    assert len(at.dataframe[0].value) == 50
    with engine.begin() as conn:  # e.g. a migration gone wrong while analysts watch
        conn.execute(sa.text("DROP VIEW tagged_news"))
        conn.execute(sa.text("ALTER TABLE news_tags DROP COLUMN sentiment_confidence"))
    st.cache_data.clear()
    at.run()
    assert not at.exception
    assert "Database query failed (OperationalError)" in at.error[0].value
    assert at.title[0].value == "Headlines"  # the rest of the page still stands


@pytest.mark.parametrize("page", ["overview", "system"])
def test_unreachable_database_explains_and_hides_the_password(page: str, env: pytest.MonkeyPatch) -> None:
    started = time.perf_counter()
    at = open_page(page, "postgresql://finpulse:s3cret@127.0.0.1:1/finpulse", env)
    assert time.perf_counter() - started < 30
    assert at.error[0].value.startswith("The dashboard cannot reach the database")
    text = markdown_text(at)
    assert "s3cret" not in text and "postgresql database finpulse" in text
    assert "127.0.0.1" not in text and "finpulse:" not in text  # no host, no user: the dashboard has no login


def test_dashboard_command_runs_streamlit_headless_on_the_configured_database() -> None:
    args = build_parser().parse_args(["--database-url", "sqlite:////tmp/x.db", "dashboard", "--port", "9123"])
    settings = Settings().with_overrides(database={"url": args.database_url})
    settings = settings.with_overrides(dashboard={"port": args.port, "host": args.host})
    command = cli.streamlit_command(settings)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(APP)
    flags = dict(zip(command[5::2], command[6::2], strict=True))
    assert flags["--server.port"] == "9123" and flags["--server.headless"] == "true"
    assert flags["--browser.gatherUsageStats"] == "false"
    env = cli.streamlit_env(settings, base={"PATH": "/bin"})
    assert env["FINPULSE_DATABASE_URL"] == "sqlite:////tmp/x.db" and env["PATH"] == "/bin"


@pytest.mark.postgres
@pytest.mark.parametrize("page", PAGES)
def test_every_page_on_postgresql(page: str, pg_url: str, env: pytest.MonkeyPatch) -> None:
    engine = make_engine(pg_url)
    seed.seed_demo(engine, 500, datetime.now(UTC) - timedelta(minutes=5), span=timedelta(days=2))
    seed.seed_known(engine, datetime.now(UTC))
    engine.dispose()
    at = open_page(page, pg_url, env)
    assert at.title and not at.error
    if page == "overview":
        assert len(at.get("plotly_chart")) == 4
        assert ui.literal(seed.KNOWN_HEADLINE) in at.table[0].value["title"].tolist()


@pytest.mark.slow
def test_pages_stay_responsive_on_200k_rows(tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'big.db'}"
    seed.seed_demo(make_engine(url), 200_000)
    for page in PAGES:
        for attempt in ("cold", "cached"):
            started = time.perf_counter()
            at = open_page(page, url, env)
            print(f"\n{page:>10} ({attempt}, Last 24 hours): {time.perf_counter() - started:.2f}s")
    at = open_page("overview", url, env)
    at.session_state["range"] = "Last 30 days"
    started = time.perf_counter()
    at.run()
    print(f"\n  overview (Last 30 days, cold): {time.perf_counter() - started:.2f}s")
    assert not at.exception and len(at.get("plotly_chart")) == 4
