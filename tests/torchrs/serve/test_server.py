"""A real ``python -m torchrs.serve`` answers TF Serving clients as TF's SavedModel does.

Each test starts the server on 127.0.0.1 (free ports) in its own process and talks to it with real
clients: ``httpx`` for REST, ``grpcio`` with ``tensorflow-serving-api``'s stubs for gRPC. The
reference is TF's ``serving_default`` signature of the same export, the function TF Serving runs.

Tolerance: identifiers identical; floats within 1e-5 of the largest magnitude of the compared
output (relative to the row's scale, not elementwise: a dot product near 0 can differ by ulps of
its terms, far above 1e-5 of itself). Lookups and gathers are exact; float32 matmuls sum in another
order than TF and the batch size changes the kernel (observed differences ~1e-7 relative).
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from tests.torchrs.serve._server import Running, serve

pytestmark = pytest.mark.tf

RTOL = 1e-5  # see module docstring


def _close(actual: Any, expected: np.ndarray, scale: float | None = None) -> None:
    """Equal within RTOL of ``scale`` (default: the largest magnitude of ``expected``)."""
    actual = np.asarray(actual, dtype=np.float64)
    scale = scale or float(np.abs(expected).max()) or 1.0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=RTOL * scale)
    assert actual.shape == expected.shape


def _post(
    server: Running, body: Any, suffix: str = ":predict", raw: bytes | None = None
) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(f"{server.rest}/v1/models/{server.name}{suffix}", content=content, timeout=30)


def _grpc_stubs(server: Running) -> tuple[Any, Any, Any]:
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc)
    return (
        channel,
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )


def _grpc_predict(
    server: Running, inputs: dict[str, np.ndarray], tf: Any, **spec: Any
) -> dict[str, np.ndarray]:
    from tensorflow_serving.apis import predict_pb2

    channel, stub, _ = _grpc_stubs(server)
    with channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = spec.get("name", server.name)
        if "version" in spec:
            request.model_spec.version.value = spec["version"]
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = stub.Predict(request, timeout=30)
        return {n: tf.make_ndarray(t) for n, t in response.outputs.items()}


def _b64_or_text(token: bytes) -> Any:
    try:
        return token.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(token).decode()}


def _check_metadata(server: Running, served: Any) -> None:
    """The served signature_def names, dtypes and shapes exactly what TF's signature of the same model
    does (the converter records the export's signature_def; see torchrs.serve.signature)."""
    meta = httpx.get(f"{server.rest}/v1/models/{server.name}/metadata", timeout=30).json()
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    tf_inputs = served.signature.structured_input_signature[1]
    tf_outputs = served.signature.structured_outputs
    assert set(sig["inputs"]) == set(tf_inputs)
    assert set(sig["outputs"]) == set(tf_outputs)
    for ours, theirs in [(sig["inputs"], tf_inputs), (sig["outputs"], tf_outputs)]:
        for name, spec in theirs.items():
            expected_dtype = "DT_" + {"float32": "FLOAT", "float64": "DOUBLE"}.get(
                spec.dtype.name, spec.dtype.name.upper()
            )
            assert ours[name]["dtype"] == expected_dtype, name
            dims = [int(d["size"]) for d in ours[name]["tensor_shape"]["dim"]]
            assert dims == [-1 if d is None else d for d in spec.shape.as_list()], name


def _check_grpc_metadata_and_status(server: Running, served: Any) -> None:
    """GetModelMetadata's signature_def and GetModelStatus agree with TF's signature and with REST."""
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

    channel, predictions, models = _grpc_stubs(server)
    with channel:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = server.name
        response = predictions.GetModelMetadata(request, timeout=30)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        sig = signature_map.signature_def["serving_default"]
        tf_inputs = served.signature.structured_input_signature[1]
        tf_outputs = served.signature.structured_outputs
        assert {n: i.dtype for n, i in sig.inputs.items()} == {
            n: s.dtype.as_datatype_enum for n, s in tf_inputs.items()
        }
        assert {n: i.dtype for n, i in sig.outputs.items()} == {
            n: s.dtype.as_datatype_enum for n, s in tf_outputs.items()
        }
        status = models.GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": server.name}), timeout=30
        )
    (version,) = status.model_version_status
    assert version.version == 1
    assert get_model_status_pb2.ModelVersionStatus.State.Name(version.state) == "AVAILABLE"
    assert _status(server)[1]["state"] == "AVAILABLE"


