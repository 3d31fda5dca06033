"""The stop-signal helper every long-running command uses (worker, broker, ingest, ``finpulse run``)."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator

import pytest

from monitor.signals import stop_on_signals


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_sets_the_event_and_logs_the_reason(
    sig: signal.Signals, restore_handlers: None, caplog: pytest.LogCaptureFixture
) -> None:
    stop = stop_on_signals("finishing the current batch")
    assert not stop.is_set()
    with caplog.at_level(logging.INFO, logger="monitor.signals"):
        os.kill(os.getpid(), sig)
        assert stop.wait(5)
    assert f"signal {int(sig)}: finishing the current batch" in caplog.text
