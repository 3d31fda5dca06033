"""The checkout runs anywhere: no tracked file names the development machine's layout (its work folder, home
folders) or the public package index's host (pip uses whatever index it is configured with)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

# Built from pieces so that this file does not match itself.
INDEX_HOSTS = ("pypi" + ".org", "files." + "python" + "hosted" + ".org")
MACHINE_PATHS = ("/" + "work/", "/" + "root/", "/" + "home/")
ALLOWED = re.compile(r"/home/finpulse\b")  # the image's non-root user (a path inside the container)


def forbidden_strings() -> list[str]:
    # This checkout's own location and home folder (its parent may be a shared folder such as /tmp, which a
    # Dockerfile or a test legitimately names).
    here = [str(Path.home()), str(REPO)]
    return sorted({*INDEX_HOSTS, *MACHINE_PATHS, *(p.rstrip("/") + "/" for p in here if p.rstrip("/"))})


def tracked_files() -> list[Path]:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_names_this_machine_or_the_public_index() -> None:
    needles = forbidden_strings()
    hits = []
    for path in tracked_files():
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # weights, images
            continue
        for n, line in enumerate(ALLOWED.sub("", data.decode("utf-8", "replace")).splitlines(), 1):
            hits += [f"{path.relative_to(REPO)}:{n}: {needle}" for needle in needles if needle in line]
    assert not hits, "machine-specific paths or index hosts in tracked files:\n" + "\n".join(hits[:40])


def test_the_check_finds_a_planted_path() -> None:
    assert any(needle in "data_dir: /" + "work/shared/data" for needle in forbidden_strings())
    assert any(needle in "https://" + INDEX_HOSTS[0] + "/simple" for needle in forbidden_strings())
