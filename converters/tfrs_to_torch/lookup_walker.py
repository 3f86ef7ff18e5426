"""The lookup parts of the walk: ``StringLookup`` / ``IntegerLookup`` (their vocabulary exported from the lookup
table, byte for byte, or replaced by ``--vocab``) and ``TextVectorization`` (its config plus its inner lookup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from converters.tfrs_to_torch.errors import ConversionError, UnsupportedLayerError
from converters.tfrs_to_torch.keras_graph import (
    CONFIG_KEYS,
    LOOKUP_DROP,
    TEXT_MODES,
    json_safe,
    keras_config,
)
from converters.tfrs_to_torch.plan import (
    OOV_PROBE,
    REEXPORT_HINT,
    Plan,
    ReportEntry,
    Status,
    TensorPlan,
    bytes_tensors,
    constant,
)
from converters.tfrs_to_torch.tf_format import (
    SavedModelReader,
    export_table,
)


class LookupWalker:
    """The walker's lookup kinds (mixed into :class:`~converters.tfrs_to_torch.walker.Walker`)."""

    sm: SavedModelReader
    plan: Plan
    strict: bool
    vocab_overrides: dict[str, Path]

    def required_config(
        self, node_id: int, path: str, cls: str, what: str = "its config"
    ) -> dict[str, Any]:
        raise NotImplementedError

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
            if config.get(key) not in (None, *TEXT_MODES[key]):
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
                Status.CONVERTED,
                f"{prefix}_lookup_layer.token_bytes",
                reason="TextVectorization vocabulary exported from its lookup table",
            )
        )
        return {
            "class_name": "TextVectorization",
            "config": json_safe(keras_config(config, CONFIG_KEYS["TextVectorization"])),
        }

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
        keys, values = export_table(table, cls, path, key_dtype)
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
        clean = {k: v for k, v in config.items() if k not in LOOKUP_DROP}
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
                    Status.INFERRED,
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
            self.plan.tensors.extend(bytes_tensors(prefix, [bytes(t) for t in tokens], source))
            self.plan.samples.setdefault(path, [bytes(t) for t in tokens[:4]] + [OOV_PROBE])
        else:
            array = np.asarray(tokens, dtype=np.int64)
            self.plan.tensors.append(
                TensorPlan(prefix + "tokens", source, array.shape, array.dtype, constant(array))
            )
            self.plan.samples.setdefault(path, [int(t) for t in tokens[:4]] + [-987654321])
        self.plan.report.append(
            ReportEntry(
                source,
                Status.CONVERTED,
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
        return {"class_name": cls, "config": json_safe(clean)}
