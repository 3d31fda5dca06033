"""Word-level occlusion explanations (monitor/explain.py): the method on a known toy model, the faithfulness
check on the tiny GPT-2 (and, marked slow, on the shipped model), the CLI, and the words in alert messages
delivered to a real HTTP receiver."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import test_alerts_support as support
from sqlalchemy.engine import Engine
from test_alerts_support import NOW, WebhookReceiver, seed_history, seed_surge

from monitor.alerts.notifiers import WebhookSender, parse_webhooks, slack_payload
from monitor.alerts.service import AlertService
from monitor.alerts.words import lazy_explainer, with_top_words
from monitor.classify import load_classifier
from monitor.explain import (
    Explanation,
    by_chance,
    by_weight,
    deletion_drops,
    explain,
    explain_batch,
    least_first,
    probabilities_of,
    top_words,
    without,
    word_spans,
)
from monitor.labels import SENTIMENTS, TOPICS
from monitor.settings import DEFAULT_MODEL_DIR, ModelSettings
from monitor.store import init_db, make_engine

receiver = support.receiver
TINY = ModelSettings(kind="tiny-random", dtype="fp32", batch_size=64)
HEADLINES = [
    "Boeing shares plunge after FAA grounds 737 MAX fleet",
    "Apple beats earnings estimates and raises its dividend",
    "Oil prices slump as OPEC output rises again",
    "Fed holds rates steady, signals cuts later this year",
    "Tesla recalls 2 million vehicles over autopilot flaw",
    "Microsoft to acquire Activision for $69 billion in cash",
    "Gold hits record high as the dollar weakens",
    "Bank of America cuts 1,000 jobs in a restructuring",
    "Retail sales fall for a third straight month",
    "Nvidia surges on record data center revenue",
    "Chinese exports drop sharply amid weak global demand",
    "Pfizer wins approval for new cancer drug in Europe",
    "Treasury yields climb to a 16-year high",
    "Startup files for IPO on the Nasdaq next week",
    "Airline warns of losses as fuel costs soar",
    "ECB raises rates by a quarter point to fight inflation",
]


def keyword_model(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A model whose reasons are known: P(negative) rises with each 'plunge' or 'slump', topic 'Energy | Oil'
    with 'oil'."""
    sent, topic = np.zeros((len(texts), 3)), np.full((len(texts), len(TOPICS)), 0.01)
    for i, t in enumerate(texts):
        words = t.lower().split()
        bad = sum(w in ("plunge", "slump") for w in words)
        sent[i] = [0.2 + 0.35 * bad, 0.8 - 0.35 * bad, 0.0] if bad < 3 else [0.9, 0.1, 0.0]
        topic[i, TOPICS.index("Energy | Oil" if "oil" in words else "Markets")] = 0.81
    return sent, topic


def test_words_are_whole_words_with_their_positions_and_deleting_keeps_the_rest() -> None:
    text = "Oil  prices slump, again"
    spans = word_spans(text)
    assert [text[a:b] for a, b in spans] == ["Oil", "prices", "slump,", "again"]
    assert without(text, [spans[1]]) == "Oil slump, again"
    assert without(text, spans[:2]) == "slump, again"


def test_occlusion_finds_the_words_a_known_model_reads() -> None:
    [e] = explain_batch(keyword_model, ["Shares plunge as oil prices slump"])
    assert e.sentiment.label == "negative" and e.topic.label == "Energy | Oil"
    assert {w.word for w in e.sentiment.top(2)} == {"plunge", "slump"}
    assert [w.word for w in e.topic.top(3)] == ["oil"]  # only words that supported the tag are shown
    assert all(w.weight == 0 for w in e.sentiment.words if w.word in ("Shares", "as", "oil", "prices"))


def test_one_batch_of_words_plus_one_rows_per_headline() -> None:
    calls: list[int] = []

    def counting(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(texts))
        return keyword_model(texts)

    explain_batch(counting, ["a b c", "one two"])
    assert calls == [(3 + 1) + (2 + 1)]


def test_probabilities_rebuilt_from_tags_match_the_logits() -> None:
    clf = load_classifier(TINY)
    from_logits = probabilities_of(clf)(HEADLINES[:4])[0]

    class TagsOnly:  # any classifier with just predict()
        def predict(self, texts: Sequence[str]):  # noqa: ANN202
            return clf.predict(texts)

    from_tags = probabilities_of(TagsOnly())(HEADLINES[:4])[0]
    assert np.allclose(from_logits, from_tags, atol=1e-5)
    assert np.allclose(from_tags.sum(1), 1.0)


