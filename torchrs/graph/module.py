"""Building a translated TF function graph into a ``torch.fx.GraphModule`` (once, at load time).

:func:`build` turns a checked :class:`~torchrs.graph.ir.Graph` and its tensors into a
:class:`TranslatedGraph`: every node becomes one ``torch.fx`` call of the op's function from the
allow-list, variables become parameters named by their TF object path (``variables.<path>``), lookup
tables become :class:`HashTable` modules holding the exported keys and values. ``forward`` is the
generated Python of that graph; ``print(module.code)`` shows it.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from torchrs._binding import bind_inputs
from torchrs.graph.ir import SOURCE_OPS, Graph, Node, Ref
from torchrs.graph.lookup import StringIndex
from torchrs.graph.ops import OPS, UnsupportedGraphError, lookup_find, to_bytes_array, to_dtype

__all__ = ["HashTable", "Signature", "TranslatedSavedModel"]


class HashTable(nn.Module):
    """A TF lookup table with its exported contents (``StaticHashTable`` / ``MutableHashTable``).

    String keys are found by :class:`~torchrs.graph.lookup.StringIndex` (``bytes``, ``str`` or
    NumPy ``<U`` inputs, compared as TF compares ``tf.string``), integer keys by a binary search.
    Both structures are built here, once.

    Args:
        keys: ``bytes`` keys as a NumPy ``object`` array, or integer keys as a tensor.
        values: the values, a tensor (or a NumPy ``object`` array of ``bytes``).

    >>> t = HashTable(np.array([b"a", b"b"], dtype=object), torch.tensor([1, 2]))
    >>> t.find(np.array([b"b", b"zz"], dtype=object), torch.tensor(0)).tolist()
    [2, 0]
    >>> t.find(np.array(["b", "a"]), torch.tensor(0)).tolist()
    [2, 1]
    """

    def __init__(self, keys: Any, values: Any) -> None:
        super().__init__()
        self.string_keys = isinstance(keys, np.ndarray) and keys.dtype == object
        self.keys = keys
        self.values = values
        self._with_default: tuple[Any, ...] | None = None
        if self.string_keys:
            self._strings = StringIndex(keys.reshape(-1).tolist())
        else:
            order = torch.argsort(keys)
            self._sorted_keys = keys[order]
            self._order = order

    def size(self) -> int:
        return len(self.keys)

    def find(self, keys: Any, default: Any) -> Any:
        """``LookupTableFindV2``: the value of every key, ``default`` where a key is absent."""
        if self.string_keys:
            found_np = self._strings.find(keys)  # position of each key, -1 where absent
            if not isinstance(self.values, np.ndarray):
                table_np = self._values_then(default)[1]  # (V + 1, ...): -1 reads the default
                if table_np is not None:  # values on the CPU: one NumPy take
                    return torch.from_numpy(table_np[found_np])
            found = torch.from_numpy(found_np)
        else:
            k = torch.as_tensor(keys).to(self._sorted_keys.dtype)
            slot = torch.searchsorted(self._sorted_keys, k).clamp(max=max(len(self.keys) - 1, 0))
            hit = (
                self._sorted_keys[slot] == k
                if len(self.keys)
                else torch.zeros_like(k, dtype=torch.bool)
            )
            found = torch.where(hit, self._order[slot], torch.full_like(slot, -1))
        if isinstance(self.values, np.ndarray):
            flat = found.reshape(-1).numpy()
            fill = default.item() if isinstance(default, np.ndarray) else default
            out = np.array([self.values[i] if i >= 0 else fill for i in flat], dtype=object)
            return out.reshape(tuple(found.shape))
        table = self._values_then(default)[0]  # (V + 1, ...): position -1 reads the default
        picked = table[found.reshape(-1).to(table.device)]
        return picked.reshape(tuple(found.shape) + tuple(table.shape[1:]))

    def _values_then(self, default: Any) -> tuple[torch.Tensor, np.ndarray | None]:
        """The values followed by ``default`` (and their NumPy view on the CPU), cached while the
        values and the default stay the same objects at the same version."""
        values = self.values
        version = _version(default)
        cached = self._with_default
        if (
            cached is not None
            and cached[0] is values
            and cached[1] == values._version
            and cached[2] is default
            and cached[3] == version
        ):
            return cached[4], cached[5]
        default_t = torch.as_tensor(default, dtype=values.dtype, device=values.device)
        with torch.inference_mode(False), torch.no_grad():
            table = torch.cat([values, default_t.expand(values.shape[1:]).unsqueeze(0)])
        table_np = table.numpy() if table.device.type == "cpu" else None
        self._with_default = (values, values._version, default, version, table, table_np)
        return table, table_np

    def extra_repr(self) -> str:
        kind = "bytes" if self.string_keys else str(self.keys.dtype)
        return f"size={len(self.keys)}, keys={kind}"


def _version(value: Any) -> Any:
    """What tells a table's default apart over time: a tensor's version, else (inference
    tensors and host values, which have none) the value itself."""
    if isinstance(value, torch.Tensor):
        return tuple(value.reshape(-1).tolist()) if value.is_inference() else value._version
    return tuple(np.asarray(value).reshape(-1).tolist())


class _Values(nn.Module):
    """A plain container whose attributes are parameters, buffers or host arrays."""


def _run_while(cond: nn.Module, body: nn.Module, *loop_vars: Any) -> tuple[Any, ...]:
    """TF ``While``: runs ``body`` while ``cond`` holds, on the loop variables."""
    values = tuple(loop_vars)
    while bool(_first(cond(*values))):
        values = tuple(body(*values))
    return values


def _run_if(condition: Any, then: nn.Module, other: nn.Module, *args: Any) -> tuple[Any, ...]:
    """TF ``If`` / ``StatelessIf``: one branch, chosen by a scalar condition."""
    branch = then if bool(torch.as_tensor(condition).reshape(-1)[0]) else other
    return tuple(branch(*args))


def _first(values: Any) -> Any:
    return values[0] if isinstance(values, tuple | list) else values


class Signature(nn.Module):
    """One TF signature (or traced Keras ``call``) as a torch callable: named inputs, named outputs.

    Call it with the signature's inputs by name (``sig(user_id=["42"])``, or a dict), or in
    signature order. Strings may be Python / NumPy ``str`` or ``bytes``; numbers anything
    ``torch.as_tensor`` takes. Returns ``{output name: value}``, like a TF signature (string outputs
    as NumPy arrays of ``bytes``). ``print(sig.code)`` shows the generated forward.
    """

    def __init__(self, graph_module: fx.GraphModule, graph: Graph, name: str = "") -> None:
        super().__init__()
        self.graph_module = graph_module
        self.graph_spec = graph
        self.input_specs = graph.inputs
        self.output_names = tuple(o.name for o in graph.outputs)
        # String inputs only used as lookup keys go in as given (StringIndex matches str as it is).
        self._as_keys = _lookup_only_inputs(graph_module.graph)
        # What a call runs: graph_module's graph, constant parts evaluated, attributes as inputs.
        self._run, self._attrs = _execution_graph(graph_module, name)

    @property
    def code(self) -> str:
        """The generated Python of the graph."""
        return self.graph_module.code

    @property
    def input_names(self) -> list[str]:
        """The signature's input names, in call order."""
        return [s.name for s in self.input_specs]

    @property
    def default_k(self) -> int | None:
        """The ``k`` an exported index was traced with (``None``: the graph has no such top-k)."""
        for node in self.graph_module.graph.nodes:
            if node.op == "placeholder" and node.target == "k":
                return int(node.args[0]) if node.args else None
        return None

    def forward(self, *args: Any, k: int | None = None, **kwargs: Any) -> dict[str, Any]:
        values = self._bind(args, kwargs)
        if k is not None:
            if self.default_k is None:
                raise TypeError("k= is only taken by an exported index (a graph with one top-k).")
            values.append(int(k))
        outputs = self._run.forward(*[holder[name] for holder, name in self._attrs], *values)
        return dict(zip(self.output_names, outputs, strict=True))

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        names = [s.name for s in self.input_specs]
        if len(args) == 1 and isinstance(args[0], Mapping) and not kwargs:
            kwargs = dict(args[0])
            args = ()
        given = bind_inputs(names, args, kwargs)
        return [
            _as_input(given[s.name], s, i in self._as_keys) for i, s in enumerate(self.input_specs)
        ]


