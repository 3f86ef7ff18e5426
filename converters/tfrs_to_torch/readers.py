"""Reading a TF export into a conversion plan: architecture, tensors (lazy) and report entries.

Every SavedModel (``tf.saved_model.save`` or Keras ``model.save(save_format="tf")``) holds an
object graph: nodes for layers, variables and lookup tables, linked by attribute names
(``query_model/layer_with_weights-1/kernel``). Its variables live in a TF checkpoint whose own
object graph uses the same node ids. This module walks that graph:

* a Keras SavedModel adds ``keras_metadata.pb``: the class and config of every layer, by node id;
* a plain ``tf.saved_model.save`` export has no configs, so layers are recognised by what they
  hold (``lookup_table`` -> lookup, ``embeddings`` -> Embedding, ``kernel`` -> Dense with its
  activation read from the traced function's ops) and stated as inferred in the report;
* lookup tables are exported from the restored object (``LookupTableExportV2``), so vocabularies
  come from the model itself, byte for byte, never recomputed;
* a Keras functional model's graph comes from its functional config (``layers`` with their
  ``inbound_nodes``, ``input_layers``, ``output_layers``), which only Keras exports keep;
* a ``Streaming`` index holds no variables: its candidates are the ``tf.data`` pipeline the
  export serialised (``_candidates/_variant_tracker``), rebuilt and read once.

A ``.keras`` archive is loaded with tf_keras and re-saved as a Keras SavedModel in a temporary
directory, then read the same way.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from converters.tfrs_to_torch import rules
from converters.tfrs_to_torch.errors import ConversionError, UnsupportedLayerError
from converters.tfrs_to_torch.formats import (
    CHECKPOINT,
    KERAS_ARCHIVE,
    KERAS_METADATA_FILE,
    SourceFormat,
)
from converters.tfrs_to_torch.tf_env import import_tf

# Object-graph children that Keras / TF add for tracking; they duplicate real attributes.
TRACKING_NAMES = frozenset(
    {
        "variables",
        "trainable_variables",
        "non_trainable_variables",
        "regularization_losses",
        "keras_api",
        "layers",
        "metrics",
        "layer_regularization_losses",
        "layer_metrics",
        "signatures",
        "_self_tracked_trackables",
        "_default_save_signature",
        "input_vocabulary",
    }
)
VARIABLE_ATTRIBUTE = "VARIABLE_VALUE"
# Suffix TF appends to every checkpoint key of a variable.
ATTRIBUTES_SUFFIX = "/.ATTRIBUTES/"
# Op types of a traced Dense call that carry no activation.
_LINEAR_OPS = frozenset(
    {
        "MatMul",
        "BiasAdd",
        "ReadVariableOp",
        "Identity",
        "IdentityN",  # the pass-through a custom gradient (swish's) is traced as
        "Const",
        "NoOp",
        "Cast",
        "AddV2",
        "Add",
    }
)
# Activation op -> Keras activation name (a Dense layer's traced call, plain SavedModel only).
ACTIVATION_OPS = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Elu": "elu",
    "Selu": "selu",
    "Softplus": "softplus",
    "Softsign": "softsign",
    "Relu6": "relu6",
    "LeakyRelu": "leaky_relu",
    "Softmax": "softmax",
    "Exp": "exponential",
}
# What a plain tf.saved_model.save export lacking a layer's config is answered with.
REEXPORT_HINT = "re-export with model.save(dir, save_format='tf') or as a .keras file"
# Probe token for the verification forward pass: not in any real vocabulary.
OOV_PROBE = b"\x00torchrs-oov-probe\x00"


@dataclass
class TensorPlan:
    """One tensor of the output, read only when written (so large tables are streamed).

    Attributes:
        torch_name: the key in ``model.safetensors``.
        source: where it comes from (a checkpoint key, or ``<table ...>`` for a vocabulary).
        shape: the shape *after* the transpose.
        dtype: NumPy dtype.
        load: returns the array, already transposed.
        transpose: whether a Dense kernel was transposed.
    """

    torch_name: str
    source: str
    shape: tuple[int, ...]
    dtype: np.dtype
    load: Callable[[], np.ndarray]
    transpose: bool = False


@dataclass
class ReportEntry:
    """What happened to one source object: converted into ``torch_name``, or skipped and why."""

    source: str
    status: str  # "converted" | "skipped" | "unsupported" | "inferred"
    torch_name: str | None = None
    reason: str | None = None
    shape: list[int] | None = None
    transposed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v is not False}


@dataclass
class Plan:
    """Everything a conversion writes, before any tensor is read.

    Attributes:
        model_kind: ``"index"``, ``"tower"``, ``"model"`` (towers of a tfrs.Model) or ``"weights"``.
        architecture: the JSON spec :func:`torchrs.io.load` rebuilds the module from.
        tensors: the tensors to write.
        report: one entry per source variable / table / layer.
        notes: human-readable remarks for the summary (assumptions, what to do next).
        probe: a :class:`TFProbe` running the TF model on sample inputs, for verification.
        samples: the sample inputs for that forward pass, per module path.
        sources: torch-name prefix of every rebuilt module -> its object path in the export.
    """

    model_kind: str
    architecture: dict[str, Any]
    tensors: list[TensorPlan] = field(default_factory=list)
    report: list[ReportEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    probe: Any = None
    samples: dict[str, list[Any]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    cleanup: list[Any] = field(default_factory=list)


def _strip_key(key: str) -> str:
    return key.split(ATTRIBUTES_SUFFIX)[0]


def open_checkpoint(prefix: str) -> Any:
    """``tf.train.load_checkpoint`` with a user-facing error for missing or corrupted files."""
    tf = import_tf()
    try:
        reader = tf.train.load_checkpoint(prefix)
        reader.get_variable_to_shape_map()
    except Exception as err:  # TF raises DataLossError, NotFoundError, OpError...
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConversionError(
            f"Cannot read the variables of {prefix!r}: {message}. The checkpoint / variables file "
            "is missing, truncated or corrupted; re-export the model."
        ) from None
    return reader


def read_tensor(reader: Any, key: str) -> np.ndarray:
    """One variable's value, with a user-facing error when its bytes are corrupted."""
    try:
        return np.asarray(reader.get_tensor(key))
    except Exception as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConversionError(
            f"Cannot read variable {_strip_key(key)!r}: {message}. The variables file is "
            "truncated or corrupted; re-export the model."
        ) from None


