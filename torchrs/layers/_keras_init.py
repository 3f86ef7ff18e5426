"""How Keras 2 (``tf_keras``) initialises and configures layers, in torch.

TFRS layers take Keras identifiers for their initializers, regularizers and activations
(``kernel_initializer="truncated_normal"``, ``kernel_regularizer="l2"``, ``preactivation="relu"``)
and build their weights lazily on the first call. This private module gives torchrs layers the same
vocabulary:

* initializers: Keras 2 distributions (:class:`TruncatedNormal` is ``stddev=0.05`` re-drawn beyond two
  standard deviations, :class:`GlorotUniform`, :class:`RandomUniform` in ``[-0.05, 0.05]``, ...) and
  :func:`get_initializer`, which resolves Keras names, ``{"class_name", "config"}`` dicts (both the
  legacy and the ``"module"`` format that ``layer.get_config()`` writes), instances and callables;
* regularizers: :class:`L1`, :class:`L2`, :class:`L1L2` with the Keras values
  (``l2(w) = l2 * sum(w ** 2)``) and :func:`get_regularizer`;
* activations: :func:`get_activation` for every Keras 2 activation name, with TF's own numerics where
  they differ from torch's (``leaky_relu`` slope 0.2, ``hard_sigmoid`` = ``clip(0.2 x + 0.5)``,
  ``gelu``'s float32 ``1/sqrt(2)``, ``softplus`` thresholds and ``sigmoid`` gradient, ``selu``'s
  gradient at 0);
* :class:`KerasDense`: a ``tf.keras.layers.Dense`` twin whose parameters are created on the first call
  (or by :meth:`KerasDense.build`), stored ``[out, in]`` like ``nn.Linear`` (Keras stores ``[in, out]``).

Initializers are called with the *Keras* kernel shape ``(in, out)`` so that fans are computed as
Keras computes them; :class:`KerasDense` transposes the result into ``weight``. Random streams are
torch's, not TensorFlow's: the distributions match Keras, the values cannot. To reproduce TF
numbers, copy the TF weights into the module.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parameter import UninitializedParameter, is_lazy

from torchrs.functional.dense import dense, fusable

__all__ = [
    "L1",
    "L1L2",
    "L2",
    "ActivationLike",
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Identity",
    "Initializer",
    "InitializerLike",
    "KerasDense",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "RandomNormal",
    "RandomUniform",
    "Regularizer",
    "RegularizerLike",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "check_input",
    "check_positive_int",
    "gelu",
    "get_activation",
    "get_initializer",
    "get_regularizer",
    "hard_sigmoid",
    "leaky_relu",
    "linear",
    "regularization_loss",
    "selu",
    "softplus",
]

# Keras 2 RandomUniform() default range: `minval=-0.05, maxval=0.05` (also Embedding's "uniform").
DEFAULT_UNIFORM_MINVAL = -0.05
DEFAULT_UNIFORM_MAXVAL = 0.05
# Keras 2 RandomNormal() / TruncatedNormal() default standard deviation (before truncation).
DEFAULT_NORMAL_STDDEV = 0.05
# TF `truncated_normal` re-draws samples more than two standard deviations from the mean.
TRUNCATION_STDDEVS = 2.0
# scipy.stats.truncnorm.std(a=-2, b=2): VarianceScaling divides by it so the std *after* truncation
# is sqrt(scale / n) (tf_keras initializers.py, VarianceScaling._generate_init_val).
TRUNCATED_NORMAL_STD_CORRECTION = 0.87962566103423978
# Keras 2 "l1" / "l2" / "l1_l2" string identifiers use a factor of 0.01 (L1(), L2(), l1_l2()).
DEFAULT_L1 = 0.01
DEFAULT_L2 = 0.01
# `tf.keras.activations.get("leaky_relu")` is tf.nn.leaky_relu: default slope 0.2 (torch's is 0.01),
# stored as a float32 op attribute, so float64 inputs see float32(0.2).
LEAKY_RELU_ALPHA = 0.20000000298023224
# SELU constants of Klambauer et al. (2017), as in TF's Selu kernel (torch uses the same values).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
# tf.nn.gelu (exact) is 0.5 * x * erfc(-x * c) with c = 1/sqrt(2) cast from a float32 constant, so
# float64 inputs see float32(1/sqrt(2)) (a 5e-9 relative offset from the exact GELU).
GELU_SQRT_HALF = 0.7071067690849304
# Keras 2 hard_sigmoid is clip(0.2 * x + 0.5, 0, 1) (torch's F.hardsigmoid is x / 6 + 0.5).
HARD_SIGMOID_SLOPE = 0.2
HARD_SIGMOID_OFFSET = 0.5

Shape = Sequence[int]
ActivationLike = str | Callable[[torch.Tensor], torch.Tensor] | None
RegularizerLike = str | Mapping[str, Any] | Callable[[torch.Tensor], torch.Tensor] | None


# --------------------------------------------------------------------------------------------
# Initializers
# --------------------------------------------------------------------------------------------


def _compute_fans(shape: Shape) -> tuple[int, int]:
    """Keras' ``_compute_fans``: ``(fan_in, fan_out)`` of a Keras-layout shape ``(..., in, out)``."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    receptive_field = math.prod(int(d) for d in shape[:-2])
    return int(shape[-2]) * receptive_field, int(shape[-1]) * receptive_field


