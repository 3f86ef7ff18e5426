"""Translating the traced functions of a ``tf.saved_model.save`` export into torchrs graphs.

Such an export keeps no Keras configs and no layer wiring: its serving signatures (and the Keras
``call`` functions of its towers) are the contract, exactly what TF Serving runs. This module walks
each signature's TF function graph — nested ``StatefulPartitionedCall`` / ``PartitionedCall`` are
inlined, ``While`` / ``If`` bodies become sub-graphs — and writes every op as a node of a
:class:`torchrs.graph.Graph`. Captured variables become ``Variable`` nodes named by their TF object
path (the checkpoint key without ``/.ATTRIBUTES/VARIABLE_VALUE``), lookup tables ``Table`` nodes with
their exported keys and values, other captured tensors and ``Const`` ops constants.

An op outside the allow-list :data:`torchrs.graph.ops.OPS` is one :class:`GraphTranslationError`
naming the op type, the function, the node and the Keras layer scope it came from; no partial output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from converters.tfrs_to_torch import tf_format
from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.tf_env import import_tf
from torchrs.graph.ir import INTERNAL_DTYPES, Graph, Node, Output, Ref, TensorSpec
from torchrs.graph.ops import DTYPES, OPS

__all__ = ["GraphTranslationError", "Translation", "translate_saved_model"]

#: Ops that call a function of the library: inlined.
CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})
#: TF's control-flow ops and the allow-listed node they become.
CONTROL_FLOW = {"While": "While", "StatelessWhile": "While", "If": "If", "StatelessIf": "If"}
#: Ops whose outputs are their inputs (reads of a variable's value included): folded away.
ALIAS_OPS = frozenset(
    {"Identity", "IdentityN", "ReadVariableOp", "Snapshot", "StopGradient", "PreventGradient"}
)
#: Ops with no data effect (control dependencies only).
DROPPED_OPS = frozenset({"NoOp"})
#: Keras's tracking lists (aliases of a layer's variables, never the name a parameter gets), as the
#: structural reader knows them, plus tf.Module's ``submodules``.
TRACKING_NAMES = tf_format.TRACKING_NAMES | {"submodules"}
_ANY_LAYER = re.compile(r"layer-(\d+)")
#: Paths remembered per object of the object graph (the shortest few are enough to choose from).
MAX_PATHS = 8
#: TF dtypes a graph input or variable may have (string travels as bytes arrays).
SUPPORTED_DTYPES = frozenset(DTYPES)


class GraphTranslationError(ConversionError):
    """A function graph holds something the translation cannot express."""


@dataclass
class Translation:
    """Everything translated from one SavedModel: signatures, tensors and tables."""

    signatures: dict[str, Graph] = field(default_factory=dict)
    #: ``{name: array}``: variables by TF path, constants by ``const/<n>``.
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    #: ``{TF path: (keys, values)}`` of every lookup table read.
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: ``{TF path: dtype name}`` of the variables read (what becomes a parameter).
    variables: dict[str, str] = field(default_factory=dict)
    #: ``{Keras call: why it was not translated}`` (the signatures were).
    skipped: dict[str, str] = field(default_factory=dict)
    #: Constants stored so far (their names are unique across all signatures).
    constants: int = 0


@dataclass(frozen=True)
class _Captured:
    kind: str  # "Variable" / "Table"
    path: str
    obj: Any


def _scope_of(node_name: str) -> str:
    """The Keras layer scope of a node (``sequential/dense/MatMul`` -> ``sequential/dense``)."""
    return node_name.rsplit("/", 1)[0] if "/" in node_name else node_name


def _dtype_name(tf_dtype: Any) -> str:
    return str(getattr(tf_dtype, "name", tf_dtype))


class _Objects:
    """The loaded SavedModel's variables and tables, keyed by resource handle, with TF paths."""

    def __init__(self, tf: Any, export_dir: Path, loaded: Any) -> None:
        from tensorflow.core.protobuf import trackable_object_graph_pb2

        reader = tf.train.load_checkpoint(str(export_dir / "variables" / "variables"))
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
        self.by_handle: dict[int, _Captured] = {}
        objects: dict[int, Any] = {0: loaded}
        paths: dict[int, list[str]] = {0: [""]}
        queue = [0]
        while queue:
            node_id = queue.pop(0)
            obj = objects[node_id]
            try:
                children = dict(obj._trackable_children())
            except Exception:  # not every restored object lists children
                children = {}
            for ref in graph.nodes[node_id].children:
                parent = paths[node_id][0]
                child_path = f"{parent}/{ref.local_name}" if parent else ref.local_name
                known = paths.setdefault(ref.node_id, [])
                if len(known) < MAX_PATHS and child_path not in known:
                    known.append(child_path)
                if ref.node_id in objects or ref.local_name not in children:
                    continue
                objects[ref.node_id] = children[ref.local_name]
                queue.append(ref.node_id)
        for node_id, obj in objects.items():
            path = min(paths[node_id], key=_path_rank)
            if isinstance(obj, tf.Variable):
                self.by_handle[id(obj.handle)] = _Captured("Variable", path, obj)
            elif _is_table(obj):
                try:
                    handle = obj.resource_handle
                except Exception:
                    continue
                self.by_handle.setdefault(id(handle), _Captured("Table", path, obj))

    def find(self, handle: Any) -> _Captured | None:
        return self.by_handle.get(id(handle))


