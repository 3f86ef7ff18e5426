"""``parity validate CHECKPOINT TORCHRS_DIR``: a TF checkpoint against its conversion, weight by weight.

A TF checkpoint (``save_weights``, ``tf.train.Checkpoint``, ``ModelCheckpoint``; its prefix or its
directory) holds variables and no computation: there is no TF graph to run, so no forward pass, no
top-K and no vocabulary can be compared (checkpoints hold no vocabularies). What can be compared is
every weight, exactly, through the converter's own code:

* ``TORCHRS_DIR`` converted from the checkpoint (``model_kind == "weights"``): every variable the
  converter plans for the checkpoint (:func:`converters.tfrs_to_torch.planning.plan_checkpoint`)
  against the tensor written under its name, in TF's layout (``load_weights(module, TORCHRS_DIR)``
  applies the TF -> torch mapping when a module is loaded);
* ``TORCHRS_DIR`` converted from a SavedModel / ``.keras`` export of the same model: a copy of the
  ``torchrs.load`` module is filled from the checkpoint by
  :func:`converters.tfrs_to_torch.load_weights` (the shared mapping: transposes, GRU gate order...)
  and every parameter is compared with the directory's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from converters.tfrs_to_torch.compare import Check, Tolerance, compare_output

#: Weights are copied, never computed: any difference is a wrong mapping or a changed file.
WEIGHTS_TOLERANCE = Tolerance(
    atol=0.0,
    rtol=0.0,
    reason="weights are copied, never computed: any difference is a wrong mapping rule or a "
    "changed file",
)
#: What a checkpoint cannot show, said in the report and on the console.
NOT_COMPARED = (
    "outputs, top-K identifiers and vocabularies: a TF checkpoint holds variables only, no graph "
    "TensorFlow can run (and no lookup vocabularies); validate the SavedModel or .keras export "
    "against its conversion for those"
)
_PART = "weights"


@dataclass(frozen=True)
class WeightsValidation:
    """What the checkpoint comparison found.

    Attributes:
        checks: one row per weight (values identical), plus one per weight found on one side only.
        compared: how the weights were compared, in words.
        not_compared: what a checkpoint cannot show.
    """

    checks: list[Check]
    compared: str
    not_compared: tuple[str, ...] = (NOT_COMPARED,)


def _only_on_one_side(name: str, where: str, why: str) -> Check:
    return Check(_PART, f"{name}: {where}", 1.0, 0.0, 1.0, "present in both", False, why)


def _rows(name: str, ref: Any, got: Any) -> list[Check]:
    return compare_output(name, ref, got, WEIGHTS_TOLERANCE).rows(
        _PART, WEIGHTS_TOLERANCE, compact=True
    )


def compare_converted_checkpoint(prefix: str, checkpoint: Any, written_file: Path) -> list[Check]:
    """Every variable the converter plans for ``checkpoint`` against ``written_file``'s tensor of that name.

    Args:
        prefix: the checkpoint's path as given (for messages).
        checkpoint: its :class:`~converters.tfrs_to_torch.formats.SourceFormat`.
        written_file: the conversion's ``model.safetensors``.
    """
    from safetensors.numpy import load_file

    from converters.tfrs_to_torch.planning import plan_checkpoint

    plan = plan_checkpoint(checkpoint, strict=False)
    written = load_file(str(written_file))
    rows: list[Check] = []
    for tensor in plan.tensors:
        if tensor.torch_name not in written:
            rows.append(
                _only_on_one_side(
                    tensor.torch_name,
                    "in the TF checkpoint, missing from TORCHRS_DIR",
                    f"TORCHRS_DIR was not converted from {prefix!r}, or lost a tensor",
                )
            )
            continue
        rows += _rows(tensor.torch_name, tensor.load(), written[tensor.torch_name])
    planned = {t.torch_name for t in plan.tensors}
    for name in sorted(set(written) - planned):
        rows.append(
            _only_on_one_side(
                name,
                "in TORCHRS_DIR, not in the TF checkpoint",
                f"TORCHRS_DIR was not converted from {prefix!r}",
            )
        )
    return rows


def compare_through_load_weights(prefix: str, module: nn.Module) -> list[Check]:
    """A copy of ``module`` filled from the checkpoint by ``load_weights``, compared parameter by parameter."""
    from converters.tfrs_to_torch.load_weights import load_weights

    filled = copy.deepcopy(module)
    info = load_weights(filled, prefix, strict=False)
    rows: list[Check] = []
    why = "the checkpoint and TORCHRS_DIR hold different models (or a mapping rule is wrong)"
    rows += [
        _only_on_one_side(n, "in TORCHRS_DIR, not in the TF checkpoint", why) for n in info.missing
    ]
    rows += [
        _only_on_one_side(p, "in the TF checkpoint, not in TORCHRS_DIR", why)
        for p in info.unexpected
    ]
    for name, shape, path, tf_shape in info.mismatched:
        rows.append(
            Check(
                _PART,
                f"{name}: shape {shape}, TF {path} {tf_shape}",
                1.0,
                0.0,
                1.0,
                "same shape",
                False,
                why,
            )
        )
    ours = dict(module.named_parameters())
    theirs = dict(filled.named_parameters())
    for name in info.matched:
        rows += _rows(name, theirs[name].detach().numpy(), ours[name].detach().numpy())
    return rows


def validate_checkpoint(
    prefix: str, checkpoint: Any, torchrs_dir: str, meta: dict[str, Any], module: Any
) -> WeightsValidation:
    """Compares a TF checkpoint with ``TORCHRS_DIR`` (see the module docstring)."""
    if meta.get("model_kind") == "weights":
        rows = compare_converted_checkpoint(
            prefix, checkpoint, Path(torchrs_dir) / "model.safetensors"
        )
        how = (
            "every variable of the TF checkpoint against the tensor TORCHRS_DIR holds under its name, "
            "exactly, in TF's layout (load_weights(module, TORCHRS_DIR) applies the TF -> torch mapping)"
        )
    else:
        rows = compare_through_load_weights(prefix, module)
        how = (
            "a copy of the torchrs module filled from the TF checkpoint by "
            "converters.tfrs_to_torch.load_weights (the shared TF -> torch mapping), every parameter "
            "compared with TORCHRS_DIR's, exactly"
        )
    if not rows:
        rows.append(_only_on_one_side("(none)", "no weight to compare", "an empty checkpoint"))
    return WeightsValidation(rows, how)


__all__ = ["NOT_COMPARED", "WEIGHTS_TOLERANCE", "WeightsValidation", "validate_checkpoint"]
