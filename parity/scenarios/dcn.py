"""The deep & cross network tutorial (TFRS ``docs/examples/dcn.ipynb``) in TFRS and in torchrs.

Six features: ``movie_id``, ``user_id``, ``user_zip_code``, ``user_occupation_text`` (``StringLookup``) and
``user_gender``, ``bucketized_user_age`` (``IntegerLookup``), each with ``mask_token=None`` and an
``Embedding(len + 1, 32)``; concatenated (192 wide), crossed by a full-rank
``Cross(projection_dim=None, kernel_initializer="glorot_uniform")``, then ``Dense(192, relu)`` twice and
``Dense(1)``. ``Ranking(MSE, metrics=[RootMeanSquaredError("RMSE")])``; Adam(0.01); batch 8192; test batch 4096;
8 epochs. The tutorial casts gender and age bucket to integers; so do both sides here. Lock-step parity feeds
both frameworks the same unshuffled batches (the tutorial shuffles).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

import torchrs as trs
from torchrs.layers.feature_interaction import Cross
from torchrs.preprocessing import IntegerLookup, StringLookup

STR_FEATURES = ("movie_id", "user_id", "user_zip_code", "user_occupation_text")
INT_FEATURES = ("user_gender", "bucketized_user_age")
# The tutorial's order of concatenation: string features first, then integer features.
ALL_FEATURES = STR_FEATURES + INT_FEATURES
# The tutorial's deep part: two Dense(192, relu) layers, then Dense(1).
DEEP_LAYER_SIZES = (192, 192)


@dataclass(frozen=True)
class DCNConfig:
    """Hyper-parameters of the tutorial; the defaults are the tutorial's."""

    embedding_dimension: int = 32
    learning_rate: float = 0.01
    batch_size: int = 8192
    test_batch_size: int = 4096
    epochs: int = 8
    seed: int = 42


CONFIG = DCNConfig


@dataclass(frozen=True)
class DCNData:
    """Train / test feature columns (strings as ``str``, integer features as ``int64``) and vocabularies."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    vocabularies: dict[str, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        # The tutorial: np.unique over every rating's feature (here train and test).
        vocab = {
            name: np.unique(np.concatenate([self.train[name], self.test[name]]))
            for name in ALL_FEATURES
        }
        object.__setattr__(self, "vocabularies", vocab)


def make_data(train: Any, test: Any, movies: Any = None) -> DCNData:
    """Selects and casts the tutorial's columns from the harness's train / test ``Ratings`` (movies unused)."""

    def cols(split: Any) -> dict[str, np.ndarray]:
        out = {name: np.asarray(split[name]).astype(str) for name in STR_FEATURES}
        for name in INT_FEATURES:
            out[name] = np.asarray(split[name]).astype(np.int64)
        out["user_rating"] = np.asarray(split["user_rating"], np.float32)
        return out

    return DCNData(cols(train), cols(test))


def columns(data: DCNData, split: str) -> dict[str, np.ndarray]:
    """The columns of ``split`` ("train" or "test") as both frameworks consume them."""
    return getattr(data, split)


# ----------------------------------------------------------------------------------------------- torchrs
class TorchDCN(trs.Model):
    """The tutorial's ``DCN(use_cross_layer=True, deep_layer_sizes=[192, 192])`` in torchrs."""

    def __init__(self, data: DCNData, config: DCNConfig) -> None:
        super().__init__()
        dim = config.embedding_dimension
        self._embeddings = nn.ModuleDict()
        for name in ALL_FEATURES:
            vocabulary = data.vocabularies[name]
            lookup = StringLookup if name in STR_FEATURES else IntegerLookup
            self._embeddings[name] = nn.Sequential(
                lookup(vocabulary=vocabulary, mask_token=None),
                trs.layers.Embedding(len(vocabulary) + 1, dim),
            )
        width = dim * len(ALL_FEATURES)
        self._cross_layer = Cross(
            projection_dim=None, kernel_initializer="glorot_uniform", input_dim=width
        )
        sizes = (width, *DEEP_LAYER_SIZES)
        self._deep_layers = nn.ModuleList(
            [
                trs.layers.Dense(out, activation="relu", input_dim=inp)
                for inp, out in itertools.pairwise(sizes)
            ]
        )
        self._logit_layer = trs.layers.Dense(1, input_dim=sizes[-1])
        self.task = trs.tasks.Ranking(
            loss=trs.losses.MeanSquaredError(),
            metrics=[trs.metrics.RootMeanSquaredError("RMSE")],
        )

    def call(self, features: dict[str, Any]) -> torch.Tensor:
        x = torch.cat([self._embeddings[n](features[n]) for n in ALL_FEATURES], dim=1)  # (B, 192)
        x = self._cross_layer(x)  # (B, 192)
        for layer in self._deep_layers:
            x = layer(x)  # (B, 192)
        return self._logit_layer(x)  # (B, 1)

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> torch.Tensor:
        return self.task(labels=features["user_rating"], predictions=self.call(features))


