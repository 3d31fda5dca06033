"""The classifier network: a (truncated) GPT backbone, pooling, and two linear heads (topic, sentiment).

Training and inference share everything here, so they cannot drift apart:

* ``clean_text`` / ``encode_texts``: URL removal, whitespace collapse, truncation to ``max_length`` tokens,
  and one pad token for an empty text (a decoder needs at least one position to pool).
* The network is split at ``spec.split_layer`` for Llama-family backbones: ``lower`` (embeddings + layers
  ``[0, split)``, frozen) and ``upper`` (layers ``[split, num_layers)`` + final norm + pooling + heads,
  trained). The boundary states are rounded to ``spec.state_dtype`` in *both* paths: training reads them from
  a cache stored in that dtype, inference rounds them the same way. Backbones without a split (the tiny GPT-2
  used in tests) run whole in ``upper`` and their "features" are token ids.
* Right padding only; pooling is ``mean`` over non-pad tokens or the ``last`` non-pad token, both located
  through the attention mask, so either padding side pools the same tokens.

Save format (a model directory): ``config.json`` (ModelSpec + version), ``weights.safetensors`` (heads and
LoRA adapter or trained layers, fp32), ``tokenizer.json`` + friends, ``model_card.{md,json}``. The backbone
itself is never saved; it is resolved from ``spec.backbone`` (see monitor/backbone.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from monitor.errors import ModelError
from monitor.labels import SENTIMENTS, TOPICS
from monitor.schema import strip_urls

Pooling = Literal["mean", "last"]
Mode = Literal["lora", "full", "heads-only"]

_WS_RE = re.compile(r"\s+")
LLAMA_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GPT2_LORA_TARGETS = ("c_attn", "c_proj", "c_fc")
DOMAIN_ADAPTER = "domain_adapter.safetensors"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Everything needed to rebuild the network around a backbone (saved as config.json)."""

    backbone: str = "smollm2-135m"
    num_layers: int | None = None  # keep the first N backbone layers (None = all)
    split_layer: int | None = None  # frozen below, trained from here (None = no split, whole backbone)
    pooling: Pooling = "mean"
    mode: Mode = "lora"
    max_length: int = 64
    state_dtype: str = "float16"  # storage dtype of the boundary states (cache and inference)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    head_dropout: float = 0.1
    topic_temperature: float = 1.0  # softmax temperatures fitted on validation data (training/calibrate.py)
    sentiment_temperature: float = 1.0
    domain_adapted: bool = (
        False  # upper layers carry a domain-adaptive pre-training delta (domain_adapter.safetensors)
    )
    topics: tuple[str, ...] = TOPICS
    sentiments: tuple[str, ...] = SENTIMENTS
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["topics"], d["sentiments"] = list(self.topics), list(self.sentiments)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for key in ("topics", "sentiments"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)


def clean_text(text: str, max_chars: int = 2_000) -> str:
    """What the model reads: URLs removed (t.co links carry no meaning), whitespace collapsed."""
    text = strip_urls(text[: max_chars * 2])
    return _WS_RE.sub(" ", text).strip()[:max_chars]