def _execution_graph(
    graph_module: fx.GraphModule, name: str
) -> tuple[fx.GraphModule, list[tuple[dict[str, Any], str]]]:
    """The graph a call of a signature runs, and where each of its leading inputs is held.

    ``graph_module``'s graph (what ``--emit-python`` and ``code`` show), with two changes that
    leave every result as it was: subexpressions of constants alone are evaluated once, here (by
    the same op functions; the results become non-persistent buffers of ``constants``), and every
    attribute the graph reads (variables, constants, tables, loop bodies) becomes a leading input,
    fetched on each call from its holder's dict (so parameters replaced by ``.to()`` or
    ``load_state_dict`` are seen) instead of through ``nn.Module.__getattr__`` twice per read.
    """
    g = fx.Graph()
    g.output(g.graph_copy(graph_module.graph, {}))
    holders: dict[str, nn.Module] = {
        h: getattr(graph_module, h)
        for h in ("variables", "constants", "tables", "subgraphs")
        if h in graph_module._modules
    }
    if "constants" in holders:
        _fold_constants(g, holders["constants"], name)
        _static_arguments(g, holders["constants"])
    _fuse_dense(g)
    for node in reversed(list(g.nodes)):  # reads left without users by the folding
        if node.op == "get_attr" and not node.users:
            g.erase_node(node)
    reads = [n for n in g.nodes if n.op == "get_attr"]
    taken = {str(n.target) for n in g.nodes if n.op == "placeholder"}
    attrs: list[tuple[dict[str, Any], str]] = []
    previous: fx.Node | None = None
    for i, node in enumerate(reads):
        arg = f"_attr_{i}"
        while arg in taken:
            arg = "_" + arg
        with g.inserting_before(None) if previous is None else g.inserting_after(previous):
            previous = g.placeholder(arg)
        node.replace_all_uses_with(previous)
        g.erase_node(node)
        holder_name, attr = str(node.target).split(".", 1)
        attrs.append(_slot(holders[holder_name], attr))
    g.lint()
    return fx.GraphModule(nn.Module(), g, class_name="TFGraphRun"), attrs


