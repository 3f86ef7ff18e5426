"""The ASGI application: REST routes, the model registry, and the gRPC server started in its lifespan.

One process = one event loop serving REST (uvicorn) and gRPC (``grpc.aio``) over the same loaded
model and the same batchers. With ``--workers W`` uvicorn starts W such processes; gRPC binds its
port in each with SO_REUSEPORT, as uvicorn shares the REST socket.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from torchrs.serve.config import ServeConfig
from torchrs.serve.registry import ModelRegistry
from torchrs.serve.rest import routes

log = logging.getLogger("torchrs.serve")
# Seconds a stopping gRPC server lets in-flight calls finish (uvicorn waits for REST ones itself).
GRPC_GRACE_SECONDS = 30.0


def create_app(config: ServeConfig) -> Starlette:
    """The server for one model (see :class:`~torchrs.serve.config.ServeConfig`).

    The model's first version is loaded and warmed up before the app accepts requests; a model
    that cannot be served fails start-up with the reason.
    """
    registry = ModelRegistry(
        config.name,
        Path(config.model_dir),
        config.max_batch_size,
        config.batch_timeout_ms / 1000.0,
        config.poll_seconds,
        config.version_labels,
        config.compile,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await registry.start()
        grpc_server: Any = None
        if config.grpc_port:
            from torchrs.serve.grpc_api import build_server

            grpc_server = build_server(
                registry, config.host, config.grpc_port, config.max_request_bytes
            )
            await grpc_server.start()
        log.info(
            "serving model %r: REST http://%s:%d, gRPC %s",
            config.name,
            config.host,
            config.port,
            f"{config.host}:{config.grpc_port}" if config.grpc_port else "off",
        )
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(GRPC_GRACE_SECONDS)
            await registry.stop()

    app = Starlette(routes=routes(registry, config.max_request_bytes), lifespan=lifespan)
    app.state.registry = registry
    return app


def create_app_from_env() -> Starlette:
    """uvicorn's app factory for worker processes: the settings come from ``TORCHRS_SERVE_CONFIG``."""
    return create_app(ServeConfig.from_env())
