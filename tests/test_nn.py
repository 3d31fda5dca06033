"""The network pieces shared by training and inference: tokenisation, padding, pooling, split, LoRA, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from monitor.classify import load_model_dir
from monitor.nn import (
    ModelSpec,
    build_network,
    encode_texts,
    merge_lora,
    pad_batch,
    pool,
    save_network,
)
from monitor.settings import ModelSettings
from monitor.testing import gpt2_tokenizer


def tiny_llama_dir(root: Path) -> Path:
    """A 4-layer random Llama (SmolLM2's architecture) with the real GPT-2 vocabulary, saved as an HF folder."""
    from transformers import LlamaConfig, LlamaModel

    folder = root / "tiny-llama"
    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=50257,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=4,
            num_attention_heads=2,
            num_key_value_heads=1,
            pad_token_id=50256,
            bos_token_id=50256,
            eos_token_id=50256,
        )
        LlamaModel(config).save_pretrained(folder)
        gpt2_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_dir(tmp_path_factory.mktemp("backbone"))


def _net(folder: Path, **kw: object) -> torch.nn.Module:
    from transformers import AutoModel

    spec = ModelSpec(backbone=str(folder), num_layers=4, split_layer=2, head_dropout=0.0, **kw)  # type: ignore[arg-type]
    torch.manual_seed(1)
    return build_network(AutoModel.from_pretrained(folder), spec).eval()


def test_encode_texts_cleans_truncates_and_never_returns_empty() -> None:
    tok = gpt2_tokenizer()
    ids = encode_texts(tok, ["", "Fed hikes https://t.co/abc123", "word " * 5000, "🚀📉"], max_length=16)
    assert ids[0] == [tok.pad_token_id]
    assert tok.decode(ids[1]) == "Fed hikes"
    assert len(ids[2]) == 16
    assert len(ids[3]) > 0


def test_pad_batch_right_pads_ids_and_states() -> None:
    x, mask = pad_batch([[5, 6, 7], [8]], pad_value=0)
    assert x.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    states, mask = pad_batch([torch.ones(2, 4), torch.ones(3, 4)])
    assert states.shape == (2, 3, 4) and mask.tolist() == [[1, 1, 0], [1, 1, 1]]


@pytest.mark.parametrize("how", ["mean", "last"])
def test_pooling_ignores_padding_on_either_side(how: str) -> None:
    torch.manual_seed(0)
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    expected = torch.stack([a.mean(0), b.mean(0)]) if how == "mean" else torch.stack([a[-1], b[-1]])
    right = torch.zeros(2, 5, 4)
    right[0, :3], right[1] = a, b
    right_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.full((2, 5, 4), 99.0)  # garbage in pad positions must not leak
    left[0, 2:], left[1] = a, b
    left_mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    right[0, 3:] = 99.0
    torch.testing.assert_close(pool(right, right_mask, how), expected)  # type: ignore[arg-type]
    torch.testing.assert_close(pool(left, left_mask, how), expected)  # type: ignore[arg-type]


def test_split_network_equals_whole_and_padding_does_not_change_results(llama_dir: Path) -> None:
    net = _net(llama_dir, mode="heads-only", state_dtype="float32")
    tok = gpt2_tokenizer()
    texts = ["Shares plunge after profit warning", "Beats estimates"]
    ids = encode_texts(tok, texts, 64)
    with torch.inference_mode():
        x, mask = pad_batch(ids, tok.pad_token_id)
        batched = net(x, mask)
        for row, one in enumerate(ids):
            xi, mi = pad_batch([one], tok.pad_token_id)
            single = net(xi, mi)
            torch.testing.assert_close(batched[0][row], single[0][0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(batched[1][row], single[1][0], atol=1e-5, rtol=1e-4)
        assert net.lower(x, mask).shape == (2, x.shape[1], 32)


def test_lora_targets_only_the_trained_layers_and_merges_exactly(llama_dir: Path) -> None:
    net = _net(llama_dir, mode="lora", state_dtype="float32")
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert any("layers.2." in n and "lora_A" in n for n in trainable)
    assert not any("layers.0." in n or "layers.1." in n for n in trainable)
    assert all("lora_" in n or "_head" in n for n in trainable)
    with torch.no_grad():
        for n, p in net.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)  # LoRA B starts at zero; make the adapter matter
    x, mask = pad_batch([[10, 20, 30], [40]], 50256)
    with torch.inference_mode():
        before = net(x, mask)
        assert merge_lora(net) == 14  # 7 projections x 2 trained layers
        after = net(x, mask)
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-4)


def test_save_then_load_gives_identical_outputs(llama_dir: Path, tmp_path: Path) -> None:
    net = _net(llama_dir, mode="lora")
    with torch.no_grad():
        for n, p in net.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    x, mask = pad_batch([[10, 20, 30], [40]], 50256)
    with torch.inference_mode():
        expected = net(x, mask)
    save_network(net, gpt2_tokenizer(), net.spec, tmp_path / "model", "v-test")
    loaded, tok, spec, version = load_model_dir(tmp_path / "model", ModelSettings(cache_dir=str(tmp_path)))
    assert version == "v-test" and spec == net.spec and tok.pad_token_id == 50256
    with torch.inference_mode():
        got = loaded(x, mask)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    size = sum(f.stat().st_size for f in (tmp_path / "model").iterdir())
    assert size < 5_000_000  # adapter + heads + tokenizer, never the backbone
