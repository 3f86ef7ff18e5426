"""TF function graphs translated into PyTorch (what ``tf.saved_model.save`` exports keep).

A SavedModel written by ``tf.saved_model.save`` keeps no Keras configs, only variables and the traced
functions TF Serving runs. ``python -m converters.tfrs_to_torch`` translates those functions into the
declarative :class:`~torchrs.graph.ir.Graph` (ops from the allow-list :data:`~torchrs.graph.ops.OPS`,
stored as JSON next to the tensors); :class:`~torchrs.graph.module.TranslatedSavedModel` makes it a
``torch.fx.GraphModule`` once, at load time. Nothing in the file is imported or executed.
"""

from torchrs.graph.ir import Graph, Node, Output, Ref, TensorSpec
from torchrs.graph.module import HashTable, Signature, TranslatedSavedModel
from torchrs.graph.ops import OPS, UnsupportedGraphError

__all__ = [
    "OPS",
    "Graph",
    "HashTable",
    "Node",
    "Output",
    "Ref",
    "Signature",
    "TensorSpec",
    "TranslatedSavedModel",
    "UnsupportedGraphError",
]
