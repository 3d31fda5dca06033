"""Explanation cost and faithfulness on a model (not a test; the figures go to docs/benchmarks.md).

Latency: each headline explained on its own, as the dashboard and ``finpulse explain`` do (one batch of
words + 1 rows), against ``predict`` on the same single headline: median and p90 seconds, and the ratio.
Faithfulness: over the same fixed headlines (the ``val`` split of real-headlines-labeled, in file order), the
mean fall of the predicted class's probability when the top-k attributed words are deleted, against k random
words (mean of ``--random-draws`` seeds) and the k least attributed words.

    python benchmarks/bench_explain.py [--model DIR] [--n 60] [--k 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from monitor.classify import load_classifier
from monitor.explain import by_chance, by_weight, deletion_drops, explain, least_first, probabilities_of
from monitor.settings import Settings
from training.data import data_root, real_headlines


def fixed_headlines(n: int) -> list[str]:
    _, val, _ = real_headlines(data_root(None))  # FINPULSE_DATA_DIR
    return list(dict.fromkeys(e.text for e in val))[:n]


def timed(fn, *args) -> tuple[float, float]:  # noqa: ANN001, ANN002 - a stopwatch
    """(wall seconds, CPU seconds of this process): on a shared machine the CPU time is the cost."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model directory (default: FINPULSE_MODEL_PATH / the shipped model)")
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--random-draws", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    settings = Settings().with_overrides(model={"path": args.model})
    classifier = load_classifier(settings.model)
    texts = fixed_headlines(args.n)
    classifier.predict(texts[:8])  # warm-up
    predict_t = [timed(classifier.predict, [t]) for t in texts]
    explain_t = [timed(explain, classifier, [t]) for t in texts]
    predict_s, explain_s = [w for w, _ in predict_t], [w for w, _ in explain_t]
    predict_cpu, explain_cpu = [c for _, c in predict_t], [c for _, c in explain_t]
    explanations = explain(classifier, texts)
    proba = probabilities_of(classifier)
    faith = {}
    for head in ("sentiment", "topic"):
        top = deletion_drops(proba, explanations, {"top": by_weight, "least": least_first}, head, args.k)
        rand = [deletion_drops(proba, explanations, {"random": by_chance}, head, args.k, seed).drops["random"]
                for seed in range(args.random_draws)]  # fmt: skip
        faith[head] = {**top.drops, "random": round(statistics.mean(rand), 4), "n": top.n, "k": args.k}
    words = [len(e.sentiment.words) for e in explanations]
    report = {
        "model": classifier.version,
        "device": getattr(classifier, "device", "n/a"),
        "threads": __import__("torch").get_num_threads(),
        "headlines": len(texts),
        "mean_words": round(statistics.mean(words), 1),
        "predict_median_s": round(statistics.median(predict_s), 4),
        "explain_median_s": round(statistics.median(explain_s), 4),
        "explain_p90_s": round(statistics.quantiles(explain_s, n=10)[-1], 4),
        "explain_over_predict": round(statistics.median(explain_s) / statistics.median(predict_s), 1),
        "predict_median_cpu_s": round(statistics.median(predict_cpu), 4),
        "explain_median_cpu_s": round(statistics.median(explain_cpu), 4),
        "load_avg_1min": round(__import__("os").getloadavg()[0], 1),
        "faithfulness": faith,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
