"""Training on real headlines: archive joins, two-label items, calibration, checkpoint averaging, domain-adaptive
pre-training and a warm-started, calibrated run on the tiny Llama."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from monitor.classify import load_classifier
from monitor.nn import ModelSpec
from monitor.settings import ModelSettings
from tests.conftest import data_dir
from tests.test_nn import tiny_llama_dir
from training.batches import NO_LABEL, build_items, class_weights, masked_loss
from training.calibrate import ece_of, fit_temperature
from training.config import TrainConfig
from training.data import (
    DataError,
    Example,
    archive_headlines,
    clean_headline,
    extra_real_labels,
    headline_key,
    real_headlines,
)
from training.loop import average_state
from training.pretrain import PretrainConfig, run_pretraining
from training.train import run_training


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _archive(root: Path, titles: dict[str, list[str]]) -> Path:
    """A news-headlines-2017-2020 folder in the real files' formats (Guardian section prefixes included)."""
    d = root / "news-headlines-2017-2020"
    _write(d / "Reuters.csv", ["Time", "Headlines"], [["Jul 18 2020", t] for t in titles.get("Reuters", [])])
    _write(
        d / "guardian_headlines.csv",
        ["Time", "Headlines"],
        [["18-Jul-20", t] for t in titles.get("Guardian", [])],
    )
    _write(
        d / "cnbc_headlines.csv",
        ["Headlines", "Time", "Description"],
        [[t, " 7:51  PM ET Fri, 17 July 2020", ""] for t in titles.get("CNBC", [])],
    )
    return root


def test_clean_headline_drops_guardian_section_labels() -> None:
    assert (
        clean_headline("Nils Pratley on finance  \n\n\n  Centrica left it  far too late")
        == "Centrica left it far too late"
    )
    assert clean_headline("  Oil falls 7%\tafter curbs ") == "Oil falls 7% after curbs"
    assert headline_key("Nils Pratley on finance \n\n Centrica left it far too late") == headline_key(
        "Centrica left it far too late"
    )


def test_extra_labels_join_the_archive_by_key_and_never_copy_text(tmp_path: Path) -> None:
    root = _archive(
        tmp_path,
        {"Reuters": ["Boeing shares fall after second crash"], "Guardian": ["Markets \n\n\n Pound slumps"]},
    )
    assert {t for _, t in archive_headlines(root).values()} == {
        "Boeing shares fall after second crash",
        "Pound slumps",
    }
    labels = _write(
        tmp_path / "labels.csv",
        ["key", "source", "sentiment", "topic", "annotator"],
        [[headline_key("Pound slumps"), "Guardian", "negative", "Currencies", "a"]],
    )
    examples, source = extra_real_labels(root, labels)
    assert [(e.text, e.task, e.label, e.source) for e in examples] == [
        ("Pound slumps", "sentiment", "negative", "real-extra-sentiment"),
        ("Pound slumps", "topic", "Currencies", "real-extra-topic"),
    ]
    assert source.rows == 1 and "Pound" not in labels.read_text()
    bad = _write(
        tmp_path / "bad.csv",
        ["key", "source", "sentiment", "topic", "annotator"],
        [["0" * 16, "x", "negative", "Markets", "a"]],
    )
    with pytest.raises(DataError, match="not in"):
        extra_real_labels(root, bad)


def test_the_shipped_extra_labels_all_join_the_archive() -> None:
    if not data_dir("news-headlines-2017-2020").is_dir():
        pytest.skip("FINPULSE_DATA_DIR has no news archive")
    examples, source = extra_real_labels(data_dir())
    _, val, _ = real_headlines(data_dir())
    assert source.rows >= 10_000 and len(examples) == 2 * source.rows
    assert not {e.text.casefold() for e in examples} & {e.text.casefold() for e in val}  # never a val text


