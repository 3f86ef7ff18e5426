"""TensorFlow side of `torchrs.data.movielens`: the same tables as ``tf.data`` datasets.

Importing this module does not import TensorFlow; each function does, on first call.
The datasets have tfds's element spec exactly (``tf.string`` for text, ``user_rating``
float32, ``timestamp`` int64, ``user_gender`` bool, ``movie_genres`` a variable-length int64
vector), so TFRS tutorial code runs on them unchanged::

    ratings = tf_movielens.to_tf_dataset(movielens.load())   # instead of tfds.load(...)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from torchrs.data._schema import Movies, Ratings, ragged, strings

# tf.data batch size used to pull a whole tfds split into NumPy in few steps.
_READ_BATCH = 1 << 16


def _tf() -> Any:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFRS 0.7.7 needs Keras 2
    import tensorflow as tf

    return tf


def to_tf_dataset(table: Ratings | Movies, columns: Sequence[str] | None = None) -> Any:
    """``tf.data.Dataset.from_tensor_slices`` of a table, with tfds's dtypes and shapes.

    Args:
        table: a `Ratings` or `Movies` table.
        columns: the columns to include (default: all).

    Returns:
        A ``tf.data.Dataset`` of ``{column: scalar tensor}`` dicts (``movie_genres``: a 1-D
        int64 tensor per row), in the table's row order.

    >>> from torchrs.data import movielens
    >>> ds = to_tf_dataset(movielens.load(), ["user_id", "movie_title"])
    >>> next(iter(ds))["user_id"].dtype
    tf.string
    """
    if not isinstance(table, (Ratings, Movies)):
        raise TypeError(f"Expected a Ratings or Movies table (got {type(table).__name__}).")
    names = list(table.columns if columns is None else columns)
    missing = [c for c in names if c not in table]
    if missing:
        raise KeyError(f"Unknown column(s) {missing}; the table has {table.columns}.")
    tf = _tf()
    slices: dict[str, Any] = {}
    genres = None
    for name in names:
        values = table[name]
        if values.dtype != object:
            slices[name] = tf.constant(values)
        elif len(values) and not isinstance(values[0], str):  # ragged int64 lists
            lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
            bounds = np.concatenate([[0], np.cumsum(lengths)])
            flat = np.concatenate([*values, np.zeros(0, np.int64)]).astype(np.int64)
            genres = (name, tf.constant(flat))
            slices[f"__{name}_start"] = tf.constant(bounds[:-1])
            slices[f"__{name}_stop"] = tf.constant(bounds[1:])
        else:
            slices[name] = tf.constant([v.encode("utf-8") for v in values], dtype=tf.string)
    ds = tf.data.Dataset.from_tensor_slices(slices)
    if genres is None:
        return ds
    name, flat = genres

    def with_ragged(row: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if not k.startswith("__")}
        out[name] = flat[row[f"__{name}_start"] : row[f"__{name}_stop"]]
        return dict(sorted(out.items()))  # tfds lists features in sorted order

    # Parallel but ordered (deterministic=True): rows keep the table's order.
    return ds.map(with_ragged, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def tf_shuffle_permutation(
    n: int, seed: int = 42, buffer_size: int | None = None, global_seed: int | None = None
) -> np.ndarray:
    """Asks TensorFlow for the order of ``Dataset.range(n).shuffle(buffer_size, seed, False)``.

    Runs in a private graph, so TF's global seed is left untouched. The NumPy function
    `torchrs.data.movielens.shuffle_permutation` returns the same array without TensorFlow.

    >>> tf_shuffle_permutation(10, seed=42).tolist()
    [2, 0, 7, 8, 9, 3, 6, 4, 1, 5]
    """
    tf = _tf()
    with tf.Graph().as_default() as graph:
        if global_seed is not None:
            tf.compat.v1.set_random_seed(global_seed)
        ds = tf.data.Dataset.range(n).shuffle(
            n if buffer_size is None else buffer_size, seed=seed, reshuffle_each_iteration=False
        )
        batch = tf.compat.v1.data.make_one_shot_iterator(ds.batch(max(n, 1))).get_next()
        with tf.compat.v1.Session(graph=graph) as session:
            return np.asarray(session.run(batch), dtype=np.int64) if n else np.zeros(0, np.int64)


def from_tf_dataset(ds: Any, kind: type[Ratings] | type[Movies] = Ratings) -> Ratings | Movies:
    """Reads a finite tf.data dataset of tfds-style MovieLens dicts into a table.

    Strings (``tf.string``) become ``str`` (UTF-8 decoded), ``movie_genres`` a ragged column.
    """
    tf = _tf()
    spec = ds.element_spec
    lists = [k for k, s in spec.items() if s.shape.rank != 0]
    # One pass: scalars batch as they are; ragged int lists are padded with -1 (never an id).
    padding = {
        k: tf.constant(-1, s.dtype)
        if k in lists
        else (tf.constant(b"") if s.dtype == tf.string else tf.zeros([], s.dtype))
        for k, s in spec.items()
    }
    parts: dict[str, list[np.ndarray]] = {k: [] for k in spec}
    for batch in ds.padded_batch(_READ_BATCH, padding_values=padding):
        for k in spec:
            parts[k].append(batch[k].numpy())
    columns: dict[str, np.ndarray] = {}
    for k, s in spec.items():
        if k in lists:
            rows = [row[row != -1] for part in parts[k] for row in part]
            columns[k] = ragged(rows)
            continue
        values = np.concatenate(parts[k]) if parts[k] else np.zeros(0, s.dtype.as_numpy_dtype)
        if s.dtype == tf.string:
            columns[k] = strings(v.decode("utf-8") for v in values)
        else:
            columns[k] = values.astype(s.dtype.as_numpy_dtype)
    return kind(dict(sorted(columns.items())))


def read_tfds_directory(path: str | os.PathLike[str], table: str = "ratings") -> Ratings | Movies:
    """Reads a tfds-prepared MovieLens directory (``tfds.builder_from_directory``).

    Args:
        path: the version directory, e.g. ``~/tensorflow_datasets/movielens/100k-ratings/0.1.1``.
        table: "ratings" or "movies"; must match the prepared config.

    Returns:
        The table, in the order ``tfds.load(..., split="train")`` yields it.
    """
    _tf()
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Reading a tfds-prepared directory needs tensorflow_datasets "
            "(pip install 'torchrs[tf]'); or pass the raw MovieLens files instead."
        ) from err
    directory = Path(path).expanduser()
    builder = tfds.builder_from_directory(str(directory))
    config = getattr(builder.info, "config_name", "") or ""
    if builder.info.name != "movielens":
        raise ValueError(
            f"{str(directory)!r} holds tfds dataset {builder.info.name!r}, not movielens."
        )
    if not config.endswith(f"-{table}"):
        raise ValueError(
            f"{str(directory)!r} holds movielens/{config}, not a {table} table; pass "
            f"table={'movies' if table == 'ratings' else 'ratings'!r} or the other directory."
        )
    ds = builder.as_dataset(split="train", shuffle_files=False)
    return from_tf_dataset(ds, Movies if table == "movies" else Ratings)
