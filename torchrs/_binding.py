"""Binding a call's positional and keyword arguments to a model's named inputs (Keras's rules)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def bind_inputs(
    names: Sequence[str], args: Sequence[Any], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """``{input name: value}`` from positional values (in input order) and values by name.

    Raises:
        TypeError: too many positional values, an unknown name, a name given twice, or a missing input.

    >>> bind_inputs(["user_id", "movie"], ["42"], {"movie": "m"})
    {'user_id': '42', 'movie': 'm'}
    """
    names = list(names)
    if len(args) > len(names):
        raise TypeError(
            f"This model takes {len(names)} input(s) {names}; got {len(args)} positional ones."
        )
    bound = dict(zip(names, args, strict=False))
    for name, value in kwargs.items():
        if name not in names:
            raise TypeError(f"Unknown input {name!r}; this model's inputs are {names}.")
        if name in bound:
            raise TypeError(f"Input {name!r} given twice (by position and by name).")
        bound[name] = value
    missing = [n for n in names if n not in bound]
    if missing:
        raise TypeError(f"Missing input(s) {missing}; this model's inputs are {names}.")
    return bound
