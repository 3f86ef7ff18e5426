"""Whole-graph conversion of a ``tf.saved_model.save`` export: its signatures, translated.

:func:`convert_graph` translates every serving signature (:mod:`.graph_translate`), writes a torchrs
directory whose architecture is the declarative graph (``model_kind == "graph"``), re-reads it, builds
the module and compares it with TF on inputs sampled from the export's own lookup tables (unknown
tokens included) before renaming the output into place. ``torchrs.load(OUT)`` returns a
:class:`torchrs.graph.TranslatedSavedModel`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converters.tfrs_to_torch import writer
from converters.tfrs_to_torch.compare import (
    CONVERTER_TOLERANCE,
    Check,
    InputField,
    OutputComparison,
    compare_output,
    sample_input,
)
from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.graph_translate import (
    Translation,
    call_structured,
    keras_calls,
    translate_saved_model,
)
from converters.tfrs_to_torch.tf_env import import_tf, versions
from torchrs.graph.ir import Graph
from torchrs.graph.module import Signature, TranslatedSavedModel
from torchrs.graph.storage import GRAPH_KIND, encode, load_graph_model
from torchrs.io.spec import FORMAT_VERSION

__all__ = ["FLOAT_ATOL", "FLOAT_RTOL", "GraphConversion", "convert_graph", "emit_python"]

#: The comparison engine's record shared with the layer-by-layer verification: rtol 1e-5 (the same
#: float32 ops summed in another order: a few ulps), atol 1e-6 for outputs near zero.
TOLERANCE = CONVERTER_TOLERANCE
FLOAT_RTOL = TOLERANCE.rtol
FLOAT_ATOL = TOLERANCE.atol
#: Rows of sampled inputs per signature in the verification (and the length of any open axis).
SAMPLE_ROWS = 16
#: Integer inputs no table reads are drawn from [0, this): small enough to index any embedding
#: table the signature gathers from directly.
ARBITRARY_INT_HIGH = 10


class GraphConversion(dict):  # type: ignore[type-arg]
    """The summary of a whole-graph conversion (JSON-ready)."""


def _table_keys_for(
    graph: Graph, tables: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> dict[int, np.ndarray]:
    """Input index -> keys of a table the input is looked up in (directly), for sampling."""
    by_name = {n.name: n for n in graph.nodes}
    out: dict[int, np.ndarray] = {}
    for node in graph.nodes:
        if node.op != "LookupTableFindV2" or len(node.inputs) < 2:
            continue
        table, keys = by_name[node.inputs[0].node], by_name[node.inputs[1].node]
        if table.op == "Table" and keys.op == "Placeholder":
            out.setdefault(int(keys.attrs["index"]), tables[str(table.attrs["path"])][0])
    return out


def input_fields(
    graph: Graph, tables: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> list[InputField]:
    """What the export knows about each signature input: the keys of a table it is looked up in."""
    vocab = _table_keys_for(graph, tables)
    return [
        InputField(
            spec.name,
            spec.dtype,
            tuple(spec.shape) if spec.shape else (None,),
            vocabulary=vocab[index].tolist() if index in vocab and len(vocab[index]) else None,
            int_high=ARBITRARY_INT_HIGH,
            arbitrary=True,
        )
        for index, spec in enumerate(graph.inputs)
    ]


def sample_inputs(
    graph: Graph, tables: Mapping[str, tuple[np.ndarray, np.ndarray]], seed: int = 0
) -> dict[str, np.ndarray]:
    """Inputs for every signature input (the shared engine's
    :func:`~converters.tfrs_to_torch.compare.sample_input`): table keys plus an unknown one and the
    empty string, or random values."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for field in input_fields(graph, tables):
        sample = sample_input(field, SAMPLE_ROWS, rng, open_axis=SAMPLE_ROWS)
        if sample is None:  # arbitrary=True: never
            raise ConversionError(f"No sample inputs fit the signature input {field.name!r}.")
        out[field.name] = sample.values
    return out


def comparisons(
    ref: Mapping[str, np.ndarray], got: Mapping[str, Any]
) -> dict[str, OutputComparison]:
    """Per output of a signature: the engine's comparison under :data:`TOLERANCE`."""
    return {
        name: compare_output(name, expected, got[name], TOLERANCE) for name, expected in ref.items()
    }