def test_index_answers_as_tf_over_rest_and_grpc(served_index, exports, tf, tmp_path: Path) -> None:
    queries = [*exports.users[:6], exports.users[-3], exports.users[-2], b"never seen", b"42"]
    expected = served_index.signature(input_1=tf.constant(queries))
    scores, ids = expected["output_1"].numpy(), expected["output_2"].numpy()  # (Q, 10) float, bytes

    with serve(served_index.torchrs_dir, "retrieval", tmp_path / "log") as server:
        _check_metadata(server, served_index)
        row = _post(server, {"instances": [_b64_or_text(q) for q in queries]})
        assert row.status_code == 200, row.text
        predictions = row.json()["predictions"]
        _close([p["output_1"] for p in predictions], scores)
        assert [p["output_2"] for p in predictions] == [[i.decode() for i in r] for r in ids]

        columnar = _post(server, {"inputs": {"input_1": [_b64_or_text(q) for q in queries]}})
        assert columnar.status_code == 200, columnar.text
        outputs = columnar.json()["outputs"]
        _close(outputs["output_1"], scores)
        assert outputs["output_2"] == [[i.decode() for i in r] for r in ids]

        answer = _grpc_predict(server, {"input_1": np.array(queries, dtype=object)}, tf)
        _close(answer["output_1"], scores)
        np.testing.assert_array_equal(answer["output_2"], ids)  # bytes, exactly
        _check_grpc_metadata_and_status(server, served_index)


