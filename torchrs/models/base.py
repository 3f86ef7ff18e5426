"""Base model, as ``tfrs.models.Model``: ``compute_loss`` plus Keras-style ``compile`` / ``fit`` / ``evaluate``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torchmetrics
from torch import Tensor, nn
from tqdm.auto import tqdm

from torchrs.metrics.keras_metric import metric_results, quiet_compute
from torchrs.models._nan_guard import FitPosition, check_finite_loss

OptimizerLike = torch.optim.Optimizer | Callable[[list[nn.Parameter]], torch.optim.Optimizer] | str

#: The optimizer names ``tf.keras.optimizers.get`` accepts in Keras 2 (tf_keras ``optimizers/__init__.py``).
_OPTIMIZER_NAMES = (
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "ftrl",
    "nadam",
    "rmsprop",
    "sgd",
)
#: Keras 2 ``Model.compile(optimizer="rmsprop")``: the optimizer a bare ``compile()`` gives.
DEFAULT_OPTIMIZER = "rmsprop"

# Depth of nested ``Model.call``s on this thread: Keras clears the losses added by ``add_loss`` at the outermost
# call only (base_layer.py: "Losses are cleared for all sublayers on the outermost `Layer.call`").
_CALL_CONTEXT = threading.local()


@dataclass
class History:
    """What ``fit`` returns, as ``tf.keras.callbacks.History``: ``history[name]`` is one value per epoch."""

    history: dict[str, list[float]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)

    def append(self, epoch: int, logs: Mapping[str, float]) -> None:
        self.epoch.append(epoch)
        for name, value in logs.items():
            self.history.setdefault(name, []).append(value)


class Model(nn.Module):
    """Base class of torchrs models: implement ``compute_loss(inputs, training=False)``, and ``call`` if you like.

    As in Keras, ``model(inputs)`` runs ``call`` when the subclass defines one (its predictions), while
    ``fit`` / ``evaluate`` / ``train_step`` drive ``compute_loss``, which may call ``self(features)``:

    >>> class Scorer(Model):
    ...     def __init__(self) -> None:
    ...         super().__init__()
    ...         self.w = nn.Parameter(torch.tensor(2.0))
    ...     def call(self, features):
    ...         return self.w * features["x"]
    ...     def compute_loss(self, features, training=False):
    ...         return ((self(features) - features["y"]) ** 2).mean()
    >>> model = Scorer()
    >>> batch = {"x": torch.tensor([1.0, 2.0]), "y": torch.tensor([1.0, 2.0])}
    >>> model(batch).tolist(), model.compute_loss(batch).item()
    ([2.0, 4.0], 2.5)

    Without ``call``, ``model(inputs, training)`` returns ``compute_loss(inputs, training)``.

    ``fit`` and ``evaluate`` follow Keras 2's reporting rules, so the numbers line up with a TFRS run:

    * ``loss`` (and ``regularization_loss``, ``total_loss``) is the *last batch's* value, not a mean;
    * metrics are running means over the epoch (reset at the start of each epoch and of ``evaluate``);
    * validation values are prefixed with ``val_``.

    A plain PyTorch loop works just as well: ``loss = model.compute_loss(batch, training=True)``,
    ``loss.backward()``, ``optimizer.step()``.

    Under ``torch.distributed`` (e.g. launched with ``torchrun``), ``fit`` wraps the model in
    ``DistributedDataParallel``: give each rank its own shard of every global batch (``DistributedSampler``);
    gradients are averaged across ranks, metrics are synced by torchmetrics, logs are the mean over ranks and
    only rank 0 shows progress. In-batch negatives of ``Retrieval`` are those of the rank's shard. Tables
    sharded by ``torchrs.distributed.shard`` are left out of DDP (they are updated by their fused optimizer).
    """

    def __init__(self) -> None:
        super().__init__()
        self.optimizer: torch.optim.Optimizer | None = None
        self._optimizer_factory: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None
        self._jit_compile = False
        self._compiled_compute_loss: Callable[..., Tensor] | None = None
        self._eager_losses: list[Tensor] = []
        self._callable_losses: list[Callable[[], Tensor | None]] = []

    def compute_loss(self, inputs: Any, training: bool = False) -> Tensor:
        """Defines the loss; it should also update the model's metrics (through its tasks).

        Args:
            inputs: a batch of raw inputs (usually a dict of features, labels and weights).
            training: whether the model is being trained.

        Returns:
            The scalar loss.
        """
        raise NotImplementedError("Implementers must implement the `compute_loss` method.")

    def call(self, *args: Any, **kwargs: Any) -> Any:
        """Keras's ``call``: what ``model(inputs)`` computes (predictions), when a subclass defines it.

        TFRS models often define ``call`` and compute their loss from it (``predictions = self(features)``
        inside ``compute_loss``, as in TFRS's ranking tutorial). ``fit`` / ``evaluate`` / ``train_step`` always
        drive ``compute_loss``; ``model(inputs)`` runs ``call``. A model without ``call`` keeps torchrs's
        historical behaviour: ``model(inputs, training)`` returns ``compute_loss(inputs, training)``.
        """
        raise NotImplementedError(
            "This model defines no `call`: `model(inputs)` returns `compute_loss(inputs)`."
        )

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """``call(...)`` when the subclass defines one, else ``compute_loss(inputs, training)``.

        Inside ``fit`` under DDP the wrapper's forward must run the loss (so DDP sees the whole step and averages
        the gradients): the step marks its one call with ``_step_computes_loss`` and that call runs
        ``compute_loss``; the model's own ``self(features)`` inside it runs ``call`` again.
        """
        if self.__dict__.pop("_step_computes_loss", False) or not self._defines_call():
            return self._loss_function()(*args, **kwargs)
        depth = getattr(_CALL_CONTEXT, "depth", 0)
        if depth == 0:
            self._clear_losses()
        _CALL_CONTEXT.depth = depth + 1
        try:
            return self.call(*args, **kwargs)
        finally:
            _CALL_CONTEXT.depth = depth

    def _defines_call(self) -> bool:
        return type(self).call is not Model.call

    # ------------------------------------------------------------------------------------------------ losses
    def add_loss(self, losses: Tensor | Callable[[], Tensor | None] | Sequence[Any]) -> None:
        """Keras's ``add_loss``: activity / regularization losses, counted in ``regularization_loss``.

        Tensors are added inside ``call`` and last until the next outermost ``call`` (Keras clears them there);
        zero-argument callables (e.g. ``lambda: 0.01 * self.dense.weight.square().sum()``) are kept and
        evaluated each time ``losses`` is read.

        Args:
            losses: a tensor, a zero-argument callable returning one, or a list of them.

        Raises:
            ValueError: a tensor added outside ``call`` (as in Keras: wrap it in a ``lambda``).
        """
        items = list(losses) if isinstance(losses, (list, tuple)) else [losses]
        for loss in items:
            if loss is None:
                continue
            if callable(loss) and not isinstance(loss, Tensor):
                self._callable_losses.append(loss)
                continue
            if getattr(_CALL_CONTEXT, "depth", 0) == 0:
                raise ValueError(
                    "Expected a callable for the loss value: a tensor can only be added inside `call`. "
                    "Wrap your loss computation in a zero-argument `lambda` (as in Keras)."
                )
            self._eager_losses.append(torch.as_tensor(loss))

    @property
    def losses(self) -> list[Tensor]:
        """Keras's ``model.losses``: what ``add_loss`` added here and in nested models, then the weight penalties
        of the layers (one term per regularized layer; their sum is Keras's)."""
        found: list[Tensor] = []
        for module in self.modules():
            if isinstance(module, Model):
                found.extend(module._eager_losses)
                for loss_fn in module._callable_losses:
                    value = loss_fn()
                    if value is not None:
                        found.append(torch.as_tensor(value))
        found.extend(_weight_penalties(self))
        return found

    def _clear_losses(self) -> None:
        for module in self.modules():
            if isinstance(module, Model):
                module._eager_losses = []

    # ----------------------------------------------------------------------------------------------- metrics
    @property
    def metrics(self) -> list[torchmetrics.Metric]:
        """Every metric held by the model's modules (tasks' metrics included), in registration order."""
        found: list[torchmetrics.Metric] = []
        for module in self.modules():
            if isinstance(module, torchmetrics.Metric) and not any(module is m for m in found):
                found.append(module)
        return found

    def reset_metrics(self) -> None:
        for metric in self.metrics:
            metric.reset()

    def metric_results(self) -> dict[str, float]:
        """``{name: value}`` of every metric; a metric never updated reports 0, as in Keras."""
        results: dict[str, float] = {}
        with quiet_compute():
            for metric in self.metrics:
                for name, value in metric_results(metric).items():
                    results[name] = float(value)
        return results

    def regularization_loss(self) -> Tensor:
        """``sum(reduce_sum(l) for l in model.losses)``, what TFRS's ``train_step`` reports as
        ``regularization_loss``: the layers' weight penalties plus the losses added with :meth:`add_loss`."""
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        terms = [torch.as_tensor(loss, device=device).sum() for loss in self.losses]
        return torch.stack(terms).sum() if terms else torch.zeros((), device=device)

    # ------------------------------------------------------------------------------------------- compile
    def compile(  # type: ignore[override]
        self,
        optimizer: OptimizerLike = DEFAULT_OPTIMIZER,
        *,
        jit_compile: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Keras's ``Model.compile`` (not ``torch.nn.Module.compile``): sets the optimizer ``fit`` uses.

        ``jit_compile=True`` is the door to PyTorch's compiler: ``fit`` / ``evaluate`` then run
        ``compute_loss`` through ``torch.compile`` (the first steps are slower while it compiles). For
        ``torch.nn.Module.compile`` itself, call ``torch.compile(model)``.

        Args:
            optimizer: a ``torch.optim.Optimizer`` over this model's parameters, a factory
                ``params -> Optimizer`` (built at the first training step, once lazy layers have their
                parameters), or a Keras name (``"rmsprop"``, the Keras default, ``"adam"``, ``"adagrad"``,
                ``"sgd"``, ``"adadelta"``, ``"adamax"``, ``"nadam"``, ``"ftrl"``, ``"adamw"``): the
                ``torchrs.optim`` optimizer with Keras's defaults.
            jit_compile: run ``compute_loss`` through ``torch.compile``. ``None`` (Keras's default) and ``False``
                run eagerly.
            **kwargs: other Keras ``compile`` arguments are not supported; passing one raises.

        >>> model = Model()
        >>> model.compile()  # Keras's default optimizer: RMSprop(learning_rate=0.001)
        """
        if kwargs:
            raise TypeError(
                f"Unsupported compile() arguments {sorted(kwargs)}: torchrs models define their loss and "
                "metrics in compute_loss / their tasks. Pass only `optimizer` (and `jit_compile`)."
            )
        if jit_compile is not None and not isinstance(jit_compile, bool):
            raise TypeError(f"`jit_compile` must be a bool or None (got {jit_compile!r}).")
        self.optimizer = None
        self._optimizer_factory = None
        if isinstance(optimizer, torch.optim.Optimizer):
            self.optimizer = optimizer
        elif isinstance(optimizer, str):
            self._optimizer_factory = _named_optimizer(optimizer)
        elif callable(optimizer):
            self._optimizer_factory = optimizer
        else:
            raise TypeError(
                "`optimizer` must be a torch.optim.Optimizer, a callable params -> Optimizer, or one of "
                f"{_OPTIMIZER_NAMES} (got {type(optimizer).__name__})."
            )
        self._jit_compile = bool(jit_compile)
        self._compiled_compute_loss = None

    def _loss_function(self) -> Callable[..., Tensor]:
        """``compute_loss``, or its ``torch.compile``d version after ``compile(jit_compile=True)``."""
        if not self._jit_compile:
            return self.compute_loss
        if self._compiled_compute_loss is None:
            self._compiled_compute_loss = cast(
                Callable[..., Tensor], torch.compile(self.compute_loss)
            )
        return self._compiled_compute_loss

    def _ensure_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            if self._optimizer_factory is None:
                raise RuntimeError("You must call `compile(optimizer=...)` before `fit`.")
            sharded = _sharded_names(self)
            self.optimizer = self._optimizer_factory(
                [p for n, p in self.named_parameters() if p.requires_grad and n not in sharded]
            )
        return self.optimizer

    # ------------------------------------------------------------------------------------- train / test
    def train_step(self, inputs: Any) -> dict[str, float]:
        """One optimisation step; returns the Keras logs (metrics, then loss, regularization_loss, total_loss)."""
        self.train()
        loss = self._step_loss(inputs, training=True)
        regularization_loss = self.regularization_loss()
        total_loss = loss + regularization_loss
        check_finite_loss(self.__dict__.get("_fit_position"), total_loss)  # before any update
        optimizer = self._ensure_optimizer()
        optimizer.zero_grad(set_to_none=True)
        total_loss.backward()
        optimizer.step()
        return self._logs(loss, regularization_loss, total_loss)

    @torch.no_grad()
    def test_step(self, inputs: Any) -> dict[str, float]:
        """One evaluation step; returns the Keras logs."""
        self.eval()
        loss = self._loss_function()(inputs, training=False)
        regularization_loss = self.regularization_loss()
        return self._logs(loss, regularization_loss, loss + regularization_loss)

    def _step_loss(self, inputs: Any, training: bool) -> Tensor:
        """``compute_loss`` for a training step: through the DDP wrapper while ``fit`` runs under torch.distributed
        (its forward, marked by ``_step_computes_loss``, runs ``compute_loss``), else directly."""
        module = self._step_module()
        if module is self:
            return self._loss_function()(inputs, training=training)
        self.__dict__["_step_computes_loss"] = True
        try:
            return cast(Tensor, module(inputs, training=training))
        finally:
            self.__dict__.pop("_step_computes_loss", None)

    def _step_module(self) -> nn.Module:
        """The module a training step calls: the DDP wrapper while ``fit`` runs under torch.distributed."""
        return self.__dict__.get("_ddp_module") or self

    def _logs(
        self, loss: Tensor, regularization_loss: Tensor, total_loss: Tensor
    ) -> dict[str, float]:
        logs = self.metric_results()  # torchmetrics syncs the metric states across ranks here
        losses = torch.stack(
            [loss.detach(), regularization_loss.detach(), total_loss.detach()]
        ).float()
        if _distributed():
            # Report the mean over ranks, as a mirrored Keras run reports the replicas' reduced loss.
            torch.distributed.all_reduce(losses)
            losses /= torch.distributed.get_world_size()
        logs["loss"], logs["regularization_loss"], logs["total_loss"] = (
            float(v) for v in losses.cpu()
        )
        return logs

    def fit(
        self,
        x: Iterable[Any],
        epochs: int = 1,
        verbose: int | str = "auto",
        validation_data: Iterable[Any] | None = None,
        validation_freq: int = 1,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        terminate_on_nan: bool = True,
    ) -> History:
        """Trains for ``epochs`` passes over ``x`` (an iterable of batches, re-iterated each epoch).

        Args:
            x: batches, e.g. a list of dicts or a ``torch.utils.data.DataLoader``.
            epochs: index of the last epoch (Keras semantics with ``initial_epoch``).
            verbose: 0 silent, 1 / "auto" a tqdm progress bar per epoch.
            validation_data: batches to ``evaluate`` on after each ``validation_freq``-th epoch.
            validation_freq: evaluate every that many epochs.
            initial_epoch: epoch to start from (for resuming).
            steps_per_epoch: stop an epoch after this many batches.
            terminate_on_nan: stop at the first NaN / inf loss, before that step updates any weight
                (Keras's ``TerminateOnNaN``; here on by default).

        Returns:
            A :class:`History` whose ``history`` maps each log name to one value per epoch.

        Raises:
            NonFiniteLossError: a non-finite loss (with ``terminate_on_nan``), naming epoch and batch.
        """
        if epochs < 1 or initial_epoch < 0 or initial_epoch >= epochs:
            raise ValueError(
                f"Need 0 <= initial_epoch < epochs (got initial_epoch={initial_epoch}, epochs={epochs})."
            )
        history = History()
        device = _module_device(self)
        if _distributed():
            verbose = verbose if torch.distributed.get_rank() == 0 else 0  # rank-0 logging
            self.__dict__["_ddp_module"] = _wrap_ddp(self)
        if terminate_on_nan:
            self.__dict__["_fit_position"] = FitPosition(epochs)
        try:
            self._fit_epochs(
                x,
                epochs,
                verbose,
                validation_data,
                validation_freq,
                initial_epoch,
                steps_per_epoch,
                history,
                device,
            )
        finally:
            self.__dict__.pop("_ddp_module", None)
            self.__dict__.pop("_fit_position", None)
        # Keras's fit ends by copying EMA averages into the weights (a no-op without use_ema).
        finalize = getattr(self.optimizer, "finalize_variable_values", None)
        if callable(finalize):
            finalize()
        return history

    def _fit_epochs(
        self,
        x: Iterable[Any],
        epochs: int,
        verbose: int | str,
        validation_data: Iterable[Any] | None,
        validation_freq: int,
        initial_epoch: int,
        steps_per_epoch: int | None,
        history: History,
        device: torch.device | None,
    ) -> None:
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            logs: dict[str, float] = {}
            batches = _progress(
                x, verbose, desc=f"Epoch {epoch + 1}/{epochs}", total=steps_per_epoch
            )
            for step, batch in enumerate(batches):
                if steps_per_epoch is not None and step >= steps_per_epoch:
                    break
                _set_position(self, epoch, step)
                logs = self.train_step(_to_device(batch, device))
                _show(batches, logs)
            if not logs:
                raise ValueError("`fit` got no batches: `x` is empty.")
            if validation_data is not None and (epoch + 1) % validation_freq == 0:
                val_logs = cast(
                    dict[str, float], self.evaluate(validation_data, verbose=0, return_dict=True)
                )
                logs.update({f"val_{name}": value for name, value in val_logs.items()})
            history.append(epoch, logs)

    def evaluate(
        self,
        x: Iterable[Any],
        verbose: int | str = "auto",
        return_dict: bool = False,
        steps: int | None = None,
    ) -> dict[str, float] | list[float] | float:
        """Evaluates over ``x``: metrics are reset, then updated by every batch.

        Returns:
            With ``return_dict=True`` the logs; otherwise their values (a single value if there is only one).
        """
        self.reset_metrics()
        device = _module_device(self)
        logs: dict[str, float] = {}
        batches = _progress(x, verbose, desc="Evaluate", total=steps)
        for step, batch in enumerate(batches):
            if steps is not None and step >= steps:
                break
            logs = self.test_step(_to_device(batch, device))
            _show(batches, logs)
        if not logs:
            raise ValueError("`evaluate` got no batches: `x` is empty.")
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values


def _set_position(model: nn.Module, epoch: int, step: int) -> None:
    position = model.__dict__.get("_fit_position")
    if position is not None:
        position.epoch, position.step = epoch, step


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _wrap_ddp(model: Model) -> nn.Module:
    """Wraps ``model`` in DistributedDataParallel so gradients are averaged across ranks at each step."""
    from torch.nn.parallel import DistributedDataParallel

    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        raise RuntimeError(
            "The model has lazily-built layers that are not built yet; DDP needs every parameter to exist. "
            "Call the model once on a batch (or pass input_dim=) before fit() under torch.distributed."
        )
    sharded = _sharded_names(model)
    if sharded:
        if not any(p.requires_grad for n, p in model.named_parameters() if n not in sharded):
            return model  # only sharded tables: their fused update already averages over ranks
        # As TorchRec's DistributedModelParallel: each rank holds other shards, DDP must not sync them.
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, sorted(sharded))
    device = _module_device(model)
    device_ids = [device] if device is not None and device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def _sharded_names(model: nn.Module) -> set[str]:
    """Parameters and buffers of sharded modules (``torchrs.distributed.ShardedEmbedding``, which set
    ``torchrs_sharded = True``): each rank holds different shards, updated by their own fused optimizer."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        if getattr(module, "torchrs_sharded", False):
            names.update(f"{prefix}.{n}" for n, _ in module.named_parameters())
            names.update(f"{prefix}.{n}" for n, _ in module.named_buffers())
    return names


def _named_optimizer(name: str) -> Callable[[list[nn.Parameter]], torch.optim.Optimizer]:
    from torchrs import optim

    classes: dict[str, Callable[[list[nn.Parameter]], torch.optim.Optimizer]] = {
        "adadelta": optim.Adadelta,
        "adagrad": optim.Adagrad,
        "adam": optim.Adam,
        "adamax": optim.Adamax,
        "adamw": optim.AdamW,
        "ftrl": optim.Ftrl,
        "nadam": optim.Nadam,
        "rmsprop": optim.RMSprop,
        "sgd": optim.SGD,
    }
    key = name.lower()
    if key not in classes:
        raise ValueError(f"Unknown optimizer name {name!r}: expected one of {_OPTIMIZER_NAMES}.")
    return classes[key]


def _weight_penalties(module: nn.Module) -> list[Tensor]:
    """The layers' weight penalties: the outermost module exposing ``regularization_loss()`` on each branch is
    asked for its total (it covers its own sub-layers), so nothing is counted twice. Nested models are walked."""
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    terms: list[Tensor] = []
    for child in module.children():
        penalty = getattr(child, "regularization_loss", None)
        if isinstance(child, Model) or not callable(penalty):
            terms.extend(_weight_penalties(child))
        else:
            terms.append(torch.as_tensor(penalty(), device=device))
    return terms


def _module_device(module: nn.Module) -> torch.device | None:
    for tensor in module.parameters():
        return tensor.device
    return None


def _to_device(batch: Any, device: torch.device | None) -> Any:
    if device is None:
        return batch
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_to_device(value, device) for value in batch)
    if isinstance(batch, list):
        return [_to_device(value, device) for value in batch]
    return batch


def _progress(
    data: Iterable[Any], verbose: int | str, desc: str, total: int | None
) -> Iterable[Any]:
    show = verbose == "auto" or (isinstance(verbose, int) and verbose > 0)
    if not show:
        return data
    if total is None and hasattr(data, "__len__"):
        total = len(data)  # type: ignore[arg-type]
    return tqdm(data, desc=desc, total=total, leave=True, dynamic_ncols=True)


def _show(batches: Iterable[Any], logs: Mapping[str, float]) -> None:
    if isinstance(batches, tqdm):
        batches.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)
