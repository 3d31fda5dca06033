"""``finpulse dashboard``: run the Streamlit dashboard on the configured database (headless server)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from monitor.settings import REPO_ROOT, Settings
from monitor.store import url_text

APP = Path(__file__).resolve().parent / "app.py"
DEMO_DB = REPO_ROOT / "data" / "dashboard-demo.db"
DEMO_ITEMS = 20_000
log = logging.getLogger("finpulse.dashboard")


def add_commands(sub: Any) -> None:
    p = sub.add_parser("dashboard", help="run the Streamlit analyst dashboard")
    p.add_argument("--port", type=int, help="HTTP port (FINPULSE_DASHBOARD_PORT, default 8501)")
    p.add_argument("--host", help="address to bind (FINPULSE_DASHBOARD_HOST, default 127.0.0.1)")
    p.add_argument(
        "--demo",
        action="store_true",
        help=f"show fresh synthetic data ({DEMO_DB.relative_to(REPO_ROOT)}, rebuilt at each start) "
        "instead of the configured database",
    )
    p.set_defaults(func=_dashboard)


def streamlit_command(settings: Settings, python: str = sys.executable) -> list[str]:
    """The ``streamlit run`` command line for these settings (headless, no telemetry, no file watcher)."""
    dash = settings.dashboard
    return [
        python, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--server.port", str(dash.port),
        "--server.address", dash.host,
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def streamlit_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: the resolved database URL (CLI flags included) and the repo on the path."""
    env = dict(os.environ if base is None else base)
    env["FINPULSE_DATABASE_URL"] = url_text(settings.database.url)
    env["FINPULSE_DASHBOARD_REFRESH_SECONDS"] = str(settings.dashboard.refresh_seconds)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _dashboard(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_overrides(dashboard={"port": args.port, "host": args.host})
    if args.demo:
        settings = settings.with_overrides(database={"url": f"sqlite:///{DEMO_DB}"})
        from dashboards.seed import seed_demo
        from monitor.store import make_engine

        for stale in DEMO_DB.parent.glob(DEMO_DB.name + "*"):  # the file and its -wal / -shm
            stale.unlink()
        log.info("building demo database %s (%d synthetic items)", DEMO_DB, DEMO_ITEMS)
        seed_demo(make_engine(settings.database.url), DEMO_ITEMS, span=timedelta(days=30))
    log.info("dashboard on http://%s:%d", settings.dashboard.host, settings.dashboard.port)
    cmd = streamlit_command(settings)
    # Replace this process with Streamlit so SIGTERM/SIGINT from a supervisor (compose, `finpulse run`, tests)
    # reach the server itself instead of orphaning it.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, streamlit_env(settings))
    return 0  # not reached
