"""``finpulse ingest rss URL…``: poll RSS/Atom feeds and publish entries not sent before (across restarts:
the ids already sent are kept in a small state file, written atomically after the producer flushed)."""

from __future__ import annotations

import calendar
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import feedparser
from pydantic import ValidationError

from monitor.schema import NewsItem, extract_cashtags, stable_id

log = logging.getLogger(__name__)
MAX_REMEMBERED = 100_000


def entry_to_item(entry: Any, feed_title: str, now: datetime) -> NewsItem | None:
    """Pure: a feedparser entry → NewsItem (None when it has no title)."""
    title = (entry.get("title") or "").strip()
    if not title:
        return None
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    when = datetime.fromtimestamp(calendar.timegm(stamp), UTC) if stamp else now
    link = entry.get("link")
    source = feed_title or (urlparse(link).hostname if link else "rss") or "rss"
    guid = entry.get("id") or link
    tickers = extract_cashtags(title)
    try:
        return NewsItem(
            id=stable_id(source, guid, title),
            title=title,
            published_at=min(when, now),
            source=source[:200],
            url=link,
            body=(entry.get("summary") or None),
            tickers=tuple(tickers),
        )
    except ValidationError as exc:
        log.warning("skipping feed entry %r: %s", title[:80], exc.errors()[0]["msg"])
        return None


def new_items(feed: Any, seen: set[str], now: datetime) -> list[NewsItem]:
    title = (feed.get("feed", {}) or {}).get("title", "") or ""
    out = []
    for entry in feed.get("entries", []):
        item = entry_to_item(entry, title, now)
        if item is not None and item.id not in seen:
            out.append(item)
            seen.add(item.id)
    return sorted(out, key=lambda i: i.published_at)


class SentState:
    """Ids already published, persisted as JSON (most recent MAX_REMEMBERED)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ids: list[str] = []
        if path.exists():
            try:
                self.ids = list(json.loads(path.read_text())["sent"])
            except (ValueError, KeyError, TypeError):
                log.warning("RSS state file %s unreadable; starting empty", path)
        self.seen = set(self.ids)

    def add(self, ids: Iterable[str]) -> None:
        for i in ids:
            if i not in self.seen:
                self.ids.append(i)
                self.seen.add(i)
        if len(self.ids) > MAX_REMEMBERED:
            self.ids = self.ids[-MAX_REMEMBERED:]
            self.seen = set(self.ids)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".rss-state-")
        with os.fdopen(fd, "w") as fh:
            json.dump({"sent": self.ids}, fh)
        os.replace(tmp, self.path)


def poll_forever(urls: list[str], interval_s: float, state: SentState, publish: Any,
                 stop: threading.Event, once: bool = False) -> int:
    """Fetch every feed, publish new entries (``publish(items)`` must flush), then remember them."""
    total = 0
    while not stop.is_set():
        for url in urls:
            feed = feedparser.parse(url, agent="FinPulse/0.1 (+rss ingest)")
            if feed.get("bozo") and not feed.get("entries"):
                log.warning("feed %s unreadable: %s", url, feed.get("bozo_exception"))
                continue
            items = new_items(feed, set(state.seen), datetime.now(UTC))
            if items:
                publish(items)
                state.add(i.id for i in items)
                state.save()
                total += len(items)
                log.info("feed %s: %d new items", url, len(items))
        if once:
            break
        stop.wait(interval_s)
    return total