def _slot(holder: nn.Module, attr: str) -> tuple[dict[str, Any], str]:
    """The dict that holds ``holder.<attr>`` (the one ``getattr`` would find it in)."""
    for store in (holder.__dict__, holder._parameters, holder._buffers, holder._modules):
        if attr in store:
            return store, attr
    raise UnsupportedGraphError(f"The graph reads {attr!r}, which its module does not hold.")


#: Ops never evaluated at load time even on constant inputs: what they do happens at run time.
_RUN_TIME_ONLY = frozenset(OPS[n].fn for n in ("Assert", "CheckNumerics"))
#: The largest result of a constant subexpression kept (elements): a Fill or Tile of constants
#: can be large, and is cheaper to rebuild than to hold.
FOLD_MAX_ELEMENTS = 1 << 16


def _fold_constants(g: fx.Graph, constants: nn.Module, name: str) -> None:
    """Evaluates the op nodes whose inputs are all constants once; each becomes a constant read."""
    foldable = {op.fn for op in OPS.values() if not op.multi_output} - _RUN_TIME_ONLY
    known: dict[fx.Node, Any] = {}
    for node in list(g.nodes):
        if node.op == "get_attr" and str(node.target).startswith("constants."):
            known[node] = _read(constants, str(node.target).split(".", 1)[1])
            continue
        inputs = node.all_input_nodes
        if node.op != "call_function" or node.target not in foldable or not inputs:
            continue
        if not all(n in known for n in inputs):
            continue
        args = fx.node.map_arg(node.args, known.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, known.__getitem__)
        try:
            with torch.inference_mode(False), torch.no_grad():
                value = node.target(*args, **kwargs)  # type: ignore[operator]
        except Exception:  # left to run time, where TF raises it too
            continue
        if not isinstance(value, torch.Tensor | np.ndarray):
            continue  # a TensorList or a tuple
        if (value.numel() if isinstance(value, torch.Tensor) else value.size) > FOLD_MAX_ELEMENTS:
            continue
        attr = _attr_name(f"folded/{name}/{node.name}")
        if isinstance(value, torch.Tensor):
            constants.register_buffer(attr, value, persistent=False)
        else:
            object.__setattr__(constants, attr, value)
        with g.inserting_before(node):
            read = g.get_attr(f"constants.{attr}")
        node.replace_all_uses_with(read)
        g.erase_node(node)
        known[read] = value


