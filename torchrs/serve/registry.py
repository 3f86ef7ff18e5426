"""Model versions the way TF Serving's file-system source and "latest" policy handle them.

``MODEL_DIR`` is either one converted directory (served as version 1) or a base path of numbered
version folders (``MODEL_BASE/1/``, ``MODEL_BASE/2/``). The newest version that loads and warms up
is served; a newer folder appearing later is picked up by polling, loaded and warmed up in a
background thread while the current version keeps answering, and only then swapped in (the old
one goes to ``END``). A version that fails to load or warm up is reported with its error and never
replaces a working one; it is retried when its files change (a folder still being copied).

Version labels (``--version-labels stable=1,canary=2``, TF Serving's ``version_labels`` of its model
config) name versions: the labelled ones are loaded too and stay ``AVAILABLE`` beside the newest (TF
Serving's ``specific`` version policy, which labels need there), and a request by label is served
by its version. An unknown label is TF Serving's ``INVALID_ARGUMENT`` ("Unrecognized servable
version label"); a label whose version is not loaded answers ``NOT_FOUND`` for that version.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from torchrs.serve.batching import Batcher, run_batch
from torchrs.serve.compiling import WARMUP_ROWS
from torchrs.serve.errors import Code, ModelLoadError, ServingError
from torchrs.serve.signature import Signature, TensorSpec, signatures

log = logging.getLogger("torchrs.serve")

CONFIG_FILE = "torchrs.json"  # what python -m converters.tfrs_to_torch writes, see torchrs.io
# TF Serving's version states (ModelVersionStatus.State) this server goes through.
LOADING, AVAILABLE, END = "LOADING", "AVAILABLE", "END"
# Versions the CLI already loaded in this process (to refuse a broken model with one error line),
# handed to the registry instead of loading them twice.
PRELOADED: dict[tuple[Path, int], Servable] = {}


@dataclass(frozen=True)
class VersionStatus:
    """One version's state, as ``GetModelStatus`` reports it."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


@dataclass
class Servable:
    """A loaded, warmed-up version: its signatures and their batchers."""

    version: int
    path: Path
    signatures: dict[str, Signature]
    batchers: dict[str, Batcher] = field(default_factory=dict)


def _fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple(
            sorted(
                (p.name, p.stat().st_size, p.stat().st_mtime_ns)
                for p in path.iterdir()
                if p.is_file()
            )
        )
    except OSError:
        return ()


def warmup_inputs(signature: Signature) -> dict[str, np.ndarray] | None:
    """A one-example batch for ``signature``, or None where a width is unknown.

    >>> from torchrs.serve.signature import TensorSpec, Signature
    >>> sig = Signature("s", {"q": TensorSpec("string", (-1,))}, {}, dict)
    >>> warmup_inputs(sig)
    {'q': array([b''], dtype=object)}
    """
    out: dict[str, np.ndarray] = {}
    for name, spec in signature.inputs.items():
        if any(d < 0 for d in spec.shape[1:]):
            return None
        shape = (1, *spec.shape[1:])
        if spec.dtype == "string":
            out[name] = np.full(
                shape, b"", dtype=object
            )  # the OOV / mask token: every lookup takes it
        else:
            out[name] = np.zeros(shape, dtype=np.dtype(spec.dtype))
    return out


def load_version(path: Path, version: int, compile: bool = False) -> Servable:
    """Loads a converted directory and warms every signature up once.

    With ``compile`` the signatures run through ``torch.compile`` (see
    :mod:`torchrs.serve.compiling`) and the warm-up runs a batch of each size in
    :data:`~torchrs.serve.compiling.WARMUP_ROWS`, so that compiling is over before the version
    is ``AVAILABLE``.

    Raises:
        ModelLoadError: not a torchrs checkpoint, nothing servable, or a warm-up that failed.
    """
    import torchrs

    try:
        module = torchrs.load(path)
        meta = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        found = signatures(module, meta["architecture"], compile)
    except Exception as error:
        raise ModelLoadError(f"Version {version} at {path} cannot be loaded: {error}") from error
    warmed, started = 0, time.perf_counter()
    for sig in found.values():
        example = warmup_inputs(sig)
        if example is None:
            continue
        try:
            for rows in WARMUP_ROWS if compile else (1,):
                result = run_batch(sig.run, {n: np.repeat(a, rows, 0) for n, a in example.items()})
        except Exception as error:
            hint = (
                " (with --compile: torch.compile's CPU backend needs a C++ compiler on PATH; "
                "serve without --compile if this is a compile error)"
                if compile
                else ""
            )
            raise ModelLoadError(
                f"Version {version} at {path}: warm-up of signature {sig.name!r} failed: "
                f"{error}{hint}"
            ) from error
        if set(result) != set(sig.outputs):
            raise ModelLoadError(
                f"Version {version}: signature {sig.name!r} answered {sorted(result)}, "
                f"expected {sorted(sig.outputs)}."
            )
        warmed += 1
    if not warmed:
        raise ModelLoadError(f"Version {version} at {path}: no signature could be warmed up.")
    log.info(
        "version %d: %d signature(s) warmed up%s in %.1f s",
        version,
        warmed,
        " and compiled (torch.compile)" if compile else "",
        time.perf_counter() - started,
    )
    return Servable(version, path, found)


