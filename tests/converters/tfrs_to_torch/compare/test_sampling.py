"""Sample inputs drawn by the engine: vocabularies with their probes, statistics, specs."""

from __future__ import annotations

import numpy as np

from converters.tfrs_to_torch.compare import UNKNOWN_TOKEN, InputField, probes, sample_input


def _draw(field: InputField, rows: int = 8, seed: int = 0, **kw: object):
    return sample_input(field, rows, np.random.default_rng(seed), open_axis=4, **kw)


def test_vocabulary_covered_with_unknown_and_empty_string() -> None:
    field = InputField("user", "string", (None,), vocabulary=[b"a", b"b", b"c"])
    values = _draw(field).values
    assert values.shape == (8,) and values.dtype == object
    assert values[:5].tolist() == [b"a", b"b", b"c", UNKNOWN_TOKEN, b""]
    assert set(values.tolist()) <= {b"a", b"b", b"c", UNKNOWN_TOKEN, b""}


def test_fit_vocabulary_gives_each_token_once() -> None:
    field = InputField("user", "string", (None,), vocabulary=[b"a", b"b"])
    sample = _draw(field, rows=256, fit_vocabulary=True)
    assert sample.values.tolist() == [b"a", b"b", UNKNOWN_TOKEN, b""]
    assert sample.description == "all 2 vocabulary tokens + unknown + empty string"


def test_large_vocabulary_subset_keeps_the_probes() -> None:
    vocabulary = [f"t{i}".encode() for i in range(1000)]
    values = _draw(InputField("u", "string", (None,), vocabulary=vocabulary), rows=16).values
    assert values[-2:].tolist() == [UNKNOWN_TOKEN, b""]
    assert len(set(values[:-2].tolist())) == 14  # drawn without replacement


def test_integer_vocabulary_unknown_is_past_the_largest() -> None:
    assert probes([3, 9, 5], "int") == [10]
    values = _draw(InputField("i", "int64", (None,), vocabulary=[3, 9, 5])).values
    assert values.dtype == np.int64 and values[:4].tolist() == [3, 9, 5, 10]


def test_an_unknown_token_never_collides_with_the_vocabulary() -> None:
    assert probes([UNKNOWN_TOKEN], "string")[0] == UNKNOWN_TOKEN + b"#"
    assert probes([b""], "string") == [UNKNOWN_TOKEN]  # the empty string is already in


def test_open_axes_and_fixed_axes() -> None:
    field = InputField("seq", "string", (None, None), vocabulary=[b"a"])
    assert _draw(field).values.shape == (8, 4)
    assert _draw(InputField("f", "float32", (2, 10))).values.shape == (2, 10)


def test_floats_from_statistics_boundaries_or_standard_normal() -> None:
    plain = _draw(InputField("f", "float32", (None, 3)), seed=1).values
    np.testing.assert_array_equal(
        plain, np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    )
    around = _draw(InputField("f", "float64", (None,), mean=3.0, variance=4.0), seed=1).values
    np.testing.assert_allclose((around - 3.0) / 2.0, np.random.default_rng(1).normal(size=8))
    bins = _draw(InputField("f", "float32", (None,), boundaries=[0.0, 1.0, 2.0])).values
    assert bins[:3].tolist() == [0.0, 1.0, 2.0] and bins.min() >= -1.0 and bins.max() <= 3.0


def test_texts_hold_vocabulary_words_an_unknown_word_and_an_empty_text() -> None:
    field = InputField("t", "string", (None,), vocabulary=[b"good", b"movie"], text=True)
    values = _draw(field).values.tolist()
    assert values[0] == UNKNOWN_TOKEN and values[-1] == b""
    assert all(set(v.split()) <= {b"good", b"movie"} for v in values[1:-1])


def test_integers_within_a_table_or_none_when_nothing_is_known() -> None:
    ids = _draw(InputField("i", "int32", (None,), int_high=5)).values
    assert ids.dtype == np.int32 and 0 <= ids.min() and ids.max() < 5
    assert _draw(InputField("i", "int64", (None,))) is None
    assert _draw(InputField("s", "string", (None,))) is None
    arbitrary = _draw(InputField("s", "string", (None,), arbitrary=True)).values
    assert arbitrary[0] == b"" and arbitrary.shape == (8,)


def test_same_field_and_seed_same_inputs() -> None:
    field = InputField("u", "string", (None, 3), vocabulary=[b"a", b"b", b"c", b"d"])
    np.testing.assert_array_equal(_draw(field, seed=7).values, _draw(field, seed=7).values)
