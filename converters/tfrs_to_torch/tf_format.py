"""Reading TF's formats: checkpoints (tensors by key, the object graph) and SavedModels (nodes, Keras
metadata, restored objects, lookup tables, traced functions).

Every SavedModel (``tf.saved_model.save`` or Keras ``model.save(save_format="tf")``) holds an object graph:
nodes for layers, variables and lookup tables, linked by attribute names
(``query_model/layer_with_weights-1/kernel``). Its variables live in a TF checkpoint whose own object graph uses
the same node ids. A Keras SavedModel adds ``keras_metadata.pb``: the class and config of every layer, by node id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from converters.tfrs_to_torch import rules
from converters.tfrs_to_torch.errors import ConversionError, UnsupportedLayerError
from converters.tfrs_to_torch.formats import (
    KERAS_METADATA_FILE,
)
from converters.tfrs_to_torch.plan import REEXPORT_HINT, ReportEntry, Status, TensorPlan
from converters.tfrs_to_torch.tf_env import import_tf
from torchrs.io.keras_numbering import TRACKING_NAMES

VARIABLE_ATTRIBUTE = "VARIABLE_VALUE"
# Suffix TF appends to every checkpoint key of a variable.
ATTRIBUTES_SUFFIX = "/.ATTRIBUTES/"
# Op types of a traced Dense call that carry no activation.
LINEAR_OPS = frozenset(
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


def strip_key(key: str) -> str:
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
            f"Cannot read variable {strip_key(key)!r}: {message}. The variables file is "
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
                    f"{strip_key(key)} has shape {shape}; a Dense kernel must be 2-D."
                )
            shape = (shape[1], shape[0])
        dtype = np.dtype(self.dtypes[key].as_numpy_dtype)
        reader = self.reader

        def load() -> np.ndarray:
            return rules.apply_transpose(read_tensor(reader, key), transpose)

        self.claimed[key] = ReportEntry(
            strip_key(key), Status.CONVERTED, torch_name, shape=list(shape), transposed=transpose
        )
        return TensorPlan(torch_name, strip_key(key), shape, dtype, load, transpose)

    def skip_variables(self, node_id: int, reason: str) -> None:
        for _, var_id in self.layer_variables(node_id):
            key = self.var_key.get(var_id)
            if key is not None and key not in self.claimed:
                self.claimed[key] = ReportEntry(strip_key(key), Status.SKIPPED, reason=reason)
        for key in self.other_keys.get(node_id, []):
            if key not in self.claimed:
                self.claimed[key] = ReportEntry(strip_key(key), Status.SKIPPED, reason=reason)

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

    def _traced_calls(self, layer_id: int) -> Iterator[tuple[Any, dict[str, int] | None]]:
        """Each traced ``call`` function of a layer with its captured variables: argument name ->
        the variable's node id (``None`` when the trace binds more inputs than it has arguments)."""
        fn_id = self.child(
            layer_id, "call_and_return_conditional_losses", "call_and_return_all_conditional_losses"
        )
        names = [] if fn_id is None else list(self.graph.nodes[fn_id].function.concrete_functions)
        for name in names:
            fn, saved = self.functions.get(name), self.graph.concrete_functions.get(name)
            if fn is None or saved is None:
                continue
            args = [arg.name for arg in fn.signature.input_arg]
            bound = list(saved.bound_inputs)
            if len(bound) > len(args):
                yield fn, None
                continue
            # The captured variables are the function's last arguments, in bound_inputs order.
            yield fn, dict(zip(args[len(args) - len(bound) :], bound, strict=True))

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
        activations: dict[int, str | None] = self._traced_activations.setdefault(layer_id, {})
        for fn, captured in self._traced_calls(layer_id):
            if captured is None:
                continue
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
                ops -= LINEAR_OPS
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
                # The regularizers' ops (L2Loss / Abs, Sum, Mul) are traced too; they compute the
                # layer's losses, not its output (read by dense_regularizers).
                ops.update(op for scope, op in _function_ops(fn) if scope is None)
        if not traced:  # e.g. the Dense sublayers of an MLP: only the MLP's call was traced
            raise UnsupportedLayerError(
                "Dense",
                path,
                "tf.saved_model.save kept no traced call of this layer, so its activation is "
                f"unknown; {REEXPORT_HINT}",
            )
        extra = ops - LINEAR_OPS
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

    def layer_regularizers(
        self, node_id: int, path: str, class_name: str
    ) -> dict[str, dict[str, Any]]:
        """A Dense / Embedding layer's weight regularizers, read from the ops of its traced call.

        Keras traces ``L1(l1)`` as ``l1 * Sum(Abs(w))`` and ``L2(l2)`` as ``(2 * l2) * L2Loss(w)``
        under ``<layer>/kernel/Regularizer/`` (``bias``, ``embeddings``; ``L1L2``: both, added).
        Returns ``{"kernel_regularizer": {"class_name": "L2", "config": {"l2": ...}}, ...}`` (Keras
        config dicts); anything else in a regularizer scope is a custom regularizer, refused.
        """
        fn_id = self.child(
            node_id, "call_and_return_conditional_losses", "call_and_return_all_conditional_losses"
        )
        if fn_id is None:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for name in self.graph.nodes[fn_id].function.concrete_functions:
            fn = self.functions.get(name)
            if fn is None:
                continue
            for weight, found in _regularizer_factors(fn, path, class_name).items():
                out.setdefault(f"{weight}_regularizer", regularizer_config(found))
        return out

    def enclosed_regularizers(self, layer_id: int, path: str) -> dict[int, dict[str, Any]]:
        """The regularizers of the Dense sublayers that a layer's traced call runs inline (an MLP
        block: only the block's call was traced), by variable node: ``{kernel node: {"class_name":
        "L2", "config": {...}}}``. Each regularizer scope is tied to its variable by the captured
        handle its ``ReadVariableOp`` reads, never by layer name.

        Raises:
            UnsupportedLayerError: a custom regularizer, or a regularizer scope whose variable the
                trace does not name (it would be dropped).
        """
        out: dict[int, dict[str, Any]] = {}
        for fn, traced_captures in self._traced_calls(layer_id):
            captured = traced_captures or {}
            for scope, (weight, factors) in _regularizer_scopes(fn, path, "MLP").items():
                reads = [
                    captured.get(node.input[0])
                    for node in fn.node_def
                    if node.name.startswith(scope) and node.op == "ReadVariableOp" and node.input
                ]
                variables = {v for v in reads if v is not None}
                if len(variables) != 1 or not factors:
                    raise UnsupportedLayerError(
                        "MLP",
                        path,
                        f"its traced call holds the {weight} regularizer {scope!r}, whose variable "
                        f"or factor could not be read from the trace, so it would be dropped; "
                        f"{REEXPORT_HINT}",
                    )
                out.setdefault(variables.pop(), regularizer_config(factors))
        return out


