"""``python -m torchrs.serve MODEL_DIR``: a converted model behind TF Serving's REST and gRPC APIs."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from torchrs.serve.config import CONFIG_ENV, ServeConfig

CONFIG_FILE = "torchrs.json"


def parse_args(argv: Sequence[str] | None = None) -> ServeConfig:
    """The command line as a :class:`ServeConfig`."""
    defaults = ServeConfig("")
    parser = argparse.ArgumentParser(
        prog="python -m torchrs.serve",
        description=(
            "Serve a converted torchrs model with TF Serving's REST API (POST "
            "/v1/models/NAME:predict) and gRPC API (PredictionService, ModelService)."
        ),
    )
    parser.add_argument(
        "model_dir",
        metavar="MODEL_DIR",
        nargs="?",
        help="a directory written by python -m converters.tfrs_to_torch, or a base path of "
        "numbered version folders (MODEL_BASE/1/, MODEL_BASE/2/): the newest is served and new "
        "ones are picked up while serving (optional with --model-config-file: its base_path)",
    )
    parser.add_argument(
        "--name", default=None, help="model name in URLs (default: MODEL_DIR's name)"
    )
    parser.add_argument("--host", default=defaults.host, help="interface (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=defaults.port, help="REST port (default %(default)s)"
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=defaults.grpc_port,
        help="gRPC port, 0 for none (default %(default)s)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=defaults.max_batch_size,
        help="most examples per model call when batching concurrent requests; 1 turns batching off "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--batch-timeout-ms",
        type=float,
        default=defaults.batch_timeout_ms,
        help="longest wait for a batch to fill (default %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="server processes, each with its own copy of the model, sharing the ports (default %(default)s)",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=defaults.max_request_bytes,
        help="larger requests get RESOURCE_EXHAUSTED / HTTP 429 (default %(default)s)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=defaults.poll_seconds,
        help="how often MODEL_DIR is scanned for new versions (default %(default)s)",
    )
    parser.add_argument(
        "--version-labels",
        type=_labels,
        default={},
        metavar="LABEL=VERSION[,...]",
        help="TF Serving's version_labels: name versions (stable=1,canary=2) for "
        "/v1/models/NAME/labels/LABEL and ModelSpec.version_label; labelled versions are loaded "
        "and stay AVAILABLE beside the newest (TF Serving's 'specific' version policy)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run each signature's tensor part (embeddings, dense layers, top-k scoring) through "
        "torch.compile, lookups staying in Python; answers equal the eager ones up to float "
        "rounding. Trade-off: compiling adds seconds to minutes to each version's warm-up (before "
        "it is AVAILABLE) and needs a C++ compiler; at the tutorials' sizes compiled calls measured "
        "slower than eager ones (make bench-serve-compile), so measure before turning it on",
    )
    parser.add_argument(
        "--model-config-file",
        default=None,
        metavar="FILE",
        help="TF Serving's model config file (text ModelServerConfig): the served entry's name, "
        "base_path and version_labels are used (--name, MODEL_DIR and --version-labels win); a "
        "file of several models needs --name or MODEL_DIR to pick one",
    )
    args = parser.parse_args(argv)
    labels, name, model_path = dict(args.version_labels), args.name, args.model_dir
    if args.model_config_file:
        from torchrs.serve.model_config import ModelConfigError, read_model_config

        try:
            entry = read_model_config(args.model_config_file, name, model_path)
        except ModelConfigError as error:
            parser.error(str(error))
        labels = {**entry.version_labels, **labels}
        name = name or entry.name or None
        model_path = model_path or entry.base_path or None
    if not model_path:
        parser.error("MODEL_DIR is required (or a --model-config-file entry with a base_path).")
    model_dir = Path(model_path).resolve()
    return ServeConfig(
        model_dir=str(model_dir),
        name=name or model_dir.name,
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        max_batch_size=args.max_batch_size,
        batch_timeout_ms=args.batch_timeout_ms,
        workers=args.workers,
        max_request_bytes=args.max_request_bytes,
        poll_seconds=args.poll_seconds,
        version_labels=labels,
        compile=args.compile,
    )


# TF Serving's version labels: letters, digits, '_' and '-' (they travel in URL paths).
_LABEL = re.compile(r"^[A-Za-z0-9_-]+$")


def _labels(text: str) -> dict[str, int]:
    """``stable=1,canary=2`` as ``{"stable": 1, "canary": 2}``.

    >>> _labels("stable=1, canary=2")
    {'stable': 1, 'canary': 2}
    """
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, _, version = item.partition("=")
        label = label.strip()
        if not _LABEL.match(label) or not version.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"{item!r} is not LABEL=VERSION (a label of letters, digits, '_' or '-', a version "
                "number): write e.g. stable=1,canary=2"
            )
        if label in out:
            raise argparse.ArgumentTypeError(f"label {label!r} given twice")
        out[label] = int(version)
    return out


def _check(config: ServeConfig) -> str | None:
    root = Path(config.model_dir)
    if not root.is_dir():
        return f"MODEL_DIR {root} is not a directory."
    if (root / CONFIG_FILE).is_file():
        try:
            json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            return f"{root / CONFIG_FILE} is unreadable: {error}"
        return None
    if not any(p.is_dir() and p.name.isdigit() for p in root.iterdir()):
        return (
            f"{root} is neither a converted model (no {CONFIG_FILE}) nor a base path of numbered "
            "version folders; convert first: python -m converters.tfrs_to_torch SAVED_MODEL --out DIR."
        )
    return None


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the server until SIGINT / SIGTERM (in-flight requests finish first)."""
    import uvicorn

    config = parse_args(argv)
    problem = _check(config)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if config.workers < 1 or config.max_batch_size < 1:
        print("error: --workers and --max-batch-size must be at least 1.", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if (Path(config.model_dir) / CONFIG_FILE).is_file():
        # A single directory is refused now, in one line, if it cannot be served (a base path of
        # versions instead waits for one that loads, as TF Serving does).
        from torchrs.serve.errors import ModelLoadError
        from torchrs.serve.registry import PRELOADED, load_version

        try:
            servable = load_version(Path(config.model_dir), 1, config.compile)
        except ModelLoadError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if config.workers == 1:  # this process serves: no second load
            PRELOADED[(Path(config.model_dir).resolve(), 1)] = servable
        del servable
    os.environ[CONFIG_ENV] = config.to_json()
    # uvicorn finishes in-flight requests on SIGTERM, then re-raises the signal to this handler:
    # a requested stop is a clean exit (status 0), as for TF Serving's model server.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "torchrs.serve.app:create_app_from_env",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=None,
    )
    return 0
