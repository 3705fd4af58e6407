"""The quickstart notebook executes top to bottom, and the demo reports what changed."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ssl_inference import demo

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors


def test_demo_reports_naive_and_two_stage(capsys):
    assert demo.main(["demo", "--pretrain-rows", "300", "--labeled-rows", "400"]) == 0
    out = capsys.readouterr().out
    assert "NAIVE (plain statsmodels)" in out and "TWO-STAGE (ssl_inference)" in out
    assert "Covariance Type:            two-stage" in out
    assert "Covariance Type:                  HC1" in out
    match = re.search(r"the SE of (\w+) is ([\d.]+)% larger", out)
    assert match and float(match.group(2)) > 0


def test_demo_rejects_impossible_split():
    with pytest.raises(ValueError, match="n_pretrain \\+ n_labeled must be between"):
        demo.run(n_pretrain=20000, n_labeled=1000)
