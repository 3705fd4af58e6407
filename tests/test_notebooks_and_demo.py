"""Every notebook executes top to bottom, and the demo reports what changed."""
from __future__ import annotations

import re

import pytest

from ssl_inference import demo

from .conftest import NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, executed_notebook):
    assert executed_notebook(path).is_file()


def test_demo_reports_naive_and_two_stage(capsys):
    assert demo.main(["demo", "--pretrain-rows", "300", "--labeled-rows", "400"]) == 0
    out = capsys.readouterr().out
    assert "NAIVE (plain statsmodels)" in out and "TWO-STAGE (ssl_inference)" in out
    assert "Covariance Type:        two-stage HC1" in out
    assert "Covariance Type:                  HC1" in out
    match = re.search(r"the SE of (\w+) is ([\d.]+)% larger", out)
    assert match and float(match.group(2)) > 0


def test_demo_rejects_impossible_split():
    with pytest.raises(ValueError, match="n_pretrain \\+ n_labeled must be between"):
        demo.run(n_pretrain=20000, n_labeled=1000)
