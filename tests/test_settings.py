"""Settings: flags are checked like the environment, and the data folder resolves from the repository root."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from monitor.cli import build_parser, main
from monitor.errors import InvalidSetting
from monitor.options import WORKER, model_overrides
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


def test_the_data_folder_is_relative_to_the_repository(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert DataSettings().root == (REPO_ROOT / ".." / "shared" / "data").resolve()
    monkeypatch.setenv("FINPULSE_DATA_DIR", str(tmp_path))
    assert Settings().data.root == tmp_path
    monkeypatch.setenv("FINPULSE_DATA_DIR", "some/data")
    assert Settings().data.root == REPO_ROOT / "some" / "data"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_model_flags_are_one_declaration_everywhere() -> None:
    commands = _subparsers(build_parser())
    alerts, model = _subparsers(commands["alerts"]), _subparsers(commands["model"])
    parsers = [commands[name] for name in ("worker", "run", "classify", "evaluate", "train", "explain")]
    parsers += [alerts["backtest"], model["prepare"]]
    flags = ("--model", "--device", "--compile", "--dtype", "--threads", "--backbone")
    helps: dict[str, set[str]] = {}
    for parser in parsers:
        for action in parser._actions:
            for flag in flags:
                if flag in action.option_strings:
                    helps.setdefault(flag, set()).add(str(action.help))
    assert set(helps) == set(flags)
    assert all(len(texts) == 1 for texts in helps.values()), helps


def test_model_flags_map_to_model_settings() -> None:
    args = build_parser().parse_args(
        ["worker", "--batch-size", "8", "--model", "models/other", "--compile", "off"]
    )
    assert model_overrides(args) == model_overrides(args, WORKER)  # what the command declared
    assert model_overrides(args) == {"path": "models/other", "device": None, "compile": "off"}
    assert args.batch_size == 8  # the worker's micro-batch, not the model's
    settings = Settings().with_overrides(model=model_overrides(args))
    assert (settings.model.path, settings.model.compile) == ("models/other", "off")


def test_a_training_batch_size_never_reaches_the_model() -> None:
    args = build_parser().parse_args(["pretrain", "--out", "a.safetensors", "--batch-size", "7"])
    assert model_overrides(args) == {"threads": None}
    args = build_parser().parse_args(["classify", "--batch-size", "7", "x"])
    assert Settings().with_overrides(model=model_overrides(args)).model.batch_size == 7
