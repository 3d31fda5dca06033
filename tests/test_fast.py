"""The fast inference path (monitor/fast.py): shape buckets, same answers as the eager reference, no
recompilation for any batch, the on-disk cache, and the fallback to eager when compiling cannot work here.

Compiles a 4-layer random Llama (SmolLM2's architecture, split like the shipped model) for 2 x 2 buckets; the
shipped model's fast path is checked in the ``slow`` test at the end."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_nn import _net, llama_dir  # noqa: F401 - the fixture is used by name

from monitor.classify import TorchClassifier, compile_wanted, hot_rows, load_classifier
from monitor.fast import CACHE_ENV, pad_to_shape, row_buckets, token_buckets
from monitor.nn import pad_batch, save_network
from monitor.settings import DEFAULT_MODEL_DIR, ModelSettings
from monitor.testing import gpt2_tokenizer

REPO = Path(__file__).resolve().parents[1]

WORDS = "shares plunge after profit warning beats estimates raises guidance fed oil bank rally".split()


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(0, 14))) for _ in range(n)]


def test_buckets_cover_every_size_with_few_shapes() -> None:
    assert row_buckets(64) == (4, 16, 64)
    assert row_buckets(100) == (4, 16, 64, 100)
    assert row_buckets(3) == (3,)
    assert token_buckets(64) == (8, 16, 24, 32, 48, 64)
    assert token_buckets(20) == (8, 16, 20)
    assert token_buckets(128) == (8, 16, 24, 32, 48, 64, 96, 128)


def test_pad_to_shape_adds_masked_columns_and_copies_of_row_zero() -> None:
    x, mask = pad_batch([[5, 6, 7], [8]], 0)
    xp, mp = pad_to_shape(x, mask, 4, 8)
    assert xp.shape == mp.shape == (4, 8)
    assert mp.tolist()[:2] == [[1, 1, 1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]]
    assert xp[2].tolist() == xp[3].tolist() == xp[0].tolist()
    assert pad_to_shape(x, mask, 2, 3)[0] is x  # already the bucket's shape: untouched


@pytest.mark.parametrize(
    ("setting", "device", "long_running", "expected"),
    [("off", "cuda", True, False), ("on", "cpu", False, True), ("auto", "cuda", False, True)],
)
def test_compile_wanted(setting: str, device: str, long_running: bool, expected: bool) -> None:
    assert compile_wanted(setting, device, long_running) is expected


def test_auto_compiles_one_shot_commands_lazily_and_the_worker_at_start() -> None:
    assert hot_rows("auto", long_running=True) == 0
    assert hot_rows("on", long_running=False) == 0
    assert hot_rows("auto", long_running=False) > 0


def test_auto_needs_a_compiler_for_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "no-such-compiler-finpulse")
    assert not compile_wanted("auto", "cpu", long_running=True)


@pytest.fixture(scope="module")
def model_dir(llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    net = _net(llama_dir, mode="lora")
    with torch.no_grad():
        for n, p in net.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    folder = tmp_path_factory.mktemp("fast") / "model"
    save_network(net, gpt2_tokenizer(), net.spec, folder, "v-fast")
    return folder


def _settings(model_dir: Path, cache: Path, **kw: object) -> ModelSettings:
    base = {
        "path": str(model_dir),
        "cache_dir": str(cache),
        "dtype": "fp32",
        "batch_size": 8,
        "max_length": 16,
    }
    return ModelSettings(**(base | kw))  # type: ignore[arg-type]


def test_fast_path_equals_reference_for_every_batch_size_without_recompiling(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch._dynamo.config as dynamo
    from torch._dynamo.utils import counters

    monkeypatch.delenv(CACHE_ENV, raising=False)
    reference = load_classifier(_settings(model_dir, tmp_path, compile="off"))
    fast = load_classifier(_settings(model_dir, tmp_path, compile="auto"), long_running=True)
    assert isinstance(fast, TorchClassifier) and fast.fast and not getattr(reference, "compiled", True)
    assert any((tmp_path / "inductor").iterdir())  # compiled code went to the model cache dir
    assert fast.forward.warm(fast.forward.all_shapes(), "cpu", bf16=False)  # type: ignore[attr-defined]
    graphs = counters["stats"]["unique_graphs"]
    with dynamo.patch(error_on_recompile=True):  # any new shape would raise
        for n in [1, 2, 3, 5, 8, 9, 17, 40]:
            texts = _texts(n, seed=n) + ["", "🚀" * 40]
            got, want = fast.logits(texts), reference.logits(texts)
            torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-2)  # fp16 boundary states
    assert counters["stats"]["unique_graphs"] == graphs
    assert fast.fast and fast.forward.ready == set(fast.forward.all_shapes())  # type: ignore[attr-defined]
    got_tags, want_tags = fast.predict(["Shares plunge"]), reference.predict(["Shares plunge"])
    assert (got_tags[0].topic, got_tags[0].sentiment) == (want_tags[0].topic, want_tags[0].sentiment)


def test_one_shot_command_compiles_a_bucket_only_once_enough_texts_need_it(
    model_dir: Path, tmp_path: Path
) -> None:
    clf = load_classifier(_settings(model_dir, tmp_path, compile="auto"))  # as `finpulse classify`
    assert isinstance(clf, TorchClassifier) and clf.compiled
    clf.predict(_texts(5, seed=1))
    assert clf.forward.ready == set()  # type: ignore[attr-defined]  # a handful of texts: eager, no compiler


FALLBACK = """
import json, sys, torch
from monitor.classify import load_classifier
from monitor.settings import ModelSettings
base = ModelSettings(path=sys.argv[1], cache_dir=sys.argv[2], dtype="fp32", batch_size=8, max_length=16)
texts = ["Shares plunge after profit warning", "Fed", "", "oil rally " * 9]
reference = load_classifier(base.model_copy(update={"compile": "off"}))
clf = load_classifier(base.model_copy(update={"compile": "on"}))
diff = max((a - b).abs().max().item() for a, b in zip(clf.logits(texts), reference.logits(texts)))
print(json.dumps({"fast": clf.fast, "compiled": clf.compiled, "diff": diff}))
"""


def test_falls_back_to_eager_when_the_compiler_is_missing(model_dir: Path, tmp_path: Path) -> None:
    """A fresh process (no compiled code in memory or on disk) whose C++ compiler does not exist."""
    env = {k: v for k, v in os.environ.items() if k != CACHE_ENV} | {"CXX": "no-such-compiler-finpulse"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", FALLBACK, str(model_dir), str(tmp_path)],
        env=env, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"fast": False, "compiled": False, "diff": 0.0}, out.stderr[-2000:]
    assert "running eagerly" in out.stderr


@pytest.mark.slow
def test_shipped_model_fast_path_agrees_with_the_reference() -> None:
    texts = [
        "Fed signals more rate hikes to fight inflation",
        "Acme Corp shares plunge after profit warning",
        "Umbrella Corp posts record profit, lifts dividend",
        "",
    ] + _texts(60, seed=7)
    base = ModelSettings(path=str(DEFAULT_MODEL_DIR))
    reference = load_classifier(base.model_copy(update={"compile": "off"}))
    fast = load_classifier(base.model_copy(update={"compile": "on"}))
    assert isinstance(fast, TorchClassifier) and fast.fast
    got, want = fast.predict(texts), reference.predict(texts)
    assert (
        sum(a.sentiment == b.sentiment and a.topic == b.topic for a, b in zip(got, want, strict=True)) >= 62
    )
    diffs = [abs(a.sentiment_score - b.sentiment_score) for a, b in zip(got, want, strict=True)]
    assert max(diffs) < 0.1
