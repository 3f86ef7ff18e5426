"""Sample inputs for a forward comparison, drawn from what the model itself accepts.

Every front end (the converter's verification, translated graphs, ``parity validate``) describes each
input as an :class:`InputField` — its dtype and shape, plus what the model knows about it: the
vocabulary of the lookup reading it, the statistics of a ``Normalization``, the boundaries of a
``Discretization``, the rows of an ``Embedding`` — and :func:`sample_input` draws the batch, so the
same field and seed give the same inputs everywhere.

Tokens: every vocabulary entry is covered when the batch has room (in order, then random picks),
else a random subset without replacement; the probes are always there: an unknown token (both
frameworks must send it to the same OOV slot) and, for strings, the empty string (the usual mask /
padding token, else one more OOV).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: A token no vocabulary holds: checks the OOV path of every string lookup.
UNKNOWN_TOKEN = b"[torchrs-unknown-token]"
#: The empty string: the mask / padding token of a lookup built with ``mask_token=""``, else OOV;
#: an empty text for ``TextVectorization`` (padding only).
EMPTY_TOKEN = b""
#: Integer inputs read by nothing with a known range are drawn from ``[0, this)``.
ARBITRARY_INT_RANGE = 100
#: Words per sampled text of a ``TextVectorization`` input: ``[1, this)``.
TEXT_MAX_WORDS = 6


@dataclass(frozen=True, eq=False)
class InputField:
    """One model input and what the model knows about its values.

    Attributes:
        name: the input's name.
        dtype: ``"string"``, ``"bool"`` or a NumPy dtype name (``"int64"``, ``"float32"``).
        shape: ``(batch, ...)``; ``None`` marks an open axis.
        vocabulary: the values the model knows (a lookup's tokens, a reader's sample values):
            covered by the batch, with the probes (:func:`probes`) added.
        text: the vocabulary holds words; inputs are texts of 1-5 of them (``TextVectorization``).
        int_high: integer inputs are drawn from ``[0, int_high)`` (an ``Embedding``'s rows).
        mean, variance: floats are drawn as ``mean + sqrt(variance) * N(0, 1)`` (``Normalization``).
        boundaries: floats cover these boundaries, the rest uniform around them (``Discretization``).
        arbitrary: when nothing above is known, draw arbitrary values rather than none.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...] = (None,)
    vocabulary: Sequence[Any] | None = None
    text: bool = False
    int_high: int | None = None
    mean: Any = None
    variance: Any = None
    boundaries: Sequence[float] | None = None
    arbitrary: bool = False

    @property
    def kind(self) -> str:
        """``"string"``, ``"bool"``, ``"float"`` or ``"int"``."""
        if self.dtype in ("string", "bool"):
            return self.dtype
        return "float" if np.dtype(self.dtype).kind in "fc" else "int"


@dataclass(frozen=True)
class Sample:
    """A sampled batch and what it holds, in words (for reports)."""

    values: np.ndarray
    description: str


