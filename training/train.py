"""Fine-tuning: two heads over a (truncated) GPT backbone, trained on cached frozen-part features.

Plan (CPU-bound; see the README, section Classifier): the backbone's lower layers are frozen and run **once** over all
texts (training/features.py); only the upper layers (LoRA, or full) and the heads train, for several epochs,
on the cached boundary states. Inference runs the very same lower -> upper path (monitor/nn.py).

Loss: cross-entropy per head, each example counting only for the head its label belongs to (the other is
masked), weighted by the example weight (FPB agreement); loss = sentiment term + topic term.
Batches: shuffled, then length-bucketed (sorted within pools of 50 batches) so padding stays small.
Early stopping on the mean validation weighted F1 of the sources (FPB, tweet sentiment, tweet topic);
checkpoints (trainable state + optimizer + scheduler + RNG) every ``checkpoint_every`` steps so
``finpulse train`` resumes after an interruption.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.nn import Mode, ModelSpec, Pooling, build_network, save_network
from monitor.settings import DEFAULT_MODEL_DIR, ModelSettings
from training.data import (
    DEFAULT_DATA_DIR,
    LABELS,
    Example,
    load_labelled,
    shared_datasets,
    split_train_val,
    subsample,
    write_csv,
)
from training.evaluate import classification_report
from training.features import FeatureSet, cache_key, collate, compute_features

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    out_dir: str = str(DEFAULT_MODEL_DIR)
    data_dir: str = str(DEFAULT_DATA_DIR)
    extra_data: tuple[str, ...] = ()  # "sentiment:PATH" / "topic:PATH" (text,label CSV/JSONL)
    use_shared: bool = True
    mode: Mode = "lora"
    num_layers: int | None = 24
    split_layer: int | None = 12
    pooling: Pooling = "mean"
    max_length: int = 64
    epochs: int = 3
    lr: float = 5e-4  # LoRA / trained layers
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    train_batch_size: int = 32
    lora_r: int = 16
    lora_alpha: int = 32
    max_topic_examples: int | None = None
    fpb_min_agreement: int = 50
    val_fraction: float = 0.1
    seed: int = 13
    evals_per_epoch: int = 2
    patience: int = 4
    checkpoint_every: int = 100
    max_steps: int | None = None
    max_minutes: float | None = None  # wall-clock budget for the optimisation loop
    work_dir: str | None = None
    progress: bool = True


def make_spec(config: TrainConfig, backbone: str) -> ModelSpec:
    return ModelSpec(
        backbone=backbone,
        num_layers=config.num_layers,
        split_layer=config.split_layer,
        pooling=config.pooling,
        mode=config.mode,
        max_length=config.max_length,
        lora_r=config.lora_r,
        lora_alpha=config.lora_alpha,
    )


def masked_loss(
    topic_logits: torch.Tensor,
    sent_logits: torch.Tensor,
    topic_y: torch.Tensor,
    sent_y: torch.Tensor,
    weight: torch.Tensor,
) -> torch.Tensor:
    """Weighted CE per head; label -1 = no label for that head (masked). Empty heads contribute 0."""
    import torch.nn.functional as F

    total = topic_logits.new_zeros(())
    for logits, y in ((topic_logits, topic_y), (sent_logits, sent_y)):
        keep = y >= 0
        if keep.any():
            ce = F.cross_entropy(logits[keep].float(), y[keep], reduction="none")
            total = total + (ce * weight[keep]).sum() / weight[keep].sum()
    return total


def label_tensors(examples: list[Example], idx: list[int], spec: ModelSpec) -> tuple[Any, Any, Any]:
    import torch

    topic = [spec.topics.index(examples[i].label) if examples[i].task == "topic" else -1 for i in idx]
    sent = [spec.sentiments.index(examples[i].label) if examples[i].task == "sentiment" else -1 for i in idx]
    weight = [examples[i].weight for i in idx]
    return torch.tensor(topic), torch.tensor(sent), torch.tensor(weight, dtype=torch.float32)


def bucketed_batches(lengths: list[int], batch_size: int, seed: int, pool: int = 50) -> list[list[int]]:
    """Shuffle, sort by length inside pools of ``pool`` batches, cut, shuffle the batches (deterministic)."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    span = batch_size * pool
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def load_examples(config: TrainConfig) -> tuple[list[Example], list[Example], list[Any]]:
    """Train/validation examples and data provenance (for the card)."""
    from training.data import DataSource, file_sha256

    examples: list[Example] = []
    sources: list[Any] = []
    if config.use_shared:
        examples, sources = shared_datasets(Path(config.data_dir), config.fpb_min_agreement)
        examples = subsample(examples, "tweet-topic", config.max_topic_examples, config.seed)
    for item in config.extra_data:
        task, _, path = item.partition(":")
        if task not in LABELS:
            raise ValueError(f"--extra expects TASK:PATH with TASK sentiment|topic, got {item!r}")
        extra = load_labelled(Path(path), task)  # type: ignore[arg-type]
        examples += extra
        sources.append(
            DataSource(Path(path).stem, path, file_sha256(Path(path)), "user-supplied", len(extra))
        )
    train, val = split_train_val(examples, config.val_fraction, config.seed)
    return train, val, sources