class ModelRegistry:
    """The versions of one served model.

    Args:
        name: the model name clients use.
        base_path: a converted directory, or a base path of numbered version folders.
        max_batch_size: rows per model call (see :class:`~torchrs.serve.batching.Batcher`).
        batch_timeout_s: longest wait for a batch to fill.
        poll_s: how often the base path is scanned for new versions.
        version_labels: ``{label: version}``; the labelled versions stay loaded.
        compile: run the signatures through ``torch.compile`` (compiled during warm-up).
    """

    def __init__(
        self,
        name: str,
        base_path: Path,
        max_batch_size: int,
        batch_timeout_s: float,
        poll_s: float,
        version_labels: dict[str, int] | None = None,
        compile: bool = False,
    ) -> None:
        self._compile = compile
        self.name = name
        self.version_labels = dict(version_labels or {})
        # Labelled versions other than the newest, loaded and AVAILABLE too.
        self.pinned: dict[int, Servable] = {}
        self.base_path = base_path
        self.versioned = not (base_path / CONFIG_FILE).is_file()
        self._max_batch_size = max_batch_size
        self._timeout = batch_timeout_s
        self._poll_s = poll_s
        self._statuses: dict[int, VersionStatus] = {}
        self._failed: dict[int, Any] = {}
        self.current: Servable | None = None
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="torchrs-model")
        self._load_thread = ThreadPoolExecutor(1, thread_name_prefix="torchrs-load")
        self._task: asyncio.Task[None] | None = None

    def _versions(self) -> dict[int, Path]:
        if not self.versioned:
            return {1: self.base_path}
        try:
            entries = list(self.base_path.iterdir())
        except OSError:
            return {}
        return {int(p.name): p for p in entries if p.is_dir() and p.name.isdigit()}

    async def _load(self, version: int, path: Path) -> Servable | None:
        """Loads and warms one version up (in the load thread), with its batchers; None if it fails."""
        fingerprint = _fingerprint(path)
        if self._failed.get(version) == fingerprint:
            return None
        self._statuses[version] = VersionStatus(version, LOADING)
        try:
            preloaded = PRELOADED.pop((path.resolve(), version), None)
            servable: Servable = (
                preloaded
                if preloaded is not None
                else await asyncio.get_running_loop().run_in_executor(
                    self._load_thread, load_version, path, version, self._compile
                )
            )
        except ModelLoadError as error:
            log.error("%s", error)
            self._failed[version] = fingerprint
            self._statuses[version] = VersionStatus(version, END, "UNKNOWN", str(error))
            return None
        servable.batchers = {
            n: Batcher(s.run, self._model_thread, self._max_batch_size, self._timeout)
            for n, s in servable.signatures.items()
        }
        self._statuses[version] = VersionStatus(version, AVAILABLE)
        return servable

    async def poll(self) -> None:
        """Loads the newest version above the served one, if any loads; keeps the old one otherwise.

        Then loads the labelled versions not loaded yet (they stay beside the newest).
        """
        served = self.current.version if self.current else -1
        versions = self._versions()
        for version, path in sorted(versions.items(), reverse=True):
            if version <= served:
                break
            servable = await self._load(version, path)
            if servable is None:
                continue
            old, self.current = self.current, servable
            self.pinned.pop(version, None)
            log.info("model %s: serving version %d from %s", self.name, version, path)
            if old is not None:
                await self._retire(old)
            break
        labelled = set(self.version_labels.values())
        for version in sorted(labelled - set(self.pinned)):
            if (self.current and version == self.current.version) or version not in versions:
                continue
            servable = await self._load(version, versions[version])
            if servable is not None:
                self.pinned[version] = servable
                log.info("model %s: version %d loaded for its label", self.name, version)

    async def _retire(self, old: Servable) -> None:
        """A replaced newest version: kept if a label names it, else ``END`` and its batchers closed."""
        if old.version in self.version_labels.values():
            self.pinned[old.version] = old
            return
        self._statuses[old.version] = VersionStatus(old.version, END)
        for batcher in old.batchers.values():
            await batcher.close()

    async def start(self) -> None:
        """First load (the caller waits for it), then polling in the background.

        Raises:
            ModelLoadError: a single converted directory (no version folders) that cannot be served.
        """
        await self.poll()
        if (
            not self.versioned and self.current is None
        ):  # nothing else will ever come: fail start-up
            raise ModelLoadError(self._statuses[1].error_message)
        if self.versioned:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.poll()
            except Exception:  # a scan must never stop the watcher
                log.exception("model %s: version scan failed", self.name)

    async def stop(self) -> None:
        """Stops polling; lets the model thread finish what it runs."""
        if self._task is not None:
            self._task.cancel()
        for servable in [self.current, *self.pinned.values()]:
            if servable is not None:
                for batcher in servable.batchers.values():
                    await batcher.close()
        self._load_thread.shutdown(wait=False, cancel_futures=True)
        self._model_thread.shutdown(wait=True)

    def statuses(self, version: int | None = None) -> list[VersionStatus]:
        """``GetModelStatus``: every known version, newest first, or one.

        Raises:
            ServingError: NOT_FOUND for a model with no version, or an unknown version.
        """
        if version is not None:
            if version not in self._statuses:
                raise ServingError(
                    Code.NOT_FOUND, f"Could not find version {version} of model {self.name}"
                )
            return [self._statuses[version]]
        if not self._statuses:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {self.name}")
        return [self._statuses[v] for v in sorted(self._statuses, reverse=True)]

    def resolve_label(self, label: str) -> int:
        """The version a label names.

        Raises:
            ServingError: INVALID_ARGUMENT for a label the server was not given (TF Serving's words).
        """
        if label not in self.version_labels:
            known = ", ".join(f"{k}={v}" for k, v in sorted(self.version_labels.items()))
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Unrecognized servable version label: {label} (labels: {known or 'none'}; "
                "start the server with --version-labels LABEL=VERSION to define one).",
            )
        return self.version_labels[label]

    def lookup(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request addresses (a label stands for its version).

        Raises:
            ServingError: NOT_FOUND (unknown model, or a version not served), INVALID_ARGUMENT (an
                unknown label).
        """
        if name != self.name:
            spec = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise ServingError(Code.NOT_FOUND, f"Servable not found for request: {spec}")
        if label is not None:
            version = self.resolve_label(label)
        current = self.current
        if version is not None and version in self.pinned:
            return self.pinned[version]
        if current is None or (version is not None and version != current.version):
            spec = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise ServingError(Code.NOT_FOUND, f"Servable not found for request: {spec}")
        return current


def signature_of(servable: Servable, name: str | None, method: str = "predict") -> Signature:
    """The signature a request names (``serving_default`` when none).

    Raises:
        ServingError: INVALID_ARGUMENT for an unknown signature, or for ``classify`` / ``regress``.
    """
    key = name or "serving_default"
    if key not in servable.signatures:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f'Serving signature name: "{key}" not found in signature def; this model has '
            f"{sorted(servable.signatures)}.",
        )
    if method != "predict":
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"Expected {method} signature method_name to be tensorflow/serving/{method}. Was: "
            "tensorflow/serving/predict (a converted model has predict signatures only; use :predict).",
        )
    return servable.signatures[key]


def describe_dtype(spec: TensorSpec) -> str:
    """TF's enum name of a spec's dtype (``DT_STRING``)."""
    return {"float32": "DT_FLOAT", "float64": "DT_DOUBLE"}.get(
        spec.dtype, "DT_" + spec.dtype.upper()
    )


async def predict(
    servable: Servable, sig: Signature, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Runs a request through its signature's batcher; the model's refusals become INVALID_ARGUMENT.

    Raises:
        ServingError: INVALID_ARGUMENT with the model's message (a shape it cannot take...).
    """
    try:
        outputs = await servable.batchers[sig.name].submit(inputs)
    except (ValueError, TypeError, RuntimeError, IndexError, KeyError) as error:
        raise ServingError(Code.INVALID_ARGUMENT, f"{type(error).__name__}: {error}") from None
    return {n: outputs[n] for n in sig.outputs}
