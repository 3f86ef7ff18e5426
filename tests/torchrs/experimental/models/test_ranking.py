"""experimental.models.Ranking: structure, hand-derived losses, and TFRS's fit as the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from torchrs.experimental.models import Ranking
from torchrs.experimental.models.ranking import keras_graph_binary_crossentropy
from torchrs.layers.blocks import MLP
from torchrs.layers.embedding import Embedding
from torchrs.layers.feature_interaction import DotInteraction
from torchrs.losses import MeanSquaredError
from torchrs.optim import SGD
from torchrs.tasks import Ranking as RankingTask

SIZES = {"c": 9, "a": 10, "b": 7}  # deliberately unsorted: TFRS orders embeddings by sorted key


class EmbeddingDict(nn.Module):
    """``{name: ids (B,)} -> {name: (B, D)}``, one Keras-style table per feature."""

    def __init__(self, sizes: dict[str, int], dim: int) -> None:
        super().__init__()
        self.tables = nn.ModuleDict({name: Embedding(n, dim) for name, n in sizes.items()})

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: self.tables[name](ids) for name, ids in inputs.items()}


def _features(batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "dense_features": torch.from_numpy(rng.uniform(size=(batch, 5)).astype(np.float32)),
        "sparse_features": {
            k: torch.from_numpy(rng.integers(0, n, batch)) for k, n in SIZES.items()
        },
    }


# ---------------------------------------------------------------------------------------------- structure
def test_defaults_are_tfrs() -> None:
    model = Ranking(EmbeddingDict(SIZES, 16))
    assert isinstance(model._bottom_stack, MLP) and isinstance(model._top_stack, MLP)
    assert [layer.units for layer in model._bottom_stack._sublayers] == [256, 64, 16]
    assert [layer.units for layer in model._top_stack._sublayers] == [512, 256, 1]
    assert model._bottom_stack._sublayers[-1].activation is torch.relu
    assert model._top_stack._sublayers[-1].activation is torch.sigmoid
    assert isinstance(model._feature_interaction, DotInteraction)
    assert isinstance(model._task, RankingTask)
    model(_features(4))
    # Bottom: 5 -> 256 -> 64 -> 16. Top input: 16 dense + C(4, 2) = 6 dot products of 4 features = 22.
    assert model._top_stack._sublayers[0].weight.shape == (512, 22)


def test_embeddings_are_ordered_by_sorted_key_and_batch_of_one_works() -> None:
    seen = []

    class Record(nn.Module):
        def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
            seen.append([tuple(x.shape) for x in inputs])
            return torch.cat(inputs, dim=1)

    class Embed(nn.Module):
        def forward(self, sparse: dict) -> dict:
            # (B, 1, D) embeddings with D = key-dependent size so the order is visible.
            return {
                k: torch.ones(v.shape[0], 1, {"a": 2, "b": 3, "c": 4}[k]) for k, v in sparse.items()
            }

    model = Ranking(
        Embed(), bottom_stack=MLP([5]), feature_interaction=Record(), top_stack=MLP([1])
    )
    out = model(_features(1))
    # tf.nest.flatten orders dicts by key: a, b, c, then the dense embedding; (1, 1, D) -> (1, D), batch kept.
    assert seen == [[(1, 2), (1, 3), (1, 4), (1, 5)]]
    assert out.shape == (1,)


def test_trainable_variable_split() -> None:
    model = Ranking(EmbeddingDict(SIZES, 16))
    model(_features(2))
    embedding = model.embedding_trainable_variables
    dense = model.dense_trainable_variables
    assert len(embedding) == 3 and len(dense) == 12  # 3 tables; 6 Dense layers x (kernel, bias)
    assert {id(p) for p in embedding} | {id(p) for p in dense} == {
        id(p) for p in model.parameters()
    }
    assert not {id(p) for p in embedding} & {id(p) for p in dense}


# ------------------------------------------------------------------------------------------------- losses
def test_graph_mode_binary_crossentropy_values() -> None:
    # TF's fit folds log((1 - p) + 1e-7) into log((1 + 1e-7) - p), 1 + 1e-7 rounded to float32 = 1 + 2^-23.
    one_plus_eps = 1.0 + 2.0**-23
    p_max = float(np.float32(1 - 1e-7))  # the clip bound, in float32
    y = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    p = torch.tensor([[1.0], [0.5], [0.5], [0.0]])
    # Row 1: 15.2492, where eager Keras gives -log(1 - p_max + 1e-7) = 15.3332.
    expected = [
        -math.log(one_plus_eps - p_max),
        -math.log(0.5 + 1e-7),
        -math.log(one_plus_eps - 0.5),
        -math.log(1e-7 + 1e-7),  # p clipped up to 1e-7, then + 1e-7 inside the log
    ]
    got = keras_graph_binary_crossentropy(y, p)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert got[0].item() == pytest.approx(15.2492, abs=1e-4)


def test_compute_loss_reproduces_keras_batch_mean_and_weight_quirk() -> None:
    # A zero top stack predicts sigmoid(0) = 0.5 for everyone, so each example costs ~log 2; the (B,) labels
    # make Keras average the batch inside the loss, and weights (B, 1) then multiply that one number:
    # loss = mean(bce) * mean(w) = log(2) * (1 + 3) / 2.
    model = Ranking(EmbeddingDict(SIZES, 16))
    features = _features(2)
    model(features)
    with torch.no_grad():
        for p in model._top_stack.parameters():
            p.zero_()
    bce = -math.log(1.0 + 2.0**-23 - 0.5) / 2 - math.log(0.5 + 1e-7) / 2  # labels (0, 1)
    labels = torch.tensor([0.0, 1.0])
    assert model.compute_loss((features, labels)).item() == pytest.approx(bce, rel=1e-6)
    # Calling the model on a tuple returns the loss.
    weighted = model((features, labels, torch.tensor([[1.0], [3.0]])))
    assert weighted.item() == pytest.approx(bce * 2.0, rel=1e-6)
    names = model.metric_results()
    assert list(names) == ["auc", "accuracy", "prediction_mean", "label_mean"]


def test_custom_task_and_fit() -> None:
    model = Ranking(EmbeddingDict(SIZES, 16), task=RankingTask(loss=MeanSquaredError()))
    batch = (_features(8), torch.linspace(0, 1, 8))
    model(batch[0])
    model.compile(optimizer=lambda params: SGD(params, learning_rate=0.1))
    history = model.fit([batch] * 3, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert history.history["loss"][1] < history.history["loss"][0]


def test_bad_inputs() -> None:
    model = Ranking(EmbeddingDict(SIZES, 16))
    features = _features(2)
    with pytest.raises(ValueError, match="tuple of \\(features, labels\\).*Got a length 4 tuple"):
        model.compute_loss((features, 1, 2, 3))
    with pytest.raises(ValueError, match="Got a length 1 list"):
        model([features])
    with pytest.raises(
        ValueError, match="'dense_features' and 'sparse_features', got \\['dense_features'\\]"
    ):
        model({"dense_features": features["dense_features"]})
    with pytest.raises(TypeError, match="`embedding_layer` must be a module"):
        Ranking(None)  # type: ignore[arg-type]
    bad = Ranking(lambda sparse: 3)  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="must return tensors .* got int"):
        bad(features)


# --------------------------------------------------------------------------------------- TFRS reference
def _tf_embedding_layer(tf, sizes: dict[str, int], dim: int):
    class TFEmbeddingDict(tf.keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.tables = {k: tf.keras.layers.Embedding(n, dim) for k, n in sizes.items()}

        def call(self, inputs):
            return {k: self.tables[k](v) for k, v in inputs.items()}

    return TFEmbeddingDict()


def _copy_tf_weights(tf_model, model: Ranking) -> None:
    state = {
        f"_embedding_layer.tables.{k}.weight": torch.from_numpy(table.embeddings.numpy())
        for k, table in tf_model._embedding_layer.tables.items()
    }
    for stack in ("_bottom_stack", "_top_stack"):
        for i, dense in enumerate(getattr(tf_model, stack)._sublayers):
            state[f"{stack}._sublayers.{i}.weight"] = torch.from_numpy(
                dense.kernel.numpy().T.copy()
            )
            state[f"{stack}._sublayers.{i}.bias"] = torch.from_numpy(dense.bias.numpy())
    model.load_state_dict(state, strict=True)


def _tf_weight(tf_model, name: str) -> np.ndarray:
    parts = name.split(".")
    if parts[0] == "_embedding_layer":
        return tf_model._embedding_layer.tables[parts[2]].embeddings.numpy()
    dense = getattr(tf_model, parts[0])._sublayers[int(parts[2])]
    return dense.kernel.numpy().T if parts[3] == "weight" else dense.bias.numpy()


# Tolerances (float32). Predictions: derived in the test from the last layer's terms (sigmoid's slope
# times a few ulps of |h| . |w| + |b|). The logged loss / metrics: <= 3.4e-7 relative measured, we allow
# 1e-6 (the project's state tolerance). The SGD step each weight took (lr x gradient, compared as the
# step, not the weight: the weight's own magnitude says nothing about the gradient's rounding):
# measured <= 6.6e-6 of the tensor's largest step over these cases, on an AMD EPYC (Zen 3) both plainly
# and with MKL_CBWR=COMPATIBLE TF_ENABLE_ONEDNN_OPTS=0 (oneDNN, MKL and Eigen each sum the batch and the
# layer widths in their own order, and the saturated cases amplify the logits ~100x); we allow 2e-5 of
# it (~340 float32 ulps of the largest step; a missing sample weight or a mean for a sum is off by
# >10%). Elementwise relative bounds would be wrong for entries near 0.
#
# `saturate` rescales the last Dense layer so that the examples' logits are either <= 4 or >= 18: the
# latter give probabilities above the clip bound 1 - 1e-7, where eager Keras and fit disagree (by up to
# 0.5% per example) and fit is the reference. Logits in between are avoided on purpose: there 1 - p has
# few significant bits in float32, and TF's sigmoid (Eigen's approximation) and torch's differ by an ulp,
# which moves -log(1 - p) by up to 1e-3; no float32 implementation can be held to 1e-6 there.
STEP_RTOL = 2e-5  # see above: 3x the worst step error measured across CPU code paths


@pytest.mark.tf
@pytest.mark.numerics
@pytest.mark.parametrize(
    ("seed", "saturate", "weighted"),
    [(0, False, False), (2, False, True), (1, True, False), (3, True, True)],
)
def test_matches_tfrs_fit(tf, tfrs, seed: int, saturate: bool, weighted: bool) -> None:
    rng = np.random.default_rng(seed)
    batch = 16
    dense = rng.uniform(size=(batch, 5)).astype(np.float32)
    sparse = {k: rng.integers(0, n, batch) for k, n in SIZES.items()}
    labels = rng.integers(0, 2, batch).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, (batch, 1)).astype(np.float32)
    features = {"dense_features": dense, "sparse_features": sparse}
    tf.keras.utils.set_random_seed(seed)
    tf_model = tfrs.experimental.models.Ranking(_tf_embedding_layer(tf, SIZES, 16))
    unscaled = tf_model(features).numpy()  # builds the model
    if saturate:
        p = unscaled.astype(np.float64)
        logits = np.sort(np.log(p) - np.log1p(-p))
        split = len(logits) // 2 + int(np.argmax(np.diff(logits)[len(logits) // 2 :]))
        low, high = logits[split], logits[split + 1]  # the widest gap in the upper half
        scale = (18.0 - 4.0) / (high - low)
        last = tf_model._top_stack._sublayers[-1]
        last.kernel.assign(last.kernel * scale)
        last.bias.assign(last.bias * scale + (4.0 - scale * low))
    model = Ranking(EmbeddingDict(SIZES, 16))
    _copy_tf_weights(tf_model, model)

    torch_features = {
        "dense_features": torch.from_numpy(dense),
        "sparse_features": {k: torch.from_numpy(v) for k, v in sparse.items()},
    }
    tf_predictions = tf_model(features).numpy()
    last_inputs: list[torch.Tensor] = []
    hook = model._top_stack._sublayers[-1].register_forward_hook(
        lambda _module, args, _output: last_inputs.append(args[0].detach())
    )
    predictions = model(torch_features).detach().numpy()
    hook.remove()
    # Predictions = sigmoid(z), z = h . w + b from the last Dense. Rounding anywhere below (6 Dense
    # layers, summed in another order by oneDNN than by torch's MKL, per CPU) reaches z as a few ulps
    # of the magnitude of its terms, L = sum_j |h_j w_j| + |b|; measured |dz| <= 5 u L on an Intel
    # Xeon and an AMD EPYC (u = 2^-24), we allow 32 u L. `saturate` multiplies w and b, hence L, by up
    # to ~100: fixed atol (1e-6) held on one CPU and not on another. The probability moves by
    # p (1 - p) |dz| (sigmoid's slope), plus 4 ulps of p for the sigmoid itself (TF's is Eigen's
    # approximation, torch's its own).
    last = model._top_stack._sublayers[-1]
    terms = (last_inputs[0].abs() @ last.weight.detach().abs().T + last.bias.detach().abs()).numpy()
    p = tf_predictions.astype(np.float64)
    bound = p * (1 - p) * 32 * 2.0**-24 * terms + 4 * np.spacing(tf_predictions)
    assert np.all(np.abs(predictions - tf_predictions) <= bound), (
        np.abs(predictions - tf_predictions) / bound
    ).max()
    if saturate:
        clipped = tf_predictions > 1 - 1e-7
        assert clipped.sum() >= 1
        # Confidently wrong: -log((1 + eps) - p) is where eager Keras and fit disagree.
        labels[clipped] = 0.0

    initial = {name: param.detach().numpy().copy() for name, param in model.named_parameters()}
    learning_rate = 0.05
    tf_model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate))
    data = (features, labels, weights) if weighted else (features, labels)
    tf_history = tf_model.fit(
        tf.data.Dataset.from_tensor_slices(data).batch(batch), epochs=1, verbose=0
    )
    model.compile(optimizer=lambda params: SGD(params, learning_rate=learning_rate))
    torch_data = (torch_features, torch.from_numpy(labels))
    torch_data += (torch.from_numpy(weights),) if weighted else ()
    history = model.fit([torch_data], epochs=1, verbose=0)

    assert sorted(history.history) == sorted(tf_history.history)
    for name, values in tf_history.history.items():
        assert history.history[name][0] == pytest.approx(values[0], rel=1e-6, abs=1e-7), name
    if saturate:  # the eager formula (what torchrs.losses.BinaryCrossentropy computes) differs here
        eager = float(tf.keras.losses.BinaryCrossentropy()(labels, tf_predictions).numpy())
        assert abs(eager - tf_history.history["loss"][0]) > 1e-3
    for name, param in model.named_parameters():
        expected = _tf_weight(tf_model, name)
        step, tf_step = param.detach().numpy() - initial[name], expected - initial[name]
        # The SGD step (lr x gradient) against Keras's, relative to the tensor's largest step, plus
        # one ulp of the weight: each side rounds w - lr * g to float32 (half an ulp each).
        atol = STEP_RTOL * float(np.abs(tf_step).max()) + np.spacing(np.abs(expected))
        assert np.all(np.abs(step - tf_step) <= atol), (name, np.abs(step - tf_step).max())
