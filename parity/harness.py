"""Lock-step parity: the same model in TFRS and in torchrs, same initial weights, same batches, checked step by step.

For each scenario the harness

1. loads the MovieLens split both frameworks use (the embedded synthetic set, or ``--data DIR``);
2. builds the TFRS model (seeded) and reads its initial Keras variables;
3. builds the torchrs model and copies those variables in (embedding tables as they are, Dense kernels
   ``[in, out]`` transposed into ``weight [out, in]``);
4. trains both on the identical batches in the identical order (no shuffling), recording every step's loss and time;
5. evaluates both, queries a BruteForce index for every user (retrieval) and predicts every test rating (ranking);
6. compares everything against TFRS with the scenario's `parity.tolerances.ScenarioTolerances`.

A `Mutation` injects a deliberate bug into the torchrs side only (tests use it to prove the checks have teeth).

>>> sorted(SCENARIOS)
['basic_ranking', 'basic_retrieval', 'context_features', 'dcn', 'listwise', 'multitask', 'sequential_retrieval']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

import torchrs as trs
from converters.tfrs_to_torch import rules

# A report row is the comparison engine's record (one definition for the converter's report.json,
# parity run and parity validate).
from converters.tfrs_to_torch.compare import Check
from parity.scenarios import (
    basic_ranking,
    basic_retrieval,
    context_features,
    dcn,
    listwise,
    multitask,
    sequential_retrieval,
)
from parity.tolerances import TOLERANCES, ScenarioTolerances
from torchrs.data import movielens

# The tutorials split 100k ratings into 80k train / 20k test; --scale multiplies both (and the batch sizes).
TRAIN_SIZE = movielens.TUTORIAL_TRAIN_SIZE
TEST_SIZE = movielens.TUTORIAL_TEST_SIZE
# How many candidates the exported index returns per user (the tutorials' ``index(..., k=10)`` default).
TOP_K = 10
# Keras reports these alongside the metrics; they are 0 in every tutorial model, so they are not compared.
_UNCOMPARED_LOGS = ("regularization_loss", "total_loss")


class ParityUsageError(ValueError):
    """A user's mistake on the command line (unknown scenario, bad data path, bad scale); no traceback needed."""


# ------------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class Mutation:
    """A deliberate bug injected into the torchrs side, to prove the harness catches it.

    Args:
        name: short identifier.
        description: what the bug is.
        patch: called on the freshly built torchrs model before the weights are copied in.
        transpose_kernels: False reinterprets Keras ``[in, out]`` kernels as ``[out, in]`` (a reshape).
        optimizer: ``(params, learning_rate) -> Optimizer`` replacing ``torchrs.optim.Adagrad``.
    """

    name: str
    description: str
    patch: Callable[[nn.Module], None] | None = None
    transpose_kernels: bool = True
    optimizer: Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer] | None = None


@dataclass
class FrameworkRun:
    """What one framework did in lock-step: per-step losses and times, metrics, weights, outputs."""

    framework: str
    device: str
    step_losses: list[float]
    step_seconds: list[float]
    step_examples: list[int]
    eval_seconds: list[float]
    eval_examples: list[int]
    metrics: dict[str, float]
    weights: dict[str, np.ndarray]  # Keras layout (kernels [in, out])
    predictions: np.ndarray | None = None
    top_k_ids: np.ndarray | None = None  # (users, TOP_K) str
    initial_weights: dict[str, np.ndarray] = field(default_factory=dict)
    # Further named outputs compared with the predictions' tolerance (e.g. multitask's rating predictions).
    extra_predictions: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def train_examples_per_second(self) -> float:
        """Training examples per second, the first (warm-up / tracing) step excluded."""
        return _rate(self.step_examples, self.step_seconds)

    @property
    def eval_examples_per_second(self) -> float:
        """Evaluation examples per second, the first (warm-up / tracing) batch excluded."""
        return _rate(self.eval_examples, self.eval_seconds)


