"""Checking Keras configs before tf_keras sees them, and reading archives member by member.

tf_keras rebuilds a ``.keras`` archive from its ``config.json``: for every ``{"class_name",
"module"}`` it imports the module the config names and calls the class it finds there, and it
extracts the whole archive to a temporary directory. So before ``load_model`` runs:

* the archive's members are listed from the zip directory and bounded (count, names, each
  member's size relative to its compressed size and to the archive) -- tf_keras writes members
  uncompressed, a zip bomb does not;
* ``config.json`` is read with size and nesting limits, and every object in it that names a class
  must name one of :data:`ALLOWED_CLASSES` from a Keras / TFRS module (:data:`ALLOWED_MODULES`);
  nothing is imported from any other module, and no config may name a file (a lookup
  ``vocabulary`` path);
* the Embedding sizes the config declares must fit in ``model.weights.h5`` and in the memory guard.

``keras_metadata.pb`` of a Keras SavedModel is parsed, its JSON bounded the same way, and every class
it names checked against the same allow-list (the converter reads those configs itself and tf_keras
never loads them, but a model naming other classes is refused unless ``--trust-model``; a
subclassed ``tfrs.Model`` is accepted under its own name as a container of allowed layers).
"""

from __future__ import annotations

import json
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.tfrs_to_torch.errors import ConversionError
from torchrs._safe_io import MAX_JSON_BYTES, MAX_JSON_DEPTH, json_depth, memory_limit

# Keras / TFRS classes a tower, index or tfrs.Model of this converter's scope is built from, and the
# objects their configs nest (initializers, regularizers, constraints, optimizers, losses, metrics,
# serialised values). Standard layers the converter cannot map are listed too: tf_keras may build
# them (no code of the model runs) and the converter then names them as unsupported.
ALLOWED_CLASSES = frozenset(
    {
        # models and layers
        "Sequential", "Functional", "Model", "InputLayer", "StringLookup", "IntegerLookup",
        "Hashing", "Normalization", "Discretization", "TextVectorization", "CategoryEncoding",
        "Embedding", "Dense", "Dropout", "GRU", "GRUCell", "LSTM", "LSTMCell", "SimpleRNN",
        "SimpleRNNCell", "Bidirectional", "Concatenate", "Add", "Subtract", "Multiply",
        "Average", "Maximum", "Minimum", "Dot", "Flatten", "Reshape", "Permute", "RepeatVector",
        "Activation", "ReLU", "LeakyReLU", "Softmax", "ELU", "PReLU", "BatchNormalization",
        "LayerNormalization", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
        "AveragePooling1D", "MaxPooling1D", "Conv1D", "Masking", "TimeDistributed",
        "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "UnitNormalization",
        # TFRS
        "BruteForce", "Streaming", "ScaNN", "Cross", "DotInteraction", "MLP", "Retrieval",
        "Ranking", "FactorizedTopK", "Factorized",
        # initializers, regularizers, constraints
        "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal",
        "RandomUniform", "RandomNormal", "TruncatedNormal", "Zeros", "Ones", "Constant",
        "Identity", "Orthogonal", "VarianceScaling", "L1", "L2", "L1L2", "OrthogonalRegularizer",
        "MaxNorm",
        "MinMaxNorm", "NonNeg", "UnitNorm", "RadialConstraint",
        # optimizers and schedules
        "Adam", "Adagrad", "SGD", "RMSprop", "AdamW", "Adamax", "Nadam", "Ftrl", "Adadelta",
        "Lion", "Adafactor", "LossScaleOptimizer",
        "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "InverseTimeDecay",
        "CosineDecay", "CosineDecayRestarts",
        # losses and metrics
        "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy", "CategoricalCrossentropy",
        "SparseCategoricalCrossentropy", "Huber", "Hinge", "RootMeanSquaredError", "Mean",
        "MeanMetricWrapper", "AUC", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
        "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "Precision", "Recall",
        # serialised values and references (no class is built from these)
        "__tensor__", "__numpy__", "__bytes__", "__typespec__", "__ellipsis__", "__slice__",
        "TensorShape", "Policy", "DTypePolicy", "function",
    }
)  # fmt: skip
# Modules a config may name (tf_keras maps "keras.*" onto itself; TFRS is installed with it).
ALLOWED_MODULES = ("keras", "tf_keras", "tensorflow_recommenders")
# Functions a config may reference by name ({"class_name": "function", "config": NAME}).
FUNCTION_MODULES = ("keras.activations", "keras.losses", "keras.metrics", "keras.initializers")
# Members tf_keras writes; anything else would be ignored by tf_keras but still extracted.
ARCHIVE_FILES = ("metadata.json", "config.json", "model.weights.h5")
# Layers with file assets (a lookup's vocabulary file) store them under this folder.
ASSETS_PREFIX = "assets/"
# tf_keras stores members uncompressed; a recompressed archive of float weights shrinks < 2x and
# a constant table more, but no model's member expands 100x beyond its stored bytes: a zip bomb does.
MAX_EXPANSION = 100
# Members up to this size are accepted whatever their ratio (small JSON compresses well).
EXPANSION_FLOOR_BYTES = 1 << 20
# tf_keras writes three members (plus assets for file-based lookups); thousands is a forgery.
MAX_MEMBERS = 1000
# Names of serialised values and specs a Keras SavedModel's metadata holds besides layer configs
# (tf_keras's legacy json_utils: no class is built from them), and the Keras layers that wrap
# Python code, which the export keeps only as a traced graph (op-checked; the converter then
# refuses them as unsupported, naming the layer).
METADATA_CLASSES = frozenset(
    {"__tuple__", "__ellipsis__", "__bytes__", "TypeSpec", "CompositeTensor", "TensorShape",
     "InputSpec", "Lambda", "TFOpLambda", "SlicingOpLambda"}
)  # fmt: skip
# ``register_keras_serializable``'s default package: TFRS's layers and tf_keras's optimizers are
# recorded as "Custom>Cross", "Custom>Adagrad" (the name after ">" must still be allowed).
REGISTERED_PACKAGES = ("Custom",)
# SavedObject.identifier of a Keras model that is not Sequential / Functional (a subclass).
SUBCLASSED_MODEL_NODE = "_tf_keras_model"
# Refusal messages list at most this many classes, each name cut to this many characters.
MAX_LISTED = 10
MAX_NAME_CHARS = 100
# Bytes per element of the weights a config declares (float32 unless the config says otherwise).
DEFAULT_ITEMSIZE = 4


