"""Command-line options that several subcommands share, declared once: the same flag has the same name, choices
and help wherever it appears, and maps to the same field of ``ModelSettings``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

# option dest -> (flag, ModelSettings field, argparse keywords)
MODEL_OPTIONS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "model": (
        "--model",
        "path",
        {"help": "trained model directory (FINPULSE_MODEL_PATH)"},
    ),
    "backbone": (
        "--backbone",
        "backbone",
        {"help": "named GGUF backbone or HF folder (FINPULSE_MODEL_BACKBONE)"},
    ),
    "device": ("--device", "device", {"help": "auto | cpu | cuda | cuda:N (FINPULSE_MODEL_DEVICE)"}),
    "dtype": ("--dtype", "dtype", {"choices": ["auto", "fp32", "bf16"], "help": "FINPULSE_MODEL_DTYPE"}),
    "batch_size": (
        "--batch-size",
        "batch_size",
        {"type": int, "help": "inference batch size (FINPULSE_MODEL_BATCH_SIZE)"},
    ),
    "threads": (
        "--threads",
        "threads",
        {"type": int, "help": "torch CPU threads, 0 = default (FINPULSE_MODEL_THREADS)"},
    ),
    "compile": (
        "--compile",
        "compile",
        {"choices": ["auto", "on", "off"], "help": "torch.compile the model (FINPULSE_MODEL_COMPILE)"},
    ),
}
INFERENCE = ("model", "device", "dtype", "batch_size", "threads", "compile")  # classify, evaluate, prepare
WORKER = ("model", "device", "compile")  # the worker's --batch-size is its micro-batch, not the model's


def add_model_options(parser: argparse.ArgumentParser, names: Sequence[str] = INFERENCE) -> None:
    """Declare these model options on ``parser``; ``model_overrides(args)`` then reads exactly them back."""
    for name in names:
        flag, _, kwargs = MODEL_OPTIONS[name]
        parser.add_argument(flag, dest=name, **kwargs)
    parser.set_defaults(model_options=(*(parser.get_default("model_options") or ()), *names))


def model_overrides(args: argparse.Namespace, names: Sequence[str] | None = None) -> dict[str, Any]:
    """``ModelSettings`` fields given on the command line (``None`` = not given), for ``with_overrides``:
    the options named, by default those the command declared with ``add_model_options`` (so an option of
    the same name that belongs to something else, e.g. a training batch size, never reaches the model)."""
    chosen = getattr(args, "model_options", ()) if names is None else names
    return {MODEL_OPTIONS[name][1]: getattr(args, name, None) for name in chosen}
