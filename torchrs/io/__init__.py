"""Reading and writing torchrs checkpoint directories (what ``converters.tfrs_to_torch`` produces).

* :mod:`torchrs.io.spec` — what a directory holds (``torchrs.json`` as :class:`CheckpointSpec`, file names,
  format version, the optimizer prefix), defined once for the converter and the loader;
* :mod:`torchrs.io.registry` — the layer kinds :func:`load` rebuilds, each with the fields it checks;
* :mod:`torchrs.io.modules` — :class:`Tower`, :class:`Functional`, :class:`Container`;
* :mod:`torchrs.io.tensors` — vocabularies / string identifiers as bytes in ``model.safetensors``;
* :mod:`torchrs.io.optimizer` — Keras optimizer state into a ``torchrs.optim`` optimizer.

:func:`load` rebuilds a ready ``nn.Module``: a ``"tower"`` (:class:`Tower` for a Keras ``Sequential``,
:class:`Functional` for a functional model) mapping raw inputs to embeddings; an ``"index"`` (BruteForce or
Streaming) answering ``scores, ids = index(["42"], k=10)``; a ``"model"`` (:class:`Container` of the towers of a
``tfrs.Model``); or for ``"weights"`` (a converted TF checkpoint) the tensors by TF object path, as a dict.
No pickle anywhere; TensorFlow is never imported here.
"""

from torchrs.io.checkpoint import load, read_spec, save
from torchrs.io.modules import Container, Functional, Tower
from torchrs.io.optimizer import load_optimizer_state, structural_parameter_keys
from torchrs.io.registry import build_module
from torchrs.io.spec import (
    CONFIG_FILE,
    FORMAT_VERSION,
    OPTIMIZER_PREFIX,
    REPORT_FILE,
    WEIGHTS_FILE,
    CheckpointFormatError,
    CheckpointSpec,
    ModelKind,
)

__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "OPTIMIZER_PREFIX",
    "REPORT_FILE",
    "WEIGHTS_FILE",
    "CheckpointFormatError",
    "CheckpointSpec",
    "Container",
    "Functional",
    "ModelKind",
    "Tower",
    "build_module",
    "load",
    "load_optimizer_state",
    "read_spec",
    "save",
    "structural_parameter_keys",
]
