"""Where inference time goes (not a test): torch.profiler over the eager network at one batch shape, ops grouped
into matmuls, attention, norms, elementwise and everything else (Python, framework overhead).

    python benchmarks/profile_inference.py [--model DIR] [--batch 64] [--tokens 24] [--dtype auto|fp32|bf16]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

GROUPS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul", "mkldnn"),
    "attention": ("scaled_dot_product", "attention", "softmax"),
    "norms": ("rsqrt", "pow", "mean", "norm"),
    "elementwise": (
        "aten::mul",
        "aten::add",
        "aten::silu",
        "aten::cat",
        "aten::neg",
        "aten::to",
        "aten::copy",
    ),
}


def group_of(name: str) -> str:
    return next((g for g, keys in GROUPS.items() if any(k in name for k in keys)), "other")


def main() -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from monitor.classify import load_classifier
    from monitor.settings import ModelSettings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=ModelSettings().path)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16"])
    args = ap.parse_args()
    clf = load_classifier(ModelSettings(path=args.model, compile="off", dtype=args.dtype))  # type: ignore[arg-type]
    with torch.inference_mode():
        x = torch.randint(100, 20_000, (args.batch, args.tokens))
        mask = torch.ones_like(x)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=clf.bf16)
    with torch.inference_mode(), ctx:
        clf.net(x, mask)  # warm-up
        started = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            clf.net(x, mask)
        wall = time.perf_counter() - started
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        totals[group_of(event.key)] += event.self_cpu_time_total / 1e6
    profiled = sum(totals.values())
    print(
        f"{args.batch} x {args.tokens} tokens, {'bf16' if clf.bf16 else 'fp32'}, {torch.get_num_threads()} threads, "
        f"load {' '.join(f'{v:.2f}' for v in os.getloadavg())}: one forward {wall:.2f} s (profiled)"
    )
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<12} {seconds:7.3f} s  {seconds / profiled:6.1%}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
