"""Worker for test_ddp.py, launched by torchrun: fits a small ranking model on this rank's half of each batch."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from ddp_model import global_batches, make_model


def main(out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    shards = []
    for batch in global_batches():
        size = batch["y"].shape[0] // world
        shards.append({k: v[rank * size : (rank + 1) * size] for k, v in batch.items()})
    # Both ways of writing a model: compute_loss only, and call + compute_loss (the DDP forward must still run
    # the loss, or the gradients would not be averaged).
    for with_call, suffix in ((False, ""), (True, "_call")):
        model = make_model(with_call)
        history = model.fit(shards, epochs=2, verbose=0)
        logs = model.evaluate(shards, return_dict=True, verbose=0)
        if rank == 0:
            save_file(
                {
                    k: v.contiguous()
                    for k, v in model.state_dict().items()
                    if isinstance(v, torch.Tensor) and v.dtype.is_floating_point and "task" not in k
                },
                os.path.join(out_dir, f"weights{suffix}.safetensors"),
            )
            with open(os.path.join(out_dir, f"logs{suffix}.txt"), "w") as f:
                f.write(
                    f"{history.history['root_mean_squared_error'][-1]!r}\n{logs['root_mean_squared_error']!r}\n"
                    f"{history.history['regularization_loss'][-1]!r}\n"
                )
        del model
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
    # torch 2.13 keeps a ProcessGroupGloo alive after destroy_process_group once a DistributedDataParallel has
    # wrapped a module (its worker threads still run). Should one of them free a finished collective's tensors
    # while the interpreter finalizes, it cannot take the GIL and the process aborts ("terminate called without an
    # active exception", 2 of 28 runs here). Everything is written and closed, so leave without finalizing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
