"""``finpulse explain`` (the words behind a headline's tags) and ``finpulse feedback export`` (analysts'
corrections as training files)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from monitor.settings import Settings


def add_commands(sub: Any) -> None:
    from monitor.options import add_model_options

    p = sub.add_parser("explain", help="the tags of a headline and the words that drove them (occlusion)")
    p.add_argument("text", nargs="+", help="the headline")
    p.add_argument("--top", type=int, default=3, help="words shown per tag")
    p.add_argument("--json", action="store_true", help="one JSON object: every word's weight per tag")
    add_model_options(p)
    p.set_defaults(func=_explain)
    add_feedback_commands(sub)


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.classify import load_classifier
    from monitor.explain import explain
    from training.cli import _model_settings

    classifier = load_classifier(_model_settings(args, settings).model)
    [e] = explain(classifier, [" ".join(args.text)])
    if args.json:
        heads = {
            h.head: {
                "label": h.label,
                "confidence": h.confidence,
                "words": [{"word": w.word, "weight": w.weight} for w in h.words],
            }
            for h in (e.sentiment, e.topic)
        }
        print(json.dumps({"text": e.text, "model_version": classifier.version, **heads}))
        return 0
    for h in (e.sentiment, e.topic):
        top = " · ".join(f"{w.word} {w.weight:+.2f}" for w in h.top(args.top)) or "(no single word)"
        print(f"{h.head:<9} {h.label} ({h.confidence:.0%})  top words: {top}")
    print(f"model {classifier.version}; weight = fall of the tag's probability without the word")
    return 0


def add_feedback_commands(sub: Any) -> None:
    fb = sub.add_parser("feedback", help="analysts' corrections")
    fb = fb.add_subparsers(dest="feedback_cmd", metavar="ACTION")
    p = fb.add_parser("export", help="write the corrections as text,label training files (one per task)")
    p.add_argument("--out", type=Path, default=Path("data/feedback"), help="folder (default data/feedback)")
    p.set_defaults(func=_feedback_export)


def _feedback_export(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.feedback import export_training_files
    from monitor.store import init_db, make_engine

    engine = make_engine(settings.database.url)
    init_db(engine)
    with engine.connect() as conn:
        written = export_training_files(conn, args.out)
    engine.dispose()
    print(json.dumps({task: {"path": str(path), "rows": n} for task, (path, n) in written.items()}))
    return 0
