"""TF Serving's JSON and TensorProto encodings, checked on hand-written cases (no TensorFlow needed).

Expected values follow TF Serving's REST API documentation: row format stacks ``instances``; a single
output collapses to its value, several give one object per row (row format) or one object of whole
tensors (columnar); ``{"b64": ...}`` carries bytes; a TensorProto's single value fills its shape.
"""

from __future__ import annotations

import numpy as np
import pytest

from torchrs.serve import _protos, codec
from torchrs.serve.errors import Code, ServingError
from torchrs.serve.signature import Signature, TensorSpec


def _sig(**inputs: TensorSpec) -> Signature:
    return Signature("serving_default", inputs, {}, dict)


ONE = _sig(input_1=TensorSpec("string", (-1,)))
TWO = _sig(user_id=TensorSpec("string", (-1,)), age=TensorSpec("float32", (-1, 2)))


def test_row_and_columnar_requests_give_the_same_arrays() -> None:
    rows = {
        "instances": [
            {"user_id": "a", "age": [1, 2]},
            {"user_id": {"b64": "/w=="}, "age": [3, 4.5]},
        ]
    }
    columns = {"inputs": {"user_id": ["a", {"b64": "/w=="}], "age": [[1, 2], [3, 4.5]]}}
    (row_arrays, row_format), (col_arrays, col_format) = (
        codec.parse_request(rows, TWO),
        codec.parse_request(columns, TWO),
    )
    assert row_format and not col_format
    for arrays in (row_arrays, col_arrays):
        assert arrays["user_id"].tolist() == [b"a", b"\xff"]
        np.testing.assert_array_equal(arrays["age"], np.array([[1, 2], [3, 4.5]], np.float32))
        assert arrays["age"].dtype == np.float32


def test_single_input_takes_bare_values() -> None:
    arrays, _ = codec.parse_request({"instances": ["x", "y"]}, ONE)
    assert arrays["input_1"].tolist() == [b"x", b"y"]
    arrays, _ = codec.parse_request({"inputs": ["x"]}, ONE)
    assert arrays["input_1"].tolist() == [b"x"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [{"user_id": "a"}]}, "missing named input"),
        (
            {"instances": [{"user_id": "a", "age": [1, 2], "zip": 1}]},
            "does not have named input: zip",
        ),
        (
            {"instances": [{"user_id": 7, "age": [1, 2]}]},
            "Type: Number is not of expected type: string",
        ),
        (
            {"instances": [{"user_id": "a", "age": ["1", 2]}]},
            "Type: String is not of expected type: float32",
        ),
        ({"instances": [{"user_id": "a", "age": [1, True]}]}, "Type: Boolean"),
        ({"inputs": {"user_id": ["a", "b"], "age": [[1, 2], [3]]}}, "ragged"),
        ({"instances": ["a"]}, "each instance must be an object"),
        ({"instances": [], "inputs": {}}, "exactly one of 'instances' or 'inputs'"),
        ({"instances": []}, "non-empty list"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_requests_are_invalid_argument(body: object, message: str) -> None:
    with pytest.raises(ServingError, match=message) as caught:
        codec.parse_request(body, TWO)
    assert caught.value.code is Code.INVALID_ARGUMENT and caught.value.http_status == 400


def test_string_outputs_that_are_not_utf8_are_written_as_their_raw_bytes() -> None:
    # TF Serving's rapidjson writer copies bytes >= 0x80 unvalidated and escapes only '"', '\\' and
    # control characters: no replacement character, no \\u escape, valid UTF-8 written as UTF-8.
    ids = np.array([[b"\xff\xfe", "é".encode(), b'q"\n']], dtype=object)
    body = codec.dumps(codec.format_response({"ids": ids}, row_format=False))
    assert body == b'{"outputs":[["\xff\xfe","\xc3\xa9","q\\"\\n"]]}'
    assert codec.dumps(codec.format_response({"ids_bytes": ids[:, :1]}, row_format=True)) == (
        b'{"predictions":[[{"b64":"//4="}]]}'
    )


def test_a_lone_surrogate_in_a_request_is_a_parse_error() -> None:
    with pytest.raises(ServingError, match="surrogate"):
        codec.json_to_array(["\ud800"], "string", "q")


def test_malformed_json_is_a_parse_error() -> None:
    with pytest.raises(ServingError, match="JSON Parse error") as caught:
        codec.loads(b'{"instances": [')
    assert caught.value.http_status == 400


def test_response_shapes() -> None:
    scores = np.array([[0.5, 0.25], [1.0, 0.0]], np.float32)
    ids = np.array([[b"a", b"b"], [b"c", b"\xff"]], dtype=object)
    assert codec.format_response({"s": scores}, row_format=True) == {
        "predictions": [[0.5, 0.25], [1.0, 0.0]]
    }
    assert codec.format_response({"s": scores, "ids": ids}, row_format=False) == {
        "outputs": {"s": [[0.5, 0.25], [1.0, 0.0]], "ids": [["a", "b"], ["c", "\udcff"]]}
    }  # the byte 0xff rides as U+DCFF until dumps writes it back (below)
    rows = codec.format_response({"s": scores, "ids_bytes": ids}, row_format=True)["predictions"]
    assert rows[1] == {"s": [1.0, 0.0], "ids_bytes": [{"b64": "Yw=="}, {"b64": "/w=="}]}
    with pytest.raises(ServingError, match="0th dimension"):
        codec.format_response({"s": scores, "one": np.array([1.0], np.float32)}, row_format=True)


@pytest.mark.tf  # needs the tensorflow wheel's proto files (TF itself is not started)
def test_tensor_proto_round_trip_and_tf_fill_rule() -> None:
    pb = _protos.load()
    for array in (
        np.array([[1.5, -2.0]], np.float32),
        np.arange(6, dtype=np.int64).reshape(2, 3),
        np.array([b"a", b"\xff\x00"], dtype=object),
    ):
        proto = pb.tensor_pb2.TensorProto()
        codec.array_to_proto(array, proto)
        back = codec.array_from_proto(proto)
        assert back.dtype == array.dtype and back.tolist() == array.tolist()
    filled = pb.tensor_pb2.TensorProto(dtype=codec.DT_ENUM["float32"], float_val=[7.0])
    filled.tensor_shape.dim.add(size=3)
    assert codec.array_from_proto(filled).tolist() == [7.0, 7.0, 7.0]  # one value fills the shape
    with pytest.raises(ServingError, match="to be string but float32"):
        codec.array_from_proto(filled, expected="string", what="user_id")
