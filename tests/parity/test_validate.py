"""``python -m parity validate TF_MODEL_DIR TORCHRS_DIR``: a user's own export, converted, signed off.

The TF models are tiny (20 users, 30 movies, 8-dimensional embeddings, a few dozen training steps) so the
module runs in seconds beyond TensorFlow's import; they are trained, exported and converted with the
converter's CLI exactly as a user would, then validated, then corrupted to show the checks have teeth.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from parity.cli import EXIT_USAGE, main
from parity.tolerances import Tolerance
from parity.validate import EXIT_FAILED, compare_arrays, top_k_agreement

USERS = [str(i) for i in range(20)]
MOVIES = [f"movie {i}" for i in range(30)]
# The exported index answers this many candidates (BruteForce(k=...)).
EXPORTED_K = 5


# --------------------------------------------------------------------------------------- pure functions (no TF)
_TIE = Tolerance(atol=1e-3, rtol=0.0, reason="test")


def test_top_k_agreement_identical_lists_agree() -> None:
    ids = np.array([["a", "b", "c"], ["c", "b", "a"]])
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    assert top_k_agreement(ids, scores, ids.copy(), scores, _TIE).tolist() == [True, True]


def test_top_k_agreement_reordered_tie_agrees_but_reordered_distinct_scores_do_not() -> None:
    tf_ids = np.array([["a", "b", "c", "d"]] * 2)
    # Row 0: b and c tie (2.0 vs 2.0005, within atol 1e-3), so {b, c} is one group.
    # Row 1: b and c are 0.5 apart, so swapping them is a real disagreement.
    tf_scores = np.array([[3.0, 2.0005, 2.0, 1.0], [3.0, 2.5, 2.0, 1.0]])
    torch_ids = np.array([["a", "c", "b", "d"]] * 2)
    assert top_k_agreement(tf_ids, tf_scores, torch_ids, tf_scores, _TIE).tolist() == [True, False]


def test_top_k_agreement_last_group_may_swap_in_a_tied_candidate() -> None:
    tf_ids = np.array([["a", "b", "c"], ["a", "b", "c"]])
    tf_scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    # "z" replaces c at rank K: a tie when torchrs scores it 1.0005 (|1.0005 - 1.0| <= 1e-3), else not.
    torch_ids = np.array([["a", "b", "z"], ["a", "b", "z"]])
    torch_scores = np.array([[3.0, 2.0, 1.0005], [3.0, 2.0, 0.9]])
    assert top_k_agreement(tf_ids, tf_scores, torch_ids, torch_scores, _TIE).tolist() == [
        True,
        False,
    ]


def test_top_k_agreement_shape_mismatch_disagrees() -> None:
    ids = np.array([["a", "b"]])
    assert top_k_agreement(
        ids, np.ones((1, 2)), np.array([["a"]]), np.ones((1, 1)), _TIE
    ).tolist() == [False]


def test_compare_arrays_figures() -> None:
    ref = np.array([[1.0, -2.0], [1e-7, 10.0]])
    got = np.array([[1.0, -2.0003], [3e-7, 10.002]])
    tol = Tolerance(atol=1e-6, rtol=1e-4, reason="test")
    c = compare_arrays(ref, got, tol)
    # |diffs| = 0, 3e-4, 2e-7, 2e-3: the largest is at 10.0; bounds 1e-6 + 1e-4 * |ref| = 1.0001e-4, 2.01e-4,
    # 1e-6, 1.001e-3 -> -2.0003 (3e-4 > 2.01e-4) and 10.002 (2e-3 > 1.001e-3) are outside.
    assert c.max_abs == pytest.approx((2e-3, 10.0, 10.002))
    # Relative over |ref| > atol (1e-7 is not): 0, 1.5e-4, 2e-4 -> 2e-4 at 10.0.
    assert c.max_rel == pytest.approx((2e-4, 10.0, 10.002))
    assert c.outside == 2 and c.size == 4


def test_compare_arrays_nan_is_outside() -> None:
    c = compare_arrays(np.array([1.0, 2.0]), np.array([1.0, np.nan]), Tolerance(1.0, 1.0, "test"))
    assert c.outside == 1 and c.max_abs[0] == np.inf


# --------------------------------------------------------------------------------------- TF models, converted
@dataclass
class Models:
    index: Path  # tf.saved_model.save(BruteForce(user_model)) of a trained retrieval model
    index_torchrs: Path
    ranking: Path  # tf.saved_model.save(tfrs.Model) of a trained ranking model: three towers
    ranking_torchrs: Path
    tower: Path  # Sequential float tower saved as .keras
    tower_torchrs: Path
    wider_tower: Path  # the same architecture with another width: a different model
    int_tower: Path  # IntegerLookup tower, model.save(dir, save_format="tf") (a Keras SavedModel)
    int_tower_torchrs: Path
    checkpoint: Path  # tower.save_weights: weights only


def _convert(source: Path, out: Path) -> Path:
    from converters.tfrs_to_torch.cli import main as convert

    assert convert([str(source), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def models(tf, tfrs, tmp_path_factory) -> Models:
    root = tmp_path_factory.mktemp("validate")
    tf.keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    users = rng.choice(USERS, 256)
    movies = rng.choice(MOVIES, 256)
    ratings = rng.integers(1, 6, 256).astype("float32")

    class RetrievalModel(tfrs.models.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_model = tf.keras.Sequential(
                [tf.keras.layers.StringLookup(vocabulary=USERS), tf.keras.layers.Embedding(21, 8)]
            )
            self.movie_model = tf.keras.Sequential(
                [tf.keras.layers.StringLookup(vocabulary=MOVIES), tf.keras.layers.Embedding(31, 8)]
            )
            self.task = tfrs.tasks.Retrieval()

        def compute_loss(self, features, training=False):
            return self.task(
                self.user_model(features["user_id"]), self.movie_model(features["movie_title"])
            )

    retrieval = RetrievalModel()
    retrieval.compile(optimizer=tf.keras.optimizers.Adagrad(0.5))
    data = tf.data.Dataset.from_tensor_slices({"user_id": users, "movie_title": movies})
    retrieval.fit(data.batch(32), epochs=3, verbose=0)
    index = tfrs.layers.factorized_top_k.BruteForce(retrieval.user_model, k=EXPORTED_K)
    index.index_from_dataset(
        tf.data.Dataset.from_tensor_slices(MOVIES)
        .batch(10)
        .map(lambda t: (t, retrieval.movie_model(t)))
    )
    index(tf.constant(["0"]))
    tf.saved_model.save(index, str(root / "index"))

    class RankingModel(tfrs.models.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_embeddings = tf.keras.Sequential(
                [tf.keras.layers.StringLookup(vocabulary=USERS), tf.keras.layers.Embedding(21, 4)]
            )
            self.movie_embeddings = tf.keras.Sequential(
                [tf.keras.layers.StringLookup(vocabulary=MOVIES), tf.keras.layers.Embedding(31, 4)]
            )
            self.ratings = tf.keras.Sequential(
                [tf.keras.layers.Dense(8, activation="relu"), tf.keras.layers.Dense(1)]
            )
            self.task = tfrs.tasks.Ranking(loss=tf.keras.losses.MeanSquaredError())

        def call(self, features):
            user = self.user_embeddings(features["user_id"])
            movie = self.movie_embeddings(features["movie_title"])
            return self.ratings(tf.concat([user, movie], axis=1))

        def compute_loss(self, features, training=False):
            labels = features.pop("rating")
            return self.task(labels=labels, predictions=self(features))

    ranking = RankingModel()
    ranking.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    rated = tf.data.Dataset.from_tensor_slices(
        {"user_id": users, "movie_title": movies, "rating": ratings}
    )
    ranking.fit(rated.batch(64), epochs=2, verbose=0)
    tf.saved_model.save(ranking, str(root / "ranking"))

    def dense_tower(width: int):
        tower = tf.keras.Sequential(
            [
                tf.keras.Input(shape=(3,)),
                tf.keras.layers.Dense(width, activation="relu"),
                tf.keras.layers.Dense(1),
            ]
        )
        return tower

    tower = dense_tower(4)
    tower.save(str(root / "tower.keras"))
    tower.save_weights(str(root / "checkpoint" / "w"))
    dense_tower(5).save(str(root / "wider_tower.keras"))
    int_tower = tf.keras.Sequential(
        [
            tf.keras.layers.IntegerLookup(vocabulary=list(range(100, 120)), mask_token=0),
            tf.keras.layers.Embedding(22, 3),
        ]
    )
    int_tower(tf.constant([101], dtype=tf.int64))
    int_tower.save(str(root / "int_tower"), save_format="tf")
    return Models(
        index=root / "index",
        index_torchrs=_convert(root / "index", root / "index_torchrs"),
        ranking=root / "ranking",
        ranking_torchrs=_convert(root / "ranking", root / "ranking_torchrs"),
        tower=root / "tower.keras",
        tower_torchrs=_convert(root / "tower.keras", root / "tower_torchrs"),
        wider_tower=root / "wider_tower.keras",
        int_tower=root / "int_tower",
        int_tower_torchrs=_convert(root / "int_tower", root / "int_tower_torchrs"),
        checkpoint=root / "checkpoint",
    )


def _validate(capsys, *args: object) -> tuple[int, str, str]:
    status = main(["validate", *(str(a) for a in args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _figures(report: Path) -> dict:
    return json.loads((report / "figures.json").read_text())


@pytest.mark.tf
def test_index_passes_on_sampled_queries(models, tmp_path, capsys) -> None:
    status, out, _ = _validate(capsys, models.index, models.index_torchrs, "--report", tmp_path)
    assert status == 0, out
    assert f"PASS: 0 failed check(s). Report: {tmp_path / 'report.md'}" in out
    report = (tmp_path / "report.md").read_text()
    assert "| scenario | check | TFRS | torchrs | difference | tolerance | result |" in report
    assert f"top-{EXPORTED_K} ids: fraction of 22 queries agreeing (ties aside)" in report
    part = _figures(tmp_path)["parts"]["index"]
    # Sampled: the 20 vocabulary users, one unknown user and the empty string (both the OOV row of the
    # embedding table: the lookup has no mask token).
    assert part["input_shape"] == [22]
    assert part["top_k"]["identical_fraction"] == 1.0
    # Measured: top-5 scores and query embeddings identical to the bit (the same 8-float dot products);
    # 1.2e-7 for a 4-query batch (test_inputs_file_object_and_bare_array).
    assert part[f"top-{EXPORTED_K} scores"]["max_abs"][0] <= 1e-6
    inputs = json.loads((tmp_path / "inputs.json").read_text())
    assert inputs["queries"][:3] == ["0", "1", "2"] and len(inputs["queries"]) == 22
    assert inputs["queries"][-1] == ""


@pytest.mark.tf
def test_ranking_model_passes_for_every_tower(models, tmp_path, capsys) -> None:
    status, out, _ = _validate(capsys, models.ranking, models.ranking_torchrs, "--report", tmp_path)
    assert status == 0, out
    parts = _figures(tmp_path)["parts"]
    assert sorted(parts) == ["movie_embeddings", "ratings", "user_embeddings"]
    # The rating head takes the concatenated embeddings (8 floats), sampled standard normal.
    assert parts["ratings"]["input_shape"] == [256, 8]
    for part in parts.values():
        assert part["passed"]
        # Measured: 0 for the embedding lookups (a row copy), 9.5e-7 for the rating head (two Dense layers,
        # float32 summation order, predictions ~1); 5e-6 leaves room for another BLAS.
        assert part["outputs"]["max_abs"][0] <= 5e-6


@pytest.mark.tf
def test_keras_archive_tower_passes(models, tmp_path, capsys) -> None:
    status, out, _ = _validate(
        capsys, models.tower, models.tower_torchrs, "--report", tmp_path, "--num-samples", "64"
    )
    assert status == 0, out
    assert _figures(tmp_path)["parts"]["tower"]["input_shape"] == [64, 3]


@pytest.mark.tf
def test_keras_saved_model_integer_tower_passes(models, tmp_path, capsys) -> None:
    status, out, _ = _validate(
        capsys, models.int_tower, models.int_tower_torchrs, "--report", tmp_path
    )
    assert status == 0, out
    part = _figures(tmp_path)["parts"]["tower"]
    # The 20 vocabulary integers and one unknown (max + 1 = 120); the vocabulary read from TF's table.
    assert part["input_shape"] == [21] and part["vocabulary"]["same_index"] == 20
    assert json.loads((tmp_path / "inputs.json").read_text())["inputs"][-2:] == [119, 120]


def _rewrite_safetensors(directory: Path, edit) -> None:
    from safetensors import safe_open
    from safetensors.numpy import save_file

    file = directory / "model.safetensors"
    with safe_open(str(file), framework="numpy") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    edit(tensors)
    save_file(tensors, str(file), metadata=metadata)


@pytest.mark.tf
@pytest.mark.numerics
def test_one_perturbed_weight_fails_the_tower_that_holds_it(models, tmp_path, capsys) -> None:
    corrupted = tmp_path / "ranking_torchrs"
    shutil.copytree(models.ranking_torchrs, corrupted)

    def perturb(tensors: dict) -> None:
        tensors["ratings.1.bias"][0] += (
            1e-3  # the rating head's bias: every prediction moves by 1e-3
        )

    _rewrite_safetensors(corrupted, perturb)
    status, out, _ = _validate(capsys, models.ranking, corrupted, "--report", tmp_path / "report")
    assert status == EXIT_FAILED
    failing = [line for line in out.splitlines() if line.endswith("FAIL")]
    assert failing and all(line.startswith("ratings ") for line in failing), out
    assert any("outputs (256x1): values within" in line for line in failing)
    parts = _figures(tmp_path / "report")["parts"]
    assert not parts["ratings"]["passed"]
    # 1e-3 > atol + rtol * |prediction| = 1e-5 + 1e-5 * |p| for every |p| < 99: all 256 predictions are outside.
    assert parts["ratings"]["outputs"]["outside"] == 256
    # The largest difference is the 1e-3 shift plus what the unperturbed conversion already differs by,
    # which the default tolerance bounds (atol + rtol * |TFRS| = 1e-5 + 1e-5 * |p|: torch and TF sum
    # the Dense layers in their own, CPU-dependent order; measured 1.4e-6 on an AMD EPYC). Not rel=1e-3:
    # that assumed one CPU's rounding.
    max_abs, tf_value, _ = parts["ratings"]["outputs"]["max_abs"]
    assert abs(max_abs - 1e-3) <= 1e-5 + 1e-5 * abs(tf_value)
    assert parts["user_embeddings"]["passed"] and parts["movie_embeddings"]["passed"]
    assert "FAIL: " in out and "Report: " in out


@pytest.mark.tf
def test_swapped_vocabulary_entries_fail_vocabulary_scores_and_top_k(
    models, tmp_path, capsys
) -> None:
    corrupted = tmp_path / "index_torchrs"
    shutil.copytree(models.index_torchrs, corrupted)

    def swap_users(tensors: dict) -> None:
        prefix = "query_model.0."
        blob = tensors[prefix + "token_bytes"].tobytes()
        offsets = tensors[prefix + "token_offsets"]
        tokens = [blob[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        a, b = tokens.index(b"3"), tokens.index(b"7")
        tokens[a], tokens[b] = tokens[b], tokens[a]
        tensors[prefix + "token_bytes"] = np.frombuffer(b"".join(tokens), np.uint8).copy()

    _rewrite_safetensors(corrupted, swap_users)
    status, out, _ = _validate(capsys, models.index, corrupted, "--report", tmp_path / "report")
    assert status == EXIT_FAILED
    failing = [line for line in out.splitlines() if line.endswith("FAIL")]
    assert any("StringLookup vocabulary: tokens at the same index" in line for line in failing), out
    assert any(
        f"top-{EXPORTED_K} scores (22x{EXPORTED_K}): values within" in line for line in failing
    )
    assert any(f"top-{EXPORTED_K} ids" in line for line in failing), out
    top_k = _figures(tmp_path / "report")["parts"]["index"]["top_k"]
    # Users 3 and 7 get each other's embedding; every other query is untouched.
    assert sorted(d["query"] for d in top_k["disagreements"]) == ["3", "7"]
    assert "queries whose top-5 disagree" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.tf
def test_inputs_file_object_and_bare_array(models, tmp_path, capsys) -> None:
    queries = ["3", "7", "nobody", "3"]
    for payload in ({"queries": queries}, queries):
        file = tmp_path / "queries.json"
        file.write_text(json.dumps(payload))
        report = tmp_path / "report"
        status, out, _ = _validate(
            capsys,
            models.index,
            models.index_torchrs,
            "--inputs",
            file,
            "--k",
            3,
            "--report",
            report,
        )
        assert status == 0, out
        part = _figures(report)["parts"]["index"]
        assert part["input_shape"] == [4] and part["input_source"] == f"--inputs {file}"
        assert part["top_k"]["k"] == 3 and part["top_k"]["exported_k"] == EXPORTED_K
        assert json.loads((report / "inputs.json").read_text()) == {"queries": queries}


@pytest.mark.tf
def test_inputs_file_names_some_parts_the_rest_are_sampled(models, tmp_path, capsys) -> None:
    file = tmp_path / "inputs.json"
    file.write_text(json.dumps({"ratings": [[0.5] * 8, [-1.0] * 8]}))
    status, out, _ = _validate(
        capsys, models.ranking, models.ranking_torchrs, "--inputs", file, "--report", tmp_path / "r"
    )
    assert status == 0, out
    parts = _figures(tmp_path / "r")["parts"]
    assert parts["ratings"]["input_shape"] == [2, 8]
    assert parts["user_embeddings"]["input_source"].startswith("sampled (seed 0)")


def _error(capsys, *args: object) -> str:
    status, out, err = _validate(capsys, *args)
    assert status == EXIT_USAGE, out + err
    assert err.startswith("parity: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.tf
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "is not JSON"),
        (
            '{"users": ["3"]}',
            r"names inputs ['users'] that the model does not have; its inputs are ['queries']",
        ),
        ('{"queries": [3, 7]}', "must hold strings (the TF model takes string); got 3"),
        ('{"queries": []}', "must be a non-empty JSON array"),
        ('{"queries": [["3"], ["7", "8"]]}', "rows of different lengths"),
        ('{"queries": [["3"], ["7"]]}', "has shape (2, 1); the TF model takes (N)"),
        ('"3"', "holds a JSON str; expected an object with the input names ['queries']"),
    ],
)
def test_bad_inputs_file_is_a_usage_error(
    models, tmp_path, capsys, payload: str, message: str
) -> None:
    file = tmp_path / "inputs.json"
    file.write_text(payload)
    err = _error(capsys, models.index, models.index_torchrs, "--inputs", file, "--report", tmp_path)
    assert message in err
    assert not (tmp_path / "report.md").exists()


@pytest.mark.tf
def test_missing_paths_are_usage_errors(models, tmp_path, capsys) -> None:
    err = _error(capsys, tmp_path / "nowhere", models.index_torchrs)
    assert "TF_MODEL_DIR" in err and "nowhere" in err and "does not exist" in err
    err = _error(capsys, models.index, tmp_path / "nowhere")
    assert "TORCHRS_DIR" in err and "is not a directory" in err
    err = _error(capsys, models.index, models.index)  # the TF export is no torchrs checkpoint
    assert "no torchrs.json" in err
    err = _error(capsys, models.index, models.index_torchrs, "--inputs", tmp_path / "none.json")
    assert "does not exist or is not a file" in err


@pytest.mark.tf
def test_different_models_are_usage_errors(models, tmp_path, capsys) -> None:
    err = _error(capsys, models.ranking, models.index_torchrs)
    assert "hold different models: the model is an index in torchrs but not in TF" in err
    err = _error(capsys, models.index, models.ranking_torchrs)
    assert "hold different models: the TF model has no part 'user_embeddings'" in err
    err = _error(capsys, models.index, models.tower_torchrs)
    assert "the model is a Sequential in torchrs but an index in TF" in err
    err = _error(capsys, models.wider_tower, models.tower_torchrs)
    # Dense(3 -> 5) + Dense(5 -> 1) = 20 + 6 weights in TF; Dense(3 -> 4) + Dense(4 -> 1) = 16 + 5 in torchrs.
    assert "the model has 26 trainable weights in TF and 21 in torchrs" in err


@pytest.mark.tf
def test_other_usage_errors(models, tmp_path, capsys) -> None:
    # A TF checkpoint is no usage error any more: its weights are compared (test_validate_checkpoint.py).
    status, out, _ = _validate(
        capsys, models.checkpoint, models.tower_torchrs, "--report", tmp_path
    )
    assert status == 0 and "not compared: outputs" in out
    err = _error(capsys, models.index, models.index_torchrs, "--k", EXPORTED_K + 1)
    assert f"exported with k={EXPORTED_K}" in err and f"--k {EXPORTED_K} or less" in err
    err = _error(capsys, models.index, models.index_torchrs, "--num-samples", 0)
    assert "--num-samples must be at least 1 (got 0)" in err
    err = _error(capsys, models.index, models.index_torchrs, "--atol", -1)
    assert "--rtol and --atol must be finite and >= 0" in err


@pytest.mark.tf
def test_normalization_tower_sampled_around_its_statistics(tf, tmp_path, capsys) -> None:
    from converters.tfrs_to_torch.cli import main as convert

    tf.keras.utils.set_random_seed(2)
    tower = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(2,)),
            tf.keras.layers.Normalization(mean=[100.0, -5.0], variance=[400.0, 0.25]),
            tf.keras.layers.Dense(3),
        ]
    )
    tower.save(str(tmp_path / "norm.keras"))
    assert convert([str(tmp_path / "norm.keras"), "--out", str(tmp_path / "norm_torchrs")]) == 0
    status, out, _ = _validate(
        capsys, tmp_path / "norm.keras", tmp_path / "norm_torchrs", "--report", tmp_path / "r"
    )
    assert status == 0, out
    part = _figures(tmp_path / "r")["parts"]["tower"]
    # The engine draws mean + sqrt(variance) * N(0, 1), as the converter's own check does.
    assert "around the Normalization's mean and variance" in part["input_source"]
    inputs = np.array(json.loads((tmp_path / "r" / "inputs.json").read_text())["inputs"])
    # 256 draws: the column means land within 4 standard errors (20 / 16 * 4 = 5, 0.5 / 16 * 4 = 0.125).
    assert abs(inputs[:, 0].mean() - 100.0) < 5.0 and abs(inputs[:, 1].mean() + 5.0) < 0.125
