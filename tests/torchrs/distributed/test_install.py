"""``make torchrec`` (also run by ``make setup`` / ``make test``): the pins it installs are the ones that work."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

from torchrs.distributed._torchrec import TORCHREC_VERSION, torchrec_available

MAKEFILE = Path(__file__).parents[3] / "Makefile"


def _install_block() -> str:
    found = re.search(r"define install_torchrec\n(.*?)\nendef", MAKEFILE.read_text(), re.S)
    assert found, "Makefile has no install_torchrec block"
    return found.group(1)


def _pins() -> dict[str, str]:
    return dict(re.findall(r"([A-Za-z0-9_.-]+)==([0-9][0-9A-Za-z.]*)", _install_block()))


def test_makefile_installs_the_cpu_pair_without_dependencies() -> None:
    block = _install_block()
    assert (
        "--no-deps torchrec==" in block
    )  # its metadata would pull torchmetrics 1.0.3 and CUDA fbgemm-gpu
    assert _pins()["torchrec"] == TORCHREC_VERSION
    assert _pins()["fbgemm-gpu-cpu"] == TORCHREC_VERSION  # FBGEMM's own table pairs them
    assert "$(install_torchrec)" in MAKEFILE.read_text().split("touch $(STAMP)")[0]  # part of setup
    assert re.search(r"^torchrec: \$\(STAMP\)", MAKEFILE.read_text(), re.M)


@pytest.mark.skipif(
    not torchrec_available(), reason="TorchRec is not installed (optional: `make torchrec`)"
)
def test_installed_versions_are_the_pins() -> None:
    for name, version in _pins().items():
        assert metadata.version(name) == version, name
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("fbgemm-gpu")  # the CUDA wheel would shadow the CPU one
    major, minor = (int(x) for x in metadata.version("torchmetrics").split(".")[:2])
    assert (major, minor) >= (1, 3)  # torchrs's own need survived torchrec's pin
