"""Why a headline got its tags: word-level occlusion (leave one word out) for the predicted class of each head.

Method: for a headline of W words, the classifier runs on W + 1 texts in **one batch** — the headline and
the W headlines with one word deleted. A word's weight is how much the predicted class's probability falls
when that word is missing: ``p(class | headline) - p(class | headline without the word)``. Positive weights
drove the tag, negative weights argued against it.

Why occlusion and not integrated gradients: it needs only a batch of texts in and class probabilities out
(any classifier with ``predict``, no gradients, no access to embeddings), works on whole words (so no
merging of sub-word pieces), runs under ``inference_mode`` through the same batched, length-sorted path as
the worker, and its cost is known in advance: W + 1 forward rows (about 12 for a headline) where integrated
gradients needs steps x (forward + backward) passes (20-50 steps). Its weakness is that it sees words one
at a time (two words that each suffice alone get little weight); the faithfulness check below measures how
much that matters.

Explanations are computed on demand (``finpulse explain``, the dashboard's headline detail, an alert's top
headlines at delivery), never in the worker's hot path.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from monitor.labels import SENTIMENTS, TOPICS
from monitor.schema import Tags

Head = Literal["sentiment", "topic"]
MAX_WORDS = 48  # words beyond this are not occluded (the model reads at most ~64 tokens anyway)
_WORD_RE = re.compile(r"\S+")

# texts -> (N, n_sentiments), (N, n_topics) class probabilities, in SENTIMENTS / TOPICS order
ProbabilityFn = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, slots=True)
class WordWeight:
    """One word of the headline (``text[start:end]``) and how much it drove a head's predicted class."""

    word: str
    start: int
    end: int
    weight: float


@dataclass(frozen=True, slots=True)
class HeadExplanation:
    head: Head
    label: str  # the predicted class
    confidence: float  # its probability on the full headline
    words: tuple[WordWeight, ...]  # in reading order, one per occluded word

    def top(self, k: int = 3) -> tuple[WordWeight, ...]:
        """The ``k`` words that most supported the label (positive weights only), strongest first."""
        ranked = sorted((w for w in self.words if w.weight > 0), key=lambda w: (-w.weight, w.start))
        return tuple(ranked[:k])


@dataclass(frozen=True, slots=True)
class Explanation:
    text: str
    sentiment: HeadExplanation
    topic: HeadExplanation

    def head(self, name: Head) -> HeadExplanation:
        return self.sentiment if name == "sentiment" else self.topic


def word_spans(text: str, max_words: int = MAX_WORDS) -> list[tuple[int, int]]:
    """Character spans of the whitespace-separated words (the first ``max_words``)."""
    return [m.span() for m in _WORD_RE.finditer(text)][:max_words]


