"""Linked entities in the database (SQLite and PostgreSQL): match sources round-trip through news_tickers
and the tagged_news view, and a database made before entity linking is migrated in place."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from monitor.batch import link_items, tagged_message
from monitor.emerging import EmergingNames
from monitor.entities import EntityLink, load_linker
from monitor.schema import NewsItem, Tags
from monitor.store import init_db, make_engine, metadata, news_tickers, tagged_news, write_batch

T0 = datetime(2019, 3, 11, 9, 0, tzinfo=UTC)
TAGS = Tags("Company | Product News", 0.9, "negative", -0.8, 0.9, "test")
WINDOW = timedelta(hours=24)


def item(title: str, minutes: float = 0, **kw: object) -> NewsItem:
    return NewsItem(title=title, source="wire", published_at=T0 + timedelta(minutes=minutes), **kw)


def test_match_sources_round_trip(db_url: str) -> None:
    engine = make_engine(db_url)
    init_db(engine)
    a = item("Boeing shares fall after second 737 MAX crash, $GE also lower")
    b = item("Market wrap: stocks steady", 1, tickers=["SPY"])
    c = item("No linking for this one $XYZ", 2)
    provisional = EntityLink(
        "~Zephyrion Capital Partners Holding Group", "Zephyrion Capital Partners", "provisional"
    )
    entities = {
        a.id: link_items(load_linker(), None, [a])[a.id],
        b.id: (EntityLink("SPY", "SPY", "given"), provisional),
    }
    with engine.begin() as conn:
        write_batch(conn, [(a, TAGS), (b, TAGS), (c, TAGS)], WINDOW, entities=entities)
    with engine.connect() as conn:
        rows = set(
            conn.execute(sa.select(news_tickers.c.item_id, news_tickers.c.ticker, news_tickers.c.source))
        )
        view = dict(conn.execute(sa.select(tagged_news.c.id, tagged_news.c.entities)).all())
    assert rows == {
        (a.id, "BA", "alias"), (a.id, "GE", "cashtag"),
        (b.id, "SPY", "given"), (b.id, provisional.key, "provisional"),
        (c.id, "XYZ", "cashtag"),  # not linked: cashtags as before
    }  # fmt: skip
    assert view == {a.id: "BA:alias;GE:cashtag", b.id: f"SPY:given;{provisional.key}:provisional",
                    c.id: "XYZ:cashtag"}  # fmt: skip


def test_news_tagged_message_carries_entities() -> None:
    a = item("Goldman, JPMorgan lead bank rally")
    links = link_items(load_linker(), EmergingNames(), [a])[a.id]
    msg = json.loads(tagged_message(a, TAGS, links))
    assert msg["entities"] == [{"key": "GS", "name": "Goldman Sachs", "source": "alias"},
                               {"key": "JPM", "name": "JPMorgan", "source": "alias"}]  # fmt: skip


OLD_VIEW = """CREATE VIEW tagged_news AS
SELECT i.id, i.published_at, i.source, i.title, i.url, i.lang, i.story_key,
       t.topic, t.topic_confidence, t.sentiment, t.sentiment_score, t.sentiment_confidence,
       t.model_version, i.is_duplicate, i.duplicate_of, i.ingested_at, t.tagged_at
FROM news_items i JOIN news_tags t ON t.item_id = i.id"""


def test_a_database_from_before_entity_linking_is_migrated(db_url: str) -> None:
    engine = make_engine(db_url)
    old = item("Old news $ACME")
    with engine.begin() as conn:  # the schema as FinPulse created it before news_tickers.source
        metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name != "news_tickers"])
        conn.execute(
            sa.text(
                "CREATE TABLE news_tickers (item_id VARCHAR(200) NOT NULL REFERENCES news_items(id) "
                "ON DELETE CASCADE, ticker VARCHAR(16) NOT NULL, published_at TIMESTAMP NOT NULL, "
                "PRIMARY KEY (item_id, ticker))"
            )
        )
        conn.execute(sa.text(OLD_VIEW))
        conn.execute(
            sa.text(
                "INSERT INTO news_items (id, published_at, source, title, lang, story_key, "
                "is_duplicate, ingested_at) VALUES (:i, :t, 'wire', 'Old news $ACME', 'en', 'k', "
                "false, :t)"
            ),
            {"i": old.id, "t": T0.replace(tzinfo=None)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO news_tags VALUES (:i, :t, false, 'Earnings', 0.9, 'negative', -0.5, "
                "0.9, 'v', :t)"
            ),
            {"i": old.id, "t": T0.replace(tzinfo=None)},
        )
        conn.execute(
            sa.text("INSERT INTO news_tickers VALUES (:i, 'ACME', :t)"),
            {"i": old.id, "t": T0.replace(tzinfo=None)},
        )
    init_db(engine)
    init_db(engine)  # idempotent
    new = item("Zephyrion news", 5)
    key = "~" + "Z" * 40  # longer than the old 16 characters
    with engine.begin() as conn:
        write_batch(conn, [(new, TAGS)], WINDOW, entities={new.id: (EntityLink(key, "Z", "provisional"),)})
    with engine.connect() as conn:
        view = dict(conn.execute(sa.select(tagged_news.c.id, tagged_news.c.entities)).all())
    assert view == {old.id: "ACME:cashtag", new.id: f"{key}:provisional"}
