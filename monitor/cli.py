"""The ``finpulse`` command. Subcommands live next to their code; each package exposes
``add_commands(sub)`` which registers argparse parsers whose ``func(args, settings) -> int`` runs them.
Flags override environment settings (``Settings.with_overrides``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from monitor.errors import FinPulseError
from monitor.settings import Settings

# Modules contributing subcommands (imported lazily so `finpulse broker` does not import torch).
COMMAND_MODULES = (
    "monitor.commands",  # broker, worker, ingest, run, db, healthcheck
    "training.cli",  # train, evaluate, classify, model
    "monitor.alerts.cli",  # scheduler, alerts, bench events
    "dashboards.cli",  # dashboard
    "monitor.analyst_cli",  # explain, feedback export
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finpulse", description="FinPulse: streaming financial-news sentiment"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (FINPULSE_KAFKA_BOOTSTRAP)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (FINPULSE_DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that part of the product is not installed / not built yet
            raise
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    settings = Settings().with_overrides(
        kafka={"bootstrap": args.bootstrap}, database={"url": args.database_url}
    )
    try:
        return int(args.func(args, settings) or 0)
    except FinPulseError as exc:
        logging.getLogger("finpulse").error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
