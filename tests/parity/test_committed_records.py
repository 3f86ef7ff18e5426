"""The full-size records kept in the repository (`parity/records`, made by ``make records``): they describe today's
scenarios, and the torchrs side replayed against them at full size, without TensorFlow, passes every check.

This is CI's full-size parity run of basic_retrieval, basic_ranking and dcn: the tutorials' 80k / 20k split,
batch 8192, 3 / 3 / 8 epochs, with the checks and tolerance records of ``python -m parity run``. It costs only the
torchrs side (measured: ~34 CPU-seconds for the three, basic_retrieval 18 of them; 87 s wall on the 2-core AMD
EPYC at load ~5 from other work). A scenario change that the records no longer match fails `test_the_committed_records_are_current` with the
difference and ``make records``.
"""

from __future__ import annotations

import json

import pytest

from parity.record import COMMITTED_RECORDS, COMMITTED_SCENARIOS, read_record
from parity.replay import check_record, find_records
from tests.parity._no_tf import run_without_tf

# The tutorials' full size (a record at --scale 1 with the tutorials' epochs).
FULL_BATCH_SIZE = 8192


def test_the_committed_records_are_current() -> None:
    """A scenario's configuration, TF-side code or data changed without ``make records``: this fails, naming it."""
    assert [p.name for p in find_records(COMMITTED_RECORDS)] == sorted(COMMITTED_SCENARIOS)
    for scenario in COMMITTED_SCENARIOS:
        record = read_record(COMMITTED_RECORDS / scenario)
        assert (record.scale, record.epochs, record.data_source) == (1.0, None, "synthetic")
        assert record.config["batch_size"] == FULL_BATCH_SIZE
        assert record.environment["tensorflow_recommenders"] == "0.7.7"
        check_record(record)  # raises RecordError with the difference and `make records`


def test_the_committed_records_are_small() -> None:
    total = sum(f.stat().st_size for f in COMMITTED_RECORDS.glob("*/*"))
    assert total < 10e6, (
        total
    )  # the repository carries them: well under the 50 MB a GPU machine may copy


@pytest.mark.slow
def test_the_full_size_scenarios_pass_under_replay_without_tensorflow(tmp_path) -> None:
    done = run_without_tf("parity.cli", "replay", str(COMMITTED_RECORDS), "--report", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no_tf: import tensorflow fails" in done.stdout
    assert "PASS: 0 failed check(s)" in done.stdout
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["passed"] and set(figures["scenarios"]) == set(COMMITTED_SCENARIOS)
    for scenario in COMMITTED_SCENARIOS:
        checks = figures["scenarios"][scenario]["checks"]
        assert checks and all(c["passed"] for c in checks), checks
        steps = next(c["check"] for c in checks if c["check"].startswith("loss, every step"))
        # 80,000 / 8192 -> 10 steps per epoch; 3 epochs (basic_*), 8 (dcn).
        assert steps.startswith(f"loss, every step ({80 if scenario == 'dcn' else 30};"), steps
        assert any(c["check"].startswith("final weights") for c in checks)
        assert figures["scenarios"][scenario]["config"]["batch_size"] == FULL_BATCH_SIZE