def checkpoint_object_graph(reader: Any) -> Any:
    """The ``TrackableObjectGraph`` stored in a TF2 checkpoint."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    if "_CHECKPOINTABLE_OBJECT_GRAPH" in reader.get_variable_to_shape_map():
        try:
            graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
        except Exception:
            raise ConversionError(
                "Cannot read the checkpoint's object graph: the variables file is truncated or "
                "corrupted; re-export the model."
            ) from None
    else:
        raise ConversionError(
            "This checkpoint has no object graph (a TF1 name-based checkpoint?). Save it with "
            "tf.train.Checkpoint or model.save_weights in TF2."
        ) from None
    return graph


def variable_paths(graph: Any) -> dict[str, list[str]]:
    """Checkpoint key -> every object path that reaches that variable (shortest first)."""
    keys: dict[int, str] = {}
    for node_id, node in enumerate(graph.nodes):
        for attribute in node.attributes:
            if attribute.name == VARIABLE_ATTRIBUTE:
                keys[node_id] = attribute.checkpoint_key
    paths: dict[str, list[str]] = {key: [] for key in keys.values()}
    queue: list[tuple[int, str]] = [(0, "")]
    seen_edges: set[tuple[int, str]] = set()
    while queue:
        node_id, path = queue.pop(0)
        if node_id in keys and path:
            paths[keys[node_id]].append(path)
        for child in graph.nodes[node_id].children:
            child_path = f"{path}/{child.local_name}" if path else child.local_name
            if (child.node_id, child_path) in seen_edges or child_path.count("/") > 64:
                continue
            seen_edges.add((child.node_id, child_path))
            if child.node_id != 0:
                queue.append((child.node_id, child_path))
    return paths


class SavedModelReader:
    """The object graph, Keras metadata, functions and variables of one SavedModel directory."""

    def __init__(self, directory: str, prefix: str, source_label: str) -> None:
        from tensorflow.core.protobuf import saved_model_pb2

        self.directory = directory
        self.source_label = source_label
        proto = saved_model_pb2.SavedModel()
        try:
            proto.ParseFromString((Path(directory) / "saved_model.pb").read_bytes())
        except Exception as err:
            raise ConversionError(
                f"{directory}/saved_model.pb cannot be parsed ({type(err).__name__}): the file is "
                "truncated or corrupted; re-export the model."
            ) from None
        if not proto.meta_graphs:
            raise ConversionError(
                f"{directory}/saved_model.pb holds no graph; re-export the model."
            )
        meta_graph = proto.meta_graphs[0]
        self.graph = meta_graph.object_graph_def
        self.signatures = meta_graph.signature_def
        self.functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
        self.reader = open_checkpoint(prefix)
        self.shapes = self.reader.get_variable_to_shape_map()
        self.dtypes = self.reader.get_variable_to_dtype_map()
        ckpt_graph = checkpoint_object_graph(self.reader)
        self.var_key: dict[int, str] = {}
        self.other_keys: dict[int, list[str]] = {}
        for node_id, node in enumerate(ckpt_graph.nodes):
            for attribute in node.attributes:
                if attribute.name == VARIABLE_ATTRIBUTE:
                    self.var_key[node_id] = attribute.checkpoint_key
                else:
                    self.other_keys.setdefault(node_id, []).append(attribute.checkpoint_key)
        self.meta: dict[int, dict[str, Any]] = {}
        metadata_file = Path(directory) / KERAS_METADATA_FILE
        if metadata_file.is_file():
            from tf_keras.protobuf import saved_metadata_pb2

            metadata = saved_metadata_pb2.SavedMetadata()
            metadata.ParseFromString(metadata_file.read_bytes())
            for node in metadata.nodes:
                try:
                    self.meta[node.node_id] = json.loads(node.metadata)
                except json.JSONDecodeError:
                    continue
        self._loaded: Any = None
        self._traced_activations: dict[int, dict[int, str | None]] = {}
        self.claimed: dict[str, ReportEntry] = {}

    # ---- graph helpers --------------------------------------------------------------------

    def children(self, node_id: int) -> list[tuple[str, int]]:
        return [(c.local_name, c.node_id) for c in self.graph.nodes[node_id].children]

    def child(self, node_id: int, *names: str) -> int | None:
        for name, child_id in self.children(node_id):
            if name in names:
                return child_id
        return None

    def kind(self, node_id: int) -> str:
        return self.graph.nodes[node_id].WhichOneof("kind") or ""

    def identifier(self, node_id: int) -> str:
        node = self.graph.nodes[node_id]
        return (
            node.user_object.identifier
            if self.kind(node_id) == "user_object"
            else self.kind(node_id)
        )

    def is_layer(self, node_id: int) -> bool:
        return self.identifier(node_id).startswith("_tf_keras_")

    def class_name(self, node_id: int) -> str | None:
        meta = self.meta.get(node_id)
        return None if meta is None else meta.get("class_name")

    def config(self, node_id: int) -> dict[str, Any]:
        meta = self.meta.get(node_id) or {}
        return dict(meta.get("config") or {})

    def layer_variables(self, node_id: int) -> list[tuple[str, int]]:
        """(relative path, variable node id) of every variable owned by a layer."""
        out: list[tuple[str, int]] = []
        seen: set[int] = set()

        def walk(nid: int, path: str) -> None:
            for name, child_id in self.children(nid):
                if name in TRACKING_NAMES or child_id in seen:
                    continue
                kind = self.kind(child_id)
                child_path = f"{path}/{name}" if path else name
                if kind == "variable":
                    seen.add(child_id)
                    out.append((child_path, child_id))
                elif kind == "user_object":
                    seen.add(child_id)
                    walk(child_id, child_path)

        walk(node_id, "")
        return out

    def loaded(self) -> Any:
        """The SavedModel restored with ``tf.saved_model.load`` (only for tables and probes)."""
        if self._loaded is None:
            tf = import_tf()
            try:
                self._loaded = tf.saved_model.load(self.directory)
            except Exception as err:
                raise ConversionError(
                    f"TensorFlow cannot restore {self.directory}: {str(err).splitlines()[0]}"
                ) from None
        return self._loaded

    def restored(self, path: str) -> Any:
        obj = self.loaded()
        for part in filter(None, path.split("/")):
            obj = getattr(obj, part)
        return obj

    # ---- tensors --------------------------------------------------------------------------

    def variable_plan(self, var_id: int, torch_name: str, transpose: bool) -> TensorPlan:
        key = self.var_key.get(var_id)
        if key is None:
            raise ConversionError(f"Variable node {var_id} has no value in the checkpoint.")
        shape = tuple(int(d) for d in self.shapes[key])
        if transpose:
            if len(shape) != 2:
                raise ConversionError(
                    f"{_strip_key(key)} has shape {shape}; a Dense kernel must be 2-D."
                )
            shape = (shape[1], shape[0])
        dtype = np.dtype(self.dtypes[key].as_numpy_dtype)
        reader = self.reader

        def load() -> np.ndarray:
            return rules.apply_transpose(read_tensor(reader, key), transpose)

        self.claimed[key] = ReportEntry(
            _strip_key(key), "converted", torch_name, shape=list(shape), transposed=transpose
        )
        return TensorPlan(torch_name, _strip_key(key), shape, dtype, load, transpose)

    def skip_variables(self, node_id: int, reason: str) -> None:
        for _, var_id in self.layer_variables(node_id):
            key = self.var_key.get(var_id)
            if key is not None and key not in self.claimed:
                self.claimed[key] = ReportEntry(_strip_key(key), "skipped", reason=reason)
        for key in self.other_keys.get(node_id, []):
            if key not in self.claimed:
                self.claimed[key] = ReportEntry(_strip_key(key), "skipped", reason=reason)

    def dataset_output_types(self, tracker_id: int) -> list[int]:
        """Component dtypes (``DataType`` enums) of the dataset a ``_variant_tracker`` recreates."""
        fn_id = self.child(tracker_id, "_create_resource")
        names = [] if fn_id is None else list(self.graph.nodes[fn_id].function.concrete_functions)
        name = names[0] if names else None
        for _ in range(16):  # creator -> (Stateful)PartitionedCall -> pruned dataset graph
            fn = self.functions.get(name) if name else None
            if fn is None or not fn.signature.output_arg:
                break
            nodes = {n.name: n for n in fn.node_def}
            node = nodes.get(fn.ret[fn.signature.output_arg[0].name].split(":")[0])
            while node is not None and node.op == "Identity":
                node = nodes.get(node.input[0].split(":")[0])
            if node is None:
                break
            for attr in ("output_types", "Toutput_types"):
                if attr in node.attr:
                    return list(node.attr[attr].list.type)
            if node.op in ("StatefulPartitionedCall", "PartitionedCall"):
                name = node.attr["f"].func.name
                continue
            break
        raise ConversionError(
            f"{self.source_label}: cannot tell what the exported candidate dataset yields (its "
            "graph has no dataset op with output types); re-export the index."
        )

    def table_key_dtype(self, table_id: int) -> int | None:
        """The key dtype (``DataType`` enum) of the hash table a lookup layer's ``lookup_table`` creates.

        Read from the table op in the exported ``_create_resource`` function (following nested calls): asking
        TF to export a table with the wrong key dtype aborts the process instead of raising.
        """
        fn_id = self.child(table_id, "_create_resource")
        pending = [] if fn_id is None else list(self.graph.nodes[fn_id].function.concrete_functions)
        seen: set[str] = set()
        while pending:
            name = pending.pop()
            fn = self.functions.get(name)
            if fn is None or name in seen:
                continue
            seen.add(name)
            for node in fn.node_def:
                if "key_dtype" in node.attr:
                    return int(node.attr["key_dtype"].type)
                if "f" in node.attr:
                    pending.append(node.attr["f"].func.name)
        return None

    def traced_activations(self, layer_id: int) -> dict[int, str | None]:
        """The activation applied after each ``MatMul`` in a layer's traced call, by kernel variable node.

        Follows the data flow of the call's function: the kernel's ``ReadVariableOp`` feeds a ``MatMul``;
        the ops downstream of it up to the next ``MatMul`` are the bias add and the activation: one
        activation op, ``Sigmoid`` + ``Mul`` (swish) or none (linear).
        ``None``: ops that are no Keras activation torchrs knows. Used for Dense sublayers whose own call
        was never traced (an MLP block's: only the block's call was).
        """
        if layer_id in self._traced_activations:  # asked once per sublayer
            return self._traced_activations[layer_id]
        fn_id = self.child(
            layer_id, "call_and_return_conditional_losses", "call_and_return_all_conditional_losses"
        )
        names = [] if fn_id is None else list(self.graph.nodes[fn_id].function.concrete_functions)
        activations: dict[int, str | None] = self._traced_activations.setdefault(layer_id, {})
        for name in names:
            fn, saved = self.functions.get(name), self.graph.concrete_functions.get(name)
            if fn is None or saved is None:
                continue
            args = [arg.name for arg in fn.signature.input_arg]
            bound = list(saved.bound_inputs)
            if len(bound) > len(args):
                continue
            # The captured variables are the function's last arguments, in bound_inputs order.
            captured = dict(zip(args[len(args) - len(bound) :], bound, strict=True))
            consumers: dict[str, list[Any]] = {}
            for node in fn.node_def:
                for tensor in node.input:
                    consumers.setdefault(tensor.split(":")[0], []).append(node)
            reads = {
                node.name: captured[node.input[0]]
                for node in fn.node_def
                if node.op == "ReadVariableOp" and node.input and node.input[0] in captured
            }
            for node in fn.node_def:
                kernel = reads.get(node.input[1].split(":")[0]) if node.op == "MatMul" else None
                if kernel is None:
                    continue
                # Every op downstream of this MatMul up to the next layer's MatMul.
                ops: set[str] = set()
                frontier, seen = [node.name], {node.name}
                while frontier:
                    for after in consumers.get(frontier.pop(), []):
                        if after.name not in seen and after.op != "MatMul":
                            seen.add(after.name)
                            ops.add(after.op)
                            frontier.append(after.name)
                ops -= _LINEAR_OPS
                if not ops:
                    activations[kernel] = "linear"
                elif ops == {"Sigmoid", "Mul"}:
                    activations[kernel] = "swish"
                elif len(ops) == 1 and next(iter(ops)) in ACTIVATION_OPS:
                    activations[kernel] = ACTIVATION_OPS[next(iter(ops))]
                else:
                    activations[kernel] = None
        return activations

    def dense_activation(self, node_id: int, path: str, enclosing: int | None = None) -> str:
        """A Dense layer's activation, read from the op types of its traced call.

        Args:
            node_id: the Dense layer's node.
            path: its object path, for errors.
            enclosing: a layer whose traced call runs this Dense inline (an MLP block), read when the
                Dense's own call was not traced.
        """
        if enclosing is not None:
            kernels = [v for p, v in self.layer_variables(node_id) if p == "kernel"]
            activation = self.traced_activations(enclosing).get(kernels[0]) if kernels else None
            if activation is not None:
                return activation
        fn_id = self.child(
            node_id, "call_and_return_conditional_losses", "call_and_return_all_conditional_losses"
        )
        if fn_id is None:
            raise UnsupportedLayerError(
                "Dense",
                path,
                "its traced call is not in the SavedModel, so its activation is unknown",
            )
        ops: set[str] = set()
        traced = False
        for name in self.graph.nodes[fn_id].function.concrete_functions:
            fn = self.functions.get(name)
            if fn is not None:
                traced = True
                ops.update(node.op for node in fn.node_def)
        if not traced:  # e.g. the Dense sublayers of an MLP: only the MLP's call was traced
            raise UnsupportedLayerError(
                "Dense",
                path,
                "tf.saved_model.save kept no traced call of this layer, so its activation is "
                f"unknown; {REEXPORT_HINT}",
            )
        extra = ops - _LINEAR_OPS
        if not extra:
            return "linear"
        if extra == {"Sigmoid", "Mul"}:
            return "swish"
        if len(extra) == 1 and next(iter(extra)) in ACTIVATION_OPS:
            return ACTIVATION_OPS[next(iter(extra))]
        raise UnsupportedLayerError(
            "Dense",
            path,
            f"its call uses ops {sorted(extra)} that are no Keras activation torchrs knows",
        )


# -------------------------------------------------------------------------------------------
# The walker.
# -------------------------------------------------------------------------------------------


class _Walker:
    def __init__(
        self, sm: SavedModelReader, strict: bool, vocab_overrides: dict[str, Path]
    ) -> None:
        self.sm = sm
        self.strict = strict
        self.plan = Plan("tower", {})
        self.vocab_overrides = vocab_overrides

    # layer kinds ------------------------------------------------------------------------------

    def infer_class(self, node_id: int, path: str) -> str:
        sm = self.sm
        name = sm.class_name(node_id)
        if name:
            return name
        identifier = sm.identifier(node_id)
        if identifier == "_tf_keras_sequential":
            return "Sequential"
        if identifier == "_tf_keras_input_layer":
            return "InputLayer"
        if identifier == "_tf_keras_network":
            return "_Functional"
        names = {n for n, _ in sm.children(node_id)}
        if "lookup_table" in names:
            return "_Lookup"
        variables = {p for p, _ in sm.layer_variables(node_id)}
        if variables == {"embeddings"}:
            return "Embedding"
        if variables in ({"kernel"}, {"kernel", "bias"}):
            return "Dense"
        if variables and all(re.fullmatch(r"_sublayers/\d+/(kernel|bias)", v) for v in variables):
            return "MLP"
        if {"candidates", "identifiers"} <= names:
            return "BruteForce"
        candidates_id = self.sm.child(node_id, "_candidates")
        if "_counter" in names and (candidates_id is not None or "query_model" in names):
            return "Streaming"  # TFRS's Streaming: a row counter, the dataset, the query tower
        if "_counter" in names and variables == {"counter"}:
            return "Streaming"
        if identifier == "_tf_keras_model":
            return "_Container"
        held = ", ".join(sorted(variables)) or "no variables"
        return f"<unknown class (tf.saved_model.save keeps no class names); holds {held}>"

    def describe(self, node_id: int, path: str, prefix: str) -> dict[str, Any] | None:
        """Spec of the module at ``node_id``; its tensors go to the plan under ``prefix``."""
        self.plan.sources[prefix] = path
        cls = self.infer_class(node_id, path)
        if cls == "Sequential":
            return self.sequential(node_id, path, prefix)
        if cls == "Functional" or {"layers", "input_layers", "output_layers"} <= set(
            self.sm.config(node_id)
        ):
            return self.functional(node_id, path, prefix)
        if cls == "_Functional":
            raise ConversionError(
                f"{self.sm.source_label}: the Keras functional model at {path or '<root>'} was "
                "saved with tf.saved_model.save, which keeps its layers but not how they are "
                "connected (the functional config). Re-export it with model.save(dir, "
                "save_format='tf') or model.save('model.keras') and convert that."
            )
        if cls == "BruteForce":
            return self.brute_force(node_id, path, prefix)
        if cls == "Streaming":
            return self.streaming(node_id, path, prefix)
        if cls in rules.LOOKUP_LAYERS or cls == "_Lookup":
            return self.lookup(node_id, path, prefix, cls)
        if cls == "Embedding":
            return self.weighted(node_id, path, prefix, cls, self.embedding_config(node_id))
        if cls == "Dense":
            return self.weighted(node_id, path, prefix, cls, self.dense_config(node_id, path))
        if cls == "MLP":
            return self.weighted(node_id, path, prefix, cls, self.mlp_config(node_id, path))
        if cls == "Cross":
            return self.weighted(node_id, path, prefix, cls, self.sm.config(node_id))
        if cls == "Normalization":
            config = _keras_config(self.sm.config(node_id), ("axis", "invert", "mean", "variance"))
            if config.get("mean") is not None:  # statistics given to the constructor
                self.sm.skip_variables(node_id, "constant statistics given in the layer config")
                return {"class_name": cls, "config": _json_safe(config), "shapes": {}}
            return self.weighted(node_id, path, prefix, cls, config)
        if cls in rules.CONFIG_LAYERS:
            return self.config_layer(node_id, path, cls)
        if cls == "TextVectorization":
            return self.text_vectorization(node_id, path, prefix)
        if cls == "GRU":
            return self.gru(node_id, path, prefix)
        if cls in rules.STATELESS_LAYERS:
            return {"class_name": cls, "config": _json_safe(self.sm.config(node_id))}
        if cls in rules.GRAPH_LAYERS:
            return self.graph_layer(node_id, path, cls)
        if cls in rules.LAMBDA_LAYERS:
            function = self.sm.config(node_id).get("function")
            what = f" ({function})" if isinstance(function, str) else ""
            raise UnsupportedLayerError(
                cls,
                path,
                f"it wraps Python code{what}, which the export keeps only as a traced TF graph; "
                "replace it with a Keras layer, or rewrite the model in torchrs and use "
                "load_weights(module, MODEL_DIR)",
            )
        if cls in ("_Container",) or (
            self.sm.identifier(node_id) == "_tf_keras_model"
            and "layers" not in self.sm.config(node_id)
        ):
            return self.container(node_id, path, prefix)
        raise UnsupportedLayerError(cls, path)

    def embedding_config(self, node_id: int) -> dict[str, Any]:
        config = self.sm.config(node_id)
        return {"mask_zero": bool(config.get("mask_zero", False))}

    def dense_config(self, node_id: int, path: str, enclosing: int | None = None) -> dict[str, Any]:
        config = self.sm.config(node_id)
        if config:
            activation = config.get("activation", "linear")
            if isinstance(activation, dict):
                activation = activation.get("config", {}).get("name", activation.get("class_name"))
            return {"activation": activation, "use_bias": bool(config.get("use_bias", True))}
        has_bias = any(p == "bias" for p, _ in self.sm.layer_variables(node_id))
        activation = self.sm.dense_activation(node_id, path, enclosing)
        self.plan.report.append(
            ReportEntry(
                path,
                "inferred",
                reason=f"Dense config not in the export (tf.saved_model.save): activation "
                f"{activation!r} read from the traced call, use_bias={has_bias}",
            )
        )
        return {"activation": activation, "use_bias": has_bias}

    def required_config(
        self, node_id: int, path: str, cls: str, what: str = "its config"
    ) -> dict[str, Any]:
        """The layer's Keras config, or the refusal a plain ``tf.saved_model.save`` export (no configs) gets."""
        config = self.sm.config(node_id)
        if not config:
            raise UnsupportedLayerError(
                cls, path, f"{what} is not in the export (tf.saved_model.save); {REEXPORT_HINT}"
            )
        return config

    def config_layer(self, node_id: int, path: str, cls: str) -> dict[str, Any]:
        """A layer rebuilt from its Keras config alone (Discretization, Hashing)."""
        config = self.required_config(node_id, path, cls)
        self.sm.skip_variables(node_id, f"{cls} state is its config")
        if cls == "Hashing":
            self.plan.samples.setdefault(path, [b"a", b"torchrs", b"", OOV_PROBE])
        else:  # Discretization: every boundary (the right-hand bucket) and a value below all
            bounds = [float(b) for b in _keras_value(config.get("bin_boundaries") or [])]
            if bounds:
                self.plan.samples.setdefault(path, [bounds[0] - 1.0, *bounds])
        return {"class_name": cls, "config": _json_safe(_keras_config(config, _CONFIG_KEYS[cls]))}

    def text_vectorization(self, node_id: int, path: str, prefix: str) -> dict[str, Any]:
        """TextVectorization: options from the config, vocabulary from its inner lookup table."""
        config = self.sm.config(node_id)
        lookup_id = self.sm.child(node_id, "_lookup_layer")
        if not config or lookup_id is None:
            raise UnsupportedLayerError(
                "TextVectorization",
                path,
                f"its config or lookup layer is not in the export; {REEXPORT_HINT}",
            )
        for key in ("standardize", "split"):
            if config.get(key) not in (None, *_TEXT_MODES[key]):
                raise UnsupportedLayerError(
                    "TextVectorization",
                    path,
                    f"{key}={config.get(key)!r} is a custom function; torchrs cannot rebuild it",
                )
        self.lookup(lookup_id, f"{path}/_lookup_layer", f"{prefix}_lookup_layer.", "StringLookup")
        self.plan.report.pop()  # the lookup's entry, re-stated for the TextVectorization below
        tokens = self.plan.samples.pop(f"{path}/_lookup_layer", [])[:-1]
        self.plan.samples.setdefault(path, [b" ".join(tokens), b"", OOV_PROBE.strip(b"\x00")])
        self.plan.report.append(
            ReportEntry(
                f"{path}/_lookup_layer/lookup_table",
                "converted",
                f"{prefix}_lookup_layer.token_bytes",
                reason="TextVectorization vocabulary exported from its lookup table",
            )
        )
        return {
            "class_name": "TextVectorization",
            "config": _json_safe(_keras_config(config, _CONFIG_KEYS["TextVectorization"])),
        }

    def gru(self, node_id: int, path: str, prefix: str) -> dict[str, Any]:
        """Keras GRU -> ``torch.nn.GRU`` (batch first), gates reordered (see ``rules``)."""
        config = self.required_config(
            node_id, path, "GRU", "its config (units, activations, reset_after)"
        )
        units = int(config["units"])
        wanted = {
            "activation": "tanh",
            "recurrent_activation": "sigmoid",
            "reset_after": True,
            "use_bias": True,
            "go_backwards": False,
            "return_state": False,
            "time_major": False,
            "stateful": False,
        }
        for key, value in wanted.items():
            if config.get(key, value) != value:
                raise UnsupportedLayerError(
                    "GRU",
                    path,
                    f"{key}={config.get(key)!r} has no torch.nn.GRU equivalent (needs {value!r})",
                )
        variables = dict(self.sm.layer_variables(node_id))
        sources = {"cell/kernel", "cell/recurrent_kernel", "cell/bias"}
        if set(variables) != sources:
            raise UnsupportedLayerError("GRU", path, f"unexpected variables {sorted(variables)}")
        shapes: dict[str, list[int]] = {}
        for relative, (torch_name, row) in rules.GRU_RULES.items():
            variable = relative.split("#")[0]
            var_id = variables[variable]
            key = self.sm.var_key[var_id]
            label = f"{path}/{variable}" if path else variable  # GRU keys are "variables/N"
            source_shape = [int(d) for d in self.sm.shapes[key]]
            shape = (3 * units,) if row is not None else (3 * units, source_shape[0])

            def load(
                key: str = key, row: int | None = row, reader: Any = self.sm.reader
            ) -> np.ndarray:
                array = read_tensor(reader, key)
                return rules.keras_gru_to_torch(array if row is None else array[row], units)

            self.plan.tensors.append(
                TensorPlan(
                    prefix + "gru." + torch_name, label, shape, np.dtype("float32"), load, True
                )
            )
            shapes["gru." + torch_name] = list(shape)
            previous = self.sm.claimed.get(key)
            targets = (
                f"{previous.torch_name}, " if previous is not None and previous.torch_name else ""
            )
            self.sm.claimed[key] = ReportEntry(
                label,
                "converted",
                targets + prefix + "gru." + torch_name,
                shape=source_shape,
                reason="GRU gates reordered (z, r, h) -> (r, z, n)",
                transposed=row is None,
            )
        return {
            "class_name": "GRU",
            "config": {
                "units": units,
                "return_sequences": bool(config.get("return_sequences")),
                "zero_output_for_mask": bool(config.get("zero_output_for_mask")),
            },
            "shapes": shapes,
        }

    def mlp_config(self, node_id: int, path: str) -> dict[str, Any]:
        """``tfrs.layers.blocks.MLP`` config, read from its Dense sublayers.

        MLP has no ``get_config``: Keras records only the arguments passed explicitly (and nothing
        for a callable activation), so units, activations and ``use_bias`` are taken from the
        ``_sublayers/<i>`` Dense nodes themselves: their Keras config, or in a plain SavedModel the
        MLP's traced call, which runs the sublayers inline.
        """
        sublayers = self.sm.child(node_id, "_sublayers")
        dense_ids = sorted(
            (int(name), child_id)
            for name, child_id in (self.sm.children(sublayers) if sublayers is not None else [])
            if name.isdigit()
        )
        if not dense_ids:
            raise UnsupportedLayerError("MLP", path, "its `_sublayers` are not in the export")
        units: list[int] = []
        configs: list[dict[str, Any]] = []
        for index, dense_id in dense_ids:
            configs.append(self.dense_config(dense_id, f"{path}/_sublayers/{index}", node_id))
            kernel = [v for p, v in self.sm.layer_variables(dense_id) if p == "kernel"]
            if not kernel:
                raise UnsupportedLayerError("MLP", path, f"sublayer {index} has no kernel")
            units.append(int(self.sm.shapes[self.sm.var_key[kernel[0]]][1]))
        hidden = {c["activation"] for c in configs[:-1]}
        if len(hidden) > 1 or len({c["use_bias"] for c in configs}) > 1:
            raise UnsupportedLayerError(
                "MLP", path, f"its Dense sublayers differ in activation / use_bias: {configs}"
            )
        return {
            "units": units,
            "use_bias": configs[0]["use_bias"],
            "activation": hidden.pop() if hidden else "relu",
            "final_activation": configs[-1]["activation"],
        }

    def weighted(
        self, node_id: int, path: str, prefix: str, cls: str, config: dict[str, Any]
    ) -> dict[str, Any]:
        shapes: dict[str, list[int]] = {}
        for relative, var_id in self.sm.layer_variables(node_id):
            found = rules.match(cls, relative)
            if found is None:
                raise UnsupportedLayerError(
                    cls,
                    path,
                    f"variable {relative!r} has no rule in converters.tfrs_to_torch.rules",
                )
            torch_name, transpose = found
            tensor = self.sm.variable_plan(var_id, prefix + torch_name, transpose)
            self.plan.tensors.append(tensor)
            shapes[torch_name] = list(tensor.shape)
        return {"class_name": cls, "config": _json_safe(config), "shapes": shapes}

    def sequential(self, node_id: int, path: str, prefix: str) -> dict[str, Any]:
        layers = sorted(
            (
                (int(name.split("-")[1]), child_id)
                for name, child_id in self.sm.children(node_id)
                if re.fullmatch(r"layer-\d+", name)
            ),
        )
        specs: list[dict[str, Any]] = []
        for index, child_id in layers:
            child_path = f"{path}/layer-{index}" if path else f"layer-{index}"
            if self.infer_class(child_id, child_path) == "InputLayer":
                continue
            spec = self.unskippable(child_id, child_path, f"{prefix}{len(specs)}.", "a Sequential")
            specs.append(spec)
        return {"class_name": "Sequential", "layers": specs}

    def functional(self, node_id: int, path: str, prefix: str) -> dict[str, Any]:
        """A Keras functional model: its layers, and its graph from the functional config.

        The config lists every layer with ``inbound_nodes`` (one entry per call of the layer,
        each the structure of its first argument as ``[layer, node_index, tensor_index,
        kwargs]`` references), and the model's ``input_layers`` / ``output_layers``.
        """
        sm = self.sm
        config = sm.config(node_id)
        where = path or "<root>"
        by_name: dict[str, tuple[int, int]] = {}
        for name, child_id in sm.children(node_id):
            found = re.fullmatch(r"layer-(\d+)", name)
            if found:
                layer_name = sm.config(child_id).get("name")
                if isinstance(layer_name, str):
                    by_name.setdefault(layer_name, (int(found.group(1)), child_id))
        input_specs: dict[str, dict[str, Any]] = {}
        for layer in config["layers"]:
            if layer.get("class_name") == "InputLayer":
                layer_config = layer.get("config") or {}
                name = str(layer.get("name") or layer_config.get("name"))
                shape = _keras_value(layer_config.get("batch_input_shape"))
                input_specs[name] = {
                    "dtype": layer_config.get("dtype", "float32"),
                    "shape": shape if isinstance(shape, list) else None,
                }
        keys: dict[str, str] = {}
        taken = set(input_specs)
        layers: dict[str, dict[str, Any]] = {}
        raw_nodes: list[tuple[str, int, Any]] = []
        for layer in config["layers"]:
            cls = str(layer.get("class_name"))
            name = str(layer.get("name") or (layer.get("config") or {}).get("name"))
            if cls == "InputLayer":
                continue
            if name not in by_name:
                raise ConversionError(
                    f"{sm.source_label}: layer {name!r} ({cls}) of the functional model at {where} "
                    "is in its config but not in the export; re-export the model."
                )
            index, child_id = by_name[name]
            child_path = f"{path}/layer-{index}" if path else f"layer-{index}"
            key = _module_key(name, taken)
            keys[name] = key
            spec = self.unskippable(
                child_id, child_path, f"{prefix}layers.{key}.", "a functional graph"
            )
            layers[key] = spec
            first = _first_node_index(layer)
            for node_index, node_data in enumerate(layer.get("inbound_nodes") or [], first):
                inbound, kwargs = _parse_node(node_data, f"{child_path} ({name})")
                called = {k: v for k, v in kwargs.items() if not (k == "training" and not v)}
                if called:
                    raise UnsupportedLayerError(
                        cls,
                        child_path,
                        f"it is called with keyword arguments {sorted(called)} (an explicit mask "
                        "or training=True), which the rebuilt graph does not pass",
                    )
                raw_nodes.append((name, node_index, inbound))

        def rename(structure: Any) -> Any:
            if _is_ref(structure):
                name = structure[0]
                if name not in keys and name not in input_specs:
                    raise ConversionError(
                        f"{sm.source_label}: the functional model at {where} refers to an unknown "
                        f"layer {name!r}; the export's config is inconsistent."
                    )
                return [keys.get(name, name), int(structure[1]), int(structure[2])]
            if isinstance(structure, dict):
                return {k: rename(v) for k, v in structure.items()}
            return [rename(v) for v in structure]

        nodes = _topological(
            [
                {"layer": keys[name], "node_index": i, "inbound": rename(inbound)}
                for name, i, inbound in raw_nodes
            ],
            set(input_specs),
            where,
        )
        inputs = _unnest(_keras_refs(config["input_layers"]))
        outputs = _unnest(_keras_refs(config["output_layers"]))
        if _is_ref(inputs):
            inputs = [inputs]
        if isinstance(inputs, dict):
            input_names: Any = {k: v[0] for k, v in inputs.items()}
        else:
            input_names = [ref[0] for ref in inputs]
        return {
            "class_name": "Functional",
            "config": {"name": config.get("name")},
            "inputs": input_names,
            "input_specs": input_specs,
            "outputs": rename(outputs),
            "layers": layers,
            "nodes": nodes,
        }

    def graph_layer(self, node_id: int, path: str, cls: str) -> dict[str, Any]:
        """Merge / reshape / dropout layers: no variables, rebuilt from their Keras config."""
        config = self.required_config(node_id, path, cls)
        if cls == "Flatten" and config.get("data_format") == "channels_first":
            raise UnsupportedLayerError(cls, path, "data_format='channels_first' is not rebuilt")
        return {
            "class_name": cls,
            "config": _json_safe(_keras_config(config, rules.GRAPH_LAYERS[cls])),
        }

    def guarded(self, node_id: int, path: str, prefix: str) -> dict[str, Any] | None:
        """``describe``, or with ``--no-strict`` a report entry for an unsupported layer."""
        try:
            return self.describe(node_id, path, prefix)
        except UnsupportedLayerError as err:
            if self.strict:
                raise
            self.plan.report.append(ReportEntry(path, "unsupported", reason=str(err)))
            self.sm.skip_variables(node_id, f"inside unsupported layer {err.class_name}")
            return None

    def unskippable(self, node_id: int, path: str, prefix: str, where: str) -> dict[str, Any]:
        """``describe`` of a layer ``where`` (a Sequential, a functional graph) cannot run without: an unsupported
        one is an error even with ``--no-strict``."""
        spec = self.guarded(node_id, path, prefix)
        if spec is None:
            raise UnsupportedLayerError(
                self.infer_class(node_id, path),
                path,
                f"{where} cannot skip a layer; rewrite the model in torchrs and use load_weights",
            )
        return spec

    def container(self, node_id: int, path: str, prefix: str) -> dict[str, Any]:
        children: dict[str, dict[str, Any]] = {}
        seen: set[int] = set()
        named = sorted(self.sm.children(node_id), key=lambda item: item[0].startswith("_"))
        for name, child_id in named:
            if name in TRACKING_NAMES or child_id in seen or not self.sm.is_layer(child_id):
                continue
            seen.add(child_id)
            child_path = f"{path}/{name}" if path else name
            variables = self.sm.layer_variables(child_id)
            trainable = [v for _, v in variables if self.sm.graph.nodes[v].variable.trainable]
            cls = self.infer_class(child_id, child_path)
            if cls in rules.TRAINING_ONLY_LAYERS or (not trainable and cls.startswith("<unknown")):
                self.plan.report.append(
                    ReportEntry(
                        child_path, "skipped", reason="no trainable weights (loss / metrics / task)"
                    )
                )
                self.sm.skip_variables(child_id, "metric or task state, not needed for inference")
                continue
            spec = self.guarded(child_id, child_path, f"{prefix}{name}.")
            if spec is not None:
                children[name] = spec
        if not children:
            raise ConversionError(
                f"{self.sm.source_label}: found no recommender part (Keras towers, an index) at "
                f"{path or 'the root'}. Is this SavedModel a TFRS / Keras model?"
            )
        return {"class_name": "Container", "children": children}

    def brute_force(self, node_id: int, path: str, prefix: str) -> dict[str, Any]:
        sm = self.sm
        candidates_id = sm.child(node_id, "candidates", "_candidates")
        identifiers_id = sm.child(node_id, "identifiers", "_identifiers")
        assert candidates_id is not None and identifiers_id is not None  # checked by infer_class
        self.plan.tensors.append(sm.variable_plan(candidates_id, f"{prefix}candidates", False))
        key = sm.var_key[identifiers_id]
        ids = read_tensor(sm.reader, key)
        identifiers_dtype = "string" if ids.dtype == object else str(ids.dtype)
        if ids.dtype == object:
            self.plan.tensors.extend(
                _bytes_tensors(f"{prefix}identifiers.", list(ids), _strip_key(key))
            )
            sm.claimed[key] = ReportEntry(
                _strip_key(key),
                "converted",
                f"{prefix}identifiers.token_bytes/token_offsets",
                shape=[len(ids)],
            )
            self.plan.samples.setdefault("identifiers", [bytes(x) for x in ids[:3]])
        else:
            self.plan.tensors.append(
                sm.variable_plan(identifiers_id, f"{prefix}identifiers", False)
            )
        query_id = sm.child(node_id, "query_model", "_query_model")
        query = None
        if query_id is not None:
            query = self.describe(
                query_id, f"{path}/query_model" if path else "query_model", f"{prefix}query_model."
            )
        k = sm.config(node_id).get("k")
        signature = sm.signatures.get("serving_default")
        if k is None and signature is not None:
            for output in signature.outputs.values():
                dims = output.tensor_shape.dim
                if len(dims) == 2 and dims[1].size > 0:
                    k = int(dims[1].size)
        return {
            "class_name": "BruteForce",
            "config": {"k": int(k) if k is not None else 10},
            "identifiers_dtype": identifiers_dtype,
            "query_model": query,
        }

    def streaming(self, node_id: int, path: str, prefix: str) -> dict[str, Any]:
        """A ``Streaming`` index: its candidate batches read back from the exported dataset.

        ``Streaming`` keeps the ``tf.data.Dataset`` given to ``index_from_dataset`` (no variables);
        ``tf.saved_model.save`` stores that dataset as a graph of dataset ops (its constants
        included) behind ``_candidates/_variant_tracker``. It is rebuilt here and iterated once, so
        the torchrs index gets the same batches, row for row.
        """
        sm = self.sm
        where = path or "<root>"
        label = f"{path}/_candidates" if path else "_candidates"
        candidates_id = sm.child(node_id, "_candidates")
        tracker_id = None if candidates_id is None else sm.child(candidates_id, "_variant_tracker")
        if tracker_id is None:
            raise ConversionError(
                f"{sm.source_label}: the Streaming index at {where} holds no candidate dataset "
                "(index_from_dataset was not called before saving). Index it before "
                "tf.saved_model.save, or export a BruteForce index of the same candidates."
            )
        batches = self._read_candidate_batches(tracker_id, path, label)
        embeddings = [np.asarray(emb) for _, emb in batches]
        if not embeddings or any(e.ndim != 2 for e in embeddings):
            shapes = [e.shape for e in embeddings]
            raise ConversionError(
                f"{sm.source_label}: the candidate dataset of the Streaming index at {where} yields "
                f"batches of shapes {shapes}; expected (batch, dim) embedding batches."
            )
        candidates = np.ascontiguousarray(np.concatenate(embeddings))
        sizes = np.asarray([len(e) for e in embeddings], dtype=np.int64)
        self.plan.tensors.append(
            TensorPlan(
                f"{prefix}candidates",
                label,
                candidates.shape,
                candidates.dtype,
                _constant(candidates),
            )
        )
        self.plan.tensors.append(
            TensorPlan(f"{prefix}batch_sizes", label, sizes.shape, sizes.dtype, _constant(sizes))
        )
        identifiers_dtype: str | None = None
        if batches[0][0] is not None:
            ids = np.concatenate([np.asarray(i).reshape(-1) for i, _ in batches])
            if ids.dtype == object:
                identifiers_dtype = "string"
                tokens = [bytes(t) for t in ids]
                self.plan.tensors.extend(_bytes_tensors(f"{prefix}identifiers.", tokens, label))
            else:
                identifiers_dtype = "int64"
                array = ids.astype(np.int64)
                self.plan.tensors.append(
                    TensorPlan(
                        f"{prefix}identifiers", label, array.shape, array.dtype, _constant(array)
                    )
                )
        self.plan.report.append(
            ReportEntry(
                label,
                "converted",
                f"{prefix}candidates",
                shape=list(candidates.shape),
                reason=f"{len(sizes)} candidate batches read from the exported tf.data pipeline"
                + (f", with {identifiers_dtype} identifiers" if identifiers_dtype else ""),
            )
        )
        query_id = sm.child(node_id, "query_model", "_query_model")
        query = None
        if query_id is not None:
            query = self.describe(
                query_id, f"{path}/query_model" if path else "query_model", f"{prefix}query_model."
            )
        sm.skip_variables(node_id, "Streaming's row counter (reset at every query)")
        config = {"k": 10, "handle_incomplete_batches": True, "sorted_order": True}
        config.update(self._streaming_call_settings(node_id))
        config.update({k: v for k, v in sm.config(node_id).items() if k in config})
        return {
            "class_name": "Streaming",
            "config": config,
            "identifiers_dtype": identifiers_dtype,
            "query_model": query,
        }

    def _read_candidate_batches(
        self, tracker_id: int, path: str, label: str
    ) -> list[tuple[np.ndarray | None, np.ndarray]]:
        tf = import_tf()
        sm = self.sm
        types = sm.dataset_output_types(tracker_id)
        if len(types) not in (1, 2):
            raise ConversionError(
                f"{sm.source_label}: the candidate dataset at {label} yields {len(types)} tensors "
                "per element; TFRS indexes take embeddings or (identifiers, embeddings)."
            )
        specs = [tf.TensorSpec(None, tf.dtypes.as_dtype(t)) for t in types]
        structure = specs[0] if len(specs) == 1 else tuple(specs)
        try:
            handle = sm.restored(path)._candidates._variant_tracker.resource_handle
            dataset = tf.data.experimental.from_variant(handle, structure)
            batches: list[tuple[np.ndarray | None, np.ndarray]] = []
            for element in dataset:
                if len(specs) == 1:
                    batches.append((None, element.numpy()))
                else:
                    batches.append((element[0].numpy(), element[1].numpy()))
        except ConversionError:
            raise
        except Exception as err:  # files the pipeline reads are gone, a stateful op...
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConversionError(
                f"{sm.source_label}: the candidate dataset of the Streaming index at "
                f"{path or '<root>'} cannot be read back from the export ({message}). Export a "
                "BruteForce index of the same candidates (index_from_dataset(dataset)) and "
                "convert that, or build torchrs.layers.factorized_top_k.Streaming yourself and "
                "call index_from_dataset with the candidate embeddings."
            ) from None
        return batches

    def _streaming_call_settings(self, node_id: int) -> dict[str, Any]:
        """``k``, ``handle_incomplete_batches`` and ``sorted_order`` from the traced call.

        The reduce function of ``Streaming.call`` ends in ``TopKV2(scores, k)`` (``sorted`` as an
        attribute), with ``k = minimum(K, n)`` under ``handle_incomplete_batches``.
        """
        sm = self.sm
        fn_id = sm.child(
            node_id, "call_and_return_all_conditional_losses", "call_and_return_conditional_losses"
        )
        if fn_id is None:
            return {}
        for name in sm.graph.nodes[fn_id].function.concrete_functions:
            fn = sm.functions.get(name)
            if fn is None:
                continue
            for node in fn.node_def:
                if node.op != "ReduceDataset":
                    continue
                reducer = sm.functions.get(node.attr["f"].func.name)
                if reducer is None:
                    continue
                nodes = {n.name: n for n in reducer.node_def}
                for top_k in (n for n in reducer.node_def if n.op == "TopKV2"):
                    # SavedModels strip attributes at their default (sorted=True).
                    is_sorted = top_k.attr["sorted"].b if "sorted" in top_k.attr else True
                    settings: dict[str, Any] = {"sorted_order": bool(is_sorted)}
                    source = nodes.get(top_k.input[1].split(":")[0])
                    if source is not None and source.op == "Minimum":
                        settings["handle_incomplete_batches"] = True
                        source = nodes.get(source.input[0].split(":")[0])
                    elif source is not None:
                        settings["handle_incomplete_batches"] = False
                    if source is not None and source.op == "Const":
                        tf = import_tf()
                        settings["k"] = int(tf.make_ndarray(source.attr["value"].tensor))
                    return settings
        return {}

    def lookup(self, node_id: int, path: str, prefix: str, cls: str) -> dict[str, Any]:
        sm = self.sm
        config = sm.config(node_id)
        sm.skip_variables(node_id, "adapt() state (token counts), not needed after adapt")
        override = self.vocab_overrides.get(path) or self.vocab_overrides.get(
            config.get("name", "\0")
        )
        table = sm.restored(path).lookup_table
        table_id = sm.child(node_id, "lookup_table")
        key_dtype = None if table_id is None else sm.table_key_dtype(table_id)
        keys, values = _export_table(table, cls, path, key_dtype)
        if cls == "_Lookup":
            cls = "StringLookup" if keys.dtype == object else "IntegerLookup"
        order = np.argsort(values, kind="stable")
        keys, values = keys[order], values[order]
        start = int(values[0]) if len(values) else 1
        if len(values) and not np.array_equal(values, np.arange(start, start + len(values))):
            raise ConversionError(
                f"The lookup table of {cls} at {path} does not map its vocabulary to consecutive "
                "indices; it is not a Keras StringLookup/IntegerLookup table."
            )
        clean = {k: v for k, v in config.items() if k not in _LOOKUP_DROP}
        if not config and start > 1:
            # Index 0 may be a mask token (1 + num_oov_indices = start) or an OOV bucket (num_oov_indices =
            # start); the two map out-of-vocabulary inputs differently and nothing in the export tells them apart.
            raise UnsupportedLayerError(
                cls,
                path,
                f"tf.saved_model.save kept no config and its table starts at index {start}, so index 0 may be a "
                f"mask token or an OOV bucket; {REEXPORT_HINT}",
            )
        if not config:
            clean = {"num_oov_indices": start}
            self.plan.report.append(
                ReportEntry(
                    path,
                    "inferred",
                    reason=f"{cls} config not in the export (tf.saved_model.save): assumed Keras "
                    f"defaults with mask_token=None and num_oov_indices={start} (first index of "
                    "the table)",
                )
            )
        tokens = list(keys)
        if override is not None:
            from torchrs.preprocessing._index_lookup import read_vocabulary_file

            tokens = read_vocabulary_file(override)
        source = f"{path}/lookup_table"
        if cls == "StringLookup":
            self.plan.tensors.extend(_bytes_tensors(prefix, [bytes(t) for t in tokens], source))
            self.plan.samples.setdefault(path, [bytes(t) for t in tokens[:4]] + [OOV_PROBE])
        else:
            array = np.asarray(tokens, dtype=np.int64)
            self.plan.tensors.append(
                TensorPlan(prefix + "tokens", source, array.shape, array.dtype, _constant(array))
            )
            self.plan.samples.setdefault(path, [int(t) for t in tokens[:4]] + [-987654321])
        self.plan.report.append(
            ReportEntry(
                source,
                "converted",
                prefix + ("token_bytes" if cls == "StringLookup" else "tokens"),
                shape=[len(tokens)],
                reason="vocabulary exported from the lookup table",
            )
        )
        if config.get("output_mode") in ("tf_idf", "tf-idf"):
            # The adapted IDF weights (specials included) are a variable of the layer: taken as is.
            idf = [v for p, v in sm.layer_variables(node_id) if p == "idf_weights"]
            if not idf:
                raise UnsupportedLayerError(
                    cls, path, "output_mode='tf_idf' but the export holds no idf_weights variable"
                )
            self.plan.tensors.append(sm.variable_plan(idf[0], prefix + "idf_weights", False))
        return {"class_name": cls, "config": _json_safe(clean)}