def _objects(value: Any, where: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every JSON object inside ``value`` with its location (iterative: no recursion limit)."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, dict):
            yield item, path
            stack.extend((v, f"{path}/{k}") for k, v in item.items())


def _check_object(value: Any, where: str) -> None:
    """Walks a config: every object naming a class must be allowed."""
    for item, path in _objects(value, where):
        cls = item.get("class_name")
        if cls is not None:
            _check_class(item, cls, path)
        inner = item.get("config")
        config: dict[str, Any] = inner if isinstance(inner, dict) else {}
        if cls in ("StringLookup", "IntegerLookup", "TextVectorization"):
            for key in ("vocabulary", "idf_weights"):
                if isinstance(config.get(key), str):
                    raise ConversionError(
                        f"{path}: {cls} names a file as its {key} ({config[key]!r}); tf_keras would "
                        "open it. Save the model with the vocabulary as a list (adapt() or "
                        "vocabulary=[...]) and convert again."
                    )


def _check_class(item: dict[str, Any], cls: Any, path: str) -> None:
    module = item.get("module")
    registered = item.get("registered_name")
    if cls == "__lambda__" or cls == "Lambda":
        raise ConversionError(
            f"{path}: a {cls} holds Python code; the converter never loads code from a model. "
            "Replace it with a layer (or write that part in torchrs and use load_weights)."
        )
    module_ok = module is None or (
        isinstance(module, str) and module.split(".")[0] in ALLOWED_MODULES
    )
    if cls == "function":
        module_ok = module in FUNCTION_MODULES and isinstance(item.get("config"), str)
    if (
        not isinstance(cls, str)
        or cls not in ALLOWED_CLASSES
        or not module_ok
        or registered not in (None, cls)
    ):
        raise ConversionError(
            f"{path}: class {cls!r} from module {module!r} (registered as {registered!r}) is not a "
            "Keras / TFRS class this converter accepts; tf_keras would import that module to build "
            "it, so the model is refused before loading. Rebuild that part with Keras / TFRS "
            "layers, or write it in torchrs and use load_weights(module, MODEL_DIR)."
        )


def _bounded_json(data: bytes, what: str) -> Any:
    if len(data) > MAX_JSON_BYTES:
        raise ConversionError(f"{what} is {len(data)} bytes, more than {MAX_JSON_BYTES} allowed.")
    try:
        text = data.decode("utf-8")
        depth = json_depth(text)
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nests {depth} levels, more than {MAX_JSON_DEPTH}")
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ConversionError(
            f"{what} is not valid JSON ({err}); the file is corrupted. Re-save the model."
        ) from None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _layer_elements(cls: Any, config: dict[str, Any], width: int | None) -> tuple[int, int | None]:
    """(weight elements at least, output width) of one layer config; ``width``: its input width."""
    if cls == "Embedding":
        rows, cols = _int(config.get("input_dim")), _int(config.get("output_dim"))
        return (rows or 0) * (cols or 0), cols
    if cls == "Dense":
        units = _int(config.get("units")) or 0
        return units * (width or 1), units
    if cls == "InputLayer":
        shape = config.get("batch_input_shape") or [None]
        return 0, _int(shape[-1]) if isinstance(shape, list) and shape else None
    return 0, None


def _declared_weight_bytes(config: Any) -> int:
    """Bytes of weights a config alone makes tf_keras allocate (a lower bound).

    Embedding tables count in full; a Dense kernel counts ``units`` times the width of the layer
    before it when that is known (inside a Sequential), else ``units``.
    """
    total = 0
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        inner = item.get("config")
        if not isinstance(inner, dict):
            stack.extend(item.values())
            continue
        cls = item.get("class_name")
        if cls == "Sequential" and isinstance(inner.get("layers"), list):
            width: int | None = None
            for layer in inner["layers"]:
                if isinstance(layer, dict) and isinstance(layer.get("config"), dict):
                    elements, width = _layer_elements(
                        layer.get("class_name"), layer["config"], width
                    )
                    total += elements * DEFAULT_ITEMSIZE
                    if layer.get("class_name") not in ("Embedding", "Dense"):
                        stack.append(layer)  # nested models and wrappers
            continue
        total += _layer_elements(cls, inner, None)[0] * DEFAULT_ITEMSIZE
        stack.extend(inner.values())
    return total


def check_keras_archive(path: str | Path) -> None:
    """Bounds a ``.keras`` archive and checks its config before tf_keras opens it.

    Raises:
        ConversionError: a forged or oversized archive, a disallowed class or module, a config
            naming a file, or declared weights larger than the stored ones / the memory guard.
    """
    archive = Path(path)
    size = archive.stat().st_size
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > MAX_MEMBERS:
                raise ConversionError(
                    f"{archive} holds {len(members)} members; a tf_keras .keras file holds a few. "
                    "Refusing to open it."
                )
            total = 0
            for info in members:
                name = info.filename
                if name.startswith("/") or ".." in name.split("/") or "\\" in name:
                    raise ConversionError(f"{archive}: member {name!r} points outside the archive.")
                if name not in ARCHIVE_FILES and not name.startswith(ASSETS_PREFIX):
                    raise ConversionError(
                        f"{archive}: member {name!r} is not part of a tf_keras .keras file "
                        f"({', '.join(ARCHIVE_FILES)}, {ASSETS_PREFIX}...); refusing to extract it."
                    )
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise ConversionError(f"{archive}: member {name!r} is a symbolic link.")
                limit = max(EXPANSION_FLOOR_BYTES, MAX_EXPANSION * info.compress_size)
                if info.file_size > limit:
                    raise ConversionError(
                        f"{archive}: member {name!r} expands from {info.compress_size} to "
                        f"{info.file_size} bytes (more than {MAX_EXPANSION}x); it is a zip bomb, "
                        "not a tf_keras file. Refusing to extract it."
                    )
                total += info.file_size
            if total > max(EXPANSION_FLOOR_BYTES, MAX_EXPANSION * size):
                raise ConversionError(
                    f"{archive} ({size} bytes) expands to {total} bytes; refusing to extract it."
                )
            names = {info.filename: info for info in members}
            config_info = names.get("config.json")
            if config_info is None:
                return  # formats.detect_format names what is missing
            if config_info.file_size > MAX_JSON_BYTES:
                raise ConversionError(
                    f"{archive}: config.json is {config_info.file_size} bytes, more than "
                    f"{MAX_JSON_BYTES} allowed."
                )
            with zf.open(config_info) as handle:  # reads at most the declared size
                data = handle.read(MAX_JSON_BYTES + 1)
            weights = names.get("model.weights.h5")
    except (zipfile.BadZipFile, OSError) as err:
        raise ConversionError(f"{archive} is not a readable .keras archive ({err}).") from None
    config = _bounded_json(data, f"{archive}: config.json")
    _check_object(config, "config.json")
    declared = _declared_weight_bytes(config)
    stored = 0 if weights is None else weights.file_size
    if declared > stored:
        raise ConversionError(
            f"{archive}: config.json declares at least {declared} bytes of weights but "
            f"model.weights.h5 holds {stored} bytes; the archive is forged or truncated."
        )
    if declared > memory_limit():
        raise ConversionError(
            f"{archive} declares {declared} bytes of weights, more than the memory guard allows "
            f"({memory_limit()} bytes; raise TORCHRS_MAX_LOAD_BYTES if this machine can hold them)."
        )


@dataclass(frozen=True)
class ClassAudit:
    """What the class check of ``keras_metadata.pb`` found (``report.json``: ``safety.class_check``).

    Attributes:
        nodes_checked: Keras objects whose metadata was read.
        refused: class name -> layer paths naming it (accepted only under ``--trust-model``).
        containers: subclassed models (``class MyModel(tfrs.Model)``) taken as containers of their
            layers: the converter reads their children and never rebuilds or imports the class.
        trusted: whether ``--trust-model`` was given.
    """

    nodes_checked: int
    refused: dict[str, list[str]] = field(default_factory=dict)
    containers: tuple[str, ...] = ()
    trusted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "nodes_checked": self.nodes_checked,
            "refused_classes": {c: sorted(p) for c, p in sorted(self.refused.items())},
            "subclassed_containers": list(self.containers),
            "trust_model": self.trusted,
        }


