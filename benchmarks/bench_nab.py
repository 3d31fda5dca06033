"""NAB realTweets benchmark: our detector beside the published detectors, as a Markdown table.

    python benchmarks/bench_nab.py [--data $FINPULSE_DATA_DIR/nab-realtweets] [--out artifacts/nab]

One detector parameter set (the defaults), thresholds optimised per profile as NAB does (benchmarks/nab.py),
beside the published realTweets-only normalised scores from ``results/realTweets_normalized_scores.csv``.
Writes NAB's per-series result CSVs to ``--out``; the last line printed is our three profile scores as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from nab import PROFILE_NAMES, run_benchmark  # benchmarks/nab.py, beside this script

from monitor.settings import Settings

PUBLISHED = ("ARTime", "contextOSE", "numenta", "twitterADVec", "windowedGaussian")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Settings().data.root / "nab-realtweets")
    parser.add_argument("--out", type=Path, default=Path("artifacts/nab"))
    args = parser.parse_args()
    started = time.perf_counter()
    ours = run_benchmark(args.data, args.out)
    elapsed = time.perf_counter() - started
    published = pd.read_csv(args.data / "results" / "realTweets_normalized_scores.csv").set_index("detector")
    print("| detector | " + " | ".join(PROFILE_NAMES) + " |")
    print("|---|" + "---|" * len(PROFILE_NAMES))
    rows = [(name, [float(published.loc[name, p]) for p in PROFILE_NAMES]) for name in PUBLISHED]
    rows.append(("**FinPulse NegativeSpikeDetector**", [ours[p].normalised for p in PROFILE_NAMES]))
    for name, values in sorted(rows, key=lambda r: -r[1][0]):
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    for p in PROFILE_NAMES:
        r = ours[p]
        found = sum(f.windows_detected for f in r.files)
        fps = sum(f.fp for f in r.files)
        print(
            f"\n{p}: threshold {r.threshold:.3f}, raw {r.raw:.2f} (null {r.null:.0f}, perfect {r.perfect:.0f}), "
            f"windows found {found}/{sum(f.n_windows for f in r.files)}, false-positive rows {fps}",
            end="",
        )
    print(f"\n\n{len(ours['standard'].files)} files in {elapsed:.1f} s")
    print(json.dumps({name: round(r.normalised, 2) for name, r in ours.items()}))


if __name__ == "__main__":
    main()