# Names a module of an ``nn.ModuleDict`` cannot take (its own attributes).
_MODULE_DICT_ATTRIBUTES = frozenset(
    {"keys", "items", "values", "update", "pop", "clear", "training", "forward", "layers"}
)


def _module_key(name: str, taken: set[str]) -> str:
    """A torch module name for a Keras layer name: no dots, unique, not a ModuleDict attribute.

    >>> taken = {"user_id"}
    >>> _module_key("dense", taken), _module_key("dense", taken), _module_key("a.b", taken)
    ('dense', 'dense_1', 'a_b')
    >>> _module_key("keys", taken), _module_key("_x", taken)
    ('layer_keys', 'layer__x')
    """
    key = re.sub(r"\W", "_", name)
    if not key or key.startswith("_") or key in _MODULE_DICT_ATTRIBUTES:
        key = f"layer_{key}"
    candidate, suffix = key, 1
    while candidate in taken:
        candidate, suffix = f"{key}_{suffix}", suffix + 1
    taken.add(candidate)
    return candidate


def _is_ref(value: Any) -> bool:
    """``[layer name, node index, tensor index(, kwargs)]``: a tensor of a Keras functional config."""
    return (
        isinstance(value, list)
        and len(value) in (3, 4)
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and isinstance(value[2], int)
        and (len(value) == 3 or isinstance(value[3], dict))
    )


