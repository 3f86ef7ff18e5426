"""Deliberately broken torchrs variants: each must make the harness fail (the harness's teeth).

Each `parity.harness.Mutation` changes only the torchrs side of a run, through the harness's hooks; no library
code is edited. `MUTATIONS` break the computation and must fail lock-step parity. `INIT_MUTATIONS` break only the
initialisation: lock-step mode overwrites it with TF's initial weights and cannot see them, so they are what
independent mode (`parity.independent`) must catch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import torch
from torch import nn

import torchrs as trs
from parity.scenarios import basic_ranking, basic_retrieval, dcn, multitask, sequential_retrieval


def _exchange_first_gates(tensor: torch.Tensor, units: int) -> torch.Tensor:
    """Swaps the first two gate blocks of a torch GRU tensor (``(3 * units, ...)``): (r, z, n) <-> (z, r, n)."""
    r, z, n = tensor.split(units, dim=0)
    return torch.cat([z, r, n], dim=0)  # (3 * units, ...)


class _KerasGateOrderGRU(nn.Module):
    """Runs a ``torch.nn.GRU`` with the r and z blocks of every weight exchanged: what a converter that kept
    Keras's (z, r, h) gate order (both ways) gives.

    The stored parameters stay in torch order (the harness copies the correctly converted TF weights into
    them); the swap happens on every forward pass, so the effective weights are the unswapped Keras blocks
    throughout training and Adagrad (element-wise) follows the broken model's trajectory exactly.
    """

    def __init__(self, gru: nn.GRU) -> None:
        super().__init__()
        self.gru = gru

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        units = self.gru.hidden_size
        swapped = {
            name: _exchange_first_gates(param, units) for name, param in self.gru.named_parameters()
        }
        _, last = torch.func.functional_call(self.gru, swapped, (sequences,))  # (1, B, units)
        return last[0]  # (B, units)


class _BiasRowsSwappedGRU(nn.Module):
    """A ``torch.nn.GRU`` whose ``bias_ih_l0`` / ``bias_hh_l0`` names point at each other's tensor: Keras's
    ``bias`` (2, 3 * units) split the wrong way round, on the way in and on the way out.

    For z and r only the sum of the two biases matters; for the candidate gate (``reset_after=True``) the
    recurrent bias sits inside ``r * (U h + b_hh)``, so the split matters once the biases are not zero.
    """

    def __init__(self, gru: nn.GRU) -> None:
        super().__init__()
        self.inner = gru

    weight_ih_l0 = property(lambda self: self.inner.weight_ih_l0)
    weight_hh_l0 = property(lambda self: self.inner.weight_hh_l0)
    bias_ih_l0 = property(lambda self: self.inner.bias_hh_l0)
    bias_hh_l0 = property(lambda self: self.inner.bias_ih_l0)

    def forward(self, sequences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner(sequences)  # (B, T, units), (1, B, units)


class _OffByOneLookup(nn.Module):
    """Wraps a lookup and shifts every index up by one (clamped into the table): a classic OOV-slot bug."""

    def __init__(self, lookup: nn.Module, table_size: int) -> None:
        super().__init__()
        self.lookup = lookup
        self.table_size = table_size

    def forward(self, inputs: Any) -> torch.Tensor:
        return torch.clamp(self.lookup(inputs) + 1, max=self.table_size - 1)  # (B,)


def _mean_reduction(model: nn.Module) -> None:
    # The retrieval loss averaged over the batch instead of TFRS's SUM.
    name = "task" if hasattr(model, "task") else "retrieval_task"  # multitask: retrieval_task
    task = trs.tasks.Retrieval(
        loss=trs.losses.CategoricalCrossentropy(from_logits=True, reduction="sum_over_batch_size"),
        metrics=list(getattr(model, name).factorized_metrics),
    )
    setattr(model, name, task)


def _oov_off_by_one(model: nn.Module) -> None:
    towers: list[nn.Sequential]  # each nn.Sequential(lookup, embedding)
    if isinstance(model, dcn.TorchDCN):
        # One tower per feature, in an nn.ModuleDict, which types its values as plain nn.Module.
        towers = [cast(nn.Sequential, tower) for tower in model._embeddings.values()]
    elif isinstance(model, (basic_retrieval.TorchMovielensModel, multitask.TorchMultitaskModel)):
        towers = [model.user_model, model.movie_model]
    elif isinstance(model, basic_ranking.TorchMovielensRankingModel):
        towers = [model.ranking_model.user_embeddings, model.ranking_model.movie_embeddings]
    else:
        raise TypeError(
            "oov_off_by_one patches the basic_retrieval, basic_ranking, dcn and multitask models, "
            f"not {type(model).__name__}."
        )
    for tower in towers:
        tower[0] = _OffByOneLookup(tower[0], tower.get_parameter("1.weight").shape[0])


def _query_tower(model: nn.Module) -> tuple[nn.Sequential, sequential_retrieval.LastStateGRU]:
    """sequential_retrieval's query tower (lookup, embedding, LastStateGRU) and its LastStateGRU."""
    if not isinstance(model, sequential_retrieval.TorchSequentialModel):
        raise TypeError(
            f"The GRU mutations patch the sequential_retrieval model, not {type(model).__name__}."
        )
    tower = model._query_model
    # nn.Sequential types its items as plain nn.Module.
    return tower, cast(sequential_retrieval.LastStateGRU, tower[2])