def _path_rank(path: str) -> tuple[int, int, int]:
    """Prefers the structural path of an object (``tower/layer_with_weights-0/embeddings``) over
    its aliases through Keras's tracking lists (``variables/0``) or ``layer-N`` names."""
    parts = path.split("/")
    return (
        sum(p in TRACKING_NAMES for p in parts),
        sum(bool(_ANY_LAYER.fullmatch(p)) for p in parts[:-1] or parts),
        len(parts),
    )


def _is_table(obj: Any) -> bool:
    name = type(obj).__name__
    return "Table" in name or (name == "RestoredResource" and hasattr(obj, "resource_handle"))


class _Translator:
    """Emits the nodes of one signature (inlining calls) into a flat node list."""

    def __init__(
        self, tf: Any, library: dict[str, Any], result: Translation, objects: _Objects
    ) -> None:
        self.tf = tf
        self.library = library
        self.result = result
        self.objects = objects
        self._graphs: dict[str, Any] = {}
        self._pending_tables: dict[str, tuple[Any, Any, Any]] = {}

    # -- functions ------------------------------------------------------------------------------
    def function_graph(self, name: str) -> Any:
        if name not in self._graphs:
            if name not in self.library:
                raise GraphTranslationError(
                    f"The function library lacks {name!r} (called from the export's graph): the "
                    "SavedModel is incomplete or corrupted; re-export it."
                )
            from tensorflow.python.framework import function_def_to_graph

            try:
                self._graphs[name] = function_def_to_graph.function_def_to_graph(self.library[name])
            except Exception as err:
                raise GraphTranslationError(
                    f"Cannot read function {name!r} of the export: {str(err).splitlines()[0]}. The "
                    "function library is corrupted; re-export the model."
                ) from None
        return self._graphs[name]

    # -- emission -------------------------------------------------------------------------------
    def const(self, nodes: list[Node], value: np.ndarray, origin: str) -> Ref:
        self.result.constants += 1
        key = f"const/{self.result.constants}"
        self.result.tensors[key] = value
        name = f"const_{self.result.constants}"
        nodes.append(Node(name, "Const", (), {"tensor": key}, origin))
        return Ref(name)

    def captured(self, nodes: list[Node], emitted: dict[str, Ref], handle: Any, origin: str) -> Ref:
        dtype = _dtype_name(handle.dtype)
        if dtype == "variant":
            raise GraphTranslationError(
                f"{origin}: the function captures a tf.data dataset (a variant tensor); a dataset "
                "pipeline cannot be translated into a torch graph"
            )
        if dtype != "resource":
            return self.const(nodes, _numpy(handle), origin)
        found = self.objects.find(handle)
        if found is None:
            raise GraphTranslationError(
                f"{origin}: a captured resource is neither a variable nor a lookup table of the "
                "export's object graph; such a resource cannot be translated."
            )
        key = f"{found.kind}:{found.path}"
        if key in emitted:
            return emitted[key]
        name = f"{found.kind.lower()}_{len(emitted)}"
        if found.kind == "Variable":
            value = _numpy(found.obj)
            self.result.tensors[found.path] = value
            self.result.variables[found.path] = _dtype_name(found.obj.dtype)
        else:
            self._pending_tables[found.path] = (found.obj, None, None)
        nodes.append(Node(name, found.kind, (), {"path": found.path}, origin))
        emitted[key] = Ref(name)
        return emitted[key]

    def translate(
        self,
        graph: Any,
        inputs: dict[str, Ref],
        nodes: list[Node],
        scope: str,
        fn_name: str,
        emitted_sources: dict[str, Ref],
    ) -> dict[str, Ref]:
        """Emits the ops of ``graph`` (inputs already bound); returns tensor name -> ref."""
        refs = dict(inputs)
        for op in _topological(graph.get_operations()):
            if op.type == "Placeholder":
                if op.outputs[0].name not in refs:
                    raise GraphTranslationError(
                        f"Function {fn_name!r}: placeholder {op.name!r} is not bound to an input."
                    )
                continue
            origin = f"function {fn_name!r}, node {op.name!r} (layer {_scope_of(op.name)!r})"
            if op.type in DROPPED_OPS:
                continue
            if op.type == "Const":
                value = self.tf.make_ndarray(op.get_attr("value"))
                refs[op.outputs[0].name] = self.const(nodes, _as_storable(value), origin)
                continue
            args = [refs[t.name] for t in op.inputs]
            if op.type in ALIAS_OPS:  # no data effect: the output is the input
                for out, arg in zip(op.outputs, args, strict=True):
                    refs[out.name] = arg
                continue
            if op.type in CALL_OPS:
                callee = op.get_attr("f").name
                sub = self.function_graph(callee)
                bound = {p.name: a for p, a in zip(sub.inputs, args, strict=True)}
                sub_refs = self.translate(
                    sub, bound, nodes, f"{scope}{op.name}/", callee, emitted_sources
                )
                for out, sub_out in zip(op.outputs, sub.outputs, strict=True):
                    refs[out.name] = sub_refs[sub_out.name]
                continue
            name = f"{scope}{op.name}"
            if op.type in CONTROL_FLOW:
                kind = CONTROL_FLOW[op.type]
                attrs = self.control_flow_attrs(op, kind, fn_name)
                nodes.append(Node(name, kind, tuple(args), attrs, origin))
                for i, out in enumerate(op.outputs):
                    refs[out.name] = Ref(name, i)
                continue
            if op.type not in OPS:
                raise GraphTranslationError(
                    f"Unsupported TF op {op.type!r} in {origin}. torchrs translates the ops listed in "
                    "torchrs.graph.ops.OPS; re-export without this op, or report it so it can be added."
                )
            attrs = {k: _attr(op, k) for k in OPS[op.type].attrs if k in op.node_def.attr}
            if op.type == "LookupTableFindV2" or op.type == "LookupTableExportV2":
                self._note_table_dtypes(nodes, args[0], op)
            nodes.append(Node(name, op.type, tuple(args), attrs, origin))
            for i, out in enumerate(op.outputs):
                refs[out.name] = Ref(name, i)
        return refs

    def _note_table_dtypes(self, nodes: list[Node], ref: Ref, op: Any) -> None:
        source = next((n for n in nodes if n.name == ref.node), None)
        if source is None or source.op != "Table":
            return
        path = str(source.attrs["path"])
        obj, _, _ = self._pending_tables[path]
        keys_dtype = op.get_attr("Tin") if op.type == "LookupTableFindV2" else op.get_attr("Tkeys")
        values_dtype = (
            op.get_attr("Tout") if op.type == "LookupTableFindV2" else op.get_attr("Tvalues")
        )
        self._pending_tables[path] = (obj, keys_dtype, values_dtype)

    def control_flow_attrs(self, op: Any, kind: str, fn_name: str) -> dict[str, Any]:
        names = ("cond", "body") if kind == "While" else ("then_branch", "else_branch")
        attrs: dict[str, Any] = {}
        for attr in names:
            callee = op.get_attr(attr).name
            attrs[attr] = self.subgraph(callee)
        return attrs

    def subgraph(self, fn_name: str) -> Graph:
        graph = self.function_graph(fn_name)
        nodes: list[Node] = []
        inputs: dict[str, Ref] = {}
        specs = []
        for i, t in enumerate(graph.inputs):
            name = f"arg_{i}"
            specs.append(TensorSpec(name, _spec_dtype(t.dtype), _shape(t)))
            nodes.append(Node(name, "Placeholder", (), {"index": i}))
            inputs[t.name] = Ref(name)
        refs = self.translate(graph, inputs, nodes, "", fn_name, {})
        outputs = tuple(Output(f"out_{i}", refs[t.name]) for i, t in enumerate(graph.outputs))
        return Graph(tuple(specs), tuple(nodes), outputs)

    def export_tables(self) -> None:
        tf = self.tf
        for path, (obj, keys_dtype, values_dtype) in self._pending_tables.items():
            if keys_dtype is None:
                keys_dtype, values_dtype = (
                    getattr(obj, "key_dtype", None),
                    getattr(obj, "value_dtype", None),
                )
            if keys_dtype is None:
                raise GraphTranslationError(
                    f"Cannot tell the key and value types of lookup table {path!r}."
                )
            keys, values = tf.raw_ops.LookupTableExportV2(
                table_handle=obj.resource_handle, Tkeys=keys_dtype, Tvalues=values_dtype
            )
            self.result.tables[path] = (_numpy(keys), _numpy(values))


