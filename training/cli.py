"""``finpulse train | evaluate | classify | model prepare``. Heavy imports (torch) happen inside the commands so
``finpulse --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from monitor.options import add_model_options, model_overrides
from monitor.settings import Settings


def _model_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    return settings.with_overrides(model=model_overrides(args))


def _cmd_classify(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.classify import load_classifier

    settings = _model_settings(args, settings)
    classifier = load_classifier(settings.model)
    if args.text:
        for tag in classifier.predict([" ".join(args.text)]):
            direction = "▲" if tag.sentiment_score > 0.2 else "▼" if tag.sentiment_score < -0.2 else "■"
            print(
                f"{direction} sentiment {tag.sentiment} ({tag.sentiment_confidence:.0%}, score "
                f"{tag.sentiment_score:+.2f}) · topic {tag.topic} ({tag.topic_confidence:.0%}) · "
                f"model {tag.model_version}"
            )
        return 0
    from training.io import classify_jsonl

    src = sys.stdin if args.input in (None, "-") else open(args.input, encoding="utf-8")
    dst = sys.stdout if args.output in (None, "-") else open(args.output, "w", encoding="utf-8")
    try:
        bad = classify_jsonl(classifier, src, dst, chunk=max(settings.model.batch_size * 4, 256))
    finally:
        if src is not sys.stdin:
            src.close()
        if dst is not sys.stdout:
            dst.close()
    if bad:
        print(f"{bad} input lines skipped (not JSON objects with a text)", file=sys.stderr)
    return 0


def _cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from training.evaluate import evaluate_file, format_report

    settings = _model_settings(args, settings)
    if args.compare:
        from training.evaluate import compare_models

        print(compare_models(Path(args.data), args.task, settings.model, args.compare, as_json=args.json))
        return 0
    report = evaluate_file(
        Path(args.data),
        args.task,
        settings.model,
        confusion_png=Path(args.confusion_png) if args.confusion_png else None,
        calibration_png=Path(args.calibration_png) if args.calibration_png else None,
    )
    print(json.dumps(report.to_dict()) if args.json else format_report(report))
    return 0


def _cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from training.config import TrainConfig
    from training.train import run_training

    settings = _model_settings(args, settings)
    overrides: dict[str, Any] = {
        k: v
        for k, v in vars(args).items()
        if k in TrainConfig.__dataclass_fields__ and v is not None and k not in ("func",)
    }
    if "extra_data" in overrides:
        overrides["extra_data"] = tuple(overrides["extra_data"])
    if args.feedback:  # analysts' corrections (`finpulse feedback export`): train-only extra data
        from monitor.feedback import feedback_extra

        overrides["feedback_data"] = feedback_extra(Path(args.feedback))
    config = TrainConfig(**overrides)
    run_training(config, settings.model)
    return 0


def _cmd_pretrain(args: argparse.Namespace, settings: Settings) -> int:
    from training.config import TrainConfig
    from training.data import norm_text
    from training.pretrain import PretrainConfig, run_pretraining
    from training.train import load_examples

    settings = _model_settings(args, settings)
    overrides = {
        k: v for k, v in vars(args).items() if k in PretrainConfig.__dataclass_fields__ and v is not None
    }
    config = PretrainConfig(**overrides)
    _, val, _ = load_examples(TrainConfig(data_dir=config.data_dir))  # validation texts never pre-train
    report = run_pretraining(config, settings.model, {norm_text(e.text) for e in val})
    print(json.dumps({k: v for k, v in report.items() if k != "config"}))
    return 0


def _cmd_prepare(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.backbone import resolve_backbone

    settings = _model_settings(args, settings)
    print(resolve_backbone(settings.model.backbone, settings.model.cache_dir))
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("classify", help="classify headlines: one on the command line, or JSONL in/out")
    p.add_argument("text", nargs="*", help="a headline to classify (prints a readable answer)")
    p.add_argument("--input", help="JSONL file with id,text per line ('-' = stdin, the default)")
    p.add_argument("--output", help="JSONL output ('-' = stdout, the default)")
    add_model_options(p)
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("evaluate", help="per-class report of a model on a labelled CSV (text,label)")
    p.add_argument("--data", required=True, help="CSV or JSONL with text,label (label names)")
    p.add_argument("--task", required=True, choices=["sentiment", "topic"])
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--confusion-png", help="write a confusion-matrix figure here")
    p.add_argument("--calibration-png", help="write a reliability diagram (ECE) here")
    p.add_argument("--compare", help="a second model (e.g. the one before a fine-tune): both, side by side")
    add_model_options(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("train", help="fine-tune the classifier (see docs/classifier.md)")
    p.add_argument(
        "--out", dest="out_dir", help="output model directory (default models/finpulse-smollm2-lora)"
    )
    p.add_argument("--data-dir", help="folder with the data sets (default FINPULSE_DATA_DIR)")
    p.add_argument("--extra", action="append", dest="extra_data", help="extra CSV/JSONL: TASK:PATH")
    p.add_argument(
        "--feedback", help="folder of `finpulse feedback export` files (train only, never validation)"
    )
    p.add_argument(
        "--feedback-weight", type=float, dest="feedback_weight", help="loss weight of a correction"
    )
    p.add_argument("--mode", choices=["lora", "full", "heads-only"])
    p.add_argument("--num-layers", type=int, help="keep the first N backbone layers")
    p.add_argument("--split-layer", type=int, help="freeze and cache states below this layer")
    p.add_argument("--pooling", choices=["mean", "last"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--train-batch-size", type=int, dest="train_batch_size")
    p.add_argument("--max-topic-examples", type=int, help="subsample the topic set (compute budget)")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-minutes", type=float, help="wall-clock budget for the optimisation loop")
    p.add_argument("--max-steps", type=int, help="stop after this many optimisation steps")
    p.add_argument(
        "--no-shared",
        dest="use_shared",
        action="store_const",
        const=False,
        help="leave out the shared benchmark sets (e.g. the non-commercial FPB); with --no-real: --extra only",
    )
    p.add_argument(
        "--no-real",
        dest="use_real",
        action="store_const",
        const=False,
        help="leave out the real headlines (real-headlines-labeled and training/labels)",
    )
    p.add_argument(
        "--real-labels", dest="real_labels", help="labels of archive headlines (key,sentiment,topic CSV)"
    )
    p.add_argument("--head-lr", type=float, dest="head_lr")
    p.add_argument("--lora-r", type=int, dest="lora_r")
    p.add_argument("--label-smoothing", type=float, dest="label_smoothing")
    p.add_argument("--class-balance", type=float, dest="class_balance", help="class weights (1/freq)^X")
    p.add_argument("--average-last", type=int, dest="average_last", help="average the best N evaluations")
    p.add_argument("--init-from", dest="init_from", help="warm start from a model directory (same spec)")
    p.add_argument("--domain-adapter", dest="domain_adapter", help="a `finpulse pretrain` adapter file")
    p.add_argument("--evals-per-epoch", type=int, dest="evals_per_epoch")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_const", const=False)
    p.add_argument(
        "--no-final-eval",
        dest="final_eval",
        action="store_const",
        const=False,
        help="skip the full-path validation of the saved model (quick comparisons)",
    )
    p.add_argument("--patience", type=int, help="early stopping: evaluations without improvement")
    p.add_argument("--work-dir", help="features cache + checkpoints (default CACHE_DIR/train)")
    p.add_argument("--max-length", type=int)
    add_model_options(p, ("backbone", "device", "dtype", "threads"))
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("pretrain", help="domain-adaptive pre-training of the upper layers on headlines")
    p.add_argument("--out", required=True, help="domain adapter file to write (.safetensors)")
    p.add_argument("--data-dir", help="folder with the data sets (default FINPULSE_DATA_DIR)")
    p.add_argument("--texts-file", help="one text per line instead of the news archive")
    p.add_argument("--max-texts", type=int, help="a seeded sample of this many texts")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--work-dir", help="features cache (default CACHE_DIR/train)")
    add_model_options(p, ("threads",))
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("model", help="model utilities")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION")
    q = msub.add_parser("prepare", help="convert the backbone into the cache folder (once)")
    add_model_options(q, ("backbone",))
    q.set_defaults(func=_cmd_prepare)
