"""Serve a converted model where TF Serving stood: same REST and gRPC API, clients unchanged.

``python -m torchrs.serve MODEL_DIR [--name NAME] [--port 8501] [--grpc-port 8500] ...``; see
``torchrs.serve.cli``. Needs the ``serve`` extra (uvicorn, starlette, grpcio, tensorflow-serving-api's
protos); TensorFlow itself is never started.
"""

from torchrs.serve.config import ServeConfig
from torchrs.serve.errors import Code, ServingError
from torchrs.serve.signature import Signature, TensorSpec, signatures

__all__ = ["Code", "ServeConfig", "ServingError", "Signature", "TensorSpec", "signatures"]