def _numpy(value: Any) -> np.ndarray:
    array = np.asarray(value.numpy())
    return _as_storable(array)


def _as_storable(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind in ("O", "S", "U"):
        flat = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.reshape(-1)]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(array.shape)
    return array


def _spec_dtype(tf_dtype: Any) -> str:
    name = _dtype_name(tf_dtype)
    if name in SUPPORTED_DTYPES or name in INTERNAL_DTYPES:
        return name
    raise GraphTranslationError(f"Inputs of dtype {name!r} are not supported.")


def _shape(tensor: Any) -> tuple[int | None, ...] | None:
    try:
        dims = tensor.shape.as_list()
    except ValueError:
        return None
    return tuple(dims)


def _attr(op: Any, key: str) -> Any:
    value = op.get_attr(key)
    if isinstance(value, bytes):
        return _text(value, op, key)
    if hasattr(value, "name") and hasattr(value, "is_floating"):  # a tf.DType
        return value.name
    if isinstance(value, list):
        return [_text(v, op, key) if isinstance(v, bytes) else v for v in value]
    return value


def _text(value: bytes, op: Any, key: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise GraphTranslationError(
            f"Attribute {key!r} of node {op.name!r} ({op.type}) is not UTF-8 text; such an "
            "attribute cannot be stored in the graph's JSON."
        ) from None


def _topological(ops: Iterable[Any]) -> list[Any]:
    """Ops in an order where every data and control input comes first."""
    ops = list(ops)
    order: list[Any] = []
    done: set[str] = set()
    names = {op.name for op in ops}
    pending = list(reversed(ops))
    while pending:
        op = pending[-1]
        if op.name in done:
            pending.pop()
            continue
        deps = [t.op for t in op.inputs] + list(op.control_inputs)
        waiting = [d for d in deps if d.name in names and d.name not in done]
        if waiting:
            pending.extend(waiting)
            if len(pending) > 4 * len(ops) + 16:
                raise GraphTranslationError("The function graph has a cycle outside a While loop.")
            continue
        pending.pop()
        done.add(op.name)
        order.append(op)
    return order


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_]")


