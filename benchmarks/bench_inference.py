"""Inference throughput: naive baseline vs FinPulse's eager (reference) and fast paths, same model, same
headlines, interleaved rounds (not a test).

* naive: the transformers ``pipeline("text-classification")`` over the same network (sentiment head only, so
  it does *less* work than FinPulse, which computes both heads), batch size 1, fp32.
* eager: ``predict`` with ``compile=off``: length-sorted batches, dynamic padding, LoRA merged, bf16 autocast
  where the device has native bf16, ``inference_mode`` (the reference path the tests compare against).
* fast: ``predict`` with ``compile=on`` (monitor/fast.py: static shape buckets, inductor cache on disk); its
  first pass, which compiles or loads the buckets, is timed apart and printed.
* classify CLI: ``finpulse classify --input`` on the same headlines as a fresh process, model load included
  (``--cli``), timed after the rounds, so the inductor cache is warm as on any machine after its first run.

Also measures the device's dense matmul rate (fp32 and bf16, 2048^3 on CPU, 8192^3 on CUDA) and reports each
path's share of the rate of the dtype it runs: FLOPs per headline = 2 x (non-embedding parameters of the
layers run) x real tokens (padding is not counted as useful work).

    python benchmarks/bench_inference.py [--model DIR] [--n 2000] [--baseline-n 300] [--cli] [--json OUT]
    python benchmarks/bench_inference.py --device cuda --batch-size 1024 --n 20000   # GPU: bf16, compiled

The baseline at batch 1 is slow, so by default it runs on the first ``--baseline-n`` of the same headlines;
headlines/s is a rate, so the ratio is unaffected.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from monitor.settings import Settings


def load_headlines(n: int) -> list[str]:
    """The first n headlines of Reuters, CNBC and Guardian, interleaved (a realistic mix of lengths)."""
    columns = {
        "Reuters.csv": "Headlines",
        "cnbc_headlines.csv": "Headlines",
        "guardian_headlines.csv": "Headlines",
    }
    archive = Settings().data.root / "news-headlines-2017-2020"  # FINPULSE_DATA_DIR
    sources = []
    for name, col in columns.items():
        with (archive / name).open(newline="", encoding="utf-8") as f:
            sources.append([r[col].strip() for r in csv.DictReader(f) if r.get(col) and r[col].strip()])
    out: list[str] = []
    for i in range(max(len(s) for s in sources)):
        out += [s[i] for s in sources if i < len(s)]
        if len(out) >= n:
            break
    return out[:n]


def matmul_rate(dtype_name: str, device: str = "cpu", reps: int = 5) -> float:
    """Measured dense matmul GFLOP/s on this device (torch's current thread count on a CPU)."""
    import torch

    size = 8192 if device.startswith("cuda") else 2048
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    a @ b
    _sync(device)
    started = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * size**3 * reps / (time.perf_counter() - started) / 1e9


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def baseline_pipeline(clf: Any, device: str) -> Any:
    """A transformers text-classification pipeline over the same network (sentiment head)."""
    import torch
    import transformers
    from transformers import PretrainedConfig, PreTrainedModel, pipeline
    from transformers.modeling_outputs import SequenceClassifierOutput

    net, spec = clf.net.float(), clf.spec

    class Wrapped(PreTrainedModel):
        config_class = PretrainedConfig

        def __init__(self) -> None:
            config = PretrainedConfig(id2label=dict(enumerate(spec.sentiments)), label2id={})
            super().__init__(config)
            self.net = net

        def forward(self, input_ids: Any = None, attention_mask: Any = None, **_: Any) -> Any:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            _, sentiment = self.net(input_ids, attention_mask)
            return SequenceClassifierOutput(logits=sentiment)

    model = Wrapped().eval()
    # "The model 'Wrapped' is not supported for text-classification" is expected.
    transformers.logging.set_verbosity(transformers.logging.CRITICAL)
    return pipeline(
        "text-classification", model=model, tokenizer=clf.tokenizer, device=device, dtype=torch.float32
    )


def timed_rate(fn: Any, items: list[str], device: str) -> float:
    started = time.perf_counter()
    fn(items)
    _sync(device)
    return len(items) / (time.perf_counter() - started)


def cli_rate(headlines: list[str], args: argparse.Namespace) -> float:
    """``finpulse classify --input`` in a fresh process: headlines/s including imports and model load."""
    folder = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    src, dst = folder / "in.jsonl", folder / "out.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(headlines)))
    command = [sys.executable, "-m", "monitor.cli", "classify", "--input", str(src), "--output", str(dst)]
    command += ["--model", args.model, "--batch-size", str(args.batch_size), "--device", args.device]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=os.environ | {"PYTHONWARNINGS": "ignore"})
    elapsed = time.perf_counter() - started
    if sum(1 for _ in dst.open()) != len(headlines):
        raise SystemExit("classify CLI wrote fewer lines than it read")
    return len(headlines) / elapsed


