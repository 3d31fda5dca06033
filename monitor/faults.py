"""Which failures are worth waiting out and which are the data's fault (pure; no I/O).

The worker retries a *transient* failure (database or broker unreachable, a systemic model failure) with
back-off and never commits past it; a *permanent* one (the database refuses a value, a record is too large,
any exception nobody foresaw) is isolated by bisecting the batch down to the one record that causes it, which
then goes to the dead-letter topic with the reason. Nothing crashes the process and nothing loops forever on
one record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from kafka.errors import CommitFailedError, KafkaError
from sqlalchemy import exc as sa_exc

from monitor.errors import FinPulseError

T = TypeVar("T")

# SQLSTATE classes that describe the server or the connection, not the row: connection exception (08),
# transaction rollback such as a deadlock (40), insufficient resources (53), object not in prerequisite state
# such as a lock timeout (55), operator intervention such as an admin shutdown (57), system error (58).
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})


class ModelOutage(FinPulseError):
    """The classifier fails on text it must handle (a known-good probe, or every item of a batch): an outage
    of the model (out of memory, broken weights), not bad input. The batch is retried, never dead-lettered."""


class StoreOutage(FinPulseError):
    """The database fails a known-good probe write: an outage, not bad input."""


def is_transient(exc: BaseException) -> bool:
    """True when waiting and retrying may succeed; False when the same input will fail the same way."""
    if isinstance(exc, ModelOutage | StoreOutage):
        return True
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return _db_transient(exc)
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in {
            "NoBrokersAvailable",
            "KafkaConnectionError",
            "KafkaTimeoutError",
        }
    return isinstance(exc, OSError | TimeoutError)  # sockets: connection refused, reset, timed out


def _db_transient(exc: sa_exc.SQLAlchemyError) -> bool:
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate:
            return str(sqlstate)[:2] in TRANSIENT_SQLSTATE_CLASSES
        # No SQLSTATE: the driver never reached the server (PostgreSQL down) or SQLite is locked / busy.
        return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    return False  # StatementError wrapping a bind-time ValueError, ArgumentError, ...: the data's fault


def describe(exc: BaseException, limit: int = 300) -> str:
    """``ClassName: first line`` of an exception, for DLQ reasons and logs (SQL text and parameters cut)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        orig = str(exc.orig).strip().splitlines()
        text = orig[0] if orig else text
    name = type(exc.orig).__name__ if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else ""
    return f"{type(exc).__name__}{'(' + name + ')' if name else ''}: {text}"[:limit]


def bisect_failures(
    items: Sequence[T], attempt: Callable[[Sequence[T]], None], give_up: Callable[[T, BaseException], None]
) -> None:
    """Run ``attempt`` on ``items``; when it raises a permanent error, split in halves and recurse, in order,
    until the failing single items are found and handed to ``give_up``. Transient errors propagate (the
    caller retries the whole run; ``attempt`` must be idempotent), and so does a rejected offset commit (the
    group moved on: nothing here is ours to decide any more). At most ~2·log2(n) extra attempts per bad item."""
    if not items:
        return
    try:
        attempt(items)
        return
    except Exception as exc:  # noqa: BLE001 - sorted below: transient up, permanent isolated
        if is_transient(exc) or isinstance(exc, CommitFailedError):
            raise
        if len(items) == 1:
            give_up(items[0], exc)
            return
    mid = len(items) // 2
    bisect_failures(items[:mid], attempt, give_up)
    bisect_failures(items[mid:], attempt, give_up)
