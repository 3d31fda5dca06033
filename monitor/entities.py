"""Entity linking: which companies a headline is about (pure; no I/O after the dictionary is built).

The dictionary joins three sources, later ones overriding earlier ones:

1. ``pytickersymbols`` (index constituents with names and symbols, offline): source ``name``;
2. our alias table ``monitor/data/entity_aliases.csv`` (the short names headlines use, banks, and companies
   that left an index: acquired, failed, delisted): source ``alias``;
3. an optional user watchlist (``FINPULSE_ENTITIES_WATCHLIST``, CSV ``ticker,name,aliases``): ``watchlist``.

Matching is one Aho–Corasick pass over the case-folded headline; each hit is then checked against the
original text: case (``Apple`` links, ``apple`` does not), word boundaries, possessives (``Apple's``), and for
*ambiguous* surfaces (a common English word or a proper noun in the word list, or two letters or fewer) the
context (capitalised mid-sentence and not after a first name, followed by a company word such as "shares", or
the same company's cashtag). Names that are never companies (``monitor/data/entity_stopnames.txt``: the Fed,
Wall Street…) are never linked. Cashtags (``$AAPL``) link as today, source ``cashtag``.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ahocorasick

from monitor.errors import ConfigError
from monitor.schema import TICKER_RE, extract_cashtags

MatchSource = Literal["given", "cashtag", "watchlist", "name", "alias", "provisional"]
# When one item links the same key twice, the strongest evidence is kept (given by the producer first).
SOURCE_RANK: dict[str, int] = {
    "given": 0,
    "cashtag": 1,
    "watchlist": 2,
    "name": 3,
    "alias": 4,
    "provisional": 5,
}
PROVISIONAL_PREFIX = "~"
MAX_KEY_CHARS = 64  # news_tickers.ticker
DATA_DIR = Path(__file__).resolve().parent / "data"
ALIASES_FILE = DATA_DIR / "entity_aliases.csv"
STOPNAMES_FILE = DATA_DIR / "entity_stopnames.txt"

# Words after a name that say "this is a company" (lower case, possessive stripped).
COMPANY_WORDS = frozenset(
    """shares share stock stocks inc inc. corp corp. corporation co co. plc ltd llc ag se sa nv group holdings
    profit profits earnings revenue revenues sales results quarterly ceo cfo chief boss chairman board
    investors shareholders bonds bondholders dividend buyback ipo listing deal merger takeover bid stake
    unit division plant plants factory factories workers employees staff jobs layoffs recall recalls
    customers outlook forecast guidance valuation q1 q2 q3 q4 beats misses posts reports""".split()
)
# Words after a headline's first name that make it the subject of a sentence.
VERB_WORDS = frozenset(
    "to will says said is was has had may could should would plans cuts sees warns agrees".split()
)
# A lower-case word before an ambiguous name that makes it a person ("president Ford", "actor Ford").
PERSON_TITLES = frozenset(
    "mr mrs ms dr president senator sen rep judge actor actress lawyer singer director minister".split()
)
_WORD_RE = re.compile(r"[A-Za-z0-9][\w&'’.-]*")
_SUFFIX_RE = re.compile(
    r"(?:,?\s+(?:inc\.?|incorporated|corp\.?|corporation|company|co\.?|plc|p\.l\.c\.|ag|se|sa|s\.a\.|n\.v\.|nv|"
    r"ltd\.?|limited|llc|l\.p\.|lp|holdings?|group|class [abc]|& co\.?|& plc|technology|technologies|"
    r"international|industries|laboratories|pharmaceuticals?))+$",
    re.IGNORECASE,
)
_SENTENCE_BREAK = set(".:;!?|-–—\"“”'‘")


@dataclass(frozen=True, slots=True)
class EntityLink:
    """One company a text is about. ``key`` is the ticker symbol (or a watchlist's own key, or
    ``~Name`` for a provisional entity); ``name`` is for display."""

    key: str
    name: str
    source: MatchSource

    @property
    def provisional(self) -> bool:
        return self.source == "provisional"

    @property
    def label(self) -> str:
        """How a user sees it: ``Apple (AAPL)``, or ``Northern Rock (provisional)``."""
        return f"{self.name} (provisional)" if self.provisional else f"{self.name} ({self.key})"

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "name": self.name, "source": self.source}


@dataclass(frozen=True, slots=True)
class Surface:
    """A string that names a company in text."""

    text: str
    key: str
    source: MatchSource
    ambiguous: bool


@dataclass(frozen=True, slots=True)
class EntityDictionary:
    names: dict[str, str]  # key -> display name
    surfaces: tuple[Surface, ...]
    stopnames: tuple[str, ...]  # names that are never companies (matched to block what lies inside them)


# -- building the dictionary -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Words of the web2 list (``english-words``): lower case = common words, capitalised = proper nouns."""
    from english_words import get_english_words_set

    return frozenset(get_english_words_set(["web2"], alpha=True, lower=False))


