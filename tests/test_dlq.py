"""``finpulse dlq replay`` on the real broker: dead letters go back to news.raw once their cause is fixed,
filtered by reason; replaying twice stores nothing twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from monitor.dlq import DeadLetter, parse_since, select
from monitor.settings import KafkaSettings
from tests.conftest import env_for, run_cli, settings_for
from tests.test_pipeline import produce, read_topic, stored_ids, wait_for, worker_thread

pytestmark = pytest.mark.broker


def test_selection_by_reason_time_and_source() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def d(off: int, reason: str, minutes_ago: float, src: int | None = None, **h: str) -> DeadLetter:
        headers = {
            "reason": reason,
            "source_topic": "raw",
            "source_partition": "0",
            "source_offset": str(off if src is None else src),
            **h,
        }
        return DeadLetter(
            0, off, int((now - timedelta(minutes=minutes_ago)).timestamp() * 1000), None, b"x", headers
        )

    letters = [
        d(0, "not JSON: x", 5),
        d(1, "published_at out of range: y", 5),
        d(2, "Published_at out of range", 90),
        d(3, "published_at out of range", 5, src=1),
        d(4, "published_at out of range", 1, value_truncated_from="2000000"),
    ]
    chosen = select(letters, "published_at OUT", parse_since("1h", now))
    assert [x.offset for x in chosen.replay] == [1]
    assert (chosen.other_reason, chosen.repeated, chosen.truncated) == (1, 1, 1)
    assert len(select(letters, None, None).replay) == 3  # all reasons; still no repeat, no cut value
    assert parse_since("2026-01-01T00:00:00", now) == now


def test_replay_after_the_fix_stores_each_item_once(kafka: KafkaSettings, sqlite_url: str) -> None:
    soon = datetime.now(UTC) + timedelta(hours=5)  # "in the future" for a worker allowing 1 h
    early = [
        {
            "id": f"tz-{i}",
            "title": f"Item from a feed with a wrong clock {i}",
            "source": "skewed",
            "published_at": (soon + timedelta(minutes=i)).isoformat(),
        }
        for i in range(12)
    ]
    values = [json.dumps(r).encode() for r in early] + [b"not json at all"]
    with worker_thread(settings_for(kafka, sqlite_url, max_future_hours=1.0)) as worker:
        produce(kafka, values)
        wait_for(lambda: worker.stats.dlq == 13, 60, "13 dead letters")
    assert stored_ids(sqlite_url) == []
    env = env_for(kafka, sqlite_url)
    # The cause is fixed (the operator allows a day of clock skew) and the dead letters replayed, twice.
    with worker_thread(settings_for(kafka, sqlite_url, max_future_hours=24.0)):
        for _ in range(2):
            done = run_cli(["dlq", "replay", "--reason", "published_at out of range"], env)
            assert done.returncode == 0, done.stderr[-2000:]
            report = json.loads(done.stdout.strip().splitlines()[-1])
            assert report["replayed"] == 12 and report["other_reason"] == 1
        wait_for(lambda: len(read_topic(kafka, kafka.topic_tagged, 24, timeout=5)) >= 24, 60, "both replays")
    ids = stored_ids(sqlite_url)
    assert sorted(ids) == sorted(r["id"] for r in early) and len(ids) == len(set(ids))
    raw = read_topic(kafka, kafka.topic_raw, 13 + 24, timeout=10)
    assert sum(1 for m in raw if dict(m.headers).get("replayed_from")) == 24
    assert len(read_topic(kafka, kafka.topic_dlq, 14, timeout=5)) == 13  # nothing new dead-lettered
