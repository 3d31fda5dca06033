"""The shell of ``finpulse bench events``: reads the feeds and tags, prints the tables, writes the picture."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from monitor.alerts.service import params_from_settings
from monitor.bench import replay
from monitor.bench.events import load_events
from monitor.bench.feeds import FEED_FOLDER, read_feeds
from monitor.bench.tagcache import cache_file
from monitor.schema import Tags
from monitor.settings import REPO_ROOT, ModelSettings, Settings

if TYPE_CHECKING:
    from monitor.classify import Classifier

Predict = Callable[[Sequence[str]], list[Tags]]

log = logging.getLogger(__name__)


def data_folder(given: Path | None) -> Path:
    if given is not None:
        return given
    root = os.environ.get("FINPULSE_DATA_DIR") or str(REPO_ROOT.parent / "shared" / "data")
    return Path(root) / FEED_FOLDER


def entity_linking(settings: Settings) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The backtest's entity linking (dictionary + watchlist + provisional names), fresh state per feed."""
    from monitor.alerts.backtest import attach_entities
    from monitor.emerging import emerging_from_settings
    from monitor.entities import load_linker

    e = settings.entities
    linker = load_linker(e.watchlist)

    def link(frame: pd.DataFrame) -> pd.DataFrame:
        emerging = emerging_from_settings(e.provisional_min_stories, e.provisional_window_days, e.provisional)
        return attach_entities(frame, linker, emerging)

    return link


def run_events(args: argparse.Namespace, settings: Settings) -> int:
    names = tuple(n.strip() for n in args.feeds.split(",") if n.strip())
    feeds = read_feeds(data_folder(args.data), names)
    model = settings.model
    version, predict = (args.tags_version, None) if args.tags_version else _model(model, args.cached_only)
    cache = cache_file(args.tags_cache or Path(model.cache_dir) / "tags", version)
    tagged = {
        name: replay.tagged_feed(frame, cache, predict, entity_linking(settings))
        for name, frame in feeds.items()
    }
    params = params_from_settings(settings.alerts)
    events = load_events()
    runs = [replay.run_feed(name, frame, params, events) for name, frame in tagged.items()]
    print(f"tags: {cache.name}; detector: {params}\n")
    print(replay.summary_table(runs) + "\n")
    print(replay.event_table(runs, events) + "\n")
    if args.alerts_out:
        with args.alerts_out.open("w") as fh:
            for r in runs:
                for a in r.alerts:
                    fh.write(json.dumps({"feed": r.feed, **a.as_json()}, default=str) + "\n")
    if args.png:
        print(f"timeline: {replay.timeline_png(runs, events, args.png)}")
    if args.loeo:
        rows = replay.leave_one_event_out(tagged, params, events)
        held = [r for r in rows if r["covered_on"]]
        caught = sum(1 for r in held if r["caught_on"])
        print(f"leave-one-event-out: {caught}/{len(held)} held-out events caught within 24 h on a feed")
        for row in rows:
            sys.stdout.write(json.dumps(row) + "\n")
    return 0


def _model(model: ModelSettings, cached_only: bool) -> tuple[str, Predict | None]:
    """(version, predict or None). The version is read without loading the network; the classifier (torch)
    is loaded on the first texts the cache lacks."""
    from monitor.nn import read_spec

    version = model.kind if model.kind != "trained" else read_spec(Path(model.path))[1]
    if cached_only:
        return version, None
    loaded: list[Classifier] = []

    def predict(texts: Sequence[str]) -> list[Tags]:
        if not loaded:
            from monitor.classify import load_classifier

            loaded.append(load_classifier(model))
        return loaded[0].predict(texts)

    return version, predict
