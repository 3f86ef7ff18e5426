"""``python -m torchrs.serve``: its flags, its refusals (one ``error:`` line, exit 2), and a start-up without TF."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from torchrs.serve.cli import main, parse_args
from torchrs.serve.config import ServeConfig


def test_every_flag_reaches_the_config(tmp_path: Path) -> None:
    config = parse_args(
        [str(tmp_path), "--name", "movies", "--host", "0.0.0.0", "--port", "9501", "--grpc-port", "0",
         "--max-batch-size", "64", "--batch-timeout-ms", "5", "--workers", "3",
         "--max-request-bytes", "1000", "--poll-seconds", "0.5",
         "--version-labels", "stable=1,canary=2", "--compile"]
    )  # fmt: skip
    assert config == ServeConfig(
        str(tmp_path.resolve()), "movies", "0.0.0.0", 9501, 0, 64, 5.0, 3, 1000, 0.5,
        {"stable": 1, "canary": 2}, True,
    )  # fmt: skip
    assert ServeConfig.from_json(config.to_json()) == config  # what worker processes read
    assert (
        parse_args([str(tmp_path)]).name == tmp_path.name
    )  # TF Serving's habit: the base path's name


@pytest.mark.parametrize("labels", ["stable", "stable=x", "a b=1", "stable=1,stable=2"])
def test_malformed_version_labels_are_refused(tmp_path: Path, capsys, labels: str) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_args([str(tmp_path), "--version-labels", labels])
    assert caught.value.code == 2
    assert "--version-labels" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "is not a directory"),
        (lambda root: root, "neither a converted model"),
    ],
)
def test_bad_model_dir_is_one_error_line(tmp_path: Path, capsys, make, message: str) -> None:
    assert main([str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1


@pytest.mark.tf  # needs the tensorflow wheel's proto files (TF itself is not started)
def test_help_and_protos_without_tensorflow() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "torchrs.serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--name",
        "--host",
        "--port",
        "--grpc-port",
        "--max-batch-size",
        "--batch-timeout-ms",
        "--workers",
        "--version-labels",
        "--compile",
    ):
        assert flag in out
    assert "compiling adds seconds to minutes" in " ".join(out.split())  # the trade-off, stated
    # The gRPC protos load without running TensorFlow's __init__ (no tensorflow.python).
    probe = (
        "import sys, torchrs.serve.grpc_api, torchrs.serve.app; from torchrs.serve import _protos; "
        "pb = _protos.load(); pb.predict_pb2.PredictRequest(); "
        "print('tensorflow' in sys.modules, 'tensorflow.python' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_a_single_broken_directory_is_refused_before_serving(tmp_path: Path, capsys) -> None:
    (tmp_path / "torchrs.json").write_text(
        '{"format": "torchrs", "format_version": 1, "model_kind": "index"}'
    )
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    assert main([str(tmp_path), "--port", "1", "--grpc-port", "0"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: Version 1 at") and "cannot be loaded" in err and err.count("\n") == 1
    )


@pytest.mark.tf  # needs tensorflow-serving-api's config protos (TF itself is not started)
def test_model_config_file_gives_name_base_path_and_version_labels(tmp_path: Path, capsys) -> None:
    config = tmp_path / "models.config"
    config.write_text(
        "model_config_list {\n"
        '  config { name: "movies" base_path: "%s" model_platform: "tensorflow"\n'
        '    version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } }\n'
        '  config { name: "other" base_path: "/elsewhere" model_platform: "tensorflow" }\n'
        "}\n" % (tmp_path / "movies")
    )
    parsed = parse_args(["--model-config-file", str(config), "--name", "movies"])
    assert (parsed.name, parsed.model_dir) == ("movies", str((tmp_path / "movies").resolve()))
    assert parsed.version_labels == {"stable": 1, "canary": 2}
    by_path = parse_args(
        [
            str(tmp_path / "movies"),
            "--model-config-file",
            str(config),
            "--version-labels",
            "canary=3",
        ]
    )
    assert by_path.name == "movies" and by_path.version_labels == {"stable": 1, "canary": 3}
    for argv, message in [
        (["--model-config-file", str(config)], "several models (movies, other)"),
        (["--model-config-file", str(tmp_path / "missing.config")], "cannot be read"),
    ]:
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert message in capsys.readouterr().err
    config.write_text("model_config_list { config { name: 1 } ")
    with pytest.raises(SystemExit):
        parse_args(["--model-config-file", str(config)])
    assert "cannot be read" in capsys.readouterr().err
