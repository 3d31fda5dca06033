"""Shared helpers for the alert tests (no tests here): a real local webhook receiver and seeded news data."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from monitor.schema import NewsItem, Tags
from monitor.store import write_batch


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class WebhookReceiver:
    """A real HTTP server on 127.0.0.1. ``script[path]`` is a list of responses used in order (the last one
    repeats): ``200``, ``500``, ``("429", seconds)`` for a 429 with ``Retry-After``, ``("hang", seconds)``."""

    server: ThreadingHTTPServer
    requests: list[Recorded] = field(default_factory=list)
    script: dict[str, list[Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def answer(self, path: str, *responses: Any) -> None:
        with self.lock:
            self.script[path] = list(responses)

    def next_response(self, path: str) -> Any:
        with self.lock:
            queue = self.script.get(path, [200])
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def received(self, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]


def _handler(receiver_ref: list[WebhookReceiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            receiver = receiver_ref[0]
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            response = receiver.next_response(self.path)
            with receiver.lock:
                receiver.requests.append(Recorded(self.path, body, dict(self.headers), time.monotonic()))
            if isinstance(response, tuple) and response[0] == "hang":
                time.sleep(response[1])
                response = 200
            if isinstance(response, tuple) and response[0] == "429":
                self.send_response(429)
                self.send_header("Retry-After", str(response[1]))
                self.send_header("Content-Length", "12")
                self.end_headers()
                self.wfile.write(b"rate_limited")
                return
            text = b"ok" if response == 200 else b"server_error"
            self.send_response(int(response))
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

    return Handler


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    ref: list[WebhookReceiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ref))
    server.daemon_threads = True
    rec = WebhookReceiver(server)
    ref.append(rec)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


def tags(sentiment: str, topic: str = "Markets") -> Tags:
    score = {"negative": -0.9, "neutral": 0.0, "positive": 0.8}[sentiment]
    return Tags(topic, 0.9, sentiment, score, 0.9, "test")


def seed_history(
    engine: Engine,
    now: datetime,
    days: int = 8,
    per_hour: int = 6,
    negative_every: int = 3,
    topic: str = "Markets",
) -> None:
    """A steady stream: ``per_hour`` items per hour for ``days`` days before ``now`` (1 in
    ``negative_every`` negative)."""
    pairs = []
    start = now - timedelta(days=days)
    step = timedelta(minutes=60 / per_hour)
    t, i = start, 0
    while t < now - timedelta(hours=1):
        sentiment = "negative" if i % negative_every == 0 else "neutral"
        item = NewsItem(
            id=f"h{i}",
            published_at=t,
            source="wire",
            title=f"Routine market update number {i}",
            url=f"https://news.example/{i}",
        )
        pairs.append((item, tags(sentiment, topic)))
        t += step
        i += 1
    with engine.begin() as conn:
        write_batch(conn, pairs, timedelta(hours=24), now=now)


def seed_surge(
    engine: Engine,
    now: datetime,
    n: int = 30,
    topic: str = "Markets",
    ticker: str | None = None,
    prefix: str = "s",
) -> None:
    """``n`` distinct negative headlines spread over the 30 minutes before ``now``."""
    pairs = []
    for i in range(n):
        t = now - timedelta(minutes=30) + timedelta(seconds=60 * i * 30 / n)
        item = NewsItem(
            id=f"{prefix}{i}",
            published_at=t,
            source="wire",
            title=f"Lender {prefix}{i} collapses as panic spreads" + (f" ${ticker}" if ticker else ""),
            url=f"https://news.example/{prefix}/{i}",
            tickers=(ticker,) if ticker else (),
        )
        pairs.append((item, tags("negative", topic)))
    with engine.begin() as conn:
        write_batch(conn, pairs, timedelta(hours=24), now=now)


NOW = datetime(2024, 3, 13, 15, 2, tzinfo=UTC)  # a Wednesday
