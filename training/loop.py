"""The optimisation loop over cached features: AdamW, warmup + linear decay, bf16 autocast where native,
periodic validation with early stopping, checkpoint averaging, resumable checkpoints and a wall-clock budget.

Checkpoints hold plain values and state dicts only (loaded with ``weights_only=True``): the trainable
tensors, the optimizer and scheduler state, the RNG state and the loop's progress as a dict."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monitor.nn import ModelSpec, TwoHeadClassifier, trained_state
from training.batches import Items, bucketed_batches, class_weights, label_tensors, masked_loss
from training.config import TrainConfig
from training.data import LABELS, Example
from training.evaluate import classification_report
from training.features import FeatureSet, collate

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TrainState:
    step: int = 0
    best_score: float = -1.0
    best_step: int = 0
    bad_evals: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    stopped: str = ""


@dataclass(frozen=True, slots=True)
class ValSet:
    """Validation examples, the distinct items they map to, and the items' cached features."""

    examples: list[Example]
    items: Items
    item_of: list[int]
    feats: FeatureSet


def config_hash(config: TrainConfig) -> str:
    """Checkpoints resume only a run with the same optimisation settings."""
    ignore = {"out_dir", "progress", "max_minutes", "work_dir", "calibrate"}
    kept = {k: v for k, v in asdict(config).items() if k not in ignore}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _optimizer(net: nn.Module, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    heads = [p for n, p in named if n.split(".")[0].endswith("_head")]
    body = [p for n, p in named if not n.split(".")[0].endswith("_head")]
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


def predict_items(
    net: TwoHeadClassifier, feats: FeatureSet, device: str, bf16: bool, batch: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, n_topics), (N, n_sentiments) fp32 logits for every item of ``feats`` (eval mode, no grad)."""
    was_training = net.training
    net.eval()
    order = sorted(range(len(feats.items)), key=lambda i: feats.items[i].shape[0])
    topic: torch.Tensor | None = None
    sent: torch.Tensor | None = None
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            x, mask = collate(feats, idx)
            t, s = net.upper(x.to(device), mask.to(device))
            if topic is None or sent is None:
                topic = torch.empty(len(order), t.shape[1])
                sent = torch.empty(len(order), s.shape[1])
            topic[idx], sent[idx] = t.float().cpu(), s.float().cpu()
    net.train(was_training)
    assert topic is not None and sent is not None
    return topic, sent


def source_metrics(
    val: ValSet, topic: torch.Tensor, sent: torch.Tensor, spec: ModelSpec
) -> dict[str, dict[str, Any]]:
    """Weighted/macro F1 per validation source from item logits."""
    out = {}
    for source in sorted({e.source for e in val.examples}):
        idx = [i for i, e in enumerate(val.examples) if e.source == source]
        task = val.examples[idx[0]].task
        logits, names = (topic, spec.topics) if task == "topic" else (sent, spec.sentiments)
        pred = [names[int(logits[val.item_of[i]].argmax())] for i in idx]
        rep = classification_report([val.examples[i].label for i in idx], pred, LABELS[task])
        out[source] = {"task": task, "weighted_f1": rep.weighted_f1, "macro_f1": rep.macro_f1, "n": rep.n}
    return out


def score(metrics: dict[str, dict[str, Any]]) -> float:
    """Model selection: the mean weighted F1 over the validation sources (each data kind counts once)."""
    return sum(m["weighted_f1"] for m in metrics.values()) / max(len(metrics), 1)


def fit(
    net: TwoHeadClassifier,
    items: Items,
    feats: FeatureSet,
    val: ValSet,
    spec: ModelSpec,
    config: TrainConfig,
    work: Path,
    device: str,
    bf16: bool,
    max_seconds: float | None = None,
) -> tuple[TrainState, dict[str, torch.Tensor]]:
    """Train; returns the loop state and the selected trainable weights (best, or the average of the best N)."""
    from tqdm import tqdm

    lengths = feats.lengths()
    per_epoch = len(bucketed_batches(lengths, config.train_batch_size, 0))
    total = (
        per_epoch * config.epochs
        if config.max_steps is None
        else min(config.max_steps, per_epoch * config.epochs)
    )
    eval_every = max(1, per_epoch // max(1, config.evals_per_epoch))
    opt, sched = _optimizer(net, config, total)
    cw = tuple(
        torch.tensor(class_weights(y, n, config.class_balance))
        for y, n in ((items.topic, len(spec.topics)), (items.sentiment, len(spec.sentiments)))
    )
    state = TrainState()
    ckpt = work / f"checkpoint-{config_hash(config)}.pt"
    kept: list[tuple[float, int, dict[str, torch.Tensor]]] = []  # (score, step, weights) of the best evals
    if ckpt.is_file():
        state, kept = _resume(ckpt, net, opt, sched)
    if state.step == 0 and config.init_from:  # where the warm start begins
        _evaluate(net, val, spec, device, bf16, state, config, float("nan"), 0, [])
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
        for idx in bucketed_batches(lengths, config.train_batch_size, config.seed + epoch)[offset:]:
            x, mask = collate(feats, idx)
            topic_y, sent_y, topic_w, sent_w = (t.to(device) for t in label_tensors(items, idx))
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                t_logits, s_logits = net.upper(x.to(device), mask.to(device))
            loss = masked_loss(
                t_logits,
                s_logits,
                topic_y,
                sent_y,
                topic_w,
                sent_w,
                config.label_smoothing,
                (cw[0].to(device), cw[1].to(device)),
            )
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
                _evaluate(net, val, spec, device, bf16, state, config, running, epoch, kept)
            if max_seconds is not None and state.train_seconds > max_seconds:
                state.stopped = f"time budget of {max_seconds:.0f} s reached"
            if state.step % config.checkpoint_every == 0 or state.stopped or state.step >= total:
                _checkpoint(ckpt, net, opt, sched, state, kept)
            if state.stopped or state.step >= total:
                break
    bar.close()
    if not kept:
        _evaluate(net, val, spec, device, bf16, state, config, running, -1, kept)
    log.info(
        "training stopped at step %d (%s); best step %d", state.step, state.stopped or "done", state.best_step
    )
    return state, select_weights(net, val, spec, device, bf16, state, kept)


def average_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of several trainable-weight dicts (same keys)."""
    return {k: sum(s[k] for s in states) / len(states) for k in states[0]}  # type: ignore[misc]


def select_weights(
    net: TwoHeadClassifier,
    val: ValSet,
    spec: ModelSpec,
    device: str,
    bf16: bool,
    state: TrainState,
    kept: list[tuple[float, int, dict[str, torch.Tensor]]],
) -> dict[str, torch.Tensor]:
    """The best evaluation's weights, or the average of the kept best ones when that validates higher.

    Of evaluations with the same score the latest wins: a warm start (``init_from``) is evaluated at step 0,
    and on a validation set it already saturates, picking that first evaluation would save the starting
    weights unchanged and silently drop what the run added (a fine-tune on analysts' corrections)."""
    best = max(kept, key=lambda k: (k[0], k[1]))
    if len(kept) < 2:
        return best[2]
    averaged = average_state([k[2] for k in kept])
    net.load_state_dict(averaged, strict=False)
    metrics = source_metrics(val, *predict_items(net, val.feats, device, bf16), spec)
    avg_score = score(metrics)
    steps = sorted(k[1] for k in kept)
    state.history.append(
        {
            "step": f"avg{steps}",
            "epoch": "",
            "train_loss": "",
            "val_score": round(avg_score, 4),
            "seconds": round(state.train_seconds),
            **{k: v["weighted_f1"] for k, v in metrics.items()},
        }
    )
    log.info(
        "checkpoint average of steps %s: %.4f (best single %.4f at step %d)",
        steps,
        avg_score,
        best[0],
        best[1],
    )
    if avg_score >= best[0]:
        state.best_step, state.best_score = -1, avg_score
        return averaged
    return best[2]


def _evaluate(
    net: TwoHeadClassifier,
    val: ValSet,
    spec: ModelSpec,
    device: str,
    bf16: bool,
    state: TrainState,
    config: TrainConfig,
    loss: float,
    epoch: int,
    kept: list[tuple[float, int, dict[str, torch.Tensor]]],
) -> None:
    metrics = source_metrics(val, *predict_items(net, val.feats, device, bf16), spec)
    value = score(metrics)
    state.history.append(
        {
            "step": state.step,
            "epoch": epoch,
            "train_loss": round(loss, 4),
            "val_score": round(value, 4),
            "seconds": round(state.train_seconds),
            **{k: v["weighted_f1"] for k, v in metrics.items()},
        }
    )
    log.info("step %d: val %s", state.step, state.history[-1])
    keep_best(kept, (value, state.step, trained_state(net)), config.average_last)
    improved = value > state.best_score
    if value >= state.best_score:
        state.best_score, state.best_step = value, state.step
    if improved:
        state.bad_evals = 0
    else:
        state.bad_evals += 1
        if state.bad_evals >= config.patience:
            state.stopped = f"early stopping: no improvement in {config.patience} evaluations"


def keep_best(kept: list[tuple[float, int, Any]], entry: tuple[float, int, Any], n: int) -> None:
    """Add ``entry`` (score, step, weights) to ``kept`` and keep the best ``n`` (at least 1), best first; of
    equal scores the later step ranks first (see ``select_weights``)."""
    kept.append(entry)
    kept.sort(key=lambda k: (-k[0], -k[1]))
    del kept[max(1, n) :]


def _checkpoint(
    path: Path, net: nn.Module, opt: Any, sched: Any, state: TrainState, kept: list[tuple[float, int, Any]]
) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "trainable": trained_state(net),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "state": json.loads(json.dumps(asdict(state))),
            "kept": [{"score": s, "step": st, "weights": w} for s, st, w in kept],
            "rng": torch.get_rng_state(),
        },
        tmp,
    )
    tmp.rename(path)


def _resume(
    path: Path, net: nn.Module, opt: Any, sched: Any
) -> tuple[TrainState, list[tuple[float, int, Any]]]:
    saved = torch.load(path, weights_only=True)
    net.load_state_dict(saved["trainable"], strict=False)
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    state = TrainState(**saved["state"])
    if state.stopped.startswith("time budget"):
        state.stopped = ""  # a new run brings a new budget
    torch.set_rng_state(saved["rng"])
    log.info("resumed from %s at step %d", path, state.step)
    return state, [(k["score"], k["step"], k["weights"]) for k in saved["kept"]]