def encode_texts(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text: cleaned, no special tokens, at most ``max_length``, never empty."""
    pad = int(tokenizer.pad_token_id)
    cleaned = [clean_text(t or "", max_chars=max_length * 16) for t in texts]
    ids = tokenizer(cleaned, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    return [list(x) if len(x) else [pad] for x in ids]


def pad_batch(seqs: list[Any], pad_value: float | int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token-id lists or (T, H) tensors -> (B, T[, H]) tensor and a (B, T) long mask."""
    width = max(len(s) for s in seqs)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    if isinstance(seqs[0], torch.Tensor) and seqs[0].dim() == 2:
        out = torch.zeros(len(seqs), width, seqs[0].shape[1], dtype=seqs[0].dtype)
    else:
        out = torch.full((len(seqs), width), int(pad_value), dtype=torch.long)
    for i, s in enumerate(seqs):
        n = len(s)
        out[i, :n] = s if isinstance(s, torch.Tensor) else torch.tensor(s, dtype=torch.long)
        mask[i, :n] = 1
    return out, mask


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: Pooling) -> torch.Tensor:
    """(B, T, H) states, (B, T) mask -> (B, H). Works for left or right padding."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    if how == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = (positions * mask.long()).argmax(dim=1)  # index of the last non-pad token
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def _torch_dtype(name: str) -> torch.dtype:
    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


class TwoHeadClassifier(nn.Module):
    """backbone (+ optional split) -> pooled state -> (topic logits, sentiment logits)."""

    def __init__(self, backbone: nn.Module, spec: ModelSpec, hidden: int) -> None:
        super().__init__()
        self.backbone: Any = backbone  # an HF base model (LlamaModel / GPT2Model)
        self.spec = spec
        self.topic_head = nn.Sequential(nn.Dropout(spec.head_dropout), nn.Linear(hidden, len(spec.topics)))
        self.sentiment_head = nn.Sequential(
            nn.Dropout(spec.head_dropout), nn.Linear(hidden, len(spec.sentiments))
        )

    # -- split helpers (Llama family) -------------------------------------------------------------
    def _run_layers(self, h: torch.Tensor, mask: torch.Tensor, start: int, end: int) -> torch.Tensor:
        from transformers.masking_utils import create_causal_mask

        bb = self.backbone
        position_ids = torch.arange(h.shape[1], device=h.device).unsqueeze(0)
        causal = create_causal_mask(
            config=bb.config, inputs_embeds=h, attention_mask=mask, cache=None, position_ids=position_ids
        )
        rope = bb.rotary_emb(h, position_ids=position_ids)
        for layer in bb.layers[start:end]:
            h = layer(h, attention_mask=causal, position_embeddings=rope, position_ids=position_ids)
        return h

    def lower(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Frozen part: (B, T) ids -> (B, T, H) boundary states in ``state_dtype`` (or the ids)."""
        if self.spec.split_layer is None:
            return input_ids
        h = self.backbone.embed_tokens(input_ids)
        h = self._run_layers(h, mask, 0, self.spec.split_layer)
        return h.to(_torch_dtype(self.spec.state_dtype))

    def upper(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Trained part: boundary states (or ids) -> (B, n_topics), (B, n_sentiments) logits."""
        if self.spec.split_layer is None:
            h = self.backbone(input_ids=x, attention_mask=mask).last_hidden_state
        else:
            h = x.to(self.backbone.embed_tokens.weight.dtype)
            h = self._run_layers(h, mask, self.spec.split_layer, len(self.backbone.layers))
            h = self.backbone.norm(h)
        pooled = pool(h.float(), mask, self.spec.pooling)
        return self.topic_head(pooled), self.sentiment_head(pooled)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.upper(self.lower(input_ids, mask), mask)


def build_network(
    backbone: Any, spec: ModelSpec, domain_state: dict[str, Any] | None = None
) -> TwoHeadClassifier:
    """Wrap an HF base model (LlamaModel / GPT2Model): truncate, freeze as the mode says, add heads.

    ``domain_state`` (LoRA tensors from ``finpulse pretrain``) is merged into the upper layers first, so the
    classifier's own adapters train on top of the domain-adapted weights."""
    config = backbone.config
    layers_attr = "layers" if hasattr(backbone, "layers") else "h"
    layers = getattr(backbone, layers_attr)
    if spec.num_layers is not None:
        if not 0 < spec.num_layers <= len(layers):
            raise ModelError(f"num_layers={spec.num_layers} but the backbone has {len(layers)} layers")
        del layers[spec.num_layers :]
        config.num_hidden_layers = spec.num_layers
        if hasattr(config, "layer_types") and config.layer_types:
            config.layer_types = config.layer_types[: spec.num_layers]
    if spec.split_layer is not None:
        if layers_attr != "layers":
            raise ModelError("split_layer needs a Llama-family backbone (model.layers, rotary positions)")
        if not 0 <= spec.split_layer <= len(layers):
            raise ModelError(f"split_layer={spec.split_layer} outside 0..{len(layers)}")
    net = TwoHeadClassifier(backbone, spec, int(config.hidden_size))
    if domain_state is not None:
        merge_domain_adapter(net, spec, domain_state)
    for p in net.backbone.parameters():
        p.requires_grad_(False)
    if spec.mode == "full":
        start = spec.split_layer or 0
        for layer in layers[start:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        if spec.split_layer is None:
            for p in net.backbone.parameters():
                p.requires_grad_(True)
    elif spec.mode == "lora":
        add_lora(net, spec)
    return net


def _lora_target_names(net: Any, spec: ModelSpec) -> list[str]:
    targets = LLAMA_LORA_TARGETS if hasattr(net.backbone, "layers") else GPT2_LORA_TARGETS
    start = spec.split_layer or 0
    names = []
    for name, _ in net.backbone.named_modules():
        parts = name.split(".")
        if (
            len(parts) >= 3
            and parts[0] in ("layers", "h")
            and parts[-1] in targets
            and int(parts[1]) >= start
        ):
            names.append(name)
    return names


def add_lora(net: Any, spec: ModelSpec) -> None:
    """Inject LoRA adapters (peft) into the trained layers of ``net.backbone``; only they train."""
    from peft import LoraConfig, inject_adapter_in_model

    names = _lora_target_names(net, spec)
    if not names:
        raise ModelError("no layers to adapt: split_layer equals num_layers (use mode heads-only)")
    cfg = LoraConfig(
        r=spec.lora_r,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=names,
        fan_in_fan_out=not hasattr(net.backbone, "layers"),  # GPT-2 Conv1D
    )
    inject_adapter_in_model(cfg, net.backbone)


def merge_domain_adapter(net: Any, spec: ModelSpec, state: dict[str, Any]) -> None:
    """Inject LoRA into the trained layers, load the domain-adaptation tensors, fold them into the weights."""
    add_lora(net, spec)
    names = {n for n, _ in net.named_parameters()}
    missing = set(state) - names
    if missing or not state:
        raise ModelError(f"domain adapter does not fit this network ({len(missing)} unknown tensors)")
    net.load_state_dict(state, strict=False)
    merge_lora(net)


def lora_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA tensors of ``net`` (what a domain adapter file stores)."""
    return {n: p.detach().float().cpu().clone() for n, p in net.named_parameters() if ".lora_" in n}


def merge_lora(net: nn.Module) -> int:
    """Fold LoRA weights into the base layers and remove the adapters; returns how many were merged."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = 0
    for name, module in list(net.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent_name), child, module.get_base_layer())
            merged += 1
    return merged


def trained_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the parameters a model directory stores: whatever requires grad (heads, LoRA, trained layers).
    Copied, never aliased: ``.float().cpu()`` of an fp32 CPU tensor is the live parameter itself, and a kept
    "best" state must not move on with training."""
    return {n: p.detach().float().cpu().clone() for n, p in net.named_parameters() if p.requires_grad}


def save_network(net: nn.Module, tokenizer: Any, spec: ModelSpec, out_dir: Path, version: str) -> None:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(trained_state(net), str(out_dir / "weights.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps({"version": version, **spec.to_dict()}, indent=2) + "\n")
    tokenizer.save_pretrained(out_dir)


def read_spec(model_dir: Path) -> tuple[ModelSpec, str]:
    path = model_dir / "config.json"
    if not path.is_file():
        raise ModelError(f"{model_dir} is not a FinPulse model directory (no config.json)")
    data = json.loads(path.read_text())
    return ModelSpec.from_dict(data), str(data.get("version", model_dir.name))


def load_weights(net: nn.Module, path: Path) -> None:
    """Load a weights file into ``net``; every stored tensor must find its parameter."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing = set(state) - {n for n, _ in net.named_parameters()}
    if missing:
        raise ModelError(
            f"{path}: {len(missing)} tensors do not fit this network, e.g. {sorted(missing)[:3]}"
        )
    net.load_state_dict(state, strict=False)