def is_ambiguous(surface: str, words: frozenset[str] | None = None) -> bool:
    """A one-word surface that is also a word or a common proper noun (``Target``, ``Ford``, ``Amazon``), or
    one of two letters or fewer (``GE``), needs context. Several words (``Goldman Sachs``) do not."""
    if " " in surface.strip():
        return False
    bare = re.sub(r"[^A-Za-z]", "", surface)
    if len(bare) <= 2:
        return True
    words = english_words() if words is None else words
    return bare.lower() in words or bare.capitalize() in words


def name_variants(name: str) -> list[str]:
    """Surfaces derived from an official name: ``The Coca-Cola Company`` -> itself, ``Coca-Cola``."""
    name = re.sub(r"\s+", " ", re.sub(r"\s*\([^)]*\)", "", name)).strip()
    base = _SUFFIX_RE.sub("", re.sub(r"^the\s+", "", name, flags=re.IGNORECASE)).strip(" ,")
    base = re.sub(r"\s+(?:and|&)$", "", base)
    return [name] if base == name or len(base) < 2 else [name, base]


def useful_variants(name: str, words: frozenset[str]) -> list[str]:
    """``name_variants`` without a stripped one-word variant that is a word or proper noun of the word list
    ("News" of "News Corp", "American" of "American International Group", "Powell" of "Powell Industries"):
    an alias table lists such short names explicitly when they are meant."""
    variants = name_variants(name)
    return [v for i, v in enumerate(variants) if not (i and " " not in v and is_ambiguous(v, words))]


def _split_aliases(text: str) -> list[str]:
    return [a.strip() for a in re.split(r"[|;]", text or "") if a.strip()]


def index_surfaces(words: frozenset[str]) -> tuple[dict[str, str], list[Surface]]:
    """pytickersymbols' constituents: key = the listing symbol; the first listing of a name wins."""
    from pytickersymbols import PyTickerSymbols

    names: dict[str, str] = {}
    surfaces: list[Surface] = []
    for stock in PyTickerSymbols().get_all_stocks():
        key = (stock.get("symbol") or "").upper()
        if not TICKER_RE.match(key) or key in names:
            continue
        names[key] = name_variants(stock["name"])[-1]
        for i, v in enumerate(useful_variants(stock["name"], words)):  # a name we shortened is less sure
            surfaces.append(Surface(v, key, "name", is_ambiguous(v, words) or (i > 0 and " " not in v)))
    return names, surfaces


def read_alias_table(
    path: Path, source: MatchSource, words: frozenset[str]
) -> tuple[dict[str, str], list[Surface]]:
    """Rows ``key|ticker, name, aliases[, ambiguous]``; ``ambiguous`` = yes/no overrides the word-list rule."""
    if not path.is_file():
        raise ConfigError(f"entity file {path} does not exist")
    names: dict[str, str] = {}
    surfaces: list[Surface] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(line for line in fh if not line.startswith("#")), 2):
            key = (row.get("key") or row.get("ticker") or "").strip().lstrip("$")
            name = (row.get("name") or "").strip()
            if not key or not name or len(key) > MAX_KEY_CHARS or key.startswith(PROVISIONAL_PREFIX):
                raise ConfigError(
                    f"{path}:{n}: each row needs a key (at most {MAX_KEY_CHARS} chars) and a name"
                )
            flag = (row.get("ambiguous") or "").strip().lower()
            names[key] = name
            for text in dict.fromkeys(
                [*useful_variants(name, words), *_split_aliases(row.get("aliases") or "")]
            ):
                one_word = " " not in text.strip()
                amb = (flag == "yes" and one_word) or (flag != "no" and is_ambiguous(text, words))
                surfaces.append(Surface(text, key, source, amb))
    return names, surfaces


