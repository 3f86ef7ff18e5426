"""Walking a SavedModel's object graph into an architecture spec, tensors and report entries.

A plain ``tf.saved_model.save`` export has no configs, so layers are recognised by what they hold
(``lookup_table`` -> lookup, ``embeddings`` -> Embedding, ``kernel`` -> Dense with its activation read from the
traced function's ops) and stated as inferred in the report; lookup tables are exported from the restored object
(``LookupTableExportV2``), so vocabularies come from the model itself, byte for byte, never recomputed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from converters.tfrs_to_torch import rules
from converters.tfrs_to_torch.errors import ConversionError, UnsupportedLayerError
from converters.tfrs_to_torch.index_walker import IndexWalker
from converters.tfrs_to_torch.keras_graph import (
    CONFIG_KEYS,
    first_node_index,
    is_ref,
    json_safe,
    keras_config,
    keras_refs,
    keras_value,
    module_key,
    parse_node,
    topological,
    unnest,
)
from converters.tfrs_to_torch.lookup_walker import LookupWalker
from converters.tfrs_to_torch.plan import (
    OOV_PROBE,
    REEXPORT_HINT,
    Plan,
    ReportEntry,
    Status,
    TensorPlan,
)
from converters.tfrs_to_torch.tf_format import (
    TRACKING_NAMES,
    SavedModelReader,
    read_tensor,
)

# Dense config entries carried into torchrs (its Dense computes the same losses).
REGULARIZER_KEYS = ("kernel_regularizer", "bias_regularizer")


def _config_regularizers(
    config: dict[str, Any], keys: tuple[str, ...], path: str
) -> dict[str, Any]:
    """The regularizers of a Keras layer config, as Keras config dicts (or names).

    A Keras regularizer torchrs cannot build (a custom one, OrthogonalRegularizer) is refused here,
    not when the converted model is loaded.
    """
    from torchrs.regularizers import get_regularizer

    out: dict[str, Any] = {}
    for key in keys:
        regularizer = config.get(key)
        if regularizer is None:
            continue
        if isinstance(regularizer, dict):  # Keras config dict: class name and factors
            regularizer = {
                "class_name": regularizer.get("class_name"),
                "config": dict(regularizer.get("config") or {}),
            }
        try:
            get_regularizer(regularizer)
        except (ValueError, TypeError) as err:
            cls = str(config.get("name", "layer"))
            raise UnsupportedLayerError(
                cls, path, f"its {key} is not one torchrs rebuilds ({err})"
            ) from None
        out[key] = regularizer
    return out


class Walker(IndexWalker, LookupWalker):
    """Describes the module at a node of the object graph, adding its tensors and report entries to ``plan``."""

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
        if frozenset(variables) in rules.CLASSES_BY_VARIABLES:
            return rules.CLASSES_BY_VARIABLES[frozenset(variables)]
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
            return self.weighted(node_id, path, prefix, cls, self.embedding_config(node_id, path))
        if cls == "Dense":
            return self.weighted(node_id, path, prefix, cls, self.dense_config(node_id, path))
        if cls == "MLP":
            return self.weighted(node_id, path, prefix, cls, self.mlp_config(node_id, path))
        if cls == "Cross":
            return self.weighted(node_id, path, prefix, cls, self.sm.config(node_id))
        if cls == "Normalization":
            config = keras_config(self.sm.config(node_id), ("axis", "invert", "mean", "variance"))
            if config.get("mean") is not None:  # statistics given to the constructor
                self.sm.skip_variables(node_id, "constant statistics given in the layer config")
                return {"class_name": cls, "config": json_safe(config), "shapes": {}}
            return self.weighted(node_id, path, prefix, cls, config)
        if cls in rules.CONFIG_LAYERS:
            return self.config_layer(node_id, path, cls)
        if cls == "TextVectorization":
            return self.text_vectorization(node_id, path, prefix)
        if cls == "GRU":
            return self.gru(node_id, path, prefix)
        if cls in rules.STATELESS_LAYERS:
            return {"class_name": cls, "config": json_safe(self.sm.config(node_id))}
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
        if rules.has_rules(cls):  # a layer kind mapped by the rules table alone
            return self.weighted(
                node_id, path, prefix, cls, self.keras_or_default_config(node_id, path, cls)
            )
        if cls in ("_Container",) or (
            self.sm.identifier(node_id) == "_tf_keras_model"
            and "layers" not in self.sm.config(node_id)
        ):
            return self.container(node_id, path, prefix)
        raise UnsupportedLayerError(cls, path)

    def embedding_config(self, node_id: int, path: str) -> dict[str, Any]:
        config = self.sm.config(node_id)
        out: dict[str, Any] = {"mask_zero": bool(config.get("mask_zero", False))}
        if config:
            out.update(_config_regularizers(config, ("embeddings_regularizer",), path))
        else:  # tf.saved_model.save: the regularizer is read from its traced ops
            found = self.sm.layer_regularizers(node_id, path, "Embedding")
            for key, value in found.items():
                self.plan.report.append(
                    ReportEntry(
                        path,
                        Status.INFERRED,
                        reason=f"Embedding config not in the export (tf.saved_model.save): "
                        f"{key}={value['class_name']}({value['config']}) read from its traced "
                        "regularizer ops",
                    )
                )
            out.update(found)
        return out

    def dense_config(self, node_id: int, path: str, enclosing: int | None = None) -> dict[str, Any]:
        config = self.sm.config(node_id)
        if config:
            activation = config.get("activation", "linear")
            if isinstance(activation, dict):
                activation = activation.get("config", {}).get("name", activation.get("class_name"))
            out = {"activation": activation, "use_bias": bool(config.get("use_bias", True))}
            return {**out, **_config_regularizers(config, REGULARIZER_KEYS, path)}
        has_bias = any(p == "bias" for p, _ in self.sm.layer_variables(node_id))
        activation = self.sm.dense_activation(node_id, path, enclosing)
        if enclosing is None:
            regularizers = self.sm.layer_regularizers(node_id, path, "Dense")
        else:  # an MLP's sublayer: its regularizers are traced in the MLP's call
            inline = self.sm.enclosed_regularizers(enclosing, path.rsplit("/_sublayers/", 1)[0])
            regularizers = {
                f"{attribute}_regularizer": inline[var_id]
                for attribute, var_id in self.sm.layer_variables(node_id)
                if attribute in ("kernel", "bias") and var_id in inline
            }
        read = ", ".join(f"{k}={v['class_name']}({v['config']})" for k, v in regularizers.items())
        self.plan.report.append(
            ReportEntry(
                path,
                Status.INFERRED,
                reason=f"Dense config not in the export (tf.saved_model.save): activation "
                f"{activation!r} read from the traced call, use_bias={has_bias}"
                + (f", {read} read from its traced regularizer ops" if read else ""),
            )
        )
        return {"activation": activation, "use_bias": has_bias, **regularizers}

    def keras_or_default_config(self, node_id: int, path: str, cls: str) -> dict[str, Any]:
        """The layer's Keras config; without one (tf.saved_model.save), Keras's defaults, reported as inferred."""
        config = self.sm.config(node_id)
        if not config:
            self.plan.report.append(
                ReportEntry(
                    path,
                    Status.INFERRED,
                    reason=f"{cls} config not in the export (tf.saved_model.save): Keras defaults assumed, "
                    "checked by the forward comparison",
                )
            )
        return config

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
            bounds = [float(b) for b in keras_value(config.get("bin_boundaries") or [])]
            if bounds:
                self.plan.samples.setdefault(path, [bounds[0] - 1.0, *bounds])
        return {"class_name": cls, "config": json_safe(keras_config(config, CONFIG_KEYS[cls]))}

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
                Status.CONVERTED,
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
        out = {
            "units": units,
            "use_bias": configs[0]["use_bias"],
            "activation": hidden.pop() if hidden else "relu",
            "final_activation": configs[-1]["activation"],
        }
        # TFRS's MLP takes no regularizer argument, but its Dense sublayers can carry one (set on them
        # before the block was built): every penalty is kept, per sublayer, never dropped.
        regularizers = [
            {k: c[k] for k in REGULARIZER_KEYS if c.get(k) is not None} for c in configs
        ]
        if any(regularizers):
            out["sublayer_regularizers"] = regularizers
        return out

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
        return {"class_name": cls, "config": json_safe(config), "shapes": shapes}

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
                shape = keras_value(layer_config.get("batch_input_shape"))
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
            key = module_key(name, taken)
            keys[name] = key
            spec = self.unskippable(
                child_id, child_path, f"{prefix}layers.{key}.", "a functional graph"
            )
            layers[key] = spec
            first = first_node_index(layer)
            for node_index, node_data in enumerate(layer.get("inbound_nodes") or [], first):
                inbound, kwargs = parse_node(node_data, f"{child_path} ({name})")
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
            if is_ref(structure):
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

        nodes = topological(
            [
                {"layer": keys[name], "node_index": i, "inbound": rename(inbound)}
                for name, i, inbound in raw_nodes
            ],
            set(input_specs),
            where,
        )
        inputs = unnest(keras_refs(config["input_layers"]))
        outputs = unnest(keras_refs(config["output_layers"]))
        if is_ref(inputs):
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
            "config": json_safe(keras_config(config, rules.GRAPH_LAYERS[cls])),
        }

    def guarded(self, node_id: int, path: str, prefix: str) -> dict[str, Any] | None:
        """``describe``, or with ``--no-strict`` a report entry for an unsupported layer."""
        try:
            return self.describe(node_id, path, prefix)
        except UnsupportedLayerError as err:
            if self.strict:
                raise
            self.plan.report.append(ReportEntry(path, Status.UNSUPPORTED, reason=err.problem))
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
                f"{where} cannot skip a layer",
                strict=self.strict,
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
                        child_path,
                        Status.SKIPPED,
                        reason="no trainable weights (loss / metrics / task)",
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
