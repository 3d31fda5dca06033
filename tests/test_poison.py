"""Poison pills, one class at a time, without services: decoding is total and bounded, the worker tells an
outage from bad input, repeated ids follow one rule (first writer wins), and titles without words keep their
own story key. The same messages go through the real broker and PostgreSQL in ``test_chaos.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from monitor.batch import classify_safely, tagged_message
from monitor.faults import ModelOutage, bisect_failures, is_transient
from monitor.schema import NewsItem, ParseError, Tags, parse_news, story_key
from monitor.store import (
    find_duplicates,
    init_db,
    make_engine,
    news_items,
    news_tags,
    news_tickers,
    write_batch,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TAGS = Tags("Earnings", 0.9, "negative", -0.7, 0.8, "v1")


def raw(**kw: object) -> bytes:
    base: dict[str, object] = {
        "title": "Acme beats estimates",
        "source": "wire",
        "published_at": "2026-06-01T10:00:00Z",
    }
    base.update(kw)
    return json.dumps(base).encode()


# Every message here once escaped parse_news as an exception, or passed it and broke a later stage.
HOSTILE = {
    "deep nesting": (b"[" * 100_000, "nested too deeply"),
    "deep object": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
    "year 1 with +01:00": (raw(published_at="0001-01-01T00:00:00+01:00"), "published_at"),
    "year 9999 with -05:00": (raw(published_at="9999-12-31T23:59:59-05:00"), "published_at"),
    "year 1 Z": (raw(published_at="0001-01-01T00:00:00Z"), "published_at"),
    "year 9999 Z": (raw(published_at="9999-12-31T23:59:59Z"), "published_at"),
    "next decade": (raw(published_at="2036-01-01T00:00:00Z"), "published_at out of range"),
    "1969": (raw(published_at="1969-12-31T23:59:59Z"), "published_at"),
    "NUL in title": (raw(title="Acme\u0000 beats"), "NUL"),
    "NUL in source": (raw(source="wi\u0000re"), "NUL"),
    "NUL in body": (raw(body="x\u0000y"), "NUL"),
    "lone surrogate": (
        b'{"title": "Acme \\ud800 beats", "source": "s", "published_at": "2026-06-01T10:00:00Z"}',
        "invalid field title",
    ),
    "140k tickers in 0.9 MB": (raw(tickers=",".join(f"{i:X}" for i in range(140_000))), "too many tickers"),
    "1000 tickers": (raw(tickers=[f"T{i}" for i in range(1000)]), "too many tickers"),
    "ticker string": (raw(tickers=",".join(f"T{i}" for i in range(500))), "too many tickers"),
    "cashtag flood": (
        raw(title=" ".join(f"${chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(40))),
        "too many tickers",
    ),
    "zero-width title": (raw(title="\u200b\u200c\u200d\ufeff"), "no visible characters"),
    "huge number": (raw(published_at=10**400), "invalid field published_at"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_message_becomes_a_parse_error_with_its_reason(name: str) -> None:
    value, reason = HOSTILE[name]
    out = parse_news(value, now=NOW)
    assert isinstance(out, ParseError), out
    assert reason in out.reason, out.reason


def test_32_tickers_pass_and_the_published_range_is_configurable() -> None:
    from monitor.schema import Limits

    ok = parse_news(raw(tickers=[f"T{i}" for i in range(32)]), now=NOW)
    assert isinstance(ok, NewsItem) and len(ok.all_tickers()) == 32
    old = raw(published_at="1999-01-01T00:00:00Z")
    assert isinstance(parse_news(old, now=NOW), NewsItem)
    strict = Limits(earliest=datetime(2020, 1, 1, tzinfo=UTC), max_future=timedelta(0))
    assert "published_at out of range" in parse_news(old, strict, now=NOW).reason  # type: ignore[union-attr]
    soon = raw(published_at=(NOW + timedelta(hours=1)).isoformat())
    assert isinstance(parse_news(soon, now=NOW), NewsItem)
    assert isinstance(parse_news(soon, strict, now=NOW), ParseError)


def test_titles_without_words_keep_distinct_story_keys() -> None:
    titles = ["🚀🚀🚀", "📉📉", "https://a.example/1", "https://b.example/2", "$$$ !!!"]
    keys = {story_key(t) for t in titles}
    assert len(keys) == len(titles)
    items = [
        NewsItem(title=t, source="s", published_at=NOW + timedelta(minutes=i)) for i, t in enumerate(titles)
    ]
    assert find_duplicates(items, {}, timedelta(hours=24)) == {}
    assert story_key("🚀🚀🚀") == story_key(" 🚀🚀🚀 ")  # the same text still repeats itself


class Broken:
    """A model that fails the way a GPU out of memory or a corrupt weight file does: on everything."""

    version = "broken"

    def predict(self, texts: list[str]) -> list[Tags]:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


class PoisonOnly:
    version = "picky"

    def predict(self, texts: list[str]) -> list[Tags]:
        if any("poison" in t for t in texts):
            raise ValueError("cannot tokenize")
        return [TAGS for _ in texts]


def items(*titles: str) -> list[NewsItem]:
    return [NewsItem(title=t, source="s", published_at=NOW) for t in titles]


def test_a_model_failing_on_everything_is_an_outage_not_bad_input() -> None:
    with pytest.raises(ModelOutage, match="known-good"):
        classify_safely(Broken(), items("a", "b", "c"))
    with pytest.raises(ModelOutage):
        classify_safely(Broken(), items("single"))  # the probe tells even a batch of one
    assert is_transient(ModelOutage("x"))


def test_one_poisonous_text_is_still_isolated_when_the_model_is_healthy() -> None:
    out = classify_safely(PoisonOnly(), items("fine", "poison", "fine too"))
    assert isinstance(out[1], ParseError) and isinstance(out[0], Tags) and isinstance(out[2], Tags)
    with pytest.raises(ModelOutage, match="all 2 items"):
        classify_safely(PoisonOnly(), items("poison a", "poison b"))


def test_database_errors_are_sorted_into_transient_and_permanent() -> None:
    class PgError(Exception):
        def __init__(self, sqlstate: str | None) -> None:
            self.sqlstate = sqlstate

    def dbapi(cls: type[sa_exc.DBAPIError], sqlstate: str | None) -> sa_exc.DBAPIError:
        return cls("INSERT ...", {}, PgError(sqlstate))

    assert not is_transient(dbapi(sa_exc.DataError, "22021"))  # NUL / bad encoding
    assert not is_transient(dbapi(sa_exc.IntegrityError, "23514"))  # check constraint
    assert not is_transient(dbapi(sa_exc.OperationalError, "54000"))  # program limit exceeded
    assert is_transient(dbapi(sa_exc.OperationalError, "57P01"))  # admin shutdown
    assert is_transient(dbapi(sa_exc.OperationalError, None))  # connection refused before any server
    assert is_transient(dbapi(sa_exc.OperationalError, "40P01"))  # deadlock
    assert not is_transient(sa_exc.StatementError("bind", "INSERT", {}, ValueError("x")))
    assert not is_transient(ValueError("anything unforeseen"))
    assert is_transient(ConnectionRefusedError())


def test_bisection_isolates_exactly_the_failing_records_in_order() -> None:
    calls: list[list[int]] = []
    given_up: list[int] = []

    def attempt(part: list[int]) -> None:
        calls.append(list(part))
        if 13 in part or 40 in part:
            raise ValueError("bad")

    bisect_failures(list(range(64)), attempt, lambda x, _e: given_up.append(x))
    assert given_up == [13, 40]
    done = [x for c in calls if 13 not in c and 40 not in c for x in c]
    assert sorted(done) == [x for x in range(64) if x not in (13, 40)] and done == sorted(done)
    assert len(calls) <= 1 + 2 * 2 * 6  # ~2 log2(n) attempts per bad record

    def outage(part: list[int]) -> None:
        raise ConnectionRefusedError()

    with pytest.raises(ConnectionRefusedError):  # transient: never split, never given up
        bisect_failures(list(range(8)), outage, lambda x, _e: given_up.append(x))
    assert given_up == [13, 40]


def test_tagged_record_is_bounded() -> None:
    item = NewsItem(
        title="t" * 1000,
        source="s" * 200,
        url="https://x/" + "u" * 1990,
        published_at=NOW,
        tickers=tuple(f"T{i}" for i in range(32)),
        body="b" * 100_000,
    )
    assert len(tagged_message(item, TAGS)) < 8_000  # no body; every field bounded at the edge


def test_same_id_different_content_first_writer_wins_everywhere(db_url: str) -> None:
    engine = make_engine(db_url)
    init_db(engine)
    first = NewsItem(id="x1", title="Acme wins contract", source="a", published_at=NOW, tickers=("ACME",))
    second = NewsItem(id="x1", title="Other story entirely", source="b", published_at=NOW, tickers=("ZZZ",))
    other_tags = Tags("Macro", 0.5, "positive", 0.9, 0.5, "v2")
    with engine.begin() as conn:  # both in one batch: the first message wins
        write_batch(conn, [(first, TAGS), (second, other_tags)], timedelta(hours=24))
    with engine.begin() as conn:  # and a later message with the same id changes nothing
        write_batch(conn, [(second, other_tags)], timedelta(hours=24))
    with engine.connect() as conn:
        title = conn.execute(sa.select(news_items.c.title)).scalar_one()
        topic = conn.execute(sa.select(news_tags.c.topic)).scalar_one()
        tickers = conn.execute(sa.select(news_tickers.c.ticker)).scalars().all()
    assert (title, topic, tickers) == ("Acme wins contract", "Earnings", ["ACME"])
