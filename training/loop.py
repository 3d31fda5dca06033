"""The optimisation loop over cached features: AdamW, warmup + linear decay, bf16 autocast, periodic
validation with early stopping, resumable checkpoints, and an optional wall-clock budget."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.nn import ModelSpec, trained_state
from training.data import Example
from training.features import FeatureSet, collate

if TYPE_CHECKING:
    from torch import nn

    from training.train import TrainConfig

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TrainState:
    step: int = 0
    best_score: float = -1.0
    best_step: int = 0
    bad_evals: int = 0
    best_state: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    stopped: str = ""


def config_hash(config: TrainConfig) -> str:
    """Checkpoints resume only a run with the same optimisation settings."""
    import hashlib
    import json
    from dataclasses import asdict

    ignore = {"out_dir", "progress", "max_minutes", "work_dir"}
    kept = {k: v for k, v in asdict(config).items() if k not in ignore}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _optimizer(net: nn.Module, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    import torch

    heads = [p for n, p in net.named_parameters() if p.requires_grad and n.split(".")[0].endswith("_head")]
    body = [p for n, p in net.named_parameters() if p.requires_grad and not n.split(".")[0].endswith("_head")]
    groups = [{"params": heads, "lr": config.head_lr}]
    if body:
        groups.append({"params": body, "lr": config.lr})
    opt = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    warmup = max(1, int(config.warmup_frac * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def fit(
    net: nn.Module,
    train: list[Example],
    val: list[Example],
    train_feats: FeatureSet,
    val_feats: FeatureSet,
    spec: ModelSpec,
    config: TrainConfig,
    work: Path,
    device: str,
    bf16: bool,
    max_seconds: float | None = None,
) -> TrainState:
    import torch
    from tqdm import tqdm

    from training.train import bucketed_batches, label_tensors, masked_loss

    lengths = train_feats.lengths()
    per_epoch = len(bucketed_batches(lengths, config.train_batch_size, 0))
    total = (
        per_epoch * config.epochs
        if config.max_steps is None
        else min(config.max_steps, per_epoch * config.epochs)
    )
    eval_every = max(1, per_epoch // max(1, config.evals_per_epoch))
    opt, sched = _optimizer(net, config, total)
    state = TrainState()
    ckpt = work / f"checkpoint-{config_hash(config)}.pt"
    if ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False)
        net.load_state_dict(saved["trainable"], strict=False)
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        state = saved["state"]
        if state.stopped.startswith("time budget"):
            state.stopped = ""  # a new run brings a new budget
        torch.set_rng_state(saved["rng"])
        log.info("resumed from %s at step %d", ckpt, state.step)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    net.train()
    bar = tqdm(
        total=total,
        initial=state.step,
        desc="train",
        unit="step",
        disable=not config.progress,
        mininterval=10,
    )
    started = time.time() - state.train_seconds
    running = 0.0
    while state.step < total and not state.stopped:
        epoch, offset = divmod(state.step, per_epoch)
        batches = bucketed_batches(lengths, config.train_batch_size, config.seed + epoch)
        for idx in batches[offset:]:
            x, mask = collate(train_feats, idx)
            topic_y, sent_y, weight = (t.to(device) for t in label_tensors(train, idx, spec))
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                t_logits, s_logits = net.upper(x.to(device), mask.to(device))
            loss = masked_loss(t_logits, s_logits, topic_y, sent_y, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], 1.0)
            opt.step()
            sched.step()
            state.step += 1
            running = 0.98 * running + 0.02 * loss.item() if state.step > 1 else loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}", epoch=epoch)
            state.train_seconds = time.time() - started
            if state.step % eval_every == 0 or state.step == total:
                _evaluate(net, val, val_feats, spec, device, bf16, state, config, running, epoch)
            if max_seconds is not None and state.train_seconds > max_seconds:
                state.stopped = f"time budget of {max_seconds:.0f} s reached"
            if state.step % config.checkpoint_every == 0 or state.stopped or state.step == total:
                _checkpoint(ckpt, net, opt, sched, state)
            if state.stopped or state.step >= total:
                break
    bar.close()
    if not state.best_state:
        _evaluate(net, val, val_feats, spec, device, bf16, state, config, running, -1)
    log.info(
        "training stopped at step %d (%s); best step %d", state.step, state.stopped or "done", state.best_step
    )
    return state


def _evaluate(
    net: nn.Module,
    val: list[Example],
    val_feats: FeatureSet,
    spec: ModelSpec,
    device: str,
    bf16: bool,
    state: TrainState,
    config: TrainConfig,
    loss: float,
    epoch: int,
) -> None:
    from training.train import _score, evaluate_features

    metrics = evaluate_features(net, val_feats, val, spec, device, bf16)
    score = _score(metrics)
    state.history.append(
        {
            "step": state.step,
            "epoch": epoch,
            "train_loss": round(loss, 4),
            "val_score": round(score, 4),
            "seconds": round(state.train_seconds),
            **{k: v["weighted_f1"] for k, v in metrics.items()},
        }
    )
    log.info("step %d: val %s", state.step, state.history[-1])
    if score > state.best_score:
        state.best_score, state.best_step, state.bad_evals = score, state.step, 0
        state.best_state = trained_state(net)
    else:
        state.bad_evals += 1
        if state.bad_evals >= config.patience:
            state.stopped = f"early stopping: no improvement in {config.patience} evaluations"


def _checkpoint(path: Path, net: nn.Module, opt: Any, sched: Any, state: TrainState) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "trainable": trained_state(net),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "state": state,
            "rng": torch.get_rng_state(),
        },
        tmp,
    )
    tmp.rename(path)
