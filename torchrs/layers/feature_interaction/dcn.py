"""The ``Cross`` layer of Deep & Cross Network (DCN), as ``tfrs.layers.feature_interaction.Cross``."""

from __future__ import annotations

import torch
from torch import nn

from torchrs.activations import ActivationLike
from torchrs.initializers import InitializerLike
from torchrs.layers._checks import check_input, check_positive_int
from torchrs.layers.dense import Dense, regularization_loss
from torchrs.regularizers import RegularizerLike

__all__ = ["Cross", "cross"]


def cross(
    x0: torch.Tensor, x: torch.Tensor, prod_output: torch.Tensor, diag_scale: float = 0.0
) -> torch.Tensor:
    """The DCN cross: ``x0 * (prod_output + diag_scale * x) + x``.

    Args:
        x0: The base features, ``(B, d)``.
        x: The previous layer's output, ``(B, d)``.
        prod_output: ``W x + b`` (full or low rank, after the optional preactivation), ``(B, d)``.
        diag_scale: Added to the diagonal of ``W``; TFRS skips the term when it is 0.

    Returns:
        ``x_{i+1}``, ``(B, d)``.

    >>> cross(torch.tensor([[2.0]]), torch.tensor([[3.0]]), torch.tensor([[0.5]]), 1.0)
    tensor([[10.]])
    """
    if diag_scale:  # TFRS tests `if self._diag_scale:`, so 0.0 adds nothing (not even 0 * x).
        prod_output = prod_output + diag_scale * x  # (B, d)
    return x0 * prod_output + x  # (B, d)