def _keras_refs(structure: Any) -> Any:
    """``input_layers`` / ``output_layers``: refs ``[name, 0, 0]`` in a list or dict."""
    if _is_ref(structure):
        return list(structure[:3])
    if isinstance(structure, dict):
        return {k: _keras_refs(v) for k, v in structure.items()}
    if isinstance(structure, list):
        return [_keras_refs(v) for v in structure]
    raise ConversionError(f"Unexpected entry {structure!r} in a Keras functional config.")


def _unnest(structure: Any) -> Any:
    """Keras's ``unnest_if_single_tensor``: a list holding one ref is that ref."""
    if isinstance(structure, list) and len(structure) == 1 and _is_ref(structure[0]):
        return structure[0]
    return structure


def _first_node_index(layer: dict[str, Any]) -> int:
    """Index of a layer's first call listed in ``inbound_nodes`` (tf_keras's
    ``_should_skip_first_node``): a nested model built on its own ``Input`` keeps that first
    node out of the config, so its calls in this graph are numbered from 1.
    """
    config = layer.get("config") or {}
    if "input_layers" in config:
        return 1
    inner = config.get("layers")
    if isinstance(inner, list) and inner and isinstance(inner[0], dict):
        return int(inner[0].get("class_name") == "InputLayer")
    return 0


