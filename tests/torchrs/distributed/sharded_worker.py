"""Worker for test_sharded.py, launched once by torchrun (2 gloo ranks): runs every sharded check in turn.

Each check writes under ``OUT/<check>/`` (rank 0 writes JSON logs; tables are gathered by export_unsharded);
test_sharded.py compares them with unsharded torchrs computed in the test process. A failing check raises, so
torchrun fails and the test shows this output; the process group has a timeout, so a collective that one rank
never joins fails instead of hanging.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(__file__))
from sharded_model import (
    LEARNING_RATE,
    global_batches,
    half,
    make_data,
    make_model,
)
from sharded_model import uneven as split_unevenly

import torchrs as trs
from torchrs.distributed import (
    export_unsharded,
    load_checkpoint,
    load_sharded,
    save_checkpoint,
    shard,
)

#: Long enough for the slowest check on a loaded 2-core machine, short enough that a hang fails the test.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(seconds=180)
TABLES = ("user_model.1", "movie_model.1")


def _adagrad(params: list[Any]) -> torch.optim.Optimizer:
    return trs.optim.Adagrad(params, learning_rate=LEARNING_RATE)


def _write(out: Path, name: str, payload: Any) -> None:
    if dist.get_rank() == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps(payload, indent=1))


def _steps(model: Any, batches: list[dict[str, Any]]) -> list[float]:
    rank = dist.get_rank()
    return [model.train_step(half(batch, rank))["loss"] for batch in batches]


def trajectory(out: Path, kind: str, optimizer: Any = _adagrad) -> None:
    model = make_model()
    initial = model.user_model[1].weight.detach().clone()
    shard(model, dict.fromkeys(TABLES, kind), optimizer=optimizer)
    with (
        torch.no_grad()
    ):  # ids of any shape in, (*shape, D) out, rows copied exactly from the unsharded table
        for ids in (
            torch.tensor(5),
            torch.tensor([[1, 2, 3], [4, 36, 0]]),
            torch.zeros(2, 0, 3).long(),
        ):
            got = model.user_model[1](ids)
            torch.testing.assert_close(got, initial[ids], rtol=0, atol=0)
    losses = _steps(model, global_batches() * 2)  # 2 epochs
    export_unsharded(model, out / "export")
    _write(out, "losses.json", losses)


def uneven(out: Path) -> None:
    """Ranks with different numbers of ids per step: rank 0 takes the first 20 examples, rank 1 the other 28."""
    rank = dist.get_rank()
    model = make_model()
    shard(model, dict.fromkeys(TABLES, "row_wise"), optimizer=_adagrad)
    losses = []
    for batch in global_batches():
        losses.append(model.train_step(split_unevenly(batch, rank))["loss"])
    export_unsharded(model, out / "export")
    _write(out, "losses.json", losses)


def fit(out: Path) -> None:
    rank = dist.get_rank()
    model = make_model(dense=True)
    shard(model, dict.fromkeys(TABLES, "row_wise"), optimizer=_adagrad)
    history = model.fit([half(b, rank) for b in global_batches()], epochs=2, verbose=0)
    data = make_data()
    test = [
        {
            "user_id": data.test_user_ids[i : i + 32],
            "movie_title": data.test_movie_titles[i : i + 32],
        }
        for i in range(0, len(data.test_user_ids), 32)
    ]
    logs = model.evaluate([half(b, rank) for b in test], return_dict=True, verbose=0)
    export_unsharded(model, out / "export")
    _write(out, "logs.json", {"history": history.history, "evaluate": logs})


def dcp(out: Path) -> None:
    batches = global_batches()
    first = make_model()
    shard(first, dict.fromkeys(TABLES, "row_wise"), optimizer=_adagrad)
    losses_before = _steps(first, batches[:2])
    save_checkpoint(first, out / "checkpoint")
    second = make_model(seed=7)  # other initial weights: everything must come from the checkpoint
    shard(second, dict.fromkeys(TABLES, "table_wise"), optimizer=_adagrad)
    load_checkpoint(second, out / "checkpoint")
    export_unsharded(first, out / "saved")
    export_unsharded(second, out / "restored")
    third = make_model(seed=8)  # an export_unsharded directory is also a load_sharded source
    shard(third, dict.fromkeys(TABLES, "column_wise"), optimizer=_adagrad)
    load_sharded(third, out / "saved")
    export_unsharded(third, out / "reloaded")
    first_losses, second_losses = _steps(first, batches[2:]), _steps(second, batches[2:])
    export_unsharded(first, out / "first_after")
    export_unsharded(second, out / "second_after")
    _write(
        out,
        "losses.json",
        {"before": losses_before, "first": first_losses, "second": second_losses},
    )


def auto(out: Path) -> None:
    model = make_model()
    shard(model, "auto", optimizer=_adagrad)
    kinds = {path: model.get_submodule(path).sharding_type for path in TABLES}
    losses = _steps(model, global_batches()[:2])  # the 2nd loss sees the 1st update
    _write(out, "plan.json", {"kinds": kinds, "losses": losses})


def converted(out: Path, directory: str) -> None:
    model = make_model(seed=0)
    shard(model, dict.fromkeys(TABLES, "row_wise"), optimizer=_adagrad)
    loaded = load_sharded(model, directory)
    rank = dist.get_rank()
    # Model.fit one global batch at a time, so that its history gives every step's loss (mean over ranks).
    losses = [
        model.fit([half(batch, rank)], epochs=1, verbose=0).history["loss"][0]
        for batch in global_batches()
    ]
    export_unsharded(model, out / "export")
    _write(out, "losses.json", {"losses": losses, "loaded": loaded})


def main(out_dir: str, converted_dir: str) -> None:
    dist.init_process_group("gloo", timeout=PROCESS_GROUP_TIMEOUT)
    out = Path(out_dir)
    checks: dict[str, Any] = {
        "row_wise": lambda o: trajectory(o, "row_wise"),
        "table_wise": lambda o: trajectory(o, "table_wise"),
        "column_wise": lambda o: trajectory(o, "column_wise"),
        "sgd": lambda o: trajectory(o, "row_wise", lambda p: trs.optim.SGD(p, learning_rate=0.5)),
        "uneven": uneven,
        "fit": fit,
        "dcp": dcp,
        "auto": auto,
    }
    if converted_dir != "-":
        checks["converted"] = lambda o: converted(o, converted_dir)
    for name, check in checks.items():
        try:
            check(out / name)
        except Exception:
            print(
                f"[rank {dist.get_rank()}] check {name!r} failed:\n{traceback.format_exc()}",
                flush=True,
            )
            raise
        _write(out / name, "done", "ok")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    # See the README's DDP pitfall: a gloo thread may abort the interpreter's finalization once a DDP has
    # wrapped a module (the fit check does). Everything is written and closed, so leave without finalizing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
