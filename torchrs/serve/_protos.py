"""TF Serving's protos (the ``tensorflow-serving-api`` package) without starting TensorFlow.

``tensorflow_serving.apis.*_pb2`` import TF's own protos (``tensorflow.core.framework.tensor_pb2``
...), and importing any ``tensorflow.*`` module first runs ``tensorflow/__init__``: all of TF
(measured here: ~3,200 modules, ~700 MB resident, seconds of start-up), only to get a few message
classes. When TensorFlow is not imported yet, this module loads just those generated ``*_pb2``
files from the installed ``tensorflow`` package directory (protobuf only, ~35 MB): placeholder
package modules stand in for ``tensorflow`` / ``tensorflow.core`` ... during the import and are
removed right after, so a later ``import tensorflow`` in the same process still runs TF's real
``__init__`` (and reuses the already loaded ``*_pb2`` modules). The files still come from TF's
wheel: ``tensorflow-serving-api`` publishes no copy of them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

_TF = "tensorflow"


class ProtosUnavailableError(ImportError):
    """The gRPC API's protos cannot be imported."""


def _placeholder_packages(root: str) -> list[str]:
    module = types.ModuleType(_TF)
    module.__path__ = [root]
    sys.modules[_TF] = module
    return [_TF]


def load() -> types.SimpleNamespace:
    """Imports the serving protos and stubs: ``predict_pb2``, ``prediction_service_pb2_grpc``...

    Returns:
        A namespace of the generated modules.

    Raises:
        ProtosUnavailableError: ``tensorflow-serving-api`` (or the ``tensorflow`` package whose
            proto files it imports) is not installed.
    """
    names = (
        "tensorflow_serving.apis.predict_pb2",
        "tensorflow_serving.apis.get_model_metadata_pb2",
        "tensorflow_serving.apis.get_model_status_pb2",
        "tensorflow_serving.apis.model_pb2",
        "tensorflow_serving.apis.prediction_service_pb2_grpc",
        "tensorflow_serving.apis.model_service_pb2_grpc",
        "tensorflow.core.framework.tensor_pb2",
        "tensorflow.core.framework.types_pb2",
        "tensorflow.core.protobuf.meta_graph_pb2",
        "tensorflow.core.protobuf.error_codes_pb2",
    )
    placeholders: list[str] = []
    if _TF not in sys.modules:
        spec = importlib.util.find_spec(_TF)
        if spec is None or not spec.submodule_search_locations:
            raise ProtosUnavailableError(
                "The gRPC API needs TF Serving's protos: pip install tensorflow-serving-api "
                "(its tensor protos live in the tensorflow package), or serve REST only with --grpc-port 0."
            )
        placeholders = _placeholder_packages(spec.submodule_search_locations[0])
    try:
        modules: dict[str, Any] = {n.rsplit(".", 1)[1]: importlib.import_module(n) for n in names}
    except ImportError as error:
        raise ProtosUnavailableError(
            f"The gRPC API needs TF Serving's protos ({error}): pip install --no-deps "
            "tensorflow-serving-api, or serve REST only with --grpc-port 0."
        ) from error
    finally:
        if placeholders:  # packages only: the loaded *_pb2 modules stay for a later real import
            for name in [n for n, m in sys.modules.items() if n == _TF or n.startswith(_TF + ".")]:
                if hasattr(sys.modules[name], "__path__"):
                    del sys.modules[name]
    return types.SimpleNamespace(**modules)