def _metadata_class_ok(item: dict[str, Any], cls: Any, accepted: frozenset[str]) -> bool:
    """One ``{"class_name", ...}`` object of a Keras SavedModel's metadata is an allowed class."""
    if not isinstance(cls, str):
        return False
    module = item.get("module")
    if module is not None and not (
        isinstance(module, str) and module.split(".")[0] in ALLOWED_MODULES
    ):
        return False
    if item.get("registered_name") not in (None, cls):
        return False
    if cls == "function":
        return module in FUNCTION_MODULES and isinstance(item.get("config"), str)
    package, registered, name = cls.rpartition(">")
    if registered and package not in REGISTERED_PACKAGES:
        return False
    return name in ALLOWED_CLASSES or name in METADATA_CLASSES or cls in accepted


def _refused_classes(value: Any, where: str, accepted: frozenset[str]) -> list[tuple[str, str]]:
    """(class, location in ``value`` [and module]) of every object naming a class outside the
    allow-list."""
    refused: list[tuple[str, str]] = []
    for item, path in _objects(value, where):
        cls = item.get("class_name")
        if cls is not None and not _metadata_class_ok(item, cls, accepted):
            module = item.get("module")
            where_ = path.lstrip("/") or "class_name"
            if module is not None:
                where_ += f", module {str(module)[:MAX_NAME_CHARS]!r}"
            refused.append((str(cls)[:MAX_NAME_CHARS], where_))
    return refused


