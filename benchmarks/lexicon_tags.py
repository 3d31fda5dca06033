"""Stand-in tags for ``finpulse bench events`` when the classifier cannot be run: a small negative-word lexicon.

    python benchmarks/lexicon_tags.py --out DIR    # writes DIR/lexicon-v1.jsonl in the tag-cache format
    finpulse bench events --tags-cache DIR --tags-version lexicon-v1

Every headline with a word from ``NEGATIVE`` is negative, the rest neutral, all under one topic. Cruder than the
classifier (no topics, no negation, no context): use it to exercise the detector, and quote its figures as
lexicon figures only.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from monitor.bench.cli import data_folder
from monitor.bench.feeds import read_feeds
from monitor.bench.tagcache import cache_file, text_key

VERSION = "lexicon-v1"
NEGATIVE = re.compile(
    r"\b(falls?|fell|drops?|plunges?|slumps?|tumbles?|crash(es)?|crisis|fears?|loss(es)?|cuts?|warns?|warning|"
    r"slows?|slowdown|recession|sell-?off|rout|worst|fined?|probe|scandal|lawsuit|sues?|collapses?|bankrupt\w*|"
    r"layoffs?|tariffs?|war|threats?|risks?|weak(er)?|declines?|sinks?|slides?|default|fraud|virus|"
    r"coronavirus|pandemic|lockdown|grounded|grounding|attacks?|turmoil|panic|shock|plummets?|negative|lost)\b",
    re.IGNORECASE,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    path = cache_file(args.out, VERSION)
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = {t for frame in read_feeds(data_folder(args.data)).values() for t in frame["text"]}
    with path.open("w") as fh:
        for text in sorted(texts):
            neg = NEGATIVE.search(text) is not None
            row = {
                "sentiment": "negative" if neg else "neutral",
                "topic": "News",
                "sentiment_score": -0.8 * neg,
            }
            fh.write(json.dumps({"k": text_key(text), **row}) + "\n")
    print(path)


if __name__ == "__main__":
    main()