def _rate(examples: Sequence[int], seconds: Sequence[float]) -> float:
    if len(seconds) > 1:
        examples, seconds = examples[1:], seconds[1:]
    total = float(sum(seconds))
    return float(sum(examples)) / total if total > 0 else float("nan")


@dataclass
class ScenarioResult:
    """A scenario's checks and both runs."""

    scenario: str
    config: dict[str, Any]
    tf_run: FrameworkRun
    torch_run: FrameworkRun
    checks: list[Check]
    mutation: str | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


@dataclass(frozen=True)
class Prepared:
    """A scenario ready to run: its data and (scaled) configuration."""

    scenario: str
    data: Any
    config: Any
    scale: float


# --------------------------------------------------------------------------------------------- preparing
def _scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale))


def _load(data_dir: str, table: Literal["ratings", "movies"] = "ratings") -> Any:
    try:
        return movielens.load(data_dir, table)
    except (FileNotFoundError, ValueError, TypeError) as err:
        raise ParityUsageError(f"--data {data_dir!r}: {err}") from err


def _split(data_dir: str, scale: float) -> tuple[Any, Any]:
    ratings = _load(data_dir)
    train, test = _scaled(TRAIN_SIZE, scale), _scaled(TEST_SIZE, scale)
    if train + test > len(ratings):
        raise ParityUsageError(
            f"--data {data_dir!r} holds {len(ratings)} ratings, fewer than the {train} + {test} the split "
            "needs; use a smaller --scale."
        )
    return movielens.shuffle_split(ratings, train, test)


@dataclass(frozen=True)
class SplitTables:
    """The rows a scenario is built from: the train / test split of the ratings and, where used, the movies."""

    train: movielens.Ratings
    test: movielens.Ratings
    movies: movielens.Movies | None


def _check_arguments(scenario: str, epochs: int | None, scale: float) -> None:
    if scenario not in SCENARIOS:
        raise ParityUsageError(
            f"Unknown scenario {scenario!r}; choose from: {', '.join(SCENARIOS)}."
        )
    if not (isinstance(scale, (int, float)) and 0 < scale <= 1):
        raise ParityUsageError(f"--scale must be in (0, 1] (got {scale!r}).")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise ParityUsageError(f"--epochs must be a positive integer (got {epochs!r}).")


def split_tables(
    scenario: str, data_dir: str = movielens.SYNTHETIC, scale: float = 1.0
) -> SplitTables:
    """Loads ``data_dir`` and splits it as the tutorials do, at ``scale`` (see `prepare`).

    Raises:
        ParityUsageError: unknown scenario, unreadable data, or a bad ``scale``.
    """
    _check_arguments(scenario, None, scale)
    train, test = _split(data_dir, scale)
    movies = None if scenario == "basic_ranking" else _load(data_dir, "movies")
    return SplitTables(train, test, movies)


def prepare(
    scenario: str,
    data_dir: str = movielens.SYNTHETIC,
    epochs: int | None = None,
    scale: float = 1.0,
) -> Prepared:
    """Loads the data of ``scenario`` and scales its configuration.

    ``scale`` multiplies the train / test sizes and the batch sizes (so the number of steps per epoch stays the
    tutorial's); ``epochs`` overrides the tutorial's epoch count.

    Raises:
        ParityUsageError: unknown scenario, unreadable data, or a bad ``scale`` / ``epochs``.
    """
    _check_arguments(scenario, epochs, scale)
    return prepare_tables(scenario, split_tables(scenario, data_dir, scale), epochs, scale)


