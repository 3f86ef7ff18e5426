"""Parity copies TF's initial weights through the converter's mapping rules, so a wrong rule fails parity.

Each test breaks one line of ``converters.tfrs_to_torch.rules`` (the table the CLI, ``load_weights`` and the
harness all read) and runs a lock-step scenario against the shared, unbroken TFRS run. The clean runs of the same
scenarios pass (``tests/parity/test_mutations.py`` checks that for every check named here).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from converters.tfrs_to_torch import rules
from parity.harness import run_scenario

pytestmark = pytest.mark.tf


def test_gru_rule_keeping_keras_gate_order_fails_parity(tf_runs, monkeypatch) -> None:
    # The converter bug: Keras's (z, r, h) gate blocks copied as they are into torch's (r, z, n) slots.
    monkeypatch.setattr(rules, "TORCH_GRU_GATES", rules.KERAS_GRU_GATES)
    prepared, tf_run = tf_runs["sequential_retrieval"]
    result = run_scenario("sequential_retrieval", prepared=prepared, tf_run=tf_run)
    assert not result.passed
    failing = [c.check for c in result.failures()]
    # Measured at --scale 0.1, 1 epoch: as the gru_keras_gate_order mutation, the recurrent kernel ends ~0.15
    # off where the tolerance is 1e-4.
    assert any(name.startswith("final weights query.gru.recurrent_kernel") for name in failing), (
        failing
    )


def test_dense_rule_without_transpose_fails_parity(tf_runs, monkeypatch) -> None:
    # The converter bug: a Keras kernel [in, out] taken as torch's weight [out, in] without a transpose.
    broken = tuple(
        replace(rule, transpose=False)
        if (rule.class_name, rule.source) == ("Dense", "kernel")
        else rule
        for rule in rules.RULES
    )
    monkeypatch.setattr(rules, "RULES", broken)
    assert rules.attribute_rule("kernel") == ("weight", False)
    prepared, tf_run = tf_runs["basic_ranking"]
    # The ranking tower's kernels are not square (64 -> 256 -> 64 -> 1): the copy refuses before training.
    with pytest.raises(
        ValueError, match=r"ratings\.dense_0\.kernel: Keras weight of shape \(\d+, 256\)"
    ):
        run_scenario("basic_ranking", prepared=prepared, tf_run=tf_run)
