"""``finpulse run``: the whole product on one machine with embedded parts (Tansu broker, SQLite)."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time

from monitor.broker import free_port, port_open, start_broker
from monitor.settings import Settings
from monitor.signals import stop_on_signals
from monitor.store import mask_url, url_text

log = logging.getLogger("finpulse.run")


def _component_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal a child's whole process group (each child runs in its own session), so grandchildren such as
    the Streamlit server stop with it."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def plan_processes(settings: Settings, model: str | None, demo: bool) -> list[tuple[str, list[str]]]:
    """Pure: the child processes of the all-in-one run (name, argv after ``finpulse``)."""
    procs: list[tuple[str, list[str]]] = [("worker", ["worker"] + (["--model", model] if model else []))]
    if _component_available("monitor.alerts.cli"):
        procs.append(("scheduler", ["scheduler"]))
    if _component_available("dashboards.cli"):
        procs.append(("dashboard", ["dashboard", "--port", str(settings.dashboard.port)]))
    if demo:
        procs.append(("demo", ["ingest", "demo"]))
    return procs


def run_all(settings: Settings, port: int | None = None, model: str | None = None, demo: bool = True) -> int:
    if port is None:
        wanted = int(settings.kafka.bootstrap.split(",")[0].rsplit(":", 1)[-1])
        port = wanted if not port_open("127.0.0.1", wanted) else free_port()
    broker = start_broker(port)
    env = {
        **os.environ,
        "FINPULSE_KAFKA_BOOTSTRAP": broker.bootstrap,
        "FINPULSE_DATABASE_URL": url_text(settings.database.url),
        # The demo stream needs a few items/s: skip the worker's torch.compile warm-up unless asked.
        "FINPULSE_MODEL_COMPILE": os.environ.get("FINPULSE_MODEL_COMPILE", "off"),
    }
    stop = stop_on_signals()
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for name, argv in plan_processes(settings, model, demo):
            cmd = [sys.executable, "-m", "monitor.cli", *argv]
            children.append((name, subprocess.Popen(cmd, env=env, start_new_session=True)))
            log.info("started %s (pid %d)", name, children[-1][1].pid)
        names = ", ".join(n for n, _ in children)
        print(
            f"\nFinPulse is running: broker {broker.bootstrap}, database {mask_url(settings.database.url)}\n"
            f"  components: {names}\n"
            f"  dashboard:  http://localhost:{settings.dashboard.port}\n"
            f"  Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stop.is_set():
            if not broker.alive():
                log.error("broker exited; stopping")
                break
            for name, proc in children:
                if proc.poll() is not None and name != "demo":
                    log.error("%s exited with code %s; stopping", name, proc.returncode)
                    stop.set()
            stop.wait(0.5)
    finally:
        for _, proc in reversed(children):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, proc in children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing", name)
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        broker.stop()
    print("FinPulse stopped.")
    return 0