def test_items_merge_both_labels_of_a_headline() -> None:
    spec = ModelSpec()
    examples = [
        Example("Oil falls", "sentiment", "negative", "real-sentiment"),
        Example("Oil falls", "topic", "Energy | Oil", "real-topic"),
        Example(
            "oil  falls", "sentiment", "positive", "other"
        ),  # same text after normalisation: first label wins
        Example("Fed holds", "topic", "Fed | Central Banks", "t", 0.5),
    ]
    items, item_of = build_items(examples, spec)
    assert items.texts == ["Oil falls", "Fed holds"] and item_of == [0, 0, 0, 1]
    assert items.sentiment == [spec.sentiments.index("negative"), NO_LABEL]
    assert items.topic == [spec.topics.index("Energy | Oil"), spec.topics.index("Fed | Central Banks")]
    assert items.topic_weight == [1.0, 0.5] and items.sentiment_weight == [1.0, 0.0]


def test_class_weights_and_label_smoothing() -> None:
    w = class_weights([0, 0, 0, 1, NO_LABEL], 3, power=1.0)
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == 0.0
    assert (3 * w[0] + w[1]) / 4 == pytest.approx(1.0)
    assert class_weights([0, 1], 2, power=0.0) == [1.0, 1.0]
    logits = torch.tensor([[8.0, -8.0, -8.0]])
    y = torch.tensor([0])
    none = torch.tensor([-1])
    sharp = masked_loss(torch.zeros(1, 20), logits, none, y, torch.ones(1))
    smooth = masked_loss(torch.zeros(1, 20), logits, none, y, torch.ones(1), label_smoothing=0.2)
    assert smooth > sharp  # a confident right answer still pays under smoothing


def test_temperature_fit_lowers_ece_on_an_overconfident_model() -> None:
    gen = torch.Generator().manual_seed(0)
    n, k = 4000, 3
    labels = torch.randint(0, k, (n,), generator=gen)
    clean = torch.randn(n, k, generator=gen)
    clean[torch.arange(n), labels] += 1.0  # a model right ~60 % of the time...
    logits = clean * 6.0  # ...that says so at ~99 % confidence
    t = fit_temperature(logits, labels)
    assert 3.0 < t < 12.0
    assert ece_of(logits, labels.tolist(), t) < 0.03 < ece_of(logits, labels.tolist())
    assert (logits / t).argmax(-1).equal(logits.argmax(-1))  # predictions unchanged


