"""``python -m parity run``: report files, exit status, and one-line messages for user errors."""

from __future__ import annotations

import json

import pytest

from parity.cli import EXIT_USAGE, main


def test_unknown_scenario_is_a_usage_error(capsys) -> None:
    assert main(["run", "no_such_scenario"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Unknown scenario 'no_such_scenario'" in err and "basic_retrieval" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("3", "at least 2 distinct seeds (got [3])"),
        ("5,5", "(got [5])"),
        ("a,b", "comma-separated"),
    ],
)
def test_bad_independent_seeds_are_a_usage_error(seeds: str, message: str, capsys) -> None:
    assert main(["run", "basic_ranking", "--independent", "--seeds", seeds]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("parity: error: --") and message in err


def test_bad_data_path_is_a_usage_error(tmp_path, capsys) -> None:
    missing = tmp_path / "nowhere"
    assert main(["run", "basic_ranking", "--data", str(missing)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("parity: error: --data") and "nowhere" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("scale", ["0", "1.5"])
def test_bad_scale_is_a_usage_error(scale: str, capsys) -> None:
    assert main(["run", "basic_ranking", "--scale", scale]) == EXIT_USAGE
    assert "--scale must be in (0, 1]" in capsys.readouterr().err


@pytest.mark.tf
def test_run_writes_report_and_passes(tf, tmp_path, capsys) -> None:
    status = main(
        ["run", "basic_ranking", "--scale", "0.05", "--epochs", "1", "--report", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"Report: {tmp_path / 'report.md'}" in out
    report = (tmp_path / "report.md").read_text()
    assert "| scenario | check | TFRS | torchrs | difference | tolerance | result |" in report
    assert "root_mean_squared_error" in report
    assert (tmp_path / "basic_ranking" / "loss_curves.png").stat().st_size > 1000
    figures = json.loads((tmp_path / "figures.json").read_text())
    scenario = figures["scenarios"]["basic_ranking"]
    assert figures["passed"] and scenario["passed"]
    assert len(scenario["loss"]["tfrs"]) == len(scenario["loss"]["torchrs"]) == 10
    assert scenario["throughput"]["torchrs"]["train_examples_per_second"] > 0
