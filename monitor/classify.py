"""Inference: ``load_classifier(settings) -> Classifier`` and ``Classifier.predict(texts) -> list[Tags]``.

``ModelSettings.kind`` says what to load: ``"trained"`` (the default) is the model directory
``ModelSettings.path`` (default ``models/finpulse-smollm2-lora``; format in monitor/nn.py); ``"tiny-random"``
and ``"noop"`` are the test doubles of monitor/testing.py, imported only when asked for.

``predict`` sorts texts by token length, cuts them into batches of ``batch_size`` (similar lengths, so dynamic
padding wastes little), truncates to ``max_length`` tokens, runs under ``torch.inference_mode`` with bf16
autocast when enabled, and puts the answers back in input order. LoRA weights are merged at load.

The fast path (setting ``compile``; monitor/fast.py) runs the network through ``torch.compile``d graphs, one
per static shape bucket (batches are padded up to a few fixed sizes, so nothing recompiles mid-stream), with
inductor's caches on disk under the model cache dir so compilation is paid once per machine. ``auto`` uses it
in every command where a compiler exists (CUDA, or a C++ compiler for CPU code): the worker compiles its
full-batch buckets at start and the others when first needed; one-shot commands compile a bucket once enough
texts need it to repay the compile (or the cache load). If compiling fails, the
classifier logs why and runs eagerly (the reference path).

dtype ``auto`` chooses bf16 on CUDA (if supported) and on CPUs with native bf16 (AVX512-BF16 or AMX);
otherwise fp32, because emulated bf16 on an AVX2-only CPU is slower than fp32.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from monitor.errors import ModelError
from monitor.nn import (
    DOMAIN_ADAPTER,
    ModelSpec,
    build_network,
    encode_texts,
    load_weights,
    merge_lora,
    pad_batch,
    read_spec,
)
from monitor.schema import Tags
from monitor.settings import ModelSettings

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)


class Classifier(Protocol):
    version: str

    def predict(self, texts: Sequence[str]) -> list[Tags]: ...


def cpu_has_native_bf16() -> bool:
    import torch

    if "AVX512" not in torch.backends.cpu.get_cpu_capability():
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_device(setting: str) -> str:
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def use_bf16(dtype: str, device: str) -> bool:
    import torch

    if dtype != "auto":
        return dtype == "bf16"
    if device.startswith("cuda"):
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_native_bf16()


def compile_wanted(setting: str, device: str, long_running: bool) -> bool:
    """``auto``: compile where it can work (CUDA, or a C++ compiler); the cache makes it pay for short jobs too.

    ``long_running`` only decides *when* (see ``hot_rows``), not whether."""
    if setting != "auto":
        return setting == "on"
    return device.startswith("cuda") or shutil.which(os.environ.get("CXX", "g++")) is not None


HOT_ROWS = 2048  # compile=auto in a one-shot command: a shape bucket compiles once this many texts need it


def hot_rows(setting: str, long_running: bool) -> int:
    """Texts a bucket runs eagerly before it is compiled: none for ``on`` and the worker, else ``HOT_ROWS``."""
    return 0 if setting == "on" or long_running else HOT_ROWS


def tags_from_logits(
    topic_logits: torch.Tensor, sent_logits: torch.Tensor, spec: ModelSpec, version: str
) -> list[Tags]:
    """Softmax both heads at the spec's calibrated temperatures; sentiment_score = P(positive) - P(negative)."""
    tp = (topic_logits.float() / spec.topic_temperature).softmax(-1).cpu()
    sp = (sent_logits.float() / spec.sentiment_temperature).softmax(-1).cpu()
    neg, pos = spec.sentiments.index("negative"), spec.sentiments.index("positive")
    t_conf, t_idx = tp.max(-1)
    s_conf, s_idx = sp.max(-1)
    return [
        Tags(
            topic=spec.topics[int(t_idx[i])],
            topic_confidence=round(float(t_conf[i]), 6),
            sentiment=spec.sentiments[int(s_idx[i])],
            sentiment_score=round(float(sp[i, pos] - sp[i, neg]), 6),
            sentiment_confidence=round(float(s_conf[i]), 6),
            model_version=version,
        )
        for i in range(tp.shape[0])
    ]


