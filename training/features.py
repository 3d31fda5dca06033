"""Frozen-part features, computed once per text: the boundary states at ``spec.split_layer``, stored per token
in ``spec.state_dtype`` (fp16: SmolLM2's residual stream reaches ~3e4, inside fp16's range, and fp16 keeps 3
more mantissa bits than bf16). Without a split the "features" are the token ids themselves.

The cache is content-addressed: a folder per (backbone weights, frozen layers, tokenisation) holding shards of
``{text hash: states}``, so any run over any subset or superset of texts reuses what earlier runs computed, and an
interrupted run resumes at the last saved shard. Texts are computed in length-sorted batches."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from monitor.nn import ModelSpec, TwoHeadClassifier, encode_texts, pad_batch

log = logging.getLogger(__name__)
SHARD = 2048  # texts per saved shard


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """Per-example features: ``items[i]`` is a (T_i, H) state tensor or a (T_i,) id tensor."""

    items: list[Any]

    def lengths(self) -> list[int]:
        return [int(x.shape[0]) for x in self.items]


def cache_key(spec: ModelSpec, backbone_dir: Path, extra: str = "") -> str:
    """Features depend on the backbone weights, the frozen layers and the tokenisation (not on the texts)."""
    weights = sorted(backbone_dir.glob("*.safetensors"))
    meta = [(w.name, w.stat().st_size) for w in weights]
    blob = json.dumps(
        [spec.backbone, spec.num_layers, spec.split_layer, spec.max_length, spec.state_dtype, meta, extra]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()


def _load_store(cache_dir: Path) -> dict[str, Any]:
    store: dict[str, Any] = {}
    for path in sorted(cache_dir.glob("shard-*.pt")):
        store.update(torch.load(path, weights_only=True))
    return store


def compute_features(
    net: TwoHeadClassifier,
    tokenizer: Any,
    texts: list[str],
    spec: ModelSpec,
    cache_dir: Path | None,
    device: str = "cpu",
    bf16: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> FeatureSet:
    """``net.lower`` over the texts not yet in the cache (saved shard by shard), then look every text up."""
    from tqdm import tqdm

    if spec.split_layer is None:
        ids = encode_texts(tokenizer, texts, spec.max_length)
        return FeatureSet([torch.tensor(x, dtype=torch.long) for x in ids])
    store = _load_store(cache_dir) if cache_dir is not None and cache_dir.is_dir() else {}
    hashes = [text_hash(t) for t in texts]
    todo_hashes = sorted({h for h in hashes if h not in store})
    first = {h: t for h, t in zip(hashes, texts, strict=True)}
    todo = [first[h] for h in todo_hashes]
    if todo:
        log.info("features: %d of %d distinct texts to compute", len(todo), len(set(hashes)))
    ids = encode_texts(tokenizer, todo, spec.max_length) if todo else []
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    bar = tqdm(total=len(todo), desc="features", unit="text", disable=not progress or not todo, mininterval=5)
    shard_no = len(list(cache_dir.glob("shard-*.pt"))) if cache_dir is not None and cache_dir.is_dir() else 0
    for shard_start in range(0, len(todo), SHARD):
        shard = range(shard_start, min(shard_start + SHARD, len(todo)))
        order = sorted(shard, key=lambda i: len(ids[i]))
        fresh: dict[str, Any] = {}
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                x, mask = pad_batch([ids[i] for i in chunk], tokenizer.pad_token_id)
                h = net.lower(x.to(device), mask.to(device)).cpu()
                for row, i in enumerate(chunk):
                    fresh[todo_hashes[i]] = h[row, : len(ids[i])].clone()
                bar.update(len(chunk))
        store.update(fresh)
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            path = cache_dir / f"shard-{shard_no:05d}.pt"
            torch.save(fresh, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").rename(path)
            shard_no += 1
    bar.close()
    return FeatureSet([store[h] for h in hashes])


def collate(features: FeatureSet, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T[, H]) batch and its (B, T) mask for the examples ``idx``."""
    return pad_batch([features.items[i] for i in idx], 0)
