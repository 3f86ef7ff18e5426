"""Ranking / DCN training: torchrs variants against TFRS, interleaved round by round in one process.

    python benchmarks/dense_levers.py --model ranking --rounds 9 [--variants base,fused,compiled]
    python benchmarks/dense_levers.py --model dcn --profile

Each round runs ``STEPS`` training steps of ``benchmarks/test_training.py``'s models (same data, batch,
optimizers) for every variant in turn, so that other load on the machine hits all of them alike; the
fastest and the median round are reported. Variants of torchrs:

- ``base``: the default (``F.linear`` + a separate ReLU);
- ``fused``: oneDNN's fused Linear + bias + ReLU (``TORCHRS_FUSED_DENSE=1``, ``torchrs.functional.dense``);
- ``inplace``: ``torch.relu_`` on the matmul's output instead of a new tensor;
- ``measured``: every Dense product (forward, input and kernel gradients) on ``torchrs.functional.gemm``'s
  one-time measured MKL / oneDNN choice per shape, bias added after the product (an experiment, not a
  library path);
- ``compiled``: ``model.compile(..., jit_compile=True)`` (``torch.compile`` of ``compute_loss``: inductor
  fuses bias + ReLU forward and backward).

``--profile`` prints torch.profiler's operator table of ``base`` (self CPU time, 5 steps).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")

import numpy as np
import torch

import torchrs as trs
from benchmarks import test_training as tt
from parity.scenarios import basic_ranking
from torchrs.activations import linear
from torchrs.data._synthetic import synthetic_ratings
from torchrs.functional import dense as fused_dense
from torchrs.functional import gemm


def _splits() -> tuple[tt.Split, tt.Split]:
    table = synthetic_ratings()
    n = int(len(table) * tt.TRAIN_FRACTION)

    def split(rows: slice) -> tt.Split:
        return tt.Split(
            table["user_id"][rows].astype(str),
            table["movie_title"][rows].astype(str),
            table["user_rating"][rows].astype(np.float32),
        )

    return split(slice(0, n)), split(slice(n, None))


def _torch_model(model: str, train: tt.Split, test: tt.Split, jit: bool) -> trs.Model:
    if model == "ranking":
        data = basic_ranking.RankingData(
            train.user_ids, train.movie_titles, train.ratings,
            test.user_ids, test.movie_titles, test.ratings,
        )  # fmt: skip
        config = basic_ranking.BasicRankingConfig(embedding_dimension=tt.EMBEDDING_DIM)
        torch.manual_seed(config.seed)
        m: trs.Model = basic_ranking.build_torch(data, config)
        m.compile(
            optimizer=lambda p: trs.optim.Adagrad(p, learning_rate=tt.ADAGRAD_LEARNING_RATE),
            jit_compile=jit,
        )
        return m
    users = np.unique(np.concatenate([train.user_ids, test.user_ids]))
    movies = np.unique(np.concatenate([train.movie_titles, test.movie_titles]))
    torch.manual_seed(0)
    m = tt.TorchDCN(users, movies)
    m.compile(
        optimizer=lambda p: trs.optim.Adam(p, learning_rate=tt.DCN_LEARNING_RATE), jit_compile=jit
    )
    return m


def _tf_steps(model: str, train: tt.Split, test: tt.Split) -> Callable[[], float]:
    from parity._tf import import_tf

    tf, tfrs = import_tf()
    if model == "ranking":
        data = basic_ranking.RankingData(
            train.user_ids, train.movie_titles, train.ratings,
            test.user_ids, test.movie_titles, test.ratings,
        )  # fmt: skip
        m = basic_ranking.build_tf(data, basic_ranking.BasicRankingConfig())
        m.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=tt.ADAGRAD_LEARNING_RATE))
    else:
        users = np.unique(np.concatenate([train.user_ids, test.user_ids]))
        movies = np.unique(np.concatenate([train.movie_titles, test.movie_titles]))
        tf.keras.utils.set_random_seed(0)
        m = tt._build_tf_dcn(tf, tfrs, users, movies)
        m.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=tt.DCN_LEARNING_RATE))
    return tt.tf_steps(tf, m, train, with_ratings=True)


class _MeasuredDense(torch.autograd.Function):
    """``relu?(x @ W.T + b)`` with all three products on ``torchrs.functional.gemm``'s measured MKL / oneDNN
    choice per shape (an experiment: the bias is added after the product, as TF's fused epilogue does)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, relu: bool
    ) -> torch.Tensor:  # type: ignore[override]
        out = gemm.scores(x, w).add_(b)  # (B, out)
        if relu:
            out.relu_()
        ctx.relu = relu
        ctx.save_for_backward(x, w, out if relu else None)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x, w, out = ctx.saved_tensors
        if ctx.relu:
            grad = torch.ops.aten.threshold_backward(grad, out, 0)
        grad = grad.contiguous()
        grad_x = gemm.matmul(grad, w)  # (B, in)
        grad_w = gemm.addmm_t_(torch.zeros_like(w), grad, x)  # (out, in)
        return grad_x, grad_w, grad.sum(0), None