def _float_dtype(dtype: torch.dtype | None, initializer: str) -> torch.dtype:
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not dtype.is_floating_point:
        raise TypeError(
            f"{initializer} only generates floating point tensors, got dtype={dtype}. "
            "Pass a floating dtype such as torch.float32."
        )
    return dtype


def _check_seed(seed: int | None) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"`seed` must be an int or None, got {seed!r} ({type(seed).__name__}).")
    return seed


class Initializer:
    """Base class of the Keras 2 initializers.

    An initializer is called with a Keras-layout shape (a Dense kernel is ``(in, out)``) and returns a
    new tensor. Random initializers take a ``seed``: when it is set, every call returns the same
    values for the same shape (Keras' stateless generator does the same); when it is ``None`` the
    global torch generator is used, so ``torch.manual_seed`` makes runs reproducible.
    """

    seed: int | None = None

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as Keras' ``get_config`` returns them."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Initializer:
        """Builds the initializer from :meth:`get_config` output (or a Keras config)."""
        return cls(**dict(config))

    def _generator(self) -> torch.Generator | None:
        if self.seed is None:
            return None
        return torch.Generator().manual_seed(self.seed)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


InitializerLike = str | Mapping[str, Any] | Initializer | Callable[..., torch.Tensor] | type | None


class Zeros(Initializer):
    """Keras ``Zeros``: all zeros."""

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.zeros(tuple(shape), dtype=dtype)


class Ones(Initializer):
    """Keras ``Ones``: all ones."""

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.ones(tuple(shape), dtype=dtype)