def test_ranking_answers_as_tf_over_rest_and_grpc(served_ranking, tf, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pool_users = np.array([f"user {i}" for i in range(14)] + ["", "stranger"], dtype=object)
    pool_movies = np.array([f"movie {i}" for i in range(17)] + [""], dtype=object)
    users = pool_users[rng.integers(0, len(pool_users), 25)]
    movies = pool_movies[rng.integers(0, len(pool_movies), 25)]
    expected = served_ranking.signature(
        user_id=tf.constant(users.astype(str)), movie_title=tf.constant(movies.astype(str))
    )["rating"].numpy()  # (25, 1)

    with serve(served_ranking.torchrs_dir, "ranking", tmp_path / "log") as server:
        _check_metadata(server, served_ranking)
        rows = [{"user_id": u, "movie_title": m} for u, m in zip(users, movies, strict=True)]
        row = _post(server, {"instances": rows, "signature_name": "serving_default"})
        assert row.status_code == 200, row.text
        _close(row.json()["predictions"], expected)  # one output: its rows, collapsed

        columnar = _post(server, {"inputs": {"user_id": list(users), "movie_title": list(movies)}})
        assert columnar.status_code == 200, columnar.text
        _close(columnar.json()["outputs"], expected)

        answer = _grpc_predict(
            server,
            {"user_id": users.astype(bytes), "movie_title": movies.astype(bytes)},
            tf,
        )
        assert set(answer) == {"rating"}
        _close(answer["rating"], expected)


def _status(server: Running) -> dict[int, dict[str, Any]]:
    body = httpx.get(f"{server.rest}/v1/models/{server.name}", timeout=30).json()
    return {int(s["version"]): s for s in body["model_version_status"]}


def _wait(predicate: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


def test_new_version_is_picked_up_and_a_broken_one_never_replaces_a_working_one(
    served_index, served_ranking, tmp_path: Path
) -> None:
    base = tmp_path / "base"
    shutil.copytree(served_index.torchrs_dir, base / "1")
    query = {"instances": ["1"]}
    with serve(base, "model", tmp_path / "log", "--poll-seconds", "0.2") as server:
        assert _status(server)[1]["state"] == "AVAILABLE"
        assert _post(server, query).status_code == 200

        broken = base / "2"
        shutil.copytree(served_index.torchrs_dir, broken)
        (broken / "model.safetensors").write_bytes(b"not a safetensors file")
        _wait(lambda: _status(server).get(2, {}).get("state") == "END")
        status = _status(server)
        assert status[2]["status"]["error_code"] != "OK"
        assert "Version 2" in status[2]["status"]["error_message"]
        assert status[1]["state"] == "AVAILABLE"
        still = _post(server, query)
        assert still.status_code == 200 and len(still.json()["predictions"][0]["output_2"]) == 10
        gone = _post(server, query, suffix="/versions/2:predict")
        assert gone.status_code == 404 and "Specific(model, 2)" in gone.json()["error"]

        # A warm-up that fails (metadata claims an int input for a string lookup) is never AVAILABLE.
        bad_warmup = base / "3"
        shutil.copytree(served_ranking.torchrs_dir, bad_warmup)
        meta = json.loads((bad_warmup / "torchrs.json").read_text())
        meta["architecture"]["input_specs"]["user_id"]["dtype"] = "int64"
        recorded = meta["architecture"]["serving_signatures"]["serving_default"]
        recorded["inputs"]["user_id"]["dtype"] = "int64"
        (bad_warmup / "torchrs.json").write_text(json.dumps(meta))
        _wait(lambda: _status(server).get(3, {}).get("state") == "END")
        assert "warm-up" in _status(server)[3]["status"]["error_message"]
        assert _status(server)[1]["state"] == "AVAILABLE"

        shutil.copytree(served_ranking.torchrs_dir, base / "4")  # a working new version
        _wait(lambda: _status(server).get(4, {}).get("state") == "AVAILABLE")
        _wait(lambda: _status(server)[1]["state"] == "END")
        swapped = _post(server, {"instances": [{"user_id": "user 1", "movie_title": "movie 2"}]})
        assert swapped.status_code == 200 and len(swapped.json()["predictions"]) == 1
        old = _post(server, query, suffix="/versions/1:predict")
        assert old.status_code == 404


def test_bad_requests_get_tf_servings_errors_and_the_server_keeps_serving(
    served_index, served_ranking, tf, tmp_path: Path
) -> None:
    with serve(
        served_ranking.torchrs_dir, "ranking", tmp_path / "log", "--max-request-bytes", "2000"
    ) as server:
        good = {"instances": [{"user_id": "user 1", "movie_title": "movie 1"}]}
        cases = [
            (None, b'{"instances": [', 400, "JSON Parse error"),
            (
                {"instances": [{"user": "user 1", "movie_title": "movie 1"}]},
                None,
                400,
                "named input: user",
            ),
            ({"instances": [{"user_id": "user 1"}]}, None, 400, "missing named input"),
            (
                {"inputs": {"user_id": [1], "movie_title": ["movie 1"]}},
                None,
                400,
                "not of expected type: string",
            ),
            ({"inputs": {"user_id": [["a"], "b"], "movie_title": ["m", "n"]}}, None, 400, "ragged"),
            ({"instances": [{"user_id": {"b64": "%%%"}, "movie_title": "m"}]}, None, 400, "base64"),
            ({"rows": []}, None, 400, "Missing 'inputs' or 'instances' key"),
            ({**good, "signature_name": "nope"}, None, 400, 'signature name: "nope" not found'),
            ({"instances": [good["instances"][0]] * 100}, None, 429, "--max-request-bytes"),
        ]
        for body, raw, status, message in cases:
            response = _post(server, body, raw=raw)
            assert response.status_code == status, (body, response.text)
            assert set(response.json()) == {"error"} and message in response.json()["error"], (
                response.text
            )
        for suffix, status, message in [
            (":classify", 400, "tensorflow/serving/classify"),
            (":regress", 400, "tensorflow/serving/regress"),
            ("/versions/9:predict", 404, "Specific(ranking, 9)"),
            ("/labels/stable:predict", 400, "Unrecognized servable version label: stable"),
        ]:
            response = _post(server, good, suffix=suffix)
            assert response.status_code == status and message in response.json()["error"], (
                response.text
            )
        unknown = httpx.post(f"{server.rest}/v1/models/other:predict", json=good, timeout=30)
        assert unknown.status_code == 404 and "Latest(other)" in unknown.json()["error"]
        assert httpx.get(f"{server.rest}/v1/models/other", timeout=30).status_code == 404
        assert httpx.get(f"{server.rest}/v2/anything", timeout=30).status_code == 404

        from tensorflow_serving.apis import get_model_status_pb2, predict_pb2

        channel, stub, models = _grpc_stubs(server)
        with channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "ranking"
            request.inputs["user_id"].CopyFrom(tf.make_tensor_proto(np.array([b"user 1"])))
            request.inputs["movie_title"].CopyFrom(
                tf.make_tensor_proto(np.array([1.5], np.float32))
            )
            grpc_cases = [(request, grpc.StatusCode.INVALID_ARGUMENT, "to be string but float32")]
            wrong_name = predict_pb2.PredictRequest()
            wrong_name.CopyFrom(request)
            wrong_name.inputs["title"].CopyFrom(wrong_name.inputs.pop("movie_title"))
            grpc_cases.append((wrong_name, grpc.StatusCode.INVALID_ARGUMENT, "alias not found"))
            unknown_model = predict_pb2.PredictRequest(model_spec={"name": "other"})
            grpc_cases.append((unknown_model, grpc.StatusCode.NOT_FOUND, "Latest(other)"))
            big = predict_pb2.PredictRequest()
            big.CopyFrom(request)
            big.inputs["user_id"].CopyFrom(tf.make_tensor_proto(np.array([b"x" * 5000])))
            grpc_cases.append((big, grpc.StatusCode.RESOURCE_EXHAUSTED, ""))
            for bad, code, message in grpc_cases:
                with pytest.raises(grpc.RpcError) as caught:
                    stub.Predict(bad, timeout=30)
                assert caught.value.code() == code and message in caught.value.details()
            missing = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "ranking"})
            missing.model_spec.version.value = 7
            with pytest.raises(grpc.RpcError) as caught:
                models.GetModelStatus(missing, timeout=30)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        ok = _post(server, good)
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1


