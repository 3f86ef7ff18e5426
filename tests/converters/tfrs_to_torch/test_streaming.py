"""``tfrs.layers.factorized_top_k.Streaming`` exports -> ``torchrs.layers.factorized_top_k.Streaming``.

``Streaming`` keeps the ``tf.data.Dataset`` given to ``index_from_dataset``, not variables;
``tf.saved_model.save`` serialises that dataset (its graph, constants included) under
``_candidates/_variant_tracker``. The converter rebuilds it, reads every batch once and gives the
torchrs index the same batches, so top-K merging (and its tie order) is the same.

Identifiers must be identical for every query, except that candidates whose scores lie within the
score tolerance of each other may come in either order: a duplicated candidate (placed in another
batch on purpose) is an exact tie only when both copies are summed in the same order, and BLAS picks
the order by the row's place in the block and by the CPU (AVX2 / AVX-512, MKL_CBWR), so TF and
torch can each break it by a last-bit difference. The tie rule itself, on exact ties, is tested in
``tests/torchrs/functional/test_top_k.py``. Scores to 1e-6: one float32 dot product of 6 terms per
score, summed in another order by torch (observed differences 0 to 2.4e-10 on these sizes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from converters.tfrs_to_torch.cli import main
from torchrs.io import load
from torchrs.layers.factorized_top_k import Streaming

pytestmark = pytest.mark.tf

TOL = 1e-6  # see module docstring
USERS = [str(i) for i in range(20)]
MOVIES = [f"movie {i}" for i in range(30)]
QUERIES = [*USERS, "42", "not a user"]


def _convert(source: Path, out: Path, *extra: str) -> int:
    return main([str(source), "--out", str(out), "--json", *extra])


def _decode(ids: np.ndarray) -> np.ndarray:
    if ids.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8", "surrogateescape"), otypes=[object])(ids)
    return ids.astype(np.int64)


@pytest.fixture(scope="module")
def streaming(tf, tfrs, tmp_path_factory) -> dict[str, tuple[Any, Path]]:
    """name -> (TF index, converted torchrs directory), exported as the tutorial exports indexes."""
    root = tmp_path_factory.mktemp("streaming")
    tf.keras.utils.set_random_seed(21)
    user_model = tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=USERS),
            tf.keras.layers.Embedding(len(USERS) + 1, 8),
            tf.keras.layers.Dense(6),
        ]
    )
    movie_model = tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=MOVIES),
            tf.keras.layers.Embedding(len(MOVIES) + 1, 6),
        ]
    )
    embeddings = movie_model(tf.constant(MOVIES)).numpy()
    embeddings[17] = embeddings[3]  # a tie across batches: TFRS keeps the earlier candidate
    titles = tf.data.Dataset.from_tensor_slices((MOVIES, embeddings))
    numbered = tf.data.Dataset.from_tensor_slices((np.arange(100, 130, dtype=np.int64), embeddings))
    indexes = {
        "titles": tfrs.layers.factorized_top_k.Streaming(user_model).index_from_dataset(
            titles.batch(7)
        ),
        "numbered_k5": tfrs.layers.factorized_top_k.Streaming(user_model, k=5).index_from_dataset(
            numbered.batch(8)
        ),
        "positions": tfrs.layers.factorized_top_k.Streaming(user_model).index_from_dataset(
            tf.data.Dataset.from_tensor_slices(embeddings).batch(6)
        ),
    }
    out: dict[str, tuple[Any, Path]] = {}
    for name, index in indexes.items():
        index(tf.constant(["42"]))  # traces the call, as before any export
        tf.saved_model.save(index, str(root / name))
        assert _convert(root / name, root / f"{name}_torchrs") == 0, name
        out[name] = (index, root / f"{name}_torchrs")
    return out


@pytest.mark.numerics
@pytest.mark.parametrize("name", ["titles", "numbered_k5", "positions"])
def test_same_top_k_for_every_query(streaming, tf, name: str) -> None:
    tf_index, directory = streaming[name]
    index = load(directory)
    assert isinstance(index, Streaming)
    tf_scores, tf_ids = tf_index(tf.constant(QUERIES))
    scores, ids = index(QUERIES)
    k = 5 if name == "numbered_k5" else 10
    assert np.asarray(ids).shape == (len(QUERIES), k)
    got_ids = ids.numpy() if hasattr(ids, "numpy") else np.asarray(ids)
    np.testing.assert_allclose(scores.detach().numpy(), tf_scores.numpy(), atol=TOL, rtol=0)
    _assert_same_ranking(got_ids, _decode(tf_ids.numpy()), tf_scores.numpy())


def _assert_same_ranking(got: np.ndarray, expected: np.ndarray, scores: np.ndarray) -> None:
    """Ids equal position by position, except within runs of scores closer than TOL (near-ties).

    The last run may be cut by k (a near-tie with the (k+1)-th candidate, which the top k does not
    show): its members only need scores within TOL of TF's (checked on the scores already).
    """
    for row in range(len(expected)):
        start = 0
        while start < len(expected[row]):
            end = start + 1
            while end < len(expected[row]) and scores[row, end - 1] - scores[row, end] <= TOL:
                end += 1
            ours, theirs = list(got[row, start:end]), list(expected[row, start:end])
            if end < len(expected[row]):
                assert sorted(map(str, ours)) == sorted(map(str, theirs)), (row, ours, theirs)
            start = end


def test_answers_like_the_tfrs_export(streaming, tf) -> None:
    _, directory = streaming["titles"]
    index = load(directory)
    scores, ids = index(["42"], k=10)
    tf_scores, tf_ids = tf.saved_model.load(str(directory.parent / "titles"))(tf.constant(["42"]))
    assert ids.tolist() == _decode(tf_ids.numpy()).tolist()
    np.testing.assert_allclose(scores.detach().numpy(), tf_scores.numpy(), atol=TOL, rtol=0)
    _, every = index(["3"], k=len(MOVIES))  # the whole corpus, each candidate once
    assert sorted(every[0].tolist()) == sorted(MOVIES)
    tied = [m for m in every[0].tolist() if m in ("movie 3", "movie 17")]
    assert tied == ["movie 3", "movie 17"]  # equal scores: the earlier batch first, as in TF


def test_batches_config_and_report(streaming) -> None:
    _, directory = streaming["titles"]
    meta = json.loads((directory / "torchrs.json").read_text())
    assert meta["model_kind"] == "index"
    spec = meta["architecture"]
    assert spec["class_name"] == "Streaming" and spec["identifiers_dtype"] == "string"
    assert spec["config"] == {"k": 10, "handle_incomplete_batches": True, "sorted_order": True}
    assert meta["summary"]["max_abs_diff"]["<index>/ids_mismatch"] == 0
    entries = json.loads((directory / "report.json").read_text())["entries"]
    candidates = next(e for e in entries if e["source"] == "_candidates")
    assert candidates["shape"] == [30, 6] and "5 candidate batches" in candidates["reason"]
    counter = next(e for e in entries if e["source"].startswith("counter"))
    assert counter["status"] == "skipped"
    index = load(directory)
    assert [len(batch[1]) for batch in index._candidates] == [7, 7, 7, 7, 2]  # TF's batches


def test_tutorial_map_pipeline_cannot_be_exported_by_tf(tf, tfrs, tmp_path) -> None:
    # Evidence for the report: a Streaming index over `movies.map(movie_model)` (stateful: it
    # reads the tower's variables) cannot be written by tf.saved_model.save at all, so no such
    # export exists to convert; index precomputed embeddings (or export a BruteForce index).
    tower = tf.keras.Sequential([tf.keras.layers.Embedding(5, 3)])
    index = tfrs.layers.factorized_top_k.Streaming(k=2)
    ids = tf.data.Dataset.from_tensor_slices(tf.range(5, dtype=tf.int64))
    index.index_from_dataset(ids.batch(2).map(lambda t: (t, tower(t))))
    index(tf.zeros((1, 3)))
    with pytest.raises(Exception, match="is stateful"):
        tf.saved_model.save(index, str(tmp_path / "sm"))


def test_file_pipeline_and_its_missing_asset(tf, tfrs, tmp_path, capsys) -> None:
    # A pipeline reading a CSV file through a stateless map: tf.saved_model.save copies the file
    # into the export's assets/, so the export converts on its own, even with the original gone.
    rows = tmp_path / "candidates.csv"
    rows.write_text("\n".join(f"{i},{i * 0.5},{1 - i * 0.25}" for i in range(6)) + "\n")

    def parse(line: Any) -> Any:
        values = tf.strings.to_number(tf.strings.split(line, ","), tf.float32)
        return tf.cast(values[0], tf.int64), values[1:]

    index = tfrs.layers.factorized_top_k.Streaming(k=3)
    index.index_from_dataset(tf.data.TextLineDataset(str(rows)).map(parse).batch(4))
    queries = np.array([[1.0, 0.5], [-1.0, 2.0]], dtype=np.float32)
    tf_scores, tf_ids = index(queries)
    tf.saved_model.save(index, str(tmp_path / "sm"))
    rows.unlink()
    # A file-reading dataset is outside the pure-op allow-list: refused unless trusted (issue 11).
    assert _convert(tmp_path / "sm", tmp_path / "out") == 2
    assert "TextLineDataset" in capsys.readouterr().err
    trusted = ["--trust-model"]
    assert main([str(tmp_path / "sm"), "--out", str(tmp_path / "out"), "--json", *trusted]) == 0
    scores, ids = load(tmp_path / "out")(queries)
    assert ids.tolist() == tf_ids.numpy().tolist()
    np.testing.assert_allclose(scores.numpy(), tf_scores.numpy(), atol=TOL, rtol=0)
    # The export copied without its assets: the rows are nowhere; say so, write nothing.
    for asset in (tmp_path / "sm" / "assets").iterdir():
        asset.unlink()
    assert main([str(tmp_path / "sm"), "--out", str(tmp_path / "out2"), *trusted]) == 2
    err = capsys.readouterr().err
    assert "candidate dataset of the Streaming index at <root> cannot be read back" in err
    assert "BruteForce" in err and "Traceback" not in err
    assert not (tmp_path / "out2").exists()


def test_unindexed_streaming_export(tf, tfrs, tmp_path, capsys) -> None:
    tower = tf.keras.Sequential([tf.keras.layers.Dense(2)])
    tower(tf.zeros((1, 3)))
    tf.saved_model.save(tfrs.layers.factorized_top_k.Streaming(tower), str(tmp_path / "sm"))
    assert _convert(tmp_path / "sm", tmp_path / "out", "--graph", "never") == 2
    err = capsys.readouterr().err
    assert "holds no candidate dataset" in err and "index_from_dataset" in err
    assert not (tmp_path / "out").exists()