def _layer_path(node_path: str) -> str:
    """``root.user_model.layer-0`` -> ``user_model/layer-0`` (the converter's layer paths)."""
    parts = node_path.split(".")
    return "/".join(parts[1:] if parts[:1] == ["root"] else parts) or "<root>"


def check_keras_metadata(directory: str | Path, trust_model: bool = False) -> ClassAudit | None:
    """``keras_metadata.pb`` of a Keras SavedModel parses, its JSON is bounded, and every class it
    names is a Keras / TFRS class of :data:`ALLOWED_CLASSES` (from a Keras / TFRS module).

    tf_keras rebuilds a Keras SavedModel from these records (importing a module an object names);
    the converter never does, but a model naming other classes is not one it was made for. A
    subclassed model (``class MyModel(tfrs.Model)``: a ``_tf_keras_model`` node that is no graph
    network) is accepted under its own name as a container: only its layers are converted.

    Args:
        directory: the SavedModel directory.
        trust_model: accept refused classes (the report lists them and that the model was trusted).

    Returns:
        The :class:`ClassAudit`, or None without ``keras_metadata.pb``.

    Raises:
        ConversionError: a corrupted file, a node config too large / deep / not JSON, or (without
            ``trust_model``) a class outside the allow-list, named with its layer path.
    """
    metadata_file = Path(directory) / "keras_metadata.pb"
    if not metadata_file.is_file():
        return None
    from tf_keras.protobuf import saved_metadata_pb2

    metadata = saved_metadata_pb2.SavedMetadata()
    try:
        metadata.ParseFromString(metadata_file.read_bytes())
    except Exception as err:
        raise ConversionError(
            f"{metadata_file} cannot be parsed ({type(err).__name__}); the file is truncated or "
            "corrupted. Re-export the model with model.save(dir, save_format='tf')."
        ) from None
    refused: dict[str, list[str]] = {}
    containers: set[str] = set()
    checked = 0
    for node in metadata.nodes:
        if not node.metadata:
            continue
        meta = _bounded_json(node.metadata.encode(), f"{metadata_file} (node {node.node_id})")
        if not isinstance(meta, dict):
            continue  # the converter reads only objects (tf_format.SavedModelReader)
        checked += 1
        layer = _layer_path(node.node_path)
        accepted: frozenset[str] = frozenset()
        cls = meta.get("class_name")
        if (
            node.identifier == SUBCLASSED_MODEL_NODE
            and not meta.get("is_graph_network")
            and isinstance(cls, str)
            and ">" not in cls
            and meta.get("module") is None
        ):
            accepted = frozenset({cls})
            if cls not in ALLOWED_CLASSES:
                containers.add(cls)
        for name, where in _refused_classes(meta, "", accepted):
            refused.setdefault(name, []).append(f"{layer} ({where})")
    if refused and not trust_model:
        listed = "; ".join(
            f"{name!r} at {sorted(paths)[0]}"
            for name, paths in sorted(refused.items())[:MAX_LISTED]
        )
        raise ConversionError(
            f"{metadata_file} names classes that are not Keras / TFRS classes this converter "
            f"accepts: {listed}. tf_keras would need that code to rebuild them, so the model is "
            "refused before anything loads. Rebuild those parts with Keras / TFRS layers (or write "
            "them in torchrs and use load_weights(module, MODEL_DIR)); if you trust the model's "
            "author, pass --trust-model."
        )
    return ClassAudit(checked, refused, tuple(sorted(containers)), trusted=trust_model)


def read_member_json(zf: zipfile.ZipFile, name: str) -> Any:
    """One JSON member of an archive, read with the size and nesting limits (a dict expected).

    Raises:
        ConversionError: too large, too deep, not JSON, or not an object.
    """
    info = zf.getinfo(name)
    if info.file_size > MAX_JSON_BYTES:
        raise ConversionError(
            f"{zf.filename}: {name} is {info.file_size} bytes, more than {MAX_JSON_BYTES} allowed."
        )
    with zf.open(info) as handle:
        value = _bounded_json(handle.read(MAX_JSON_BYTES + 1), f"{zf.filename}: {name}")
    if not isinstance(value, dict):
        raise ConversionError(
            f"{zf.filename}: {name} is not a JSON object; the archive is corrupted."
        )
    return value