def test_sigterm_finishes_in_flight_requests(served_index, tf, tmp_path: Path) -> None:
    # A batch window of 3 s keeps both requests (REST and gRPC, one batch) in flight while SIGTERM arrives.
    flags = ("--max-batch-size", "64", "--batch-timeout-ms", "3000")
    with serve(served_index.torchrs_dir, "index", tmp_path / "log", *flags) as server:
        result: dict[str, Any] = {}

        def over_grpc() -> None:
            result["grpc"] = _grpc_predict(server, {"input_1": np.array([b"2"], dtype=object)}, tf)

        threads = [
            threading.Thread(
                target=lambda: result.update(rest=_post(server, {"instances": ["1"]}))
            ),
            threading.Thread(target=over_grpc),
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=60)
        assert server.process.wait(timeout=60) == 0
    assert result["rest"].status_code == 200 and len(result["rest"].json()["predictions"]) == 1
    assert result["grpc"]["output_2"].shape == (1, 10)


def test_tfrs_model_container_serves_each_tower(served_container, tf, tmp_path: Path) -> None:
    """A converted tfrs.Model keeps no ``call``: each tower is a signature, answering as the TF tower."""
    towers = served_container.model.ranking_model
    users = [*served_container.users[:5], "nobody"]
    with serve(served_container.torchrs_dir, "tutorial", tmp_path / "log") as server:
        meta = httpx.get(f"{server.rest}/v1/models/tutorial/metadata", timeout=30).json()
        signatures = meta["metadata"]["signature_def"]["signature_def"]
        assert set(signatures) == {
            "ranking_model.user_embeddings",
            "ranking_model.movie_embeddings",
            "ranking_model.ratings",
        }
        no_default = _post(server, {"instances": users})
        assert (
            no_default.status_code == 400 and "ranking_model.ratings" in no_default.json()["error"]
        )

        user_sig = signatures["ranking_model.user_embeddings"]
        (input_name,) = user_sig["inputs"]
        assert len(user_sig["outputs"]) == 1
        answer = _post(
            server,
            {"signature_name": "ranking_model.user_embeddings", "inputs": {input_name: users}},
        )
        assert answer.status_code == 200, answer.text
        _close(answer.json()["outputs"], towers.user_embeddings(tf.constant(users)).numpy())

        ratings_sig = signatures["ranking_model.ratings"]
        (ratings_input,) = ratings_sig["inputs"]
        width = int(ratings_sig["inputs"][ratings_input]["tensor_shape"]["dim"][1]["size"])
        features = np.random.default_rng(0).normal(size=(4, width)).astype(np.float32)
        answer = _post(
            server, {"signature_name": "ranking_model.ratings", "instances": features.tolist()}
        )
        assert answer.status_code == 200, answer.text
        _close(answer.json()["predictions"], towers.ratings(tf.constant(features)).numpy())


