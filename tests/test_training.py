"""Training: loaders and label maps, split, masked loss, batching, a real (tiny) training run, reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from monitor.classify import load_classifier
from monitor.labels import SENTIMENTS, TOPICS
from monitor.settings import ModelSettings
from tests.conftest import data_dir
from tests.test_nn import tiny_llama_dir
from training.batches import bucketed_batches, masked_loss
from training.config import TrainConfig
from training.data import (
    TWEET_SENTIMENT,
    DataError,
    Example,
    fpb_examples,
    load_labelled,
    read_rows,
    shared_datasets,
    split_train_val,
    subsample,
    to_examples,
    topic_label_map,
)
from training.evaluate import (
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    format_report,
)
from training.train import run_training


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_fpb_keeps_all_agreement_levels_weighted(tmp_path: Path) -> None:
    path = _csv(
        tmp_path / "fpb.csv",
        ["sentence", "label", "agreement"],
        [
            ["Profit rose .", "positive", 100],
            ["Sales fell .", "negative", 50],
            ["Board met .", "neutral", 66],
        ],
    )
    ex = fpb_examples(read_rows(path))
    assert [(e.label, e.weight, e.task, e.source) for e in ex] == [
        ("positive", 1.0, "sentiment", "fpb"),
        ("negative", 0.5, "sentiment", "fpb"),
        ("neutral", 0.66, "sentiment", "fpb"),
    ]
    assert [e.label for e in fpb_examples(read_rows(path), min_agreement=75)] == ["positive"]


def test_tweet_sentiment_and_topic_label_maps(tmp_path: Path) -> None:
    rows = [{"text": "a", "label": "0"}, {"text": "b", "label": "1"}, {"text": "c", "label": "2"}]
    assert [e.label for e in to_examples(rows, "sentiment", "t", TWEET_SENTIMENT)] == [
        "negative",
        "positive",
        "neutral",
    ]
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(TOPICS) + "\n")
    mapping = topic_label_map(classes)
    assert mapping["0"] == "Analyst Update" and mapping["19"] == "Stock Movement"
    classes.write_text("\n".join(reversed(TOPICS)))
    with pytest.raises(DataError):
        topic_label_map(classes)


def test_generic_loader_reads_csv_and_jsonl_and_rejects_unknown_labels(tmp_path: Path) -> None:
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text('{"text": "up", "label": "bull"}\n\n{"text": "down", "label": "bear"}\n')
    ex = load_labelled(jsonl, "sentiment", {"bull": "positive", "bear": "negative"})
    assert [(e.text, e.label, e.source) for e in ex] == [
        ("up", "positive", "mine"),
        ("down", "negative", "mine"),
    ]
    bad = _csv(tmp_path / "bad.csv", ["text", "label"], [["x", "Sports"]])
    with pytest.raises(DataError, match="Sports"):
        load_labelled(bad, "topic")
    with pytest.raises(DataError, match="does not exist"):
        load_labelled(tmp_path / "missing.csv", "topic")


def test_training_reads_rows_through_the_ingest_reader(tmp_path: Path) -> None:
    """One CSV/JSONL reader: training sees the rows replay sees, as strings; a bad line is an error here."""
    from monitor.ingest.replay import read_rows as replay_rows

    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"text": "a", "n": 1}\n{"text": "b"}\n{"text": "c", "n": 3, "extra": null}\n')
    assert read_rows(jsonl) == [
        {"text": "a", "n": "1", "extra": ""},
        {"text": "b", "n": "", "extra": ""},
        {"text": "c", "n": "3", "extra": ""},
    ]
    frame, errors = replay_rows(jsonl)
    assert errors == [] and list(frame["n"])[::2] == [1, 3]  # JSON values as given, no 1 -> 1.0 beside a gap
    jsonl.write_text('{"text": "a"}\nnot json\n')
    with pytest.raises(DataError, match="line 2: not JSON"):
        read_rows(jsonl)


def test_split_is_seeded_stratified_and_leak_free() -> None:
    examples = [Example(f"text {i % 90}", "sentiment", SENTIMENTS[i % 3], "s") for i in range(300)]
    train, val = split_train_val(examples, 0.1, seed=3)
    again = split_train_val(examples, 0.1, seed=3)
    assert [e.text for e in val] == [e.text for e in again[1]]
    assert {e.label for e in val} == set(SENTIMENTS)
    assert not {e.text for e in train} & {e.text for e in val}  # repeated texts never straddle the split
    small = subsample(examples, "s", 30, seed=0)
    assert len(small) == 30 and {e.label for e in small} == set(SENTIMENTS)


def test_masked_loss_ignores_the_missing_head() -> None:
    topic = torch.randn(4, 20, requires_grad=True)
    sent = torch.randn(4, 3, requires_grad=True)
    topic_y = torch.tensor([5, -1, -1, 7])
    sent_y = torch.tensor([-1, 0, 2, -1])
    loss = masked_loss(topic, sent, topic_y, sent_y, torch.ones(4))
    loss.backward()
    assert topic.grad is not None and sent.grad is not None
    assert topic.grad[1:3].abs().sum() == 0 and sent.grad[[0, 3]].abs().sum() == 0
    expected = torch.nn.functional.cross_entropy(
        topic[[0, 3]], topic_y[[0, 3]]
    ) + torch.nn.functional.cross_entropy(sent[1:3], sent_y[1:3])
    torch.testing.assert_close(loss, expected)
    only_topic = masked_loss(topic, sent, topic_y, torch.full((4,), -1), torch.ones(4))
    assert torch.isfinite(only_topic)


def test_bucketed_batches_cover_every_example_once_with_similar_lengths() -> None:
    lengths = [(i * 37) % 60 + 1 for i in range(1000)]
    batches = bucketed_batches(lengths, 16, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == bucketed_batches(lengths, 16, seed=1)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # vs ~55 for random batches


def test_report_on_a_known_confusion() -> None:
    y_true = ["negative", "negative", "positive", "positive", "neutral"]
    y_pred = ["negative", "positive", "positive", "positive", "positive"]
    rep = classification_report(y_true, y_pred, SENTIMENTS)
    assert rep.per_class["negative"].precision == 1.0 and rep.per_class["negative"].recall == 0.5
    assert rep.per_class["positive"].precision == 0.5 and rep.per_class["positive"].recall == 1.0
    assert rep.per_class["neutral"].f1 == 0.0 and rep.per_class["neutral"].support == 1
    assert rep.accuracy == 0.6
    assert rep.weighted_f1 == pytest.approx((2 * 0.6667 + 2 * 0.6667 + 0) / 5, abs=1e-3)
    assert rep.macro_f1 == pytest.approx((0.6667 + 0.6667) / 3, abs=1e-3)
    assert confusion_matrix(y_true, y_pred, SENTIMENTS) == [[1, 0, 1], [0, 0, 1], [0, 0, 2]]
    text = format_report(rep)
    assert "weighted avg" in text and "negative" in text
    assert expected_calibration_error([0.9, 0.9], [True, False]) == pytest.approx(0.4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ModelSettings]:
    """A real (tiny) training run through run_training: tiny Llama backbone, two small labelled sets."""
    root = tmp_path_factory.mktemp("train")
    backbone = tiny_llama_dir(root)
    sent = _csv(
        root / "sent.csv",
        ["text", "label"],
        [
            [
                f"company {i} shares {'soar after record profit' if i % 2 else 'plunge after profit warning'}",
                "positive" if i % 2 else "negative",
            ]
            for i in range(160)
        ],
    )
    topic = _csv(
        root / "topic.csv",
        ["text", "label"],
        [
            [
                f"{'dividend raised to' if i % 2 else 'crude oil falls to'} {i}",
                "Dividend" if i % 2 else "Energy | Oil",
            ]
            for i in range(160)
        ],
    )
    config = TrainConfig(
        out_dir=str(root / "model"),
        use_shared=False,
        use_real=False,
        extra_data=(f"sentiment:{sent}", f"topic:{topic}"),
        num_layers=4,
        split_layer=2,
        epochs=4,
        lr=3e-3,
        head_lr=1e-2,
        train_batch_size=16,
        patience=100,
        work_dir=str(root / "work"),
        progress=False,
    )
    settings = ModelSettings(backbone=str(backbone), cache_dir=str(root / "cache"), dtype="fp32")
    return run_training(config, settings), sent, settings


def test_training_reduces_the_loss_and_saves_a_loadable_model(
    trained: tuple[Path, Path, ModelSettings],
) -> None:
    model_dir, _, settings = trained
    card = json.loads((model_dir / "model_card.json").read_text())
    losses = [h["train_loss"] for h in card["history"]]
    assert losses[-1] < 0.5 * losses[0]
    assert card["validation"]["sent"]["weighted_f1"] == 1.0
    assert card["validation"]["topic"]["weighted_f1"] == 1.0
    assert {d["name"] for d in card["data"]} == {"sent", "topic"} and len(card["data"][0]["sha256"]) == 64
    assert "CC BY-NC-SA" in (model_dir / "model_card.md").read_text()
    for name in ("model_card.json", "model_card.md"):  # names and relative paths only, never this machine's
        assert str(model_dir.parent) not in (model_dir / name).read_text(), name
    assert card["training_config"]["extra_data"] == ["sentiment:sent.csv", "topic:topic.csv"]
    classifier = load_classifier(settings.model_copy(update={"path": str(model_dir)}))
    tags = classifier.predict(["company 999 shares plunge after profit warning", "dividend raised to 7"])
    assert tags[0].sentiment == "negative" and tags[1].topic == "Dividend"
    assert classifier.version.startswith("model-")


def test_evaluate_cli_prints_report_and_json(
    trained: tuple[Path, Path, ModelSettings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.cli import main

    model_dir, sent, settings = trained
    monkeypatch.setenv("FINPULSE_MODEL_BACKBONE", settings.backbone)
    monkeypatch.setenv("FINPULSE_MODEL_CACHE_DIR", settings.cache_dir)
    png = tmp_path / "cm.png"
    args = ["evaluate", "--data", str(sent), "--task", "sentiment", "--model", str(model_dir)]
    assert (
        main([*args, "--json", "--confusion-png", str(png), "--calibration-png", str(tmp_path / "c.png")])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"accuracy", "weighted_f1", "macro_f1", "per_class", "n"}
    assert report["n"] == 160 and report["weighted_f1"] > 0.95
    assert png.stat().st_size > 1000 and (tmp_path / "c.png").is_file()
    assert main(args) == 0
    assert "weighted avg" in capsys.readouterr().out


@pytest.mark.skipif(
    not data_dir("financial-phrasebank").is_dir(), reason="FINPULSE_DATA_DIR has no data sets"
)
def test_shared_datasets_load_with_provenance() -> None:
    examples, sources = shared_datasets(data_dir())
    counts = {s.name: s.rows for s in sources}
    assert counts["fpb"] > 3000 and counts["tweet-sentiment"] > 9000 and counts["tweet-topic"] > 16000
    assert {e.label for e in examples if e.task == "topic"} == set(TOPICS)
    assert all(len(s.sha256) == 64 for s in sources)


def test_the_card_records_names_and_relative_paths_only(tmp_path: Path) -> None:
    from dataclasses import asdict

    from monitor.nn import ModelSpec
    from training.card import write_card
    from training.data import DataSource

    out = tmp_path / "model"
    out.mkdir()
    config = TrainConfig(
        out_dir=str(out),
        data_dir=str(tmp_path / "data"),
        extra_data=(f"sentiment:{tmp_path / 'mine.csv'}",),
        work_dir=str(tmp_path / "work"),
        init_from=str(tmp_path / "previous"),
    )
    source = DataSource("mine", str(tmp_path / "data" / "mine.csv"), "0" * 64, "user-supplied", 3)
    metrics = {
        "mine": {
            "task": "sentiment",
            "n": 3,
            "accuracy": 1.0,
            "weighted_f1": 1.0,
            "macro_f1": 1.0,
            "ece": 0.0,
        }
    }
    write_card(out, ModelSpec(backbone="smollm2-135m"), asdict(config), [source], metrics, [], {}, 3, 1)
    card = json.loads((out / "model_card.json").read_text())
    assert card["training_config"]["out_dir"] == "model" and card["training_config"]["data_dir"] is None
    assert card["training_config"]["extra_data"] == ["sentiment:mine.csv"]
    assert card["training_config"]["init_from"] == "previous" and card["data"][0]["path"] == "mine.csv"
    for name in ("model_card.json", "model_card.md"):
        assert str(tmp_path) not in (out / name).read_text(), name