def compare_outputs(ref: Mapping[str, np.ndarray], got: Mapping[str, Any]) -> dict[str, float]:
    """Per output: excess over the tolerance (floats) or mismatch count (ids). 0 = pass.

    A NaN or Inf where the other side has a finite value (or a different non-finite value) fails.
    """
    return {name: c.excess for name, c in comparisons(ref, got).items()}


def _tf_outputs(
    loaded: Any, key: str, graph: Graph, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    tf = import_tf()
    if key in loaded.signatures:
        function = loaded.signatures[key]
        specs = tf.nest.flatten(function.structured_input_signature)
        feed = {s.name: tf.constant(inputs[s.name], dtype=s.dtype) for s in specs}
        return {k: _as_numpy(v) for k, v in function(**feed).items()}
    concrete = keras_calls(tf, loaded)[key]
    values = [tf.constant(inputs[s.name], dtype=s.dtype) for s in graph.inputs]
    from tensorflow.python.util import nest

    outputs = call_structured(tf, concrete, values)
    flat = nest.flatten_with_joined_string_paths(outputs)
    return {(path or "output_0"): _as_numpy(v) for path, v in flat}


def _as_numpy(value: Any) -> np.ndarray:
    array = np.asarray(value.numpy())
    if array.dtype.kind in ("O", "S"):
        return array.astype(object)
    return array


def _torch_outputs(signature: Signature, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    with torch.no_grad():
        return signature(**inputs)


def verify(
    out_dir: Path, export_dir: Path, translation: Translation, rows: list[Check] | None = None
) -> dict[str, dict[str, float]]:
    """Builds the written directory and compares every signature with TF; raises on a mismatch.

    Returns ``{signature: {output: excess over the tolerance or differing ids}}`` (0 = pass) and
    appends the engine's report rows to ``rows`` when given.
    """
    from safetensors.torch import load_file

    config = json.loads((out_dir / writer.CONFIG_FILE).read_text(encoding="utf-8"))
    module = load_graph_model(config["architecture"], load_file(str(out_dir / writer.WEIGHTS_FILE)))
    tf = import_tf()
    loaded = tf.saved_model.load(str(export_dir))
    report: dict[str, dict[str, float]] = {}
    for key, graph in translation.signatures.items():
        inputs = sample_inputs(graph, translation.tables)
        expected = _tf_outputs(loaded, key, graph, inputs)
        got = _torch_outputs(module.signatures[key], inputs)
        compared = comparisons(expected, got)
        report[key] = {name: c.excess for name, c in compared.items()}
        if rows is not None:
            rows += [r for name, c in compared.items() for r in c.rows(key, TOLERANCE, name)]
        bad = {k: v for k, v in report[key].items() if v > 0}
        if bad:
            raise ConversionError(
                f"Verification failed: signature {key!r} of the translated graph differs from TF on "
                f"sampled inputs (excess over rtol {FLOAT_RTOL:g} / id mismatches: {bad}). Nothing "
                "was written."
            )
    return report


def convert_graph(
    export_dir: str | Path,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    run_verify: bool = True,
    signatures: list[str] | None = None,
    emit_python_to: str | Path | None = None,
) -> GraphConversion:
    """Translates the signatures of a SavedModel into a torchrs directory (atomically).

    Args:
        export_dir: a SavedModel written by ``tf.saved_model.save``.
        out_dir: the output directory.
        overwrite: replace an existing ``out_dir``.
        run_verify: re-read the output, build it and compare each signature with TF.
        signatures: the signatures to translate (default: all).
        emit_python_to: also write editable PyTorch source of the model there.

    Raises:
        ConversionError: an unsupported op / dtype, a corrupted export, or a failed verification;
            nothing is left at ``out_dir`` then.
    """
    export = Path(export_dir)
    out = Path(out_dir)
    writer.check_output_dir(out, overwrite)
    translation = translate_saved_model(export, signatures)
    values: dict[str, np.ndarray] = dict(translation.tensors)
    tables_spec: dict[str, dict[str, str]] = {}
    for path, (keys, vals) in translation.tables.items():
        values[f"table/{path}/keys"] = keys
        values[f"table/{path}/values"] = vals
        tables_spec[path] = {"keys": f"table/{path}/keys", "values": f"table/{path}/values"}
    arrays, strings = encode(values)
    architecture = {
        "class_name": "TranslatedSavedModel",
        "kind": GRAPH_KIND,
        "signatures": {k: g.to_json() for k, g in translation.signatures.items()},
        "tables": tables_spec,
        "strings": strings,
    }
    summary: dict[str, Any] = {
        "signatures": sorted(translation.signatures),
        "variables": len(translation.variables),
        "tables": len(translation.tables),
        "nodes": {k: len(g.nodes) for k, g in translation.signatures.items()},
        "not_translated": translation.skipped,
    }
    target = writer.AtomicDirectory(out, overwrite)
    try:
        from safetensors.numpy import save_file

        save_file(arrays, str(target.path / writer.WEIGHTS_FILE), metadata={"format": "pt"})
        config = {
            "format": "torchrs",
            "format_version": FORMAT_VERSION,
            "model_kind": GRAPH_KIND,
            "architecture": architecture,
            "source": {
                "path": str(export.resolve()),
                "format": "saved_model",
                "conversion": "graph",
            },
            "versions": versions(),
            "summary": summary,
            "notes": [],
        }
        writer.write_json(target.path / writer.CONFIG_FILE, config)
        entries = [
            {"source": path, "status": "converted", "target": f"variables.{path}", "dtype": dtype}
            for path, dtype in sorted(translation.variables.items())
        ] + [
            {"source": path, "status": "converted", "target": f"tables.{path}"}
            for path in sorted(translation.tables)
        ]
        record: dict[str, Any] = {
            "conversion": "graph",
            "entries": entries,
            "not_translated": translation.skipped,
        }
        writer.write_json(target.path / writer.REPORT_FILE, record)
        if run_verify:
            rows: list[Check] = []
            summary["verification"] = verify(target.path, export, translation, rows)
            summary["tolerance"] = {"rtol": FLOAT_RTOL, "atol": FLOAT_ATOL}
            record["tolerance"] = asdict(TOLERANCE)
            record["comparison"] = [asdict(row) for row in rows]
            writer.write_json(target.path / writer.REPORT_FILE, record)
        else:
            summary["verification"] = "skipped (--no-verify)"
        writer.write_json(target.path / writer.CONFIG_FILE, config)
        if emit_python_to is not None:
            from safetensors.torch import load_file

            module = load_graph_model(
                architecture, load_file(str(target.path / writer.WEIGHTS_FILE))
            )
            Path(emit_python_to).write_text(emit_python(module), encoding="utf-8")
        target.commit()
    except BaseException:
        target.abort()
        raise
    return GraphConversion(out_dir=str(out), model_kind=GRAPH_KIND, **summary)


def emit_python(module: TranslatedSavedModel) -> str:
    """Readable PyTorch source of a translated model: one ``nn.Module`` method per signature.

    The class loads its tensors from the torchrs directory's ``model.safetensors`` (variables by TF
    object path) and calls the ops of :mod:`torchrs.graph.ops` by name; edit it freely.
    """
    imports: dict[str, str] = {}
    methods: list[str] = []
    for key, signature in module.signatures.items():
        code = signature.graph_module.graph.python_code(root_module="self")
        for name, obj in code.globals.items():
            if name in code.src and _importable(obj):
                imports[name] = f"from {obj.__module__} import {obj.__qualname__} as {name}"
        body = code.src.replace("def forward(self, ", f"def {_method_name(key)}(self, ", 1)
        methods.append(body)
    lines = [
        '"""PyTorch source emitted by python -m converters.tfrs_to_torch --emit-python."""',
        "",
        "from torch import nn",
        "",
        "import torchrs",
        *sorted(set(imports.values())),
        "",
        "",
        "class TranslatedModel(nn.Module):",
        '    """Loads the converted tensors; one method per exported signature."""',
        "",
        "    def __init__(self, directory):",
        "        super().__init__()",
        "        loaded = torchrs.load(directory)",
        "        self.variables = loaded.variables",
        "        self.constants = loaded.constants",
        "        self.tables = loaded.tables",
        "        self.subgraphs = loaded.subgraphs",
        "",
    ]
    for body in methods:
        lines.extend(
            "    " + line if line.strip() else "" for line in body.strip("\n").splitlines()
        )
        lines.append("")
    if module.default_signature:
        lines += [
            "    def forward(self, *args, **kwargs):",
            f"        return self.{_method_name(module.default_signature)}(*args, **kwargs)",
            "",
        ]
    return "\n".join(lines)


def _importable(obj: Any) -> bool:
    """``obj`` is reachable as ``from obj.__module__ import obj.__qualname__``."""
    import importlib

    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not name or "." in name or "<" in name:
        return False
    try:
        return getattr(importlib.import_module(module), name, None) is obj
    except ImportError:
        return False


def _method_name(key: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in key)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"signature_{cleaned}"
