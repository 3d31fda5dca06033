"""A database lock that lets exactly one scheduler send alerts while others wait.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a dedicated connection; it is
  released when that connection closes, so a crashed holder frees it at once.
- SQLite (and anything else): a row in ``locks`` with a lease (``expires_at``) the holder renews on every
  run; a row whose lease has run out can be taken over. Updates are compare-and-set on (name, holder).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from monitor.store import locks

log = logging.getLogger(__name__)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` derived from the lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class DatabaseLock:
    """Non-blocking ``ensure(now)``: True while this process holds the lock (call it before each run)."""

    def __init__(
        self, engine: Engine, name: str, lease: timedelta = timedelta(minutes=5), holder: str | None = None
    ) -> None:
        self.engine = engine
        self.name = name
        self.lease = lease
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._conn: Connection | None = None  # PostgreSQL: the session holding the advisory lock
        self.held = False

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def ensure(self, now: datetime) -> bool:
        try:
            self.held = self._ensure_pg() if self.is_postgres else self._ensure_row(now)
        except SQLAlchemyError as exc:
            log.warning("lock %s: database error, treating as not held: %s", self.name, type(exc).__name__)
            self._drop_conn()
            self.held = False
        return self.held

    def _ensure_pg(self) -> bool:
        if self._conn is not None and self.held:
            self._conn.execute(sa.text("SELECT 1"))  # the session (and so the lock) is still alive
            self._conn.rollback()  # do not leave the session idle in a transaction
            return True
        if self._conn is None:
            self._conn = self.engine.connect()
        got = bool(
            self._conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key(self.name)}
            ).scalar_one()
        )
        self._conn.commit()
        if got:
            log.info("lock %s acquired by %s", self.name, self.holder)
        return got

    def _ensure_row(self, now: datetime) -> bool:
        expires = now + self.lease
        with self.engine.begin() as conn:
            renewed = conn.execute(
                sa.update(locks)
                .where(locks.c.name == self.name)
                .where(sa.or_(locks.c.holder == self.holder, locks.c.expires_at < now))
                .values(holder=self.holder, expires_at=expires)
            ).rowcount
            if renewed:
                if not self.held:
                    conn.execute(sa.update(locks).where(locks.c.name == self.name).values(acquired_at=now))
                    log.info("lock %s acquired by %s", self.name, self.holder)
                return True
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(locks).values(
                        name=self.name, holder=self.holder, expires_at=expires, acquired_at=now
                    )
                )
        except IntegrityError:
            return False  # someone else holds a live lease
        log.info("lock %s acquired by %s", self.name, self.holder)
        return True

    def release(self) -> None:
        try:
            if self.is_postgres:
                if self._conn is not None and self.held:
                    self._conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key(self.name)}
                    )
                    self._conn.commit()
            elif self.held:
                with self.engine.begin() as conn:
                    conn.execute(
                        sa.delete(locks).where(locks.c.name == self.name, locks.c.holder == self.holder)
                    )
        except SQLAlchemyError as exc:
            log.warning("lock %s: release failed: %s", self.name, type(exc).__name__)
        finally:
            self.held = False
            self._drop_conn()

    def _drop_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except SQLAlchemyError:
                pass  # the connection is already broken; closing it is best effort
            self._conn = None
