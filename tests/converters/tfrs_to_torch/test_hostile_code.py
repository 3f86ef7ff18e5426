"""Hostile inputs, class 2: the converter never runs the model's code.

A SavedModel whose traced call writes a file is refused before TensorFlow restores it (the op
allow-list covers every function of the export); a ``.keras`` config naming a module outside Keras /
TFRS is refused before tf_keras sees it. Each case proves the marker file was never written and the
module never imported.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from converters.tfrs_to_torch.safety.graph_ops import op_allowed

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def evil(tf, tmp_path_factory) -> tuple[Path, Path]:
    """(export, marker): a Sequential tower whose call writes ``marker`` with tf.io.write_file."""
    root = tmp_path_factory.mktemp("evil")
    marker = root / "MARKER"

    class Tower(tf.keras.Sequential):
        def call(self, inputs, training=None, mask=None):  # type: ignore[no-untyped-def]
            tf.io.write_file(str(marker), "the model's code ran")
            return super().call(inputs, training=training, mask=mask)

    tower = Tower([tf.keras.layers.Dense(3, activation="relu"), tf.keras.layers.Dense(2)])
    tower(tf.zeros((1, 4)))
    tf.saved_model.save(tower, str(root / "sm"))
    marker.unlink()  # written while tracing
    return root / "sm", marker


def _rewrite_config(archive: Path, target: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    with zipfile.ZipFile(archive) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return target


class TestSavedModelOps:
    def test_file_writing_graph_is_refused_before_it_runs(
        self, evil, run_cli, tree, tmp_path
    ) -> None:
        model, marker = evil
        run = run_cli(model, "--out", tmp_path / "out")
        run.one_error("WriteFile", "--trust-model")
        assert not marker.exists()
        assert tree.nothing_left(tmp_path / "out")

    def test_no_verify_does_not_bypass_the_check(self, evil, run_cli, tree, tmp_path) -> None:
        model, marker = evil
        run_cli(model, "--out", tmp_path / "out", "--no-verify").one_error("WriteFile")
        assert not marker.exists() and tree.nothing_left(tmp_path / "out")

    def test_trust_model_is_explicit_and_reported(self, evil, run_cli, tmp_path) -> None:
        model, marker = evil
        run = run_cli(model, "--out", tmp_path / "out", "--trust-model")
        assert run.code == 0, run.err
        safety = json.loads((tmp_path / "out" / "report.json").read_text())["safety"]
        assert safety["trust_model"] is True
        assert "WriteFile" in safety["op_check"]["refused_ops"]
        marker.unlink(missing_ok=True)  # trusted: the verification forward pass ran the model

    @pytest.mark.parametrize(
        "op, allowed",
        [
            ("MatMul", True),
            ("HashTableV2", True),
            ("LookupTableImportV2", True),
            ("TensorSliceDataset", True),
            ("StatefulPartitionedCall", True),
            ("WriteFile", False),
            ("ReadFile", False),
            ("MatchingFiles", False),
            ("PyFunc", False),
            ("EagerPyFunc", False),
            ("PyFuncStateless", False),
            ("PrintV2", False),
            ("TFRecordDataset", False),
            ("TextLineDataset", False),
            ("CacheDatasetV2", False),
            ("QueueEnqueueV2", False),
            ("SaveV2", False),
            ("ImmutableConst", False),
            ("WriteScalarSummary", False),
            ("NotARegisteredOp", False),
        ],
    )
    def test_allow_list(self, op: str, allowed: bool) -> None:
        assert op_allowed(op) is allowed


class TestKerasConfigClasses:
    def test_module_beside_the_archive_is_never_imported(
        self, exports, run_cli, tree, tmp_path, monkeypatch
    ) -> None:
        marker = tmp_path / "MARKER"
        (tmp_path / "hostile_layers.py").write_text(
            f"open({str(marker)!r}, 'w').write('imported')\nclass Tower: pass\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))  # as when run from that directory

        def edit(config):  # type: ignore[no-untyped-def]
            config["config"]["layers"][1]["module"] = "hostile_layers"
            config["config"]["layers"][1]["registered_name"] = "Tower"

        archive = _rewrite_config(exports.tower_keras_archive, tmp_path / "m.keras", edit)
        run = run_cli(archive, "--out", tmp_path / "out")
        run.one_error("hostile_layers", "refused before loading")
        assert not marker.exists() and "hostile_layers" not in sys.modules
        assert tree.nothing_left(tmp_path / "out")

    def test_standard_library_module_is_never_imported(
        self, exports, run_cli, tree, tmp_path
    ) -> None:
        assert "this" not in sys.modules  # `import this` prints the Zen of Python

        def edit(config):  # type: ignore[no-untyped-def]
            config["module"] = "this"

        archive = _rewrite_config(exports.tower_keras_archive, tmp_path / "m.keras", edit)
        run = run_cli(archive, "--out", tmp_path / "out")
        run.one_error("'this'")
        assert "this" not in sys.modules and "Beautiful" not in run.out
        assert tree.nothing_left(tmp_path / "out")

    def test_unknown_class_is_refused(self, exports, run_cli, tmp_path) -> None:
        def edit(config):  # type: ignore[no-untyped-def]
            config["config"]["layers"][1]["class_name"] = "Popen"
            config["config"]["layers"][1]["module"] = "subprocess"

        archive = _rewrite_config(exports.tower_keras_archive, tmp_path / "m.keras", edit)
        run_cli(archive, "--out", tmp_path / "out").one_error("'Popen'", "'subprocess'")

    def test_vocabulary_file_outside_the_archive_is_not_opened(
        self, exports, run_cli, tmp_path
    ) -> None:
        outside = tmp_path / "ids.txt"
        outside.write_text("\n".join(str(i) for i in range(100, 130)) + "\n")

        def edit(config):  # type: ignore[no-untyped-def]
            lookup = next(
                layer
                for layer in config["config"]["layers"]
                if layer["class_name"] == "IntegerLookup"
            )
            lookup["config"]["vocabulary"] = str(outside)

        archive = _rewrite_config(exports.tower_keras_archive, tmp_path / "m.keras", edit)
        run_cli(archive, "--out", tmp_path / "out").one_error("names a file as its vocabulary")

    def test_untouched_archive_converts(self, exports, run_cli, tmp_path) -> None:
        shutil.copy(exports.tower_keras_archive, tmp_path / "m.keras")
        assert run_cli(tmp_path / "m.keras", "--out", tmp_path / "out").code == 0


def _forge_metadata(source: Path, target: Path, node_path: str, edit) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the Keras SavedModel ``source`` whose ``keras_metadata.pb`` record of the object
    at ``node_path`` (``root.layer-0``...) is passed through ``edit(dict)``."""
    from tf_keras.protobuf import saved_metadata_pb2

    shutil.copytree(source, target)
    metadata = saved_metadata_pb2.SavedMetadata()
    metadata.ParseFromString((target / "keras_metadata.pb").read_bytes())
    node = next(n for n in metadata.nodes if n.node_path == node_path)
    record = json.loads(node.metadata)
    edit(record)
    node.metadata = json.dumps(record)
    (target / "keras_metadata.pb").write_bytes(metadata.SerializeToString())
    return target