def test_identifiers_that_are_not_utf8_come_back_as_tf_servings_raw_bytes(
    served_bytes_index, exports, tf, tmp_path: Path
) -> None:
    """TF Serving writes a DT_STRING output not named ``*_bytes`` as the tensor's raw bytes in a
    JSON string (rapidjson copies bytes >= 0x80 unvalidated): the body is not valid UTF-8 where an
    identifier is not. The expected body is rebuilt from TF's identifiers byte for byte."""
    queries = [b"3", b"\xff\xfe", "é".encode()]
    ids = served_bytes_index.signature(input_1=tf.constant(queries))["output_2"].numpy()
    assert any(b"\xff\xfe" in row for row in ids.tolist())  # the case this test is about

    def quoted(token: bytes) -> bytes:  # rapidjson: escape '"', '\\' and control bytes only
        escapes = {ord('"'): b'\\"', ord("\\"): b"\\\\", ord("\n"): b"\\n", ord("\t"): b"\\t"}
        return b'"' + b"".join(escapes.get(c, bytes([c])) for c in token) + b'"'

    expected = b"[" + b",".join(b"[" + b",".join(map(quoted, r)) + b"]" for r in ids) + b"]"
    with serve(served_bytes_index.torchrs_dir, "users", tmp_path / "log") as server:
        body = {"inputs": {"input_1": [_b64_or_text(q) for q in queries]}}
        response = _post(server, body)
        assert response.status_code == 200, response.text
        raw = response.content
        start = raw.index(b'"output_2":') + len(b'"output_2":')
        assert raw[start : start + len(expected)] == expected
        assert b"\xef\xbf\xbd" not in raw  # no U+FFFD replacement character anywhere
        with pytest.raises(UnicodeDecodeError):
            raw.decode(
                "utf-8"
            )  # as from TF Serving: clients must ask for *_bytes outputs to get b64


def test_sequential_tower_is_served_under_tfs_own_signature_names(
    exports, tf, tmp_path: Path
) -> None:
    """A Sequential saved without named inputs: TF Serving shows ``<first layer>_input`` and the last
    layer's name (not ``input_1`` / ``output_1``), with TF's shapes and graph tensor names."""
    from converters.tfrs_to_torch.cli import main as convert
    from tests.torchrs.serve.conftest import Served

    out = tmp_path / "tower"
    assert convert([str(exports.tower_saved_model), "--out", str(out), "--json"]) == 0
    loaded = tf.saved_model.load(str(exports.tower_saved_model))
    tower = Served(exports.tower_saved_model, out, loaded.signatures["serving_default"])
    (input_name,) = tower.signature.structured_input_signature[1]
    (output_name,) = tower.signature.structured_outputs
    assert (input_name, output_name) != ("input_1", "output_1")  # the case this test is about
    queries = [b"1", b"7", b"unknown", b""]
    expected = tower.signature(**{input_name: tf.constant(queries)})[output_name].numpy()

    with serve(out, "tower", tmp_path / "log") as server:
        _check_metadata(server, tower)
        _check_grpc_metadata_and_status(server, tower)
        meta = httpx.get(f"{server.rest}/v1/models/tower/metadata", timeout=30).json()
        sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert sig["inputs"][input_name]["name"] == f"serving_default_{input_name}:0"
        response = _post(server, {"instances": [q.decode() for q in queries]})
        assert response.status_code == 200, response.text
        _close(response.json()["predictions"], expected)
        _close(
            _grpc_predict(server, {input_name: np.array(queries, object)}, tf)[output_name],
            expected,
        )


