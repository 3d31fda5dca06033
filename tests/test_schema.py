from datetime import UTC, datetime, timedelta

import pytest

from monitor.schema import Limits, NewsItem, ParseError, normalise_title, parse_news, stable_id, story_key


def _raw(**kw: object) -> bytes:
    import json

    base = {"title": "Acme beats estimates", "source": "wire", "published_at": "2024-03-01T14:30:00+01:00"}
    base.update(kw)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_valid_message_is_parsed_and_normalised_to_utc() -> None:
    item = parse_news(_raw(tickers="acme, $xyz"))
    assert isinstance(item, NewsItem)
    assert item.published_at == datetime(2024, 3, 1, 13, 30, tzinfo=UTC)
    assert item.tickers == ("ACME", "XYZ")
    assert item.id == stable_id("wire", None, "Acme beats estimates")


def test_given_id_is_kept_and_missing_id_is_stable() -> None:
    assert parse_news(_raw(id="abc")).id == "abc"  # type: ignore[union-attr]
    a, b = parse_news(_raw(url="https://x/1")), parse_news(_raw(url="https://x/1", title="other"))
    assert isinstance(a, NewsItem) and isinstance(b, NewsItem)
    assert a.id == b.id  # same source + url → same story id


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe{}", "invalid UTF-8"),
        (b"[1, 2]", "not a JSON object"),
        (b"null", "not a JSON object"),
        (None, "tombstone"),
        (_raw(title=None), "invalid field title"),
        (_raw(title=42), "invalid field title"),
        (_raw(title="   "), "invalid field title"),
        (_raw(published_at="2024-03-01T14:30:00"), "timezone"),
        (_raw(published_at="yesterday"), "invalid field published_at"),
        (_raw(tickers=[1, 2]), "invalid field tickers"),
        (_raw(tickers=["not a ticker!"]), "invalid ticker"),
        (_raw(body="x" * 2_000_000), "message too large"),
    ],
)
def test_bad_messages_give_a_reason(raw: bytes | None, reason: str) -> None:
    out = parse_news(raw)
    assert isinstance(out, ParseError)
    assert reason in out.reason


def test_limits_apply_to_title_and_body() -> None:
    limits = Limits(max_message_bytes=10_000, max_title_chars=20, max_body_chars=50)
    assert "title too long" in parse_news(_raw(title="y" * 30), limits).reason  # type: ignore[union-attr]
    assert "body too long" in parse_news(_raw(body="z" * 60), limits).reason  # type: ignore[union-attr]


def test_normalised_titles_match_across_sources() -> None:
    assert normalise_title("ACME Beats  Estimates!! https://t.co/x") == "acme beats estimates"
    assert story_key("Acme beats estimates") == story_key("ACME BEATS ESTIMATES.")
    assert story_key("Acme beats estimates") != story_key("Acme misses estimates")


def test_cashtags_are_added_to_tickers() -> None:
    item = NewsItem(title="$TSLA and $aapl rally", source="s", published_at=datetime.now(UTC) - timedelta(1))
    assert item.all_tickers() == ("AAPL", "TSLA")


def test_story_keys_and_model_text_drop_the_same_links() -> None:
    from monitor.nn import clean_text

    title = "Acme recalls cars https://t.co/AbC123 details at www.acme.example/recall"
    assert normalise_title(title) == "acme recalls cars details at"
    assert clean_text(title) == "Acme recalls cars details at"