def build_torch(data: DCNData, config: DCNConfig) -> TorchDCN:
    """Builds the torchrs model, initialised like Keras."""
    return TorchDCN(data, config)


def torch_parameters(model: TorchDCN) -> dict[str, nn.Parameter]:
    """Canonical name -> torch parameter (``.kernel`` names hold ``weight [out, in]``)."""
    # Each feature's tower: lookup, embedding.
    out = {f"embedding.{n}": model._embeddings[n].get_parameter("1.weight") for n in ALL_FEATURES}
    # get_parameter types them Parameter (KerasDense declares its lazily built weights uninitialised).
    out["cross._dense.kernel"] = model._cross_layer.get_parameter("_dense.weight")
    out["cross._dense.bias"] = model._cross_layer.get_parameter("_dense.bias")
    for i, layer in enumerate([*model._deep_layers, model._logit_layer]):
        out[f"dense_{i}.kernel"] = layer.weight
        out[f"dense_{i}.bias"] = layer.bias
    return out


def torch_optimizer(params: Any, config: DCNConfig) -> torch.optim.Optimizer:
    return trs.optim.Adam(params, learning_rate=config.learning_rate)


@torch.no_grad()
def torch_outputs(model: TorchDCN, data: DCNData, config: DCNConfig, device: torch.device) -> dict:
    """Rating predictions for every test example."""
    test = {
        k: torch.tensor(v, device=device) if v.dtype.kind in "fiu" else v
        for k, v in data.test.items()
    }
    return {"predictions": model.call(test).cpu().numpy().reshape(-1)}


# -------------------------------------------------------------------------------------------------- TFRS
def build_tf(data: DCNData, config: DCNConfig) -> Any:
    """Builds the tutorial's TFRS model (TensorFlow imported here, never by torchrs)."""
    from parity._tf import import_tf

    tfrs: Any  # declared Any (TF has no type stubs) so that mypy accepts TF base classes
    tf, tfrs = import_tf()
    tf.keras.utils.set_random_seed(config.seed)
    dim = config.embedding_dimension

    class DCN(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self._embeddings = {}
            for name in ALL_FEATURES:
                vocabulary = data.vocabularies[name]
                if name in STR_FEATURES:
                    lookup = tf.keras.layers.StringLookup(vocabulary=vocabulary, mask_token=None)
                else:
                    lookup = tf.keras.layers.IntegerLookup(vocabulary=vocabulary, mask_token=None)
                self._embeddings[name] = tf.keras.Sequential(
                    [lookup, tf.keras.layers.Embedding(len(vocabulary) + 1, dim)]
                )
            self._cross_layer = tfrs.layers.dcn.Cross(
                projection_dim=None, kernel_initializer="glorot_uniform"
            )
            self._deep_layers = [
                tf.keras.layers.Dense(size, activation="relu") for size in DEEP_LAYER_SIZES
            ]
            self._logit_layer = tf.keras.layers.Dense(1)
            self.task = tfrs.tasks.Ranking(
                loss=tf.keras.losses.MeanSquaredError(),
                metrics=[tf.keras.metrics.RootMeanSquaredError("RMSE")],
            )

        def call(self, features: dict[str, Any]) -> Any:
            x = tf.concat([self._embeddings[n](features[n]) for n in ALL_FEATURES], axis=1)
            x = self._cross_layer(x)
            for layer in self._deep_layers:
                x = layer(x)
            return self._logit_layer(x)

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            return self.task(labels=features["user_rating"], predictions=self(features))

    model = DCN()
    # Build every variable now (Keras builds lazily), so initial weights can be read before training.
    model({k: tf.constant(v[:1]) for k, v in data.train.items()})
    return model


def tf_variables(model: Any) -> dict[str, Any]:
    """Canonical name -> Keras variable (kernels ``[in, out]``)."""
    out = {f"embedding.{n}": model._embeddings[n].layers[-1].embeddings for n in ALL_FEATURES}
    out["cross._dense.kernel"] = model._cross_layer._dense.kernel
    out["cross._dense.bias"] = model._cross_layer._dense.bias
    for i, layer in enumerate([*model._deep_layers, model._logit_layer]):
        out[f"dense_{i}.kernel"] = layer.kernel
        out[f"dense_{i}.bias"] = layer.bias
    return out


def tf_optimizer(tf: Any, config: DCNConfig) -> Any:
    return tf.keras.optimizers.Adam(learning_rate=config.learning_rate)


def tf_outputs(model: Any, data: DCNData, config: DCNConfig) -> dict:
    """Rating predictions for every test example."""
    from parity._tf import import_tf

    tf, _ = import_tf()
    test = {k: tf.constant(v) for k, v in data.test.items()}
    return {"predictions": model(test).numpy().reshape(-1)}
