"""Labelled examples: loaders for the shared data sets and a generic CSV/JSONL loader, plus the seeded,
stratified train/validation split. Pure functions over rows; the readers only parse files.

Every example carries one label for one task (``sentiment`` or ``topic``); the other head is masked in the
loss. Labels are stored as names (monitor.labels); ids are looked up at training time.

Financial PhraseBank agreement levels: we keep **all** levels (50, 66, 75, 100 % of annotators agreeing) and
weight each sentence's loss by its agreement fraction. Held-out "FPB-style" sentences are drawn from the whole
phrase bank (the common benchmark split is the 50 %-agree set), so training on 100 %-agree only would skip the
harder, ambiguous sentences the test contains; dropping the lower levels would also lose ~26 % of the data.
Weighting keeps them while letting the unanimous labels dominate.
"""

from __future__ import annotations

import csv
import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from monitor.errors import FinPulseError
from monitor.ingest import replay
from monitor.labels import SENTIMENTS, TOPICS
from monitor.nn import clean_text
from monitor.settings import Settings

Task = Literal["sentiment", "topic"]
LABELS: dict[str, tuple[str, ...]] = {"sentiment": SENTIMENTS, "topic": TOPICS}
TWEET_SENTIMENT = {"0": "negative", "1": "positive", "2": "neutral"}  # Bearish, Bullish, Neutral


