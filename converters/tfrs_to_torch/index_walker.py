"""The index parts of the walk: a TFRS ``BruteForce`` (candidates and identifiers are variables) and a
``Streaming`` index (no variables: its candidates are the ``tf.data`` pipeline the export serialised, rebuilt and
read once)."""

from __future__ import annotations

from typing import Any

import numpy as np

from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.plan import (
    Plan,
    ReportEntry,
    Status,
    TensorPlan,
    bytes_tensors,
    constant,
)
from converters.tfrs_to_torch.tf_env import import_tf
from converters.tfrs_to_torch.tf_format import SavedModelReader, read_tensor, strip_key


class IndexWalker:
    """The walker's index kinds (mixed into :class:`~converters.tfrs_to_torch.walker.Walker`)."""

    sm: SavedModelReader
    plan: Plan
    strict: bool

    def describe(self, node_id: int, path: str, prefix: str) -> dict[str, Any] | None:
        raise NotImplementedError

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
                bytes_tensors(f"{prefix}identifiers.", list(ids), strip_key(key))
            )
            sm.claimed[key] = ReportEntry(
                strip_key(key),
                Status.CONVERTED,
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
                constant(candidates),
            )
        )
        self.plan.tensors.append(
            TensorPlan(f"{prefix}batch_sizes", label, sizes.shape, sizes.dtype, constant(sizes))
        )
        identifiers_dtype: str | None = None
        if batches[0][0] is not None:
            ids = np.concatenate([np.asarray(i).reshape(-1) for i, _ in batches])
            if ids.dtype == object:
                identifiers_dtype = "string"
                tokens = [bytes(t) for t in ids]
                self.plan.tensors.extend(bytes_tensors(f"{prefix}identifiers.", tokens, label))
            else:
                identifiers_dtype = "int64"
                array = ids.astype(np.int64)
                self.plan.tensors.append(
                    TensorPlan(
                        f"{prefix}identifiers", label, array.shape, array.dtype, constant(array)
                    )
                )
        self.plan.report.append(
            ReportEntry(
                label,
                Status.CONVERTED,
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
