"""The analyst's pages through Streamlit's AppTest: the Company page (search, trend with volume, topic
comparison, headlines, alerts), the Overview's jump to the latest data, the watchlist filter; the data
functions behind them on SQLite; watchlist routing of alerts to a chosen webhook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from test_dashboard_app import env, markdown_text, model_dir, open_page  # noqa: F401

from dashboards import data, seed, ui
from monitor.alerts.notifiers import parse_webhooks
from monitor.alerts.queries import AlertKey
from monitor.errors import ConfigError
from monitor.settings import AlertSettings
from monitor.store import alerts, make_engine
from monitor.watchlist import read_watchlist


@pytest.fixture(scope="module")
def company_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A day of synthetic news (tickers of seed.TICKERS), the known/hostile headlines and an alert on UMBR."""
    url = f"sqlite:///{tmp_path_factory.mktemp('company') / 'c.db'}"
    engine = make_engine(url)
    now = datetime.now(UTC)
    seed.seed_demo(engine, 600, now - timedelta(minutes=5), span=timedelta(days=1))
    seed.seed_known(engine, now)
    with engine.begin() as conn:
        conn.execute(alerts.insert(), [seed.demo_alert(now, "ticker", "UMBR", "sent", 2)])
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def old_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """News that ended ten days ago (a replayed history)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('old') / 'o.db'}"
    engine = make_engine(url)
    seed.seed_demo(engine, 300, datetime.now(UTC) - timedelta(days=10), span=timedelta(days=1))
    engine.dispose()
    return url


def watchlist_file(tmp_path: Path) -> Path:
    path = tmp_path / "watchlist.csv"
    path.write_text("ticker,name,aliases\nUMBR,Umbrella Corporation,Umbrella Corp\nACME,Acme Inc,\n")
    return path


def test_company_page_shows_trend_comparison_headlines_and_alerts(
    company_url: str,
    env: pytest.MonkeyPatch,
) -> None:
    at = open_page("company", company_url, env, company="UMBR")
    assert at.subheader[0].value == "UMBR"
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # trend with volume, and against its topic
    text = markdown_text(at)
    assert seed.KNOWN_HEADLINE in text.replace("\\", "")  # its headlines (escaped text)
    assert "Alerts" in text and "No alerts on this company" not in text
    assert at.table[-1].value["severity"].tolist()  # the alert on UMBR


def test_company_page_search_by_name_and_crafted_links(
    company_url: str,
    env: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    env.setenv("FINPULSE_ENTITIES_WATCHLIST", str(watchlist_file(tmp_path)))
    at = open_page("company", company_url, env)
    at.text_input(key="company_search").input("umbrella").run(timeout=300)
    links = at.get("page_link")
    assert any("UMBR Umbrella Corporation" in str(link.proto.label) for link in links)
    crafted = open_page("company", company_url, env, company="[x](javascript:alert(1))")
    assert not crafted.subheader and "javascript" not in markdown_text(crafted)


def test_overview_offers_to_jump_to_the_latest_data(old_url: str, env: pytest.MonkeyPatch) -> None:
    at = open_page("overview", old_url, env)
    assert not at.get("plotly_chart")
    assert any("The latest data is from" in i.value for i in at.info)
    at.button(key="jump_latest").click().run(timeout=300)
    assert not at.exception
    assert len(at.get("plotly_chart")) == 4 and int(at.metric[0].value.replace(",", "")) > 0
    assert at.session_state["as_of"] < datetime.now(UTC) - timedelta(days=9)


def test_watchlist_only_narrows_the_overview(
    company_url: str,
    env: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    env.setenv("FINPULSE_ENTITIES_WATCHLIST", str(watchlist_file(tmp_path)))
    at = open_page("overview", company_url, env)
    everything = int(at.metric[0].value.replace(",", ""))
    at.session_state["watchlist_only"] = True
    at.run(timeout=300)
    watched = int(at.metric[0].value.replace(",", ""))
    assert 0 < watched < everything


def test_company_data_functions(company_url: str) -> None:
    engine = make_engine(company_url)
    now = datetime.now(UTC)
    window = data.window_for("Last 24 hours", now)
    with engine.connect() as conn:
        found = data.find_companies(conn, "umbr", ())
        by_name = data.find_companies(conn, "corporation", (("UMBR", "Umbrella Corporation"),))
        topic = data.company_topic(conn, "UMBR", window)
        trend = data.topic_trend(conn, topic, window)
        fired = data.company_alerts(conn, "UMBR", now - timedelta(days=1), now + timedelta(hours=1))
    assert found["key"].tolist() == ["UMBR"] and by_name["name"].tolist() == ["Umbrella Corporation"]
    assert topic is not None and trend["items"].sum() > 0 and set(trend["negative_share"].between(0, 1))
    assert fired["key_value"].tolist() == ["UMBR"]
    assert data.entity_key(" $umbr ") == "UMBR" and data.entity_key("~Zyqo Robotics") == "~Zyqo Robotics"
    engine.dispose()


def test_watchlist_routes_its_companies_alerts_to_the_chosen_webhook(tmp_path: Path) -> None:
    from test_alerts_notifiers import alert

    watch = read_watchlist(str(watchlist_file(tmp_path)))
    assert watch.keys == {"UMBR", "ACME"} and dict(watch.names)["UMBR"] == "Umbrella Corporation"
    raw = '[{"url": "https://hooks.example/w", "watchlist": true}, {"url": "https://hooks.example/all"}]'
    hooks = parse_webhooks(AlertSettings(webhooks=SecretStr(raw)), watch.keys)
    ticker = alert("ticker", "UMBR")
    other = alert("ticker", "XOM")
    assert hooks[0].accepts(ticker) and not hooks[0].accepts(other) and hooks[1].accepts(other)
    assert not hooks[0].accepts(alert("topic", "Markets"))
    assert AlertKey("ticker", "UMBR") == ticker.key
    with pytest.raises(ConfigError, match="FINPULSE_ENTITIES_WATCHLIST"):
        parse_webhooks(AlertSettings(webhooks=SecretStr(raw)))


def test_highlighted_explanation_is_escaped_text_with_marks_only_around_top_words() -> None:
    from dashboards.explain_view import highlighted_html
    from monitor.explain import HeadExplanation, WordWeight

    text = '<script>x()</script> plunge <img src=x onerror=y> "now"'
    words = tuple(WordWeight(m.group(), m.start(), m.end(), w)
                  for m, w in zip(__import__("re").finditer(r"\S+", text), [0.5, 0.9, 0.1, 0.0, -0.2, 0.3], strict=True))  # fmt: skip
    out = highlighted_html(HeadExplanation("sentiment", "negative", 0.9, words), text, k=3)
    assert out.count("<mark") == 3 and "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;x()&lt;/script&gt;" in out and "&quot;now&quot;" in out
    assert '">plunge</mark>' in out and "onerror=y" in out  # the attribute text is shown, never an attribute


def test_correction_form_refuses_without_a_name_then_records_beside_the_tags(
    tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    """The Headlines detail's form: a correction without a name is refused with the reason; with a name it is
    saved, shown as "corrected" in the detail and the grid, the name stays filled in, the tags stay as they
    were; a correction that names the model's own labels is refused."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    engine = make_engine(url)
    known = seed.seed_known(engine, datetime.now(UTC))[0]  # Legal | Regulation, negative
    at = open_page("headlines", url, env, item=known.id)
    at.radio(key=f"fix_sentiment-{known.id}").set_value("positive")
    at.selectbox(key=f"fix_topic-{known.id}").set_value("Earnings")
    at.button[0].click().run()
    assert [w.value for w in at.warning] == [ui.literal("a correction needs the analyst's name")]
    at.text_input(key="analyst_input").input("  Ana Analyst ")  # inside the form: sent with the submit
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Correction saved" in s.value for s in at.success), [w.value for w in at.warning]
    fields = dict(at.table[0].value.to_numpy().tolist())
    assert fields["corrected"] == ui.literal("sentiment → positive, topic → Earnings")
    assert fields["sentiment"].startswith("negative") and fields["topic"].startswith(
        ui.literal("Legal | Regulation")
    )
    grid = at.dataframe[0].value.set_index("title")
    assert grid.loc[known.title, "corrected"] == "sentiment → positive, topic → Earnings"
    assert at.text_input(key="analyst_input").value.strip() == "Ana Analyst"  # still filled in
    at.radio(key=f"fix_sentiment-{known.id}").set_value("negative")
    at.selectbox(key=f"fix_topic-{known.id}").set_value("Legal | Regulation")
    at.button[0].click().run()
    assert [w.value for w in at.warning] == [
        ui.literal("the correction names the labels the model already gave")
    ]
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT sentiment, topic FROM news_tags WHERE item_id = :i"), {"i": known.id}
        )
        rows = conn.execute(sa.text("SELECT analyst, new_sentiment, new_topic FROM feedback")).all()
    assert stored.one() == ("negative", "Legal | Regulation")
    assert [tuple(r) for r in rows] == [("Ana Analyst", "positive", "Earnings")]
    engine.dispose()