def _gru_keras_gate_order(model: nn.Module) -> None:
    tower, layer = _query_tower(model)
    tower[2] = _KerasGateOrderGRU(layer.gru)


def _gru_bias_rows_swapped(model: nn.Module) -> None:
    _, layer = _query_tower(model)
    # A look-alike in place of the nn.GRU is the bug injected, so the declared type cannot hold.
    layer.gru = _BiasRowsSwappedGRU(layer.gru)  # type: ignore[assignment]


@torch.no_grad()
def _torch_embedding_init(model: nn.Module) -> None:
    # torch.nn.Embedding's own N(0, 1) instead of Keras's uniform(-0.05, 0.05): 35x the scale.
    for module in model.modules():
        if isinstance(module, trs.layers.Embedding):
            nn.init.normal_(module.weight)


@torch.no_grad()
def _torch_dense_init(model: nn.Module) -> None:
    # torch.nn.Linear's own reset_parameters (kaiming_uniform(a=sqrt(5)) kernel, uniform(+-1/sqrt(fan_in))
    # bias) instead of Keras's glorot_uniform kernel and zero bias.
    for module in model.modules():
        if isinstance(module, trs.layers.Dense) and module.built:
            nn.Linear.reset_parameters(module)


def _torch_adagrad(params: Iterable[nn.Parameter], learning_rate: float) -> torch.optim.Optimizer:
    # torch's defaults: accumulator starts at 0 (Keras: 0.1) and eps is added outside the sqrt.
    return torch.optim.Adagrad(params, lr=learning_rate)


def _torch_adam(params: Iterable[nn.Parameter], learning_rate: float) -> torch.optim.Optimizer:
    # torch's defaults: eps 1e-8 added to the bias-corrected sqrt(v) (Keras: 1e-7, added to sqrt(v) with the
    # bias correction folded into the learning rate).
    return torch.optim.Adam(params, lr=learning_rate)


def _build() -> dict[str, Any]:
    from parity.harness import Mutation

    return {
        m.name: m
        for m in (
            Mutation(
                "mean_reduction",
                "retrieval loss reduced by mean over the batch instead of sum",
                patch=_mean_reduction,
            ),
            Mutation(
                "untransposed_dense",
                "Keras Dense kernels [in, out] reshaped into weight [out, in] instead of transposed",
                transpose_kernels=False,
            ),
            Mutation(
                "oov_off_by_one",
                "string lookups return index + 1 (as if a mask slot preceded the OOV slot)",
                patch=_oov_off_by_one,
            ),
            Mutation(
                "gru_keras_gate_order",
                "GRU weights kept in Keras's (z, r, h) gate order instead of torch's (r, z, n)",
                patch=_gru_keras_gate_order,
            ),
            Mutation(
                "gru_bias_rows_swapped",
                "Keras GRU bias (2, 3 * units) split the wrong way: input row -> bias_hh, recurrent -> bias_ih",
                patch=_gru_bias_rows_swapped,
            ),
            Mutation(
                "torch_adagrad",
                "torch.optim.Adagrad (accumulator 0, eps outside the sqrt) instead of torchrs.optim.Adagrad",
                optimizer=_torch_adagrad,
            ),
            Mutation(
                "torch_adam",
                "torch.optim.Adam (eps 1e-8 on the bias-corrected sqrt(v)) instead of torchrs.optim.Adam",
                optimizer=_torch_adam,
            ),
        )
    }


MUTATIONS = _build()


def _build_init() -> dict[str, Any]:
    from parity.harness import Mutation

    return {
        m.name: m
        for m in (
            Mutation(
                "torch_embedding_init",
                "embedding tables drawn from torch's N(0, 1) instead of Keras's uniform(-0.05, 0.05)",
                patch=_torch_embedding_init,
            ),
            Mutation(
                "torch_dense_init",
                "Dense layers initialised as torch.nn.Linear (kaiming_uniform(a=sqrt(5)), uniform bias) "
                "instead of glorot_uniform and zeros",
                patch=_torch_dense_init,
            ),
        )
    }


INIT_MUTATIONS = _build_init()
