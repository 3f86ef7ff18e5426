"""A stack of low-rank DCN cross layers, as ``tfrs.layers.feature_interaction.MultiLayerDCN``."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from torchrs.initializers import InitializerLike
from torchrs.layers._checks import check_input, check_positive_int
from torchrs.layers.dense import Dense, regularization_loss
from torchrs.regularizers import RegularizerLike

__all__ = ["MultiLayerDCN"]


class MultiLayerDCN(nn.Module):
    """``num_layers`` low-rank cross layers: ``x_{l+1} = x0 * (V_l U_l x_l + b_l) + x_l``.

    Mirrors ``tfrs.layers.feature_interaction.MultiLayerDCN`` (TFRS 0.7.7): same arguments and
    defaults; unlike :class:`~torchrs.layers.feature_interaction.Cross` there is no preactivation
    and no ``diag_scale``. Weights are created on the first call (or now, with ``input_dim``).
    Parameter names follow the TFRS attributes: ``_dense_u_kernels.{i}.weight`` (``U_l``,
    ``[projection_dim, input_dim]``), ``_dense_v_kernels.{i}.weight`` (``V_l``,
    ``[input_dim, projection_dim]``) and ``_dense_v_kernels.{i}.bias``: the transposes of the Keras
    kernels ``_dense_u_kernels[i].kernel`` / ``_dense_v_kernels[i].kernel``.

    Note: as in Keras, a *seeded* ``kernel_initializer`` gives every layer the same initial ``U``
    (and the same ``V``): Keras clones the seeded initializer per layer.

    Args:
        projection_dim: Rank of each ``W_l = U_l V_l``.
        num_layers: Number of stacked cross layers (0 returns ``x0``).
        use_bias: Whether each layer adds a bias.
        kernel_initializer: Keras initializer identifier for the kernels.
        bias_initializer: Keras initializer identifier for the biases.
        kernel_regularizer: Keras regularizer identifier for the kernels.
        bias_regularizer: Keras regularizer identifier for the biases.
        input_dim: (torchrs only) build the weights now for inputs with this last dimension.
        name: (torchrs only) Keras layer name, kept for reference.

    >>> layer = MultiLayerDCN(projection_dim=1, num_layers=1, use_bias=False,
    ...                       kernel_initializer="ones")
    >>> out = layer(torch.tensor([[0.1, 0.2, 0.3]]))
    >>> [round(v, 4) for v in out[0].tolist()]  # x0 * sum(x0) + x0 = x0 * 1.6
    [0.16, 0.32, 0.48]
    """

    def __init__(
        self,
        projection_dim: int | None = 1,
        num_layers: int | None = 3,
        use_bias: bool = True,
        kernel_initializer: InitializerLike = "truncated_normal",
        bias_initializer: InitializerLike = "zeros",
        kernel_regularizer: RegularizerLike = None,
        bias_regularizer: RegularizerLike = None,
        *,
        input_dim: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        check_positive_int(projection_dim, "projection_dim")
        check_positive_int(input_dim, "input_dim", allow_none=True)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int):
            raise TypeError(
                f"`num_layers` must be a non-negative int, got {num_layers!r} "
                f"({type(num_layers).__name__})."
            )
        if num_layers < 0:
            raise ValueError(
                f"`num_layers` must be a non-negative int, got num_layers={num_layers}."
            )
        self._projection_dim = cast(int, projection_dim)  # checked positive int above
        self._num_layers = num_layers
        self._use_bias = use_bias
        self.name = name
        self._dense_u_kernels = nn.ModuleList(
            Dense(
                projection_dim,
                use_bias=False,
                kernel_initializer=kernel_initializer,
                kernel_regularizer=kernel_regularizer,
            )
            for _ in range(num_layers)
        )
        self._dense_v_kernels = nn.ModuleList(
            Dense(
                None,
                use_bias=use_bias,
                kernel_initializer=kernel_initializer,
                bias_initializer=bias_initializer,
                kernel_regularizer=kernel_regularizer,
                bias_regularizer=bias_regularizer,
            )
            for _ in range(num_layers)
        )
        self._input_dim: int | None = None
        if input_dim is not None:
            self.build(input_dim)

    @property
    def input_dim(self) -> int | None:
        """The last dimension the layer was built for (``None`` until built)."""
        if self._num_layers == 0:
            return self._input_dim
        v = self._layers()[0][1]
        return v.out_features if v.built else None

    def _layers(self) -> list[tuple[Dense, Dense]]:
        """``(U_l, V_l)`` Dense pairs, typed."""
        pairs = zip(self._dense_u_kernels, self._dense_v_kernels, strict=True)
        return [(cast(Dense, u), cast(Dense, v)) for u, v in pairs]

    @property
    def built(self) -> bool:
        """Whether the weights exist (after the first call, ``build`` or ``load_state_dict``)."""
        return self.input_dim is not None

    def build(self, input_dim: int) -> None:
        """Creates the weights for inputs whose last dimension is ``input_dim`` (Keras ``build``)."""
        check_positive_int(input_dim, "input_dim")
        self._input_dim = input_dim
        for dense_u, dense_v in self._layers():
            dense_u.build(input_dim, self._projection_dim)
            dense_v.build(self._projection_dim, input_dim)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """Computes the multi-layer DCN feature cross.

        Args:
            x0: The input, ``(B, d)`` (any rank >= 2).

        Returns:
            The crosses, ``(B, d)``.

        Raises:
            ValueError: if ``x0`` has rank < 2 or the layer was built for another ``input_dim``.
        """
        check_input(x0, "x0", "MultiLayerDCN")
        if not self.built:
            self.build(int(x0.shape[-1]))
        elif x0.shape[-1] != self.input_dim:
            raise ValueError(
                f"This MultiLayerDCN was built for input_dim={self.input_dim}, got `x0` of shape "
                f"{tuple(x0.shape)}. Use a new layer for inputs of another size."
            )
        xl = x0
        for dense_u, dense_v in self._layers():
            prod_output = dense_v(dense_u(xl))  # (B, p) -> (B, d)
            xl = x0 * prod_output + xl  # (B, d)
        return xl

    def regularization_loss(self) -> torch.Tensor:
        """Sum of all kernel/bias regularization penalties (Keras ``sum(layer.losses)``)."""
        return regularization_loss(self)

    def extra_repr(self) -> str:
        return (
            f"input_dim={self.input_dim}, projection_dim={self._projection_dim}, "
            f"num_layers={self._num_layers}, use_bias={self._use_bias}"
        )
