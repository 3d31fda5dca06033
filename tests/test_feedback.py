"""Analysts' corrections on real databases (SQLite file and PostgreSQL): recorded beside the tags (never over
them), checked, shown as "corrected", exported as text,label training files; `finpulse feedback export`."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from dashboards import data
from dashboards.data.base import Filters
from monitor.feedback import Correction, FeedbackError, export_training_files, record_correction
from monitor.schema import NewsItem, Tags
from monitor.store import init_db, make_engine, news_tags, write_batch

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


def seed(db_url: str) -> sa.Engine:
    engine = make_engine(db_url)
    init_db(engine)
    pairs = [
        (NewsItem(id=f"n{i}", published_at=NOW - timedelta(minutes=i), source="wire", title=f"Headline {i} falls"),
         Tags("Markets", 0.6, "negative", -0.7, 0.8, "model-a"))
        for i in range(3)
    ]  # fmt: skip
    with engine.begin() as conn:
        write_batch(conn, pairs, timedelta(hours=1), now=NOW)
    return engine


def test_corrections_are_kept_beside_the_tags_and_exported(db_url: str, tmp_path: Path) -> None:
    engine = seed(db_url)
    with engine.begin() as conn:
        record_correction(conn, Correction("n0", "ana", "positive", "Markets"), NOW)  # topic unchanged
        record_correction(conn, Correction("n1", "ana", None, "Earnings"), NOW)
        record_correction(conn, Correction("n1", "bob", "neutral", "Macro"), NOW + timedelta(minutes=1))
    with engine.connect() as conn:
        tags = dict(conn.execute(sa.select(news_tags.c.item_id, news_tags.c.sentiment)).all())
        page = data.headlines(conn, Filters(NOW - timedelta(hours=1), NOW + timedelta(hours=1)))
        history = data.item_corrections(conn, "n1")
        written = export_training_files(conn, tmp_path / "fb")
    assert tags == {"n0": "negative", "n1": "negative", "n2": "negative"}  # the model's answers stay
    corrected = dict(zip(page["id"], page["corrected"], strict=True))
    assert corrected == {"n0": "sentiment → positive", "n1": "sentiment → neutral, topic → Macro", "n2": ""}
    assert history["analyst"].tolist() == ["bob", "ana"] and history["old_topic"].tolist() == ["Markets"] * 2
    assert history["model_version"].tolist() == ["model-a"] * 2
    rows = {task: list(csv.reader(path.open())) for task, (path, _) in written.items()}
    assert rows["sentiment"] == [
        ["text", "label"],
        ["Headline 0 falls", "positive"],
        ["Headline 1 falls", "neutral"],
    ]
    assert rows["topic"] == [["text", "label"], ["Headline 1 falls", "Macro"]]  # the latest correction wins
    engine.dispose()


@pytest.mark.parametrize(
    ("correction", "message"),
    [
        (Correction("n0", " ", "positive"), "analyst's name"),
        (Correction("n0", "ana", "bullish"), "unknown sentiment"),
        (Correction("n0", "ana", None, "Sports"), "unknown topic"),
        (Correction("n0", "ana", "negative", "Markets"), "already gave"),
        (Correction("missing", "ana", "positive"), "no tagged item"),
    ],
)
def test_a_bad_correction_is_refused_with_the_reason(
    sqlite_url: str, correction: Correction, message: str
) -> None:
    engine = seed(sqlite_url)
    with engine.begin() as conn, pytest.raises(FeedbackError, match=message):
        record_correction(conn, correction, NOW)


def test_feedback_export_cli_writes_one_file_per_task(sqlite_url: str, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from monitor.cli import main

    engine = seed(sqlite_url)
    with engine.begin() as conn:
        record_correction(conn, Correction("n2", "ana", "positive", "Earnings"), NOW)
    assert main(["--database-url", sqlite_url, "feedback", "export", "--out", str(tmp_path / "out")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sentiment"]["rows"] == 1 and report["topic"]["rows"] == 1
    assert (tmp_path / "out" / "feedback-topic.csv").read_text().splitlines() == [
        "text,label",
        "Headline 2 falls,Earnings",
    ]


def test_feedback_trains_only_and_weighs_more(tmp_path: Path) -> None:
    from training.config import TrainConfig
    from training.train import load_examples

    base = tmp_path / "base.csv"
    base.write_text("text,label\n" + "".join(f"plain headline {i},neutral\n" for i in range(40)))
    fb = tmp_path / "feedback-sentiment.csv"
    fb.write_text("text,label\nZyqo orders collapse,negative\nQuorvex gains,positive\n")
    config = TrainConfig(use_shared=False, use_real=False, extra_data=(f"sentiment:{base}",),
                         feedback_data=(f"sentiment:{fb}",), feedback_weight=4.0)  # fmt: skip
    train, val, sources = load_examples(config)
    fed = [e for e in train if e.source == "feedback-sentiment"]
    assert [(e.text, e.label, e.weight) for e in fed] == [
        ("Zyqo orders collapse", "negative", 4.0), ("Quorvex gains", "positive", 4.0)]  # fmt: skip
    assert not any(e.source == "feedback-sentiment" for e in val) and val
    assert [s.licence for s in sources if s.name == "feedback-sentiment"] == ["analyst feedback"]


def test_a_fine_tune_that_ties_its_warm_start_keeps_the_trained_weights() -> None:
    """A warm start is evaluated at step 0; when validation cannot tell it from later steps (a saturated
    validation set: corrections are never in it), the later weights are kept, so a fine-tune on analysts'
    corrections is not silently thrown away. A better score still wins whatever its step."""
    from training.loop import keep_best

    kept: list[tuple[float, int, str]] = []
    for entry in [(1.0, 0, "warm start"), (1.0, 7, "step 7"), (1.0, 14, "step 14")]:
        keep_best(kept, entry, 1)
    assert kept == [(1.0, 14, "step 14")]
    keep_best(kept, (0.9, 21, "worse"), 1)
    assert kept == [(1.0, 14, "step 14")]
    keep_best(kept, (0.95, 0, "a"), 3)
    keep_best(kept, (1.0, 28, "b"), 3)
    assert [k[2] for k in kept] == ["b", "step 14", "a"]
