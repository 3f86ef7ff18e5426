"""``torchrs.json`` is checked against the typed spec and the layer-kind registry before anything is built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import torchrs
from torchrs.io import CheckpointFormatError, CheckpointSpec, ModelKind, Tower, read_spec
from torchrs.io.registry import REGISTRY
from torchrs.layers._keras_init import KerasDense
from torchrs.layers.embedding import Embedding

ARCHITECTURE: dict[str, Any] = {
    "class_name": "Sequential",
    "layers": [
        {"class_name": "Embedding", "config": {}, "shapes": {"weight": [5, 3]}},
        {"class_name": "Dense", "config": {"activation": "relu"}, "shapes": {"weight": [2, 3]}},
    ],
}


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    tower = Tower(Embedding(5, 3), KerasDense(2, activation="relu", input_dim=3))
    torchrs.save(tower, tmp_path, ARCHITECTURE)
    return tmp_path


def _edit(directory: Path, change) -> None:
    path = directory / "torchrs.json"
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


def test_round_trip(saved: Path) -> None:
    module = torchrs.load(saved)
    ids = torch.tensor([0, 4])
    assert isinstance(module, Tower) and module(ids).shape == (2, 2)
    spec = read_spec(saved)
    assert spec.model_kind is ModelKind.TOWER and spec.architecture == ARCHITECTURE
    assert CheckpointSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda p: p["architecture"]["layers"][1].update(class_name="Transformer"),
            r"architecture\.layers\[1\]\.class_name: torchrs\.load cannot rebuild a 'Transformer' layer",
        ),
        (
            lambda p: p["architecture"]["layers"][1]["config"].update(use_bias="no"),
            r"architecture\.layers\[1\]\.config\.use_bias: expected bool, got str 'no'",
        ),
        (
            lambda p: p["architecture"]["layers"][0]["shapes"].pop("weight"),
            r"architecture\.layers\[0\]\.shapes\.weight: missing field",
        ),
        (
            lambda p: p["architecture"]["layers"][0]["shapes"].update(weight=[5, "3"]),
            r"architecture\.layers\[0\]\.shapes\.weight\[1\]: expected int",
        ),
        (lambda p: p["architecture"].pop("layers"), r"architecture\.layers: missing field"),
        (lambda p: p.update(model_kind="pipeline"), r"model_kind: unknown kind 'pipeline'"),
        (lambda p: p.pop("architecture"), r"architecture: missing field"),
        (lambda p: p.update(format_version="1"), r"format_version: expected int, got str"),
    ],
)
def test_malformed_spec_is_refused_before_building(
    saved: Path, monkeypatch, change, match: str
) -> None:
    _edit(saved, change)
    built: list[str] = []
    for name, kind in list(REGISTRY.items()):  # record any build: none may happen
        monkeypatch.setitem(
            REGISTRY,
            name,
            type(kind)(
                kind.class_name,
                lambda *a, _b=kind.build, _n=name: built.append(_n) or _b(*a),
                kind.config,
                kind.shapes,
                kind.shapes_any,
                kind.children,
            ),
        )
    with pytest.raises(CheckpointFormatError, match=match):
        torchrs.load(saved)
    assert built == []


def test_newer_format_and_missing_file(saved: Path, tmp_path: Path) -> None:
    _edit(saved, lambda p: p.update(format_version=99))
    with pytest.raises(ValueError, match="format_version=99; this torchrs reads up to 1"):
        torchrs.load(saved)
    with pytest.raises(ValueError, match="is not a torchrs checkpoint"):
        torchrs.load(tmp_path / "nowhere")


def test_save_refuses_an_architecture_it_could_not_load(tmp_path: Path) -> None:
    with pytest.raises(CheckpointFormatError, match="cannot rebuild a 'Lambda' layer"):
        torchrs.save(torch.nn.Identity(), tmp_path, {"class_name": "Lambda"})
