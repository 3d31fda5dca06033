"""Hostile feeds and lost sends, against a real local HTTP feed server and the real broker: a silent server, a
trickling one, a gzip bomb, entries with a year-0 date or a malformed link, a broker that never acknowledges,
replay files with epoch seconds and malformed lines."""

from __future__ import annotations

import http.server
import json
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.broker import free_port, start_broker
from monitor.health import Progress, judge
from monitor.ingest.fetch import FetchError, FetchLimits, fetch_feed, make_client
from monitor.ingest.producer import SendFailed, send_items
from monitor.ingest.replay import ColumnMap, load_items
from monitor.ingest.rss import SentState, poll_forever
from monitor.kafka import make_producer
from monitor.schema import NewsItem
from monitor.settings import KafkaSettings
from tests.test_ingest_cli import ITEM, RSS

FAST = FetchLimits(connect_timeout_s=2, read_timeout_s=1.5, total_timeout_s=4, max_bytes=1_000_000)
GOOD = RSS.format(items="".join(ITEM.format(title=f"Good headline {n}", n=n) for n in range(3)))
BAD_ENTRIES = RSS.replace("Test Markets Feed", "").format(
    items=(  # no feed title: sources come from links
        "<item><title>Year zero</title><link>https://news.example/y0</link><guid>y0</guid>"
        "<pubDate>0000-01-01T00:00:00Z</pubDate></item>"
        "<item><title>Broken link</title><link>http://[::1/broken</link><guid>bl</guid></item>"
        "<item><title>Fine one</title><link>https://news.example/ok</link><guid>ok</guid>"
        "<pubDate>Mon, 06 May 2024 10:00:00 GMT</pubDate></item>"
    )
)


@pytest.fixture
def feeds() -> Iterator[str]:
    """Paths: /good, /bad-entries, /silent (accepts, never answers), /trickle (a byte a second), /bomb (gzip
    that inflates to 200 MB), /missing (404)."""
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/silent":
                stop.wait(30)
                return
            if self.path == "/missing":
                self.send_error(404)
                return
            if self.path == "/trickle":
                self.send_response(200)
                self.end_headers()
                for ch in GOOD.encode():
                    if stop.wait(1.0):
                        return
                    self.wfile.write(bytes([ch]))
                    self.wfile.flush()
                return
            if self.path == "/bomb":
                data = BOMB
                encoding = "gzip"
            else:
                data, encoding = (GOOD if self.path == "/good" else BAD_ENTRIES).encode(), ""
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    stop.set()
    server.shutdown()