#: Arguments that ops read as Python ints at once (an axis, a shape, a permutation), by op and
#: position: a constant there becomes the literal, saving a read and a ``.tolist()`` per call.
_STATIC_ARGUMENTS: dict[Any, int] = {
    OPS["Reshape"].fn: 1,
    OPS["ExpandDims"].fn: 1,
    OPS["Transpose"].fn: 1,
    OPS["Tile"].fn: 1,
    OPS["GatherV2"].fn: 2,
    **{OPS[n].fn: 1 for n in ("Sum", "Mean", "Max", "Min", "Prod", "Any", "All")},
}
#: The most elements such a constant has (a shape or a permutation is a handful).
STATIC_MAX_ELEMENTS = 16


def _static_arguments(g: fx.Graph, constants: nn.Module) -> None:
    """Small integer constants in axis / shape positions (and ConcatV2's axis) as literals."""
    concat = OPS["ConcatV2"].fn
    for node in g.nodes:
        if node.op != "call_function":
            continue
        position = (
            len(node.args) - 1 if node.target is concat else _STATIC_ARGUMENTS.get(node.target)
        )
        if position is None or position >= len(node.args):
            continue
        arg = node.args[position]
        if not (isinstance(arg, fx.Node) and arg.op == "get_attr"):
            continue
        holder, _, attr = str(arg.target).partition(".")
        if holder != "constants":
            continue
        value = _read(constants, attr)
        if (
            not isinstance(value, torch.Tensor)
            or value.is_floating_point()
            or value.is_complex()
            or value.numel() > STATIC_MAX_ELEMENTS
        ):
            continue
        literal = value.item() if value.dim() == 0 else [int(v) for v in value.tolist()]
        node.args = (*node.args[:position], literal, *node.args[position + 1 :])


#: MatMul + BiasAdd (+ Relu) run as one ``addmm`` (+ in-place ReLU on its fresh result) up to this
#: depth (rows of the kernel): there the GEMM adds the bias after the whole dot product, which is
#: exactly ``a @ w + b`` (checked bit for bit on MKL up to 129); deeper ones run unfused.
FUSED_MAX_DEPTH = 128


def _matmul_bias(a: Any, w: Any, b: Any, data_format: str = "NHWC") -> Any:
    """``BiasAdd(MatMul(a, w), b)`` (no transposes), as one ``addmm`` where that is exact."""
    if (
        isinstance(a, torch.Tensor)
        and a.dim() == 2
        and w.dim() == 2
        and b.dim() == 1
        and a.is_floating_point()
        and a.dtype == w.dtype == b.dtype
        and w.shape[0] <= FUSED_MAX_DEPTH
    ):
        return torch.addmm(b, a, w)
    return OPS["BiasAdd"].fn(OPS["MatMul"].fn(a, w), b, data_format=data_format)


