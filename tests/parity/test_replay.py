"""`parity.replay`: the torchrs side checked against records, where TensorFlow cannot even be imported
(`tests/parity/_no_tf.py`).

The records (`records` fixture) are written from the session's shared TF runs at the reduced CI size.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from parity.harness import run_scenario
from parity.mutations import MUTATIONS
from parity.record import RecordError, read_record, write_record
from parity.replay import check_record, find_records, replay_record
from tests.parity._no_tf import run_without_tf

GPU_SCENARIOS = ["basic_retrieval", "basic_ranking", "dcn"]


@pytest.mark.tf
def test_replay_passes_where_tensorflow_cannot_be_imported(records, tmp_path) -> None:
    report = tmp_path / "report"
    done = run_without_tf(
        "parity.cli", "replay", str(records), *GPU_SCENARIOS, "--report", str(report)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no_tf: import tensorflow fails" in done.stdout
    assert "PASS: 0 failed check(s)" in done.stdout
    figures = json.loads((report / "figures.json").read_text())
    assert figures["passed"] and set(figures["scenarios"]) == set(GPU_SCENARIOS)
    for scenario in GPU_SCENARIOS:
        checks = figures["scenarios"][scenario]["checks"]
        assert any(c["check"].startswith("loss, every step") for c in checks)
        assert any(c["check"].startswith("final weights") for c in checks)
        assert figures["scenarios"][scenario]["config"]["record"].startswith(f"record {records}")
    assert (report / "basic_retrieval" / "loss_curves.png").is_file()
    assert (
        "| scenario | check | TFRS | torchrs | difference | tolerance | result |"
        in (report / "report.md").read_text()
    )


@pytest.mark.tf
def test_a_mutation_fails_replay_without_tensorflow(records, tmp_path) -> None:
    done = run_without_tf(
        "parity.cli",
        "replay",
        str(records),
        "basic_ranking",
        "--mutation",
        "untransposed_dense",
        "--report",
        str(tmp_path),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no_tf: import tensorflow fails" in done.stdout
    failed = [
        c["check"]
        for c in json.loads((tmp_path / "figures.json").read_text())["scenarios"]["basic_ranking"][
            "checks"
        ]
        if not c["passed"]
    ]
    assert any(c.startswith("loss, every step") for c in failed), failed


# One case per mutation (from tests/parity/test_mutations.py's table): replay has the same teeth as `run`.
REPLAY_MUTATIONS = [
    ("mean_reduction", "basic_retrieval", "loss, every step"),
    ("untransposed_dense", "dcn", "final weights cross._dense.kernel"),
    ("oov_off_by_one", "dcn", "loss, every step"),
    ("torch_adagrad", "basic_retrieval", "final weights"),
    ("torch_adam", "dcn", "loss, every step"),
    ("gru_keras_gate_order", "sequential_retrieval", "final weights query.gru.recurrent_kernel"),
    ("gru_bias_rows_swapped", "sequential_retrieval", "final weights query.gru.bias"),
]


def test_every_mutation_is_replayed() -> None:
    assert {name for name, _, _ in REPLAY_MUTATIONS} == set(MUTATIONS)


@pytest.mark.tf
@pytest.mark.parametrize(("mutation", "scenario", "caught_by"), REPLAY_MUTATIONS)
def test_mutation_fails_under_replay(records, mutation: str, scenario: str, caught_by: str) -> None:
    result = replay_record(read_record(records / scenario), mutation=MUTATIONS[mutation])
    failing = [c.check for c in result.failures()]
    assert any(name.startswith(caught_by) for name in failing), failing


@pytest.mark.tf
@pytest.mark.parametrize("scenario", ["multitask", "listwise"])
def test_replay_gives_the_checks_of_run(tf_runs, records, scenario: str) -> None:
    """Replay is `run` with a recorded TF side: the same checks in the same order, the same reference values,
    and the same torchrs values (torch on CPU repeats itself; 1e-6 leaves room for a BLAS thread split)."""
    prepared, tf_run = tf_runs[scenario]
    replayed = replay_record(read_record(records / scenario))
    direct = run_scenario(scenario, prepared=prepared, tf_run=tf_run)
    assert [c.check for c in replayed.checks] == [c.check for c in direct.checks]
    assert [c.tfrs for c in replayed.checks] == [c.tfrs for c in direct.checks]
    np.testing.assert_allclose(
        [c.torchrs for c in replayed.checks], [c.torchrs for c in direct.checks], rtol=1e-6
    )
    assert [c.tolerance for c in replayed.checks] == [c.tolerance for c in direct.checks]


@pytest.mark.tf
def test_a_record_of_another_configuration_is_refused(records, tmp_path, capsys) -> None:
    copy = tmp_path / "basic_ranking"
    shutil.copytree(records / "basic_ranking", copy)
    meta = json.loads((copy / "record.json").read_text())
    meta["config"]["learning_rate"] = 0.05
    (copy / "record.json").write_text(json.dumps(meta))
    with pytest.raises(
        RecordError,
        match=r"another basic_ranking configuration \(learning_rate: recorded 0.05, now 0.1\).*"
        r"python -m parity record basic_ranking --data synthetic --scale 0.1 --epochs 1",
    ):
        check_record(read_record(copy))
    from parity.cli import main

    assert main(["replay", str(copy), "--report", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parity: error: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.tf
def test_a_record_of_other_data_is_refused(records, tmp_path) -> None:
    from parity.harness import SplitTables, prepare_tables
    from torchrs.data import movielens

    record = read_record(records / "basic_ranking")
    # A record claiming the synthetic set whose rows are another synthetic draw: as if the generator changed.
    other = movielens.synthetic_ratings(seed=7)
    tables = SplitTables(
        other.take(np.arange(len(record.tables.train))).select(record.tables.train.columns),
        other.take(np.arange(len(record.tables.test)) + 50_000).select(record.tables.test.columns),
        None,
    )
    path = write_record(
        tmp_path,
        prepare_tables("basic_ranking", tables, record.epochs, record.scale),
        tables,
        record.tf_run,
        epochs=record.epochs,
        data_source="synthetic",
        environment=record.environment,
    )
    with pytest.raises(RecordError, match="was made with other data: .* --data 'synthetic' gives"):
        check_record(read_record(path))
    # Data to check against (--data) that cannot be read is a usage error naming it.
    from parity.harness import ParityUsageError

    with pytest.raises(ParityUsageError, match="--data .*missing"):
        check_record(record, data_dir=str(tmp_path / "missing"))


def test_find_records_names_what_is_missing(tmp_path) -> None:
    with pytest.raises(RecordError, match="holds no parity records; make them with"):
        find_records(tmp_path)
    (tmp_path / "dcn").mkdir()
    (tmp_path / "dcn" / "record.json").write_text("{}")
    assert find_records(tmp_path) == [tmp_path / "dcn"]
    with pytest.raises(
        RecordError, match="has no record of basic_ranking .*parity record basic_ranking"
    ):
        find_records(tmp_path, ["basic_ranking"])


@pytest.mark.tf
def test_a_record_without_a_column_the_scenario_reads_is_refused(records, tmp_path) -> None:
    from parity.harness import SplitTables

    record = read_record(records / "basic_ranking")
    tables = SplitTables(
        record.tables.train.select(["user_id", "movie_title"]), record.tables.test, None
    )
    path = write_record(
        tmp_path,
        check_record(record),
        tables,
        record.tf_run,
        epochs=record.epochs,
        data_source="synthetic",
        environment=record.environment,
    )
    with pytest.raises(RecordError, match="lacks data the basic_ranking scenario reads now"):
        check_record(read_record(path))
