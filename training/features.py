"""Frozen-part features, computed once: the boundary states at ``spec.split_layer`` for every example, stored
per token in ``spec.state_dtype`` (fp16: SmolLM2's residual stream reaches ~3e4, inside fp16's range and
fp16 keeps 3 more mantissa bits than bf16). Computed in length-sorted batches, saved in shards so an
interrupted run resumes where it stopped. Without a split the "features" are the token ids themselves."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.nn import ModelSpec, encode_texts, pad_batch

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)
SHARD = 2048  # examples per saved shard


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """Per-example features: ``items[i]`` is a (T_i, H) state tensor or a (T_i,) id tensor."""

    items: list[Any]

    def lengths(self) -> list[int]:
        return [int(x.shape[0]) for x in self.items]


def cache_key(spec: ModelSpec, backbone_dir: Path, texts: list[str]) -> str:
    """Features depend on the backbone weights, the frozen layers, the tokenisation and the texts."""
    h = hashlib.sha256()
    weights = sorted(backbone_dir.glob("*.safetensors"))
    meta = [(w.name, w.stat().st_size) for w in weights]
    h.update(
        json.dumps(
            [spec.backbone, spec.num_layers, spec.split_layer, spec.max_length, spec.state_dtype, meta]
        ).encode()
    )
    for t in texts:
        h.update(t.encode("utf-8", "replace") + b"\x00")
    return h.hexdigest()[:16]


def compute_features(
    net: nn.Module,
    tokenizer: Any,
    texts: list[str],
    spec: ModelSpec,
    cache_dir: Path | None,
    device: str = "cpu",
    bf16: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> FeatureSet:
    """``net.lower`` over all texts, shard by shard (reusing saved shards)."""
    import torch
    from tqdm import tqdm

    ids = encode_texts(tokenizer, texts, spec.max_length)
    if spec.split_layer is None:
        return FeatureSet([torch.tensor(x, dtype=torch.long) for x in ids])
    items: list[Any] = [None] * len(ids)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    bar = tqdm(total=len(ids), desc="features", unit="text", disable=not progress, mininterval=5)
    for shard_start in range(0, len(ids), SHARD):
        shard = list(range(shard_start, min(shard_start + SHARD, len(ids))))
        path = cache_dir / f"shard-{shard_start // SHARD:04d}.pt" if cache_dir else None
        if path is not None and path.is_file():
            stored = torch.load(path)
            for i, x in zip(shard, stored, strict=True):
                items[i] = x
            bar.update(len(shard))
            continue
        order = sorted(shard, key=lambda i: len(ids[i]))
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                x, mask = pad_batch([ids[i] for i in chunk], tokenizer.pad_token_id)
                h = net.lower(x.to(device), mask.to(device)).cpu()
                for row, i in enumerate(chunk):
                    items[i] = h[row, : len(ids[i])].clone()
                bar.update(len(chunk))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save([items[i] for i in shard], path.with_suffix(".tmp"))
            path.with_suffix(".tmp").rename(path)
    bar.close()
    return FeatureSet(items)


def collate(features: FeatureSet, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T[, H]) batch and its (B, T) mask for the examples ``idx``."""
    return pad_batch([features.items[i] for i in idx], 0)