class TorchClassifier:
    """A two-head network on one device, with its tokenizer and spec."""

    def __init__(
        self,
        net: nn.Module,
        tokenizer: Any,
        spec: ModelSpec,
        settings: ModelSettings,
        version: str,
        compile_net: bool = False,
        long_running: bool = False,
    ) -> None:
        import torch

        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
        self.device = resolve_device(settings.device)
        self.bf16 = use_bf16(settings.dtype, self.device)
        self.net = net.to(self.device).eval()
        if self.bf16:
            from monitor.fast import store_linear_weights_in_bf16

            store_linear_weights_in_bf16(
                self.net
            )  # what autocast would cast them to, once instead of per batch
        self.tokenizer = tokenizer
        self.spec = spec
        self.max_length = (
            min(settings.max_length, spec.max_length) if spec.max_length else settings.max_length
        )
        self.batch_size = settings.batch_size
        self.version = version
        self.forward: Any = self.net
        self.compiled = False
        if compile_net:
            self._compile(settings, long_running)

    def _compile(self, settings: ModelSettings, long_running: bool) -> None:
        """Bucketed torch.compile (monitor/fast.py), warmed up for the worker and ``on``; on failure stay eager."""
        from monitor.fast import BucketedNetwork, use_persistent_cache

        cache = use_persistent_cache(settings.cache_dir)
        fast = BucketedNetwork(
            self.net,
            self.batch_size,
            self.max_length,
            hot_rows(settings.compile, long_running),
            cuda_graphs=self.device.startswith("cuda"),
        )
        self.forward, self.compiled = fast, True
        if not (long_running or settings.compile == "on"):
            return  # compiled lazily, bucket by bucket; a failure then falls back the same way
        started = time.perf_counter()
        # The worker: every full-batch bucket now (the busy stream's shapes), smaller ones when first needed.
        shapes = (
            [s for s in fast.all_shapes() if s[0] == fast.rows[-1]] if long_running else fast.all_shapes()[:1]
        )
        log.info("compiling the classifier for %d shape(s) (cache %s)", len(shapes), cache)
        if not fast.warm(shapes, self.device, self.bf16):
            self.forward, self.compiled = self.net, False
            return
        log.info("classifier compiled in %.0f s", time.perf_counter() - started)

    @property
    def fast(self) -> bool:
        """True while inference runs compiled graphs (False after a fallback to eager)."""
        return self.compiled and getattr(self.forward, "failed", None) is None

    def logits(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, n_topics), (N, n_sentiments) fp32 logits in input order."""
        import torch

        ids = encode_texts(self.tokenizer, list(texts), self.max_length)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        topic = torch.empty(len(ids), len(self.spec.topics))
        sent = torch.empty(len(ids), len(self.spec.sentiments))
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16):
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                x, mask = pad_batch([ids[i] for i in chunk], self.tokenizer.pad_token_id)
                t, s = self.forward(x.to(self.device), mask.to(self.device))
                topic[chunk] = t[: len(chunk)].float().cpu()
                sent[chunk] = s[: len(chunk)].float().cpu()
        return topic, sent

    def predict(self, texts: Sequence[str]) -> list[Tags]:
        if not texts:
            return []
        topic, sent = self.logits(texts)
        return tags_from_logits(topic, sent, self.spec, self.version)


def load_model_dir(model_dir: Path, settings: ModelSettings) -> tuple[nn.Module, Any, ModelSpec, str]:
    """Backbone (resolved from the spec) + stored weights, LoRA merged; returns (net, tokenizer, spec, version)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from monitor.backbone import resolve_backbone

    spec, version = read_spec(model_dir)
    folder = resolve_backbone(spec.backbone, settings.cache_dir)
    backbone = AutoModel.from_pretrained(folder, dtype=torch.float32)
    domain = load_file(str(model_dir / DOMAIN_ADAPTER)) if spec.domain_adapted else None
    net = build_network(backbone, spec, domain)
    load_weights(net, model_dir / "weights.safetensors")
    merge_lora(net)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return net.eval(), tokenizer, spec, version


def load_classifier(model: ModelSettings, long_running: bool = False) -> Classifier:
    """The classifier ``model.kind`` names: the trained model directory ``model.path``, or a test double.

    ``long_running`` (the worker): ``compile="auto"`` compiles the full-batch buckets at load.
    """
    if model.kind != "trained":
        log.warning("model kind %s: a test double (monitor/testing.py), not a trained model", model.kind)
    if model.kind == "noop":
        from monitor.testing import NoopClassifier

        return NoopClassifier()
    if model.kind == "tiny-random":
        from monitor.testing import tiny_random_parts

        # "auto" never compiles the test model (not worth the minutes), "on" does.
        net, tokenizer, spec, version = tiny_random_parts()
        return TorchClassifier(net, tokenizer, spec, model, version, model.compile == "on")
    model_dir = Path(model.path).expanduser()
    if not model_dir.is_dir():
        raise ModelError(f"model directory {model_dir} does not exist (train one with `finpulse train`)")
    net, tokenizer, spec, version = load_model_dir(model_dir, model)
    wanted = compile_wanted(model.compile, resolve_device(model.device), long_running)
    return TorchClassifier(net, tokenizer, spec, model, version, wanted, long_running)


__all__ = ["Classifier", "TorchClassifier", "load_classifier", "tags_from_logits"]