def test_checkpoint_average_is_the_elementwise_mean() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor([2.0])}
    avg = average_state([a, b])
    torch.testing.assert_close(avg["w"], torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(avg["b"], torch.tensor([1.0]))
    torch.testing.assert_close(average_state([a])["w"], a["w"])


@pytest.fixture(scope="module")
def tiny_real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny labelled real-headline set + archive, and a tiny Llama backbone."""
    root = tmp_path_factory.mktemp("real")
    good = [f"Company {i} shares soar after record profit" for i in range(60)]
    bad = [f"Company {i} shares plunge after profit warning" for i in range(60)]
    rows = [
        [
            f"d{i}",
            "val" if i % 5 == 0 else "train",
            "Reuters",
            "Jul 18 2020",
            t,
            "positive" if t in good else "negative",
            "Earnings" if i % 2 else "Stock Movement",
        ]
        for i, t in enumerate(good + bad)
    ]
    _write(
        root / "real-headlines-labeled" / "real_headlines_labeled.csv",
        ["id", "split", "source", "time", "title", "sentiment", "topic"],
        rows,
    )
    extra = [f"Bank {i} shares {'jump after beat' if i % 2 else 'slump after loss'}" for i in range(40)]
    _archive(root, {"Reuters": extra + [f"unlabelled headline number {i} about markets" for i in range(80)]})
    labels = _write(
        root / "labels.csv",
        ["key", "source", "sentiment", "topic", "annotator"],
        [
            [headline_key(t), "Reuters", "positive" if "jump" in t else "negative", "Earnings", "a"]
            for t in extra
        ],
    )
    return {"data": root, "labels": labels, "backbone": tiny_llama_dir(root)}


def test_domain_pretraining_lowers_the_heldout_lm_loss(tiny_real: dict[str, Path], tmp_path: Path) -> None:
    settings = ModelSettings(
        backbone=str(tiny_real["backbone"]), cache_dir=str(tmp_path / "cache"), dtype="fp32"
    )
    config = PretrainConfig(
        out=str(tmp_path / "domain.safetensors"),
        data_dir=str(tiny_real["data"]),
        heldout=20,
        num_layers=4,
        split_layer=2,
        epochs=6,
        lr=3e-3,
        batch_size=16,
        progress=False,
    )
    exclude = {"company 0 shares soar after record profit"}
    report = run_pretraining(config, settings, exclude)
    assert report["heldout_lm_loss_after"] < report["heldout_lm_loss_before"] - 0.3
    assert (
        report["texts"] + report["heldout"] == 120
    )  # the archive's headlines (the excluded one is not among them)
    saved = json.loads((tmp_path / "domain.json").read_text())
    assert saved["steps"] > 0 and (tmp_path / "domain.safetensors").stat().st_size > 1000


def test_warm_started_calibrated_run_with_a_domain_adapter(
    tiny_real: dict[str, Path], tmp_path: Path
) -> None:
    settings = ModelSettings(
        backbone=str(tiny_real["backbone"]), cache_dir=str(tmp_path / "cache"), dtype="fp32"
    )
    domain = tmp_path / "domain.safetensors"
    run_pretraining(
        PretrainConfig(
            out=str(domain),
            data_dir=str(tiny_real["data"]),
            heldout=10,
            num_layers=4,
            split_layer=2,
            epochs=1,
            batch_size=16,
            progress=False,
        ),
        settings,
        set(),
    )
    base = dict(
        data_dir=str(tiny_real["data"]),
        real_labels=str(tiny_real["labels"]),
        use_shared=False,
        num_layers=4,
        split_layer=2,
        lr=3e-3,
        head_lr=1e-2,
        train_batch_size=16,
        patience=100,
        progress=False,
        work_dir=str(tmp_path / "work"),
    )
    first = run_training(TrainConfig(out_dir=str(tmp_path / "m1"), epochs=3, **base), settings)
    second = run_training(
        TrainConfig(
            out_dir=str(tmp_path / "m2"),
            epochs=1,
            init_from=str(first),
            domain_adapter=str(domain),
            average_last=3,
            label_smoothing=0.1,
            **base,
        ),
        settings,
    )
    card = json.loads((second / "model_card.json").read_text())
    assert set(card["validation"]) == {"real-sentiment", "real-topic"}
    assert card["validation"]["real-sentiment"]["weighted_f1"] == 1.0
    assert card["calibration"]["sentiment"]["temperature"] > 0
    assert {d["name"] for d in card["data"]} == {"real-headlines", "real-headlines-extra"}
    assert all(not d["path"].startswith("/") for d in card["data"])
    assert (second / "domain_adapter.safetensors").is_file() and (
        second / "confusion-real-topic.png"
    ).is_file()
    assert any(str(h["step"]).startswith("avg") for h in card["history"])  # the average was evaluated
    spec = json.loads((second / "config.json").read_text())
    assert spec["domain_adapted"] is True
    classifier = load_classifier(settings.model_copy(update={"path": str(second)}))
    tags = classifier.predict(
        ["Company 999 shares plunge after profit warning", "Company 7 shares soar after record profit"]
    )
    assert [t.sentiment for t in tags] == ["negative", "positive"]


def test_a_kept_state_does_not_move_on_with_training() -> None:
    from monitor.nn import trained_state
    from monitor.testing import tiny_random_network

    net = tiny_random_network()
    kept = trained_state(net)
    name, param = next((n, p) for n, p in net.named_parameters() if p.requires_grad)
    before = kept[name].clone()
    with torch.no_grad():
        param.add_(1.0)
    torch.testing.assert_close(kept[name], before)
