"""Story terms: the content words of a headline, for *term keys* (``term:tariff``, ``term:lira``).

A story about a crisis nobody listed — a currency, a virus, a trade round — shows up as one word recurring across
distinct negative headlines, as an unknown company's name does (``monitor/emerging.py``). Every content word of
a headline (lower-cased, possessive and plural ``s`` dropped, function words and feed furniture removed by
``monitor/data/term_stopwords.txt``, at least 4 letters) is a term; the detector treats each term as a key with
its own baseline, so "tariff" in a year of trade-war news needs a real surge, and "lira" needs three stories.

Pure: ``story_terms(text) -> tuple[str, ...]`` in first-seen order, no duplicates.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

STOPWORDS_FILE = Path(__file__).with_name("data") / "term_stopwords.txt"
MIN_LETTERS = 4
# A headline carries about 6.5 content words (6.4-6.9 measured on the Reuters, CNBC and Guardian archive
# headlines): the term keys' budget is split by share of stories divided by this, so it adds up to the kind's.
TERMS_PER_HEADLINE = 6.5
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]")
_KEEP_S = ("ss", "us", "is", "ys")  # crisis, virus, bonus, always: not plurals
_ES_PLURALS = ("sses", "shes", "ches", "xes", "zes")


@functools.lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    words: set[str] = set()
    for line in STOPWORDS_FILE.read_text().splitlines():
        if not line.startswith("#"):
            words.update(w.strip().lower() for w in line.split())
    return frozenset(words)


def normalise(word: str) -> str:
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.strip("'-")
    if len(w) >= MIN_LETTERS and w.endswith(_ES_PLURALS):
        return w[:-2]  # crashes, taxes, misses
    if len(w) >= MIN_LETTERS and w.endswith("s") and not w.endswith(_KEEP_S):
        w = w[:-1]
    return w


def story_terms(text: str) -> tuple[str, ...]:
    stop = stopwords()
    out: dict[str, None] = {}
    for raw in _WORD_RE.findall(text):
        if raw.lower().replace("’", "'") in stop:
            continue
        w = normalise(raw)
        if len(w) >= MIN_LETTERS and w not in stop and "'" not in w:
            out.setdefault(w, None)
    return tuple(out)
