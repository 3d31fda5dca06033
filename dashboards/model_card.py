"""Read the model card a trained model directory carries (``model_card.json``), defensively: the dashboard
shows "not available" for a missing, unreadable or oddly shaped card instead of failing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

CARD_FILE = "model_card.json"
MAX_CARD_BYTES = 2_000_000
_METRIC_HINTS = ("metric", "eval", "valid", "test", "score")
_SUMMARY_KEYS = (
    "model_version",
    "version",
    "name",
    "base_model",
    "backbone",
    "created_at",
    "trained_at",
    "dataset",
    "labels",
    "num_labels",
    "git_commit",
)


@dataclass(frozen=True, slots=True)
class ModelCard:
    path: str
    available: bool
    reason: str = ""  # why not available
    summary: dict[str, str] = field(default_factory=dict)
    metrics: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["metric", "value"]))


def _flatten(prefix: str, value: Any, out: list[tuple[str, float]], depth: int = 0) -> None:
    if depth > 6 or len(out) >= 200:
        return
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        out.append((prefix, float(value)))
    elif isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out, depth + 1)


def parse_model_card(data: Any, path: str) -> ModelCard:
    """Pure: a card from decoded JSON. Metrics are the numeric leaves under metric-like keys."""
    if not isinstance(data, dict):
        return ModelCard(path, False, f"{CARD_FILE} is not a JSON object")
    summary = {}
    for key in _SUMMARY_KEYS:
        value = data.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            summary[key] = str(value)[:200]
        elif isinstance(value, list) and key == "labels":
            summary[key] = f"{len(value)} labels"
    leaves: list[tuple[str, float]] = []
    for key, value in data.items():
        if any(hint in str(key).lower() for hint in _METRIC_HINTS):
            _flatten(str(key), value, leaves)
    metrics = pd.DataFrame(leaves, columns=["metric", "value"])
    return ModelCard(path, True, "", summary, metrics)


def load_model_card(model_dir: str) -> ModelCard:
    """The card in ``model_dir``, or one marked unavailable with the reason."""
    path = Path(model_dir).expanduser() / CARD_FILE
    try:
        if not path.is_file():
            return ModelCard(str(path), False, f"no {CARD_FILE} in {model_dir}")
        if path.stat().st_size > MAX_CARD_BYTES:
            return ModelCard(str(path), False, f"{CARD_FILE} is larger than {MAX_CARD_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return ModelCard(str(path), False, f"cannot read {CARD_FILE}: {exc}")
    return parse_model_card(data, str(path))
