"""The one way a long-running FinPulse process learns that it should stop: SIGTERM (a supervisor, compose) or
SIGINT (Ctrl-C) sets an event that its loop checks."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)


def stop_on_signals(reason: str = "") -> threading.Event:
    """An event that SIGTERM and SIGINT set from now on (call from the main thread); ``reason``, when given, is
    logged on each signal (what the process does next, e.g. "finishing the current batch")."""
    stop = threading.Event()

    def _handler(signum: int, _frame: FrameType | None) -> None:
        if reason:
            log.info("signal %d: %s", signum, reason)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _handler)
    return stop
