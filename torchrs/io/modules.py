"""The modules a converted Keras model is rebuilt into: :class:`Tower` (``Sequential``), :class:`Functional`
(a functional graph) and :class:`Container` (the towers of a ``tfrs.Model``). Keras masks travel as in Keras.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchrs._binding import bind_inputs
from torchrs.layers.merging import Concatenate, Merge
from torchrs.layers.pooling import GlobalAveragePooling1D
from torchrs.layers.recurrent import GRU

__all__ = ["Container", "Functional", "Tower", "is_ref"]


class Tower(nn.Sequential):
    """A converted Keras ``Sequential`` tower: raw inputs in, embeddings out.

    Keras masks travel as in Keras: an ``Embedding(mask_zero=True)`` marks the id-0 steps, Dense
    and Dropout pass the mask on, and a GRU skips the masked steps.

    >>> from torchrs.layers.embedding import Embedding
    >>> from torchrs.preprocessing import StringLookup
    >>> tower = Tower(StringLookup(vocabulary=["a", "b"]), Embedding(3, 2))
    >>> tower(["a", "zz"]).shape
    torch.Size([2, 2])
    """

    def forward(self, inputs: Any) -> Any:
        mask: torch.Tensor | None = None
        for layer in self:
            inputs, mask = _call_with_mask(layer, inputs, mask)
        return inputs


def _mask_passing(layer: nn.Module) -> bool:
    """Layers Keras lets a mask through unchanged (``supports_masking`` without ``compute_mask``)."""
    from torchrs.layers.dense import KerasDense

    return isinstance(layer, KerasDense | nn.Dropout)


def _merge_masks(masks: Any) -> torch.Tensor | None:
    """Keras merge layers' output mask: the AND of the masks present (None when none is)."""
    present = [m for m in (masks or []) if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = out & m
    return out


def _call_with_mask(layer: nn.Module, inputs: Any, mask: Any) -> tuple[Any, torch.Tensor | None]:
    """Calls ``layer`` as Keras does with the implicit mask; returns ``(outputs, output mask)``."""
    if isinstance(layer, GRU):
        outputs = layer(inputs, mask=mask)
        return outputs, (mask if layer.return_sequences else None)
    if isinstance(layer, GlobalAveragePooling1D):
        return layer(inputs, mask=mask), None  # Keras: the pooled output carries no mask
    outputs = layer(inputs)
    if isinstance(layer, nn.Embedding) and getattr(layer, "mask_zero", False):
        return outputs, torch.as_tensor(inputs, device=outputs.device) != 0  # Keras compute_mask
    if _mask_passing(layer):
        return outputs, mask
    if isinstance(layer, Merge | Concatenate) and isinstance(mask, list | tuple):
        if isinstance(layer, Concatenate) and layer.axis not in (-1, outputs.dim() - 1):
            if any(m is not None for m in mask):
                raise ValueError(
                    "A masked tensor reaches a Concatenate over a non-last axis; Keras's mask "
                    "arithmetic for that case is not rebuilt by torchrs."
                )
            return outputs, None
        return outputs, _merge_masks(mask)
    return outputs, None


def is_ref(value: Any) -> bool:
    """``[layer name, node index, tensor index]``: a reference to a tensor of a functional graph."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 3
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and isinstance(value[2], int)
    )


def _resolve(structure: Any, values: dict[tuple[str, int, int], Any]) -> Any:
    if is_ref(structure):
        return values.get((structure[0], structure[1], structure[2]))
    if isinstance(structure, dict):
        return {k: _resolve(v, values) for k, v in structure.items()}
    return [_resolve(v, values) for v in structure]


class Functional(nn.Module):
    """A converted Keras functional model (``tf.keras.Model(inputs, outputs)``): a graph of layers.

    ``layers`` holds one module per Keras layer, under the Keras layer name (made a valid module
    name); the graph is a list of layer calls in an order where every input is ready before use.
    A tensor is referenced as ``[layer, node_index, tensor_index]``: the ``tensor_index``-th output
    of the ``node_index``-th call of ``layer`` (an input is ``[input_name, 0, 0]``). Masks travel as
    in Keras (see :class:`Tower`).

    Call it as the Keras model: positionally (``model(user_ids, movie_ids)`` or
    ``model([user_ids, movie_ids])``), by input name (``model(user_id=..., movie_id=...)`` or a
    dict), or with the single input of a one-input model. One output comes back as a tensor, several
    as a list (or a dict, for a model built with a dict of outputs).

    Args:
        layers: ``{module name: module}``.
        nodes: the calls, in order: ``{"layer": module name, "node_index": i, "inbound": refs}``, where
            ``inbound`` is a ref, or a list / dict of refs (the layer's first call argument).
        inputs: the input names in call order, or ``{key: input name}`` for a dict-input model.
        outputs: a ref, or a list / dict of refs.

    >>> from torchrs.layers.dense import KerasDense
    >>> model = Functional(
    ...     {"a": KerasDense(2, input_dim=3), "b": KerasDense(2, input_dim=3), "sum": Merge("Add")},
    ...     [
    ...         {"layer": "a", "node_index": 0, "inbound": ["x", 0, 0]},
    ...         {"layer": "b", "node_index": 0, "inbound": ["y", 0, 0]},
    ...         {"layer": "sum", "node_index": 0, "inbound": [["a", 0, 0], ["b", 0, 0]]},
    ...     ],
    ...     inputs=["x", "y"],
    ...     outputs=["sum", 0, 0],
    ... )
    >>> model(torch.ones(4, 3), y=torch.ones(4, 3)).shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        layers: dict[str, nn.Module],
        nodes: list[dict[str, Any]],
        inputs: list[str] | dict[str, str],
        outputs: Any,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self.nodes = [
            {"layer": n["layer"], "node_index": int(n["node_index"]), "inbound": n["inbound"]}
            for n in nodes
        ]
        for node in self.nodes:
            if node["layer"] not in self.layers:
                raise ValueError(
                    f"Graph node calls layer {node['layer']!r}, which is not in layers."
                )
        self.input_keys = dict(inputs) if isinstance(inputs, dict) else None
        self.input_names = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
        self.outputs = outputs

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = self.input_names
        if len(args) == 1 and isinstance(args[0], dict) and not kwargs:
            kwargs, args = dict(args[0]), ()
        if self.input_keys is not None and kwargs:  # dict-input models: keys or input names
            kwargs = {self.input_keys.get(k, k): v for k, v in kwargs.items()}
        if (
            len(args) == 1
            and len(names) > 1
            and isinstance(args[0], list | tuple)
            and len(args[0]) == len(names)
        ):
            args = tuple(args[0])
        return bind_inputs(names, args, kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        bound = self._bind(args, kwargs)
        values: dict[tuple[str, int, int], Any] = {(n, 0, 0): v for n, v in bound.items()}
        masks: dict[tuple[str, int, int], Any] = {}
        for node in self.nodes:
            inputs = _resolve(node["inbound"], values)
            mask = _resolve(node["inbound"], masks)
            outputs, out_mask = _call_with_mask(self.layers[node["layer"]], inputs, mask)
            for index, value in enumerate(outputs if isinstance(outputs, tuple) else (outputs,)):
                values[(node["layer"], node["node_index"], index)] = value
                masks[(node["layer"], node["node_index"], index)] = out_mask
        return _resolve(self.outputs, values)


class Container(nn.Module):
    """The converted parts of a ``tfrs.Model`` (``user_model``, ``movie_model``...) as attributes.

    TFRS models define their own ``call`` / ``compute_loss``, which a converter cannot rebuild:
    use the towers directly (``model.user_model(["42"])``) or write the torchrs model and call
    ``converters.tfrs_to_torch.load_weights``.
    """

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "A converted tfrs.Model has no forward: call its towers "
            f"({', '.join(name for name, _ in self.named_children())}) directly."
        )
