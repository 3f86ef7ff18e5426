"""The converter's verification, translated graphs and ``parity validate`` all judge through the one
comparison engine: the same records, and breaking the engine breaks every front end."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pytest

from converters.tfrs_to_torch import compare
from converters.tfrs_to_torch.compare import arrays


def test_one_tolerance_record_one_row_record() -> None:
    import importlib

    import parity.harness
    import parity.tolerances
    import parity.validate

    # (converters.tfrs_to_torch.convert is also the name of a function the package re-exports)
    convert = importlib.import_module("converters.tfrs_to_torch.convert")
    graph_convert = importlib.import_module("converters.tfrs_to_torch.graph_convert")
    assert parity.tolerances.Tolerance is compare.Tolerance
    assert parity.tolerances.Agreement is compare.Agreement
    assert parity.harness.Check is parity.validate.Check is compare.Check
    assert convert.VERIFY_TOLERANCE is graph_convert.TOLERANCE is compare.CONVERTER_TOLERANCE
    assert parity.validate.DEFAULT_TOLERANCE is compare.VALIDATE_TOLERANCE
    assert parity.validate.TOP_K_AGREEMENT is compare.TOP_K_AGREEMENT
    assert parity.validate.top_k_agreement is compare.top_k_agreement


def test_same_field_same_seed_same_inputs_in_every_front_end() -> None:
    # The graph path and validate build InputFields; the converter's _sample wraps the same call.
    from converters.tfrs_to_torch.plan import Plan
    from converters.tfrs_to_torch.verify import SAMPLE_BATCH, SAMPLE_OPEN_AXIS, _sample

    plan = Plan("tower", {})
    plan.samples["layer-0"] = [b"a", b"b", b"c"]
    plan.sources["0."] = "layer-0"
    converter = _sample([None, 2], "string", (None, None, "0."), plan, np.random.default_rng(4))
    field = compare.InputField("x", "string", (None, 2), vocabulary=[b"a", b"b", b"c"])
    engine = compare.sample_input(
        field, SAMPLE_BATCH, np.random.default_rng(4), open_axis=SAMPLE_OPEN_AXIS
    )
    assert engine is not None
    np.testing.assert_array_equal(converter, engine.values)


@pytest.fixture(scope="module")
def tower(tf, tmp_path_factory) -> tuple[Path, Path, Path]:
    from converters.tfrs_to_torch.cli import main as convert

    root = tmp_path_factory.mktemp("front_ends")
    tf.keras.utils.set_random_seed(1)
    model = tf.keras.Sequential(
        [tf.keras.Input(shape=(3,)), tf.keras.layers.Dense(4), tf.keras.layers.Dense(2)]
    )
    model.save(str(root / "tower.keras"))
    assert convert([str(root / "tower.keras"), "--out", str(root / "tower_torchrs")]) == 0
    tf.saved_model.save(model, str(root / "plain"))  # no Keras config: a translated graph
    return root / "tower.keras", root / "tower_torchrs", root / "plain"


@pytest.mark.tf
def test_report_json_rows_are_validate_rows(tower, tmp_path, capsys) -> None:
    from parity.cli import main as parity_main

    report = json.loads((tower[1] / "report.json").read_text())
    assert report["tolerance"] == asdict(compare.CONVERTER_TOLERANCE)
    keys = [f.name for f in fields(compare.Check)]
    assert report["comparison"] and all(list(r) == keys for r in report["comparison"])
    assert all(r["passed"] for r in report["comparison"])
    graph_out = tmp_path / "graph"
    from converters.tfrs_to_torch.cli import main as convert

    assert convert([str(tower[2]), "--out", str(graph_out), "--graph", "always"]) == 0
    graph_report = json.loads((graph_out / "report.json").read_text())
    assert graph_report["tolerance"] == report["tolerance"]
    assert graph_report["comparison"] and all(list(r) == keys for r in graph_report["comparison"])
    assert parity_main(["validate", str(tower[0]), str(tower[1]), "--report", str(tmp_path)]) == 0
    capsys.readouterr()
    figures = json.loads((tmp_path / "figures.json").read_text())
    rows = figures["parts"]["tower"]["checks"]
    assert [list(r) for r in rows] == [keys] * len(rows)

    # The same figures, named the same way, in both reports (each with its own tolerance).
    def figure(row: dict) -> str:
        return row["check"].split(": ")[1].split(" atol ")[0]

    assert (
        {figure(r) for r in report["comparison"]}
        == {figure(r) for r in rows}
        == {
            "max |difference|",
            "max relative difference (|TFRS| > atol)",
            "values within",
        }
    )


@pytest.mark.tf
def test_breaking_the_engine_fails_every_front_end(tower, tmp_path, capsys, monkeypatch) -> None:
    from converters.tfrs_to_torch.cli import main as convert
    from parity.cli import main as parity_main

    real = arrays.differences

    def off_by_a_little(ref, got):  # type: ignore[no-untyped-def]
        ref, got, diff = real(ref, got)
        return ref, got, diff + 1e-3  # what a wrong rule would look like

    monkeypatch.setattr(arrays, "differences", off_by_a_little)
    assert convert([str(tower[0]), "--out", str(tmp_path / "again")]) == 3
    assert "Verification failed (the TF forward comparison)" in capsys.readouterr().err
    graph = convert([str(tower[2]), "--out", str(tmp_path / "g"), "--graph", "always"])
    assert graph != 0 and "translated graph differs from TF" in capsys.readouterr().err
    status = parity_main(
        ["validate", str(tower[0]), str(tower[1]), "--report", str(tmp_path / "r")]
    )
    assert status == 1 and "FAIL" in capsys.readouterr().out