class Constant(Initializer):
    """Keras ``Constant(value=0)``: every element set to the scalar ``value``."""

    def __init__(self, value: float = 0) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"Constant `value` must be a Python scalar, got {value!r} ({type(value).__name__})."
            )
        self.value = value

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.full(tuple(shape), self.value, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class RandomUniform(Initializer):
    """Keras ``RandomUniform(minval=-0.05, maxval=0.05, seed=None)``: uniform in ``[minval, maxval)``."""

    def __init__(
        self,
        minval: float = DEFAULT_UNIFORM_MINVAL,
        maxval: float = DEFAULT_UNIFORM_MAXVAL,
        seed: int | None = None,
    ) -> None:
        self.minval = minval
        self.maxval = maxval
        self.seed = _check_seed(seed)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        out = torch.empty(tuple(shape), dtype=_float_dtype(dtype, "RandomUniform"))
        return out.uniform_(self.minval, self.maxval, generator=self._generator())

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(Initializer):
    """Keras ``RandomNormal(mean=0.0, stddev=0.05, seed=None)``."""

    def __init__(
        self, mean: float = 0.0, stddev: float = DEFAULT_NORMAL_STDDEV, seed: int | None = None
    ) -> None:
        self.mean = mean
        self.stddev = stddev
        self.seed = _check_seed(seed)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        out = torch.empty(tuple(shape), dtype=_float_dtype(dtype, "RandomNormal"))
        return out.normal_(self.mean, self.stddev, generator=self._generator())

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated_normal(
    shape: Shape,
    mean: float,
    stddev: float,
    dtype: torch.dtype,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Normal(mean, stddev) restricted to ``mean ± 2 * stddev`` (TF ``truncated_normal``)."""
    out = torch.empty(tuple(shape), dtype=dtype)
    half_width = TRUNCATION_STDDEVS * stddev
    return nn.init.trunc_normal_(
        out, mean, stddev, a=mean - half_width, b=mean + half_width, generator=generator
    )


class TruncatedNormal(Initializer):
    """Keras 2 ``TruncatedNormal(mean=0.0, stddev=0.05, seed=None)``.

    ``stddev`` is the standard deviation *before* truncation: values further than two ``stddev`` from
    the mean are re-drawn, so the samples' own standard deviation is ``0.8796 * stddev``. This is the
    distribution behind the ``"truncated_normal"`` identifier (TFRS ``Cross``' default kernel init).

    >>> w = TruncatedNormal(seed=1)((3, 4))
    >>> bool(w.abs().max() <= 0.1), torch.equal(w, TruncatedNormal(seed=1)((3, 4)))
    (True, True)
    """

    def __init__(
        self, mean: float = 0.0, stddev: float = DEFAULT_NORMAL_STDDEV, seed: int | None = None
    ) -> None:
        self.mean = mean
        self.stddev = stddev
        self.seed = _check_seed(seed)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        dtype = _float_dtype(dtype, "TruncatedNormal")
        return _truncated_normal(shape, self.mean, self.stddev, dtype, self._generator())

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


_VS_MODES = ("fan_in", "fan_out", "fan_avg")
_VS_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


class VarianceScaling(Initializer):
    """Keras ``VarianceScaling(scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None)``.

    With ``n`` the fan selected by ``mode`` (of the Keras-layout shape): normal distributions have a
    standard deviation (after truncation) of ``sqrt(scale / n)``; ``"uniform"`` draws from
    ``[-limit, limit]`` with ``limit = sqrt(3 * scale / n)``.
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ) -> None:
        if scale <= 0.0:
            raise ValueError(f"`scale` must be a positive float, got scale={scale}.")
        if mode not in _VS_MODES:
            raise ValueError(f"Invalid `mode` {mode!r}: use one of {_VS_MODES}.")
        distribution = distribution.lower()
        if distribution == "normal":  # Keras accepts "normal" as "truncated_normal".
            distribution = "truncated_normal"
        if distribution not in _VS_DISTRIBUTIONS:
            raise ValueError(
                f"Invalid `distribution` {distribution!r}: use one of {_VS_DISTRIBUTIONS}."
            )
        self.scale = scale
        self.mode = mode
        self.distribution = distribution
        self.seed = _check_seed(seed)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        dtype = _float_dtype(dtype, type(self).__name__)
        fan_in, fan_out = _compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        variance = self.scale / max(1.0, fan[self.mode])
        generator = self._generator()
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(variance) / TRUNCATED_NORMAL_STD_CORRECTION
            return _truncated_normal(shape, 0.0, stddev, dtype, generator)
        out = torch.empty(tuple(shape), dtype=dtype)
        if self.distribution == "untruncated_normal":
            return out.normal_(0.0, math.sqrt(variance), generator=generator)
        limit = math.sqrt(3.0 * variance)
        return out.uniform_(-limit, limit, generator=generator)

    def get_config(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
        }


class _FixedVarianceScaling(VarianceScaling):
    """A VarianceScaling preset whose only argument is ``seed`` (Glorot, He, LeCun)."""

    _SCALE = 1.0
    _MODE = "fan_in"
    _DISTRIBUTION = "truncated_normal"

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(self._SCALE, self._MODE, self._DISTRIBUTION, seed)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


class GlorotUniform(_FixedVarianceScaling):
    """Keras ``GlorotUniform``: uniform in ``±sqrt(6 / (fan_in + fan_out))`` (the Dense default).

    >>> w = GlorotUniform(seed=0)((4, 2))
    >>> bool(w.abs().max() <= math.sqrt(6 / (4 + 2)))
    True
    """

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_avg", "uniform"


class GlorotNormal(_FixedVarianceScaling):
    """Keras ``GlorotNormal``: truncated normal with std ``sqrt(2 / (fan_in + fan_out))``."""

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_avg", "truncated_normal"


class HeNormal(_FixedVarianceScaling):
    """Keras ``HeNormal``: truncated normal with std ``sqrt(2 / fan_in)``."""

    _SCALE, _MODE, _DISTRIBUTION = 2.0, "fan_in", "truncated_normal"


class HeUniform(_FixedVarianceScaling):
    """Keras ``HeUniform``: uniform in ``±sqrt(6 / fan_in)``."""

    _SCALE, _MODE, _DISTRIBUTION = 2.0, "fan_in", "uniform"


class LecunNormal(_FixedVarianceScaling):
    """Keras ``LecunNormal``: truncated normal with std ``sqrt(1 / fan_in)``."""

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_in", "truncated_normal"


class LecunUniform(_FixedVarianceScaling):
    """Keras ``LecunUniform``: uniform in ``±sqrt(3 / fan_in)``."""

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_in", "uniform"


class Identity(Initializer):
    """Keras ``Identity(gain=1.0)``: ``gain * eye(rows, cols)``, 2-D shapes only."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = gain

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        if len(shape) != 2:
            raise ValueError(
                f"The Identity initializer only makes 2-D matrices, got shape={tuple(shape)}."
            )
        return self.gain * torch.eye(int(shape[0]), int(shape[1]), dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain}


class Orthogonal(Initializer):
    """Keras ``Orthogonal(gain=1.0, seed=None)``: Q of the QR of a normal matrix, signs fixed by R."""

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        self.gain = gain
        self.seed = _check_seed(seed)

    def __call__(self, shape: Shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        dtype = _float_dtype(dtype, "Orthogonal")
        if len(shape) < 2:
            raise ValueError(
                f"The Orthogonal initializer needs a shape of rank >= 2, got shape={tuple(shape)}."
            )
        num_rows = math.prod(int(d) for d in shape[:-1])
        num_cols = int(shape[-1])
        flat = torch.empty(max(num_rows, num_cols), min(num_rows, num_cols), dtype=dtype)
        flat.normal_(generator=self._generator())
        q, r = torch.linalg.qr(flat)  # (max, min), (min, min)
        q = q * torch.sign(torch.diagonal(r))
        if num_rows < num_cols:
            q = q.T
        return self.gain * q.reshape(tuple(shape))

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain, "seed": self.seed}


def _snake_case(name: str) -> str:
    """Keras' ``generic_utils.to_snake_case`` (``GlorotUniform`` -> ``glorot_uniform``)."""
    intermediate = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()


_INITIALIZER_CLASSES: tuple[type[Initializer], ...] = (
    Constant,
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    Identity,
    LecunNormal,
    LecunUniform,
    Ones,
    Orthogonal,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    Zeros,
)
# The names `tf.keras.initializers.get` accepts (tf_keras initializers/__init__.py): class names,
# their snake_case, "...V2" compatibility aliases and the short aliases below.
_INITIALIZERS: dict[str, type[Initializer]] = {}
for _cls in _INITIALIZER_CLASSES:
    _INITIALIZERS[_cls.__name__] = _cls
    _INITIALIZERS[_snake_case(_cls.__name__)] = _cls
    _INITIALIZERS[_cls.__name__ + "V2"] = _cls
_INITIALIZERS.update(
    normal=RandomNormal,
    uniform=RandomUniform,
    one=Ones,
    zero=Zeros,
    glorot_normalV2=GlorotNormal,
    glorot_uniformV2=GlorotUniform,
    he_normalV2=HeNormal,
    he_uniformV2=HeUniform,
    lecun_normalV2=LecunNormal,
    lecun_uniformV2=LecunUniform,
)


def _config_parts(identifier: Mapping[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    """``(class_name, config)`` of a Keras-serialised object, legacy or ``"module"`` format."""
    if "class_name" not in identifier:
        raise ValueError(
            f"A {kind} config must have a 'class_name' key (Keras serialisation format), "
            f"got keys {sorted(identifier)}."
        )
    config = identifier.get("config") or {}
    if not isinstance(config, Mapping):
        raise ValueError(f"The 'config' of a {kind} must be a dict, got {config!r}.")
    return str(identifier["class_name"]), dict(config)


def get_initializer(
    identifier: InitializerLike,
) -> Initializer | Callable[..., torch.Tensor] | None:
    """Resolves a Keras initializer identifier, as ``tf.keras.initializers.get`` does.

    Args:
        identifier: ``None``; a Keras name (``"truncated_normal"``, ``"TruncatedNormal"``,
            ``"glorot_uniform"``, ``"uniform"``, ``"zeros"``, ...; case-sensitive like Keras); a
            serialised Keras config ``{"class_name": "TruncatedNormal", "config": {"stddev": 0.1}}``
            (with or without ``"module"``); an :class:`Initializer` instance or class; or any callable
            ``fn(shape, dtype=None) -> Tensor`` taking the Keras-layout shape.

    Returns:
        The initializer (``None`` for ``None``).

    Raises:
        ValueError: if the name or ``class_name`` is not a Keras 2 initializer.
        TypeError: if ``identifier`` is none of the above.

    >>> get_initializer("truncated_normal")
    TruncatedNormal(mean=0.0, stddev=0.05, seed=None)
    >>> get_initializer({"class_name": "RandomUniform", "config": {"minval": -1.0, "maxval": 1.0}})
    RandomUniform(minval=-1.0, maxval=1.0, seed=None)
    """
    if identifier is None:
        return None
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        return _initializer_class(identifier)()
    if isinstance(identifier, Mapping):
        class_name, config = _config_parts(identifier, "initializer")
        config.pop("dtype", None)  # Keras 2 configs of old Constant/Zeros may carry a dtype.
        return _initializer_class(class_name).from_config(config)
    if inspect.isclass(identifier) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(
        f"Could not interpret initializer identifier {identifier!r} ({type(identifier).__name__}): "
        "pass a Keras initializer name such as 'glorot_uniform', a Keras config dict, an "
        "Initializer or a callable fn(shape, dtype=None)."
    )


def _initializer_class(name: str) -> type[Initializer]:
    try:
        return _INITIALIZERS[name]
    except KeyError:
        known = sorted({_snake_case(c.__name__) for c in _INITIALIZER_CLASSES})
        raise ValueError(
            f"Unknown initializer {name!r}. Known Keras 2 initializers: {', '.join(known)} "
            "(class names such as 'TruncatedNormal' work too)."
        ) from None


# --------------------------------------------------------------------------------------------
# Regularizers
# --------------------------------------------------------------------------------------------


def _check_penalty(value: Any, name: str) -> float:
    """Keras' ``_check_penalty_number``: a finite int or float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"`{name}`={value!r} is not a valid regularization penalty: expected an int or float."
        )
    if math.isinf(value) or math.isnan(value):
        raise ValueError(f"`{name}`={value} is not a valid regularization penalty: must be finite.")
    return float(value)


class Regularizer:
    """Base class of the Keras 2 weight regularizers: ``regularizer(weight) -> scalar tensor``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(())

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Regularizer:
        return cls(**dict(config))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """Keras ``L1L2(l1=0.0, l2=0.0)``: ``l1 * sum(|x|) + l2 * sum(x ** 2)``.

    >>> L1L2(l1=0.5, l2=0.25)(torch.tensor([1.0, -2.0]))  # 0.5 * 3 + 0.25 * 5
    tensor(2.7500)
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _check_penalty(0.0 if l1 is None else l1, "l1")
        self.l2 = _check_penalty(0.0 if l2 is None else l2, "l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        loss = x.new_zeros(())
        if self.l1:
            loss = loss + self.l1 * x.abs().sum()
        if self.l2:
            loss = loss + self.l2 * x.square().sum()
        return loss

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """Keras ``L1(l1=0.01)``: ``l1 * sum(|x|)``."""

    def __init__(self, l1: float = DEFAULT_L1) -> None:
        self.l1 = _check_penalty(DEFAULT_L1 if l1 is None else l1, "l1")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l1 * x.abs().sum()

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(Regularizer):
    """Keras ``L2(l2=0.01)``: ``l2 * sum(x ** 2)``.

    >>> L2()(torch.tensor([3.0, 4.0]))  # 0.01 * 25
    tensor(0.2500)
    """

    def __init__(self, l2: float = DEFAULT_L2) -> None:
        self.l2 = _check_penalty(DEFAULT_L2 if l2 is None else l2, "l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2 * x.square().sum()

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


_REGULARIZERS: dict[str, Callable[..., Regularizer]] = {
    "L1": L1,
    "l1": L1,
    "L2": L2,
    "l2": L2,
    "L1L2": L1L2,
}


def get_regularizer(
    identifier: RegularizerLike,
) -> Regularizer | Callable[[torch.Tensor], torch.Tensor] | None:
    """Resolves a Keras regularizer identifier, as ``tf.keras.regularizers.get`` does.

    Args:
        identifier: ``None``; ``"l1"``, ``"l2"`` (factor 0.01), ``"l1_l2"`` (0.01 and 0.01, the
            Keras string default), ``"L1"``, ``"L2"``, ``"L1L2"``; a Keras config dict
            ``{"class_name": "L2", "config": {"l2": 0.1}}``; a :class:`Regularizer`; or a callable
            ``fn(weight) -> scalar tensor`` (it receives Keras-layout kernels ``[in, out]``).

    Returns:
        The regularizer (``None`` for ``None``).

    Raises:
        ValueError: if the name is not a supported Keras regularizer (``OrthogonalRegularizer`` is
            not implemented).
        TypeError: if ``identifier`` is none of the above.

    >>> get_regularizer("l1_l2")
    L1L2(l1=0.01, l2=0.01)
    """
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        if identifier == "l1_l2":  # Keras special case: the string uses l1=l2=0.01, L1L2() 0 and 0.
            return L1L2(l1=DEFAULT_L1, l2=DEFAULT_L2)
        return _regularizer_factory(identifier)()
    if isinstance(identifier, Mapping):
        class_name, config = _config_parts(identifier, "regularizer")
        if class_name == "l1_l2" and not config:
            return L1L2(l1=DEFAULT_L1, l2=DEFAULT_L2)
        return _regularizer_factory(class_name)(**config)
    if callable(identifier):
        return identifier
    raise TypeError(
        f"Could not interpret regularizer identifier {identifier!r} ({type(identifier).__name__}): "
        "pass 'l1', 'l2', 'l1_l2', a Keras config dict, a Regularizer or a callable fn(weight)."
    )


def _regularizer_factory(name: str) -> Callable[..., Regularizer]:
    if name == "l1_l2":
        return L1L2
    try:
        return _REGULARIZERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown regularizer {name!r}. Supported Keras 2 regularizers: 'l1', 'l2', 'l1_l2', "
            "'L1', 'L2', 'L1L2' (or pass a callable fn(weight) -> scalar)."
        ) from None


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------

_UNFUSED = "unfused"


def _fused_activation(fn: Callable[[torch.Tensor], torch.Tensor]) -> str | None:
    """The name ``torchrs.functional.dense`` fuses ``fn`` under (None: linear), or ``_UNFUSED``."""
    if fn is torch.relu:
        return "relu"
    if fn is linear:
        return None
    return _UNFUSED


def linear(x: torch.Tensor) -> torch.Tensor:
    """Keras ``linear``: the identity (what ``activation=None`` means)."""
    return x


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 2 ``hard_sigmoid``: ``clip(0.2 * x + 0.5, 0, 1)``."""
    return (x * HARD_SIGMOID_SLOPE + HARD_SIGMOID_OFFSET).clamp(0.0, 1.0)


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    """``tf.nn.leaky_relu`` with its default ``alpha=0.2``."""
    return F.leaky_relu(x, LEAKY_RELU_ALPHA)


def _softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


def _log_softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x, dim=-1)


def gelu(x: torch.Tensor) -> torch.Tensor:
    """``tf.nn.gelu(x, approximate=False)``, the Keras 2 ``gelu``, with TF's float32 constant."""
    return 0.5 * x * torch.erfc(-x * GELU_SQRT_HALF)


class _Softplus(torch.autograd.Function):
    """TF's Softplus kernel: ``x`` above ``-t``, ``exp(x)`` below ``t``, else ``log1p(exp(x))`` with
    ``t = log(eps) + 2``; its gradient is ``sigmoid(x)`` everywhere (TF's SoftplusGrad)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        threshold = math.log(torch.finfo(x.dtype).eps) + 2.0
        exp_x = torch.exp(x)
        return torch.where(x > -threshold, x, torch.where(x < threshold, exp_x, torch.log1p(exp_x)))

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad_output * torch.sigmoid(x)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``tf.math.softplus``: ``log(1 + exp(x))`` with TF's thresholds and ``sigmoid`` gradient."""
    return _Softplus.apply(x)


def selu(x: torch.Tensor) -> torch.Tensor:
    """``tf.nn.selu``. Unlike ``torch.selu``, the gradient at exactly 0 is ``scale`` (TF's SeluGrad
    takes the linear branch there; torch takes the exponential one, ``scale * alpha``)."""
    negative = SELU_ALPHA * torch.expm1(x.clamp(max=0.0))  # clamp: no inf (nor nan grad) for x >> 0
    return SELU_SCALE * torch.where(x < 0, negative, x)


def _mish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tanh(softplus(x))


def _softsign(x: torch.Tensor) -> torch.Tensor:
    return x / (1.0 + x.abs())


# `tf.keras.activations.get(name)` names (tf_keras activations.py). gelu is exact (approximate=False).
# Softmax and log_softmax act on the last axis, as Keras' default `axis=-1`.
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "elu": F.elu,
    "exponential": torch.exp,
    "gelu": gelu,
    "hard_sigmoid": hard_sigmoid,
    "leaky_relu": leaky_relu,
    "linear": linear,
    "log_softmax": _log_softmax,
    "mish": _mish,
    "relu": torch.relu,
    "relu6": F.relu6,
    "selu": selu,
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "softmax": _softmax,
    "softplus": softplus,
    "softsign": _softsign,
    "swish": F.silu,
    "tanh": torch.tanh,
}


def get_activation(identifier: ActivationLike) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resolves a Keras activation identifier, as ``tf.keras.activations.get`` does.

    Args:
        identifier: ``None`` (linear), a Keras 2 activation name (``"relu"``, ``"swish"``,
            ``"gelu"``, ...), or any callable ``fn(x) -> Tensor`` (e.g. ``torch.tanh`` or an
            ``nn.Module``).

    Returns:
        The activation function.

    Raises:
        ValueError: if the name is not a Keras 2 activation.
        TypeError: if ``identifier`` is neither a string, ``None`` nor callable.

    >>> get_activation("hard_sigmoid")(torch.tensor([-3.0, 0.0, 1.0]))
    tensor([0.0000, 0.5000, 0.7000])
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        try:
            return _ACTIVATIONS[identifier]
        except KeyError:
            raise ValueError(
                f"Unknown activation function {identifier!r}. Keras 2 activations: "
                f"{', '.join(sorted(_ACTIVATIONS))} (or pass a callable)."
            ) from None
    if callable(identifier):
        return identifier
    raise TypeError(
        f"Could not interpret activation identifier {identifier!r} ({type(identifier).__name__}): "
        "pass a Keras activation name such as 'relu', None or a callable."
    )


# --------------------------------------------------------------------------------------------
# Dense
# --------------------------------------------------------------------------------------------


def _initializer_or_default(identifier: InitializerLike) -> Callable[..., torch.Tensor]:
    """Keras ``add_weight`` falls back to ``glorot_uniform`` for a ``None`` float initializer (for a
    Dense bias too, even though the Dense default is ``"zeros"``)."""
    initializer = get_initializer(identifier)
    return GlorotUniform() if initializer is None else initializer


def check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> None:
    """Raises unless ``value`` is a positive ``int`` (or ``None`` when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"`{name}` must be a positive int{' or None' if allow_none else ''}, "
            f"got {value!r} ({type(value).__name__})."
        )
    if value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {name}={value}.")


def check_input(x: Any, name: str, layer: str, *, min_ndim: int = 2) -> None:
    """Raises unless ``x`` is a tensor of rank >= ``min_ndim`` (Keras Dense's ``min_ndim=2``)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{layer} expects `{name}` to be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim < min_ndim:
        raise ValueError(
            f"{layer} expects `{name}` of rank >= {min_ndim} (batch_size, ..., features), got shape "
            f"{tuple(x.shape)}. Add a batch dimension, e.g. `{name}.unsqueeze(0)`."
        )


class KerasDense(nn.Module):
    """``tf.keras.layers.Dense`` in torch: ``activation(x @ kernel + bias)``, built on first call.

    ``weight`` is ``[out, in]`` like ``nn.Linear`` (the Keras kernel is ``weight.T``). Until the layer is
    built its parameters are ``UninitializedParameter``: ``state_dict()`` already lists their names and
    ``load_state_dict`` materialises them with the incoming shapes, so TF weights can be loaded before
    any forward pass. ``units=None`` leaves the output size to the owner, which then calls
    :meth:`build` (``Cross`` sizes its kernel from ``x0``, not from its own input).

    Args:
        units: Output size, or ``None`` when the owner builds the layer.
        activation: Keras activation identifier applied after the bias (``None``: linear).
        use_bias: Whether to add a bias.
        kernel_initializer: Keras initializer identifier for the ``[in, out]`` kernel.
        bias_initializer: Keras initializer identifier for the bias.
        kernel_regularizer: Keras regularizer identifier for the kernel.
        bias_regularizer: Keras regularizer identifier for the bias.
        input_dim: When given, build immediately with this many input features.

    >>> dense = KerasDense(2, kernel_initializer="ones")
    >>> dense(torch.tensor([[1.0, 2.0, 3.0]])).tolist()
    [[6.0, 6.0]]
    >>> dense.weight.shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        units: int | None,
        activation: ActivationLike = None,
        use_bias: bool = True,
        kernel_initializer: InitializerLike = "glorot_uniform",
        bias_initializer: InitializerLike = "zeros",
        kernel_regularizer: RegularizerLike = None,
        bias_regularizer: RegularizerLike = None,
        *,
        input_dim: int | None = None,
    ) -> None:
        super().__init__()
        check_positive_int(units, "units", allow_none=True)
        check_positive_int(input_dim, "input_dim", allow_none=True)
        self.units = units
        self.activation = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializer_or_default(kernel_initializer)
        self.bias_initializer = _initializer_or_default(bias_initializer)
        self.kernel_regularizer = get_regularizer(kernel_regularizer)
        self.bias_regularizer = get_regularizer(bias_regularizer)
        self.weight = UninitializedParameter()
        self.bias = UninitializedParameter() if self.use_bias else None
        if input_dim is not None:
            if units is None:
                raise ValueError("KerasDense(units=None) cannot be built from `input_dim` alone.")
            self.build(input_dim, units)

    @property
    def built(self) -> bool:
        """Whether the parameters exist (built, or loaded from a state dict)."""
        return not is_lazy(self.weight)

    @property
    def in_features(self) -> int | None:
        return None if not self.built else int(self.weight.shape[1])

    @property
    def out_features(self) -> int | None:
        return self.units if not self.built else int(self.weight.shape[0])

    @torch.no_grad()
    def build(self, in_features: int, out_features: int) -> None:
        """Creates and initialises ``weight [out, in]`` and ``bias [out]`` (Keras' ``build``).

        Parameters keep the dtype/device the module was moved to (``.double()``, ``.to(device)``).
        """
        if self.built:
            if (self.out_features, self.in_features) != (out_features, in_features):
                raise ValueError(
                    f"Layer already built with weight shape {tuple(self.weight.shape)} (out, in); "
                    f"cannot rebuild it as ({out_features}, {in_features})."
                )
            return
        self.weight.materialize((out_features, in_features))
        kernel = self.kernel_initializer((in_features, out_features), dtype=self.weight.dtype)
        self.weight.copy_(kernel.T)  # Keras kernel [in, out] -> torch weight [out, in]
        if self.bias is not None:
            self.bias.materialize((out_features,))
            self.bias.copy_(self.bias_initializer((out_features,), dtype=self.bias.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``activation(x @ weight.T + bias)``: ``(..., in) -> (..., out)``."""
        if not self.built:
            if self.units is None:
                raise RuntimeError("KerasDense(units=None) must be built by its owner before use.")
            self.build(int(x.shape[-1]), self.units)
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"Dense layer expects inputs with last dimension {self.in_features} (weight shape "
                f"{tuple(self.weight.shape)}), got input of shape {tuple(x.shape)}."
            )
        fused = _fused_activation(self.activation)
        if fused != _UNFUSED and fusable(x, self.weight):
            return dense(x, self.weight, self.bias, fused)  # (B, out), bias and ReLU in the matmul
        return self.activation(F.linear(x, self.weight, self.bias))  # (..., out)

    def regularization_loss(self) -> torch.Tensor:
        """Sum of the kernel and bias penalties (Keras ``sum(layer.losses)``); 0 if none or unbuilt."""
        if not self.built:
            return torch.zeros((), dtype=self.weight.dtype, device=self.weight.device)
        loss = self.weight.new_zeros(())
        if self.kernel_regularizer is not None:
            loss = loss + self.kernel_regularizer(self.weight.T)  # Keras kernel layout [in, out]
        if self.bias is not None and self.bias_regularizer is not None:
            loss = loss + self.bias_regularizer(self.bias)
        return loss

    def _save_to_state_dict(
        self, destination: dict[str, Any], prefix: str, keep_vars: bool
    ) -> None:
        # Unbuilt parameters are listed as they are (they cannot be detached), as LazyModuleMixin does.
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = (
                    param if (keep_vars or is_lazy(param)) else param.detach()
                )

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Loading into an unbuilt layer builds it with the incoming shapes (no initializer call).
        for name, param in self._parameters.items():
            key = prefix + name
            if param is not None and is_lazy(param) and key in state_dict:
                incoming = state_dict[key]
                if not is_lazy(incoming):
                    with torch.no_grad():
                        param.materialize(tuple(incoming.shape))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, use_bias={self.use_bias}"


def regularization_loss(module: nn.Module) -> torch.Tensor:
    """Sum of the Keras regularization penalties of every :class:`KerasDense` inside ``module``."""
    losses = [m.regularization_loss() for m in module.modules() if isinstance(m, KerasDense)]
    if not losses:
        return torch.zeros(())
    return torch.stack(losses).sum()
