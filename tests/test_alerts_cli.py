"""The alert commands end to end: backtest (precomputed tags and the classifier path), list, settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.settings import Settings
from monitor.terms import story_terms

START = datetime(2024, 3, 4, 0, 0, tzinfo=UTC)  # a Monday


def write_fixture(tmp_path: Path, days: int = 15) -> tuple[Path, Path]:
    """CNBC-style times (Eastern, "ET"): 4 headlines an hour, 1 in 4 negative; a burst of 30 negative
    headlines in the afternoon of the last day."""
    rows, tags = [], []
    t = START
    i = 0
    while t < START + timedelta(days=days):
        negative = i % 4 == 0
        rows.append((t, f"Routine update {i} on markets", -0.6 if negative else 0.0))
        t += timedelta(minutes=15)
        i += 1
    burst = START + timedelta(days=days - 1, hours=18)
    for k in range(30):
        rows.append((burst + timedelta(minutes=k), f"Bank {k} collapses as contagion fears spread", -0.95))
    rows.sort(key=lambda r: r[0])
    lines = ["Headlines,Time"]
    for ts, text, score in rows:
        et = ts.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
        lines.append(f'{text},"{et:%-I:%M  %p} ET {et:%a, %d %B %Y}"')
        tags.append(
            {
                "sentiment": "negative" if score < 0 else "neutral",
                "topic": "Markets",
                "sentiment_score": score,
            }
        )
    csv = tmp_path / "news.csv"
    csv.write_text("\n".join(lines) + "\n")
    jsonl = tmp_path / "tags.jsonl"
    jsonl.write_text("".join(json.dumps(t) + "\n" for t in tags))
    return csv, jsonl


def test_backtest_with_precomputed_tags_prints_alerts_as_jsonl_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINPULSE_ALERTS_BASELINE_DAYS", "10")
    csv, tags = write_fixture(tmp_path)
    assert (
        main(
            [
                "alerts",
                "backtest",
                "--input",
                str(csv),
                "--tags",
                str(tags),
                "--time-column",
                "Time",
                "--text-column",
                "Headlines",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    alerts = [json.loads(line) for line in out.splitlines()]
    keys = {a["key"] for a in alerts}
    # the overall stream, the topic, and the burst's own words as story terms ("routine", "update": no)
    assert {k for k in keys if not k.startswith("term:")} == {"all", "topic:Markets"}
    assert {"term:bank", "term:collapse", "term:contagion"} <= keys and "term:routine" not in keys
    assert all(
        k.split(":", 1)[1] in story_terms(h["title"])
        for a in alerts
        if (k := a["key"]).startswith("term:")
        for h in a["headlines"]
    )
    a = alerts[0]
    assert {
        "key",
        "window_start",
        "window_end",
        "fired_at",
        "severity",
        "count",
        "expected",
        "evidence",
        "share",
        "window_minutes",
        "headlines",
    } <= set(a)
    burst_utc = START + timedelta(days=14, hours=18)  # written as 2:00 PM ET (EDT), read back as 18:00 UTC
    fired = datetime.fromisoformat(a["fired_at"])
    assert burst_utc <= fired <= burst_utc + timedelta(minutes=35)
    assert a["count"] >= 5 and a["evidence"] >= 0 and a["count"] > 3 * a["expected"]
    assert "collapses" in a["headlines"][0]["title"] and len(a["headlines"]) == 5
    summary = json.loads(err.split("summary: ", 1)[1])
    assert summary["alerts"] == len(alerts) and summary["rows"] > 1400


def test_backtest_rejects_tags_that_do_not_line_up(tmp_path: Path) -> None:
    csv, tags = write_fixture(tmp_path, days=3)
    tags.write_text(tags.read_text().split("\n", 1)[1])  # one line short
    assert main(["alerts", "backtest", "--input", str(csv), "--tags", str(tags)]) == 1


def test_backtest_tags_may_cover_every_csv_row_including_blank_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv, tags = write_fixture(tmp_path)
    lines = csv.read_text().splitlines()
    tag_lines = tags.read_text().splitlines()
    csv.write_text("\n".join([lines[0], ',"not a date"', *lines[1:]]) + "\n")  # a row the backtest drops
    tags.write_text("\n".join(['{"sentiment": "negative", "topic": "Markets"}', *tag_lines]) + "\n")
    assert main(["alerts", "backtest", "--input", str(csv), "--tags", str(tags)]) == 0
    keys = {json.loads(line)["key"] for line in capsys.readouterr().out.splitlines()}
    assert {k for k in keys if not k.startswith("term:")} == {"all", "topic:Markets"}


def test_backtest_through_the_classifier_interface(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("monitor.classify")
    csv, _ = write_fixture(tmp_path, days=3)
    monkeypatch.setenv("FINPULSE_MODEL_KIND", "noop")
    assert main(["alerts", "backtest", "--input", str(csv)]) == 0
    out, err = capsys.readouterr()
    assert out == ""  # the no-op model calls everything neutral: no negative spike
    assert '"alerts": 0' in err


def test_alerts_list_shows_stored_alerts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.alerts.detector import Spike
    from monitor.alerts.queries import AlertKey, insert_alert
    from monitor.store import init_db, make_engine

    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = make_engine(url)
    init_db(engine)
    end = datetime(2024, 3, 13, 15, tzinfo=UTC)
    spike = Spike(
        bucket=0,
        window_start=end - timedelta(hours=1),
        window_end=end,
        severity="high",
        count=40,
        expected=5.0,
        p_value=1e-12,
        evidence=6.0,
        total=50,
        share=0.8,
    )
    with engine.begin() as conn:
        assert insert_alert(conn, AlertKey("ticker", "ACME"), spike, end, [])
        assert not insert_alert(conn, AlertKey("ticker", "ACME"), spike, end, [])  # same key + window: once
    engine.dispose()
    monkeypatch.setenv("FINPULSE_DATABASE_URL", url)
    assert main(["alerts", "list"]) == 0
    line = capsys.readouterr().out.strip()
    assert "ticker:ACME" in line and "pending" in line and "40 negative stories in 1 h" in line
    assert main(["alerts", "list", "--json", "--state", "pending"]) == 0
    assert json.loads(capsys.readouterr().out)["key"] == "ticker:ACME"


def test_alert_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_ALERTS_INTERVAL_SECONDS", "15")
    monkeypatch.setenv("FINPULSE_ALERTS_COOLDOWN_MINUTES", "45")
    monkeypatch.setenv("FINPULSE_ALERTS_WEBHOOKS", '[{"url": "https://hooks.example/T/B/secret"}]')
    s = Settings().alerts
    assert s.interval_seconds == 15 and s.cooldown_minutes == 45
    assert "secret" not in repr(s) and "secret" in s.webhooks.get_secret_value()


def test_run_once_runs_under_the_scheduler_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.alerts.locks import DatabaseLock
    from monitor.store import init_db, make_engine

    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    monkeypatch.setenv("FINPULSE_DATABASE_URL", url)
    assert main(["alerts", "run-once"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["new_alerts"], report["sent"], report["failed"], report["skipped"]) == (0, 0, 0, False)
    engine = make_engine(url)
    init_db(engine)
    scheduler = DatabaseLock(engine, Settings().alerts.lock_name, timedelta(hours=1), holder="scheduler")
    assert scheduler.ensure(datetime.now(UTC))  # a running scheduler holds the lock: run-once stands by
    assert main(["alerts", "run-once"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] is True
    scheduler.release()
    engine.dispose()