def test_version_labels_address_their_versions_over_rest_and_grpc(
    served_index, served_bytes_index, tf, tmp_path: Path
) -> None:
    """Labels stable=1, canary=2 (from a TF Serving model config file; ``--version-labels`` gives
    the same config, see test_cli): both versions stay AVAILABLE, each label answers as
    its version's TF export; an unknown label is TF Serving's INVALID_ARGUMENT (HTTP 400) with its
    message; a status request with a label lists every version, as TF Serving's GetModelStatus
    (which reads only the name and version) does."""
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

    base = tmp_path / "base"
    shutil.copytree(served_index.torchrs_dir, base / "1")  # movie identifiers
    shutil.copytree(served_bytes_index.torchrs_dir, base / "2")  # user identifiers
    queries = [b"1", b"7"]
    expected = {
        version: served.signature(input_1=tf.constant(queries))["output_2"].numpy()
        for version, served in [(1, served_index), (2, served_bytes_index)]
    }
    config = tmp_path / "models.config"  # TF Serving's model config file, labels in it
    config.write_text(
        f'model_config_list {{ config {{ name: "m" base_path: "{base}" model_platform: "tensorflow"'
        ' version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } } }'
    )
    labels = ("--model-config-file", str(config), "--poll-seconds", "0.2")
    with serve(base, "m", tmp_path / "log", *labels) as server:
        _wait(lambda: _status(server).get(1, {}).get("state") == "AVAILABLE")
        assert {v: s["state"] for v, s in _status(server).items()} == {
            1: "AVAILABLE",
            2: "AVAILABLE",
        }
        for label, version in [("stable", 1), ("canary", 2)]:
            response = _post(server, {"inputs": ["1", "7"]}, suffix=f"/labels/{label}:predict")
            assert response.status_code == 200, response.text
            # Version 2's identifiers hold b"\xff\xfe", written raw (as TF Serving does).
            body = json.loads(response.content.decode("utf-8", "surrogateescape"))
            assert body["outputs"]["output_2"] == [
                [i.decode("utf-8", "surrogateescape") for i in row] for row in expected[version]
            ]
            meta = httpx.get(f"{server.rest}/v1/models/m/labels/{label}/metadata", timeout=30)
            assert meta.json()["model_spec"]["version"] == str(version)
        by_number = _post(server, {"inputs": ["1", "7"]}, suffix="/versions/1:predict")
        assert by_number.json()["outputs"]["output_2"][0] == [i.decode() for i in expected[1][0]]

        unknown = _post(server, {"inputs": ["1"]}, suffix="/labels/nope:predict")
        assert unknown.status_code == 400
        assert unknown.json()["error"].startswith("Unrecognized servable version label: nope")
        meta = httpx.get(f"{server.rest}/v1/models/m/labels/nope/metadata", timeout=30)
        assert meta.status_code == 400
        status = httpx.get(f"{server.rest}/v1/models/m/labels/nope", timeout=30).json()
        assert [s["version"] for s in status["model_version_status"]] == ["2", "1"]

        channel, predictions, models = _grpc_stubs(server)
        with channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "m"
            request.model_spec.version_label = "stable"
            request.inputs["input_1"].CopyFrom(tf.make_tensor_proto(np.array(queries, object)))
            response = predictions.Predict(request, timeout=30)
            assert response.model_spec.version.value == 1
            np.testing.assert_array_equal(
                tf.make_ndarray(response.outputs["output_2"]), expected[1]
            )
            request.model_spec.version_label = "nope"
            with pytest.raises(grpc.RpcError) as caught:
                predictions.Predict(request, timeout=30)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "Unrecognized servable version label: nope" in caught.value.details()
            metadata = get_model_metadata_pb2.GetModelMetadataRequest(
                metadata_field=["signature_def"]
            )
            metadata.model_spec.name = "m"
            metadata.model_spec.version_label = "canary"
            assert predictions.GetModelMetadata(metadata, timeout=30).model_spec.version.value == 2
            status_request = get_model_status_pb2.GetModelStatusRequest()
            status_request.model_spec.name = "m"
            status_request.model_spec.version_label = "nope"
            versions = models.GetModelStatus(status_request, timeout=30).model_version_status
            assert [v.version for v in versions] == [2, 1]

        # A newer version becomes the latest; the labelled ones it replaces stay AVAILABLE.
        shutil.copytree(served_index.torchrs_dir, base / "3")
        _wait(lambda: _status(server).get(3, {}).get("state") == "AVAILABLE")
        assert {v: s["state"] for v, s in _status(server).items()} == {
            v: "AVAILABLE" for v in (1, 2, 3)
        }
        canary = _post(server, {"inputs": ["1"]}, suffix="/labels/canary:predict")
        assert b"\xff\xfe" in canary.content  # still version 2 (user identifiers)
        latest = _post(server, {"inputs": ["1", "7"]}).json()["outputs"]["output_2"]
        assert latest == [[i.decode() for i in row] for row in expected[1]]  # 3 = a copy of 1


