"""Model.fit under torch.distributed (DDP, gloo, 2 CPU processes via torchrun) equals single-process training,
for a model with ``compute_loss`` only and for one written with ``call`` + ``compute_loss`` + ``add_loss``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from ddp_model import global_batches, make_model, module_weights


@pytest.mark.slow
def test_two_ranks_match_one_process(tmp_path: Path) -> None:
    # MSE with SUM_OVER_BATCH_SIZE on equal halves: the mean of the two ranks' gradients is the gradient of the
    # global batch, so two ranks on halves and one process on whole batches follow the same trajectory.
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",  # rendezvous on a free local port
            "--nproc_per_node=2",
            str(worker),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    for with_call, suffix in ((False, ""), (True, "_call")):
        model = make_model(with_call)
        history = model.fit(global_batches(), epochs=2, verbose=0)
        logs = model.evaluate(global_batches(), return_dict=True, verbose=0)
        distributed = load_file(str(tmp_path / f"weights{suffix}.safetensors"))
        single = module_weights(model)
        assert distributed.keys() == single.keys()
        for name, value in single.items():
            # float32; the only difference is the order of a 2-term gradient average: 1e-6 absolute.
            torch.testing.assert_close(distributed[name], value, rtol=1e-5, atol=1e-6, msg=name)
        train_rmse, eval_rmse, regularization = (
            float(line) for line in (tmp_path / f"logs{suffix}.txt").read_text().split()
        )
        # Metrics are synced across ranks, so rank 0 reports the global RMSE.
        assert train_rmse == pytest.approx(history.history["root_mean_squared_error"][-1], rel=1e-5)
        assert eval_rmse == pytest.approx(logs["root_mean_squared_error"], rel=1e-5)
        # The activity loss of call (a batch mean) is reported as the mean over ranks: the global value.
        assert regularization == pytest.approx(history.history["regularization_loss"][-1], rel=1e-5)
        assert (regularization > 0) == with_call
        assert (
            single["embedding.weight"].abs().max() > 0.05
        )  # it trained away from the Keras init range
