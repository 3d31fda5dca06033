"""Temperature scaling (Guo et al. 2017): one temperature per head, fitted on validation logits by minimising
the negative log-likelihood, so that ``topic_confidence`` and ``sentiment_confidence`` mean what they say.
Dividing logits by a positive temperature never changes the predicted class, only the confidence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    import torch.nn.functional as F

    return float(F.cross_entropy(logits.float() / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, lo: float = 0.05, hi: float = 20.0) -> float:
    """The temperature in [lo, hi] minimising NLL: golden-section search on log T (NLL is unimodal in T)."""
    if len(labels) == 0:
        return 1.0
    a, b = math.log(lo), math.log(hi)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(logits, labels, math.exp(c)), nll(logits, labels, math.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(logits, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(logits, labels, math.exp(d))
    return round(math.exp((a + b) / 2), 4)


def confidences(logits: torch.Tensor, temperature: float = 1.0) -> tuple[list[float], list[int]]:
    """Max softmax probability and argmax per row."""
    conf, pred = (logits.float() / temperature).softmax(-1).max(-1)
    return conf.tolist(), pred.tolist()


def ece_of(logits: torch.Tensor, labels: Sequence[int], temperature: float = 1.0, bins: int = 10) -> float:
    from training.evaluate import expected_calibration_error

    conf, pred = confidences(logits, temperature)
    return expected_calibration_error(conf, [p == y for p, y in zip(pred, labels, strict=True)], bins)
