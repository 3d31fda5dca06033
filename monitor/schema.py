"""Wire and domain types: the NewsItem message, the Tags a classifier produces, and pure parsing helpers.

Parsing is total: whatever the bytes, ``parse_news`` returns a NewsItem or a ``ParseError`` with the reason, so
the worker routes bad messages to the dead-letter topic without exceptions crossing the batch loop. Every size
is bounded here, at the edge (message, fields, ticker count, time range), so nothing downstream (database,
``news.tagged``, alert series) sees an unbounded value.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

TICKER_RE = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,9}$")  # what a ticker symbol may be
_CASHTAG_RE = re.compile(r"\$([A-Za-z]{1,6})(?![A-Za-z])")
_WS_RE = re.compile(r"\s+")
_NORM_STRIP_RE = re.compile(r"[^\w\s]")
_URL_RE = re.compile(r"https?://\S+|www\.\S+")
_INVISIBLE_RE = re.compile(r"[\s\u200b-\u200f\u2060-\u2064\ufeff\u00ad]+")
MAX_TICKERS = 32  # per item, given + cashtags: a list beyond this is not news about those companies
# Hard calendar bounds for every producer (the worker narrows them with Limits): outside them datetime
# arithmetic (a 24 h window, a timezone shift) overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def stable_id(source: str, url: str | None, title: str) -> str:
    """Deterministic id for an item that arrives without one: hash of source + (url or title)."""
    basis = f"{source.strip().lower()}\x1f{(url or '').strip() or normalise_title(title)}"
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]


def strip_urls(text: str) -> str:
    """``text`` with every link (``http(s)://…``, ``www.…``) replaced by a space: the one URL rule, for story
    keys and for what the model reads (links carry no meaning, t.co ones least of all)."""
    return _URL_RE.sub(" ", text)


def normalise_title(title: str) -> str:
    """Key for repeated-story detection: case-folded, URLs/punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", title)
    text = strip_urls(text).casefold()
    text = _NORM_STRIP_RE.sub(" ", text)
    return _WS_RE.sub(" ", text).strip()


def visible_text(text: str) -> str:
    """The title without whitespace and invisible format characters (zero-width spaces, joiners, BOM)."""
    return _INVISIBLE_RE.sub("", unicodedata.normalize("NFKC", text))


def story_key(title: str) -> str:
    """Hash of the normalised title. A title with no word characters (emoji only, a bare URL) normalises to
    nothing; its key then comes from its visible characters, so two such titles repeat each other only when
    they are the same text."""
    basis = normalise_title(title) or "\x1fraw\x1f" + visible_text(title).casefold()
    return hashlib.sha1(basis.encode("utf-8")).hexdigest()[:20]


def find_repeats(
    stories: Iterable[tuple[str, str, datetime]], earlier: dict[str, tuple[str, datetime]], window: timedelta
) -> dict[str, str]:
    """Repeated-story detection, the one rule for the worker and the backtest: map id -> id of the original.

    ``stories`` are (id, story_key, published_at); ``earlier`` maps story_key -> (id, published_at) of an
    original already known. In published order (ties by id), a story repeats an original with the same key
    published within ``window`` of it; otherwise it becomes the original for later ones.
    """
    first = dict(earlier)
    out: dict[str, str] = {}
    for id_, key, ts in sorted(stories, key=lambda s: (s[2], s[0])):
        seen = first.get(key)
        if seen is not None and seen[0] != id_ and abs(ts - seen[1]) <= window:
            out[id_] = seen[0]
        else:
            first[key] = (id_, ts)
    return out


def _check_text(value: str, field: str) -> str:
    """PostgreSQL rejects NUL in text and UTF-8 cannot encode a lone surrogate (valid in JSON as ``\\ud800``):
    both are refused here rather than by the database."""
    if "\x00" in value:
        raise ValueError(f"{field} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{field} contains an unpaired surrogate at position {exc.start}") from None
    return value


def extract_cashtags(text: str) -> list[str]:
    return sorted({m.upper() for m in _CASHTAG_RE.findall(text)})


class NewsItem(BaseModel):
    """One news item as it travels on ``news.raw`` (JSON)."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    id: str = Field(default="", max_length=200)
    published_at: datetime
    source: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=10_000)
    body: str | None = Field(default=None, max_length=1_000_000)
    url: str | None = Field(default=None, max_length=2_000)
    tickers: tuple[str, ...] = ()
    lang: str = Field(default="en", max_length=16)

    @field_validator("published_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("published_at must carry a timezone (e.g. 2024-01-02T15:04:05Z)")
        try:
            utc = v.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
            raise ValueError("published_at is out of range") from None
        if not EARLIEST <= utc < LATEST:
            raise ValueError(f"published_at {utc:%Y-%m-%d} is outside {EARLIEST:%Y} to {LATEST:%Y}")
        return utc

    @field_validator("id", "source", "title", "body", "url", "lang")
    @classmethod
    def _text(cls, v: str | None, info: Any) -> str | None:
        return None if v is None else _check_text(v, info.field_name)

    @field_validator("title")
    @classmethod
    def _visible(cls, v: str) -> str:
        if not visible_text(v):
            raise ValueError("title has no visible characters")
        return v

    @field_validator("tickers", mode="before")
    @classmethod
    def _tickers(cls, v: Any) -> tuple[str, ...]:
        if v is None:
            return ()
        if isinstance(v, str):
            v = [t for t in re.split(r"[,\s;|]+", v) if t]
        if not isinstance(v, list | tuple):
            raise ValueError("tickers must be a list of symbols or a comma-separated string")
        if len(v) > MAX_TICKERS:
            raise ValueError(f"too many tickers: {len(v)} > {MAX_TICKERS}")
        out = []
        for t in v:
            if not isinstance(t, str):
                raise ValueError("each ticker must be a string")
            sym = t.strip().lstrip("$").upper()
            if not TICKER_RE.match(sym):
                raise ValueError(f"invalid ticker symbol {t!r}")
            out.append(sym)
        return tuple(sorted(set(out)))

    @model_validator(mode="after")
    def _fill_id(self) -> NewsItem:
        if not self.id:
            object.__setattr__(self, "id", stable_id(self.source, self.url, self.title))
        return self

    @property
    def text(self) -> str:
        """What the classifier reads: the headline (bodies are long and mostly repeat it)."""
        return self.title

    def all_tickers(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.tickers) | set(extract_cashtags(self.title))))

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


@dataclass(frozen=True, slots=True)
class ParseError:
    """Why a raw message was rejected (goes to the DLQ headers)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = 1_000_000
    max_title_chars: int = 1_000
    max_body_chars: int = 100_000
    max_tickers: int = MAX_TICKERS
    earliest: datetime = EARLIEST  # plausible published_at range: [earliest, now + max_future]
    max_future: timedelta = timedelta(days=1)


def parse_news(
    raw: bytes | None, limits: Limits = Limits(), now: datetime | None = None
) -> NewsItem | ParseError:
    """Decode one Kafka value into a NewsItem, or say why not. Never raises: any exception in decoding or
    validation becomes a ParseError naming it (``now`` bounds ``published_at``; default: the clock)."""
    try:
        return _parse(raw, limits, now or utcnow())
    except RecursionError:
        return ParseError("not JSON: nested too deeply")
    except Exception as exc:  # noqa: BLE001 - decoding is total by contract
        return ParseError(f"undecodable: {exc.__class__.__name__}: {str(exc)[:200]}")


def _parse(raw: bytes | None, limits: Limits, now: datetime) -> NewsItem | ParseError:
    if raw is None:
        return ParseError("empty message (tombstone)")
    if len(raw) > limits.max_message_bytes:
        return ParseError(f"message too large: {len(raw)} bytes > {limits.max_message_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ParseError(f"invalid UTF-8 at byte {exc.start}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return ParseError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(data, dict):
        return ParseError(f"not a JSON object: got {type(data).__name__}")
    try:
        item = NewsItem.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "message"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return ParseError(f"invalid field {loc}: {first['msg']}{more}")
    if len(item.title) > limits.max_title_chars:
        return ParseError(f"title too long: {len(item.title)} chars > {limits.max_title_chars}")
    if item.body is not None and len(item.body) > limits.max_body_chars:
        return ParseError(f"body too long: {len(item.body)} chars > {limits.max_body_chars}")
    if len(tickers := item.all_tickers()) > limits.max_tickers:
        return ParseError(f"too many tickers: {len(tickers)} > {limits.max_tickers} (given + cashtags)")
    if not limits.earliest <= item.published_at <= now + limits.max_future:
        return ParseError(
            f"published_at out of range: {item.published_at.isoformat()} is not between "
            f"{limits.earliest:%Y-%m-%d} and now + {limits.max_future}"
        )
    return item


@dataclass(frozen=True, slots=True)
class Tags:
    """What the classifier says about one text."""

    topic: str
    topic_confidence: float
    sentiment: str  # negative | neutral | positive
    sentiment_score: float  # P(positive) - P(negative), in [-1, 1]
    sentiment_confidence: float
    model_version: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "topic_confidence": self.topic_confidence,
            "sentiment": self.sentiment,
            "sentiment_score": self.sentiment_score,
            "sentiment_confidence": self.sentiment_confidence,
            "model_version": self.model_version,
        }


def utcnow() -> datetime:
    return datetime.now(UTC)
