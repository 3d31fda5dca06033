from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from monitor.schema import NewsItem, Tags
from monitor.store import (
    epoch_seconds,
    find_duplicates,
    init_db,
    make_engine,
    news_items,
    news_tickers,
    tagged_news,
    write_batch,
)

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
TAGS = Tags("Earnings", 0.9, "negative", -0.7, 0.8, "test-v1")
WINDOW = timedelta(hours=24)


def item(title: str, source: str = "a", minutes: float = 0, **kw: object) -> NewsItem:
    return NewsItem(title=title, source=source, published_at=T0 + timedelta(minutes=minutes), **kw)


def test_find_duplicates_is_order_independent_and_windowed() -> None:
    a, b, c = item("Acme plunges", "a"), item("ACME plunges!", "b", 10), item("acme plunges", "c", 60 * 30)
    assert find_duplicates([b, a, c], {}, WINDOW) == {b.id: a.id}
    assert find_duplicates([b], {}, WINDOW) == {}


def test_write_batch_is_idempotent_and_flags_repeats(db_url: str) -> None:
    engine = make_engine(db_url)
    init_db(engine)
    init_db(engine)  # idempotent
    a, b = item("Acme plunges", "a", tickers=["ACME"]), item("Acme plunges.", "b", 5)
    c = item("Other news $XYZ", "a", 1)
    with engine.begin() as conn:
        r1 = write_batch(conn, [(a, TAGS), (b, TAGS)], WINDOW)
    with engine.begin() as conn:
        r2 = write_batch(conn, [(b, TAGS), (a, TAGS), (c, TAGS)], WINDOW)  # redelivery + one new
    assert (r1.inserted, r1.duplicates) == (2, 1)
    assert (r2.inserted, r2.duplicates) == (1, 0)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tagged_news).order_by(tagged_news.c.published_at)).mappings().all()
        tickers = sorted(conn.execute(sa.select(news_tickers.c.ticker)).scalars())
        ep = conn.execute(
            sa.select(epoch_seconds(news_items.c.published_at, engine.dialect.name)).where(
                news_items.c.id == a.id
            )
        ).scalar_one()
    assert [r["id"] for r in rows] == [a.id, c.id, b.id]
    assert [r["is_duplicate"] for r in rows] == [False, False, True]
    assert rows[2]["duplicate_of"] == a.id
    assert rows[0]["published_at"] == T0 and rows[0]["published_at"].tzinfo is not None
    assert rows[0]["topic"] == "Earnings" and rows[0]["sentiment_score"] == -0.7
    assert tickers == ["ACME", "XYZ"]
    assert ep == int(T0.timestamp())


def test_repeat_in_a_later_batch_points_at_the_stored_original(db_url: str) -> None:
    engine = make_engine(db_url)
    init_db(engine)
    a, b = item("Fed holds rates", "a"), item("Fed holds rates", "b", 120)
    with engine.begin() as conn:
        write_batch(conn, [(a, TAGS)], WINDOW)
    with engine.begin() as conn:
        assert write_batch(conn, [(b, TAGS)], WINDOW).duplicates == 1
    with engine.connect() as conn:
        dup_of = conn.execute(
            sa.select(news_items.c.duplicate_of).where(news_items.c.id == b.id)
        ).scalar_one()
    assert dup_of == a.id