def translate_saved_model(
    export_dir: str | Path, signatures: Iterable[str] | None = None
) -> Translation:
    """Translates the serving signatures of a SavedModel written by ``tf.saved_model.save``.

    Args:
        export_dir: the SavedModel directory.
        signatures: the signature keys to translate (default: all of them).

    Returns:
        The signature graphs, with the variables, constants and tables they read.

    Raises:
        GraphTranslationError: an unsupported op or dtype (named with its function, node and layer),
            a corrupted function library, or an export without signatures.
    """
    tf = import_tf()
    root = Path(export_dir)
    try:
        loaded = tf.saved_model.load(str(root))
    except Exception as err:
        raise GraphTranslationError(
            f"Cannot load the SavedModel {root}: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}."
        ) from None
    available = dict(loaded.signatures)
    calls = keras_calls(tf, loaded) if signatures is None else {}
    if not available and not calls:
        raise GraphTranslationError(
            f"{root} has no serving signatures and no traced Keras call: pass signatures= to "
            "tf.saved_model.save, or export a model whose call was traced (called once before saving)."
        )
    wanted = list(signatures) if signatures is not None else sorted(available)
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise GraphTranslationError(
            f"Unknown signature(s) {unknown}; {root} has {sorted(available)}."
        )
    objects = _Objects(tf, root, loaded)
    result = Translation()
    for key in wanted:
        result.signatures[key] = _translate_signature(tf, available[key], result, objects)
    for key, function in sorted(calls.items()):
        # The Keras calls of the towers and the index are extras beside the signatures: one that
        # cannot be translated is reported, never a reason to refuse what the signatures give.
        try:
            result.signatures[key] = _translate_signature(tf, function, result, objects)
        except GraphTranslationError as err:
            if not available and len(calls) == 1:
                raise
            result.skipped[key] = str(err)
    if not result.signatures:
        raise GraphTranslationError(
            f"Nothing of {root} could be translated: " + "; ".join(result.skipped.values())
        )
    return result


