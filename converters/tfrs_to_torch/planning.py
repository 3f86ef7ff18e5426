"""Reading a TF export into a conversion :class:`~converters.tfrs_to_torch.plan.Plan`: the entry points.

A ``.keras`` archive is loaded with tf_keras (read in place, :mod:`.keras_archive`) and re-saved as a Keras
SavedModel in a scratch directory the caller places inside the conversion's temporary sibling of ``--out``, then
read as one; a TF checkpoint keeps its tensors under their object paths (no architecture).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.formats import (
    CHECKPOINT,
    KERAS_ARCHIVE,
    SourceFormat,
)
from converters.tfrs_to_torch.keras_archive import load_keras_archive, resave
from converters.tfrs_to_torch.optimizer_state import plan_optimizer
from converters.tfrs_to_torch.plan import (
    Plan,
    ReportEntry,
    Status,
    TensorPlan,
    VariableRole,
    variable_role,
)
from converters.tfrs_to_torch.tf_env import import_tf
from converters.tfrs_to_torch.tf_format import (
    ATTRIBUTES_SUFFIX,
    VARIABLE_ATTRIBUTE,
    SavedModelReader,
    TFProbe,
    checkpoint_object_graph,
    open_checkpoint,
    read_tensor,
    strip_key,
    variable_paths,
)
from converters.tfrs_to_torch.walker import Walker

# Inside the scratch directory of a .keras conversion: the archive re-saved as a Keras SavedModel.
RESAVED_MODEL = "model"


def plan_saved_model(
    fmt: SourceFormat,
    strict: bool = True,
    vocab_overrides: dict[str, Path] | None = None,
    scratch: Path | None = None,
) -> Plan:
    """The conversion plan of a SavedModel / Keras SavedModel / ``.keras`` archive.

    Args:
        fmt: what :func:`~converters.tfrs_to_torch.formats.detect_format` found.
        strict: raise on unsupported layers (else list them in the report).
        vocab_overrides: layer path or name -> vocabulary file replacing the exported table.
        scratch: for a ``.keras`` archive, an existing directory for its assets and re-saved
            SavedModel (the conversion passes one inside its temporary sibling of ``--out``, and
            removes it).

    Returns:
        The :class:`Plan`.

    Raises:
        ConversionError: unreadable export, no recommender inside, unsupported layer (strict).
    """
    directory, label = fmt.path, fmt.path
    legacy_optimizer: str | None = None
    cleanup: list[Any] = []
    if fmt.kind == KERAS_ARCHIVE:
        if scratch is None:
            raise ConversionError(
                "plan_saved_model() needs a scratch directory for a .keras archive; use convert()."
            )
        directory, legacy_optimizer = _resave_keras_archive(fmt.path, scratch)
    if fmt.kind == CHECKPOINT:
        raise ConversionError("plan_saved_model() takes a SavedModel; use plan_checkpoint().")
    sm = SavedModelReader(directory, str(Path(directory) / "variables" / "variables"), label)
    walker = Walker(sm, strict, vocab_overrides or {})
    if not sm.is_layer(0) and walker.infer_class(0, "") != "BruteForce":
        raise ConversionError(
            f"{label} is a SavedModel of a {sm.identifier(0)!r} object, not a Keras / TFRS model "
            "(no layers, towers or index inside). Export the TFRS model, tower or index instead."
        )
    spec = walker.describe(0, "", "")
    assert spec is not None
    plan = walker.plan
    recorded = serving_signatures(sm.signatures)
    if recorded:  # what TF Serving's /metadata shows for this export: names served as TF's
        spec[SERVING_SIGNATURES] = recorded
    plan.architecture = spec
    plan.model_kind = {"BruteForce": "index", "Streaming": "index", "Container": "model"}.get(
        spec["class_name"], "tower"
    )
    for key in sm.shapes:
        if key == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue
        entry = sm.claimed.get(key) or ReportEntry(
            strip_key(key), Status.SKIPPED, reason=variable_role(key).value
        )
        plan.report.append(entry)
    # A compiled Keras model saves its optimizer too (include_optimizer=True): slots for resuming.

    plan_optimizer(
        sm.reader,
        checkpoint_object_graph(sm.reader),
        plan,
        strict=strict,
        keras_config=(sm.meta.get(0) or {}).get("training_config"),
    )
    if legacy_optimizer is not None and "optimizer" not in plan.architecture:
        reason = legacy_archive_note(legacy_optimizer)
        plan.report.append(ReportEntry("optimizer", Status.SKIPPED, reason=reason))
        plan.notes.append(reason)
    plan.probe = TFProbe(sm)
    plan.cleanup = cleanup
    return plan


# The architecture entry holding the export's own signature_defs (read by torchrs.serve).
SERVING_SIGNATURES = "serving_signatures"


def serving_signatures(signature_defs: Any) -> dict[str, Any]:
    """The SavedModel's ``signature_def`` map as JSON: keys, dtypes, shapes and tensor names.

    ``{key: {"method_name": ..., "inputs": {name: {"dtype", "shape", "name"}}, "outputs": {...}}}``,
    dtypes by TF's name (``string``, ``float32``), ``-1`` for an unknown dimension, ``shape`` None
    for an unknown rank; TF's internal ``__saved_model_init_op`` entry is left out.
    """
    tf = import_tf()

    def tensors(infos: Any) -> dict[str, Any]:
        return {
            name: {
                "dtype": tf.dtypes.as_dtype(info.dtype).name,
                "shape": None
                if info.tensor_shape.unknown_rank
                else [int(d.size) for d in info.tensor_shape.dim],
                "name": info.name,
            }
            for name, info in sorted(infos.items())
        }

    return {
        key: {
            "method_name": definition.method_name,
            "inputs": tensors(definition.inputs),
            "outputs": tensors(definition.outputs),
        }
        for key, definition in sorted(signature_defs.items())
        if not key.startswith("__")
    }


def legacy_archive_note(class_name: str) -> str:
    """What a ``.keras`` archive compiled with a legacy optimizer lacks, and how to keep it.

    >>> "no optimizer state" in legacy_archive_note("Adam")
    True
    """
    return (
        f"The .keras archive was compiled with tf.keras.optimizers.legacy.{class_name}, whose variables "
        "tf_keras does not write into a .keras archive: it holds no optimizer state (slots, iterations) "
        "to convert. To resume training on TF's trajectory, save with model.save(dir, save_format='tf') "
        "or model.save_weights / tf.train.Checkpoint after fit and convert that; otherwise start a fresh "
        f"torchrs.optim.legacy.{class_name}."
    )


def _resave_keras_archive(path: str, scratch: Path) -> tuple[str, str | None]:
    """The re-saved Keras SavedModel, and the class of the legacy optimizer the archive was compiled with
    (tf_keras writes no variables of a legacy optimizer into a ``.keras``), or None."""
    model = load_keras_archive(path, scratch)
    target = scratch / RESAVED_MODEL
    resave(model, target)
    legacy = import_tf().keras.optimizers.legacy.Optimizer
    optimizer = getattr(model, "optimizer", None)
    return str(target), type(optimizer).__name__ if isinstance(optimizer, legacy) else None


# -------------------------------------------------------------------------------------------
# Checkpoints: variables by object path, no architecture.
# -------------------------------------------------------------------------------------------


def plan_checkpoint(fmt: SourceFormat, strict: bool = True) -> Plan:
    """A checkpoint's variables under their object paths (``user_model/layer_with_weights-0/embeddings``).

    Checkpoints hold neither layer classes nor (static) vocabularies, so tensors keep their TF
    names and layout; ``load_weights(module, OUT_DIR)`` maps them onto a torchrs module.
    """
    assert fmt.checkpoint_prefix is not None
    reader = open_checkpoint(fmt.checkpoint_prefix)
    graph = checkpoint_object_graph(reader)
    paths = variable_paths(graph)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    plan = Plan("weights", {"class_name": "Weights", "layout": "tensorflow"})
    for key in sorted(shapes):
        if key == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue
        name = strip_key(key)
        role = variable_role(name)
        if not key.endswith(ATTRIBUTES_SUFFIX + VARIABLE_ATTRIBUTE):
            plan.report.append(
                ReportEntry(name, Status.SKIPPED, reason="table / non-variable state")
            )
            continue
        if role is not VariableRole.MODEL:
            plan.report.append(ReportEntry(name, Status.SKIPPED, reason=role.value))
            continue
        dtype = np.dtype(dtypes[key].as_numpy_dtype)
        if dtype.kind == "O":
            plan.report.append(ReportEntry(name, Status.SKIPPED, reason="string variable"))
            continue
        shape = tuple(int(d) for d in shapes[key])

        def load(key: str = key) -> np.ndarray:
            return read_tensor(reader, key)

        plan.tensors.append(TensorPlan(name, name, shape, dtype, load))
        plan.report.append(ReportEntry(name, Status.CONVERTED, name, shape=list(shape)))
    plan.architecture["paths"] = {strip_key(k): v for k, v in paths.items()}

    plan_optimizer(reader, graph, plan, strict=strict)
    plan.notes.append(
        "A TF checkpoint holds weights only: no layer classes and no vocabularies. Rebuild the "
        "model in torchrs and call converters.tfrs_to_torch.load_weights(module, OUT_DIR); give "
        "vocabularies with --vocab NAME=FILE or set them on the lookup layers."
    )
    return plan