def _parse_node(node_data: Any, where: str) -> tuple[Any, dict[str, Any]]:
    """One entry of ``inbound_nodes``: (the first call argument as refs, the call's kwargs)."""
    kwargs: dict[str, Any] = {}

    def walk(value: Any) -> Any:
        if _is_ref(value):
            if value[0] == "_CONSTANT_VALUE" or value[1] < 0:
                raise UnsupportedLayerError(
                    "<constant input>", where, "it is called on a constant, not a layer output"
                )
            if len(value) == 4:
                kwargs.update(value[3])
            return list(value[:3])
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        raise UnsupportedLayerError(
            "<constant input>", where, f"its call argument {value!r} is not a layer output"
        )

    return _unnest(walk(node_data)), kwargs


def _refs_of(structure: Any) -> list[tuple[str, int]]:
    if _is_ref(structure):
        return [(structure[0], structure[1])]
    values = structure.values() if isinstance(structure, dict) else structure
    return [ref for value in values for ref in _refs_of(value)]


def _topological(nodes: list[dict[str, Any]], inputs: set[str], where: str) -> list[dict[str, Any]]:
    """Layer calls in an order where every input is computed first (config order where possible)."""
    ready = {(name, 0) for name in inputs}
    pending = list(nodes)
    ordered: list[dict[str, Any]] = []
    while pending:
        for position, node in enumerate(pending):
            if all(ref in ready for ref in _refs_of(node["inbound"])):
                ordered.append(pending.pop(position))
                ready.add((node["layer"], node["node_index"]))
                break
        else:
            missing = sorted(
                {f"{r[0]}[{r[1]}]" for n in pending for r in _refs_of(n["inbound"])}
                - {f"{r[0]}[{r[1]}]" for r in ready}
            )
            raise ConversionError(
                f"The functional model at {where} has layer calls whose inputs are never "
                f"computed ({', '.join(missing)}); the export's config is inconsistent."
            )
    return ordered


