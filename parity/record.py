"""Recorded TFRS references: ``python -m parity record SCENARIO... --out DIR``.

The TF side of a lock-step scenario never depends on the torchrs side, so it can run once, on a machine with
TensorFlow, and be replayed anywhere torch runs (`parity.replay`, e.g. on a GPU machine without TensorFlow).
A record is one directory per scenario:

* ``record.json`` — format version; scenario, its configuration and the ``--scale`` / ``--epochs`` it was made
  with; the data source and fingerprint; the fingerprint of the code of the scenario's TF side
  (`parity.provenance`); the TF / TFRS / Keras versions and the CPU of the recording machine; the TF run:
  per-step losses and times, evaluation metrics, top-K identifiers;
* ``tensors.safetensors`` — the TF model's initial weights (``initial/NAME``, Keras layout), its final weights
  (``final/NAME``), predictions (``predictions``) and further named outputs (``extra/NAME``);
* ``data.safetensors`` + ``data.json`` — the train / test split (and the movies table where the scenario uses
  it) the batches are cut from, restricted to the columns the scenario reads (`used_columns`): numbers as they
  are, strings as int32 codes into a sorted vocabulary kept in ``data.json``, genres as values + offsets.
  Replay rebuilds the identical batches from them.

No pickle anywhere: safetensors and JSON only.

>>> sorted(RECORD_FILES)
['data.json', 'data.safetensors', 'record.json', 'tensors.safetensors']
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from parity.harness import (
    FrameworkRun,
    ParityUsageError,
    Prepared,
    SplitTables,
    prepare_tables,
    run_tf_side,
    split_tables,
)
from parity.provenance import tf_side_fingerprint, tf_side_sources
from torchrs.data import movielens

# Bumped whenever the layout changes; a reader refuses other versions instead of misreading them.
# 2: the TF side's code fingerprint (``tf_side``).
RECORD_VERSION = 2
RECORD_KIND = "torchrs-parity-record"
RECORD_FILES = ("record.json", "tensors.safetensors", "data.safetensors", "data.json")
DEFAULT_RECORDS = "reports/records"
# The full-size records of the GPU-check scenarios kept in the repository (CI replays them; `make records`
# refreshes them): basic_retrieval, basic_ranking, dcn, at --scale 1 with the tutorials' epochs.
COMMITTED_RECORDS = Path(__file__).resolve().parent / "records"
COMMITTED_SCENARIOS = ("basic_retrieval", "basic_ranking", "dcn")
# The split's tables, in storage order; "movies" is absent for scenarios that do not read it (basic_ranking).
_TABLES = ("train", "test", "movies")


class RecordError(ParityUsageError):
    """A record that cannot be used: missing or damaged files, another format version, or made with another
    scenario configuration or other data than the one it is replayed with."""


# ------------------------------------------------------------------------------------------- the record
@dataclass(frozen=True)
class Record:
    """One scenario's recorded TF side, with everything needed to replay the torchrs side against it.

    Args:
        path: the record's directory.
        scenario: scenario name (a key of `parity.harness.SCENARIOS`).
        config: the scenario configuration the TF side ran with, as JSON (``asdict``; tuples become lists).
        scale: the ``--scale`` it was made with.
        epochs: the ``--epochs`` it was made with (None: the tutorial's).
        data_source: the ``--data`` it was made with (``"synthetic"`` or a directory).
        data_fingerprint: SHA-256 of the stored split (see `fingerprint`).
        tf_side: ``{"module:name": SHA-256}`` of the code of the scenario's TF side when it was recorded
            (`parity.provenance.tf_side_sources`).
        environment: versions and machine of the recording (`tf_environment`).
        created: UTC time of the recording, ISO 8601.
        tables: the stored split.
        tf_run: the TF side, as `parity.harness.run_tf_side` returned it.
    """

    path: Path
    scenario: str
    config: dict[str, Any]
    scale: float
    epochs: int | None
    data_source: str
    data_fingerprint: str
    tf_side: dict[str, str]
    environment: dict[str, Any]
    created: str
    tables: SplitTables
    tf_run: FrameworkRun

    def describe(self) -> str:
        """One line naming the record and where it was made, for reports."""
        env = self.environment
        return (
            f"record {self.path} (TF {env.get('tensorflow')}, TFRS {env.get('tensorflow_recommenders')}, "
            f"tf-keras {env.get('tf_keras')}; made {self.created} on {env.get('cpu')})"
        )


def tf_environment(tf: Any, tfrs: Any) -> dict[str, Any]:
    """The versions and machine a TF run depends on (stored in every record)."""

    def version(distribution: str) -> str | None:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return None

    return {
        "tensorflow": tf.__version__,
        # The distribution's version: tfrs.__version__ reads "v0.7.7".
        "tensorflow_recommenders": version("tensorflow-recommenders")
        or getattr(tfrs, "__version__", None),
        "keras": getattr(tf.keras, "__version__", None),
        "tf_keras": version("tf-keras"),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
    }


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``'s model name on Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def config_json(config: Any) -> dict[str, Any]:
    """A scenario configuration as the JSON a record stores (tuples become lists)."""
    result: dict[str, Any] = json.loads(json.dumps(asdict(config)))
    return result


# ------------------------------------------------------------------------------------- tables <-> files
def _encode_table(name: str, table: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A `Ratings` / `Movies` table as safetensors arrays plus the JSON describing them."""
    tensors: dict[str, np.ndarray] = {}
    columns: dict[str, Any] = {}
    for column in table.columns:
        values = table[column]
        key = f"{name}/{column}"
        if values.dtype != object:
            tensors[key] = np.ascontiguousarray(values)
            columns[column] = {"kind": "array"}
        elif all(isinstance(v, str) for v in values):
            vocabulary, codes = np.unique(values.astype(str), return_inverse=True)
            tensors[f"{key}.codes"] = codes.astype(np.int32).reshape(-1)
            columns[column] = {"kind": "str", "vocabulary": vocabulary.tolist()}
        else:  # ragged int64 lists (movie_genres)
            rows = [np.asarray(v, np.int64).reshape(-1) for v in values]
            lengths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
            tensors[f"{key}.values"] = np.concatenate(rows) if rows else np.zeros(0, np.int64)
            tensors[f"{key}.offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            columns[column] = {"kind": "int64_list"}
    return tensors, {"class": type(table).__name__, "columns": columns}


def _decode_table(name: str, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> Any:
    data: dict[str, np.ndarray] = {}
    for column, spec in meta["columns"].items():
        key = f"{name}/{column}"
        if spec["kind"] == "array":
            data[column] = tensors[key]
        elif spec["kind"] == "str":
            vocabulary = movielens.strings(spec["vocabulary"])
            data[column] = vocabulary[tensors[f"{key}.codes"].astype(np.intp)]
        else:
            values, offsets = tensors[f"{key}.values"], tensors[f"{key}.offsets"]
            data[column] = movielens.ragged(
                values[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)
            )
    cls = movielens.Movies if meta["class"] == "Movies" else movielens.Ratings
    return cls(data)


def encode_tables(tables: SplitTables) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The split as ``(arrays for data.safetensors, JSON for data.json)``."""
    tensors: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    for name in _TABLES:
        table = getattr(tables, name)
        if table is not None:
            arrays, meta[name] = _encode_table(name, table)
            tensors.update(arrays)
    return tensors, meta


class _Watched:
    """A table that notes which columns are read (``table[name]``); any other use counts as reading them all."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.used: set[str] = set()

    def __getitem__(self, name: str) -> np.ndarray:
        self.used.add(name)
        result: np.ndarray = self.table[name]
        return result

    def __len__(self) -> int:
        return len(self.table)

    def __getattr__(self, attribute: str) -> Any:
        self.used.update(self.table.columns)
        return getattr(self.table, attribute)


def used_columns(
    scenario: str, tables: SplitTables, epochs: int | None = None, scale: float = 1.0
) -> SplitTables:
    """``tables`` with only the columns ``scenario`` reads when it is prepared from them.

    A record stores just these (the tutorials read 2 to 6 of the 12 ratings columns).
    """
    watched = {
        name: _Watched(getattr(tables, name))
        for name in _TABLES
        if getattr(tables, name) is not None
    }
    prepare_tables(scenario, cast(SplitTables, _SplitView(watched)), epochs, scale)

    def pruned(name: str) -> Any:
        if name not in watched:
            return None
        table = getattr(tables, name)
        return table.select([c for c in table.columns if c in watched[name].used])

    return SplitTables(pruned("train"), pruned("test"), pruned("movies"))


def same_columns(tables: SplitTables, like: SplitTables) -> SplitTables:
    """``tables`` restricted to the columns (and tables) of ``like``, e.g. a fresh split to a record's."""

    def selected(name: str) -> Any:
        model, table = getattr(like, name), getattr(tables, name)
        return None if model is None or table is None else table.select(model.columns)

    return SplitTables(selected("train"), selected("test"), selected("movies"))


class _SplitView:
    def __init__(self, tables: dict[str, _Watched]) -> None:
        self.train = tables["train"]
        self.test = tables["test"]
        self.movies = tables.get("movies")


def _fingerprint_encoded(tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode("utf-8", "surrogatepass"))
    for key in sorted(tensors):
        value = np.ascontiguousarray(tensors[key])
        digest.update(f"{key}|{value.dtype.str}|{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def fingerprint(tables: SplitTables) -> str:
    """SHA-256 of the split's rows, column names and dtypes: equal fingerprints, identical batches.

    >>> import numpy as np
    >>> r = movielens.Ratings({"user_id": movielens.strings(["1", "2"])})
    >>> fingerprint(SplitTables(r, r, None)) == fingerprint(SplitTables(r, r, None))
    True
    >>> fingerprint(SplitTables(r, r.take([1, 0]), None)) == fingerprint(SplitTables(r, r, None))
    False
    """
    return _fingerprint_encoded(*encode_tables(tables))


# ------------------------------------------------------------------------------------------ write / read
def _as_array(value: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(value))


def write_record(
    out: str | Path,
    prepared: Prepared,
    tables: SplitTables,
    tf_run: FrameworkRun,
    *,
    epochs: int | None,
    data_source: str,
    environment: dict[str, Any],
) -> Path:
    """Writes one scenario's record into ``out/<scenario>`` (whole or not at all); returns that directory."""
    target = Path(out) / prepared.scenario
    target.parent.mkdir(parents=True, exist_ok=True)
    tf_side = tf_side_sources(prepared.scenario)
    tensors: dict[str, np.ndarray] = {}
    for name, value in tf_run.initial_weights.items():
        tensors[f"initial/{name}"] = _as_array(value)
    for name, value in tf_run.weights.items():
        tensors[f"final/{name}"] = _as_array(value)
    if tf_run.predictions is not None:
        tensors["predictions"] = _as_array(tf_run.predictions)
    for name, value in tf_run.extra_predictions.items():
        tensors[f"extra/{name}"] = _as_array(value)
    data_tensors, data_meta = encode_tables(tables)
    record = {
        "kind": RECORD_KIND,
        "version": RECORD_VERSION,
        "scenario": prepared.scenario,
        "config": config_json(prepared.config),
        "scale": prepared.scale,
        "epochs": epochs,
        "data": {
            "source": data_source,
            "fingerprint": _fingerprint_encoded(data_tensors, data_meta),
            "rows": {n: len(getattr(tables, n)) for n in _TABLES if getattr(tables, n) is not None},
        },
        "tf_side": {"fingerprint": tf_side_fingerprint(tf_side), "parts": tf_side},
        "environment": environment,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tf_run": {
            "framework": tf_run.framework,
            "device": tf_run.device,
            "step_losses": [float(v) for v in tf_run.step_losses],
            "step_seconds": [float(v) for v in tf_run.step_seconds],
            "step_examples": [int(v) for v in tf_run.step_examples],
            "eval_seconds": [float(v) for v in tf_run.eval_seconds],
            "eval_examples": [int(v) for v in tf_run.eval_examples],
            "metrics": {k: float(v) for k, v in tf_run.metrics.items()},
            "top_k_ids": None
            if tf_run.top_k_ids is None
            else np.asarray(tf_run.top_k_ids).tolist(),
            # safetensors lists tensors sorted by name; the checks follow the TF side's own order.
            "order": {
                "initial": list(tf_run.initial_weights),
                "final": list(tf_run.weights),
                "extra": list(tf_run.extra_predictions),
            },
        },
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{prepared.scenario}.", dir=target.parent))
    try:
        save_file(tensors, str(staging / "tensors.safetensors"))
        save_file(data_tensors, str(staging / "data.safetensors"))
        (staging / "data.json").write_text(json.dumps(data_meta))
        (staging / "record.json").write_text(json.dumps(record, indent=1))
        # mkdtemp's private 0700 (and the writers' 0600) would keep other users from a record made to be copied.
        umask = os.umask(0)
        os.umask(umask)
        for file in staging.iterdir():
            file.chmod(0o666 & ~umask)
        staging.chmod(0o777 & ~umask)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _record_command(directory: Path, scenario: str) -> str:
    if directory.resolve().parent == COMMITTED_RECORDS:
        return "`make records` (the full-size records kept in parity/records; commit the result)"
    return f"`python -m parity record {scenario} --out {directory.parent}`"


def read_record(path: str | Path) -> Record:
    """Reads a record directory written by `write_record`, checking that its stored split is intact.

    Raises:
        RecordError: a missing file, another format version, or a split whose fingerprint no longer matches.
    """
    directory = Path(path)
    missing = [name for name in RECORD_FILES if not (directory / name).is_file()]
    if missing:
        raise RecordError(
            f"{directory} is not a complete parity record (missing {', '.join(missing)}); make one with "
            "`python -m parity record SCENARIO --out DIR`."
        )
    meta = json.loads((directory / "record.json").read_text())
    if meta.get("kind") != RECORD_KIND or meta.get("version") != RECORD_VERSION:
        raise RecordError(
            f"{directory}/record.json is a {meta.get('kind')!r} version {meta.get('version')!r}; this torchrs "
            f"reads {RECORD_KIND!r} version {RECORD_VERSION}: record it again with "
            f"{_record_command(directory, meta.get('scenario', 'SCENARIO'))}."
        )
    try:
        return _parse(directory, meta)
    except RecordError:
        raise
    except (KeyError, TypeError, ValueError, OSError, SafetensorError) as err:
        raise RecordError(
            f"{directory}: the record is incomplete or damaged ({type(err).__name__}: {err}); record the "
            f"scenario again with {_record_command(directory, meta.get('scenario', 'SCENARIO'))}."
        ) from err


def _parse(directory: Path, meta: dict[str, Any]) -> Record:
    tensors = load_file(str(directory / "tensors.safetensors"))
    data_tensors = load_file(str(directory / "data.safetensors"))
    data_meta = json.loads((directory / "data.json").read_text())
    recorded = meta["data"]["fingerprint"]
    stored = _fingerprint_encoded(data_tensors, data_meta)
    if stored != recorded:
        raise RecordError(
            f"{directory}: the stored split's fingerprint is {stored[:12]}..., the record says "
            f"{recorded[:12]}...: the data files were changed or damaged; record the scenario again."
        )
    tables = SplitTables(
        train=_decode_table("train", data_tensors, data_meta["train"]),
        test=_decode_table("test", data_tensors, data_meta["test"]),
        movies=(
            _decode_table("movies", data_tensors, data_meta["movies"])
            if "movies" in data_meta
            else None
        ),
    )
    run = meta["tf_run"]

    def group(kind: str) -> dict[str, np.ndarray]:
        return {name: tensors[f"{kind}/{name}"] for name in run["order"][kind]}

    top_k = run["top_k_ids"]
    tf_run = FrameworkRun(
        framework=run["framework"],
        device=run["device"],
        step_losses=list(run["step_losses"]),
        step_seconds=list(run["step_seconds"]),
        step_examples=list(run["step_examples"]),
        eval_seconds=list(run["eval_seconds"]),
        eval_examples=list(run["eval_examples"]),
        metrics=dict(run["metrics"]),
        weights=group("final"),
        predictions=tensors.get("predictions"),
        top_k_ids=None if top_k is None else np.asarray(top_k, dtype=str),
        initial_weights=group("initial"),
        extra_predictions=group("extra"),
    )
    return Record(
        path=directory,
        scenario=meta["scenario"],
        config=meta["config"],
        scale=float(meta["scale"]),
        epochs=meta["epochs"],
        data_source=meta["data"]["source"],
        data_fingerprint=recorded,
        tf_side=_tf_side(directory, meta["tf_side"]),
        environment=meta["environment"],
        created=meta["created"],
        tables=tables,
        tf_run=tf_run,
    )


def _tf_side(directory: Path, meta: dict[str, Any]) -> dict[str, str]:
    parts = {str(k): str(v) for k, v in meta["parts"].items()}
    if tf_side_fingerprint(parts) != meta["fingerprint"]:
        raise RecordError(
            f"{directory}/record.json: the TF side's fingerprint does not match its parts: the file was edited "
            "or damaged; record the scenario again."
        )
    return parts


def record_scenario(
    scenario: str,
    out: str | Path,
    *,
    data_dir: str = movielens.SYNTHETIC,
    epochs: int | None = None,
    scale: float = 1.0,
    tf_run: FrameworkRun | None = None,
) -> Path:
    """Runs the TF side of ``scenario`` (unless ``tf_run`` is given) and writes its record into ``out``.

    ``tf_run`` reuses a TF run of the same scenario, data, ``epochs`` and ``scale`` (tests share one per session).
    """
    from parity._tf import import_tf

    tables = split_tables(scenario, data_dir, scale)
    prepared = prepare_tables(scenario, tables, epochs, scale)
    tf_run = tf_run or run_tf_side(prepared)
    return write_record(
        out,
        prepared,
        used_columns(scenario, tables, epochs, scale),
        tf_run,
        epochs=epochs,
        data_source=str(data_dir),
        environment=tf_environment(*import_tf()),
    )


# ------------------------------------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser, scenarios: Sequence[str]) -> None:
    """The ``python -m parity record`` arguments."""
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"scenarios to record (default: all: {', '.join(scenarios)})",
    )
    parser.add_argument(
        "--out", default=DEFAULT_RECORDS, help=f"records directory (default: {DEFAULT_RECORDS})"
    )
    parser.add_argument(
        "--data",
        default=movielens.SYNTHETIC,
        help="MovieLens directory, as for `run` (default: the embedded synthetic set)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the tutorial's epochs")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="fraction of the split and batch sizes (0 < F <= 1)",
    )


def run(args: argparse.Namespace, scenarios: Sequence[str]) -> int:
    """``python -m parity record``: returns the exit status (usage errors as one ``error:`` line, 2)."""
    import sys

    chosen = list(dict.fromkeys(args.scenarios)) or list(scenarios)
    try:
        # Check every scenario and the data before minutes of TF training.
        for name in chosen:
            prepare_tables(name, split_tables(name, args.data, args.scale), args.epochs, args.scale)
        for name in chosen:
            print(f"recording {name} (TF side) ...", flush=True)
            path = record_scenario(
                name, args.out, data_dir=args.data, epochs=args.epochs, scale=args.scale
            )
            size = sum(f.stat().st_size for f in path.iterdir())
            print(f"  {path} ({size / 1e6:.2f} MB)")
    except (
        ParityUsageError,
        ImportError,
    ) as err:  # ImportError: no TensorFlow here (see parity._tf)
        print(f"parity: error: {err}", file=sys.stderr)
        return 2
    return 0