def gzip_bomb(inflated_mb: int) -> bytes:
    """A gzip body that inflates to ``inflated_mb`` MB of spaces (built in 1 MB steps, never held whole)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * 1_000_000
    return z.compress(b"<rss>") + b"".join(z.compress(chunk) for _ in range(inflated_mb)) + z.flush()


BOMB = gzip_bomb(200)  # ~200 kB on the wire, 200 MB inflated


def test_fetch_is_bounded_in_time_and_size(feeds: str) -> None:
    with make_client(FAST) as client:
        assert b"Good headline 2" in fetch_feed(client, f"{feeds}/good", FAST)
        for path, why in [
            ("/silent", "Timeout"),
            ("/trickle", "within 4 s"),
            ("/bomb", "larger than"),
            ("/missing", "HTTP 404"),
        ]:
            started = time.monotonic()
            with pytest.raises(FetchError, match=why):
                fetch_feed(client, feeds + path, FAST)
            assert time.monotonic() - started < 10


def test_bad_feeds_and_bad_entries_do_not_stop_the_others(feeds: str, tmp_path: Path) -> None:
    published: list[NewsItem] = []
    urls = [f"{feeds}/{p}" for p in ("silent", "bomb", "bad-entries", "missing", "good")]
    progress = Progress(tmp_path, "ingest")
    n = poll_forever(
        urls,
        1,
        SentState(tmp_path / "s.json"),
        published.extend,
        threading.Event(),
        once=True,
        limits=FAST,
        progress=progress,
    )
    titles = sorted(i.title for i in published)
    assert titles == ["Fine one", "Good headline 0", "Good headline 1", "Good headline 2"]
    assert n == len(titles)
    assert judge(tmp_path / "ingest.json", 60, time.time()).healthy


def test_an_ingest_whose_every_fetch_hangs_turns_unhealthy(feeds: str, tmp_path: Path) -> None:
    progress = Progress(tmp_path, "ingest")
    poll_forever(
        [f"{feeds}/silent"],
        1,
        SentState(tmp_path / "s.json"),
        lambda items: None,
        threading.Event(),
        once=True,
        limits=FAST,
        progress=progress,
    )
    verdict = judge(tmp_path / "ingest.json", 60, time.time())
    assert not verdict.healthy and "no feed fetched" in verdict.message


def test_unacknowledged_sends_are_reported_and_never_remembered(feeds: str, tmp_path: Path) -> None:
    port = free_port()
    broker = start_broker(port)
    kafka = KafkaSettings(bootstrap=broker.bootstrap)
    producer = make_producer(
        kafka, request_timeout_ms=1500, delivery_timeout_ms=3000, max_block_ms=3000, retries=0
    )
    producer.send("warmup", b"x").get(timeout=10)
    broker.stop()  # gone after the producer connected: sends are accepted locally, never acknowledged
    state = SentState(tmp_path / "s.json")

    def publish(items: list[NewsItem]) -> None:
        send_items(producer, "news-raw", items, timeout_s=10)

    try:
        n = poll_forever([f"{feeds}/good"], 1, state, publish, threading.Event(), once=True, limits=FAST)
        assert n == 0 and state.ids == [] and not (tmp_path / "s.json").exists()
        with pytest.raises(SendFailed, match="3 of 3 sends failed"):
            publish([NewsItem(title=f"t{i}", source="s", published_at=datetime.now(UTC)) for i in range(3)])
    finally:
        producer.close(timeout=1)


def test_replay_reads_epoch_seconds_and_skips_only_malformed_lines(tmp_path: Path) -> None:
    jsonl = tmp_path / "news.jsonl"
    jsonl.write_text(
        json.dumps({"title": "Epoch seconds", "published_at": 1_700_000_000, "source": "f"})
        + "\n"
        + "{not json\n"
        + json.dumps({"title": "Epoch ms", "published_at": 1_700_000_000_500, "source": "f"})
        + "\n"
        + json.dumps({"title": "Digits as text", "published_at": "1700000000", "source": "f"})
        + "\n"
    )
    items, errors = load_items(jsonl, ColumnMap())
    assert [i.published_at.year for i in items] == [2023, 2023, 2023]
    assert items[0].published_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert len(errors) == 1 and "line 2" in errors[0]
    csv = tmp_path / "news.csv"
    csv.write_text(
        "title,published_at,source\nFirst,2024-01-01T00:00:00Z,f\n"
        "Broken,2024-01-01,f,extra,fields\nThird,2024-01-02T00:00:00Z,f\n"
    )
    items, errors = load_items(csv, ColumnMap())
    assert [i.title for i in items] == ["First", "Third"]
    assert len(errors) == 1 and "malformed CSV line" in errors[0]


def test_the_first_progress_after_a_fault_is_written_at_once(tmp_path: Path) -> None:
    """`finpulse ingest rss` marks "starting" and, often within the same second, its first good cycle: the
    file must say healthy then, not a poll interval later (repeated marks stay rate-limited)."""
    now = [1_000.0]
    progress = Progress(tmp_path, "ingest", clock=lambda: now[0])
    progress.fault("starting: connecting to Kafka")
    now[0] += 0.2
    progress.ok()
    assert judge(tmp_path / "ingest.json", 60, now[0]).healthy
    written = (tmp_path / "ingest.json").read_text()
    now[0] += 0.3
    progress.ok()  # a repeat within the second: not rewritten
    assert (tmp_path / "ingest.json").read_text() == written