def main() -> None:
    import torch

    from monitor.classify import load_classifier
    from monitor.nn import encode_texts
    from monitor.settings import ModelSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=ModelSettings().path)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--baseline-n", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--no-compile", action="store_true", help="skip the fast (compiled) path")
    parser.add_argument(
        "--cli", action="store_true", help="also time `finpulse classify --input` (a process)"
    )
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    headlines = load_headlines(args.n)
    dtype = "bf16" if args.device.startswith("cuda") else "auto"
    settings = ModelSettings(
        path=args.model, batch_size=args.batch_size, compile="off", device=args.device, dtype=dtype
    )
    eager: Any = load_classifier(settings)
    tokens = sum(len(x) for x in encode_texts(eager.tokenizer, headlines, eager.max_length))
    params = sum(
        p.numel() for n, p in eager.net.backbone.named_parameters() if "embed" not in n and "wte" not in n
    )
    gflop_per_headline = 2 * params * tokens / len(headlines) / 1e9

    subset = headlines[: args.baseline_n]
    naive = baseline_pipeline(load_classifier(settings.model_copy(update={"dtype": "fp32"})), eager.device)
    paths: dict[str, Any] = {
        "naive": lambda texts: naive(texts, batch_size=1, truncation=True, max_length=eager.max_length),
        "eager": eager.predict,
    }
    first_pass_s = None
    if not args.no_compile:
        fast: Any = load_classifier(settings.model_copy(update={"compile": "on"}))
        started = time.perf_counter()
        fast.predict(headlines)  # compiles (or loads from the cache) every bucket these headlines need
        first_pass_s = time.perf_counter() - started
        print(f"fast path first pass {first_pass_s:.0f} s (load {_load()})", flush=True)
        if fast.fast:
            paths["fast"] = fast.predict
    for name, fn in paths.items():  # warm-up (kernel selection)
        fn(subset[:5] if name == "naive" else headlines[: args.batch_size])

    # Interleaved rounds: a busy neighbour on a shared machine slows all paths of a round alike.
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for i in range(args.rounds):
        for name, fn in paths.items():
            rates[name].append(timed_rate(fn, subset if name == "naive" else headlines, eager.device))
        line = ", ".join(f"{name} {r[-1]:.1f}" for name, r in rates.items())
        print(f"round {i + 1}: {line} headlines/s (load {_load()})", flush=True)
    rate = {name: statistics.median(r) for name, r in rates.items()}
    if args.cli:
        rate["classify_cli"] = cli_rate(headlines, args)

    peak = {d: matmul_rate(d, eager.device) for d in ("fp32", "bf16")}
    run_dtype = {"naive": "fp32", "eager": "bf16" if eager.bf16 else "fp32"}
    run_dtype["fast"] = run_dtype["classify_cli"] = run_dtype["eager"]
    share = {name: r * gflop_per_headline / peak[run_dtype[name]] for name, r in rate.items()}
    report(args, rate, rates, share, peak, run_dtype, first_pass_s, len(subset))
    if args.json:
        figures = {
            "model": eager.version,
            "device": eager.device,
            "headlines": len(headlines),
            "baseline_headlines": len(subset),
            "tokens_per_headline": round(tokens / len(headlines), 1),
            "gflop_per_headline": round(gflop_per_headline, 3),
            "threads": torch.get_num_threads(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "per_round_headlines_per_s": {k: [round(x, 1) for x in v] for k, v in rates.items()},
            "headlines_per_s": {k: round(v, 1) for k, v in rate.items()},
            "speedup_over_naive": {k: round(v / rate["naive"], 1) for k, v in rate.items()},
            "dtype": run_dtype,
            "matmul_gflops": {k: round(v) for k, v in peak.items()},
            "share_of_matmul_rate": {k: round(v, 3) for k, v in share.items()},
            "fast_first_pass_s": None if first_pass_s is None else round(first_pass_s, 1),
        }
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


def report(
    args: argparse.Namespace,
    rate: dict[str, float],
    rates: dict[str, list[float]],
    share: dict[str, float],
    peak: dict[str, float],
    run_dtype: dict[str, str],
    first_pass_s: float | None,
    baseline_n: int,
) -> None:
    labels = {
        "naive": f"naive pipeline (fp32, batch 1, {baseline_n} headlines)",
        "eager": f"FinPulse eager ({run_dtype['eager']}, batch {args.batch_size})",
        "fast": f"FinPulse fast (compiled buckets, {run_dtype['fast']})",
        "classify_cli": "finpulse classify --input, incl. model load",
    }
    print(f"{args.n} headlines on {args.device}; medians of {args.rounds} interleaved rounds; load {_load()}")
    for name, r in rate.items():
        rounds = " ".join(f"{x:.0f}" for x in rates.get(name, []))
        print(
            f"{labels[name]:<48} {r:8.1f} headlines/s  {r / rate['naive']:5.1f}x naive  "
            f"{share[name]:5.1%} of {run_dtype[name]} peak  [{rounds}]"
        )
    if first_pass_s is not None:
        print(f"fast path first pass (compile or cache load + one pass): {first_pass_s:.0f} s")
    print(f"measured matmul rate: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


if __name__ == "__main__":
    main()
