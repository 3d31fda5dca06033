"""The entity-linking check set: real archive headlines labelled by hand with the companies they are about
(``training/labels/entity-checkset.csv``, text joined by key at run time), and its scorer."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from training.data import DataError, archive_headlines

CHECKSET = Path(__file__).resolve().parent / "labels" / "entity-checkset.csv"


@dataclass(frozen=True, slots=True)
class CheckCase:
    key: str
    outlet: str
    text: str
    expected: frozenset[str]  # entity keys; "?Name" = a company the dictionary has no key for


@dataclass(frozen=True, slots=True)
class CheckScore:
    headlines: int
    true_positives: int
    false_positives: int
    false_negatives: int
    errors: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]  # text, missed, wrongly linked

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0


def load_checkset(data_dir: Path, path: Path = CHECKSET) -> list[CheckCase]:
    """The labelled cases with their text from the archive; a key that does not join is an error."""
    texts = archive_headlines(data_dir)
    cases, missing = [], []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(line for line in fh if not line.startswith("#")):
            if row["key"] not in texts:
                missing.append(row["key"])
                continue
            expected = frozenset(e.strip() for e in row["entities"].split(";") if e.strip())
            cases.append(CheckCase(row["key"], row["outlet"], texts[row["key"]][1], expected))
    if missing:
        raise DataError(
            f"{path}: {len(missing)} keys not in the news archive of {data_dir}, e.g. {missing[:3]}"
        )
    return cases


def score(
    cases: Sequence[CheckCase], link: Callable[[str], Iterable[str]], known_only: bool = False
) -> CheckScore:
    """Micro precision and recall over (headline, entity) pairs. ``known_only`` drops expected companies
    the dictionary has no key for ("?Name"), measuring the matcher rather than the dictionary's coverage."""
    tp = fp = fn = 0
    errors = []
    for case in cases:
        expected = {e for e in case.expected if not (known_only and e.startswith("?"))}
        got = {k for k in link(case.text) if not k.startswith("~")}
        tp, fp, fn = tp + len(expected & got), fp + len(got - expected), fn + len(expected - got)
        if expected != got:
            errors.append((case.text, tuple(sorted(expected - got)), tuple(sorted(got - expected))))
    return CheckScore(len(cases), tp, fp, fn, tuple(errors))
