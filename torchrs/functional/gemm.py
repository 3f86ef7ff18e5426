"""The dense products of retrieval and of Dense layers on the fastest CPU path per shape, measured once.

The retrieval loss, ``FactorizedTopK`` evaluation and ``BruteForce`` spend their time in three products:
scores ``a @ b.T`` (:func:`scores`), ``a @ b`` (:func:`matmul`) and the accumulation ``c += a.T @ b``
(:func:`addmm_t_`); ranking models in their Dense layers (``act(x @ W.T + b)``, kind ``"linear"``, chosen
by :mod:`torchrs.functional.dense`, whose backward products go through :func:`matmul` and :func:`addmm_t_`). torch's default float32 matmul is BLAS (MKL in the PyPI wheels), whose fast kernels are
chosen by CPU vendor: with ``MKL_CBWR=COMPATIBLE`` (what MKL does on CPUs it does not tune for) the same
products ran 2-9x slower here (AMD EPYC, 1 thread: 1024x64 . 64x2048 scores 8.6 GFLOP/s against 81 by
default), while oneDNN (``torch.ops.mkldnn._linear_pointwise``, the library TensorFlow's CPU kernels use)
dispatches on instruction sets, not vendors, and stayed at 68-78. By default MKL was as fast or up to 1.3x
faster on the same shapes, so neither path wins everywhere.

The choice is therefore measured, once per shape and thread count: the first time a shape of at least
:data:`MIN_MEASURED_MACS` multiply-adds is seen, each path runs :data:`MEASURE_ROUNDS` interleaved rounds
on the real operands, and oneDNN is kept only when it is at least :data:`ONEDNN_MARGIN` times as fast as BLAS
(:func:`choices` lists them). Smaller products always take
BLAS: oneDNN's fixed cost per call (tens of microseconds) dominates them. ``TORCHRS_GEMM=blas|onednn``
(or :func:`use_backend`) forces one path, e.g. for bitwise-reproducible runs: the two paths sum the ``k``
products in different orders, so results differ in the last bits (the relative difference of a score is
below ``k * 2**-24`` of ``sum |a_i b_i|``).

BLAS writes into caller-provided buffers (``out=``); oneDNN has no such entry point and returns a fresh
tensor, which is why the measurement times each path the way it will run, allocation included.

>>> a, b = torch.ones(2, 3), torch.ones(4, 3)
>>> scores(a, b)
tensor([[3., 3., 3., 3.],
        [3., 3., 3., 3.]])
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "BLAS",
    "ONEDNN",
    "ONEDNN_MARGIN",
    "GemmChoice",
    "addmm_t_",
    "backend_for",
    "choices",
    "matmul",
    "may_use_onednn",
    "measure_paths",
    "scores",
    "use_backend",
    "workspace",
]

#: torch's default matmul (MKL, or OpenBLAS in other builds).
BLAS = "blas"
#: oneDNN's float32 inner product (``torch.ops.mkldnn._linear_pointwise``).
ONEDNN = "onednn"
#: Environment variable forcing a path: ``blas``, ``onednn`` or ``auto`` (the default: measured).
ENV_VAR = "TORCHRS_GEMM"
#: Products below this many multiply-adds take BLAS without measuring: oneDNN's fixed cost per call (~30 us
#: here: 8x32 . 32x64 ran at 3.2 GFLOP/s through MKL, 1.0 through oneDNN) is then a large part of a product
#: that BLAS finishes in ~0.1 ms. The smallest shape that matters, FactorizedTopK's 128x32 . 32x1682 block for
#: top-100 over the MovieLens corpus (6.9M MACs), is above it.
MIN_MEASURED_MACS = 2**22
#: Interleaved timed rounds per path when a shape is measured. A round is timed in wall time and the fastest
#: round counts (contention only ever slows a round down). Process CPU time, used before, misjudged the paths
#: when measured inside a first training step (AMD EPYC, the basic-ranking model's 8192x64 . 64x256 Dense:
#: 4.15 ms BLAS against 1.98 ms oneDNN there, 2.37 against 2.27 ms wall, 4.42 against 4.19 ms CPU in steady
#: state), which handed that layer to oneDNN for no gain.
MEASURE_ROUNDS = 5
#: oneDNN replaces BLAS for a shape only when its fastest round is at least this many times faster. By default
#: the two paths ran within a few percent of each other on most shapes here (AMD EPYC: the retrieval loss's
#: 128x32 . 32x8192 block 1.51 against 1.48 ms, the next run 2.07 against 1.72), so the plain "smaller time
#: wins" let noise pick the path, and with it the last bits of the results, anew in every process. Where MKL
#: is off its fast path oneDNN wins by 1.6-9x and is still chosen.
ONEDNN_MARGIN = 1.25

_Kind = (
    str  # "nt" (a @ b.T), "nn" (a @ b), "tn+" (c += a.T @ b), "linear" (a @ b.T + bias, act: Dense)
)


@dataclass(frozen=True)
class GemmChoice:
    """The measured choice for one product shape.

    Attributes:
        kind: ``"nt"`` (``a @ b.T``), ``"nn"`` (``a @ b``), ``"tn+"`` (``c += a.T @ b``) or ``"linear"``
            (a Dense layer's ``act(a @ b.T + bias)``, :mod:`torchrs.functional.dense`).
        shape: ``(m, n, k)`` of the product (``m x k`` times ``k x n``).
        threads: torch's intra-op thread count when measured.
        backend: :data:`BLAS` or :data:`ONEDNN`.
        blas_seconds: the fastest BLAS round, in wall-clock seconds.
        onednn_seconds: the fastest oneDNN round, in wall-clock seconds.
    """

    kind: str
    shape: tuple[int, int, int]
    threads: int
    backend: str
    blas_seconds: float
    onednn_seconds: float


_CHOICES: dict[tuple[str, int, int, int, torch.dtype, int], GemmChoice] = {}
_LOCK = threading.Lock()
_FORCED: list[str] = []
_WORKSPACES = threading.local()


def _forced() -> str | None:
    if _FORCED:
        return _FORCED[-1]
    return _parse_env(os.environ.get(ENV_VAR, "auto"))  # read at every call: a test may change it


@functools.lru_cache(maxsize=8)
def _parse_env(raw: str) -> str | None:
    value = raw.strip().lower() or "auto"
    if value not in ("auto", BLAS, ONEDNN):
        raise ValueError(f"{ENV_VAR}={value!r} is not a GEMM path: use 'blas', 'onednn' or 'auto'.")
    return None if value == "auto" else value


@contextlib.contextmanager
def use_backend(backend: str) -> Iterator[None]:
    """Forces :data:`BLAS` or :data:`ONEDNN` for the products run inside the block (tests, reproducibility).

    >>> with use_backend(BLAS):
    ...     backend_for("nt", torch.ones(4096, 64), torch.ones(4096, 64))
    'blas'
    """
    if backend not in (BLAS, ONEDNN):
        raise ValueError(f"`backend` must be {BLAS!r} or {ONEDNN!r} (got {backend!r}).")
    _FORCED.append(backend)
    try:
        yield
    finally:
        _FORCED.pop()


def _onednn_usable(*tensors: Tensor) -> bool:
    return (
        torch.backends.mkldnn.is_available()
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        and not any(t.requires_grad and torch.is_grad_enabled() for t in tensors)
    )


def _shape(kind: _Kind, a: Tensor, b: Tensor) -> tuple[int, int, int]:
    if kind in ("nt", "linear"):
        return a.shape[0], b.shape[0], a.shape[1]
    if kind == "nn":
        return a.shape[0], b.shape[1], a.shape[1]
    return a.shape[1], b.shape[1], a.shape[0]  # "tn+": (a.T @ b) is (a.shape[1], b.shape[1])


def may_use_onednn(m: int, n: int, k: int) -> bool:
    """Whether an ``(m x k) . (k x n)`` product can take oneDNN at all: False when ``TORCHRS_GEMM=blas`` forces
    BLAS, or when it is below :data:`MIN_MEASURED_MACS` (BLAS without measuring) and oneDNN is not forced.

    A check on shapes alone, for callers whose per-call cost matters (a Dense layer at batch 1): False means
    :func:`backend_for` would answer :data:`BLAS`.
    """
    forced = _forced()
    if forced is not None:
        return forced == ONEDNN
    return m * n * k >= MIN_MEASURED_MACS


def backend_for(
    kind: _Kind, a: Tensor, b: Tensor, measure: Callable[[], GemmChoice] | None = None
) -> str:
    """The path a product of this kind and shape takes (measuring it first when ``measure`` is given).

    Args:
        kind: ``"nt"``, ``"nn"``, ``"tn+"`` or ``"linear"``.
        a: the left operand, as passed to :func:`scores`, :func:`matmul` or :func:`addmm_t_`.
        b: the right operand.
        measure: runs the measurement for an unseen shape; without it an unseen shape reports BLAS.

    Returns:
        :data:`BLAS` or :data:`ONEDNN`.
    """
    m, n, k = _shape(kind, a, b)
    if not may_use_onednn(m, n, k) or not _onednn_usable(a, b):
        return BLAS
    if _forced() == ONEDNN:
        return ONEDNN
    key = (kind, m, n, k, a.dtype, torch.get_num_threads())
    choice = _CHOICES.get(key)
    if choice is None:
        if measure is None:
            return BLAS
        with _LOCK:
            choice = _CHOICES.get(key)
            if choice is None:
                choice = measure()
                _CHOICES[key] = choice
    return choice.backend


def choices() -> list[GemmChoice]:
    """Every measured choice so far in this process (for benchmark reports)."""
    return list(_CHOICES.values())


def measure_paths(
    kind: _Kind, a: Tensor, b: Tensor, blas: Callable[[], object], onednn: Callable[[], object]
) -> GemmChoice:
    """Times ``blas`` and ``onednn`` (one product of this kind on ``a`` and ``b`` each) and picks a path.

    Pass it to :func:`backend_for` as ``measure`` (wrapped in a lambda); both callables run
    :data:`MEASURE_ROUNDS` + 1 times, so they must not update state the caller keeps.
    """
    best = {BLAS: float("inf"), ONEDNN: float("inf")}
    runs = {BLAS: blas, ONEDNN: onednn}
    blas()
    try:
        onednn()  # warm-up: oneDNN builds and caches its primitive for the shape here
    except (
        RuntimeError
    ):  # a build whose oneDNN lacks this primitive (e.g. some non-x86 builds): BLAS only
        return GemmChoice(
            kind, _shape(kind, a, b), torch.get_num_threads(), BLAS, 0.0, float("inf")
        )
    for _ in range(MEASURE_ROUNDS):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    backend = ONEDNN if best[ONEDNN] * ONEDNN_MARGIN <= best[BLAS] else BLAS
    return GemmChoice(
        kind, _shape(kind, a, b), torch.get_num_threads(), backend, best[BLAS], best[ONEDNN]
    )


def _linear(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight.T`` through oneDNN's inner product (no bias, no post-op)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")


def workspace(numel: int, like: Tensor) -> Tensor:
    """A flat scratch buffer of at least ``numel`` elements, reused across calls in this thread.

    The callers overwrite it entirely before reading it, so its contents never matter. Reusing it saves the
    page faults of a fresh multi-megabyte allocation per block (a fresh 268 MB score matrix per step cut a
    matmul to a third of its speed on an AMD EPYC). A buffer made under ``torch.inference_mode`` (an
    inference tensor, which cannot be written outside it) is kept apart from one made outside it.
    """
    key = (like.dtype, like.device, torch.is_inference_mode_enabled())
    store: dict[tuple[torch.dtype, torch.device, bool], Tensor] = (
        getattr(_WORKSPACES, "buffers", None) or {}
    )
    _WORKSPACES.buffers = store
    buffer = store.get(key)
    if buffer is None or buffer.numel() < numel:
        buffer = torch.empty(numel, dtype=like.dtype, device=like.device)
        store[key] = buffer
    return buffer[:numel]


def scores(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
    """``a @ b.T`` for ``a`` ``(m, k)`` and ``b`` ``(n, k)``: every row of ``a`` scored against every row of ``b``.

    Args:
        a: ``(m, k)``.
        b: ``(n, k)``.
        out: optional ``(m, n)`` buffer that BLAS writes into; the oneDNN path returns a new tensor.

    Returns:
        ``(m, n)`` scores (``out`` itself when BLAS ran with it).
    """

    def blas() -> Tensor:
        return torch.matmul(a, b.T, out=out) if out is not None else a @ b.T  # (m, n)

    def onednn() -> Tensor:
        return _linear(a, b)  # (m, n)

    backend = backend_for("nt", a, b, lambda: measure_paths("nt", a, b, blas, onednn))
    return onednn() if backend == ONEDNN else blas()


def matmul(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
    """``a @ b`` for ``a`` ``(m, k)`` and ``b`` ``(k, n)``; written into ``out`` when given (both paths).

    Args:
        a: ``(m, k)``.
        b: ``(k, n)``.
        out: optional ``(m, n)`` destination.

    Returns:
        ``(m, n)`` product (``out`` when given).
    """

    def blas() -> Tensor:
        return torch.matmul(a, b, out=out) if out is not None else a @ b  # (m, n)

    def onednn() -> Tensor:
        result = _linear(a, b.T)  # (m, n); b.T is a view, read in place by oneDNN
        return out.copy_(result) if out is not None else result

    backend = backend_for("nn", a, b, lambda: measure_paths("nn", a, b, blas, onednn))
    return onednn() if backend == ONEDNN else blas()


def addmm_t_(c: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``c += a.T @ b`` in place, for ``a`` ``(m, n_c)``, ``b`` ``(m, k_c)`` and ``c`` ``(n_c, k_c)``.

    Returns:
        ``c``.
    """
    scratch: list[Tensor] = []

    def blas_into(target: Tensor) -> Tensor:
        return target.addmm_(a.T, b)

    def onednn_into(target: Tensor) -> Tensor:
        return target.add_(_linear(a.T, b.T))  # (n_c, k_c)

    def measure() -> GemmChoice:
        # Measured on a copy: the real accumulator must be updated exactly once.
        scratch.append(c.clone())
        return measure_paths(
            "tn+", a, b, lambda: blas_into(scratch[0]), lambda: onednn_into(scratch[0])
        )

    backend = backend_for("tn+", a, b, measure)
    return onednn_into(c) if backend == ONEDNN else blas_into(c)