@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile's CPU backend (TorchInductor) needs a C++ compiler; none on PATH",
)
def test_compiled_models_answer_as_the_eager_ones_and_as_tf(
    served_index, served_ranking, exports, tf, tmp_path: Path
) -> None:
    """``--compile``: the converted index and ranking model, compiled during warm-up (before
    AVAILABLE), answer as their eager selves (ids identical, floats within RTOL of the output's
    scale: fused kernels may sum in another order) and so as TF, for a batch of 1 and larger ones."""
    import torchrs
    from torchrs.serve.batching import run_batch
    from torchrs.serve.signature import signatures

    def eager(served: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        meta = json.loads((served.torchrs_dir / "torchrs.json").read_text())
        sig = signatures(torchrs.load(served.torchrs_dir), meta["architecture"])["serving_default"]
        return run_batch(sig.run, inputs)

    queries = [*exports.users[:6], exports.users[-2], b"never seen", b"42"]
    tf_index = served_index.signature(input_1=tf.constant(queries))
    eager_index = eager(served_index, {"input_1": np.array(queries, dtype=object)})
    with serve(served_index.torchrs_dir, "index", tmp_path / "index.log", "--compile") as server:
        assert "compiled (torch.compile)" in server.log.read_text()  # before AVAILABLE
        for rows in (slice(0, 1), slice(0, len(queries))):
            body = {"inputs": [_b64_or_text(q) for q in queries[rows]]}
            outputs = _post(server, body).json()["outputs"]
            ids = [[i.decode() for i in r] for r in eager_index["output_2"][rows]]
            assert outputs["output_2"] == ids
            assert ids == [[i.decode() for i in r] for r in tf_index["output_2"].numpy()[rows]]
            _close(outputs["output_1"], eager_index["output_1"][rows])
            _close(outputs["output_1"], tf_index["output_1"].numpy()[rows])

    users = np.array(["user 1", "user 5", "stranger", "", "user 11"], dtype=object)
    movies = np.array(["movie 3", "movie 14", "movie 2", "", "nope"], dtype=object)
    tf_rating = served_ranking.signature(
        user_id=tf.constant(users.astype(str)), movie_title=tf.constant(movies.astype(str))
    )["rating"].numpy()
    eager_rating = eager(
        served_ranking, {"user_id": users.astype(bytes), "movie_title": movies.astype(bytes)}
    )["rating"]
    with serve(served_ranking.torchrs_dir, "ranking", tmp_path / "rank.log", "--compile") as server:
        scale = float(np.abs(tf_rating).max())  # one rating alone can be a cancellation near 0
        for n in (1, len(users)):
            body = {"inputs": {"user_id": list(users[:n]), "movie_title": list(movies[:n])}}
            rating = _post(server, body).json()["outputs"]
            _close(rating, eager_rating[:n], scale)
            _close(rating, tf_rating[:n], scale)
