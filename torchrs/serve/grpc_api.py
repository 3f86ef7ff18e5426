"""TF Serving's gRPC API on grpcio: ``PredictionService`` (Predict, GetModelMetadata) and
``ModelService`` (GetModelStatus), with the messages of the ``tensorflow-serving-api`` package, so an
existing ``PredictionServiceStub`` client works unchanged."""

from __future__ import annotations

from typing import Any

import grpc

from torchrs.serve import _protos, codec
from torchrs.serve.errors import Code, ServingError
from torchrs.serve.registry import ModelRegistry, describe_dtype, predict, signature_of
from torchrs.serve.signature import PREDICT_METHOD

# ModelVersionStatus.State numbers (tensorflow_serving/apis/get_model_status.proto).
_STATE = {"LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}
# tensorflow.error.Code numbers (error_codes.proto) for the codes a version status carries.
_ERROR_CODE = {"OK": 0, "UNKNOWN": 2}


async def _abort(context: grpc.aio.ServicerContext, error: ServingError) -> None:
    await context.abort(getattr(grpc.StatusCode, error.code.value), error.message)


def _spec(spec: Any) -> tuple[str, int | None, str | None]:
    version = spec.version.value if spec.HasField("version") else None
    return spec.name, version, spec.version_label or None


def build_server(registry: ModelRegistry, host: str, port: int, max_message_bytes: int) -> Any:
    """A ``grpc.aio`` server bound to ``host:port``, not started.

    Args:
        registry: the served model.
        host: interface.
        port: port (shared by the worker processes through SO_REUSEPORT, gRPC's default on Linux).
        max_message_bytes: larger requests get RESOURCE_EXHAUSTED from gRPC itself.

    Raises:
        _protos.ProtosUnavailableError: the serving protos are not installed.
    """
    pb = _protos.load()

    class PredictionService(pb.prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc,name-defined]
        async def Predict(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                name, version, label = _spec(request.model_spec)
                servable = registry.lookup(name, version, label)
                sig = signature_of(servable, request.model_spec.signature_name or None)
                unknown = sorted(set(request.inputs) - set(sig.inputs))
                if unknown:
                    raise ServingError(
                        Code.INVALID_ARGUMENT,
                        f"input tensor alias not found in signature: {unknown[0]}. Inputs expected "
                        f"to be in the set {{{','.join(sorted(sig.inputs))}}}.",
                    )
                missing = sorted(set(sig.inputs) - set(request.inputs))
                if missing:
                    raise ServingError(
                        Code.INVALID_ARGUMENT,
                        f"Missing input(s) {missing}; signature {sig.name!r} takes {sorted(sig.inputs)}.",
                    )
                inputs = {
                    n: codec.array_from_proto(request.inputs[n], sig.inputs[n].dtype, n)
                    for n in sig.inputs
                }
                outputs = await predict(servable, sig, inputs)
                wanted = list(request.output_filter) or list(outputs)
                bad = sorted(set(wanted) - set(outputs))
                if bad:
                    raise ServingError(
                        Code.INVALID_ARGUMENT,
                        f"output tensor alias not found in signature: {bad[0]} Outputs expected to "
                        f"be in the set {{{','.join(outputs)}}}.",
                    )
            except ServingError as error:
                await _abort(context, error)
            response = pb.predict_pb2.PredictResponse()
            response.model_spec.name = name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = sig.name
            for n in wanted:
                codec.array_to_proto(outputs[n], response.outputs[n])
            return response

        async def GetModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                name, version, label = _spec(request.model_spec)
                servable = registry.lookup(name, version, label)
                if list(request.metadata_field) != ["signature_def"]:
                    raise ServingError(
                        Code.INVALID_ARGUMENT,
                        "Metadata field must be exactly ['signature_def'] "
                        f"(got {list(request.metadata_field)}).",
                    )
            except ServingError as error:
                await _abort(context, error)
            sig_map = pb.get_model_metadata_pb2.SignatureDefMap()
            for sig_name, sig in servable.signatures.items():
                definition = sig_map.signature_def[sig_name]
                definition.method_name = PREDICT_METHOD
                for i, (part, specs) in enumerate(
                    (("inputs", sig.inputs), ("outputs", sig.outputs))
                ):
                    for j, (n, s) in enumerate(specs.items()):
                        info = getattr(definition, part)[n]
                        info.name = s.tensor or (
                            f"{sig_name}_{n}:0" if i == 0 else f"StatefulPartitionedCall:{j}"
                        )
                        info.dtype = pb.types_pb2.DataType.Value(describe_dtype(s))
                        for d in s.shape:
                            info.tensor_shape.dim.add(size=d)
            response = pb.get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = name
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(sig_map)
            return response

        async def Classify(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._refuse(request, context, "classify")

        async def Regress(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._refuse(request, context, "regress")

        async def _refuse(
            self, request: Any, context: grpc.aio.ServicerContext, method: str
        ) -> None:
            try:
                name, version, label = _spec(request.model_spec)
                servable = registry.lookup(name, version, label)
                signature_of(servable, request.model_spec.signature_name or None, method)
            except ServingError as error:
                await _abort(context, error)

    class ModelService(pb.model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc,name-defined]
        async def GetModelStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                name, version, _label = _spec(
                    request.model_spec
                )  # TF Serving ignores the label here
                if name != registry.name:
                    raise ServingError(
                        Code.NOT_FOUND, f"Could not find any versions of model {name}"
                    )
                statuses = registry.statuses(version)
            except ServingError as error:
                await _abort(context, error)
            response = pb.get_model_status_pb2.GetModelStatusResponse()
            for s in statuses:
                entry = response.model_version_status.add()
                entry.version = s.version
                entry.state = _STATE[s.state]
                entry.status.error_code = _ERROR_CODE.get(s.error_code, 2)
                entry.status.error_message = s.error_message
            return response

    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 1),
    ]
    server = grpc.aio.server(options=options)
    pb.prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(), server
    )
    pb.model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"gRPC cannot listen on {host}:{port} (in use?); pick another --grpc-port.")
    return server
