"""Entity linking (pure): dictionary names and aliases, ambiguity rules, possessives, watchlist overrides and
provisional (emerging) names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.emerging import EmergingNames, Story, candidates, link_stories
from monitor.entities import EntityLinker, build_dictionary, load_linker, name_variants
from monitor.errors import ConfigError

T0 = datetime(2019, 9, 20, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def linker() -> EntityLinker:
    return load_linker()


def keys(linker: EntityLinker, text: str) -> list[str]:
    return [e.key for e in linker.link(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Boeing shares fall after second crash", ["BA"]),
        ("Goldman, JPMorgan lead bank rally", ["GS", "JPM"]),
        ("Google fined record $5 billion by EU", ["GOOGL"]),
        ("Bank of America profit beats estimates", ["BAC"]),  # not "America"
        ("Fed holds rates steady", []),  # the Fed is not a company
        ("Nasdaq hits record high", []),  # the index, not Nasdaq Inc
        ("Thomas Cook collapses, stranding 150,000", ["TCG.L"]),  # failed, still linkable
        ("Wirecard files for insolvency", ["WDI.DE"]),
        ("Lehman anniversary: ten years after the collapse", ["LEH"]),
        ("Oil prices slide as demand worries grow", []),
    ],
)
def test_dictionary_names_and_aliases(linker: EntityLinker, text: str, expected: list[str]) -> None:
    assert keys(linker, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apple prices rise after a late frost", []),  # the fruit
        ("Apple's new iPhone disappoints", ["AAPL"]),  # possessive
        ("Apple’s services revenue jumps", ["AAPL"]),  # curly possessive
        ("Apple Daily raided by Hong Kong police", []),  # another name containing Apple
        ("Fed misses its inflation target again", []),  # the word
        ("Target shares jump on holiday sales", ["TGT"]),  # company word after it
        ("Walmart and Target report strong sales", ["TGT", "WMT"]),  # capitalised mid-sentence
        ("Christine Blasey Ford testifies before Senate panel", []),  # the person
        ("Harrison Ford stars in new film", []),
        ("Ford to cut 7,000 jobs in Europe", ["F"]),  # company word a few words on
        ("Ford's quarterly profit falls", ["F"]),
        ("BP to cut 10,000 jobs", ["BP.L"]),
        ("Fears Grow For Shell Beach Resort", []),  # Headline Case: a capital says nothing
    ],
)
def test_ambiguous_names_need_context(linker: EntityLinker, text: str, expected: list[str]) -> None:
    assert keys(linker, text) == expected


def test_cashtags_link_as_before_and_count_as_context(linker: EntityLinker) -> None:
    links = linker.link("Target misses $TGT")
    assert [(e.key, e.source) for e in links] == [("TGT", "cashtag")]
    assert [(e.key, e.source) for e in linker.link("$XYZQ soars")] == [("XYZQ", "cashtag")]
    assert [e.source for e in linker.link("Boeing news", given=["BA"])] == ["given"]


def test_all_caps_headline_links_only_unambiguous_names(linker: EntityLinker) -> None:
    assert keys(linker, "BOEING SHARES FALL AFTER CRASH") == ["BA"]
    assert keys(linker, "TARGET HIT") == []


def test_name_variants_strip_legal_suffixes() -> None:
    assert name_variants("The Coca-Cola Company") == ["The Coca-Cola Company", "Coca-Cola"]
    assert name_variants("Eli Lilly and Company") == ["Eli Lilly and Company", "Eli Lilly"]
    assert name_variants("Rio Tinto (corporation)") == ["Rio Tinto"]


def test_watchlist_extends_and_overrides(tmp_path: Path) -> None:
    wl = tmp_path / "watch.csv"
    wl.write_text(
        "ticker,name,aliases\n"
        "GRNSL,Greensill,Greensill|Greensill Capital\n"  # private company
        "ACME-PRIV,Acme Private Holdings,Acme|Acme Private\n"
        "BA,The Boeing Company (watched),Boeing|Boeing Co\n"  # override of a dictionary entry
    )
    linker = EntityLinker(build_dictionary(wl))
    assert [(e.key, e.source) for e in linker.link("Greensill Capital collapses")] == [("GRNSL", "watchlist")]
    boeing = linker.link("Boeing shares fall")
    assert [(e.key, e.name, e.source) for e in boeing] == [
        ("BA", "The Boeing Company (watched)", "watchlist")
    ]
    assert [e.key for e in linker.link("Acme Private raises new fund")] == ["ACME-PRIV"]


def test_watchlist_rows_need_key_and_name(tmp_path: Path) -> None:
    wl = tmp_path / "bad.csv"
    wl.write_text("ticker,name,aliases\n,Nameless,\n")
    with pytest.raises(ConfigError, match="needs a key"):
        build_dictionary(wl)
    with pytest.raises(ConfigError, match="does not exist"):
        build_dictionary(tmp_path / "missing.csv")


def test_candidates_are_unknown_capitalised_names(linker: EntityLinker) -> None:
    found = candidates("Savers queue at Quorvex Bank as Zephyrion Capital shares slide", linker)
    assert [(c.name, c.cued) for c in found] == [("Quorvex Bank", True), ("Zephyrion Capital", True)]
    assert [(c.name, c.cued) for c in candidates("Regulator probes Quorvex", linker)] == [("Quorvex", False)]
    assert candidates("Jerome Powell speaks in Washington on Monday", linker) == ()  # a person, a place
    assert candidates("Boeing shares fall as Northern Rock queues grow", linker) == ()  # known names
    assert candidates("Traders eye $ZYXW after the bell", linker) == ()  # a cashtag is not a name


def story(text: str, hours: float) -> Story:
    return Story(text, text.lower(), T0 + timedelta(hours=hours))


def test_recurring_unknown_name_becomes_provisional(linker: EntityLinker) -> None:
    emerging = EmergingNames(min_stories=3, min_cued=2, window=timedelta(days=7))
    batch = [
        story("Zephyrion shares plunge on fraud claims", 0),
        story("Zephyrion shares suspended", 5),
        story("Zephyrion shares suspended", 6),  # a repeat of the same story counts once
        story("Regulator probes Zephyrion accounts", 30),
    ]
    out = link_stories(linker, emerging, batch)
    assert out[0] == () and out[1] == () and out[2] == ()
    (link,) = out[3]
    assert (link.key, link.name, link.source, link.provisional) == (
        "~Zephyrion",
        "Zephyrion",
        "provisional",
        True,
    )
    assert link.label == "Zephyrion (provisional)"


def test_provisional_needs_recurrence_within_the_window(linker: EntityLinker) -> None:
    emerging = EmergingNames(min_stories=3, min_cued=2, window=timedelta(days=2))
    spread = [story(f"Zephyrion shares move {i}", 24 * 3 * i) for i in range(4)]  # one story every 3 days
    assert all(links == () for links in link_stories(linker, emerging, spread))
    assert link_stories(linker, None, spread[:1]) == [()]  # no state: dictionary only


def test_provisional_state_is_bounded(linker: EntityLinker) -> None:
    emerging = EmergingNames(max_names=5)
    link_stories(linker, emerging, [story(f"Zeph{chr(97 + i)}corp shares slide", i) for i in range(20)])
    assert len(emerging.seen) == 5


def test_backtest_series_get_entity_keys(linker: EntityLinker) -> None:
    import pandas as pd

    from monitor.alerts.backtest import attach_entities, story_rows
    from monitor.alerts.counting import count_keys
    from monitor.alerts.queries import AlertKey

    texts = [
        "Boeing shares fall after crash",
        "Boeing grounds 737 MAX jets",
        "Oil slips",
        "Boeing's CEO apologises",
    ]
    frame = pd.DataFrame({
        "published_at": pd.to_datetime([T0 + timedelta(hours=h) for h in range(4)], utc=True),
        "text": texts, "sentiment": ["negative"] * 4, "topic": ["Company | Product News"] * 4,
    })  # fmt: skip
    linked = attach_entities(frame, linker, EmergingNames())
    assert list(linked["entities"]) == [("BA",), ("BA",), (), ("BA",)]
    counts = count_keys(story_rows(linked), 3600)
    assert list(counts.members[AlertKey("ticker", "BA")]) == [0, 1, 3]
