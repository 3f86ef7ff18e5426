"""`parity.provenance`: a record knows the code of its TF side, and replay refuses it once that code changed.

The edits are made where the fingerprint reads the code (`inspect.getsource` of the module), as if the file had
been edited on disk; the committed full-size records (`parity/records`) are the records checked.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator

import pytest

from parity import provenance
from parity.record import COMMITTED_RECORDS, RecordError, read_record
from parity.replay import check_record


@pytest.fixture(autouse=True)
def _fresh_sources() -> Iterator[None]:
    """The parsed modules are cached; every test starts and ends with the files as they are."""
    provenance._definitions.cache_clear()
    yield
    provenance._definitions.cache_clear()


def edit(monkeypatch: pytest.MonkeyPatch, module_name: str, old: str, new: str) -> None:
    """Makes ``module_name``'s source read with ``old`` (found exactly once) replaced by ``new``."""
    module = importlib.import_module(module_name)
    real = inspect.getsource
    source = real(module)
    assert source.count(old) == 1, old
    edited = source.replace(old, new)

    def getsource(obj: object) -> str:
        return edited if obj is module else real(obj)  # type: ignore[arg-type]

    monkeypatch.setattr(inspect, "getsource", getsource)
    provenance._definitions.cache_clear()


@pytest.mark.parametrize(
    ("module_name", "old", "new", "what"),
    [
        # build_tf itself: a bias-free logit layer (the configuration stays the same).
        (
            "parity.scenarios.dcn",
            "self._logit_layer = tf.keras.layers.Dense(1)",
            "self._logit_layer = tf.keras.layers.Dense(1, use_bias=False)",
            "parity.scenarios.dcn:build_tf changed",
        ),
        # A constant build_tf reads.
        (
            "parity.scenarios.dcn",
            "DEEP_LAYER_SIZES = (192, 192)",
            "DEEP_LAYER_SIZES = (192, 128)",
            "parity.scenarios.dcn:DEEP_LAYER_SIZES changed",
        ),
        # The harness's TF driver, shared by every scenario.
        (
            "parity.harness",
            "model.fit(train, epochs=config.epochs, verbose=0, callbacks=[recorder], shuffle=False)",
            "model.fit(train, epochs=config.epochs, verbose=0, callbacks=[recorder], shuffle=True)",
            "parity.harness:run_tf_side changed",
        ),
        # A helper the TF driver calls, in another function of the harness.
        (
            "parity.harness",
            "return [min(batch_size, n - i) for i in range(0, n, batch_size)]",
            "return [batch_size for i in range(0, n, batch_size)]",
            "parity.harness:_sizes changed",
        ),
    ],
)
def test_a_changed_tf_side_makes_the_committed_record_stale(
    monkeypatch: pytest.MonkeyPatch, module_name: str, old: str, new: str, what: str
) -> None:
    record = read_record(COMMITTED_RECORDS / "dcn")
    check_record(record)  # current before the edit
    edit(monkeypatch, module_name, old, new)
    with pytest.raises(
        RecordError,
        match=rf"parity/records/dcn is stale: the code of the dcn scenario's TF side changed since it was "
        rf"recorded \({what}\).*Record it again: `make records`",
    ):
        check_record(record)


def test_replay_refuses_a_stale_record_in_one_error_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys
) -> None:
    from parity.cli import main

    edit(
        monkeypatch,
        "parity.scenarios.basic_ranking",
        "HIDDEN_UNITS = (256, 64)",
        "HIDDEN_UNITS = (256, 32)",
    )
    status = main(["replay", str(COMMITTED_RECORDS), "--report", str(tmp_path)])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("parity: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert (
        "basic_ranking is stale" in err
        and "parity.scenarios.basic_ranking:HIDDEN_UNITS changed" in err
    )
    assert "`make records`" in err
    assert not (tmp_path / "report.md").exists()  # refused before any training


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # The torch side: a record of the TF side does not depend on it.
        (
            "self._logit_layer = trs.layers.Dense(1, input_dim=sizes[-1])",
            "self._logit_layer = trs.layers.Dense(1, input_dim=sizes[-1], use_bias=False)",
        ),
        # Layout, comments, docstrings and annotations of the TF side.
        (
            "            self._logit_layer = tf.keras.layers.Dense(1)\n",
            "            self._logit_layer = tf.keras.layers.Dense(\n                1,  # the rating\n            )\n",
        ),
        (
            '"""Builds the tutorial\'s TFRS model (TensorFlow imported here, never by torchrs)."""',
            '"""Builds the TFRS model."""',
        ),
        ("def tf_optimizer(tf: Any, config: DCNConfig) -> Any:", "def tf_optimizer(tf, config):"),
    ],
)
def test_what_does_not_change_the_tf_side_keeps_the_record(
    monkeypatch: pytest.MonkeyPatch, old: str, new: str
) -> None:
    before = provenance.tf_side_sources("dcn")
    edit(monkeypatch, "parity.scenarios.dcn", old, new)
    assert provenance.tf_side_sources("dcn") == before
    check_record(read_record(COMMITTED_RECORDS / "dcn"))


def test_the_tf_side_follows_project_code_across_modules() -> None:
    listwise = provenance.tf_side_sources("listwise")
    # Imported from torchrs (the sampled lists both sides train on) and a local import in build_tf.
    assert "torchrs.examples.movielens:sample_listwise" in listwise
    assert "parity._tf:import_tfr" in listwise
    dcn = provenance.tf_side_sources("dcn")
    assert "parity.scenarios.dcn:make_data" in dcn and "parity.scenarios.dcn:DCNConfig" in dcn
    assert not any(key.startswith("parity.scenarios.listwise") for key in dcn)
    assert not any(":torch_" in key or ":build_torch" in key for key in dcn)


def test_a_record_whose_tf_side_entry_was_edited_is_refused(tmp_path) -> None:
    import json
    import shutil

    copy = tmp_path / "dcn"
    shutil.copytree(COMMITTED_RECORDS / "dcn", copy)
    meta = json.loads((copy / "record.json").read_text())
    meta["tf_side"]["parts"]["parity.scenarios.dcn:build_tf"] = "0" * 64  # hiding a change
    (copy / "record.json").write_text(json.dumps(meta))
    with pytest.raises(RecordError, match="TF side's fingerprint does not match its parts"):
        read_record(copy)


def test_only_the_scenarios_own_registry_entries_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from parity import harness

    before = provenance.tf_side_sources("dcn")
    monkeypatch.setitem(harness.SCENARIOS, "another_tutorial", harness.SCENARIOS["multitask"])
    monkeypatch.setattr(harness, "_GENERIC", harness._GENERIC | {"another_tutorial"})
    assert provenance.tf_side_sources("dcn") == before  # a new scenario leaves dcn's record current
    monkeypatch.setattr(harness, "_GENERIC", harness._GENERIC - {"dcn"})
    assert provenance.differences(before, provenance.tf_side_sources("dcn")) == [
        "parity.harness:_GENERIC[dcn] changed"
    ]
