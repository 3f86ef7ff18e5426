"""``tf.keras.layers.Embedding`` in torch: Keras's initializer and regularizer on top of ``nn.Embedding``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from torchrs.initializers import InitializerLike, get_initializer
from torchrs.layers._checks import check_positive_int
from torchrs.regularizers import RegularizerLike, get_regularizer


class Embedding(nn.Embedding):
    """Embedding table with Keras 2 defaults: ``uniform(-0.05, 0.05)`` initialisation.

    ``torch.nn.Embedding`` draws from N(0, 1); a TFRS model trained from Keras's initialisation learns at a
    different pace, so the tutorials' numbers need this default. The table has the same ``(input_dim,
    output_dim)`` layout as the Keras ``embeddings`` variable.

    Args:
        input_dim: vocabulary size (``len(vocabulary) + 1`` with one OOV index).
        output_dim: embedding size.
        embeddings_initializer: Keras initializer identifier (default ``"uniform"``).
        embeddings_regularizer: Keras regularizer identifier, added to the model's regularization loss.
        mask_zero: accepted for Keras compatibility; index 0 is still embedded (masks are not propagated).
        sparse: produce sparse gradients (``torchrs.optim.Adagrad`` supports them).

    >>> layer = Embedding(10, 4)
    >>> bool(layer.weight.abs().max() <= 0.05)
    True
    >>> layer(torch.tensor([1, 2])).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: InitializerLike = "uniform",
        embeddings_regularizer: RegularizerLike = None,
        mask_zero: bool = False,
        sparse: bool = False,
    ) -> None:
        check_positive_int(input_dim, "input_dim")
        check_positive_int(output_dim, "output_dim")
        super().__init__(input_dim, output_dim, sparse=sparse)
        self.embeddings_initializer = get_initializer(embeddings_initializer)
        self.embeddings_regularizer = get_regularizer(embeddings_regularizer)
        self.mask_zero = mask_zero
        with torch.no_grad():
            if self.embeddings_initializer is not None:
                self.weight.copy_(self.embeddings_initializer((input_dim, output_dim)))

    def forward(self, inputs: Tensor) -> Tensor:
        inputs = torch.as_tensor(inputs, device=self.weight.device)
        if inputs.dtype.is_floating_point:
            inputs = inputs.long()  # Keras casts float indices to int
        return super().forward(inputs)

    def regularization_loss(self) -> Tensor:
        """The Keras penalty of the table (0 without a regularizer)."""
        if self.embeddings_regularizer is None:
            return torch.zeros((), device=self.weight.device)
        return self.embeddings_regularizer(self.weight)
