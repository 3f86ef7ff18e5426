"""The baseline of the serving benchmark: TF's own SavedModel signature behind a server of the same shape.

TF Serving's binary (``tensorflow_model_server``) is not installable here (no apt repository, no
PyPI wheel), so the TF side is the function TF Serving would run, ``tf.saved_model.load(DIR)
.signatures["serving_default"]``, behind the very stack ``torchrs.serve`` uses: uvicorn + Starlette,
the same JSON codec (``torchrs.serve.codec``) and the same batcher. Only the model call differs.

``python benchmarks/_tf_serving_baseline.py TF_SAVED_MODEL --name NAME --port PORT
[--max-batch-size N] [--batch-timeout-ms T]`` serves ``POST /v1/models/NAME:predict``.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from torchrs.serve import codec
from torchrs.serve.batching import Batcher
from torchrs.serve.errors import ServingError
from torchrs.serve.signature import Signature, TensorSpec


def tf_signature(saved_model: str) -> Signature:
    """TF's ``serving_default`` as a :class:`Signature` (NumPy in, NumPy out)."""
    import tensorflow as tf

    function = tf.saved_model.load(saved_model).signatures["serving_default"]
    specs = function.structured_input_signature[1]
    inputs = {
        n: TensorSpec(s.dtype.name, tuple(-1 if d is None else d for d in s.shape))
        for n, s in specs.items()
    }
    outputs = {n: TensorSpec(s.dtype.name, ()) for n, s in function.structured_outputs.items()}

    def run(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = function(**{n: tf.constant(v) for n, v in batch.items()})
        return {n: result[n].numpy() for n in outputs}

    return Signature("serving_default", inputs, outputs, run)


def create_app(saved_model: str, name: str, max_batch_size: int, timeout_s: float) -> Starlette:
    sig = tf_signature(saved_model)
    batcher = Batcher(sig.run, ThreadPoolExecutor(1), max_batch_size, timeout_s)

    async def predict(request: Request) -> Response:
        try:
            body = codec.loads(await request.body())
            inputs, row_format = codec.parse_request(body, sig)
            outputs = await batcher.submit(inputs)
            payload: Any = codec.format_response(outputs, row_format)
            return Response(codec.dumps(payload), media_type="application/json")
        except ServingError as error:
            return Response(codec.dumps(error.json()), status_code=error.http_status)

    return Starlette(routes=[Route(f"/v1/models/{name}:predict", predict, methods=["POST"])])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("saved_model")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-ms", type=float, default=2.0)
    args = parser.parse_args()
    app = create_app(args.saved_model, args.name, args.max_batch_size, args.batch_timeout_ms / 1000)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