def _measured_forward(layer: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    relu = layer.activation is torch.relu

    def forward(x: torch.Tensor) -> torch.Tensor:
        if not layer.built:
            layer.build(int(x.shape[-1]), layer.units)
        return _MeasuredDense.apply(x.contiguous(), layer.weight, layer.bias, relu)

    return forward


def _variant(name: str, steps: Callable[[], float]) -> Callable[[], float]:
    """Runs ``steps`` with the variant's switch set (the fused path is read at every call)."""

    def run() -> float:
        fused_dense.ENABLED = name == "fused"
        try:
            return steps()
        finally:
            fused_dense.ENABLED = False

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["ranking", "dcn"], default="ranking")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--variants", default="base,fused,inplace,compiled")
    parser.add_argument("--no-tf", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    train, test = _splits()
    batches = tt._torch_batches(train, "cpu", with_ratings=True)
    runs: dict[str, Callable[[], float]] = {}
    if not args.no_tf:
        runs["tfrs"] = _tf_steps(args.model, train, test)
    for name in args.variants.split(","):
        model = _torch_model(args.model, train, test, jit=name == "compiled")
        if name == "measured":  # every Dense product on gemm's measured MKL / oneDNN choice
            for layer in model.modules():
                if isinstance(layer, trs.layers.Dense) and layer.activation in (torch.relu, linear):
                    layer.forward = _measured_forward(layer)  # type: ignore[method-assign]
        if (
            name == "inplace"
        ):  # ReLU in place on the matmul's output (autograd keeps the output for it)
            for layer in model.modules():
                if isinstance(layer, trs.layers.Dense) and layer.activation is torch.relu:
                    layer.activation = torch.relu_
        runs[name] = _variant(name, tt.torch_steps(model, batches, "cpu"))
    if args.profile:
        model = _torch_model(args.model, train, test, jit=False)
        run = tt.torch_steps(model, batches, "cpu")
        run()
        with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True
        ) as prof:
            run()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
        events = sorted(
            prof.key_averages(group_by_input_shape=True),
            key=lambda e: -e.self_cpu_time_total,
        )
        steps = len(batches)
        print("self ms per step, calls per step, operator, input shapes:")
        for e in events[:30]:
            print(
                f"{e.self_cpu_time_total / 1e3 / steps:7.3f} {e.count / steps:5.1f}  {e.key:<28} "
                f"{e.input_shapes}"
            )
        return
    for name, run in runs.items():
        start = time.perf_counter()
        run()  # warm-up: tracing, compilation, optimizer state
        print(f"warm-up {name}: {time.perf_counter() - start:.1f} s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    work = tt.STEPS * tt.BATCH_SIZE
    ref = min(times["base"]) if "base" in times else None
    tf_best = min(times["tfrs"]) if "tfrs" in times else None
    print(f"{args.model}: load {os.getloadavg()}, threads {torch.get_num_threads()}")
    for name, ts in times.items():
        line = f"{name:>9}: best {work / min(ts):>10,.0f} ex/s  median {work / statistics.median(ts):>10,.0f}"
        if ref is not None:
            line += f"  vs base {ref / min(ts):.3f}x"
        if tf_best is not None:
            line += f"  vs tfrs {tf_best / min(ts):.3f}x"
        print(line)


if __name__ == "__main__":
    main()