_REGULARIZER_SCOPE = re.compile(r"(?:^|/)(kernel|bias|embeddings)/Regularizer/")
# Ops of Keras's L1 / L2 / L1L2 regularizers (the L1L2 sum starts from a Const 0).
_REGULARIZER_OPS = frozenset(
    {"Const", "ReadVariableOp", "Abs", "Sum", "L2Loss", "Mul", "AddV2", "Identity", "NoOp"}
)


def _function_ops(fn: Any) -> list[tuple[str | None, str]]:
    """``(regularized weight or None, op type)`` of each node of a traced layer call."""
    out: list[tuple[str | None, str]] = []
    for node in fn.node_def:
        found = _REGULARIZER_SCOPE.search(node.name)
        out.append((found.group(1) if found else None, node.op))
    return out


def _regularizer_scopes(
    fn: Any, path: str, class_name: str
) -> dict[str, tuple[str, dict[str, float]]]:
    """``{scope: (weight, {"l1": ..., "l2": ...})}`` of one traced call, one entry per regularized
    variable (``mlp/dense_1/kernel/Regularizer/``: an MLP's call holds its sublayers' scopes)."""
    tf = import_tf()
    nodes = {node.name: node for node in fn.node_def}
    scopes: dict[str, tuple[str, dict[str, float]]] = {}
    for node in fn.node_def:
        found = _REGULARIZER_SCOPE.search(node.name)
        if found is None:
            continue
        weight = found.group(1)
        if node.op not in _REGULARIZER_OPS:
            raise UnsupportedLayerError(
                class_name,
                path,
                f"its {weight} regularizer uses op {node.op}: a custom regularizer torchrs cannot "
                "rebuild (Keras's L1, L2 and L1L2 are converted)",
            )
        factors = scopes.setdefault(node.name[: found.end()], (weight, {}))[1]
        if node.op != "Mul":
            continue
        inputs = [nodes.get(t.split(":")[0]) for t in node.input if not t.startswith("^")]
        ops = {n.op: n for n in inputs if n is not None}
        const = ops.get("Const")
        if const is None:
            continue
        value = float(tf.make_ndarray(const.attr["value"].tensor))
        if "L2Loss" in ops:  # Keras: 2 * l2 * l2_loss(w), l2_loss(w) = sum(w ** 2) / 2
            factors["l2"] = value / 2.0
        elif "Sum" in ops:
            factors["l1"] = value
    return scopes


def _regularizer_factors(fn: Any, path: str, class_name: str) -> dict[str, dict[str, float]]:
    """``{"kernel": {"l1": ..., "l2": ...}}`` from the regularizer scopes of one traced call."""
    factors: dict[str, dict[str, float]] = {}
    for weight, found in _regularizer_scopes(fn, path, class_name).values():
        if found:
            factors.setdefault(weight, {}).update(found)
    return factors


def regularizer_config(factors: dict[str, float]) -> dict[str, Any]:
    """Keras's config dict of a regularizer from its factors.

    >>> regularizer_config({"l2": 0.01})
    {'class_name': 'L2', 'config': {'l2': 0.01}}
    >>> regularizer_config({"l1": 0.1, "l2": 0.2})["class_name"]
    'L1L2'
    """
    class_name = "L1L2" if len(factors) == 2 else ("L1" if "l1" in factors else "L2")
    return {"class_name": class_name, "config": dict(factors)}


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


def export_table(
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