def _matmul_bias_relu(a: Any, w: Any, b: Any, data_format: str = "NHWC") -> Any:
    """``Relu(BiasAdd(MatMul(a, w), b))``: the ReLU in place, on the fused op's own result."""
    return torch.relu_(_matmul_bias(a, w, b, data_format))


def _fuse_dense(g: fx.Graph) -> None:
    """Rewrites each MatMul -> BiasAdd (-> Relu) chain whose links have no other user."""
    matmul, bias_add, relu = OPS["MatMul"].fn, OPS["BiasAdd"].fn, OPS["Relu"].fn
    for node in list(g.nodes):
        if node.op != "call_function" or node.target is not bias_add or len(node.args) != 2:
            continue
        product, bias = node.args
        if not (
            isinstance(product, fx.Node)
            and product.op == "call_function"
            and product.target is matmul
            and len(product.users) == 1
            and len(product.args) == 2
            and not product.kwargs.get("transpose_a")
            and not product.kwargs.get("transpose_b")
        ):
            continue
        users = list(node.users)
        activated = len(users) == 1 and users[0].op == "call_function" and users[0].target is relu
        last = users[0] if activated else node
        with g.inserting_before(last):
            fused = g.call_function(
                _matmul_bias_relu if activated else _matmul_bias,
                (*product.args, bias),
                {"data_format": node.kwargs.get("data_format", "NHWC")},
            )
        last.replace_all_uses_with(fused)
        if activated:
            g.erase_node(last)
        g.erase_node(node)
        g.erase_node(product)


def _read(holder: nn.Module, attr: str) -> Any:
    store, key = _slot(holder, attr)
    return store[key]


def _lookup_only_inputs(graph: fx.Graph) -> frozenset[int]:
    """Positions of the inputs whose every use is as the keys of a ``LookupTableFindV2``."""
    found = set()
    for position, node in enumerate(n for n in graph.nodes if n.op == "placeholder"):
        uses = list(node.users)
        if uses and all(
            use.op == "call_function"
            and use.target is lookup_find
            and use.args[1] is node
            and node not in (*use.args[:1], *use.args[2:], *use.kwargs.values())
            for use in uses
        ):
            found.add(position)
    return frozenset(found)


def _as_input(value: Any, spec: Any, as_keys: bool = False) -> Any:
    dtype = to_dtype(spec.dtype)
    if dtype is None:
        if as_keys:  # HashTable.find takes str, bytes and <U arrays as they are
            return value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object)
        return to_bytes_array(value)
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    return tensor.to(dtype=dtype)


