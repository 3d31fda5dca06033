"""Shared fixtures: the real Tansu broker (one per session, unique topics per test), SQLite files and the
local PostgreSQL (127.0.0.1:5432, database ``test``; each test gets its own schema)."""

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

PG_ADMIN_URL = os.environ.get("FINPULSE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]
FINPULSE = [sys.executable, "-m", "monitor.cli"]


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


def _pg_available() -> bool:
    try:
        with sa.create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://")).connect() as c:
            c.execute(sa.text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the local PostgreSQL, selected through the connection's search_path."""
    if not _pg_available():
        pytest.fail(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
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
    return base.model_copy(update={
        "kafka": kafka,
        "database": base.database.model_copy(update={"url": db_url}),
        "worker": base.worker.model_copy(update={"metrics_port": 0, "batch_size": 32, "max_wait_ms": 200,
                                                 **worker}),
        "model": base.model.model_copy(update={"path": "tiny-random"}),
    })


def env_for(kafka: KafkaSettings, db_url: str, **extra: str) -> dict[str, str]:
    """Environment for a `finpulse` subprocess (contract names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    env.update({
        "FINPULSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "FINPULSE_KAFKA_TOPIC_RAW": kafka.topic_raw,
        "FINPULSE_KAFKA_TOPIC_TAGGED": kafka.topic_tagged,
        "FINPULSE_KAFKA_TOPIC_DLQ": kafka.topic_dlq,
        "FINPULSE_KAFKA_GROUP": kafka.group,
        "FINPULSE_KAFKA_SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
        "FINPULSE_KAFKA_HEARTBEAT_INTERVAL_MS": str(kafka.heartbeat_interval_ms),
        "FINPULSE_KAFKA_PARTITIONS": str(kafka.partitions),
        "FINPULSE_DATABASE_URL": db_url,
        "FINPULSE_MODEL_PATH": "tiny-random",
        "FINPULSE_WORKER_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def chromium_available() -> bool:
    return shutil.which("chromium") is not None and shutil.which("chromedriver") is not None


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FINPULSE, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