class DataError(FinPulseError):
    """A data file is missing, malformed or carries unknown labels."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    task: Task
    label: str  # a name from LABELS[task]
    source: str  # data set name, e.g. "fpb"
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class DataSource:
    """Where a data set came from, for the model card."""

    name: str
    path: str
    sha256: str
    licence: str
    rows: int


def data_root(configured: str | None = None) -> Path:
    """The data sets folder: ``configured`` (``--data-dir``), else FINPULSE_DATA_DIR (default ``../shared/data``
    from the repository root)."""
    return Path(configured) if configured else Settings().data.root


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV (header line) or JSONL file as dicts of strings ("" where a value is missing), read by
    the one CSV/JSONL reader (``monitor.ingest.replay.read_rows``); a line it cannot read is a ``DataError``
    here (training data is curated: nothing is skipped silently)."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    frame, errors = replay.read_rows(path)
    if errors:
        raise DataError(
            f"{path}: {errors[0]}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
        )
    return [
        {k: "" if v is None or v != v else str(v) for k, v in row.items() if k != "_line"}  # v != v: NaN
        for row in frame.to_dict(orient="records")
    ]


def to_examples(
    rows: Iterable[Mapping[str, str]],
    task: Task,
    source: str,
    label_map: Mapping[str, str] | None = None,
    text_col: str = "text",
    label_col: str = "label",
) -> list[Example]:
    """Rows with a text and a label (a name, or a key of ``label_map``) -> examples. Unknown labels raise."""
    names = LABELS[task]
    out = []
    for i, row in enumerate(rows):
        raw = str(row.get(label_col, "")).strip()
        label = label_map.get(raw, raw) if label_map else raw
        if label not in names:
            raise DataError(f"{source} row {i}: label {raw!r} is not one of the {task} labels {list(names)}")
        out.append(Example(str(row.get(text_col, "")), task, label, source))
    return out


def load_labelled(path: Path, task: Task, label_map: Mapping[str, str] | None = None) -> list[Example]:
    """Generic loader: CSV/JSONL with ``text`` and ``label`` columns; labels are names or mapped by label_map."""
    return to_examples(read_rows(path), task, path.stem, label_map)


def fpb_examples(rows: Iterable[Mapping[str, str]], min_agreement: int = 50) -> list[Example]:
    """Financial PhraseBank rows (sentence,label,agreement) -> sentiment examples weighted by agreement."""
    out = []
    for row in rows:
        agreement = int(row.get("agreement") or 100)
        if agreement >= min_agreement:
            (ex,) = to_examples([row], "sentiment", "fpb", text_col="sentence")
            out.append(replace(ex, weight=agreement / 100))
    return out


def topic_label_map(classes_file: Path | None = None) -> dict[str, str]:
    """Topic ids -> names; checks classes.txt (when given) against monitor.labels.TOPICS."""
    if classes_file is not None and classes_file.is_file():
        names = tuple(x.strip() for x in classes_file.read_text(encoding="utf-8").splitlines() if x.strip())
        if names != TOPICS:
            raise DataError(f"{classes_file} does not match monitor.labels.TOPICS")
    return {str(i): name for i, name in enumerate(TOPICS)}


def shared_datasets(data_dir: Path, fpb_min_agreement: int = 50) -> tuple[list[Example], list[DataSource]]:
    """The three training sets of the data folder (``data_root``), with provenance (paths relative to it)."""
    fpb = data_dir / "financial-phrasebank" / "fpb_train.csv"
    sent = data_dir / "twitter-fin-news-sentiment" / "sent_train.csv"
    topic_dir = data_dir / "twitter-fin-news-topic"
    topic = topic_dir / "topic_train.csv"
    examples = fpb_examples(read_rows(fpb), fpb_min_agreement)
    examples += to_examples(read_rows(sent), "sentiment", "tweet-sentiment", TWEET_SENTIMENT)
    examples += to_examples(
        read_rows(topic), "topic", "tweet-topic", topic_label_map(topic_dir / "classes.txt")
    )
    counts: defaultdict[str, int] = defaultdict(int)
    for ex in examples:
        counts[ex.source] += 1

    def rel(path: Path) -> str:
        return path.relative_to(data_dir).as_posix()

    sources = [
        DataSource("fpb", rel(fpb), file_sha256(fpb), "CC BY-NC-SA 3.0", counts["fpb"]),
        DataSource("tweet-sentiment", rel(sent), file_sha256(sent), "MIT", counts["tweet-sentiment"]),
        DataSource("tweet-topic", rel(topic), file_sha256(topic), "MIT", counts["tweet-topic"]),
    ]
    return examples, sources


REAL_HEADLINES = "real-headlines-labeled/real_headlines_labeled.csv"
NEWS_ARCHIVE = "news-headlines-2017-2020"
# outlet -> (file, headline column) in NEWS_ARCHIVE (see its SOURCE.md for the parsing traps)
NEWS_FILES = {
    "Reuters": ("Reuters.csv", "Headlines"),
    "CNBC": ("cnbc_headlines.csv", "Headlines"),
    "Guardian": ("guardian_headlines.csv", "Headlines"),
}
EXTRA_LABELS = Path(__file__).resolve().parent / "labels" / "real-headlines-extra.csv"
_SECTION_RE = re.compile(r"\n\s*\n")
_WS_RE = re.compile(r"\s+")


def clean_headline(raw: str) -> str:
    """A headline as labelled: Guardian section labels glued on with blank lines
    (``"Nils Pratley on finance \\n\\n\\n Title"``) dropped, whitespace collapsed."""
    return _WS_RE.sub(" ", _SECTION_RE.split(raw)[-1]).strip()


def headline_key(text: str) -> str:
    """Stable reference to an archive headline (our labels point at the text, they never copy it)."""
    return hashlib.sha1(clean_headline(text).encode("utf-8")).hexdigest()[:16]


def real_headlines(data_dir: Path) -> tuple[list[Example], list[Example], DataSource]:
    """``real-headlines-labeled``: (train, val) examples, two per headline (sentiment and topic)."""
    path = data_dir / REAL_HEADLINES
    train: list[Example] = []
    val: list[Example] = []
    for row in read_rows(path):
        split = val if row.get("split") == "val" else train
        split += headline_examples(row["title"], row["sentiment"], row["topic"], "real")
    source = DataSource(
        "real-headlines",
        REAL_HEADLINES,
        file_sha256(path),
        "labels: FinPulse (silver); text: © Reuters/CNBC/Guardian, research use",
        len(train) // 2 + len(val) // 2,
    )
    return train, val, source


def headline_examples(text: str, sentiment: str, topic: str, prefix: str) -> list[Example]:
    """One headline with both labels -> a sentiment and a topic example (sources PREFIX-sentiment/-topic)."""
    out = []
    for task, label in (("sentiment", sentiment.strip()), ("topic", topic.strip())):
        if label not in LABELS[task]:
            raise DataError(f"{prefix}: {task} label {label!r} of {text[:60]!r} is not a known label")
        out.append(Example(text, task, label, f"{prefix}-{task}"))  # type: ignore[arg-type]
    return out


def archive_headlines(data_dir: Path) -> dict[str, tuple[str, str]]:
    """Every headline of the news archive: key -> (outlet, cleaned text)."""
    out: dict[str, tuple[str, str]] = {}
    for outlet, (name, column) in NEWS_FILES.items():
        for row in read_rows(data_dir / NEWS_ARCHIVE / name):
            text = clean_headline(row.get(column) or "")
            if text:
                out.setdefault(headline_key(text), (outlet, text))
    return out


def extra_real_labels(data_dir: Path, labels: Path = EXTRA_LABELS) -> tuple[list[Example], DataSource]:
    """Our own labels of archive headlines (training/labels/README.md): joined to the text by key."""
    archive = archive_headlines(data_dir)
    examples: list[Example] = []
    rows = read_rows(labels)
    missing = [r["key"] for r in rows if r["key"] not in archive]
    if missing:
        raise DataError(f"{labels}: {len(missing)} keys not in {data_dir / NEWS_ARCHIVE}, e.g. {missing[:3]}")
    for row in rows:
        examples += headline_examples(archive[row["key"]][1], row["sentiment"], row["topic"], "real-extra")
    source = DataSource(
        "real-headlines-extra",
        f"training/labels/{labels.name}",
        file_sha256(labels),
        "labels: FinPulse (silver); text: © Reuters/CNBC/Guardian, research use",
        len(rows),
    )
    return examples, source


def subsample(examples: Sequence[Example], source: str, limit: int | None, seed: int) -> list[Example]:
    """At most ``limit`` examples of ``source`` (stratified by label), the others untouched."""
    mine = [e for e in examples if e.source == source]
    if limit is None or len(mine) <= limit:
        return list(examples)
    keep_frac = limit / len(mine)
    kept = {id(e) for e in _stratified_take(mine, keep_frac, seed)}
    return [e for e in examples if e.source != source or id(e) in kept]


def _stratified_take(examples: Sequence[Example], fraction: float, seed: int) -> list[Example]:
    groups: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for e in examples:
        groups[(e.source, e.label)].append(e)
    rng = random.Random(seed)
    taken = []
    for key in sorted(groups):
        items = groups[key][:]
        rng.shuffle(items)
        taken += items[: max(1, round(len(items) * fraction))] if len(items) > 1 else []
    return taken


def split_train_val(
    examples: Sequence[Example], val_fraction: float = 0.1, seed: int = 13
) -> tuple[list[Example], list[Example]]:
    """Seeded split stratified by (source, label); a class with one example stays in training. Texts that
    repeat (after URL removal, case-folded) across the split are dropped from training, so validation never
    scores a sentence the model was trained on."""
    val = _stratified_take(examples, val_fraction, seed)
    val_ids = {id(e) for e in val}
    val_texts = {norm_text(e.text) for e in val}
    return [e for e in examples if id(e) not in val_ids and norm_text(e.text) not in val_texts], val


def norm_text(text: str) -> str:
    """The identity of a text for de-duplication: what the model reads, case-folded."""
    return clean_text(text).casefold()


def write_csv(examples: Sequence[Example], path: Path) -> None:
    """text,label CSV (label names) — the format ``finpulse evaluate`` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for e in examples:
            w.writerow([e.text, e.label])
