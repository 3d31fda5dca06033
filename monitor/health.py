"""Progress-based health: a long-running process says when it last made progress, and the healthcheck asks
whether that was recent enough ("is it getting work done", not "does its port answer").

Each component (worker, scheduler, ingest) writes a small JSON file in ``FINPULSE_HEALTH_DIR`` when it makes
progress — a batch committed or nothing left to read (worker), a run completed (scheduler), a poll cycle that
fetched at least one feed (ingest) — and when it hits a fault (the file keeps the last progress time and
records the error). ``finpulse healthcheck worker|scheduler|ingest --max-age S`` fails when the last progress
is older than S: a worker stuck retrying, a scheduler whose runs fail and an ingest whose fetch hangs all turn
unhealthy.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Component = Literal["worker", "scheduler", "ingest"]


@dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool
    message: str


class Progress:
    """Writes ``<dir>/<component>.json`` (atomically; progress marks at most once a second)."""

    def __init__(self, directory: str | Path | None, component: Component, clock: object = time.time) -> None:
        self.path = Path(directory) / f"{component}.json" if directory else None
        self._clock = clock
        self._last_ok = 0.0
        self._last_write = 0.0
        self._error: str | None = None
        self._state: str | None = None  # the state last written

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def ok(self, state: str = "ok") -> None:
        """Mark progress. Repeated marks are written at most once a second; a change of state (the first
        progress after a fault, e.g. after "starting") is written at once, or the file would show the fault
        until the next cycle (for ingest, a whole poll interval)."""
        now = self._now()
        changed = self._error is not None or state != self._state
        self._last_ok, self._error = now, None
        if changed or now - self._last_write >= 1.0:
            self._write(state)

    def fault(self, error: str) -> None:
        if error != self._error:
            self._error = error
            self._write("fault")

    def _write(self, state: str) -> None:
        if self.path is None:
            return
        self._last_write = self._now()
        self._state = state
        body = {
            "last_progress": self._last_ok,
            "state": state,
            "error": self._error,
            "pid": os.getpid(),
            "written": self._last_write,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}-")
            with os.fdopen(fd, "w") as fh:
                json.dump(body, fh)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a full or read-only disk must not stop the work; the healthcheck then reports stale


def judge(path: Path, max_age_s: float, now: float) -> Verdict:
    """Pure apart from reading the file: healthy when the last progress is at most ``max_age_s`` old."""
    try:
        body = json.loads(path.read_text())
        last = float(body["last_progress"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Verdict(False, f"no progress recorded ({path.name}: {exc.__class__.__name__})")
    age = now - last
    error = body.get("error")
    if last <= 0:
        return Verdict(False, f"no progress yet{f' (last error: {error})' if error else ''}")
    if age > max_age_s:
        return Verdict(
            False,
            f"no progress for {age:.0f} s (> {max_age_s:.0f} s){f'; last error: {error}' if error else ''}",
        )
    return Verdict(True, f"progress {age:.0f} s ago")
