"""Shared lock-step TF runs: the TFRS side does not depend on the torchrs side, so it runs once per session."""

from __future__ import annotations

import pytest

# Reduced size for CI: 8,000 train / 2,000 test ratings, batches scaled alike (10 steps per epoch), 1 epoch.
SCALE = 0.1
EPOCHS = 1


@pytest.fixture(scope="session")
def tf_runs(tf):
    """``{scenario: (prepared, tf_run)}`` for every implemented scenario at the reduced size."""
    from parity.harness import SCENARIOS, prepare, run_tf_side

    runs = {}
    for name in SCENARIOS:
        prepared = prepare(name, scale=SCALE, epochs=EPOCHS)
        runs[name] = (prepared, run_tf_side(prepared))
    return runs


@pytest.fixture(scope="session")
def records(tf_runs, tmp_path_factory):
    """A records directory (`parity.record`) of every scenario, written from the shared TF runs."""
    from parity.record import record_scenario

    out = tmp_path_factory.mktemp("records")
    for name, (_, tf_run) in tf_runs.items():
        record_scenario(name, out, scale=SCALE, epochs=EPOCHS, tf_run=tf_run)
    return out
