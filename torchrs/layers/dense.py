"""``tf.keras.layers.Dense`` in torch, built on the first call like Keras (``trs.layers.Dense``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parameter import UninitializedParameter, is_lazy

from torchrs.activations import ActivationLike, get_activation, linear
from torchrs.functional.dense import dense, may_fuse
from torchrs.initializers import GlorotUniform, InitializerLike, get_initializer
from torchrs.layers._checks import check_positive_int
from torchrs.regularizers import RegularizerLike, get_regularizer

__all__ = ["Dense", "KerasDense", "regularization_loss"]


def _initializer_or_default(identifier: InitializerLike) -> Callable[..., torch.Tensor]:
    """Keras ``add_weight`` falls back to ``glorot_uniform`` for a ``None`` float initializer (for a
    Dense bias too, even though the Dense default is ``"zeros"``)."""
    initializer = get_initializer(identifier)
    return GlorotUniform() if initializer is None else initializer


_UNFUSED = "unfused"


def _fused_activation(fn: Any) -> str | None:
    """The name ``torchrs.functional.dense`` fuses ``fn`` under (None: linear), or ``_UNFUSED``."""
    if fn is torch.relu:
        return "relu"
    if fn is linear:
        return None
    return _UNFUSED


class Dense(nn.Module):
    """``tf.keras.layers.Dense`` in torch: ``activation(x @ kernel + bias)``, built on first call.

    ``weight`` is ``[out, in]`` like ``nn.Linear`` (the Keras kernel is ``weight.T``). Until the layer is
    built its parameters are ``UninitializedParameter``: ``state_dict()`` already lists their names and
    ``load_state_dict`` materialises them with the incoming shapes, so TF weights can be loaded before
    any forward pass. ``units=None`` leaves the output size to the owner, which then calls
    :meth:`build` (``Cross`` sizes its kernel from ``x0``, not from its own input).

    Args:
        units: Output size, or ``None`` when the owner builds the layer.
        activation: Keras activation identifier applied after the bias (``None``: linear).
        use_bias: Whether to add a bias.
        kernel_initializer: Keras initializer identifier for the ``[in, out]`` kernel.
        bias_initializer: Keras initializer identifier for the bias.
        kernel_regularizer: Keras regularizer identifier for the kernel.
        bias_regularizer: Keras regularizer identifier for the bias.
        input_dim: When given, build immediately with this many input features.

    >>> dense = Dense(2, kernel_initializer="ones")
    >>> dense(torch.tensor([[1.0, 2.0, 3.0]])).tolist()
    [[6.0, 6.0]]
    >>> dense.weight.shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        units: int | None,
        activation: ActivationLike = None,
        use_bias: bool = True,
        kernel_initializer: InitializerLike = "glorot_uniform",
        bias_initializer: InitializerLike = "zeros",
        kernel_regularizer: RegularizerLike = None,
        bias_regularizer: RegularizerLike = None,
        *,
        input_dim: int | None = None,
    ) -> None:
        super().__init__()
        check_positive_int(units, "units", allow_none=True)
        check_positive_int(input_dim, "input_dim", allow_none=True)
        self.units = units
        self.activation = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializer_or_default(kernel_initializer)
        self.bias_initializer = _initializer_or_default(bias_initializer)
        self.kernel_regularizer = get_regularizer(kernel_regularizer)
        self.bias_regularizer = get_regularizer(bias_regularizer)
        self.weight = UninitializedParameter()
        self.bias = UninitializedParameter() if self.use_bias else None
        if input_dim is not None:
            if units is None:
                raise ValueError("Dense(units=None) cannot be built from `input_dim` alone.")
            self.build(input_dim, units)

    @property
    def built(self) -> bool:
        """Whether the parameters exist (built, or loaded from a state dict)."""
        return not is_lazy(self.weight)

    @property
    def in_features(self) -> int | None:
        return None if not self.built else int(self.weight.shape[1])

    @property
    def out_features(self) -> int | None:
        return self.units if not self.built else int(self.weight.shape[0])

    @torch.no_grad()
    def build(self, in_features: int, out_features: int) -> None:
        """Creates and initialises ``weight [out, in]`` and ``bias [out]`` (Keras' ``build``).

        Parameters keep the dtype/device the module was moved to (``.double()``, ``.to(device)``).
        """
        if self.built:
            if (self.out_features, self.in_features) != (out_features, in_features):
                raise ValueError(
                    f"Layer already built with weight shape {tuple(self.weight.shape)} (out, in); "
                    f"cannot rebuild it as ({out_features}, {in_features})."
                )
            return
        self.weight.materialize((out_features, in_features))
        kernel = self.kernel_initializer((in_features, out_features), dtype=self.weight.dtype)
        self.weight.copy_(kernel.T)  # Keras kernel [in, out] -> torch weight [out, in]
        if self.bias is not None:
            self.bias.materialize((out_features,))
            self.bias.copy_(self.bias_initializer((out_features,), dtype=self.bias.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``activation(x @ weight.T + bias)``: ``(..., in) -> (..., out)``.

        Like Keras's ``Dense.call``, inputs of another dtype (a float64 or int array) are cast to the layer's.
        """
        x = torch.as_tensor(x, device=self.weight.device)
        if x.dtype != self.weight.dtype:
            x = x.to(self.weight.dtype)  # Keras: tf.cast(inputs, self.compute_dtype)
        if not self.built:
            if self.units is None:
                raise RuntimeError("Dense(units=None) must be built by its owner before use.")
            self.build(int(x.shape[-1]), self.units)
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"Dense layer expects inputs with last dimension {self.in_features} (weight shape "
                f"{tuple(self.weight.shape)}), got input of shape {tuple(x.shape)}."
            )
        fused = _fused_activation(self.activation)
        if fused != _UNFUSED and not torch.compiler.is_compiling() and may_fuse(x, self.weight):
            # ReLU / linear: oneDNN's fused kernel where it measured faster for the shape, else linear +
            # in-place ReLU (torchrs.functional.dense). Under torch.compile inductor fuses by itself.
            return dense(x, self.weight, self.bias, fused)  # (..., out)
        out = F.linear(x, self.weight, self.bias)  # (..., out), a fresh tensor
        return torch.relu_(out) if self.activation is torch.relu else self.activation(out)

    def regularization_loss(self) -> torch.Tensor:
        """Sum of the kernel and bias penalties (Keras ``sum(layer.losses)``); 0 if none or unbuilt."""
        if not self.built:
            return torch.zeros((), dtype=self.weight.dtype, device=self.weight.device)
        loss = self.weight.new_zeros(())
        if self.kernel_regularizer is not None:
            loss = loss + self.kernel_regularizer(self.weight.T)  # Keras kernel layout [in, out]
        if self.bias is not None and self.bias_regularizer is not None:
            loss = loss + self.bias_regularizer(self.bias)
        return loss

    def _save_to_state_dict(
        self, destination: dict[str, Any], prefix: str, keep_vars: bool
    ) -> None:
        # Unbuilt parameters are listed as they are (they cannot be detached), as LazyModuleMixin does.
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = (
                    param if (keep_vars or is_lazy(param)) else param.detach()
                )

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Loading into an unbuilt layer builds it with the incoming shapes (no initializer call).
        for name, param in self._parameters.items():
            key = prefix + name
            if param is not None and is_lazy(param) and key in state_dict:
                incoming = state_dict[key]
                if not is_lazy(incoming):
                    with torch.no_grad():
                        param.materialize(tuple(incoming.shape))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, use_bias={self.use_bias}"


#: The name this class had before it got its own module (still imported by converters and tests).
KerasDense = Dense


def regularization_loss(module: nn.Module) -> torch.Tensor:
    """Sum of the Keras regularization penalties of every :class:`Dense` inside ``module``."""
    losses = [m.regularization_loss() for m in module.modules() if isinstance(m, Dense)]
    if not losses:
        return torch.zeros(())
    return torch.stack(losses).sum()
