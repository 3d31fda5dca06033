"""Domain-adaptive continued pre-training (DAPT): causal-LM training of the trained part of the backbone on
unlabelled real headlines, before the classifier is fine-tuned (the recipe behind FinBERT-style models, sized
for a CPU).

The classifier freezes the layers below ``split_layer`` and trains LoRA adapters above it (monitor/nn.py), so
DAPT adapts exactly that part: LoRA adapters on the upper layers learn next-token prediction over the
headlines, reading the same cached boundary states the classifier reads (training/features.py) and predicting
through the tied embedding matrix. The adapters are saved as a *domain adapter*; ``finpulse train
--domain-adapter FILE`` folds them into the upper layers' weights and trains the classifier's own adapters on
top, and the model directory keeps the file so inference rebuilds the same weights. Validation texts never
enter: every text that a validation set holds is removed first."""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from monitor.nn import ModelSpec, TwoHeadClassifier, build_network, encode_texts, lora_state, pad_batch
from monitor.settings import ModelSettings
from training.batches import bucketed_batches
from training.data import archive_headlines, data_root, norm_text
from training.features import FeatureSet, cache_key, compute_features

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PretrainConfig:
    out: str  # the domain adapter file (.safetensors); a .json report is written beside it
    data_dir: str | None = None
    texts_file: str | None = None  # one text per line instead of the news archive
    max_texts: int | None = None  # a seeded sample of the texts (compute budget)
    heldout: int = 500  # texts kept out to measure the LM loss before/after
    num_layers: int | None = 24
    split_layer: int | None = 12
    max_length: int = 64
    lora_r: int = 16
    lora_alpha: int = 32
    epochs: int = 2
    lr: float = 3e-4
    batch_size: int = 32
    warmup_frac: float = 0.05
    max_minutes: float | None = None
    seed: int = 13
    work_dir: str | None = None
    progress: bool = True


def lm_loss(net: TwoHeadClassifier, x: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of the upper part over non-pad positions (x: boundary states or ids)."""
    import torch.nn.functional as F

    bb = net.backbone
    if net.spec.split_layer is None:
        h = bb(input_ids=x, attention_mask=mask).last_hidden_state
    else:
        h = net._run_layers(x.to(bb.embed_tokens.weight.dtype), mask, net.spec.split_layer, len(bb.layers))
        h = bb.norm(h)
    logits = h[:, :-1].float() @ bb.get_input_embeddings().weight.float().T  # (B, T-1, V), tied embeddings
    keep = mask[:, 1:].bool() & mask[:, :-1].bool()
    return F.cross_entropy(logits[keep], ids[:, 1:][keep])


def pretrain_texts(config: PretrainConfig, exclude: set[str]) -> list[str]:
    """The archive's headlines (or a file's lines), minus every excluded (validation) text, seeded sample."""
    if config.texts_file:
        lines = Path(config.texts_file).read_text(encoding="utf-8").splitlines()
        texts = [t.strip() for t in lines if t.strip()]
    else:
        texts = [t for _, t in archive_headlines(data_root(config.data_dir)).values()]
    seen: set[str] = set()
    kept = []
    for t in texts:
        key = norm_text(t)
        if key and key not in exclude and key not in seen:
            seen.add(key)
            kept.append(t)
    rng = random.Random(config.seed)
    rng.shuffle(kept)
    return kept[: config.max_texts + config.heldout] if config.max_texts else kept


def mean_lm_loss(net: TwoHeadClassifier, feats: FeatureSet, ids: list[list[int]], batch: int = 64) -> float:
    net.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(ids), batch):
            idx = list(range(start, min(start + batch, len(ids))))
            x, mask = pad_batch([feats.items[i] for i in idx], 0)
            y, _ = pad_batch([ids[i] for i in idx], 0)
            n = int((mask[:, 1:] & mask[:, :-1]).sum())
            if n:
                total += float(lm_loss(net, x, mask, y)) * n
                count += n
    net.train()
    return total / max(count, 1)


def run_pretraining(config: PretrainConfig, model: ModelSettings, exclude: set[str]) -> dict[str, Any]:
    """Train the domain adapter; returns (and writes beside it) a report with the held-out LM loss."""
    from safetensors.torch import save_file
    from tqdm import tqdm
    from transformers import AutoModel, AutoTokenizer

    from monitor.backbone import resolve_backbone

    started = time.time()
    if model.threads > 0:
        torch.set_num_threads(model.threads)
    torch.manual_seed(config.seed)
    backbone_dir = resolve_backbone(model.backbone, model.cache_dir)
    spec = ModelSpec(
        backbone=model.backbone,
        num_layers=config.num_layers,
        split_layer=config.split_layer,
        mode="lora",
        max_length=config.max_length,
        lora_r=config.lora_r,
        lora_alpha=config.lora_alpha,
    )
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    net = build_network(AutoModel.from_pretrained(backbone_dir, dtype=torch.float32), spec)
    texts = pretrain_texts(config, exclude)
    held, train = texts[: config.heldout], texts[config.heldout :]
    root = Path(config.work_dir or Path(model.cache_dir) / "train")
    feats = compute_features(
        net,
        tokenizer,
        held + train,
        spec,
        root / f"features-{cache_key(spec, backbone_dir)}",
        progress=config.progress,
    )
    ids = encode_texts(tokenizer, held + train, spec.max_length)
    held_feats, train_feats = FeatureSet(feats.items[: len(held)]), FeatureSet(feats.items[len(held) :])
    held_ids, train_ids = ids[: len(held)], ids[len(held) :]
    before = mean_lm_loss(net, held_feats, held_ids)
    log.info("DAPT on %d texts (%d held out); held-out LM loss before %.4f", len(train), len(held), before)
    params = [p for n, p in net.named_parameters() if ".lora_" in n]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    lengths = train_feats.lengths()
    per_epoch = len(bucketed_batches(lengths, config.batch_size, 0))
    total = per_epoch * config.epochs
    warmup = max(1, int(config.warmup_frac * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    net.train()
    step, stopped = 0, "done"
    bar = tqdm(total=total, desc="pretrain", unit="step", disable=not config.progress, mininterval=10)
    for epoch in range(config.epochs):
        for idx in bucketed_batches(lengths, config.batch_size, config.seed + epoch):
            x, mask = pad_batch([train_feats.items[i] for i in idx], 0)
            y, _ = pad_batch([train_ids[i] for i in idx], 0)
            loss = lm_loss(net, x, mask, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", epoch=epoch)
            if config.max_minutes and time.time() - started > config.max_minutes * 60:
                stopped = f"time budget of {config.max_minutes} min reached"
                break
        if stopped != "done":
            break
    bar.close()
    after = mean_lm_loss(net, held_feats, held_ids)
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(lora_state(net), str(out), metadata={"format": "pt", "split_layer": str(config.split_layer)})
    report = {
        "texts": len(train),
        "heldout": len(held),
        "steps": step,
        "stopped": stopped,
        "heldout_lm_loss_before": round(before, 4),
        "heldout_lm_loss_after": round(after, 4),
        "seconds": round(time.time() - started),
        "config": {**asdict(config), "out": out.name, "data_dir": None, "work_dir": None},
    }
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    log.info("domain adapter %s: held-out LM loss %.4f -> %.4f", out, before, after)
    return report
