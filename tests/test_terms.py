"""Story terms (pure): the content words a term key is made of."""

from __future__ import annotations

import pandas as pd

from monitor.alerts.counting import AlertKey, count_keys
from monitor.terms import story_terms


def test_content_words_lower_cased_singular_and_without_furniture() -> None:
    assert story_terms("Turkey's lira plunges 20% as Trump doubles tariffs") == (
        "turkey",
        "lira",
        "plunge",
        "trump",
        "double",
        "tariff",
    )
    assert story_terms("UPDATE 2-Exclusive: Wirecard says 1.9 bln euros missing - sources") == (
        "wirecard",
        "euro",
        "missing",
        "source",
    )


def test_words_that_end_in_s_without_being_plurals_stay_whole() -> None:
    terms = story_terms("Virus crisis: bonus cuts as Airbus crashes")
    assert terms == ("virus", "crisis", "bonus", "airbus", "crash")  # 'cut' has 3 letters


def test_each_term_once_and_short_words_dropped() -> None:
    assert story_terms("Oil, oil and more OIL: the oil price war") == (
        "price",
    )  # 'oil' and 'war' are 3 letters
    assert story_terms("Stocks fall; stocks slide") == ("stock", "fall", "slide")
    assert story_terms("") == ()


def test_term_keys_need_enough_negative_stories() -> None:
    rows = pd.DataFrame(
        {
            "published_at": pd.to_datetime(["2024-01-01T10:00Z", "2024-01-01T11:00Z", "2024-01-01T12:00Z"]),
            "sentiment": ["negative", "negative", "neutral"],
            "topic": ["Macro"] * 3,
            "source": ["a"] * 3,
            "tickers": [()] * 3,
            "text": ["Lira plunges", "Lira slides again", "Lira steadies"],
        }
    )
    counts = count_keys(rows, 300, min_negative=2)
    assert AlertKey("term", "lira") in counts.series and counts.members[
        AlertKey("term", "lira")
    ].tolist() == [0, 1, 2]
    assert AlertKey("term", "plunge") not in counts.series  # one negative story: can never reach min_count 2
    assert counts.parents[AlertKey("term", "lira")] == AlertKey("overall", "all")