def prepare_tables(
    scenario: str, tables: SplitTables, epochs: int | None = None, scale: float = 1.0
) -> Prepared:
    """`prepare` from already split ``tables`` (e.g. those stored in a `parity.record` record).

    Raises:
        ParityUsageError: unknown scenario, or a bad ``scale`` / ``epochs``.
    """
    _check_arguments(scenario, epochs, scale)
    train, test = tables.train, tables.test
    if scenario in _GENERIC:
        module = SCENARIOS[scenario]
        data: Any = module.make_data(train, test, tables.movies)
        config: Any = module.CONFIG()
    elif scenario == "basic_retrieval":
        if tables.movies is None:
            raise ParityUsageError("basic_retrieval needs the movies table (got none).")
        data = basic_retrieval.RetrievalData(
            train_user_ids=train["user_id"],
            train_movie_titles=train["movie_title"],
            test_user_ids=test["user_id"],
            test_movie_titles=test["movie_title"],
            movie_titles=tables.movies["movie_title"],
        )
        config = basic_retrieval.BasicRetrievalConfig()
    else:
        data = basic_ranking.RankingData(
            train_user_ids=train["user_id"],
            train_movie_titles=train["movie_title"],
            train_ratings=np.asarray(train["user_rating"], np.float32),
            test_user_ids=test["user_id"],
            test_movie_titles=test["movie_title"],
            test_ratings=np.asarray(test["user_rating"], np.float32),
        )
        config = basic_ranking.BasicRankingConfig()
    config = replace(
        config,
        batch_size=_scaled(config.batch_size, scale),
        test_batch_size=_scaled(config.test_batch_size, scale),
        epochs=epochs if epochs is not None else config.epochs,
    )
    return Prepared(scenario, data, config, float(scale))


# ------------------------------------------------------------------------------------ shared batch plumbing
def _columns(prepared: Prepared, split: str) -> dict[str, np.ndarray]:
    if prepared.scenario in _GENERIC:
        return SCENARIOS[prepared.scenario].columns(prepared.data, split)
    d = prepared.data
    cols = {
        "user_id": getattr(d, f"{split}_user_ids").astype(str),
        "movie_title": getattr(d, f"{split}_movie_titles").astype(str),
    }
    if prepared.scenario == "basic_ranking":
        cols["user_rating"] = getattr(d, f"{split}_ratings")
    return cols


def _num_rows(columns: dict[str, np.ndarray]) -> int:
    return len(next(iter(columns.values())))


def _sizes(n: int, batch_size: int) -> list[int]:
    return [min(batch_size, n - i) for i in range(0, n, batch_size)]


def _torch_batches(
    columns: dict[str, np.ndarray], batch_size: int, device: torch.device
) -> list[dict[str, Any]]:
    n = _num_rows(columns)
    out = []
    for i in range(0, n, batch_size):
        batch: dict[str, Any] = {}
        for name, values in columns.items():
            chunk = values[i : i + batch_size]
            batch[name] = torch.tensor(chunk, device=device) if chunk.dtype.kind in "fiu" else chunk
        out.append(batch)
    return out


# ------------------------------------------------------------------------------------------ weight maps
def _tf_variables(prepared: Prepared, model: Any) -> dict[str, Any]:
    """Canonical name -> Keras variable of the scenario's trainable weights."""
    if prepared.scenario == "basic_retrieval":
        return {
            "user_model.embedding": model.user_model.layers[-1].embeddings,
            "movie_model.embedding": model.movie_model.layers[-1].embeddings,
        }
    rm = model.ranking_model
    out = {
        "user_embeddings.embedding": rm.user_embeddings.layers[-1].embeddings,
        "movie_embeddings.embedding": rm.movie_embeddings.layers[-1].embeddings,
    }
    for i, layer in enumerate(rm.ratings.layers):
        out[f"ratings.dense_{i}.kernel"] = layer.kernel
        out[f"ratings.dense_{i}.bias"] = layer.bias
    return out


def _torch_parameters(
    model: basic_retrieval.TorchMovielensModel | basic_ranking.TorchMovielensRankingModel,
) -> dict[str, nn.Parameter]:
    """Canonical name -> torch parameter; names ending in ``.kernel`` are stored transposed (``weight``).

    Each tower is ``nn.Sequential(lookup, embedding)``: its table is the parameter ``1.weight``.
    """
    if isinstance(model, basic_retrieval.TorchMovielensModel):
        return {
            "user_model.embedding": model.user_model.get_parameter("1.weight"),
            "movie_model.embedding": model.movie_model.get_parameter("1.weight"),
        }
    rm = model.ranking_model
    out = {
        "user_embeddings.embedding": rm.user_embeddings.get_parameter("1.weight"),
        "movie_embeddings.embedding": rm.movie_embeddings.get_parameter("1.weight"),
    }
    for i, layer in enumerate(rm.ratings):
        out[f"ratings.dense_{i}.kernel"] = layer.get_parameter("weight")
        out[f"ratings.dense_{i}.bias"] = layer.get_parameter("bias")
    return out