def keras_calls(tf: Any, loaded: Any) -> dict[str, Any]:
    """``{"<attribute>.__call__": concrete function}``: the inference traces of the Keras ``call``
    of the export's root and of its direct children (its towers, an index's query model)."""
    out: dict[str, Any] = {}
    try:
        children = dict(loaded._trackable_children())
    except Exception:  # a restored object without children
        children = {}
    candidates = [("", loaded)] + [
        (name, child)
        for name, child in sorted(children.items(), key=lambda kv: (_path_rank(kv[0]), kv[0]))
        if name not in TRACKING_NAMES and not name.startswith("_") and name != "signatures"
    ]
    seen: set[int] = set()
    for name, obj in candidates:
        if id(obj) in seen:  # a Sequential's layer-N and layer_with_weights-M name one layer
            continue
        seen.add(id(obj))
        function = getattr(obj, "__call__", None)  # noqa: B004 (a restored function, not a test)
        for concrete in getattr(function, "concrete_functions", None) or []:
            leaves = tf.nest.flatten(concrete.structured_input_signature)
            if any(leaf is True for leaf in leaves):  # a training=True trace
                continue
            if not any(isinstance(leaf, tf.TensorSpec) for leaf in leaves):
                continue
            out[f"{name}.__call__" if name else "__call__"] = concrete
            break
    return out


def call_structured(tf: Any, concrete: Any, values: list[Any]) -> Any:
    """Calls a concrete function with ``values`` in place of its TensorSpec leaves."""
    leaves = tf.nest.flatten(concrete.structured_input_signature)
    feed = iter(values)
    filled = [next(feed) if isinstance(leaf, tf.TensorSpec) else leaf for leaf in leaves]
    args, kwargs = tf.nest.pack_sequence_as(concrete.structured_input_signature, filled)
    return concrete(*args, **kwargs)


def _translate_signature(tf: Any, function: Any, result: Translation, objects: _Objects) -> Graph:
    graph = function.graph
    library = {f.signature.name: f for f in graph.as_graph_def().library.function}
    translator = _Translator(tf, library, result, objects)
    flat_specs = [
        leaf
        for leaf in tf.nest.flatten(function.structured_input_signature)
        if isinstance(leaf, tf.TensorSpec)
    ]
    n_user = len(graph.inputs) - len(function.captured_inputs)
    if n_user != len(flat_specs):
        raise GraphTranslationError("The signature's inputs do not match its graph's placeholders.")
    nodes: list[Node] = []
    bound: dict[str, Ref] = {}
    specs: list[TensorSpec] = []
    for i, (placeholder, spec) in enumerate(zip(graph.inputs[:n_user], flat_specs, strict=True)):
        name = spec.name or placeholder.op.name
        dtype = _dtype_name(spec.dtype)
        if dtype not in SUPPORTED_DTYPES:
            raise GraphTranslationError(
                f"Signature input {name!r} has dtype {dtype!r}, which torchrs cannot take "
                f"(supported: {sorted(SUPPORTED_DTYPES)})."
            )
        specs.append(TensorSpec(name, dtype, _shape(spec)))
        node_name = f"input_{_UNSAFE_NAME.sub('_', name)}"
        nodes.append(Node(node_name, "Placeholder", (), {"index": i}))
        bound[placeholder.name] = Ref(node_name)
    emitted: dict[str, Ref] = {}
    for placeholder, handle in zip(graph.inputs[n_user:], function.captured_inputs, strict=True):
        bound[placeholder.name] = translator.captured(nodes, emitted, handle, "signature capture")
    refs = translator.translate(graph, bound, nodes, "", graph.name, emitted)
    translator.export_tables()
    from tensorflow.python.util import nest

    flat_outputs = nest.flatten_with_joined_string_paths(function.structured_outputs)
    outputs = []
    for (path, _), tensor in zip(flat_outputs, graph.outputs, strict=True):
        dtype = _dtype_name(tensor.dtype)
        outputs.append(
            Output(
                path or "output_0",
                refs[tensor.name],
                dtype if dtype in SUPPORTED_DTYPES else None,
                _shape(tensor),
            )
        )
    translated = Graph(tuple(specs), tuple(nodes), tuple(outputs))
    translated.check()
    return _prune(translated)


def _prune(graph: Graph) -> Graph:
    """Drops nodes no output (or Assert) depends on."""
    live: set[str] = {o.ref.node for o in graph.outputs}
    live.update(n.name for n in graph.nodes if n.op == "Assert" or n.op == "Placeholder")
    by_name = {n.name: n for n in graph.nodes}
    stack = list(live)
    while stack:
        node = by_name[stack.pop()]
        for ref in node.inputs:
            if ref.node not in live:
                live.add(ref.node)
                stack.append(ref.node)
    return Graph(graph.inputs, tuple(n for n in graph.nodes if n.name in live), graph.outputs)


#: Re-exported for callers that check an op before translating.
SUPPORTED_OPS = (
    frozenset(OPS) | frozenset(CONTROL_FLOW) | CALL_OPS | DROPPED_OPS | {"Const", "Placeholder"}
)