def drops(clf_proba, explanations: list[Explanation], head: str) -> dict[str, float]:  # noqa: ANN001
    f = deletion_drops(clf_proba, explanations, {"top": by_weight, "least": least_first}, head, k=2)  # type: ignore[arg-type]
    rand = [
        deletion_drops(clf_proba, explanations, {"r": by_chance}, head, 2, s).drops["r"] for s in range(5)
    ]  # type: ignore[arg-type]
    return {**f.drops, "random": statistics.mean(rand)}


def test_the_faithfulness_check_fails_for_an_unfaithful_ranking() -> None:
    """On the known model, deleting the least attributed words changes less than deleting random ones: the
    check below tells a faithful ranking from an unfaithful one."""
    texts = ["Shares plunge as oil prices slump", "Stocks slump on weak outlook", "Bonds plunge after data"]
    d = drops(keyword_model, explain_batch(keyword_model, texts), "sentiment")
    assert d["top"] > d["random"] > d["least"]


@pytest.mark.parametrize("head", ["sentiment", "topic"])
def test_deleting_top_words_moves_the_tiny_model_more_than_random_words(head: str) -> None:
    clf = load_classifier(TINY)
    d = drops(probabilities_of(clf), explain(clf, HEADLINES), head)
    assert d["top"] > d["random"] + 0.01, d
    assert d["top"] > d["least"], d


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "weights.safetensors").is_file(), reason="no shipped model")
def test_deleting_top_words_moves_the_shipped_model_more_than_random_words() -> None:
    clf = load_classifier(ModelSettings(batch_size=64))
    exps = explain(clf, HEADLINES)
    for head in ("sentiment", "topic"):
        d = drops(probabilities_of(clf), exps, head)
        assert d["top"] > d["random"] + 0.05, (head, d)


def test_explain_cli_prints_tags_and_top_words(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.cli import main

    monkeypatch.setenv("FINPULSE_MODEL_KIND", "tiny-random")
    assert main(["explain", "Oil", "prices", "slump", "again"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sentiment ") and out[0].split()[1] in SENTIMENTS and "top words:" in out[0]
    assert out[1].startswith("topic ") and any(
        w in out[0] + out[1] for w in ("Oil", "prices", "slump", "again")
    )
    assert main(["explain", "--json", "Oil prices slump"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert [w["word"] for w in report["sentiment"]["words"]] == ["Oil", "prices", "slump"]


def test_slack_message_shows_the_words_behind_each_headline() -> None:
    from test_alerts_notifiers import alert

    a = alert()
    [enriched] = with_top_words([a], lambda titles: [["fails", "slide"] for _ in titles])
    text = str(slack_payload(enriched, "http://dash")["blocks"])
    assert "Bank &lt;X&gt; fails &amp; markets slide> — _fails, slide_" in text
    assert with_top_words([a], None) == [a]

    def broken(titles: Sequence[str]) -> list[list[str]]:
        raise RuntimeError("model gone")

    assert with_top_words([a], broken) == [a]  # delivered without words, never blocked


@pytest.fixture
def surge_engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'alerts.db'}")
    init_db(engine)
    seed_history(engine, NOW)
    seed_surge(engine, NOW, n=30, ticker="ACME")
    return engine


def test_delivered_alerts_carry_the_top_words_of_their_headlines(
    surge_engine: Engine, receiver: WebhookReceiver
) -> None:
    from test_alerts_service import alert_settings

    s = alert_settings("/h", receiver=receiver)
    service = AlertService(
        surge_engine, s, parse_webhooks(s), WebhookSender.from_settings(s), explainer=lazy_explainer(TINY, 3)
    )
    assert service.run_once(NOW).sent == 3
    heads = [h for r in receiver.received("/h") for h in r.body["headlines"]]
    assert len(heads) == len({h["title"] for h in heads}) > 0
    delivered = {h["title"]: h["words"] for h in heads}
    clf = load_classifier(
        TINY
    )  # each headline's words are exactly monitor/explain.py's top 3 for its sentiment
    expected = {e.text: top_words(e, "sentiment", 3) for e in explain(clf, list(delivered))}
    assert delivered == expected  # (a title where no word supports the label carries fewer, or none)
    assert sum(len(w) == 3 for w in delivered.values()) >= len(heads) // 2, delivered
    assert lazy_explainer(TINY, 0) is None
