"""The floors of docs/architecture.md hold: each layer imports only from the layers below,
and the simulators import nothing of the adapters or the engine (the contracts are in
pyproject.toml, [tool.importlinter])."""

from __future__ import annotations

import os
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).parents[2]


def test_every_import_contract_is_kept() -> None:
    here = Path.cwd()
    os.chdir(ROOT)  # the contracts are read from pyproject.toml in the working directory
    try:
        assert lint_imports(no_cache=True) == 0, "an import crosses a floor: run `make lint`"
    finally:
        os.chdir(here)