class TranslatedSavedModel(nn.Module):
    """The translated signatures of one SavedModel, sharing its variables.

    ``signatures[name]`` is a :class:`Signature`; calling the module calls the default one
    (``serving_default``, or the only signature). Parameters are named by TF object path
    (``variables.<path>``), so fine-tuning, ``state_dict`` and optimizers see each variable once.
    """

    variables: _Values
    constants: _Values
    tables: nn.ModuleDict
    subgraphs: nn.ModuleDict
    signatures: dict[str, Signature]

    def __init__(
        self,
        graphs: Mapping[str, Graph],
        tensors: Mapping[str, Any],
        tables: Mapping[str, HashTable],
    ) -> None:
        super().__init__()
        if not graphs:
            raise UnsupportedGraphError("A translated SavedModel needs at least one signature.")
        self.variables = _Values()
        self.constants = _Values()
        self.tables = nn.ModuleDict()
        self.subgraphs = nn.ModuleDict()
        signatures: dict[str, Signature] = {}
        for name, graph in graphs.items():
            fx_graph = _build_graph(graph, tensors, tables, self, prefix=f"{name}/")
            graph_module = fx.GraphModule(self, fx_graph, class_name="TFGraph")
            for holder in ("variables", "constants", "tables", "subgraphs"):
                if holder in graph_module._modules:  # share, never copy: one parameter per variable
                    graph_module._modules[holder] = getattr(self, holder)
            signatures[name] = Signature(graph_module, graph, name)
        # Not registered as submodules: their holders are this module's, so each tensor is named once.
        self.__dict__["signatures"] = signatures
        self.default_signature = (
            "serving_default" if "serving_default" in graphs else next(iter(graphs))
        )

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the default signature and returns what calling the loaded TF model returns: one
        output as itself, ``output_1 ... output_n`` as a tuple (an index: ``scores, ids``), else
        the dict. ``index(queries, k=10)`` overrides an exported index's ``k``."""
        outputs = self.signatures[self.default_signature](*args, **kwargs)
        names = list(outputs)
        if len(names) == 1:
            return outputs[names[0]]
        positional = [f"output_{i + 1}" for i in range(len(names))]
        if sorted(names) == sorted(positional):
            return tuple(outputs[n] for n in positional)
        return outputs

    def tf_variables(self) -> dict[str, torch.Tensor]:
        """``{TF object path: parameter or buffer}`` of every variable a signature reads."""
        out: dict[str, torch.Tensor] = dict(self.variables.named_parameters(recurse=False))
        out.update(self.variables.named_buffers(recurse=False))
        return out


def _attr_name(text: str) -> str:
    return text.replace(".", "_")


def _source(
    node: Node,
    tensors: Mapping[str, Any],
    tables: Mapping[str, HashTable],
    root: Any,
    g: fx.Graph,
) -> fx.Node:
    if node.op == "Variable":
        path = str(node.attrs["path"])
        name = _attr_name(path)
        if not hasattr(root.variables, name):
            if path not in tensors:
                raise UnsupportedGraphError(
                    f"Variable {path!r} is read by the graph but not stored."
                )
            _register(root.variables, name, tensors[path], trainable=True)
        return g.get_attr(f"variables.{name}")
    if node.op == "Const":
        key = str(node.attrs["tensor"])
        name = _attr_name(key)
        if key not in tensors:
            raise UnsupportedGraphError(f"Constant {key!r} is read by the graph but not stored.")
        if not hasattr(root.constants, name):
            _register(root.constants, name, tensors[key], trainable=False)
        return g.get_attr(f"constants.{name}")
    if node.op == "Table":
        path = str(node.attrs["path"])
        if path not in tables:
            raise UnsupportedGraphError(
                f"Lookup table {path!r} is read by the graph but not stored."
            )
        name = _attr_name(path)
        if name not in root.tables:
            root.tables[name] = tables[path]
        return g.get_attr(f"tables.{name}")
    raise UnsupportedGraphError(f"{node.op} is not a source")


def _register(owner: nn.Module, name: str, value: Any, trainable: bool) -> None:
    if isinstance(value, torch.Tensor):
        if trainable and value.is_floating_point():
            owner.register_parameter(name, nn.Parameter(value.clone(), requires_grad=True))
        else:
            owner.register_buffer(name, value.clone())
    else:
        object.__setattr__(owner, name, value)  # a host array of bytes


