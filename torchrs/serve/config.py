"""The server's settings: one frozen record, passed to every worker process as JSON."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

# Where uvicorn's worker processes find the settings (its app factory takes no arguments).
CONFIG_ENV = "TORCHRS_SERVE_CONFIG"
# TF Serving's defaults: REST on 8501, gRPC on 8500, the model named "default" when not named.
REST_PORT = 8501
GRPC_PORT = 8500
# TF Serving's --file_system_poll_wait_seconds default: a new version folder is seen within a second.
POLL_SECONDS = 1.0
# gRPC's default largest message (4 MiB) is TF Serving's too; REST gets the same limit by default.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ServeConfig:
    """What ``python -m torchrs.serve`` was asked to do.

    Args:
        model_dir: a converted directory, or a base path of numbered version folders.
        name: the model name in URLs and ``ModelSpec.name``.
        host: interface to listen on.
        port: REST port.
        grpc_port: gRPC port (0: no gRPC).
        max_batch_size: most rows per model call (1: no batching).
        batch_timeout_ms: longest wait for a batch to fill.
        workers: server processes (each loads the model; they share the ports).
        max_request_bytes: larger requests get RESOURCE_EXHAUSTED.
        poll_seconds: how often new versions are looked for.
        version_labels: ``{label: version}`` (TF Serving's ``version_labels``); labelled versions
            stay loaded beside the newest.
        compile: run each signature's tensor part through ``torch.compile`` (lookups stay eager).

    >>> ServeConfig.from_json(ServeConfig("m").to_json()) == ServeConfig("m")
    True
    """

    model_dir: str
    name: str = "default"
    host: str = "127.0.0.1"
    port: int = REST_PORT
    grpc_port: int = GRPC_PORT
    max_batch_size: int = 32
    batch_timeout_ms: float = 2.0
    workers: int = 1
    max_request_bytes: int = MAX_REQUEST_BYTES
    poll_seconds: float = POLL_SECONDS
    version_labels: dict[str, int] = field(default_factory=dict)
    compile: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))

    @classmethod
    def from_env(cls) -> ServeConfig:
        text = os.environ.get(CONFIG_ENV)
        if not text:
            raise RuntimeError(
                f"{CONFIG_ENV} is not set: start the server with python -m torchrs.serve MODEL_DIR."
            )
        return cls.from_json(text)
