"""The three dated headline feeds of ``news-headlines-2017-2020`` as one frame per feed.

Parsing traps (see the folder's SOURCE.md):

* CNBC: ``" 7:51  PM ET Fri, 17 July 2020"`` (US Eastern, minute resolution, blank rows);
* Guardian: ``%d-%b-%y`` date only; 40 rows carry only a month (``Jul-18``) and are dropped, not guessed;
  1,246 headlines carry a section label glued on with newlines (``"Nils Pratley on finance \\n\\n\\n Title"``):
  the label is dropped;
* Reuters: ``%b %d %Y`` date only.

A date-only item is stamped at the **end** of its day (UTC): a daily feed is known once the day is over, so a
replay never lets the detector see a day's headlines before the day has ended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.alerts.backtest import parse_times

FEED_FOLDER = "news-headlines-2017-2020"
_WS_RE = re.compile(r"\s+")
_SECTION_RE = re.compile(r"^.*\n\s*\n", re.DOTALL)


@dataclass(frozen=True, slots=True)
class FeedSpec:
    name: str
    file: str
    time_column: str
    text_column: str
    time_format: str | None  # None: minute timestamps parsed by ``parse_times``; else a date-only format


FEEDS: tuple[FeedSpec, ...] = (
    FeedSpec("cnbc", "cnbc_headlines.csv", "Time", "Headlines", None),
    FeedSpec("guardian", "guardian_headlines.csv", "Time", "Headlines", "%d-%b-%y"),
    FeedSpec("reuters", "Reuters.csv", "Time", "Headlines", "%b %d %Y"),
)


def clean_headline(text: str) -> str:
    """Section label (text before a blank line) dropped, whitespace collapsed."""
    if "\n" in text:
        text = _SECTION_RE.sub("", text)
    return _WS_RE.sub(" ", text).strip()


def read_feed(folder: Path, spec: FeedSpec) -> pd.DataFrame:
    """``published_at`` (UTC), ``text``, ``source`` per kept row, in time order (stable)."""
    raw = pd.read_csv(folder / spec.file, dtype=str, keep_default_na=False)
    times = raw[spec.time_column].str.strip()
    if spec.time_format is None:
        published = parse_times(times)
    else:
        day = pd.to_datetime(times, format=spec.time_format, errors="coerce", utc=True)
        published = day + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
    frame = pd.DataFrame(
        {
            "published_at": published,
            "text": [clean_headline(t) for t in raw[spec.text_column]],
            "source": spec.name,
            "row": np.arange(len(raw)),
        }
    )
    frame = frame[(frame["text"] != "") & frame["published_at"].notna()]
    frame = frame.sort_values("published_at", kind="stable").reset_index(drop=True)
    frame.attrs["csv_rows"] = len(raw)
    frame.attrs["dropped"] = len(raw) - len(frame)
    return frame


def read_feeds(folder: Path, names: tuple[str, ...] | None = None) -> dict[str, pd.DataFrame]:
    return {s.name: read_feed(folder, s) for s in FEEDS if names is None or s.name in names}