def _build_graph(
    graph: Graph,
    tensors: Mapping[str, Any],
    tables: Mapping[str, HashTable],
    root: Any,
    prefix: str,
    allow_k: bool = True,
) -> fx.Graph:
    g = fx.Graph()
    placeholders = [g.placeholder(_py_name(s.name, i)) for i, s in enumerate(graph.inputs)]
    top_k = _top_k_node(graph, tensors) if allow_k else None
    k_input = g.placeholder("k", default_value=top_k[1]) if top_k is not None else None
    values: dict[str, fx.Node] = {}
    multi: dict[str, bool] = {}

    def read(ref: Ref) -> Any:
        node = values[ref.node]
        if multi.get(ref.node):
            return g.call_function(operator.getitem, (node, ref.index))
        if ref.index != 0:
            raise UnsupportedGraphError(
                f"Node {ref.node!r} has one output; output {ref.index} was read."
            )
        return node

    for node in graph.nodes:
        if node.op == "Placeholder":
            values[node.name] = placeholders[int(node.attrs["index"])]
        elif node.op in SOURCE_OPS:
            values[node.name] = _source(node, tensors, tables, root, g)
        elif node.op == "While":
            cond = _subgraph(node.attrs["cond"], tensors, tables, root, f"{prefix}{node.name}/cond")
            body = _subgraph(node.attrs["body"], tensors, tables, root, f"{prefix}{node.name}/body")
            args = (g.get_attr(cond), g.get_attr(body), *[read(r) for r in node.inputs])
            values[node.name] = g.call_function(_run_while, args)
            multi[node.name] = True
        elif node.op == "If":
            then = _subgraph(
                node.attrs["then_branch"], tensors, tables, root, f"{prefix}{node.name}/then"
            )
            other = _subgraph(
                node.attrs["else_branch"], tensors, tables, root, f"{prefix}{node.name}/else"
            )
            cond_value, *branch_args = (read(r) for r in node.inputs)
            values[node.name] = g.call_function(
                _run_if, (cond_value, g.get_attr(then), g.get_attr(other), *branch_args)
            )
            multi[node.name] = True
        else:
            op = OPS.get(node.op)
            if op is None:
                raise UnsupportedGraphError(
                    f"op {node.op!r} ({node.origin or node.name}) is not in the allow-list."
                )
            kwargs = {k: node.attrs[k] for k in op.attrs if k in node.attrs}
            op_args: list[Any] = [read(r) for r in node.inputs]
            if top_k is not None and node.name == top_k[0]:
                op_args[1] = k_input  # the exported k becomes the default of a `k` argument
            values[node.name] = g.call_function(op.fn, tuple(op_args), kwargs)
            multi[node.name] = op.multi_output
    g.output(tuple(read(o.ref) for o in graph.outputs))
    g.lint()
    return g


def _top_k_node(graph: Graph, tensors: Mapping[str, Any]) -> tuple[str, int] | None:
    """The one ``TopKV2`` of an exported index whose ``k`` is a constant: ``(node, k)``."""
    by_name = {n.name: n for n in graph.nodes}
    found = []
    for node in graph.nodes:
        if node.op == "TopKV2" and len(node.inputs) == 2:
            source = by_name[node.inputs[1].node]
            if source.op == "Const" and str(source.attrs["tensor"]) in tensors:
                value = tensors[str(source.attrs["tensor"])]
                if isinstance(value, torch.Tensor) and value.numel() == 1:
                    found.append((node.name, int(value.item())))
    return found[0] if len(found) == 1 else None


def _subgraph(
    graph: Graph,
    tensors: Mapping[str, Any],
    tables: Mapping[str, HashTable],
    root: Any,
    name: str,
) -> str:
    sub_root = nn.Module()
    sub_root.variables = root.variables
    sub_root.constants = root.constants
    sub_root.tables = root.tables
    sub_root.subgraphs = root.subgraphs
    fx_graph = _build_graph(graph, tensors, tables, sub_root, prefix=name + "/", allow_k=False)
    module = fx.GraphModule(sub_root, fx_graph, class_name="SubGraph")
    key = _attr_name(name).replace("/", "__")
    root.subgraphs[key] = module
    return f"subgraphs.{key}"


def _py_name(name: str, index: int) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if not cleaned or cleaned[0].isdigit():
        cleaned = f"input_{index}_{cleaned}"
    return cleaned
