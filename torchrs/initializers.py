"""Keras 2 initializers, as ``tf.keras.initializers`` (``tf_keras``), in torch.

TFRS layers take Keras identifiers for their initializers (``kernel_initializer="truncated_normal"``,
``embeddings_initializer="uniform"``). This module holds the Keras 2 distributions
(:class:`TruncatedNormal` is ``stddev=0.05`` re-drawn beyond two standard deviations,
:class:`GlorotUniform`, :class:`RandomUniform` in ``[-0.05, 0.05]``, ...) and :func:`get` (also
:func:`get_initializer`), which resolves Keras names, ``{"class_name", "config"}`` dicts (both the legacy
and the ``"module"`` format that ``layer.get_config()`` writes), instances and callables.

Initializers are called with the *Keras* shape (a Dense kernel is ``(in, out)``) so that fans are
computed as Keras computes them. Random streams are torch's, not TensorFlow's: the distributions match
Keras, the values cannot. To reproduce TF numbers, copy the TF weights into the module.

>>> import torchrs as trs
>>> trs.initializers.get("truncated_normal")
TruncatedNormal(mean=0.0, stddev=0.05, seed=None)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchrs._keras_config import config_parts as _config_parts
from torchrs._keras_config import snake_case as _snake_case

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Identity",
    "Initializer",
    "InitializerLike",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "get",
    "get_initializer",
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

Shape = Sequence[int]


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


#: ``tf.keras.initializers.get``.
get = get_initializer
