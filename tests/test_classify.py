"""Inference API: load_classifier(kind "trained" (a dir) | "tiny-random" | "noop") and predict(texts) -> list[Tags]."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.classify import load_classifier
from monitor.errors import ModelError
from monitor.labels import SENTIMENTS, TOPICS
from monitor.settings import ModelSettings, Settings
from training.io import classify_jsonl

TINY = ModelSettings(kind="tiny-random", dtype="fp32", batch_size=4)
HEADLINES = [
    "Acme shares plunge after profit warning",
    "Globex beats estimates and raises guidance https://t.co/xyz",
    "Fed holds rates steady",
    "",
    "🚀🚀 $TSLA to the moon 📈",
    "x" * 10_000,
    "Oil slides as OPEC+ weighs output increase",
]


def test_noop_returns_a_neutral_tag_per_text() -> None:
    clf = load_classifier(ModelSettings(kind="noop"))
    tags = clf.predict(["a", "b"])
    assert clf.version == "noop" and len(tags) == 2
    assert all(
        t.sentiment == "neutral" and t.sentiment_score == 0.0 and t.model_version == "noop" for t in tags
    )
    assert clf.predict([]) == []


def test_tiny_random_gives_valid_tags_for_odd_texts() -> None:
    clf = load_classifier(TINY)
    tags = clf.predict(HEADLINES)
    assert len(tags) == len(HEADLINES) and clf.version == "tiny-random"
    for t in tags:
        assert t.topic in TOPICS and t.sentiment in SENTIMENTS
        assert 0 < t.topic_confidence <= 1 and 0 < t.sentiment_confidence <= 1
        assert -1 <= t.sentiment_score <= 1
        assert t.model_version == "tiny-random"
    assert clf.predict([]) == []


def test_tiny_random_is_deterministic_and_keeps_input_order() -> None:
    a = load_classifier(TINY).predict(HEADLINES)
    b = load_classifier(TINY).predict(HEADLINES)
    assert a == b
    # Sorting by length and batching must not reorder answers: each text alone gives its own answer.
    for text, tag in zip(HEADLINES, a, strict=True):
        (alone,) = load_classifier(TINY).predict([text])
        assert alone.sentiment == tag.sentiment and alone.topic == tag.topic
        assert alone.sentiment_score == pytest.approx(tag.sentiment_score, abs=1e-4)


def test_sentiment_score_is_p_positive_minus_p_negative() -> None:
    clf = load_classifier(TINY)
    topic, sent = clf.logits(["Acme shares plunge"])  # type: ignore[attr-defined]
    p = sent.softmax(-1)[0]
    (tag,) = clf.predict(["Acme shares plunge"])
    assert tag.sentiment_score == pytest.approx(float(p[2] - p[0]), abs=1e-5)
    assert tag.sentiment_confidence == pytest.approx(float(p.max()), abs=1e-5)


def test_tiny_random_loads_fast_once_warm() -> None:
    load_classifier(TINY)
    started = time.perf_counter()
    load_classifier(TINY)
    assert time.perf_counter() - started < 1.0


def test_missing_model_directory_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_classifier(ModelSettings(path=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        load_classifier(ModelSettings(path=str(tmp_path / "empty")))


def test_test_doubles_are_chosen_by_kind_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model path never selects a test double; the kind is a checked setting (FINPULSE_MODEL_KIND)."""
    with pytest.raises(ModelError, match="does not exist"):
        load_classifier(ModelSettings(path="tiny-random"))
    monkeypatch.setenv("FINPULSE_MODEL_KIND", "noop")
    assert Settings().model.kind == "noop"
    monkeypatch.setenv("FINPULSE_MODEL_KIND", "tiny")
    with pytest.raises(ValidationError, match="kind"):
        Settings()


def test_classify_jsonl_round_trip_skips_bad_lines() -> None:
    src = io.StringIO('{"id": 1, "text": "Fed hikes"}\nnot json\n{"id": "b", "text": ""}\n[1]\n')
    dst = io.StringIO()
    skipped = classify_jsonl(load_classifier(TINY), src, dst, chunk=1)
    out = [json.loads(line) for line in dst.getvalue().splitlines()]
    assert skipped == 2 and [o["id"] for o in out] == [1, "b"]
    assert set(out[0]) == {
        "id",
        "topic",
        "topic_confidence",
        "sentiment",
        "sentiment_score",
        "sentiment_confidence",
        "model_version",
    }


def test_classify_cli_one_headline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.cli import main

    monkeypatch.setenv("FINPULSE_MODEL_KIND", "tiny-random")
    assert main(["classify", "Acme", "beats", "estimates"]) == 0
    out = capsys.readouterr().out
    assert "sentiment" in out and "topic" in out and "tiny-random" in out