@torch.no_grad()
def copy_keras_weights(
    parameters: dict[str, nn.Parameter],
    weights: dict[str, np.ndarray],
    *,
    transpose_kernels: bool = True,
) -> None:
    """Copies Keras-layout ``weights`` into torch ``parameters`` through the converter's mapping rules.

    A canonical name ends in the Keras variable attribute (``ratings.dense_0.kernel``); its layout change is the
    converter's rule for that attribute (:func:`converters.tfrs_to_torch.rules.attribute_rule`: kernels
    ``[in, out]`` -> ``weight [out, in]``), so a wrong converter rule is a parity failure.

    Raises:
        ValueError: a name missing on either side, or a shape that does not fit.
    """
    if set(parameters) != set(weights):
        raise ValueError(
            f"Weight names differ: torch-only {sorted(set(parameters) - set(weights))}, "
            f"Keras-only {sorted(set(weights) - set(parameters))}."
        )
    for name, param in parameters.items():
        array = np.asarray(weights[name])
        _, transpose = rules.attribute_rule(name.rpartition(".")[2]) or ("", False)
        if transpose and not transpose_kernels:
            # transpose_kernels=False is the classic converter bug: the memory reinterpreted, not transposed.
            array = np.ascontiguousarray(array).reshape(tuple(reversed(array.shape)))
        elif transpose:
            array = rules.apply_transpose(array, True)
        value = torch.from_numpy(np.ascontiguousarray(array))
        if tuple(value.shape) != tuple(param.shape):
            raise ValueError(
                f"{name}: Keras weight of shape {tuple(weights[name].shape)} does not fit the torch "
                f"parameter of shape {tuple(param.shape)}."
            )
        param.copy_(value.to(param.dtype))


def _export_torch_weights(parameters: dict[str, nn.Parameter]) -> dict[str, np.ndarray]:
    """The inverse of :func:`copy_keras_weights`'s layout change (a transpose is its own inverse)."""
    out = {}
    for name, param in parameters.items():
        _, transpose = rules.attribute_rule(name.rpartition(".")[2]) or ("", False)
        out[name] = rules.apply_transpose(param.detach().cpu().numpy(), transpose).copy()
    return out


