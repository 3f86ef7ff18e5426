"""A corpus of TFRS model shapes, trained a few steps on synthetic MovieLens and exported the way
most TFRS projects export: ``tf.saved_model.save`` (with and without explicit ``signatures=``).

Each builder returns ``(export_dir, inputs)``: the SavedModel and a dict of raw inputs (by signature
input name) to serve it with, unknown tokens included.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

N_USERS = 40
N_MOVIES = 60
N_RATINGS = 512
BATCH = 128
DIM = 8


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = rng.zipf(1.6, N_RATINGS) % N_USERS
    movies = rng.zipf(1.4, N_RATINGS) % N_MOVIES
    return {
        "user_id": np.array([str(u) for u in users]),
        "movie_id": movies.astype(np.int64),
        "movie_title": np.array(
            [f"Movie {m} the {'great' if m % 3 else 'small'} story (199{m % 10})" for m in movies]
        ),
        "timestamp": (8.8e8 + rng.integers(0, 10_000_000, N_RATINGS)).astype(np.int64),
        "user_rating": rng.integers(1, 6, N_RATINGS).astype(np.float32),
        "user_gender": rng.integers(0, 2, N_RATINGS).astype(bool),
        "user_occupation_text": np.array(
            [["writer", "artist", "doctor", "other"][i] for i in rng.integers(0, 4, N_RATINGS)]
        ),
    }


def _serve_rows(data: dict[str, np.ndarray], keys: list[str], n: int = 24) -> dict[str, np.ndarray]:
    out = {k: data[k][-n:].copy() for k in keys}
    for k in keys:
        if out[k].dtype.kind == "U":
            out[k][0] = "a token no vocabulary has"
        elif out[k].dtype.kind == "i" and k != "timestamp":
            out[k][0] = 10_000
    return out


def _fit(
    tf: Any,
    model: Any,
    data: dict[str, np.ndarray],
    keys: list[str],
    loss: Callable[..., Any] | None = None,
) -> None:
    """A few training steps (Adagrad 0.1) so that weights move from their initial values."""
    ds = tf.data.Dataset.from_tensor_slices({k: data[k] for k in keys}).batch(BATCH)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    model.fit(ds, epochs=1, verbose=0)


def _string_tower(tf: Any, vocab: np.ndarray, dim: int = DIM) -> Any:
    return tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=vocab, mask_token=None),
            tf.keras.layers.Embedding(len(vocab) + 1, dim),
        ]
    )


def two_tower_side_features(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Subclassed retrieval model: user id + timestamp (Normalization, Discretization) | title
    (TextVectorization with bigrams -> mask_zero Embedding -> GlobalAveragePooling1D)."""
    data = _data(1)
    users = np.unique(data["user_id"])
    ts = data["timestamp"].astype(np.float64)
    buckets = np.linspace(ts.min(), ts.max(), num=20)

    class UserModel(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.ids = _string_tower(tf, users)
            self.norm = tf.keras.layers.Normalization(axis=None)
            self.norm.adapt(ts)
            self.disc = tf.keras.Sequential(
                [
                    tf.keras.layers.Discretization(buckets.tolist()),
                    tf.keras.layers.Embedding(len(buckets) + 1, DIM),
                ]
            )

        def call(self, inputs: Any) -> Any:
            return tf.concat(
                [
                    self.ids(inputs["user_id"]),
                    self.disc(inputs["timestamp"]),
                    tf.reshape(self.norm(inputs["timestamp"]), (-1, 1)),
                ],
                axis=1,
            )

    class MovieModel(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.text = tf.keras.layers.TextVectorization(max_tokens=200, ngrams=2)
            self.text.adapt(data["movie_title"])
            self.emb = tf.keras.layers.Embedding(200, DIM, mask_zero=True)
            self.pool = tf.keras.layers.GlobalAveragePooling1D()
            self.dense = tf.keras.layers.Dense(2 * DIM + 1)

        def call(self, titles: Any) -> Any:
            return self.dense(self.pool(self.emb(self.text(titles))))

    class Model(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.query_model = UserModel()
            self.candidate_model = MovieModel()
            self.task = tfrs.tasks.Retrieval()

        def compute_loss(self, features: Any, training: bool = False) -> Any:
            q = self.query_model(
                {"user_id": features["user_id"], "timestamp": features["timestamp"]}
            )
            c = self.candidate_model(features["movie_title"])
            return self.task(q, c)

    model = Model()
    _fit(tf, model, data, ["user_id", "timestamp", "movie_title"])
    export = root / "two_tower_side_features"

    class Serving(tf.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int64)]
        )
        def query(self, user_id: Any, timestamp: Any) -> Any:
            return {
                "query_embedding": self.model.query_model(
                    {"user_id": user_id, "timestamp": timestamp}
                )
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def candidate(self, movie_title: Any) -> Any:
            return {"candidate_embedding": self.model.candidate_model(movie_title)}

    serving = Serving(model)
    tf.saved_model.save(
        serving, str(export), signatures={"query": serving.query, "candidate": serving.candidate}
    )
    return export, _serve_rows(data, ["user_id", "timestamp", "movie_title"])


def _save_keras(tf: Any, model: Any, export: Path, signatures: Any = None) -> None:
    if signatures is None:
        tf.saved_model.save(model, str(export))
    else:
        tf.saved_model.save(model, str(export), signatures=signatures)


def ranking_subclassed(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The ranking tutorial's shape: subclassed, default signature (no ``signatures=``)."""
    data = _data(2)

    class Ranking(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.users = _string_tower(tf, np.unique(data["user_id"]))
            self.movies = _string_tower(tf, np.unique(data["movie_title"]))
            self.mlp = tf.keras.Sequential(
                [
                    tf.keras.layers.Dense(16, activation="relu"),
                    tf.keras.layers.Dense(8, activation="relu"),
                    tf.keras.layers.Dense(1),
                ]
            )
            self.task = tfrs.tasks.Ranking(loss=tf.keras.losses.MeanSquaredError())

        def call(self, features: Any) -> Any:
            return self.mlp(
                tf.concat(
                    [self.users(features["user_id"]), self.movies(features["movie_title"])], axis=1
                )
            )

        def compute_loss(self, features: Any, training: bool = False) -> Any:
            return self.task(labels=features["user_rating"], predictions=self(features))

    model = Ranking()
    _fit(tf, model, data, ["user_id", "movie_title", "user_rating"])
    model({"user_id": data["user_id"][:2], "movie_title": data["movie_title"][:2]})
    export = root / "ranking_subclassed"
    _save_keras(tf, model, export)
    # Keras traced call() on the features fit() gave it: the signature takes the rating too.
    return export, _serve_rows(data, ["user_id", "movie_title", "user_rating"])


def functional_multi_input(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A functional ranking model with three inputs (string, int64, bool), explicit signature."""
    data = _data(3)
    user = tf.keras.Input(shape=(), dtype=tf.string, name="user_id")
    movie = tf.keras.Input(shape=(), dtype=tf.int64, name="movie_id")
    gender = tf.keras.Input(shape=(), dtype=tf.bool, name="user_gender")
    u = _string_tower(tf, np.unique(data["user_id"]))(user)
    m = tf.keras.layers.Embedding(N_MOVIES + 1, DIM)(
        tf.keras.layers.IntegerLookup(vocabulary=np.arange(N_MOVIES, dtype=np.int64))(movie)
    )
    g = tf.keras.layers.Reshape((1,))(
        tf.keras.layers.Lambda(lambda x: tf.cast(x, tf.float32))(gender)
    )
    x = tf.keras.layers.Concatenate()([u, m, g])
    out = tf.keras.layers.Dense(1)(tf.keras.layers.Dense(8, activation="elu")(x))
    model = tf.keras.Model([user, movie, gender], out)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1), loss="mse")
    model.fit(
        [data["user_id"], data["movie_id"], data["user_gender"]],
        data["user_rating"],
        batch_size=BATCH,
        verbose=0,
    )

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string),
            tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([None], tf.bool),
        ]
    )
    def serve(user_id: Any, movie_id: Any, user_gender: Any) -> Any:
        return {"rating": model([user_id, movie_id, user_gender])}

    export = root / "functional_multi_input"
    _save_keras(tf, model, export, {"serving_default": serve})
    return export, _serve_rows(data, ["user_id", "movie_id", "user_gender"])


def l2_normalized_tower(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A query tower ending in a Lambda ``tf.math.l2_normalize`` (default signature)."""
    data = _data(4)
    tower = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.string),
            tf.keras.layers.StringLookup(vocabulary=np.unique(data["user_id"]), mask_token=None),
            tf.keras.layers.Embedding(N_USERS + 1, DIM),
            tf.keras.layers.Dense(DIM, activation="tanh"),
            tf.keras.layers.Lambda(lambda x: tf.math.l2_normalize(x, axis=1)),
        ]
    )
    export = root / "l2_normalized_tower"
    _save_keras(tf, tower, export)
    return export, _serve_rows(data, ["user_id"])


def dense_with_regularizer(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Dense layers with ``kernel_regularizer`` (L2 / L1) over float features, explicit signature."""
    rng = np.random.default_rng(5)
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(6,)),
            tf.keras.layers.Dense(
                12, activation="selu", kernel_regularizer=tf.keras.regularizers.L2(1e-3)
            ),
            tf.keras.layers.Dense(
                4, activation="softplus", kernel_regularizer=tf.keras.regularizers.L1(1e-4)
            ),
            tf.keras.layers.Dense(3, activation="softmax"),
        ]
    )
    x = rng.normal(size=(256, 6)).astype(np.float32)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(x, np.eye(3, dtype=np.float32)[rng.integers(0, 3, 256)], verbose=0, batch_size=64)

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
    def serve(features: Any) -> Any:
        return {"probabilities": model(features)}

    export = root / "dense_with_regularizer"
    _save_keras(tf, model, export, {"serving_default": serve})
    return export, {"features": rng.normal(size=(20, 6)).astype(np.float32)}


def dcn(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Deep & Cross: stacked full-rank and low-rank Cross layers, then an MLP (default signature)."""
    data = _data(6)

    class DCN(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.users = _string_tower(tf, np.unique(data["user_id"]))
            self.occupations = _string_tower(tf, np.unique(data["user_occupation_text"]))
            self.cross1 = tfrs.layers.dcn.Cross(kernel_initializer="glorot_uniform")
            self.cross2 = tfrs.layers.dcn.Cross(
                projection_dim=4, kernel_initializer="glorot_uniform"
            )
            self.deep = tf.keras.layers.Dense(16, activation="relu")
            self.out = tf.keras.layers.Dense(1)
            self.task = tfrs.tasks.Ranking(loss=tf.keras.losses.MeanSquaredError())

        def call(self, features: Any) -> Any:
            x0 = tf.concat(
                [
                    self.users(features["user_id"]),
                    self.occupations(features["user_occupation_text"]),
                ],
                axis=1,
            )
            x = self.cross2(x0, self.cross1(x0))
            return self.out(self.deep(x))

        def compute_loss(self, features: Any, training: bool = False) -> Any:
            return self.task(labels=features["user_rating"], predictions=self(features))

    model = DCN()
    keys = ["user_id", "user_occupation_text"]
    _fit(tf, model, data, [*keys, "user_rating"])
    model({k: data[k][:2] for k in keys})
    export = root / "dcn"
    _save_keras(tf, model, export)
    return export, _serve_rows(data, [*keys, "user_rating"])


def dlrm(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """DLRM: bottom MLP over dense features, embeddings, DotInteraction, top MLP (sigmoid)."""
    data = _data(7)
    rng = np.random.default_rng(7)
    dense = rng.normal(size=(N_RATINGS, 4)).astype(np.float32)

    class DLRM(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.bottom = tf.keras.Sequential(
                [
                    tf.keras.layers.Dense(16, activation="relu"),
                    tf.keras.layers.Dense(DIM, activation="relu"),
                ]
            )
            self.users = _string_tower(tf, np.unique(data["user_id"]))
            self.movies = tf.keras.Sequential(
                [tf.keras.layers.Hashing(num_bins=32), tf.keras.layers.Embedding(32, DIM)]
            )
            self.interaction = tfrs.layers.feature_interaction.DotInteraction()
            self.top = tf.keras.Sequential(
                [
                    tf.keras.layers.Dense(8, activation="relu"),
                    tf.keras.layers.Dense(1, activation="sigmoid"),
                ]
            )

        def call(self, inputs: Any) -> Any:
            d = self.bottom(inputs["dense"])
            x = self.interaction(
                [d, self.users(inputs["user_id"]), self.movies(inputs["movie_title"])]
            )
            return self.top(tf.concat([d, x], axis=1))

    model = DLRM()
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1), loss="binary_crossentropy")
    features = {"dense": dense, "user_id": data["user_id"], "movie_title": data["movie_title"]}
    model.fit(features, (data["user_rating"] > 3).astype(np.float32), batch_size=BATCH, verbose=0)

    @tf.function(
        input_signature=[
            {
                "dense": tf.TensorSpec([None, 4], tf.float32, name="dense"),
                "user_id": tf.TensorSpec([None], tf.string, name="user_id"),
                "movie_title": tf.TensorSpec([None], tf.string, name="movie_title"),
            }
        ]
    )
    def serve(inputs: Any) -> Any:
        return {"click_probability": model(inputs)}

    export = root / "dlrm"
    _save_keras(tf, model, export, {"serving_default": serve})
    rows = _serve_rows(data, ["user_id", "movie_title"])
    rows["dense"] = dense[-24:]
    return export, rows


def multitask(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The multitask tutorial: shared towers, a rating head; both outputs in one signature."""
    data = _data(8)

    class Multitask(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.users = _string_tower(tf, np.unique(data["user_id"]))
            self.movies = _string_tower(tf, np.unique(data["movie_title"]))
            self.rating = tf.keras.Sequential(
                [tf.keras.layers.Dense(16, activation="relu"), tf.keras.layers.Dense(1)]
            )
            self.rating_task = tfrs.tasks.Ranking(loss=tf.keras.losses.MeanSquaredError())
            self.retrieval_task = tfrs.tasks.Retrieval()

        def call(self, features: Any) -> Any:
            u = self.users(features["user_id"])
            m = self.movies(features["movie_title"])
            return u, m, self.rating(tf.concat([u, m], axis=1))

        def compute_loss(self, features: Any, training: bool = False) -> Any:
            u, m, r = self(features)
            return self.rating_task(
                labels=features["user_rating"], predictions=r
            ) + self.retrieval_task(u, m)

    model = Multitask()
    _fit(tf, model, data, ["user_id", "movie_title", "user_rating"])

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)]
    )
    def serve(user_id: Any, movie_title: Any) -> Any:
        u, m, r = model({"user_id": user_id, "movie_title": movie_title})
        return {
            "user_embedding": u,
            "movie_embedding": m,
            "rating": r,
            "score": tf.reduce_sum(u * m, axis=1),
        }

    export = root / "multitask"
    _save_keras(tf, model, export, {"serving_default": serve})
    # The model's own call was traced on fit()'s features: it takes the rating too.
    return export, _serve_rows(data, ["user_id", "movie_title", "user_rating"])


def gru_sequential(
    tf: Any, tfrs: Any, root: Path, recurrent: str = "GRU"
) -> tuple[Path, dict[str, np.ndarray]]:
    """Sequential retrieval: a query tower over the last 5 movie ids (Embedding + GRU)."""
    rng = np.random.default_rng(9)
    history = rng.integers(1, N_MOVIES, (N_RATINGS, 5)).astype(np.int64)
    target = rng.integers(1, N_MOVIES, N_RATINGS).astype(np.int64)
    query = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(5,), dtype=tf.int64),
            tf.keras.layers.IntegerLookup(
                vocabulary=np.arange(1, N_MOVIES, dtype=np.int64), mask_token=None
            ),
            tf.keras.layers.Embedding(N_MOVIES + 1, DIM),
            getattr(tf.keras.layers, recurrent)(DIM),
        ]
    )
    candidate = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.int64),
            tf.keras.layers.IntegerLookup(
                vocabulary=np.arange(1, N_MOVIES, dtype=np.int64), mask_token=None
            ),
            tf.keras.layers.Embedding(N_MOVIES + 1, DIM),
        ]
    )

    class Seq(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.query, self.candidate = query, candidate
            self.task = tfrs.tasks.Retrieval()

        def compute_loss(self, features: Any, training: bool = False) -> Any:
            return self.task(self.query(features["history"]), self.candidate(features["target"]))

    model = Seq()
    _fit(tf, model, {"history": history, "target": target}, ["history", "target"])
    export = root / f"{recurrent.lower()}_sequential"
    _save_keras(tf, query, export)
    return export, {"history": np.concatenate([history[-23:], [[1, 2, 3, 99, 4]]]).astype(np.int64)}


def lstm_sequential(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The sequential tower with an LSTM (Keras's other RNN loop)."""
    return gru_sequential(tf, tfrs, root, recurrent="LSTM")


def brute_force_index(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """An exported BruteForce index over a subclassed query model (the retrieval tutorial's export)."""
    data = _data(10)
    titles = np.unique(data["movie_title"])

    class Query(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.ids = _string_tower(tf, np.unique(data["user_id"]))
            self.dense = tf.keras.layers.Dense(DIM)

        def call(self, user_id: Any) -> Any:
            return self.dense(self.ids(user_id))

    query = Query()
    movies = _string_tower(tf, titles, DIM)

    class Model(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.query, self.movies = query, movies
            self.task = tfrs.tasks.Retrieval()

        def compute_loss(self, features: Any, training: bool = False) -> Any:
            return self.task(self.query(features["user_id"]), self.movies(features["movie_title"]))

    model = Model()
    _fit(tf, model, data, ["user_id", "movie_title"])
    index = tfrs.layers.factorized_top_k.BruteForce(query, k=5)
    index.index_from_dataset(
        tf.data.Dataset.from_tensor_slices(titles).batch(16).map(lambda t: (t, movies(t)))
    )
    index(tf.constant(["1"]))
    export = root / "brute_force_index"
    _save_keras(tf, index, export)
    return export, _serve_rows(data, ["user_id"])


def integer_lookup_int32(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """An IntegerLookup over int32 ids (cast to int64 in the signature), then an embedding + Dense."""
    data = _data(11)

    class Tower(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lookup = tf.keras.layers.IntegerLookup(
                vocabulary=np.arange(0, N_MOVIES, 2, dtype=np.int64), num_oov_indices=2
            )
            self.embedding = tf.keras.layers.Embedding(N_MOVIES // 2 + 2, DIM)
            self.dense = tf.keras.layers.Dense(4, activation="relu6")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="movie_id")])
        def __call__(self, movie_id: Any) -> Any:
            return {
                "embedding": self.dense(self.embedding(self.lookup(tf.cast(movie_id, tf.int64))))
            }

    tower = Tower()
    tower(tf.constant([1, 2], tf.int32))
    export = root / "integer_lookup_int32"
    tf.saved_model.save(tower, str(export), signatures={"serving_default": tower.__call__})
    rows = data["movie_id"][-24:].astype(np.int32)
    rows[0] = 10_001
    return export, {"movie_id": rows}


def hashing(tf: Any, tfrs: Any, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Hashing (FarmHash64) of zip codes into 64 bins, salted hashing of occupations, embeddings."""
    data = _data(12)
    zips = np.array([f"{z:05d}" for z in np.random.default_rng(12).integers(0, 99_999, N_RATINGS)])
    zip_in = tf.keras.Input(shape=(), dtype=tf.string, name="zip")
    occ_in = tf.keras.Input(shape=(), dtype=tf.string, name="occupation")
    z = tf.keras.layers.Embedding(64, DIM)(tf.keras.layers.Hashing(num_bins=64)(zip_in))
    o = tf.keras.layers.Embedding(16, DIM)(
        tf.keras.layers.Hashing(num_bins=16, salt=[7, 11])(occ_in)
    )
    model = tf.keras.Model([zip_in, occ_in], tf.keras.layers.Add()([z, o]))
    export = root / "hashing"
    _save_keras(tf, model, export)
    return export, {"zip": zips[-24:], "occupation": data["user_occupation_text"][-24:]}


CORPUS: dict[str, Callable[..., tuple[Path, dict[str, np.ndarray]]]] = {
    "two_tower_side_features": two_tower_side_features,
    "ranking_subclassed": ranking_subclassed,
    "functional_multi_input": functional_multi_input,
    "l2_normalized_tower": l2_normalized_tower,
    "dense_with_regularizer": dense_with_regularizer,
    "dcn": dcn,
    "dlrm": dlrm,
    "multitask": multitask,
    "gru_sequential": gru_sequential,
    "lstm_sequential": lstm_sequential,
    "brute_force_index": brute_force_index,
    "integer_lookup_int32": integer_lookup_int32,
    "hashing": hashing,
}
