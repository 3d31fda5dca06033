"""Inference throughput: naive baseline vs FinPulse's predict, same model, same headlines (not a test).

Baseline: the transformers ``pipeline("text-classification")`` over the same network (sentiment head only, so
it does *less* work than FinPulse, which computes both heads), batch size 1, fp32, no truncation tricks.
FinPulse: ``load_classifier(...).predict`` (length-sorted batches, dynamic padding, LoRA merged, bf16 autocast
where the CPU has native bf16, ``inference_mode``), measured twice: eager (what one-shot commands such as
``finpulse classify`` run) and ``torch.compile``d (what the worker runs; the one-off compile time is printed).

Also measures the machine's dense matmul rate (fp32 and bf16, 2048^3) and reports what fraction of it the model
achieves: FLOPs per headline = 2 x (non-embedding parameters of the layers run) x tokens.

    python benchmarks/bench_inference.py [--model DIR] [--n 2000] [--baseline-n 300] [--json OUT]

The baseline at batch 1 is slow, so by default it runs on the first ``--baseline-n`` of the same headlines;
headlines/s is a rate, so the ratio is unaffected (pass ``--baseline-n 2000`` for the full set).
"""

from __future__ import annotations

import argparse
import csv
import json
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


def matmul_rate(dtype_name: str, size: int = 2048, reps: int = 5) -> float:
    """Measured dense matmul GFLOP/s on this machine (torch's current thread count)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    started = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / (time.perf_counter() - started) / 1e9


def baseline_pipeline(clf: Any) -> Any:
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
        "text-classification", model=model, tokenizer=clf.tokenizer, device="cpu", dtype=torch.float32
    )


def timed_rate(fn: Any, items: list[str]) -> float:
    started = time.perf_counter()
    fn(items)
    return len(items) / (time.perf_counter() - started)


def main() -> None:
    import statistics

    import torch

    from monitor.classify import load_classifier
    from monitor.nn import encode_texts
    from monitor.settings import ModelSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=ModelSettings().path)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--baseline-n", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    headlines = load_headlines(args.n)
    settings = ModelSettings(path=args.model, batch_size=args.batch_size, compile="off")
    eager: Any = load_classifier(settings)
    tokens = sum(len(x) for x in encode_texts(eager.tokenizer, headlines, eager.max_length))
    params = sum(
        p.numel() for n, p in eager.net.backbone.named_parameters() if "embed" not in n and "wte" not in n
    )
    flops_per_token = 2 * params

    paths: dict[str, Any] = {}
    subset = headlines[: args.baseline_n]
    pipe = baseline_pipeline(load_classifier(settings.model_copy(update={"dtype": "fp32"})))
    paths["baseline"] = lambda texts: pipe(texts, batch_size=1, truncation=True, max_length=eager.max_length)
    paths["eager"] = eager.predict
    compile_s = None
    if not args.no_compile:
        started = time.perf_counter()
        compiled: Any = load_classifier(settings.model_copy(update={"compile": "on"}))
        compile_s = time.perf_counter() - started
        if compiled.compiled:
            paths["compiled"] = compiled.predict
    for name, fn in paths.items():  # warm-up (kernel selection)
        fn(subset[:5] if name == "baseline" else headlines[:64])

    # Interleaved rounds: a busy neighbour on a shared machine slows all paths of a round alike.
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, fn in paths.items():
            rates[name].append(timed_rate(fn, subset if name == "baseline" else headlines))
    rate = {name: statistics.median(r) for name, r in rates.items()}
    base_rate, eager_rate = rate["baseline"], rate["eager"]
    fast_rate = rate.get("compiled", eager_rate)

    peak = {"fp32": matmul_rate("fp32"), "bf16": matmul_rate("bf16")}
    achieved = tokens * flops_per_token * fast_rate / len(headlines) / 1e9
    dtype = "bf16" if eager.bf16 else "fp32"
    figures = {
        "model": eager.version,
        "headlines": len(headlines),
        "tokens_per_headline": round(tokens / len(headlines), 1),
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "per_round_headlines_per_s": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "finpulse_dtype": dtype,
        "finpulse_eager_headlines_per_s": round(eager_rate, 1),
        "finpulse_headlines_per_s": round(fast_rate, 1),
        "compile_s": None if compile_s is None else round(compile_s, 1),
        "baseline_headlines": len(subset),
        "baseline_headlines_per_s": round(base_rate, 1),
        "speedup_eager": round(eager_rate / base_rate, 1),
        "speedup": round(fast_rate / base_rate, 1),
        "matmul_gflops": {k: round(v) for k, v in peak.items()},
        "achieved_gflops": round(achieved, 1),
        "fraction_of_matmul_rate": round(achieved / peak[dtype], 3),
    }
    print(f"medians of {args.rounds} interleaved rounds")
    print(f"naive pipeline (fp32, batch 1):            {base_rate:8.1f} headlines/s on {len(subset)}")
    print(
        f"FinPulse predict, eager ({dtype}, batch {args.batch_size}): {eager_rate:8.1f} headlines/s "
        f"({eager_rate / base_rate:.1f}x)"
    )
    if "compiled" in rate:
        print(
            f"FinPulse predict, compiled (worker path):  {fast_rate:8.1f} headlines/s "
            f"({fast_rate / base_rate:.1f}x; compiled in {compile_s:.0f} s)"
        )
    print(f"speed-up (worker path): {fast_rate / base_rate:.1f}x")
    print(
        f"model achieves {achieved:.0f} GFLOP/s = {achieved / peak[dtype]:.0%} of the measured {dtype} matmul rate "
        f"({peak[dtype]:.0f} GFLOP/s; fp32 {peak['fp32']:.0f})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
