"""Entity linking: precision and recall on the hand-labelled check set, and linking throughput.

    python benchmarks/bench_entities.py [--data-dir ../shared/data] [--headlines 100000] [--errors]

Precision/recall are micro-averaged over (headline, company) pairs of ``training/labels/entity-checkset.csv``
("all": every labelled company; "known": only companies the dictionary has a key for). Throughput links
``--headlines`` archive headlines (the archive repeated) with the dictionary linker, and again with the
emerging-names tracker as the worker runs it; CPU seconds (process time) and wall seconds are reported, per
10k headlines. The wall figure depends on what else the machine runs.
"""

from __future__ import annotations

import argparse
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.emerging import EmergingNames, Story, link_stories, place_names
from monitor.entities import load_linker
from monitor.schema import story_key
from training.data import DEFAULT_DATA_DIR, archive_headlines
from training.entity_checkset import load_checkset, score


def timed(fn: object) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()  # type: ignore[operator]
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--headlines", type=int, default=100_000)
    parser.add_argument("--errors", action="store_true", help="print every headline the linker got wrong")
    args = parser.parse_args()

    build_cpu, build_wall = timed(lambda: load_linker())
    linker = load_linker()
    cases = load_checkset(args.data_dir)
    link = lambda text: [e.key for e in linker.link(text)]  # noqa: E731
    every, known = score(cases, link), score(cases, link, known_only=True)
    print(
        f"check set: {every.headlines} headlines, {sum(len(c.expected) for c in cases)} labelled companies "
        f"({sum(1 for c in cases if not c.expected)} headlines with none)"
    )
    for name, s in (("all", every), ("known", known)):
        print(
            f"  {name:<5}  precision {s.precision:.3f}  recall {s.recall:.3f}  "
            f"(tp {s.true_positives}, fp {s.false_positives}, fn {s.false_negatives})"
        )
    if args.errors:
        for text, missed, wrong in every.errors:
            print(f"    missed {list(missed)} wrong {list(wrong)}: {text}")

    texts = [t for _, t in archive_headlines(args.data_dir).values()]
    batch = list(itertools.islice(itertools.cycle(texts), args.headlines))
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    stories = [Story(t, story_key(t), t0 + timedelta(minutes=i)) for i, t in enumerate(batch)]
    per = 10_000 / len(batch)
    print(
        f"dictionary: {len(linker.dictionary.surfaces)} surfaces, {len(linker.dictionary.names)} keys; "
        f"built in {build_cpu:.2f} s CPU ({build_wall:.2f} s wall)"
    )
    cpu, wall = timed(lambda: linker.link_many(batch))
    print(f"linking {len(batch)} headlines: {cpu * per:.3f} s CPU per 10k ({wall * per:.3f} s wall per 10k)")
    load_cpu, load_wall = timed(place_names)  # once per process, before the first emerging name
    print(f"  place list for emerging names loaded in {load_cpu:.2f} s CPU ({load_wall:.2f} s wall)")
    cpu, wall = timed(lambda: link_stories(linker, EmergingNames(), stories))
    print(f"  with emerging names: {cpu * per:.3f} s CPU per 10k ({wall * per:.3f} s wall per 10k)")


if __name__ == "__main__":
    main()