class TestKerasSavedModelClasses:
    """``keras_metadata.pb`` names classes too: tf_keras would rebuild (and import) them; the
    converter refuses any outside the Keras / TFRS allow-list before anything loads."""

    def test_layer_class_outside_the_allow_list(self, exports, run_cli, tree, tmp_path) -> None:
        def edit(record):  # type: ignore[no-untyped-def]
            record["class_name"] = "EvilEmbedding"

        model = _forge_metadata(
            exports.tower_keras, tmp_path / "m", "root.layer_with_weights-0", edit
        )
        before = tree.snapshot(tmp_path)
        run = run_cli(model, "--out", tmp_path / "out")
        run.one_error("'EvilEmbedding' at layer_with_weights-0", "--trust-model")
        assert tree.snapshot(tmp_path) == before  # nothing written, nothing beside --out

    def test_nested_config_naming_a_module(self, exports, run_cli, tree, tmp_path) -> None:
        def edit(record):  # type: ignore[no-untyped-def]
            record["config"]["layers"][2]["module"] = "subprocess"
            record["config"]["layers"][2]["class_name"] = "Popen"

        model = _forge_metadata(exports.tower_keras, tmp_path / "m", "root", edit)
        run = run_cli(model, "--out", tmp_path / "out")
        run.one_error("'Popen' at <root> (config/layers[2], module 'subprocess')")
        assert tree.nothing_left(tmp_path / "out")

    def test_registered_custom_package_is_refused(self, exports, run_cli, tmp_path) -> None:
        def edit(record):  # type: ignore[no-untyped-def]
            record["class_name"] = "evil_package>Dense"

        model = _forge_metadata(
            exports.tower_keras, tmp_path / "m", "root.layer_with_weights-1", edit
        )
        run_cli(model, "--out", tmp_path / "out").one_error("'evil_package>Dense'")

    def test_trust_model_accepts_and_reports(self, exports, run_cli, tmp_path) -> None:
        def edit(record):  # type: ignore[no-untyped-def]
            record["config"]["embeddings_initializer"] = {
                "class_name": "EvilInitializer",
                "module": "evil_module",
                "config": {},
            }

        model = _forge_metadata(
            exports.tower_keras, tmp_path / "m", "root.layer_with_weights-0", edit
        )
        refused = run_cli(model, "--out", tmp_path / "refused")
        refused.one_error(
            "'EvilInitializer' at layer_with_weights-0 (config/embeddings_initializer, module "
            "'evil_module')"
        )
        run = run_cli(model, "--out", tmp_path / "out", "--trust-model")
        assert run.code == 0, run.err
        check = json.loads((tmp_path / "out" / "report.json").read_text())["safety"]["class_check"]
        assert check["trust_model"] is True
        assert check["refused_classes"] == {
            "EvilInitializer": [
                "layer_with_weights-0 (config/embeddings_initializer, module 'evil_module')"
            ]
        }

    def test_subclassed_tfrs_model_is_a_container(self, tf, tfrs, run_cli, tmp_path) -> None:
        class Towers(tfrs.Model):
            def __init__(self) -> None:
                super().__init__()
                self.tower = tf.keras.Sequential(
                    [
                        tf.keras.layers.StringLookup(vocabulary=["a", "b"]),
                        tf.keras.layers.Embedding(3, 2),
                    ]
                )
                self.task = tfrs.tasks.Retrieval()

            def call(self, inputs):  # type: ignore[no-untyped-def]
                return self.tower(inputs)

        model = Towers()
        model(tf.constant(["a"]))
        model.save(str(tmp_path / "m"), save_format="tf")
        run = run_cli(tmp_path / "m", "--out", tmp_path / "out")
        assert run.code == 0, run.err
        check = json.loads((tmp_path / "out" / "report.json").read_text())["safety"]["class_check"]
        assert check["refused_classes"] == {} and check["trust_model"] is False
        assert check["subclassed_containers"] == ["Towers"] and check["nodes_checked"] >= 4
