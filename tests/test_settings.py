"""Settings: flags are checked like the environment, and the data folder resolves from the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.errors import InvalidSetting
from monitor.settings import REPO_ROOT, DataSettings, Settings


def test_an_override_outside_a_fields_bounds_is_refused_with_its_name() -> None:
    with pytest.raises(InvalidSetting, match=r"worker\.batch_size \(FINPULSE_WORKER_BATCH_SIZE") as caught:
        Settings().with_overrides(worker={"batch_size": 0})
    assert caught.value.problems[0][0] == "batch_size"
    with pytest.raises(InvalidSetting, match=r"model\.batch_size"):
        Settings().with_overrides(model={"batch_size": 0})
    assert Settings().with_overrides(worker={"batch_size": 8, "max_wait_ms": None}).worker.batch_size == 8


@pytest.mark.parametrize("argv", [["worker", "--batch-size", "0"], ["classify", "--batch-size", "0", "x"]])
def test_the_cli_reports_a_bad_flag_and_exits_1(argv: list[str], caplog: pytest.LogCaptureFixture) -> None:
    assert main(argv) == 1
    assert "batch_size" in caplog.text and "greater than or equal to 1" in caplog.text


def test_the_data_folder_is_relative_to_the_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert DataSettings().root == (REPO_ROOT / ".." / "shared" / "data").resolve()
    monkeypatch.setenv("FINPULSE_DATA_DIR", str(tmp_path))
    assert Settings().data.root == tmp_path
    monkeypatch.setenv("FINPULSE_DATA_DIR", "some/data")
    assert Settings().data.root == REPO_ROOT / "some" / "data"