# Config keys passed on to the torchrs constructors (name / dtype / shapes are Keras bookkeeping).
_CONFIG_KEYS = {
    "Discretization": ("bin_boundaries", "num_bins", "epsilon", "output_mode"),
    "Hashing": ("num_bins", "mask_value", "salt", "output_mode"),
    "TextVectorization": (
        "max_tokens",
        "standardize",
        "split",
        "ngrams",
        "output_mode",
        "output_sequence_length",
        "pad_to_max_tokens",
        "ragged",
        "encoding",
    ),
}
# Built-in TextVectorization options (anything else is a user function, not serialisable).
_TEXT_MODES = {
    "standardize": ("lower_and_strip_punctuation", "lower", "strip_punctuation"),
    "split": ("whitespace", "character"),
}


def _keras_value(value: Any) -> Any:
    """Undoes Keras config serialisation of tuples (``{"class_name": "__tuple__", ...}``)."""
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        return [_keras_value(v) for v in value.get("items", [])]
    if isinstance(value, list):
        return [_keras_value(v) for v in value]
    return value


def _keras_config(config: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: _keras_value(config[k]) for k in keys if k in config}


_LOOKUP_DROP = frozenset(
    {"vocabulary", "idf_weights", "vocabulary_size", "has_input_vocabulary", "trainable"}
)


