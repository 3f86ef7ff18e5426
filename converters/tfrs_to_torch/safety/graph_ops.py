"""Refusing to run a SavedModel whose functions can act outside the process.

The converter restores a SavedModel with ``tf.saved_model.load`` (lookup tables, a Streaming
index's dataset) and calls its towers for the verification forward pass. Both run the export's
functions, so before either, every function of the export's library is read and each op checked
against an allow-list of pure ops:

* ops TensorFlow declares stateless (``OpDef.is_stateful`` false), except the families that read
  or write files, queues, summaries, sockets, devices or Python (``ReadFile``, ``MatchingFiles``,
  ``PyFuncStateless``, ``ImmutableConst``, readers, snapshots, ... : :data:`DENIED_PATTERN`);
* named stateful ops that only touch the process's own memory: variables, lookup tables, random
  numbers, function calls and control flow (:data:`SAFE_STATEFUL_OPS`);
* in-memory ``tf.data`` transformations (a Streaming index keeps its candidate pipeline):
  :data:`SAFE_DATASET_OPS`; file-reading and caching datasets are refused.

``SaveV2`` / ``RestoreV2`` / ``MergeV2Checkpoints`` are accepted only in functions that nothing in
the object graph calls: the TF1-style saver functions TF writes into every SavedModel, which
``tf.saved_model.load`` never runs. Anything else is refused by name, with the function holding
it, unless the user passes ``--trust-model``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.tfrs_to_torch.errors import ConversionError

# Stateful ops that change nothing outside the process (TF marks them stateful because they touch
# resources or random state, not the outside world).
SAFE_STATEFUL_OPS = frozenset(
    {
        "VarHandleOp",
        "ReadVariableOp",
        "AssignVariableOp",
        "AssignAddVariableOp",
        "AssignSubVariableOp",
        "VarIsInitializedOp",
        "DestroyResourceOp",
        "DisableCopyOnRead",
        "ResourceGather",
        "ResourceGatherNd",
        "HashTableV2",
        "MutableHashTableV2",
        "MutableHashTableOfTensorsV2",
        "MutableDenseHashTableV2",
        "AnonymousHashTable",
        "AnonymousMutableHashTable",
        "LookupTableFindV2",
        "LookupTableImportV2",
        "LookupTableExportV2",
        "LookupTableSizeV2",
        "LookupTableInsertV2",
        "LookupTableRemoveV2",
        "InitializeTableV2",
        "StatefulPartitionedCall",
        "PartitionedCall",
        "If",
        "While",
        "Case",
        "RandomUniform",
        "RandomUniformInt",
        "RandomStandardNormal",
        "TruncatedNormal",
        "RandomShuffle",
        "RandomGammaGrad",
        "Assert",
        "NoOp",
        "Placeholder",
        "VariableShape",
        "ResourceScatterUpdate",
        "ResourceScatterAdd",
        "ResourceScatterSub",
        "ResourceScatterNdUpdate",
        "ResourceScatterNdAdd",
        "TensorListReserve",
        "Unique",
    }
)
# Op families that compute in memory but are declared stateful: cuDNN RNN kernels (Keras GRU/LSTM
# trace a GPU branch next to the CPU one), stateless-seeded and counter-based random numbers.
SAFE_OP_PREFIXES = ("CudnnRNN", "StatelessRandom", "RngReadAndSkip", "RngBitGenerator")
# In-memory tf.data transformations (what Dataset.from_tensor_slices(...).batch().map() saves as).
SAFE_DATASET_OPS = frozenset(
    {
        "TensorSliceDataset",
        "TensorDataset",
        "RangeDataset",
        "BatchDataset",
        "BatchDatasetV2",
        "PaddedBatchDataset",
        "PaddedBatchDatasetV2",
        "MapDataset",
        "ParallelMapDataset",
        "ParallelMapDatasetV2",
        "MapAndBatchDataset",
        "FilterDataset",
        "FlatMapDataset",
        "InterleaveDataset",
        "ParallelInterleaveDatasetV4",
        "ReduceDataset",
        "RepeatDataset",
        "TakeDataset",
        "SkipDataset",
        "ShuffleDatasetV3",
        "PrefetchDataset",
        "ZipDataset",
        "ConcatenateDataset",
        "OptionsDataset",
        "ModelDataset",
        "UnbatchDataset",
        "RebatchDatasetV2",
        "ScanDataset",
        "WindowDataset",
        "AssertCardinalityDataset",
        "FinalizeDataset",
        "DatasetCardinality",
        "AnonymousIteratorV2",
        "AnonymousIteratorV3",
        "IteratorGetNext",
        "MakeIterator",
        "DeleteIterator",
        "DummyIterationCounter",
        "DummySeedGenerator",
        "AnonymousSeedGenerator",
        "DeleteSeedGenerator",
    }
)
# Stateless-declared op families that still reach outside: files, readers, queues, summaries,
# Python, debugging hooks, devices and accelerators, collectives, other datasets.
DENIED_PATTERN = re.compile(
    r"File|Read(?!Variable)|Write|Save|Restore|Load|Record|TextLine|Reader|Queue|Snapshot|Cache|"
    r"Matching|Immutable|^Py|Print|Summary|Debug|Xla|TPU|Tpu|Infeed|Outfeed|Send|Recv|Collective|"
    r"Copy|Rpc|Dataset|Iterator|Sharded|Checkpoint|Mlir"
)
# The TF1-style saver functions TF adds to every SavedModel; tf.saved_model.load never calls them.
SAVER_OPS = frozenset(
    {"SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin"}
)
# Refusal messages list at most this many offending ops.
MAX_LISTED = 10


@dataclass(frozen=True)
class OpAudit:
    """What the op check found: the refused ops (``op -> [functions]``) and how many functions it read."""

    functions_checked: int
    refused: dict[str, list[str]] = field(default_factory=dict)
    trusted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "functions_checked": self.functions_checked,
            "refused_ops": {op: sorted(fns) for op, fns in sorted(self.refused.items())},
            "trust_model": self.trusted,
        }


def _registry() -> Any:
    from tensorflow.python.framework import op_def_registry

    return op_def_registry


def op_allowed(op: str, registry: Any = None) -> bool:
    """Whether ``op`` is on the allow-list (see the module docstring).

    >>> op_allowed("MatMul"), op_allowed("WriteFile"), op_allowed("ReadFile"), op_allowed("HashTableV2")
    (True, False, False, True)
    """
    if op in SAFE_STATEFUL_OPS or op in SAFE_DATASET_OPS or op.startswith(SAFE_OP_PREFIXES):
        return True
    if DENIED_PATTERN.search(op):
        return False
    op_def = (registry or _registry()).get(op)
    return op_def is not None and not op_def.is_stateful


def _called_functions(function: Any, library: dict[str, Any]) -> set[str]:
    called: set[str] = set()
    for node in function.node_def:
        if node.op in library:
            called.add(node.op)
        for value in node.attr.values():
            if value.HasField("func"):
                called.add(value.func.name)
            if value.HasField("list"):
                called.update(f.name for f in value.list.func)
    return called


def audit_functions(
    library: dict[str, Any], roots: Iterable[str], graph_nodes: Iterable[Any] = ()
) -> dict[str, list[str]]:
    """Refused ops of a function library: ``{op: [function names]}``.

    Args:
        library: ``FunctionDef`` by name (every function of the export).
        roots: the functions the object graph can call (closure taken here).
        graph_nodes: top-level graph nodes (TF1 saver wiring; only the calls they make are exempt).
    """
    registry = _registry()
    reachable: set[str] = set()
    pending = [name for name in roots if name in library]
    while pending:
        name = pending.pop()
        if name in reachable:
            continue
        if name not in library:  # called, but not in the export: a corrupted saved_model.pb
            raise ConversionError(
                f"The export's function library lacks {name!r}, which one of its functions calls: "
                "saved_model.pb is incomplete or corrupted. Re-export the model."
            )
        reachable.add(name)
        pending.extend(_called_functions(library[name], library) - reachable)
    refused: dict[str, list[str]] = {}
    for name, function in library.items():
        for node in function.node_def:
            op = node.op
            if op in library or op_allowed(op, registry):
                continue
            if op in SAVER_OPS and name not in reachable:
                continue
            refused.setdefault(op, []).append(name)
    for node in graph_nodes:
        if (
            node.op not in library
            and not op_allowed(node.op, registry)
            and node.op not in SAVER_OPS
        ):
            refused.setdefault(node.op, []).append("<graph>")
    return refused


def audit_saved_model(directory: str | Path, trust_model: bool) -> OpAudit:
    """Checks every function of ``directory/saved_model.pb`` against the allow-list.

    Args:
        directory: a SavedModel directory.
        trust_model: accept refused ops (the report records them and that the model was trusted).

    Returns:
        The :class:`OpAudit`.

    Raises:
        ConversionError: ``saved_model.pb`` unreadable, or refused ops without ``trust_model``.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((Path(directory) / "saved_model.pb").read_bytes())
    except Exception as err:
        raise ConversionError(
            f"{directory}/saved_model.pb cannot be parsed ({type(err).__name__}): the file is "
            "truncated or corrupted; re-export the model."
        ) from None
    refused: dict[str, list[str]] = {}
    checked = 0
    for meta_graph in proto.meta_graphs:
        library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
        roots = set(meta_graph.object_graph_def.concrete_functions)
        for op, names in audit_functions(library, roots, meta_graph.graph_def.node).items():
            refused.setdefault(op, []).extend(names)
        checked += len(library)
    if refused and not trust_model:
        listed = ", ".join(
            f"{op} (in {sorted(set(names))[0]})"
            for op, names in sorted(refused.items())[:MAX_LISTED]
        )
        raise ConversionError(
            f"{directory} holds ops that can act outside this process: {listed}. The converter "
            "runs the export's functions (to restore lookup tables and to verify the conversion), "
            "so it refuses this model. If you trust its author, pass --trust-model."
        )
    return OpAudit(checked, refused, trusted=trust_model)
