"""TF Serving's REST API on Starlette: ``/v1/models/{name}[/versions/{v}|/labels/{l}][:predict|/metadata]``."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from torchrs.serve import codec
from torchrs.serve.errors import Code, ServingError
from torchrs.serve.registry import (
    ModelRegistry,
    Servable,
    VersionStatus,
    describe_dtype,
    predict,
    signature_of,
)
from torchrs.serve.signature import PREDICT_METHOD, Signature

# TF Serving's URL grammar (http_rest_api_handler.cc), one regex for every model route.
_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<verb>predict|classify|regress)|(?P<metadata>/metadata))?$"
)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(codec.dumps(payload), status_code=status, media_type="application/json")


def error_response(error: ServingError) -> Response:
    """TF Serving's ``{"error": ...}`` body with its HTTP status."""
    return _json(error.json(), error.http_status)


def status_json(statuses: list[VersionStatus]) -> dict[str, Any]:
    """``GetModelStatus`` as TF Serving's REST API writes it."""
    return {
        "model_version_status": [
            {
                "version": str(s.version),
                "state": s.state,
                "status": {"error_code": s.error_code, "error_message": s.error_message},
            }
            for s in statuses
        ]
    }


def _tensor_info(name: str, dtype: str, shape: tuple[int, ...], tensor: str) -> dict[str, Any]:
    return {
        "dtype": dtype,
        "tensor_shape": {
            "dim": [{"size": str(d), "name": ""} for d in shape],
            "unknown_rank": False,
        },
        "name": tensor,
    }


def signature_json(sig: Signature) -> dict[str, Any]:
    """A ``SignatureDef`` in TF Serving's JSON (tensor names as a TF export names them)."""
    return {
        "inputs": {
            n: _tensor_info(n, describe_dtype(s), s.shape, s.tensor or f"{sig.name}_{n}:0")
            for n, s in sig.inputs.items()
        },
        "outputs": {
            n: _tensor_info(
                n, describe_dtype(s), s.shape, s.tensor or f"StatefulPartitionedCall:{i}"
            )
            for i, (n, s) in enumerate(sig.outputs.items())
        },
        "method_name": PREDICT_METHOD,
        "defaults": {},
    }


def metadata_json(name: str, servable: Servable) -> dict[str, Any]:
    """``GetModelMetadata`` (``signature_def``) as TF Serving's REST API writes it."""
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
        "metadata": {
            "signature_def": {
                "signature_def": {n: signature_json(s) for n, s in servable.signatures.items()}
            }
        },
    }


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_big = ServingError(
        Code.RESOURCE_EXHAUSTED,
        f"Request body larger than the server's limit of {limit} bytes; send smaller batches or "
        "start the server with a larger --max-request-bytes.",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def routes(registry: ModelRegistry, max_request_bytes: int) -> list[Route]:
    """The REST routes of one model."""

    async def models(request: Request) -> Response:
        match = _PATH.match(request.url.path)
        try:
            if match is None or (request.method == "GET") == bool(match["verb"]):
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    f"Malformed request: {request.method} {request.url.path}",
                )
            name, label = match["name"], match["label"]
            version = int(match["version"]) if match["version"] else None
            if request.method == "GET":
                if match["metadata"]:
                    servable = registry.lookup(name, version, label)
                    return _json(metadata_json(name, servable))
                if name != registry.name:
                    raise ServingError(
                        Code.NOT_FOUND, f"Could not find any versions of model {name}"
                    )
                # A label is not resolved here: TF Serving's GetModelStatus reads only the name and
                # the version, so /labels/{l} lists every version, as there.
                return _json(status_json(registry.statuses(version)))
            body = codec.loads(await _body(request, max_request_bytes))
            servable = registry.lookup(name, version, label)
            signature_name = body.get("signature_name") if isinstance(body, dict) else None
            sig = signature_of(servable, signature_name, match["verb"])
            inputs, row_format = codec.parse_request(body, sig)
            outputs = await predict(servable, sig, inputs)
            return _json(codec.format_response(outputs, row_format))
        except ServingError as error:
            return error_response(error)

    async def unknown(request: Request) -> Response:
        return error_response(
            ServingError(Code.NOT_FOUND, f"Malformed request: {request.method} {request.url.path}")
        )

    return [
        Route("/v1/models/{rest:path}", models, methods=["GET", "POST"]),
        Route("/{rest:path}", unknown, methods=["GET", "POST", "PUT", "DELETE"]),
    ]
