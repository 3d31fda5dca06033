"""``finpulse ingest rss URL…``: poll RSS/Atom feeds and publish entries not sent before (across restarts:
the ids already sent are kept in a small state file, written atomically after every send was acknowledged).

Each feed is fetched with bounded time and size (``monitor.ingest.fetch``) and parsed from bytes; one bad
entry (a year-0 date, a malformed link) is skipped with a log line, one bad feed never stops the others."""

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
import httpx

from monitor.health import Progress
from monitor.ingest.fetch import FetchError, FetchLimits, fetch_feed, make_client
from monitor.schema import NewsItem, extract_cashtags, stable_id

log = logging.getLogger(__name__)
MAX_REMEMBERED = 100_000


def entry_to_item(entry: Any, feed_title: str, now: datetime) -> NewsItem | None:
    """Pure: a feedparser entry → NewsItem, or None (logged) when it has no title or anything in it is
    unusable. Never raises: one entry must not stop the feed."""
    try:
        return _entry_to_item(entry, feed_title, now)
    except Exception as exc:  # noqa: BLE001 - feeds are hostile input; the entry is skipped, with the reason
        log.warning(
            "skipping feed entry %r: %s: %s",
            str(entry.get("title", ""))[:80],
            type(exc).__name__,
            str(exc).splitlines()[0][:200] if str(exc) else "",
        )
        return None


def _entry_to_item(entry: Any, feed_title: str, now: datetime) -> NewsItem | None:
    title = (entry.get("title") or "").strip()
    if not title:
        return None
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    when = datetime.fromtimestamp(calendar.timegm(stamp), UTC) if stamp else now
    link = entry.get("link")
    source = feed_title or (urlparse(link).hostname if link else "rss") or "rss"
    guid = entry.get("id") or link
    return NewsItem(
        id=stable_id(source, guid, title),
        title=title,
        published_at=min(when, now),
        source=source[:200],
        url=link,
        body=(entry.get("summary") or None),
        tickers=tuple(extract_cashtags(title)[:32]),
    )


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


def poll_once(
    urls: list[str], client: httpx.Client, limits: FetchLimits, state: SentState, publish: Any
) -> tuple[int, int]:
    """One cycle over every feed: (feeds fetched and handled, items sent). A feed that fails is logged and
    tried again next cycle; its items are not remembered as sent."""
    handled = sent = 0
    for url in urls:
        try:
            feed = feedparser.parse(fetch_feed(client, url, limits))
            if feed.get("bozo") and not feed.get("entries"):
                log.warning("feed %s unreadable: %s", url, feed.get("bozo_exception"))
                continue
            items = new_items(feed, set(state.seen), datetime.now(UTC))
            if items:
                publish(items)  # raises when a send was not acknowledged: nothing is remembered then
                state.add(i.id for i in items)
                state.save()
                log.info("feed %s: %d new items", url, len(items))
                sent += len(items)
            handled += 1
        except FetchError as exc:
            log.warning("feed %s not fetched: %s", url, exc)
        except Exception as exc:  # noqa: BLE001 - one feed (or a failed send) never stops the others
            log.error("feed %s failed: %s: %s", url, type(exc).__name__, str(exc)[:200])
    return handled, sent


def poll_forever(
    urls: list[str],
    interval_s: float,
    state: SentState,
    publish: Any,
    stop: threading.Event,
    once: bool = False,
    limits: FetchLimits | None = None,
    progress: Progress | None = None,
) -> int:
    """Fetch every feed, publish new entries (``publish(items)`` must flush and check every send), then
    remember them. Progress is a cycle in which at least one feed was handled."""
    total = 0
    limits = limits or FetchLimits()
    with make_client(limits) as client:
        while not stop.is_set():
            handled, sent = poll_once(urls, client, limits, state, publish)
            total += sent
            if progress is not None:
                if handled or not urls:
                    progress.ok()
                else:
                    progress.fault(f"no feed fetched in the last cycle ({len(urls)} tried)")
            if once:
                break
            stop.wait(interval_s)
    return total
