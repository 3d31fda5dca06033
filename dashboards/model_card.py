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
_SUMMARY_KEYS = ("model", "model_version", "version", "name", "date", "created_at", "base_model", "backbone",
                 "labels", "examples", "licence_note")  # fmt: skip
MAX_METRIC_DEPTH = 3  # validation.<set>.<measure>; per-class figures further down are left to the card itself


@dataclass(frozen=True, slots=True)
class ModelCard:
    path: str
    available: bool
    reason: str = ""  # why not available
    summary: dict[str, str] = field(default_factory=dict)
    metrics: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["metric", "value"]))


def _flatten(prefix: str, value: Any, out: list[tuple[str, float]], depth: int = 1) -> None:
    if depth > MAX_METRIC_DEPTH or len(out) >= 200 or isinstance(value, bool):
        return
    if isinstance(value, int | float):
        out.append((prefix, float(value)))
    elif isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}", sub, out, depth + 1)


def _describe(value: Any) -> str | None:
    """A one-line rendering of a summary field, or None for shapes we do not summarise."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, str | int | float):
        return str(value)[:500]
    if isinstance(value, dict):
        if isinstance(value.get("name"), str):
            return value["name"][:200]
        parts = [f"{k}: {len(v) if isinstance(v, list) else v}" for k, v in value.items()
                 if isinstance(v, str | int | float | list) and not isinstance(v, bool)]  # fmt: skip
        return ", ".join(parts)[:500] or None
    if isinstance(value, list):
        return f"{len(value)} entries"
    return None


def parse_model_card(data: Any, path: str) -> ModelCard:
    """Pure: a card from decoded JSON. Metrics are the numeric leaves (up to ``MAX_METRIC_DEPTH`` deep) under
    metric-like keys such as ``validation``."""
    if not isinstance(data, dict):
        return ModelCard(path, False, f"{CARD_FILE} is not a JSON object")
    summary = {}
    for key in _SUMMARY_KEYS:
        text = _describe(data.get(key)) if key in data else None
        if text:
            summary[key] = text
    leaves: list[tuple[str, float]] = []
    for key, value in data.items():
        if any(hint in str(key).lower() for hint in _METRIC_HINTS):
            _flatten(str(key), value, leaves)
    metrics = pd.DataFrame(leaves, columns=["metric", "value"])
    return ModelCard(path, True, "", summary, metrics)


def metrics_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """``validation.fpb.macro_f1``-style names as a set x measure table (rows: fpb, ...; columns: macro_f1,
    ...); names of another shape stay one per row."""
    parts = metrics["metric"].str.split(".")
    if metrics.empty or not (parts.str.len() == 3).all():
        return metrics.set_index("metric")
    wide = metrics.assign(set=parts.str[1], measure=parts.str[2]).pivot_table(
        index="set", columns="measure", values="value", aggfunc="first", sort=False
    )
    wide.columns.name = None
    return wide


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
