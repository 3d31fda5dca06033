"""Ingest commands and the broker command, as black boxes against the real broker."""

from __future__ import annotations

import http.server
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker, free_port, port_open
from monitor.settings import KafkaSettings
from tests.conftest import FINPULSE, REPO, env_for, run_cli
from tests.test_pipeline import read_topic

pytestmark = pytest.mark.broker

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Test Markets Feed</title>
{items}
</channel></rss>"""
ITEM = """<item><title>{title}</title><link>https://news.example/{n}</link><guid>g-{n}</guid>
<pubDate>Mon, 06 May 2024 1{n}:00:00 GMT</pubDate><description>d</description></item>"""


@pytest.fixture
def feed_server() -> Iterator[tuple[str, dict[str, str]]]:
    content = {"body": ""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            data = content["body"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/feed.xml", content
    server.shutdown()


def test_rss_sends_each_entry_once_across_restarts(
    kafka: KafkaSettings, sqlite_url: str, tmp_path: Path, feed_server: tuple[str, dict[str, str]]
) -> None:
    url, content = feed_server
    state = tmp_path / "rss.json"
    env = env_for(kafka, sqlite_url)
    titles = ["$AAPL jumps on record iPhone sales", "Fed holds rates", "Oil slides"]
    content["body"] = RSS.format(items="".join(ITEM.format(title=t, n=n) for n, t in enumerate(titles[:2])))
    args = ["ingest", "rss", url, "--once", "--state", str(state)]
    assert run_cli(args, env).returncode == 0
    assert run_cli(args, env).returncode == 0  # restart: nothing new
    content["body"] = RSS.format(items="".join(ITEM.format(title=t, n=n) for n, t in enumerate(titles)))
    assert run_cli(args, env).returncode == 0  # one new entry
    msgs = read_topic(kafka, kafka.topic_raw, 4, timeout=8)  # asks for one more than should exist
    sent = [json.loads(m.value) for m in msgs]
    assert sorted(m["title"] for m in sent) == sorted(titles)
    first = next(m for m in sent if m["title"].startswith("$AAPL"))
    assert first["source"] == "Test Markets Feed" and first["tickers"] == ["AAPL"]
    assert first["url"] == "https://news.example/0" and first["published_at"] == "2024-05-06T10:00:00Z"


def test_demo_publishes_history_and_live_items(kafka: KafkaSettings, sqlite_url: str) -> None:
    env = env_for(kafka, sqlite_url)
    done = run_cli(
        [
            "ingest",
            "demo",
            "--rate",
            "600",
            "--backfill-hours",
            "1",
            "--backfill-rate",
            "1",
            "--count",
            "20",
            "--incident-after",
            "-1",
        ],
        env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    msgs = read_topic(kafka, kafka.topic_raw, 60, timeout=20)
    assert len(msgs) >= 50  # ~60 history items + 20 live
    assert all(m.key for m in msgs)


def test_broker_command_serves_refuses_a_taken_port_and_stops_on_sigterm(broker: EmbeddedBroker) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*FINPULSE, "broker", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert port_open("127.0.0.1", port)
    taken = run_cli(["broker", "--port", str(broker.port)], env={}, timeout=30)
    assert taken.returncode == 1 and "already in use" in taken.stderr
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "127.0.0.1:" in out
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # the broker is gone too