def evaluate_features(
    net: nn.Module, feats: FeatureSet, examples: list[Example], spec: ModelSpec, device: str, bf16: bool
) -> dict[str, dict[str, Any]]:
    """Weighted/macro F1 per source on precomputed features (used for early stopping)."""
    import torch

    net.eval()
    preds: list[str] = [""] * len(examples)
    order = sorted(range(len(examples)), key=lambda i: feats.items[i].shape[0])
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(order), 128):
            idx = order[start : start + 128]
            x, mask = collate(feats, idx)
            t, s = net.upper(x.to(device), mask.to(device))
            for row, i in enumerate(idx):
                head, names = (t, spec.topics) if examples[i].task == "topic" else (s, spec.sentiments)
                preds[i] = names[int(head[row].argmax())]
    net.train()
    out = {}
    for source in sorted({e.source for e in examples}):
        idx = [i for i, e in enumerate(examples) if e.source == source]
        task = examples[idx[0]].task
        rep = classification_report([examples[i].label for i in idx], [preds[i] for i in idx], LABELS[task])
        out[source] = {
            "task": task,
            "weighted_f1": rep.weighted_f1,
            "macro_f1": rep.macro_f1,
            "accuracy": rep.accuracy,
            "n": rep.n,
        }
    return out


def _score(metrics: dict[str, dict[str, Any]]) -> float:
    return sum(m["weighted_f1"] for m in metrics.values()) / max(len(metrics), 1)


def run_training(config: TrainConfig, model: ModelSettings) -> Path:
    """Train, pick the best validation checkpoint, save the model directory with its card."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from monitor.backbone import resolve_backbone
    from monitor.classify import resolve_device, use_bf16
    from training.loop import TrainState, fit

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
    log.info("examples: %d train, %d validation; device %s, bf16 %s", len(train), len(val), device, bf16)

    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    net = build_network(AutoModel.from_pretrained(backbone_dir, dtype=torch.float32), spec).to(device)
    texts = [e.text for e in train + val]
    work = Path(config.work_dir or Path(model.cache_dir) / "train") / cache_key(spec, backbone_dir, texts)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    feats = compute_features(
        net, tokenizer, texts, spec, work / "features", device, bf16, progress=config.progress
    )
    feature_seconds = time.time() - t0
    train_feats, val_feats = FeatureSet(feats.items[: len(train)]), FeatureSet(feats.items[len(train) :])

    budget = config.max_minutes * 60 if config.max_minutes else None
    state: TrainState = fit(net, train, val, train_feats, val_feats, spec, config, work, device, bf16, budget)
    net.load_state_dict(state.best_state, strict=False)
    out_dir = Path(config.out_dir)
    version = f"{out_dir.name}-{time.strftime('%Y%m%d')}-{state.best_step}"
    save_network(net.cpu(), tokenizer, spec, out_dir, version)
    for source in sorted({e.source for e in val}):
        write_csv([e for e in val if e.source == source], work / "val" / f"{source}.csv")

    from training.card import final_validation, write_card

    final = final_validation(out_dir, val, model.model_copy(update={"path": str(out_dir)}))
    timings = {
        "features_s": round(feature_seconds),
        "train_s": round(state.train_seconds),
        "total_s": round(time.time() - started),
    }
    write_card(out_dir, spec, asdict(config), sources, final, state.history, timings, len(train), len(val))
    (work / "final_metrics.json").write_text(json.dumps(final, indent=2))
    log.info("saved %s (best step %d): %s", out_dir, state.best_step, json.dumps(final))
    return out_dir
