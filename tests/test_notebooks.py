"""Every notebook executes top to bottom (the demo and command line: tests/test_cli.py)."""
from __future__ import annotations

import pytest

from .conftest import NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, executed_notebook):
    assert executed_notebook(path).is_file()
