"""The real thing: SmolLM2 backbone (converted from the PyPI GGUF on first use) + the shipped model."""

from __future__ import annotations

import pytest

from monitor.classify import load_classifier
from monitor.settings import DEFAULT_MODEL_DIR, ModelSettings

pytestmark = pytest.mark.slow

OBVIOUS = [
    ("Acme Corp shares plunge after profit warning", "negative"),
    ("Acme Corp beats estimates and raises guidance", "positive"),
    ("Initech stock sinks 20% as quarterly loss widens", "negative"),
    ("Umbrella Corp posts record profit, lifts dividend", "positive"),
]


@pytest.fixture(scope="module")
def shipped():  # type: ignore[no-untyped-def]
    assert (DEFAULT_MODEL_DIR / "config.json").is_file(), "the shipped model is missing from models/"
    return load_classifier(ModelSettings(path=str(DEFAULT_MODEL_DIR)))


def test_shipped_model_gets_obvious_headlines_right(shipped) -> None:  # type: ignore[no-untyped-def]
    tags = shipped.predict([text for text, _ in OBVIOUS])
    assert [t.sentiment for t in tags] == [label for _, label in OBVIOUS]
    assert tags[0].sentiment_score < -0.3 and tags[1].sentiment_score > 0.3
    assert all(t.model_version == shipped.version for t in tags)


def test_shipped_model_topics_and_odd_inputs(shipped) -> None:  # type: ignore[no-untyped-def]
    tags = shipped.predict(
        [
            "Fed signals more rate hikes to fight inflation",
            "Oil prices jump as OPEC cuts output",
            "",
            "🚀" * 50,
        ]
    )
    assert tags[0].topic == "Fed | Central Banks"
    assert tags[1].topic == "Energy | Oil"
    assert len(tags) == 4