class Cross(nn.Module):
    """Cross layer of Deep & Cross Network: ``x_{i+1} = x0 * (W x_i + b + diag_scale * x_i) + x_i``.

    Mirrors ``tfrs.layers.feature_interaction.Cross`` (TFRS 0.7.7): same arguments and defaults, the
    same Keras initializers (kernel ``truncated_normal`` = Keras 2 ``TruncatedNormal(stddev=0.05)``,
    bias zeros) and regularizers, and ``W`` either full rank or low rank ``U V``.

    Like Keras, the weights are created on the first call, sized from ``x0``'s last dimension; pass
    ``input_dim`` to create them at construction instead. Parameter names follow the TFRS attributes
    (Keras variable names carry a global counter, ``cross/dense_3/kernel:0``, so map by attribute or
    checkpoint object path, not by variable name). Keras kernels are ``[in, out]``, torch weights
    ``[out, in]``:

    ==============================  ===================================
    TFRS attribute                  torch parameter
    ==============================  ===================================
    ``_dense.kernel`` (full rank)   ``_dense.weight`` (transposed)
    ``_dense.bias``                 ``_dense.bias``
    ``_dense_u.kernel`` (``U``)     ``_dense_u.weight`` (transposed)
    ``_dense_v.kernel`` (``V``)     ``_dense_v.weight`` (transposed)
    ``_dense_v.bias``               ``_dense_v.bias``
    ==============================  ===================================

    Args:
        projection_dim: ``None`` for a full ``input_dim x input_dim`` kernel, else the rank of the
            low-rank kernel ``W = U V`` (``U`` is ``input_dim x projection_dim``). TFRS advises
            ``projection_dim < input_dim / 2``; ``input_dim / 4`` usually keeps the full-rank accuracy.
        diag_scale: Non-negative float added to the diagonal of ``W``: ``W + diag_scale * I``.
        use_bias: Whether to add a bias term.
        preactivation: Keras activation identifier (or callable) applied to ``W x + b`` before the
            multiplication with ``x0``.
        kernel_initializer: Keras initializer identifier for the kernel(s).
        bias_initializer: Keras initializer identifier for the bias.
        kernel_regularizer: Keras regularizer identifier for the kernel(s) (``U`` and ``V`` in the
            low-rank case); see :meth:`regularization_loss`.
        bias_regularizer: Keras regularizer identifier for the bias.
        input_dim: (torchrs only) build the weights now for inputs with this last dimension.
        name: (torchrs only) Keras layer name, kept for reference.

    Shapes:
        ``x0`` and ``x``: ``(batch_size, input_dim)`` (any rank >= 2, as a Keras Dense accepts);
        output: same shape.

    >>> layer = Cross(kernel_initializer="ones")
    >>> out = layer(torch.tensor([[0.1, 0.2, 0.3]]), torch.tensor([[0.4, 0.5, 0.6]]))
    >>> [round(v, 4) for v in out[0].tolist()]  # x0 * (sum(x) * 1) + x = x0 * 1.5 + x
    [0.55, 0.8, 1.05]
    >>> sorted(layer.state_dict())
    ['_dense.bias', '_dense.weight']
    """

    def __init__(
        self,
        projection_dim: int | None = None,
        diag_scale: float | None = 0.0,
        use_bias: bool = True,
        preactivation: ActivationLike = None,
        kernel_initializer: InitializerLike = "truncated_normal",
        bias_initializer: InitializerLike = "zeros",
        kernel_regularizer: RegularizerLike = None,
        bias_regularizer: RegularizerLike = None,
        *,
        input_dim: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        check_positive_int(projection_dim, "projection_dim", allow_none=True)
        check_positive_int(input_dim, "input_dim", allow_none=True)
        if isinstance(diag_scale, bool) or not isinstance(diag_scale, (int, float)):
            raise TypeError(
                f"`diag_scale` must be a non-negative float, got {diag_scale!r} "
                f"({type(diag_scale).__name__})."
            )
        if diag_scale < 0:
            raise ValueError(
                f"`diag_scale` should be non-negative. Got `diag_scale` = {diag_scale}"
            )
        self._projection_dim = projection_dim
        self._diag_scale = diag_scale
        self._use_bias = use_bias
        self.name = name
        if projection_dim is None:
            self._dense = Dense(
                None,
                activation=preactivation,
                use_bias=use_bias,
                kernel_initializer=kernel_initializer,
                bias_initializer=bias_initializer,
                kernel_regularizer=kernel_regularizer,
                bias_regularizer=bias_regularizer,
            )
        else:
            self._dense_u = Dense(
                projection_dim,
                use_bias=False,
                kernel_initializer=kernel_initializer,
                kernel_regularizer=kernel_regularizer,
            )
            self._dense_v = Dense(
                None,
                activation=preactivation,
                use_bias=use_bias,
                kernel_initializer=kernel_initializer,
                bias_initializer=bias_initializer,
                kernel_regularizer=kernel_regularizer,
                bias_regularizer=bias_regularizer,
            )
        if input_dim is not None:
            self.build(input_dim)

    @property
    def built(self) -> bool:
        """Whether the weights exist (after the first call, ``build`` or ``load_state_dict``)."""
        last = self._dense if self._projection_dim is None else self._dense_v
        return last.built

    @property
    def input_dim(self) -> int | None:
        """The last dimension the layer was built for (``None`` until built)."""
        if not self.built:
            return None
        last = self._dense if self._projection_dim is None else self._dense_v
        return last.out_features

    def build(self, input_dim: int) -> None:
        """Creates the weights for inputs whose last dimension is ``input_dim`` (Keras ``build``)."""
        check_positive_int(input_dim, "input_dim")
        if self._projection_dim is None:
            self._dense.build(input_dim, input_dim)
        else:
            self._dense_u.build(input_dim, self._projection_dim)
            self._dense_v.build(self._projection_dim, input_dim)

    def forward(self, x0: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Computes the feature cross.

        Args:
            x0: The base input, ``(B, d)``.
            x: Optional output of the previous cross layer, ``(B, d)``; ``None`` crosses ``x0`` with
                itself.

        Returns:
            The crosses, ``(B, d)``.

        Raises:
            ValueError: if an input has rank < 2, if ``x0`` and ``x`` have different last dimensions,
                or if the layer was built for another ``input_dim``.
        """
        check_input(x0, "x0", "Cross")
        if x is not None:
            check_input(x, "x", "Cross")
        # Keras's layer autocast: floating inputs of another dtype become the layer's (e.g. float64 -> float32).
        dtype = (self._dense if self._projection_dim is None else self._dense_u).weight.dtype
        x0 = x0.to(dtype) if x0.is_floating_point() and x0.dtype != dtype else x0
        if x is None:
            x = x0
        elif x.is_floating_point() and x.dtype != dtype:
            x = x.to(dtype)
        if x0.shape[-1] != x.shape[-1]:
            raise ValueError(
                f"`x0` and `x` dimension mismatch! Got `x0` of shape {tuple(x0.shape)} and `x` of "
                f"shape {tuple(x.shape)}; Cross needs the same last dimension for both."
            )
        if not self.built:
            self.build(int(x0.shape[-1]))
        elif x0.shape[-1] != self.input_dim:
            raise ValueError(
                f"This Cross layer was built for input_dim={self.input_dim}, got `x0` of shape "
                f"{tuple(x0.shape)}. Use a new layer for inputs of another size."
            )
        if self._projection_dim is None:
            prod_output = self._dense(x)  # (B, d)
        else:
            prod_output = self._dense_v(self._dense_u(x))  # (B, p) -> (B, d)
        return cross(x0, x, prod_output, self._diag_scale)  # (B, d)

    def regularization_loss(self) -> torch.Tensor:
        """Sum of the kernel/bias regularization penalties, as Keras' ``sum(layer.losses)``.

        With ``kernel_regularizer="l2"`` this is ``0.01 * sum(W ** 2)`` (``U`` and ``V`` both count in
        the low-rank case); 0 when there are no regularizers or the layer is not built.
        """
        return regularization_loss(self)

    def extra_repr(self) -> str:
        return (
            f"input_dim={self.input_dim}, projection_dim={self._projection_dim}, "
            f"diag_scale={self._diag_scale}, use_bias={self._use_bias}"
        )
