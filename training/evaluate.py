"""Classification reports: per-class precision/recall/F1/support, accuracy, weighted and macro F1, expected
calibration error; optional confusion-matrix and reliability figures. The metrics are pure functions of label
lists; ``evaluate_file`` is the I/O shell behind ``finpulse evaluate``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.settings import ModelSettings
from training.data import LABELS, Task, load_labelled


@dataclass(frozen=True, slots=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class Report:
    labels: tuple[str, ...]
    per_class: dict[str, ClassScores]
    accuracy: float
    weighted_f1: float
    macro_f1: float
    n: int
    ece: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "accuracy": self.accuracy,
            "weighted_f1": self.weighted_f1,
            "macro_f1": self.macro_f1,
            "per_class": {
                k: {"precision": v.precision, "recall": v.recall, "f1": v.f1, "support": v.support}
                for k, v in self.per_class.items()
            },
            "n": self.n,
        }
        if self.ece is not None:
            d["ece"] = self.ece
        return d


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def classification_report(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], confidences: Sequence[float] = ()
) -> Report:
    """The classic report over ``labels`` (classes with no support and no predictions still appear)."""
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    per_class: dict[str, ClassScores] = {}
    for label in labels:
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == label and p == label)
        pred = sum(1 for p in y_pred if p == label)
        support = sum(1 for t in y_true if t == label)
        precision, recall = _ratio(tp, pred), _ratio(tp, support)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = ClassScores(round(precision, 4), round(recall, 4), round(f1, 4), support)
    n = len(y_true)
    weighted = _ratio(1, n) * sum(s.f1 * s.support for s in per_class.values()) if n else 0.0
    present = [s.f1 for s in per_class.values() if s.support]
    ece = expected_calibration_error(confidences, [t == p for t, p in zip(y_true, y_pred, strict=True)])
    return Report(
        labels=tuple(labels),
        per_class=per_class,
        accuracy=round(_ratio(sum(t == p for t, p in zip(y_true, y_pred, strict=True)), n), 4),
        weighted_f1=round(weighted, 4),
        macro_f1=round(sum(present) / len(present), 4) if present else 0.0,
        n=n,
        ece=ece if confidences else None,
    )


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> float:
    """ECE: the support-weighted gap between confidence and accuracy over equal-width confidence bins."""
    if not confidences:
        return 0.0
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(confidences) if lo < c <= hi or (b == 0 and c == 0)]
        if idx:
            acc = sum(correct[i] for i in idx) / len(idx)
            conf = sum(confidences[i] for i in idx) / len(idx)
            total += len(idx) / len(confidences) * abs(acc - conf)
    return round(total, 4)


def format_report(report: Report) -> str:
    width = max(12, *(len(x) for x in report.labels))
    lines = [f"{'':>{width}}  precision     recall   f1-score    support", ""]
    for label, s in report.per_class.items():
        lines.append(f"{label:>{width}}  {s.precision:9.3f}  {s.recall:9.3f}  {s.f1:9.3f}  {s.support:9d}")
    lines += [
        "",
        f"{'accuracy':>{width}}  {'':9}  {'':9}  {report.accuracy:9.3f}  {report.n:9d}",
        f"{'macro avg':>{width}}  {'':9}  {'':9}  {report.macro_f1:9.3f}  {report.n:9d}",
        f"{'weighted avg':>{width}}  {'':9}  {'':9}  {report.weighted_f1:9.3f}  {report.n:9d}",
    ]
    if report.ece is not None:
        lines.append(f"{'ECE':>{width}}  {'':9}  {'':9}  {report.ece:9.3f}")
    return "\n".join(lines)


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """rows = true label, columns = predicted label."""
    index = {label: i for i, label in enumerate(labels)}
    m = [[0] * len(labels) for _ in labels]
    for t, p in zip(y_true, y_pred, strict=True):
        m[index[t]][index[p]] += 1
    return m


def plot_confusion(matrix: list[list[int]], labels: Sequence[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 3 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_calibration(
    confidences: Sequence[float], correct: Sequence[bool], path: Path, bins: int = 10
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = [], []
    for b in range(bins):
        idx = [i for i, c in enumerate(confidences) if b / bins < c <= (b + 1) / bins]
        if idx:
            xs.append(sum(confidences[i] for i in idx) / len(idx))
            ys.append(sum(correct[i] for i in idx) / len(idx))
    ece = expected_calibration_error(confidences, correct, bins)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.plot(xs, ys, "o-")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate_texts(
    classifier: Any, texts: Sequence[str], y_true: Sequence[str], task: Task
) -> tuple[Report, list[str], list[float]]:
    """Run the classifier on texts; report the chosen head against the true label names."""
    tags = classifier.predict(list(texts))
    if task == "sentiment":
        pred, conf = [t.sentiment for t in tags], [t.sentiment_confidence for t in tags]
    else:
        pred, conf = [t.topic for t in tags], [t.topic_confidence for t in tags]
    return classification_report(y_true, pred, LABELS[task], conf), pred, conf


def evaluate_file(
    path: Path,
    task: Task,
    model: ModelSettings,
    confusion_png: Path | None = None,
    calibration_png: Path | None = None,
) -> Report:
    from monitor.classify import load_classifier

    examples = load_labelled(path, task)
    texts, y_true = [e.text for e in examples], [e.label for e in examples]
    report, pred, conf = evaluate_texts(load_classifier(model), texts, y_true, task)
    if confusion_png is not None:
        matrix = confusion_matrix(y_true, pred, LABELS[task])
        plot_confusion(matrix, LABELS[task], confusion_png, f"{path.name} ({task})")
    if calibration_png is not None:
        plot_calibration(conf, [t == p for t, p in zip(y_true, pred, strict=True)], calibration_png)
    return report


def compare_models(path: Path, task: Task, after: ModelSettings, before: str, as_json: bool = False) -> str:
    """Two models on one labelled file (e.g. exported corrections): accuracy and F1 of each and, per text,
    the label each gives ("before" = the ``before`` model directory, "after" = ``after``)."""
    import json

    from monitor.classify import load_classifier

    examples = load_labelled(path, task)
    texts, y_true = [e.text for e in examples], [e.label for e in examples]
    runs = {}
    for name, model in (("before", after.model_copy(update={"path": before})), ("after", after)):
        report, pred, _ = evaluate_texts(load_classifier(model), texts, y_true, task)
        runs[name] = (report, pred)
    if as_json:
        return json.dumps(
            {
                **{name: r.to_dict() for name, (r, _) in runs.items()},
                "items": [
                    {"text": t, "label": y, "before": b, "after": a}
                    for t, y, b, a in zip(texts, y_true, runs["before"][1], runs["after"][1], strict=True)
                ],
            }
        )
    lines = [f"{path.name} ({task}, {len(texts)} items)", f"{'':8}{'accuracy':>10}{'macro F1':>10}"]
    lines += [f"{name:8}{r.accuracy:10.3f}{r.macro_f1:10.3f}" for name, (r, _) in runs.items()]
    lines += ["", f"{'label':24}{'before':24}{'after':24}text"]
    for t, y, b, a in zip(texts, y_true, runs["before"][1], runs["after"][1], strict=True):
        lines.append(f"{y:24}{b:24}{a:24}{t[:80]}")
    return "\n".join(lines)