def read_stopnames(path: Path = STOPNAMES_FILE) -> tuple[str, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(s.strip() for s in lines if s.strip() and not s.startswith("#"))


def build_dictionary(watchlist: Path | None = None, aliases: Path = ALIASES_FILE) -> EntityDictionary:
    """The index dictionary, our alias table over it, and the watchlist over both: a later source's
    surface replaces an earlier one's, a later name for a key replaces its display name."""
    words = english_words()
    names, surfaces = index_surfaces(words)
    layers = [read_alias_table(aliases, "alias", words)]
    if watchlist is not None:
        layers.append(read_alias_table(Path(watchlist), "watchlist", words))
    for layer_names, layer_surfaces in layers:
        names.update(layer_names)
        surfaces += layer_surfaces
    by_text: dict[str, list[Surface]] = {}
    for s in surfaces:  # a later source's surface replaces an earlier one; spellings of one key add up
        same = by_text.setdefault(s.text.casefold(), [s])
        if (same[0].key, same[0].source) != (s.key, s.source):
            same[:] = [s]
        elif s not in same:
            same.append(s)
    watched = {t for t, same in by_text.items() if same[0].source == "watchlist"}
    stop = tuple(s for s in read_stopnames() if s.casefold() not in watched)
    folded_stop = {s.casefold() for s in stop}
    kept = tuple(s for t, same in by_text.items() if t not in folded_stop for s in same)
    return EntityDictionary(names, kept, stop)


# -- matching -------------------------------------------------------------------------------------------


# Every character but letters, digits and "&" becomes a space (same length, so offsets survive): surfaces and
# text are matched as space-padded word sequences, so every hit lies on word boundaries.
_FOLD = {i: " " for i in range(0x2070) if not chr(i).isalnum() and chr(i) != "&"}


def fold(text: str) -> str:
    """Lower case, punctuation as spaces, same length as ``text``."""
    low = text.lower()
    if len(low) != len(text):  # "İ" lower-cases to two characters: keep offsets aligned
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    return low.translate(_FOLD)


def _case_ok(found: str, surface: str) -> bool:
    """The text spells the surface as the dictionary does, punctuation aside ("Coca Cola"), or shouts it."""
    if found == surface:
        return True
    f, s = found.translate(_FOLD).strip(), surface.translate(_FOLD).strip()
    return f == s or (found.isupper() and f == s.upper())


def is_title_case(text: str) -> bool:
    """Headline Case ("Boeing Shares Fall After Crash"): a capital letter says nothing there."""
    words = [w for w in _WORD_RE.findall(text) if len(w) >= 4 and w[0].isalpha()]
    return len(words) >= 3 and sum(w[0].isupper() for w in words) >= 0.9 * len(words)


def sentence_start(text: str, start: int) -> bool:
    before = text[:start].rstrip()
    return not before or before[-1] in _SENTENCE_BREAK


def _words_after(text: str, end: int, n: int = 5) -> list[str]:
    """Up to ``n`` words after ``end`` (a possessive skipped), stopping at a sentence break."""
    end = _possessive_end(text, end)
    out: list[str] = []
    for m in _WORD_RE.finditer(text, end, min(len(text), end + 60)):
        if len(out) == n or any(c in _SENTENCE_BREAK for c in text[end : m.start()]):
            break
        out.append(m.group(0))
        end = m.end()
    return out


def _prev_word(text: str, start: int) -> tuple[str, int]:
    """The word just before ``start`` (only spaces between) and where it starts."""
    m = re.search(r"([A-Za-z0-9][\w&'’.-]*)\s+$", text[max(0, start - 40) : start])
    return ("", start) if m is None else (m.group(1), max(0, start - 40) + m.start(1))


def _possessive_end(text: str, end: int) -> int:
    for tail in ("'s", "’s", "'", "’"):
        if text.startswith(tail, end):
            return end + len(tail)
    return end


def _company_word(word: str) -> bool:
    w = word.lower()
    return w in COMPANY_WORDS or w.rstrip(".,'’s") in COMPANY_WORDS


def _verb_like(after: Sequence[str]) -> bool:
    """Headline grammar after a subject: "to", a modal, or a present/past verb ("Shell cuts", "Gap warns",
    "Ford accelerates"), not a noun phrase ("Next rounds of", "Gap in")."""
    if not after:
        return False
    w = after[0].lower()
    if w in VERB_WORDS:
        return True
    follows = after[1].lower() if len(after) > 1 else ""
    if w in ("and", "&"):  # "Boots and John Lewis to cut jobs"
        return follows[:1] != "" and after[1][:1].isupper()
    return (
        w.endswith(("s", "ed", "ing")) and not w.endswith(("ss", "'s", "’s")) and follows not in ("of", "in")
    )


def _context_ok(text: str, start: int, end: int, key: str, cashtags: Sequence[str], title_case: bool) -> bool:
    """An ambiguous surface links only with evidence it means the company: its cashtag, a company word right
    after it or a few words on ("Ford to cut 7,000 jobs"), a place in a list of names ("Visa, Mastercard"),
    a capital letter mid-sentence, or, at a headline's start, a verb after it ("Shell cuts spending") --
    never after a first name or title ("Christine Blasey Ford", "president Ford") or as part of another name
    ("Apple Daily"), and in Headline Case or an all-caps text only with a company word or cashtag."""
    after = _words_after(text, end)
    if key in cashtags or (after and _company_word(after[0])):
        return True
    prev, prev_start = _prev_word(text, start)
    if prev.lower() in PERSON_TITLES or (
        prev[:1].isupper() and not prev.isupper() and not sentence_start(text, prev_start)
    ):
        return False
    if any(_company_word(w) for w in after):
        return True
    if title_case or text.isupper():
        return False
    if after and after[0][:1].isupper():  # a list of names, or part of another name
        between = text[_possessive_end(text, end) : text.find(after[0], end)]
        return "," in between or between.strip() in ("and", "&")
    return _verb_like(after) if sentence_start(text, start) else True


class EntityLinker:
    """Links texts to dictionary entities; build once (the automaton), call from any thread."""

    def __init__(self, dictionary: EntityDictionary) -> None:
        self.dictionary = dictionary
        self.surface_texts = frozenset(fold(s.text).strip() for s in dictionary.surfaces)
        self.stop_texts = frozenset(fold(t).strip() for t in dictionary.stopnames)
        self._automaton = ahocorasick.Automaton()
        by_fold: dict[str, list[Surface]] = {}
        for s in dictionary.surfaces:  # spellings that fold alike ("BlackRock", "Blackrock") share an entry
            by_fold.setdefault(fold(s.text).strip(), []).append(s)
        for text in dictionary.stopnames:  # key "": matched only to shield the names inside it
            by_fold[fold(text).strip()] = [Surface(text, "", "name", False)]
        for key, same in by_fold.items():
            self._automaton.add_word(f" {key} ", (len(key), tuple(same)))
        self._automaton.make_automaton()

    def name(self, key: str) -> str:
        return self.dictionary.names.get(key, key)

    def link(self, text: str, given: Iterable[str] = ()) -> tuple[EntityLink, ...]:
        """Entities of one text, one per key (strongest source), sorted by key."""
        cashtags = extract_cashtags(text) if "$" in text else []
        found: dict[str, EntityLink] = {}
        for t in given:
            found[t] = EntityLink(t, self.name(t), "given")
        for t in cashtags:
            found.setdefault(t, EntityLink(t, self.name(t), "cashtag"))
        for _, _, s in self._accepted(text, cashtags):
            old = found.get(s.key)
            if old is None or SOURCE_RANK[s.source] < SOURCE_RANK[old.source]:
                found[s.key] = EntityLink(s.key, self.name(s.key), s.source)
        return tuple(found[k] for k in sorted(found))

    def link_many(self, texts: Sequence[str]) -> list[tuple[EntityLink, ...]]:
        return [self.link(t) for t in texts]

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of every accepted surface (used to keep known names out of emerging ones)."""
        return [(a, b) for a, b, _ in self._accepted(text, extract_cashtags(text))]

    def _hits(self, text: str) -> list[tuple[int, int, Surface]]:
        """Word-bounded dictionary hits spelt as the dictionary spells them (case aside for an all-caps text),
        leftmost-longest first. A ``$`` glued to a name is a cashtag."""
        hits = []
        for end_index, (n, same) in self._automaton.iter(f" {fold(text)} "):
            start, end = end_index - n - 1, end_index - 1  # padded text: one space before, one after
            if start > 0 and text[start - 1] in "$@":
                continue
            if not same[0].key:
                hits.append((start, end, same[0]))
                continue
            spelt = [s for s in same if _case_ok(text[start:end], s.text)]
            if spelt:
                hits.append((start, end, spelt[0]))
        hits.sort(key=lambda h: (h[0], h[0] - h[1]))
        return hits

    def _accepted(self, text: str, cashtags: Sequence[str]) -> list[tuple[int, int, Surface]]:
        out: list[tuple[int, int, Surface]] = []
        title_case: bool | None = None
        last_end = -1
        for start, end, s in self._hits(text):
            if start < last_end:
                continue  # inside a longer name already taken ("Bank of America" before "America")
            if not s.key:
                if text[start].isupper():
                    last_end = end
                continue
            if text[end:].strip(" .") == "" and text[:start].rstrip().endswith(":"):
                continue  # a closing attribution ("...: Deutsche Bank") names the source, not the subject
            if s.ambiguous:
                title_case = is_title_case(text) if title_case is None else title_case
                if not _context_ok(text, start, end, s.key, cashtags, title_case):
                    continue
            out.append((start, end, s))
            last_end = end
        return out


@functools.lru_cache(maxsize=4)
def load_linker(watchlist: str | None = None) -> EntityLinker:
    """The process's linker (built once per watchlist path; about a second)."""
    return EntityLinker(build_dictionary(Path(watchlist) if watchlist else None))
