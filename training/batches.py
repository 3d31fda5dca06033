"""From examples to training batches: one item per distinct text with up to two labels (a real headline carries
both a sentiment and a topic, so it costs one forward pass, not two), length-bucketed batches, and the masked
two-head loss. Pure functions over lists and tensors."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from monitor.nn import ModelSpec
from training.data import Example, norm_text

NO_LABEL = -1


@dataclass(frozen=True, slots=True)
class Items:
    """Distinct texts and, per text, the label index for each head (``NO_LABEL`` when absent) and its weight."""

    texts: list[str]
    topic: list[int]
    sentiment: list[int]
    topic_weight: list[float]
    sentiment_weight: list[float]

    def __len__(self) -> int:
        return len(self.texts)


def build_items(examples: Sequence[Example], spec: ModelSpec) -> tuple[Items, list[int]]:
    """Merge examples by normalised text (the first label per head wins); also return each example's item."""
    index: dict[str, int] = {}
    texts: list[str] = []
    heads: dict[str, list[int]] = {"topic": [], "sentiment": []}
    weights: dict[str, list[float]] = {"topic": [], "sentiment": []}
    item_of: list[int] = []
    for e in examples:
        key = norm_text(e.text)
        if key not in index:
            index[key] = len(texts)
            texts.append(e.text)
            for task in heads:
                heads[task].append(NO_LABEL)
                weights[task].append(0.0)
        i = index[key]
        item_of.append(i)
        names = spec.topics if e.task == "topic" else spec.sentiments
        if heads[e.task][i] == NO_LABEL:
            heads[e.task][i] = names.index(e.label)
            weights[e.task][i] = e.weight
    items = Items(texts, heads["topic"], heads["sentiment"], weights["topic"], weights["sentiment"])
    return items, item_of


def class_weights(labels: Sequence[int], n_classes: int, power: float) -> list[float]:
    """(1 / frequency) ** power, normalised to mean 1 over the examples (power 0 = all ones)."""
    counts = Counter(y for y in labels if y != NO_LABEL)
    total = sum(counts.values())
    if power == 0 or total == 0:
        return [1.0] * n_classes
    raw = [(total / counts[c]) ** power if counts[c] else 0.0 for c in range(n_classes)]
    mean = sum(raw[y] * n for y, n in counts.items()) / total
    return [w / mean for w in raw]


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


def label_tensors(items: Items, idx: list[int]) -> tuple[torch.Tensor, ...]:
    """(topic_y, sentiment_y, topic_w, sentiment_w) for the items ``idx``."""
    return (
        torch.tensor([items.topic[i] for i in idx]),
        torch.tensor([items.sentiment[i] for i in idx]),
        torch.tensor([items.topic_weight[i] for i in idx], dtype=torch.float32),
        torch.tensor([items.sentiment_weight[i] for i in idx], dtype=torch.float32),
    )


def masked_loss(
    topic_logits: torch.Tensor,
    sent_logits: torch.Tensor,
    topic_y: torch.Tensor,
    sent_y: torch.Tensor,
    topic_w: torch.Tensor,
    sent_w: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    class_w: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
) -> torch.Tensor:
    """Weighted CE per head; label -1 = no label for that head (masked). Empty heads contribute 0.
    Each head's term is the weighted mean over the examples that carry its label; loss = topic + sentiment."""
    import torch.nn.functional as F

    sent_w = topic_w if sent_w is None else sent_w
    total = topic_logits.new_zeros(())
    for logits, y, w, cw in (
        (topic_logits, topic_y, topic_w, class_w[0]),
        (sent_logits, sent_y, sent_w, class_w[1]),
    ):
        keep = y >= 0
        if keep.any():
            ce = F.cross_entropy(
                logits[keep].float(), y[keep], reduction="none", label_smoothing=label_smoothing
            )
            weight = w[keep] * (cw[y[keep]] if cw is not None else 1.0)
            total = total + (ce * weight).sum() / weight.sum().clamp(min=1e-8)
    return total
