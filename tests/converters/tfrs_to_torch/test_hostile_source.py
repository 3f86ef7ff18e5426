"""Hostile inputs, class 1: the converter never touches its source.

``--out`` equal to, inside, or containing the model (symbolic links followed) is refused with or
without ``--overwrite``, and ``--overwrite`` replaces only a previous torchrs conversion. Each case
checks the exit status, the one ``error:`` line, and that the source and its surroundings are
byte-for-byte unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf


@pytest.fixture
def workdir(exports, tmp_path: Path) -> Path:
    """A copy of each export kind, plus an unrelated file beside them."""
    shutil.copytree(exports.tower_keras, tmp_path / "models" / "tower")
    shutil.copy(exports.tower_keras_archive, tmp_path / "models" / "int_tower.keras")
    shutil.copytree(exports.weights, tmp_path / "models" / "weights")
    (tmp_path / "models" / "notes.txt").write_text("unrelated work\n")
    return tmp_path / "models"


class TestOutRelativeToSource:
    @pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "overwrite"])
    @pytest.mark.parametrize(
        "model, out, relation",
        [
            ("tower", "tower", "is the model"),
            ("tower", ".", "contains the model"),
            ("tower", "tower/converted", "is inside the model"),
            ("tower", "tower/variables", "is inside the model"),
            ("int_tower.keras", ".", "contains the model"),
            ("weights", "weights", "is the model"),
            ("weights", ".", "contains the model"),
        ],
    )
    def test_refused(self, workdir, run_cli, tree, model, out, relation, overwrite) -> None:
        before = tree.snapshot(workdir)
        run = run_cli(workdir / model, "--out", workdir / out, *overwrite)
        run.one_error(relation, "never writes into, over or around its source")
        assert tree.snapshot(workdir) == before

    def test_symlink_to_the_source(self, workdir, run_cli, tree, tmp_path) -> None:
        link = tmp_path / "link"
        link.symlink_to(workdir)
        before = tree.snapshot(workdir)
        run = run_cli(workdir / "tower", "--out", link, "--overwrite")
        run.one_error("symbolic link")
        assert tree.snapshot(workdir) == before and link.is_symlink()

    def test_parent_reached_through_a_symlinked_model_path(
        self, workdir, run_cli, tree, tmp_path
    ) -> None:
        alias = tmp_path / "alias"
        alias.symlink_to(workdir / "tower")
        before = tree.snapshot(workdir)
        run = run_cli(alias, "--out", workdir, "--overwrite")
        run.one_error("contains the model")
        assert tree.snapshot(workdir) == before


class TestOverwrite:
    def test_refuses_a_directory_that_is_not_a_conversion(
        self, workdir, run_cli, tree, tmp_path
    ) -> None:
        other = tmp_path / "photos"
        other.mkdir()
        (other / "cat.jpg").write_bytes(b"\xff\xd8 not a model")
        before = tree.snapshot(other)
        run = run_cli(workdir / "tower", "--out", other, "--overwrite")
        run.one_error("replaces only a previous torchrs conversion")
        assert tree.snapshot(other) == before

    def test_replaces_a_previous_conversion(self, workdir, run_cli, tree, tmp_path) -> None:
        out = tmp_path / "converted"
        assert run_cli(workdir / "tower", "--out", out).code == 0
        (out / "stale.txt").write_text("from the previous conversion")
        before = tree.snapshot(workdir)
        assert run_cli(workdir / "tower", "--out", out, "--overwrite").code == 0
        assert (out / "torchrs.json").is_file() and not (out / "stale.txt").exists()
        assert tree.snapshot(workdir) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["converted", "models"]
