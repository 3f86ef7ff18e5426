"""``--compile``: a served model's tensor part through ``torch.compile``, its lookups left on the host.

What a converted model computes splits in two. Lookups (``StringLookup`` / ``IntegerLookup`` through
Arrow's hash tables, ``Hashing``'s FarmHash over bytes, ``TextVectorization``) and an index's
identifier lookup (positions -> the identifiers' bytes) work on NumPy / Arrow data that no compiler
can take; embeddings, dense layers, merges, the top-k scoring are tensor code. :func:`compile_model`
keeps the first in Python (each such call is :func:`torch.compiler.disable`-d: TorchDynamo steps
around it) and compiles the rest with TorchInductor, one graph per stretch of tensor code.

Shapes are dynamic in the batch axis (``dynamic=True``), so every batch size the batcher forms runs
the same compiled code; TorchDynamo specializes a batch of 1 apart, which is why :func:`warmup_rows`
warms up with 1 and 2 rows: both graphs are compiled before the version is ``AVAILABLE``.

The trade-off: compiling takes seconds to minutes per signature (longer on a loaded machine), once
per version, paid in warm-up; in return the tensor stretches skip Python's per-layer dispatch and
fuse elementwise work, while every graph break (each lookup, the top-k's data-dependent tie check)
adds TorchDynamo's guard checks. At the tutorials' sizes the second wins: compiled calls measured
slower than eager ones (``benchmarks/serve_compile.py``), so eager is the default. Results are the
eager ones up to float rounding (fused kernels may sum in another order); lookups and top-k
positions are computed as eagerly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchrs.layers.factorized_top_k import TopK
from torchrs.preprocessing.hashing import Hashing
from torchrs.preprocessing.integer_lookup import IntegerLookup
from torchrs.preprocessing.string_lookup import StringLookup
from torchrs.preprocessing.text_vectorization import TextVectorization

# Layers whose work is host-side data structures (Arrow tables, bytes, hashing), not tensor code.
HOST_LAYERS: tuple[type[nn.Module], ...] = (StringLookup, IntegerLookup, Hashing, TextVectorization)
# An index's method mapping top-k positions to identifiers (a NumPy object array for bytes ids).
INDEX_HOST_METHODS = ("_lookup",)
# Batch sizes the warm-up runs with --compile: 1 (TorchDynamo's own specialization) and any larger.
WARMUP_ROWS = (1, 2)
# Distinct models (versions x signatures) one process may compile before TorchDynamo falls back to
# eager for further ones: its default cache of 8 entries per code object is too small for a
# tfrs.Model's towers over a few hot-swapped versions.
CACHE_SIZE_LIMIT = 64


def _host(module: nn.Module) -> None:
    """Leaves ``module``'s host-side calls to Python (TorchDynamo graph-breaks around them)."""
    for sub in module.modules():
        if isinstance(sub, HOST_LAYERS):
            sub.forward = torch.compiler.disable(sub.forward)  # type: ignore[method-assign]
        if isinstance(sub, TopK):
            for name in INDEX_HOST_METHODS:
                if hasattr(sub, name):
                    setattr(sub, name, torch.compiler.disable(getattr(sub, name)))


def compile_model(module: nn.Module) -> Any:
    """``module``'s forward compiled, its lookups left eager; call it as ``module``.

    Args:
        module: a loaded torchrs model (a tower, a functional model, an index).

    Returns:
        The compiled callable (compilation happens on its first calls: warm it up).

    >>> from torchrs.layers.embedding import Embedding
    >>> from torchrs.preprocessing import StringLookup
    >>> tower = torch.nn.Sequential(StringLookup(vocabulary=["a", "b"]), Embedding(3, 2))
    >>> compiled = compile_model(tower)
    >>> callable(compiled)
    True
    """
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(
        torch._dynamo.config.cache_size_limit, CACHE_SIZE_LIMIT
    )
    _host(module)
    return torch.compile(module, dynamic=True)