def normalization_statistics(module: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(mean, variance)`` of a torchrs ``Normalization`` (adapted, or given as ``mean=`` / ``variance=``),
    ``(None, None)`` for any other module: what :attr:`InputField.mean` / ``variance`` take.

    >>> from torchrs.preprocessing import Normalization
    >>> mean, variance = normalization_statistics(Normalization(axis=None, mean=3.0, variance=4.0))
    >>> float(mean), float(variance), normalization_statistics(None)
    (3.0, 4.0, (None, None))
    """
    mean = getattr(module, "adapt_mean", None)
    variance = getattr(module, "adapt_variance", None)
    if mean is None and module is not None and getattr(module, "input_mean", None) is not None:
        mean, variance = module.input_mean, module.input_variance
    if mean is None or variance is None:
        return None, None

    def numpy(value: Any) -> np.ndarray:
        return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)

    return numpy(mean), numpy(variance)


def probes(vocabulary: Sequence[Any], kind: str) -> list[Any]:
    """The edge values added to a vocabulary: an unknown token (and the empty string for strings).

    >>> probes([b"a", b""], "string"), probes([3, 7], "int")
    ([b'[torchrs-unknown-token]'], [8])
    """
    if kind == "int":
        return [max((int(t) for t in vocabulary), default=0) + 1]
    if kind != "string":
        return []
    known = set(vocabulary)
    unknown = UNKNOWN_TOKEN
    while unknown in known:
        unknown += b"#"
    return [unknown] + ([EMPTY_TOKEN] if EMPTY_TOKEN not in known else [])


def sample_input(
    field: InputField,
    rows: int,
    rng: np.random.Generator,
    *,
    open_axis: int,
    fit_vocabulary: bool = False,
) -> Sample | None:
    """A batch for ``field``.

    Args:
        field: the input.
        rows: the batch size when the field's batch axis is open.
        rng: the random generator (one per comparison: the same seed gives the same inputs).
        open_axis: the length given to any other open axis (a sequence of any length).
        fit_vocabulary: a 1-D input whose vocabulary and probes fit in ``rows`` gets exactly them
            (one row each) instead of ``rows`` rows.

    Returns:
        The :class:`Sample`, or None when nothing is known of the input and ``field.arbitrary`` is
        False.

    >>> field = InputField("user", "string", (None,), vocabulary=[b"a", b"b"])
    >>> sample_input(field, 6, np.random.default_rng(0), open_axis=4).values.tolist()[:4]
    [b'a', b'b', b'[torchrs-unknown-token]', b'']
    >>> sample_input(field, 6, np.random.default_rng(0), open_axis=4, fit_vocabulary=True).description
    'all 2 vocabulary tokens + unknown + empty string'
    """
    dims = list(field.shape) or [None]
    batch = dims[0] or rows
    inner = [d if d else open_axis for d in dims[1:]]
    shape = (batch, *inner)
    count = int(np.prod(shape, dtype=np.int64))
    kind = field.kind
    if field.vocabulary is not None and len(field.vocabulary) and kind != "bool":
        vocabulary = list(field.vocabulary)
        if field.text:
            return _texts(vocabulary, shape, count, rng)
        extra = probes(vocabulary, kind)
        return _tokens(field, vocabulary, extra, shape, count, rng, fit_vocabulary and not inner)
    if kind == "float":
        return _floats(field, shape, rng)
    if kind == "int" and (field.int_high is not None or field.arbitrary):
        high = field.int_high if field.int_high is not None else ARBITRARY_INT_RANGE
        values = rng.integers(0, high, shape).astype(field.dtype)
        return Sample(values, f"{batch} integers in [0, {high})")
    if not field.arbitrary:
        return None
    if kind == "bool":
        return Sample(rng.integers(0, 2, shape).astype(bool), f"{batch} random booleans")
    strings = np.array([f"sample-{i}".encode() for i in rng.integers(0, 10 * count, count)], object)
    strings[0] = EMPTY_TOKEN
    return Sample(strings.reshape(shape), f"{batch} arbitrary strings, one empty")


def _describe_probes(extra: Sequence[Any], kind: str) -> str:
    if kind != "string":
        return " + ".join("unknown" for _ in extra)
    return " + ".join("empty string" if p == EMPTY_TOKEN else "unknown" for p in extra)


def _tokens(
    field: InputField,
    vocabulary: list[Any],
    extra: list[Any],
    shape: tuple[int, ...],
    count: int,
    rng: np.random.Generator,
    fit: bool,
) -> Sample:
    pool = [*vocabulary, *extra]
    noun = "vocabulary tokens" if field.kind != "float" else "sample values"
    also = f" + {_describe_probes(extra, field.kind)}" if extra else ""
    if fit and len(pool) <= count:
        picked, shape = pool, (len(pool),)
        what = f"all {len(vocabulary)} {noun}{also}"
    elif len(pool) <= count:  # every value once, in order, then random picks
        picked = pool + [pool[i] for i in rng.integers(0, len(pool), count - len(pool))]
        what = f"{shape} values: all {len(vocabulary)} {noun}{also}, then random picks"
    else:  # a random subset, the probes always in
        keep = extra[: max(count - 1, 0)] if count > 1 else []
        chosen = rng.choice(len(vocabulary), count - len(keep), replace=False)
        picked = [vocabulary[int(i)] for i in chosen] + keep
        what = f"{shape} values: {count - len(keep)} of {len(vocabulary)} {noun} drawn without replacement"
        what += f" + {_describe_probes(keep, field.kind)}" if keep else ""
    if field.kind == "string":
        values = np.empty(len(picked), dtype=object)
        values[:] = picked
    else:
        values = np.asarray(picked, dtype=field.dtype)
    return Sample(values.reshape(shape), what)


def _texts(
    vocabulary: list[Any], shape: tuple[int, ...], count: int, rng: np.random.Generator
) -> Sample:
    words = [t for t in vocabulary if t] or [b"word"]
    lengths = rng.integers(1, TEXT_MAX_WORDS, size=count)
    texts = [b" ".join(rng.choice(np.array(words, object), size=int(m))) for m in lengths]
    texts[0] = probes(words, "string")[0]
    if count > 1:
        texts[-1] = EMPTY_TOKEN
    values = np.empty(count, dtype=object)
    values[:] = texts
    return Sample(
        values.reshape(shape),
        f"{shape[0]} texts of 1-{TEXT_MAX_WORDS - 1} vocabulary words, one unknown word, one empty text",
    )


def _floats(field: InputField, shape: tuple[int, ...], rng: np.random.Generator) -> Sample:
    if field.boundaries is not None and len(field.boundaries):
        bounds = np.asarray(field.boundaries, np.float64)
        lowest, highest = float(bounds.min()) - 1.0, float(bounds.max()) + 1.0
        floats = rng.uniform(lowest, highest, size=shape)
        flat = floats.reshape(-1)
        flat[: min(len(bounds), flat.size)] = bounds[: flat.size]  # the boundaries themselves
        what = f"{shape[0]} floats in [{lowest:g}, {highest:g}] incl. every bin boundary"
        return Sample(floats.astype(field.dtype), what)
    x = rng.normal(size=shape)
    if field.mean is not None and field.variance is not None:
        mean = np.asarray(field.mean, dtype=np.float64)
        variance = np.asarray(field.variance, dtype=np.float64)
        return Sample(
            (mean + np.sqrt(variance) * x).astype(field.dtype),
            f"{shape[0]} floats around the Normalization's mean and variance",
        )
    return Sample(x.astype(field.dtype), f"{shape[0]} standard normal float vectors")
