"""``parity validate`` on a converted ``Streaming`` index: the same index handling as the converter's verification
(both ask ``torchrs.io.registry.is_index``), so an index the converter verifies is one validate can sign off."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from parity.cli import main

pytestmark = pytest.mark.tf

USERS = [str(i) for i in range(12)]
MOVIES = [f"movie {i}" for i in range(25)]
EXPORTED_K = 4


@pytest.fixture(scope="module")
def streaming(tf, tfrs, tmp_path_factory) -> tuple[Path, Path]:
    from converters.tfrs_to_torch.cli import main as convert

    root = tmp_path_factory.mktemp("validate_streaming")
    tf.keras.utils.set_random_seed(5)
    user_model = tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=USERS),
            tf.keras.layers.Embedding(len(USERS) + 1, 6),
        ]
    )
    embeddings = np.random.default_rng(5).normal(size=(len(MOVIES), 6)).astype(np.float32)
    index = tfrs.layers.factorized_top_k.Streaming(user_model, k=EXPORTED_K)
    index.index_from_dataset(tf.data.Dataset.from_tensor_slices((MOVIES, embeddings)).batch(7))
    index(tf.constant(["3"]))
    tf.saved_model.save(index, str(root / "streaming"))
    assert convert([str(root / "streaming"), "--out", str(root / "streaming_torchrs")]) == 0
    return root / "streaming", root / "streaming_torchrs"


def test_streaming_index_passes_on_sampled_queries(streaming, tmp_path, capsys) -> None:
    tf_dir, torchrs_dir = streaming
    status = main(["validate", str(tf_dir), str(torchrs_dir), "--report", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    report = (tmp_path / "report.md").read_text()
    # Every user, one unknown user and the empty string (the comparison engine's probes).
    assert (
        f"top-{EXPORTED_K} ids: fraction of {len(USERS) + 2} queries agreeing (ties aside)"
        in report
    )
    figures = json.loads((tmp_path / "figures.json").read_text())["parts"]["index"]
    assert figures["top_k"]["agreeing_fraction_ties_aside"] == 1.0
