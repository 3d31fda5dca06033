"""Wire and domain types: the NewsItem message, the Tags a classifier produces, and pure parsing helpers.

Parsing returns errors as data (``ParseError``) so the worker can route bad messages to the dead-letter topic
without exceptions crossing the batch loop.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_TICKER_RE = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,9}$")
_CASHTAG_RE = re.compile(r"\$([A-Za-z]{1,6})(?![A-Za-z])")
_WS_RE = re.compile(r"\s+")
_NORM_STRIP_RE = re.compile(r"[^\w\s]")
_URL_RE = re.compile(r"https?://\S+")


def stable_id(source: str, url: str | None, title: str) -> str:
    """Deterministic id for an item that arrives without one: hash of source + (url or title)."""
    basis = f"{source.strip().lower()}\x1f{(url or '').strip() or normalise_title(title)}"
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]


def normalise_title(title: str) -> str:
    """Key for repeated-story detection: case-folded, URLs/punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", title)
    text = _URL_RE.sub(" ", text).casefold()
    text = _NORM_STRIP_RE.sub(" ", text)
    return _WS_RE.sub(" ", text).strip()


def story_key(title: str) -> str:
    return hashlib.sha1(normalise_title(title).encode("utf-8")).hexdigest()[:20]


def extract_cashtags(text: str) -> list[str]:
    return sorted({m.upper() for m in _CASHTAG_RE.findall(text)})


class NewsItem(BaseModel):
    """One news item as it travels on ``news.raw`` (JSON)."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    id: str = Field(default="", max_length=200)
    published_at: datetime
    source: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1)
    body: str | None = None
    url: str | None = Field(default=None, max_length=2_000)
    tickers: tuple[str, ...] = ()
    lang: str = Field(default="en", max_length=16)

    @field_validator("published_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("published_at must carry a timezone (e.g. 2024-01-02T15:04:05Z)")
        return v.astimezone(UTC)

    @field_validator("tickers", mode="before")
    @classmethod
    def _tickers(cls, v: Any) -> tuple[str, ...]:
        if v is None:
            return ()
        if isinstance(v, str):
            v = [t for t in re.split(r"[,\s;|]+", v) if t]
        if not isinstance(v, list | tuple):
            raise ValueError("tickers must be a list of symbols or a comma-separated string")
        out = []
        for t in v:
            if not isinstance(t, str):
                raise ValueError("each ticker must be a string")
            sym = t.strip().lstrip("$").upper()
            if not _TICKER_RE.match(sym):
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


def parse_news(raw: bytes | None, limits: Limits = Limits()) -> NewsItem | ParseError:
    """Decode one Kafka value into a NewsItem, or say why not. Never raises."""
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
