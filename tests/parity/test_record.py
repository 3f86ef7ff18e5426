"""`parity.record`: a record holds the TF side exactly, with its versions, and refuses to be misread."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from parity.harness import SCENARIOS, SplitTables, prepare_tables
from parity.record import (
    RECORD_FILES,
    RECORD_VERSION,
    RecordError,
    encode_tables,
    fingerprint,
    read_record,
    used_columns,
)
from torchrs.data import movielens


@pytest.mark.tf
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_record_returns_the_tf_run_exactly(tf_runs, records, scenario: str) -> None:
    prepared, tf_run = tf_runs[scenario]
    record = read_record(records / scenario)
    got = record.tf_run
    # Python floats through JSON and float32 arrays through safetensors round-trip bit for bit.
    assert got.step_losses == tf_run.step_losses
    assert got.metrics == tf_run.metrics
    assert (got.step_examples, got.eval_examples) == (tf_run.step_examples, tf_run.eval_examples)
    for mine, theirs in (
        (got.weights, tf_run.weights),
        (got.initial_weights, tf_run.initial_weights),
    ):
        assert list(mine) == list(theirs)  # the same order, so the checks come in the same order
        for name, value in theirs.items():
            assert mine[name].dtype == value.dtype
            np.testing.assert_array_equal(mine[name], value)
    np.testing.assert_array_equal(got.predictions, tf_run.predictions)
    assert list(got.extra_predictions) == list(tf_run.extra_predictions)
    for name, value in tf_run.extra_predictions.items():
        np.testing.assert_array_equal(got.extra_predictions[name], value)
    if tf_run.top_k_ids is None:
        assert got.top_k_ids is None
    else:
        np.testing.assert_array_equal(got.top_k_ids, tf_run.top_k_ids)
    # The stored split gives the very batches the TF side was trained on.
    again = prepare_tables(scenario, record.tables, record.epochs, record.scale)
    assert again.config == prepared.config
    from parity.harness import _columns

    for split in ("train", "test"):
        mine_cols, theirs_cols = _columns(again, split), _columns(prepared, split)
        assert set(mine_cols) == set(theirs_cols)
        for name in theirs_cols:
            np.testing.assert_array_equal(mine_cols[name], theirs_cols[name])


@pytest.mark.tf
def test_a_record_is_versioned_and_small(records) -> None:
    meta = json.loads((records / "basic_retrieval" / "record.json").read_text())
    env = meta["environment"]
    assert env["tensorflow_recommenders"] == "0.7.7"
    assert env["tensorflow"] and env["tf_keras"] and env["cpu"] and env["numpy"]
    assert meta["config"]["batch_size"] == 819 and meta["scale"] == 0.1 and meta["epochs"] == 1
    assert meta["data"]["source"] == "synthetic" and len(meta["data"]["fingerprint"]) == 64
    # The code of the TF side it was made with (parity.provenance), definition by definition.
    assert len(meta["tf_side"]["fingerprint"]) == 64
    assert "parity.scenarios.basic_retrieval:build_tf" in meta["tf_side"]["parts"]
    assert sorted(p.name for p in (records / "basic_retrieval").iterdir()) == sorted(RECORD_FILES)
    # Only the columns the scenario reads are stored (basic_ranking: 3 of the 12 ratings columns).
    data = json.loads((records / "basic_ranking" / "data.json").read_text())
    assert set(data) == {"train", "test"}
    assert set(data["train"]["columns"]) == {"user_id", "movie_title", "user_rating"}
    total = sum(f.stat().st_size for f in records.glob("*/*"))
    assert total < 20e6, total


def test_used_columns_keeps_what_the_scenario_reads() -> None:
    ratings = movielens.load()
    movies = movielens.load(table="movies")
    tables = SplitTables(
        ratings.take(np.arange(0, 800)), ratings.take(np.arange(800, 1000)), movies
    )
    pruned = used_columns("dcn", tables, scale=0.01)
    assert set(pruned.train.columns) < set(ratings.columns)
    assert "user_zip_code" in pruned.train.columns and "user_rating" in pruned.train.columns
    # Pruned or not, the scenario is prepared identically.
    full, small = (
        prepare_tables("dcn", tables, scale=0.01),
        prepare_tables("dcn", pruned, scale=0.01),
    )
    for name, values in full.data.train.items():
        np.testing.assert_array_equal(small.data.train[name], values)


def test_fingerprint_sees_values_order_and_columns() -> None:
    ratings = movielens.load().take(np.arange(100))
    base = fingerprint(SplitTables(ratings, ratings, None))
    assert fingerprint(SplitTables(ratings, ratings, None)) == base
    assert fingerprint(SplitTables(ratings.take(np.arange(99, -1, -1)), ratings, None)) != base
    assert fingerprint(SplitTables(ratings, ratings.select(["user_id"]), None)) != base
    ratings_changed = ratings.to_dict()
    ratings_changed["user_rating"] = ratings_changed["user_rating"] + np.float32(0.5)
    assert fingerprint(SplitTables(movielens.Ratings(ratings_changed), ratings, None)) != base
    # Strings are stored as codes into a sorted vocabulary, genres as values + offsets: no pickle.
    tensors, meta = encode_tables(SplitTables(ratings, ratings, None))
    assert all(array.dtype != object for array in tensors.values())
    assert meta["train"]["columns"]["movie_genres"] == {"kind": "int64_list"}


@pytest.mark.tf
def test_a_damaged_or_foreign_record_is_refused(records, tmp_path) -> None:
    copy = tmp_path / "basic_ranking"
    shutil.copytree(records / "basic_ranking", copy)
    meta = json.loads((copy / "record.json").read_text())
    del meta["tf_run"]["order"]
    (copy / "record.json").write_text(json.dumps(meta))
    with pytest.raises(RecordError, match="incomplete or damaged .*KeyError.*order"):
        read_record(copy)
    meta = json.loads((records / "basic_ranking" / "record.json").read_text())
    (copy / "data.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RecordError, match="incomplete or damaged"):
        read_record(copy)
    shutil.copy(records / "basic_ranking" / "data.safetensors", copy / "data.safetensors")
    meta["data"]["fingerprint"] = "0" * 64
    (copy / "record.json").write_text(json.dumps(meta))
    with pytest.raises(RecordError, match="changed or damaged; record the scenario again"):
        read_record(copy)
    meta["version"] = 99
    (copy / "record.json").write_text(json.dumps(meta))
    with pytest.raises(
        RecordError,
        match=rf"version 99; this torchrs reads .* version {RECORD_VERSION}: record it again",
    ):
        read_record(copy)
    (copy / "tensors.safetensors").unlink()
    with pytest.raises(
        RecordError, match=r"not a complete parity record \(missing tensors.safetensors\)"
    ):
        read_record(copy)


def test_record_and_replay_usage_errors_are_one_line(tmp_path, capsys) -> None:
    from parity.cli import EXIT_USAGE, main

    assert main(["record", "no_such_scenario", "--out", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert (
        err.startswith("parity: error: Unknown scenario 'no_such_scenario'")
        and "Traceback" not in err
    )
    assert main(["record", "dcn", "--scale", "2", "--out", str(tmp_path)]) == EXIT_USAGE
    assert "--scale must be in (0, 1]" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing half-written
    assert main(["replay", str(tmp_path / "none")]) == EXIT_USAGE
    assert "holds no parity records" in capsys.readouterr().err


def test_record_without_tensorflow_says_what_to_install(tmp_path) -> None:
    from tests.parity._no_tf import run_without_tf

    done = run_without_tf(
        "parity.cli", "record", "dcn", "--scale", "0.01", "--epochs", "1", "--out", str(tmp_path)
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("parity: error: ") and "pip install 'torchrs[tf]'" in done.stderr
    assert "Traceback" not in done.stderr and not any(tmp_path.iterdir())
