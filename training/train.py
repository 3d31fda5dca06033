"""Fine-tuning: two heads over a (truncated) GPT backbone, trained on cached frozen-part features.

Plan (CPU-bound; see docs/classifier.md): the backbone's lower layers are frozen and run **once** per text
(training/features.py, a content-addressed cache); only the upper layers (LoRA, or full) and the heads train,
for several epochs, on the cached boundary states. Inference runs the very same lower -> upper path
(monitor/nn.py).

Data: the shared benchmark sets (FPB, tweet sentiment, tweet topic; validation splits carved with a fixed
seed), the real headlines of ``real-headlines-labeled`` (its ``train`` split trains, its ``val`` split only
validates) and our own labels of further archive headlines (training/labels/, train only). A text that appears
in any validation set never trains. A headline with both labels is one item (one forward pass, two loss terms).

Loss: cross-entropy per head (optional label smoothing and class weights), each item counting only for the
heads it has labels for, weighted by the example weight (FPB agreement); loss = sentiment term + topic term.
Model selection: the mean validation weighted F1 over the sources; optional averaging of the best evaluations'
weights. Calibration: one temperature per head fitted on the real-headline validation logits.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monitor.nn import (
    DOMAIN_ADAPTER,
    ModelSpec,
    TwoHeadClassifier,
    build_network,
    load_weights,
    read_spec,
    save_network,
)
from monitor.settings import ModelSettings
from training.batches import NO_LABEL, Items, build_items
from training.calibrate import ece_of, fit_temperature
from training.config import TrainConfig, make_spec
from training.data import (
    EXTRA_LABELS,
    LABELS,
    DataSource,
    Example,
    data_root,
    extra_real_labels,
    file_sha256,
    load_labelled,
    norm_text,
    real_headlines,
    shared_datasets,
    split_train_val,
    subsample,
    write_csv,
)
from training.features import FeatureSet, cache_key, compute_features
from training.loop import ValSet, fit, predict_items, source_metrics

log = logging.getLogger(__name__)
REAL_PREFIX = "real"


def load_examples(config: TrainConfig) -> tuple[list[Example], list[Example], list[DataSource]]:
    """Train/validation examples and data provenance (for the card)."""
    data_dir = data_root(config.data_dir)
    carved: list[Example] = []
    sources: list[DataSource] = []
    if config.use_shared:
        carved, sources = shared_datasets(data_dir, config.fpb_min_agreement)
        carved = subsample(carved, "tweet-topic", config.max_topic_examples, config.seed)
    extra, extra_sources = _labelled_files(config.extra_data, "user-supplied")
    carved, sources = carved + extra, sources + extra_sources
    train, val = split_train_val(carved, config.val_fraction, config.seed) if carved else ([], [])
    if config.use_real:
        real_train, real_val, real_source = real_headlines(data_dir)
        ours, ours_source = extra_real_labels(
            data_dir, Path(config.real_labels) if config.real_labels else EXTRA_LABELS
        )
        train, val = train + real_train + ours, val + real_val
        sources += [real_source, ours_source]
    feedback, feedback_sources = _labelled_files(config.feedback_data, "analyst feedback")
    feedback = [dataclasses.replace(e, weight=config.feedback_weight) for e in feedback]
    train, sources = train + feedback, sources + feedback_sources
    held_out = {norm_text(e.text) for e in val}
    return [e for e in train if norm_text(e.text) not in held_out], val, sources


def _labelled_files(entries: tuple[str, ...], licence: str) -> tuple[list[Example], list[DataSource]]:
    """Examples and provenance of ``TASK:PATH`` entries."""
    examples: list[Example] = []
    sources: list[DataSource] = []
    for item in entries:
        task, _, path = item.partition(":")
        if task not in LABELS:
            raise ValueError(f"expected TASK:PATH with TASK sentiment|topic, got {item!r}")
        found = load_labelled(Path(path), task)  # type: ignore[arg-type]
        examples += found
        sources.append(
            DataSource(Path(path).stem, Path(path).name, file_sha256(Path(path)), licence, len(found))
        )
    return examples, sources


def warm_start(net: nn.Module, spec: ModelSpec, model_dir: Path) -> None:
    """Initialise heads and adapters from a trained model directory of the same architecture."""
    theirs, _ = read_spec(model_dir)
    fields = ("backbone", "num_layers", "split_layer", "pooling", "mode", "lora_r", "topics", "sentiments")
    differ = [f for f in fields if getattr(theirs, f) != getattr(spec, f)]
    if differ:
        raise ValueError(f"--init-from {model_dir}: its {', '.join(differ)} differ from this run's")
    load_weights(net, model_dir / "weights.safetensors")
    log.info("warm start from %s", model_dir)


def calibrate(
    spec: ModelSpec, val: ValSet, topic: torch.Tensor, sent: torch.Tensor
) -> tuple[ModelSpec, dict[str, Any]]:
    """Per-head temperatures fitted on the real-headline validation items (all validation items without them)."""
    report: dict[str, Any] = {}
    temps = {}
    for head, logits, labels in (("topic", topic, val.items.topic), ("sentiment", sent, val.items.sentiment)):
        real = {
            val.item_of[i]
            for i, e in enumerate(val.examples)
            if e.source.startswith(REAL_PREFIX) and e.task == head
        }
        rows = sorted(real) or [i for i, y in enumerate(labels) if y != NO_LABEL]
        x, y = logits[rows], torch.tensor([labels[i] for i in rows])
        temps[head] = fit_temperature(x, y)
        half = len(rows) // 2  # cross-fitted ECE: fit on one half, measure on the other (and back)
        cross = [
            ece_of(x[b], y[b].tolist(), fit_temperature(x[a], y[a]))
            for a, b in ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half)))
        ]
        report[head] = {
            "temperature": temps[head],
            "n": len(rows),
            "ece_before": ece_of(x, y.tolist()),
            "ece_after": ece_of(x, y.tolist(), temps[head]),
            "ece_cross_fitted": round(sum(cross) / 2, 4),
        }
    log.info("calibration: %s", report)
    return dataclasses.replace(
        spec, topic_temperature=temps["topic"], sentiment_temperature=temps["sentiment"]
    ), report


def _features(
    net: TwoHeadClassifier,
    tokenizer: Any,
    texts: list[str],
    spec: ModelSpec,
    backbone_dir: Path,
    config: TrainConfig,
    model: ModelSettings,
    device: str,
    bf16: bool,
) -> FeatureSet:
    root = Path(config.work_dir or Path(model.cache_dir) / "train")
    return compute_features(
        net,
        tokenizer,
        texts,
        spec,
        root / f"features-{cache_key(spec, backbone_dir)}",
        device,
        bf16,
        progress=config.progress,
    )


def run_training(config: TrainConfig, model: ModelSettings) -> Path:
    """Train, pick the best validation checkpoint, calibrate, save the model directory with its card."""
    from transformers import AutoModel, AutoTokenizer

    from monitor.backbone import resolve_backbone
    from monitor.classify import resolve_device, use_bf16

    started = time.time()
    if model.threads > 0:
        torch.set_num_threads(model.threads)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    device = resolve_device(model.device)
    bf16 = use_bf16(model.dtype, device)
    backbone_dir = resolve_backbone(model.backbone, model.cache_dir)
    spec = make_spec(config, model.backbone)
    train, val, sources = load_examples(config)
    items, _ = build_items(train, spec)
    val_items, val_item_of = build_items(val, spec)
    log.info(
        "examples: %d train (%d texts), %d validation; device %s, bf16 %s",
        len(train),
        len(items),
        len(val),
        device,
        bf16,
    )

    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    domain_state = None
    if config.domain_adapter:
        from safetensors.torch import load_file

        domain_state = load_file(config.domain_adapter)
        spec = dataclasses.replace(spec, domain_adapted=True)
    net = build_network(AutoModel.from_pretrained(backbone_dir, dtype=torch.float32), spec, domain_state).to(
        device
    )
    if config.init_from:
        warm_start(net, spec, Path(config.init_from))
    t0 = time.time()
    feats = _features(
        net, tokenizer, items.texts + val_items.texts, spec, backbone_dir, config, model, device, bf16
    )
    feature_seconds = time.time() - t0
    train_feats, val_feats = FeatureSet(feats.items[: len(items)]), FeatureSet(feats.items[len(items) :])
    valset = ValSet(val, val_items, val_item_of, val_feats)
    work = Path(config.work_dir or Path(model.cache_dir) / "train")
    work.mkdir(parents=True, exist_ok=True)

    budget = config.max_minutes * 60 if config.max_minutes else None
    state, weights = fit(net, items, train_feats, valset, spec, config, work, device, bf16, budget)
    net.load_state_dict(weights, strict=False)
    calibration: dict[str, Any] = {}
    if config.calibrate:
        spec, calibration = calibrate(spec, valset, *predict_items(net, val_feats, device, bf16))
    out_dir = Path(config.out_dir)
    version = f"{out_dir.name}-{time.strftime('%Y%m%d')}-{state.best_step if state.best_step >= 0 else 'avg'}"
    save_network(net.cpu(), tokenizer, spec, out_dir, version)
    if domain_state is not None:
        shutil.copyfile(str(config.domain_adapter), out_dir / DOMAIN_ADAPTER)
    for source in sorted({e.source for e in val}):
        write_csv([e for e in val if e.source == source], work / "val" / f"{source}.csv")

    from training.card import final_validation, write_card

    final = (
        final_validation(out_dir, val, model.model_copy(update={"path": str(out_dir)}))
        if config.final_eval
        else source_metrics(valset, *predict_items(net, val_feats, device, bf16), spec)
    )
    timings = {
        "features_s": round(feature_seconds),
        "train_s": round(state.train_seconds),
        "total_s": round(time.time() - started),
    }
    write_card(
        out_dir,
        spec,
        {**asdict(config), "out_dir": str(out_dir)},
        sources,
        final,
        state.history,
        timings,
        len(train),
        len(val),
        calibration,
    )
    (work / "final_metrics.json").write_text(json.dumps(final, indent=2))
    log.info(
        "saved %s (best step %s): %s",
        out_dir,
        state.best_step,
        json.dumps({k: v["weighted_f1"] for k, v in final.items()}),
    )
    return out_dir


__all__ = ["Items", "TrainConfig", "load_examples", "run_training"]