# ---------------------------------------------------------------------------------------------- TF side
def run_tf_side(prepared: Prepared) -> FrameworkRun:
    """Builds, trains and evaluates the TFRS model on the prepared batches; records everything."""
    from parity._tf import import_tf

    tf: Any  # declared Any (TF has no type stubs) so that mypy accepts TF base classes
    tf, tfrs = import_tf()
    config = prepared.config
    module = SCENARIOS[prepared.scenario]
    model = module.build_tf(prepared.data, config)
    generic = prepared.scenario in _GENERIC
    variables = module.tf_variables(model) if generic else _tf_variables(prepared, model)
    initial = {name: v.numpy().copy() for name, v in variables.items()}
    if generic:
        model.compile(optimizer=module.tf_optimizer(tf, config))
    else:
        model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=config.learning_rate))

    train_cols, test_cols = _columns(prepared, "train"), _columns(prepared, "test")
    train = tf.data.Dataset.from_tensor_slices(train_cols).batch(config.batch_size).cache()
    test = tf.data.Dataset.from_tensor_slices(test_cols).batch(config.test_batch_size).cache()

    class StepRecorder(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.losses: list[float] = []
            self.train_seconds: list[float] = []
            self.test_seconds: list[float] = []
            self._start = 0.0

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.losses.append(float(logs["loss"]))
            self.train_seconds.append(time.perf_counter() - self._start)

        def on_test_batch_begin(self, batch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
            self.test_seconds.append(time.perf_counter() - self._start)

    recorder = StepRecorder()
    model.fit(train, epochs=config.epochs, verbose=0, callbacks=[recorder], shuffle=False)
    logs = model.evaluate(test, return_dict=True, verbose=0, callbacks=[recorder])

    predictions = top_k_ids = None
    extra: dict[str, np.ndarray] = {}
    if generic:
        outputs = module.tf_outputs(model, prepared.data, config)
        predictions, top_k_ids = outputs.pop("predictions"), outputs.pop("top_k_ids", None)
        extra = outputs
    elif prepared.scenario == "basic_retrieval":
        titles = prepared.data.movie_titles.astype(str)
        index = tfrs.layers.factorized_top_k.BruteForce(model.user_model, k=TOP_K)
        index.index_from_dataset(
            tf.data.Dataset.from_tensor_slices(titles)
            .batch(config.candidate_batch_size)
            .map(lambda t: (t, model.movie_model(t)))
        )
        scores, ids = index(tf.constant(prepared.data.unique_user_ids))
        predictions = scores.numpy()
        top_k_ids = np.char.decode(ids.numpy().astype(bytes), "utf-8")
    else:
        predictions = (
            model.ranking_model(
                (tf.constant(test_cols["user_id"]), tf.constant(test_cols["movie_title"]))
            )
            .numpy()
            .reshape(-1)
        )
    return FrameworkRun(
        framework="tfrs",
        device=", ".join(d.name for d in tf.config.list_logical_devices()) or "CPU",
        step_losses=recorder.losses,
        step_seconds=recorder.train_seconds,
        step_examples=_sizes(_num_rows(train_cols), config.batch_size) * config.epochs,
        eval_seconds=recorder.test_seconds,
        eval_examples=_sizes(_num_rows(test_cols), config.test_batch_size),
        metrics={k: float(v) for k, v in logs.items()},
        weights={name: v.numpy().copy() for name, v in variables.items()},
        predictions=predictions,
        top_k_ids=top_k_ids,
        initial_weights=initial,
        extra_predictions=extra,
    )


# ------------------------------------------------------------------------------------------- torch side
def run_torch_side(
    prepared: Prepared,
    initial_weights: dict[str, np.ndarray] | None,
    device: str = "cpu",
    mutation: Mutation | None = None,
) -> FrameworkRun:
    """Builds the torchrs model from TF's ``initial_weights``, trains and evaluates it in lock-step order.

    ``initial_weights=None`` keeps torchrs's own initialisation (seeded with ``config.seed``): independent mode.
    """
    config = prepared.config
    dev = torch.device(device)
    torch.manual_seed(config.seed)
    module = SCENARIOS[prepared.scenario]
    generic = prepared.scenario in _GENERIC
    model = module.build_torch(prepared.data, config)
    if mutation is not None and mutation.patch is not None:
        mutation.patch(model)
    parameters = module.torch_parameters(model) if generic else _torch_parameters(model)
    if initial_weights is not None:  # None: independent mode, torchrs's own Keras-like init
        if generic and hasattr(
            module, "keras_to_torch"
        ):  # layers whose layout is not a transpose (GRU)
            initial_weights = module.keras_to_torch(initial_weights)
        copy_keras_weights(
            parameters,
            initial_weights,
            transpose_kernels=mutation.transpose_kernels if mutation is not None else True,
        )
    model.to(dev)
    lr = config.learning_rate
    if mutation is not None and mutation.optimizer is not None:
        factory = mutation.optimizer
        model.compile(optimizer=lambda params: factory(params, lr))
    elif generic:
        model.compile(optimizer=lambda params: module.torch_optimizer(params, config))
    else:
        model.compile(optimizer=lambda params: trs.optim.Adagrad(params, learning_rate=lr))

    train_cols, test_cols = _columns(prepared, "train"), _columns(prepared, "test")
    train = _torch_batches(train_cols, config.batch_size, dev)
    test = _torch_batches(test_cols, config.test_batch_size, dev)
    losses, step_seconds = [], []
    for _ in range(config.epochs):
        model.reset_metrics()  # Keras resets the metrics at the start of every epoch
        for batch in train:
            start = time.perf_counter()
            logs = model.train_step(batch)  # float(loss) inside synchronises a CUDA device
            step_seconds.append(time.perf_counter() - start)
            losses.append(logs["loss"])
    model.reset_metrics()
    eval_seconds = []
    for batch in test:
        start = time.perf_counter()
        logs = model.test_step(batch)
        eval_seconds.append(time.perf_counter() - start)

    model.eval()
    extra: dict[str, np.ndarray] = {}
    top_k_ids: np.ndarray | None
    with torch.no_grad():
        if generic:
            outputs = module.torch_outputs(model, prepared.data, config, dev)
            predictions, top_k_ids = outputs.pop("predictions"), outputs.pop("top_k_ids", None)
            extra = outputs
        elif prepared.scenario == "basic_retrieval":
            titles = prepared.data.movie_titles.astype(str)
            index = trs.layers.factorized_top_k.BruteForce(model.user_model, k=TOP_K)
            index.index(model.movie_model(titles), titles)
            scores, ids = index(prepared.data.unique_user_ids)
            predictions = scores.cpu().numpy()
            top_k_ids = np.asarray(ids).astype(str)
        else:
            predictions = (
                model.ranking_model(test_cols["user_id"], test_cols["movie_title"])
                .cpu()
                .numpy()
                .reshape(-1)
            )
            top_k_ids = None
    return FrameworkRun(
        framework="torchrs",
        device=str(dev),
        step_losses=losses,
        step_seconds=step_seconds,
        step_examples=_sizes(_num_rows(train_cols), config.batch_size) * config.epochs,
        eval_seconds=eval_seconds,
        eval_examples=_sizes(_num_rows(test_cols), config.test_batch_size),
        metrics=dict(logs),
        weights=(
            module.torch_to_keras(_export_torch_weights(parameters))
            if generic and hasattr(module, "torch_to_keras")
            else _export_torch_weights(parameters)
        ),
        predictions=predictions,
        top_k_ids=top_k_ids,
        extra_predictions=extra,
    )


# ---------------------------------------------------------------------------------------------- checks
def _array_check(scenario: str, name: str, ref: np.ndarray, got: np.ndarray, tol: Any) -> Check:
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    if ref.shape != got.shape:
        return Check(
            scenario,
            f"{name} (shape {ref.shape} vs {got.shape})",
            float("nan"),
            float("nan"),
            float("inf"),
            tol.describe(),
            False,
            tol.reason,
        )
    diff = np.abs(got - ref)
    diff = np.where(np.isnan(diff), np.inf, diff)
    excess = diff - (tol.atol + tol.rtol * np.abs(ref))
    worst = np.unravel_index(int(np.argmax(excess)), ref.shape) if ref.size else ()
    passed = bool(ref.size == 0 or np.all(excess <= 0))
    return Check(
        scenario,
        name,
        float(ref[worst]) if ref.size else float("nan"),
        float(got[worst]) if ref.size else float("nan"),
        float(diff[worst]) if ref.size else 0.0,
        tol.describe(),
        passed,
        tol.reason,
    )


def compare(
    scenario: str, tf_run: FrameworkRun, torch_run: FrameworkRun, tolerances: ScenarioTolerances
) -> list[Check]:
    """Every lock-step check of one scenario, TFRS being the reference."""
    checks = []
    tf_losses, torch_losses = np.asarray(tf_run.step_losses), np.asarray(torch_run.step_losses)
    tolerances = tolerances.for_steps(len(tf_losses))
    if tf_losses.shape != torch_losses.shape:
        checks.append(
            Check(
                scenario,
                "number of training steps",
                len(tf_losses),
                len(torch_losses),
                abs(len(tf_losses) - len(torch_losses)),
                "exact",
                False,
                "same batches",
            )
        )
    else:
        check = _array_check(scenario, "loss", tf_losses, torch_losses, tolerances.step_loss)
        worst = int(
            np.argmax(np.abs(torch_losses - tf_losses) / np.maximum(np.abs(tf_losses), 1e-30))
        )
        checks.append(replace(check, check=f"loss, every step ({len(tf_losses)}; worst {worst})"))
    for name in tf_run.weights:
        checks.append(
            _array_check(
                scenario,
                f"final weights {name}",
                tf_run.weights[name],
                torch_run.weights.get(name, np.empty(0)),
                tolerances.final_weights,
            )
        )
    for name, value in tf_run.metrics.items():
        if name in _UNCOMPARED_LOGS:
            continue
        tol = tolerances.step_loss if name == "loss" else tolerances.metrics
        got = torch_run.metrics.get(name, float("nan"))
        checks.append(
            Check(
                scenario,
                f"evaluate {name}",
                value,
                got,
                abs(got - value),
                tol.describe(),
                tol.allows(value, got),
                tol.reason,
            )
        )
    if tf_run.predictions is not None and torch_run.predictions is not None:
        what = "top-K scores" if tf_run.top_k_ids is not None else "rating predictions"
        checks.append(
            _array_check(
                scenario, what, tf_run.predictions, torch_run.predictions, tolerances.predictions
            )
        )
    for name, ref in tf_run.extra_predictions.items():
        checks.append(
            _array_check(
                scenario,
                name,
                ref,
                torch_run.extra_predictions.get(name, np.empty(0)),
                tolerances.predictions,
            )
        )
    if tolerances.top_k is not None and tf_run.top_k_ids is not None:
        got_ids = torch_run.top_k_ids
        same = (
            float(np.mean(np.all(got_ids == tf_run.top_k_ids, axis=1)))
            if got_ids is not None and got_ids.shape == tf_run.top_k_ids.shape
            else 0.0
        )
        agree = tolerances.top_k
        checks.append(
            Check(
                scenario,
                f"top-{TOP_K} ids identical, fraction of {len(tf_run.top_k_ids)} users",
                1.0,
                same,
                1.0 - same,
                agree.describe(),
                agree.allows(same),
                agree.reason,
            )
        )
    return checks


# ------------------------------------------------------------------------------------------------ running
def run_scenario(
    scenario: str,
    *,
    data_dir: str = movielens.SYNTHETIC,
    device: str = "cpu",
    epochs: int | None = None,
    scale: float = 1.0,
    mutation: Mutation | None = None,
    tf_run: FrameworkRun | None = None,
    prepared: Prepared | None = None,
) -> ScenarioResult:
    """Runs one scenario in lock-step in both frameworks and checks it.

    ``prepared`` and ``tf_run`` may be passed to reuse a TF run (its outcome does not depend on the torch side).
    """
    prepared = prepared or prepare(scenario, data_dir, epochs, scale)
    tf_run = tf_run or run_tf_side(prepared)
    torch_run = run_torch_side(prepared, tf_run.initial_weights, device, mutation)
    checks = compare(scenario, tf_run, torch_run, TOLERANCES[scenario])
    config = asdict(prepared.config)
    config["scale"] = prepared.scale
    return ScenarioResult(
        scenario, config, tf_run, torch_run, checks, mutation.name if mutation else None
    )


SCENARIOS = {
    "basic_retrieval": basic_retrieval,
    "basic_ranking": basic_ranking,
    "dcn": dcn,
    "multitask": multitask,
    "listwise": listwise,
    "context_features": context_features,
    "sequential_retrieval": sequential_retrieval,
}
# Scenarios whose module provides every hook itself (make_data, columns, tf_/torch_ variables, optimizer,
# outputs); the two first scenarios are wired into the harness directly.
_GENERIC = frozenset({"dcn", "multitask", "listwise", "context_features", "sequential_retrieval"})
