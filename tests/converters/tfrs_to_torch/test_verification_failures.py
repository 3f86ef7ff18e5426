"""A verification check that fails fails the conversion: nothing renamed into place, exit 3, one line naming it.

Each test converts a real export through the CLI with one stage of the pipeline broken the way a converter bug
or a broken environment would break it (a source tensor that changes after writing, an architecture node torchrs
cannot rebuild, a TF call that raises, a wrong activation); only a missing TensorFlow may skip the forward
comparison, and then ``report.json`` and the summary say so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from converters.tfrs_to_torch import planning
from converters.tfrs_to_torch.cli import EXIT_VERIFICATION_FAILED, main
from converters.tfrs_to_torch.convert import ForwardCheck
from converters.tfrs_to_torch.plan import Plan
from converters.tfrs_to_torch.tf_format import TFProbe

pytestmark = pytest.mark.tf


def _broken_planner(monkeypatch, breakage) -> None:
    """``planning.plan_saved_model`` as it is, with ``breakage(plan)`` applied to its result."""
    real = planning.plan_saved_model

    def plan_and_break(*args: Any, **kwargs: Any) -> Plan:
        plan = real(*args, **kwargs)
        breakage(plan)
        return plan

    monkeypatch.setattr(planning, "plan_saved_model", plan_and_break)


def _run(capsys, source: Path, out: Path) -> tuple[int, str, str]:
    code = main([str(source), "--out", str(out)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _failed(code: int, err: str, out: Path, check: str) -> None:
    assert code == EXIT_VERIFICATION_FAILED, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Verification failed ({check}): "), err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))  # nothing renamed


def test_a_tensor_differing_when_re_read_fails(exports, tmp_path, capsys, monkeypatch) -> None:
    def change_after_writing(plan: Plan) -> None:
        tensor = next(t for t in plan.tensors if t.dtype.kind == "f")
        calls = iter(range(2))
        load = tensor.load
        # First call: the writer's read; second: the check's read, one value changed.
        tensor.load = lambda: load() + np.asarray(next(calls), dtype=tensor.dtype)

    _broken_planner(monkeypatch, change_after_writing)
    out = tmp_path / "o"
    code, _, err = _run(capsys, exports.tower_keras, out)
    _failed(code, err, out, "re-reading the written tensors")
    assert "differs from" in err


def test_a_module_torchrs_cannot_build_fails(exports, tmp_path, capsys, monkeypatch) -> None:
    def unknown_layer(plan: Plan) -> None:
        plan.architecture["layers"][2]["class_name"] = "NoSuchLayer"

    _broken_planner(monkeypatch, unknown_layer)
    out = tmp_path / "o"
    code, _, err = _run(capsys, exports.tower_keras, out)
    _failed(code, err, out, "building the module with torchrs.load")
    assert "NoSuchLayer" in err


def test_a_tf_call_that_raises_fails(exports, tmp_path, capsys, monkeypatch, tf) -> None:
    class RaisingProbe(TFProbe):
        def __call__(self, path: str, inputs: Any) -> Any:
            raise tf.errors.InvalidArgumentError(None, None, "Expected string, got int64")

    def raising_tf(plan: Plan) -> None:
        plan.probe = RaisingProbe(plan.probe.sm)

    _broken_planner(monkeypatch, raising_tf)
    out = tmp_path / "o"
    code, _, err = _run(capsys, exports.tower_keras, out)
    _failed(code, err, out, "the TF forward comparison")
    assert "InvalidArgumentError: Expected string, got int64" in err


def test_outputs_differing_from_tf_fail(exports, tmp_path, capsys, monkeypatch) -> None:
    def wrong_activation(plan: Plan) -> None:
        plan.architecture["layers"][2]["config"]["activation"] = "tanh"  # Keras has relu

    _broken_planner(monkeypatch, wrong_activation)
    out = tmp_path / "o"
    code, _, err = _run(capsys, exports.tower_keras, out)
    _failed(code, err, out, "the TF forward comparison")
    assert "differs from TF on sample inputs" in err


def test_without_tensorflow_the_forward_check_is_skipped_and_said(
    exports, tmp_path, capsys, monkeypatch
) -> None:
    # Planning reads the export with TF; from then on `import tensorflow` fails as on a machine without it.
    _broken_planner(monkeypatch, lambda plan: monkeypatch.setitem(sys.modules, "tensorflow", None))
    out = tmp_path / "o"
    code, stdout, err = _run(capsys, exports.tower_keras, out)
    assert code == 0, err
    skipped = ForwardCheck.SKIPPED_NO_TENSORFLOW.value
    assert f"forward:     {skipped}" in stdout
    assert json.loads((out / "report.json").read_text())["forward_check"] == skipped
    summary = json.loads((out / "torchrs.json").read_text())["summary"]
    assert summary["forward_check"] == skipped and "max_abs_diff" not in summary


def test_a_clean_conversion_records_the_comparison(exports, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    code, stdout, err = _run(capsys, exports.tower_keras, out)
    assert code == 0, err
    assert json.loads((out / "report.json").read_text())["forward_check"] == "compared"
    summary = json.loads((out / "torchrs.json").read_text())["summary"]
    assert summary["forward_check"] == "compared" and summary["max_abs_diff"]
    assert "forward:     <tower>: max |TF - torch|" in stdout
