"""Property-based fuzzing (hypothesis): no exception escapes ``parse_news`` for arbitrary bytes or arbitrary
JSON, and whatever it accepts the store takes — on SQLite and on PostgreSQL (which refuses NUL and
surrogates). Bounded example counts keep the suite fast."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from monitor.batch import RawRecord, decode_batch, tagged_message
from monitor.schema import Limits, NewsItem, ParseError, Tags, parse_news
from monitor.store import init_db, make_engine, write_batch

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TAGS = Tags("Markets", 0.5, "neutral", 0.0, 0.5, "fuzz")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

nasty_chars = st.characters() | st.sampled_from(
    ["\x00", "\ud800", "\udfff", "\u200b", "\ufeff", "🚀", "$", "|"]
)
nasty_text = st.text(nasty_chars, max_size=60)
json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | nasty_text
json_value = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(nasty_text, kids, max_size=4),
    max_leaves=12,
)
when = (
    st.datetimes(timezones=st.timezones() | st.just(UTC)).map(lambda d: d.isoformat())
    | st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-05:00",
            "2026-05-31T10:00:00Z",
            "2026-05-31T10:00:00",
            "yesterday",
            "",
        ]
    )
    | st.integers()
    | st.floats()
)
tickers = st.lists(st.text("ABCXYZ019.-$ ", min_size=0, max_size=8), max_size=40) | nasty_text | json_value
news_like = st.fixed_dictionaries(
    {"title": nasty_text | json_value, "source": nasty_text | json_value, "published_at": when},
    optional={
        "id": nasty_text | json_value,
        "body": nasty_text,
        "url": nasty_text,
        "tickers": tickers,
        "lang": nasty_text,
    },
)


def to_bytes(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode()  # a lone surrogate becomes a "\ud800" escape


@FUZZ
@given(st.binary(max_size=3000))
def test_parse_news_is_total_on_arbitrary_bytes(raw: bytes) -> None:
    assert isinstance(parse_news(raw, now=NOW), NewsItem | ParseError)


@FUZZ
@given(json_value)
def test_parse_news_is_total_on_arbitrary_json(value: object) -> None:
    assert isinstance(parse_news(to_bytes(value), now=NOW), NewsItem | ParseError)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str) -> Iterator[list[Engine]]:
    """A SQLite file and a fresh schema in the test PostgreSQL (module-scoped: hypothesis reruns the test)."""
    sqlite = make_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'fuzz.db'}")
    schema = f"fuzz_{uuid.uuid4().hex[:10]}"
    admin = make_engine(pg_admin_url)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    pg = make_engine(f"{pg_admin_url}?options=-csearch_path%3D{schema}")
    for e in (sqlite, pg):
        init_db(e)
    yield [sqlite, pg]
    pg.dispose()
    with admin.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.postgres
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(news_like, min_size=1, max_size=6))
def test_decode_then_store_never_raises(engines: list[Engine], messages: list[dict[str, object]]) -> None:
    records = [RawRecord("raw", 0, i, None, to_bytes(m)) for i, m in enumerate(messages)]
    decoded = decode_batch(records, Limits(), now=NOW + timedelta(days=3650))
    pairs = [(item, TAGS) for _, item in decoded.good]
    for item, _ in pairs:
        tagged_message(item, TAGS)  # the news.tagged payload is bounded for every accepted item
    for engine in engines:
        with engine.begin() as conn:
            write_batch(conn, pairs, timedelta(hours=24))