def without(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with the words at ``spans`` deleted and whitespace collapsed."""
    keep, last = [], 0
    for start, end in sorted(spans):
        keep.append(text[last:start])
        last = end
    keep.append(text[last:])
    return " ".join("".join(keep).split())


def explain_batch(
    probabilities: ProbabilityFn, texts: Sequence[str], max_words: int = MAX_WORDS
) -> list[Explanation]:
    """Occlusion explanations of ``texts``: all texts and all their one-word-deleted variants in one call."""
    spans = [word_spans(t, max_words) for t in texts]
    variants: list[str] = []
    for text, s in zip(texts, spans, strict=True):
        variants.append(text)
        variants += [without(text, [span]) for span in s]
    sent, topic = probabilities(variants)
    out, row = [], 0
    for text, s in zip(texts, spans, strict=True):
        rows = slice(row, row + len(s) + 1)
        out.append(
            Explanation(
                text,
                _head("sentiment", text, s, sent[rows], SENTIMENTS),
                _head("topic", text, s, topic[rows], TOPICS),
            )
        )
        row += len(s) + 1
    return out


def _head(
    head: Head, text: str, spans: Sequence[tuple[int, int]], probs: np.ndarray, labels: Sequence[str]
) -> HeadExplanation:
    """probs: (1 + W, n_classes), row 0 the full headline."""
    cls = int(np.argmax(probs[0]))
    drops = probs[0, cls] - probs[1:, cls]
    words = tuple(
        WordWeight(text[a:b], a, b, round(float(d), 6)) for (a, b), d in zip(spans, drops, strict=True)
    )
    return HeadExplanation(head, labels[cls], round(float(probs[0, cls]), 6), words)


def probabilities_of(classifier: Any) -> ProbabilityFn:
    """The classifier's class probabilities: from its logits at the calibrated temperatures when it has them
    (``TorchClassifier``), otherwise rebuilt from ``predict``'s Tags (sentiment exactly, from the confidence
    and score; topic as the confidence on the predicted class, the rest spread evenly)."""
    if hasattr(classifier, "logits") and hasattr(classifier, "spec"):
        return lambda texts: _from_logits(classifier, texts)
    return lambda texts: _from_tags(classifier.predict(list(texts)))


def _from_logits(classifier: Any, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    spec = classifier.spec
    topic, sent = classifier.logits(texts)
    s = (sent.float() / spec.sentiment_temperature).softmax(-1).numpy()
    t = (topic.float() / spec.topic_temperature).softmax(-1).numpy()
    return s[:, [spec.sentiments.index(x) for x in SENTIMENTS]], t[:, [spec.topics.index(x) for x in TOPICS]]


def _from_tags(tags: Sequence[Tags]) -> tuple[np.ndarray, np.ndarray]:
    sent = np.zeros((len(tags), len(SENTIMENTS)))
    topic = np.zeros((len(tags), len(TOPICS)))
    for i, t in enumerate(tags):
        c, score = t.sentiment_confidence, t.sentiment_score
        if t.sentiment == "negative":
            neg, pos = c, score + c
        elif t.sentiment == "positive":
            neg, pos = c - score, c
        else:
            neg, pos = (1 - c - score) / 2, (1 - c + score) / 2
        sent[i] = [neg, 1 - neg - pos, pos]
        topic[i] = (1 - t.topic_confidence) / (len(TOPICS) - 1)
        topic[i, TOPICS.index(t.topic)] = t.topic_confidence
    return np.clip(sent, 0, 1), topic


def explain(classifier: Any, texts: Sequence[str], max_words: int = MAX_WORDS) -> list[Explanation]:
    """``explain_batch`` over a classifier (anything with ``predict``)."""
    return explain_batch(probabilities_of(classifier), texts, max_words) if texts else []


def top_words(explanation: Explanation, head: Head = "sentiment", k: int = 3) -> list[str]:
    return [w.word for w in explanation.head(head).top(k)]


# --- faithfulness ---------------------------------------------------------------------------------------

Ranking = Callable[[HeadExplanation, random.Random], Sequence[WordWeight]]


def by_weight(e: HeadExplanation, rng: random.Random) -> Sequence[WordWeight]:
    del rng
    return sorted(e.words, key=lambda w: (-w.weight, w.start))


def by_chance(e: HeadExplanation, rng: random.Random) -> Sequence[WordWeight]:
    return rng.sample(list(e.words), len(e.words))


def least_first(e: HeadExplanation, rng: random.Random) -> Sequence[WordWeight]:
    """The reverse of ``by_weight``: a deliberately unfaithful ranking (a control for the check)."""
    del rng
    return sorted(e.words, key=lambda w: (w.weight, w.start))


@dataclass(frozen=True, slots=True)
class Faithfulness:
    """Mean fall of the predicted class's probability when k words are deleted, per way of choosing them."""

    head: Head
    k: int
    n: int  # headlines with more than k words
    drops: dict[str, float]  # ranking name -> mean confidence drop


def deletion_drops(
    probabilities: ProbabilityFn,
    explanations: Sequence[Explanation],
    rankings: dict[str, Ranking],
    head: Head = "sentiment",
    k: int = 2,
    seed: int = 0,
) -> Faithfulness:
    """Delete the first k words of each ranking from each headline (one batch) and average the drops."""
    rng = random.Random(seed)
    usable = [e for e in explanations if len(e.head(head).words) > k]
    texts = []
    for e in usable:
        for rank in rankings.values():
            texts.append(without(e.text, [(w.start, w.end) for w in rank(e.head(head), rng)[:k]]))
    sent, topic = probabilities(texts) if texts else (np.zeros((0, 3)), np.zeros((0, 20)))
    probs, labels = (sent, SENTIMENTS) if head == "sentiment" else (topic, TOPICS)
    drops = {name: 0.0 for name in rankings}
    for i, e in enumerate(usable):
        h = e.head(head)
        for j, name in enumerate(rankings):
            drops[name] += h.confidence - float(probs[i * len(rankings) + j, labels.index(h.label)])
    n = max(1, len(usable))
    return Faithfulness(head, k, len(usable), {name: round(v / n, 6) for name, v in drops.items()})


__all__ = [
    "Explanation",
    "Faithfulness",
    "HeadExplanation",
    "WordWeight",
    "by_chance",
    "by_weight",
    "deletion_drops",
    "explain",
    "explain_batch",
    "least_first",
    "probabilities_of",
    "top_words",
    "word_spans",
    "without",
]
