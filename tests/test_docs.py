"""The documentation builds with warnings as errors, the examples in its pages give the
outputs printed there, the validation page shows the benchmark tables, and every notebook
executes top to bottom (the demo and command line: tests/test_cli.py).

Sphinx runs in a subprocess on a copy of ``docs/`` and ``benchmarks/`` (the layout
``docs/conf.py`` expects), so the generated files stay out of the repository; the
notebooks are executed once per session (``executed_notebook``) and handed to the build
through ``SSL_INFERENCE_EXECUTED_NOTEBOOKS``.
"""
from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import ssl_inference
import ssl_inference.formula.api as smf
from ssl_inference import exceptions

from .conftest import BENCHMARKS, NOTEBOOKS, ROOT, load_benchmark

RESULTS = BENCHMARKS / "results"
PAGES = ["index", "getting_started", "examples", "theory", "validation", "api",
         "user_guide/index", "user_guide/first_stages", "user_guide/own_first_stage",
         "user_guide/formulas", "user_guide/covariance", "user_guide/likelihood",
         "user_guide/estimating_equations", "user_guide/overlap_clusters", "user_guide/invariant_tests", "user_guide/risk",
         "user_guide/out_of_core"]


def sphinx(builder: str, tree: Path, env: dict) -> subprocess.CompletedProcess:
    """``python -m sphinx -W --keep-going -b builder`` on ``tree/docs``, output in
    ``tree/builder``; the builders share one doctree cache."""
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
               "-d", str(tree / "doctrees"), str(tree / "docs"), str(tree / builder)]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def docs_tree(tmp_path_factory, executed_notebook):
    """A copy of ``docs/`` and ``benchmarks/``, executed notebooks, and the environment
    that points the build at them."""
    tree = tmp_path_factory.mktemp("docs")
    generated = shutil.ignore_patterns("_build", "notebooks", "generated", "__pycache__")
    shutil.copytree(ROOT / "docs", tree / "docs", ignore=generated)
    shutil.copytree(BENCHMARKS, tree / "benchmarks", ignore=generated)
    executed = tree / "executed_notebooks"
    executed.mkdir()
    for notebook in NOTEBOOKS:
        shutil.copy(executed_notebook(notebook), executed / notebook.name)
    env = {**os.environ, "SSL_INFERENCE_EXECUTED_NOTEBOOKS": str(executed)}
    return tree, env


@pytest.fixture(scope="module")
def html_dir(docs_tree) -> Path:
    tree, env = docs_tree
    build = sphinx("html", tree, env)
    assert build.returncode == 0, build.stderr[-5000:]
    return tree / "html"


def test_html_has_every_page(html_dir):
    for page in PAGES:
        assert (html_dir / f"{page}.html").is_file(), page
    for notebook in NOTEBOOKS:
        assert (html_dir / "notebooks" / f"{notebook.stem}.html").is_file(), notebook.name


def test_api_reference_covers_the_public_names(html_dir):
    documented = {page.stem for page in (html_dir / "api" / "generated").glob("*.html")}
    public = {
        "ssl_inference": set(ssl_inference.__all__) - {"risk", "symmetry", "testing",
                                                        "__version__"},
        "ssl_inference.testing": set(ssl_inference.testing.__all__),
        "ssl_inference.risk": set(ssl_inference.risk.__all__),
        "ssl_inference.symmetry": set(ssl_inference.symmetry.__all__) - {"align"},
        "ssl_inference.formula.api": set(smf.__all__),
        "ssl_inference.exceptions": set(exceptions.__all__),
    }
    for module, names in public.items():
        for name in names:  # on its own page, under the package or its module
            assert any(page.startswith("ssl_inference.") and page.endswith(f".{name}")
                       for page in documented), f"{module}.{name}"


def test_validation_page_shows_the_benchmark_tables(html_dir):
    page = (html_dir / "validation.html").read_text()
    coverage = load_benchmark("_coverage")
    for csv in sorted(RESULTS.glob("coverage_*.csv")):
        # the first row's naive and two-stage cells, formatted as the tables format them
        for cell in coverage.coverage_cells(pd.read_csv(csv).iloc[0]).split(" | "):
            assert f"<td><p>{cell}</p></td>" in page, (csv.name, cell)
    for md in sorted(RESULTS.glob("*.md")):
        title = md.read_text().splitlines()[0].lstrip("# ")
        assert html.escape(title, quote=False) in page, md.name
    speed = pd.read_csv(RESULTS / "bench_two_stage.csv").iloc[0]
    assert f"<td><p>{speed['ratio']:.3g}</p></td>" in page
    for figure in ["coverage.png", "risk_validation.png"]:
        assert (html_dir / "_images" / figure).is_file(), figure


def test_page_examples_print_what_the_pages_show(docs_tree, html_dir):
    """``{testcode}``/``{testoutput}`` and ``{doctest}`` blocks of the pages (the doctest
    builder runs after the HTML build and reuses its doctree cache)."""
    tree, env = docs_tree
    run = sphinx("doctest", tree, env)
    assert run.returncode == 0, (tree / "doctest" / "output.txt").read_text()[-5000:]


def test_coverage_figure_is_drawn_from_the_tables(tmp_path):
    out = load_benchmark("plot_validation").figure(RESULTS, tmp_path / "coverage.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, executed_notebook):
    """Every notebook executes top to bottom (in this module so that, with
    ``pytest -n``, one worker executes them for the docs build and this test)."""
    assert executed_notebook(path).is_file()