def _export_table(
    table: Any, cls: str, path: str, key_dtype: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The table's ``(keys, values)``. ``key_dtype`` (a ``DataType`` enum) comes from the export's table op;
    without it the layer class decides, and a class-less table (plain ``tf.saved_model.save``) is refused rather
    than probed, since exporting with the wrong key dtype aborts the process."""
    tf = import_tf()
    if key_dtype is not None:
        dtype = tf.as_dtype(key_dtype)
    elif cls in ("StringLookup", "IntegerLookup"):
        dtype = tf.string if cls == "StringLookup" else tf.int64
    else:
        raise ConversionError(
            f"Cannot tell the key type of the lookup table of the layer at {path}: the export holds no table "
            "op with a key dtype. Re-export the model with model.save(..., save_format='tf') or as .keras."
        )
    if dtype not in (tf.string, tf.int64):
        raise ConversionError(
            f"The lookup table of the layer at {path} has {dtype.name} keys; StringLookup / IntegerLookup "
            "tables have string or int64 keys."
        )
    try:
        keys, values = tf.raw_ops.LookupTableExportV2(
            table_handle=table.resource_handle, Tkeys=dtype, Tvalues=tf.int64
        )
    except Exception as err:
        raise ConversionError(
            f"Cannot export the lookup table of the layer at {path}: {err}"
        ) from None
    return np.asarray(keys.numpy()), np.asarray(values.numpy())


def _constant(array: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: array


def _bytes_tensors(prefix: str, tokens: list[bytes], source: str) -> list[TensorPlan]:
    """Tokens as ``token_bytes`` (uint8, concatenated) + ``token_offsets`` (int64, N + 1)."""
    blob = np.frombuffer(b"".join(tokens), dtype=np.uint8).copy()
    offsets = np.zeros(len(tokens) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in tokens], out=offsets[1:])
    return [
        TensorPlan(prefix + "token_bytes", source, blob.shape, blob.dtype, lambda: blob),
        TensorPlan(prefix + "token_offsets", source, offsets.shape, offsets.dtype, lambda: offsets),
    ]


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def _skip_reason(path: str) -> str:
    if re.search(r"(token_counts|token_document_counts|num_documents)(/|$)", path):
        return "adapt() state (token counts), not needed after adapt"
    if path.startswith("save_counter"):
        return "checkpoint save counter"
    if path.startswith("optimizer") or "/optimizer/" in path:
        return "optimizer state (slots and iterations are not part of an inference export)"
    if re.search(
        r"(^|/)(metrics|_metrics|total|count|_top_k_metric|_factorized_metrics)(/|$)", path
    ):
        return "metric state"
    return "not used by the rebuilt module"


def plan_saved_model(
    fmt: SourceFormat, strict: bool = True, vocab_overrides: dict[str, Path] | None = None
) -> Plan:
    """The conversion plan of a SavedModel / Keras SavedModel / ``.keras`` archive.

    Args:
        fmt: what :func:`~converters.tfrs_to_torch.formats.detect_format` found.
        strict: raise on unsupported layers (else list them in the report).
        vocab_overrides: layer path or name -> vocabulary file replacing the exported table.

    Returns:
        The :class:`Plan`.

    Raises:
        ConversionError: unreadable export, no recommender inside, unsupported layer (strict).
    """
    directory, label = fmt.path, fmt.path
    cleanup: list[Any] = []
    if fmt.kind == KERAS_ARCHIVE:
        directory = _resave_keras_archive(fmt.path, cleanup)
    if fmt.kind == CHECKPOINT:
        raise ConversionError("plan_saved_model() takes a SavedModel; use plan_checkpoint().")
    sm = SavedModelReader(directory, str(Path(directory) / "variables" / "variables"), label)
    walker = _Walker(sm, strict, vocab_overrides or {})
    if not sm.is_layer(0) and walker.infer_class(0, "") != "BruteForce":
        raise ConversionError(
            f"{label} is a SavedModel of a {sm.identifier(0)!r} object, not a Keras / TFRS model "
            "(no layers, towers or index inside). Export the TFRS model, tower or index instead."
        )
    spec = walker.describe(0, "", "")
    assert spec is not None
    plan = walker.plan
    plan.architecture = spec
    plan.model_kind = {"BruteForce": "index", "Streaming": "index", "Container": "model"}.get(
        spec["class_name"], "tower"
    )
    for key in sm.shapes:
        if key == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue
        entry = sm.claimed.get(key) or ReportEntry(
            _strip_key(key), "skipped", reason=_skip_reason(key)
        )
        plan.report.append(entry)
    # A compiled Keras model saves its optimizer too (include_optimizer=True): slots for resuming.
    from converters.tfrs_to_torch.optimizer_state import plan_optimizer

    plan_optimizer(
        sm.reader,
        checkpoint_object_graph(sm.reader),
        plan,
        strict=strict,
        keras_config=(sm.meta.get(0) or {}).get("training_config"),
    )
    plan.probe = TFProbe(sm)
    plan.cleanup = cleanup
    return plan


def _resave_keras_archive(path: str, cleanup: list[Any]) -> str:
    tf = import_tf()
    try:
        # Compiled, so that the optimizer's variables (model.weights.h5) come along when present.
        model = tf.keras.models.load_model(path)
    except Exception:
        try:  # a compile config tf_keras cannot rebuild (custom loss...): weights only
            model = tf.keras.models.load_model(path, compile=False)
        except Exception as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConversionError(f"tf_keras cannot load {path}: {message}") from None
    tmp = tempfile.TemporaryDirectory(prefix="torchrs-keras-")
    cleanup.append(tmp)
    target = str(Path(tmp.name) / "model")
    model.save(target, save_format="tf")
    return target


class TFProbe:
    """Runs restored TF objects of one SavedModel for the verification forward pass.

    ``probe(path, inputs)`` calls the object at ``path`` on ``inputs``: a list of Python values
    (one tensor, its dtype guessed), a NumPy array, or a list / dict of NumPy arrays (a
    multi-input model). ``probe.input_specs(path)`` is that object's traced input signature.
    """

    def __init__(self, sm: SavedModelReader) -> None:
        self.sm = sm

    def __call__(self, path: str, inputs: Any) -> Any:
        tf = import_tf()
        obj = self.sm.restored(path)
        if isinstance(inputs, np.ndarray):
            return obj(tf.constant(inputs))
        if isinstance(inputs, dict):
            return obj({k: tf.constant(v) for k, v in inputs.items()})
        if inputs and all(isinstance(x, np.ndarray) for x in inputs):
            return obj([tf.constant(x) for x in inputs])
        first = inputs[0] if inputs else None
        dtype = (
            tf.string
            if isinstance(first, bytes)
            else tf.float32
            if isinstance(first, float)
            else tf.int64
        )
        return obj(tf.constant(inputs, dtype=dtype))

    def input_specs(self, path: str) -> list[tuple[str | None, list[int | None] | None, str]]:
        """``(name, shape, dtype)`` of every input the object at ``path`` was traced for."""
        tf = import_tf()
        try:
            functions = self.sm.restored(path).__call__.concrete_functions
        except AttributeError:
            return []
        for function in functions:
            args, _ = function.structured_input_signature
            if not args:
                continue
            specs = tf.nest.flatten(args[0])
            if all(isinstance(spec, tf.TensorSpec) for spec in specs):
                return [
                    (
                        spec.name,
                        None if spec.shape.rank is None else list(spec.shape.as_list()),
                        spec.dtype.name,
                    )
                    for spec in specs
                ]
        return []


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
        name = _strip_key(key)
        reason = _skip_reason(name)
        if not key.endswith(ATTRIBUTES_SUFFIX + VARIABLE_ATTRIBUTE):
            plan.report.append(ReportEntry(name, "skipped", reason="table / non-variable state"))
            continue
        if reason != "not used by the rebuilt module":
            plan.report.append(ReportEntry(name, "skipped", reason=reason))
            continue
        dtype = np.dtype(dtypes[key].as_numpy_dtype)
        if dtype.kind == "O":
            plan.report.append(ReportEntry(name, "skipped", reason="string variable"))
            continue
        shape = tuple(int(d) for d in shapes[key])

        def load(key: str = key) -> np.ndarray:
            return read_tensor(reader, key)

        plan.tensors.append(TensorPlan(name, name, shape, dtype, load))
        plan.report.append(ReportEntry(name, "converted", name, shape=list(shape)))
    plan.architecture["paths"] = {_strip_key(k): v for k, v in paths.items()}
    from converters.tfrs_to_torch.optimizer_state import plan_optimizer

    plan_optimizer(reader, graph, plan, strict=strict)
    plan.notes.append(
        "A TF checkpoint holds weights only: no layer classes and no vocabularies. Rebuild the "
        "model in torchrs and call converters.tfrs_to_torch.load_weights(module, OUT_DIR); give "
        "vocabularies with --vocab NAME=FILE or set them on the lookup layers."
    )
    return plan
