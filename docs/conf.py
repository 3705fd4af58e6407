"""Sphinx configuration of the ssl_inference documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.

Notebooks live in ``notebooks/`` at the repository root. At build time they are copied
into ``docs/notebooks/`` (generated, git-ignored), which ``examples.md`` lists with a glob:

* if ``SSL_INFERENCE_EXECUTED_NOTEBOOKS`` names a directory, its notebooks are copied
  and rendered as they are (already executed, e.g. by the test suite);
* otherwise ``../notebooks/*.ipynb`` are copied and executed during the build, and an
  error in any cell fails it.

The validation page reads what ``benchmarks/`` writes to ``../benchmarks/results``: the
Markdown tables and the figures directly, the CSVs through the substitutions built by
``benchmark_tables.py``. The build therefore needs the repository layout: ``docs/`` next
to ``benchmarks/`` (with its results) and, unless the variable is set, ``notebooks/``.
"""
from __future__ import annotations

import doctest
import os
import shutil
import sys
from pathlib import Path

import ssl_inference

DOCS = Path(__file__).resolve().parent
BENCHMARKS = DOCS.parent / "benchmarks"
RESULTS = BENCHMARKS / "results"
sys.path[:0] = [str(DOCS), str(BENCHMARKS)]
from _coverage import BAND  # noqa: E402  (the coverage tables' target band)
from benchmark_tables import substitutions  # noqa: E402
EXECUTED_ENV = "SSL_INFERENCE_EXECUTED_NOTEBOOKS"

# -- project --------------------------------------------------------------------------
project = "ssl_inference"
author = "the ssl_inference developers"
copyright = "2026, the ssl_inference developers"
release = version = ssl_inference.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "matplotlib.sphinxext.plot_directive",
    "numpydoc",
    "myst_nb",
    "sphinx_copybutton",
]
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
templates_path = ["_templates"]

# -- API reference ----------------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"  # numpydoc sections carry the types
numpydoc_show_class_members = False  # the class template lists members instead
numpydoc_xref_param_type = False

# -- examples in the pages: {testcode}/{testoutput}/{doctest}, run by ``-b doctest`` ---------
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
doctest_test_doctest_blocks = ""  # docstring examples are run by pytest --doctest-modules
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]

# copy buttons leave out the ">>> " / "... " prompts and, in doctest blocks, the output
# (blocks without prompts are copied whole)
copybutton_prompt_text = r">>> |\.\.\. "
copybutton_prompt_is_regexp = True

# -- MyST and notebooks -------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "substitution"]
myst_heading_anchors = 3
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True  # a failing cell's traceback on the console
nb_merge_streams = True
# widget outputs (e.g. a notebook progress bar) have no static rendering
suppress_warnings = ["mystnb.unknown_mime_type"]


def copy_notebooks(target: Path) -> str:
    """Fill ``target`` with the notebooks to render; return the execution mode."""
    executed = os.environ.get(EXECUTED_ENV)
    source = Path(executed) if executed else DOCS.parent / "notebooks"
    if not source.is_dir():
        raise FileNotFoundError(f"notebook directory {source} does not exist"
                                + (f" (set by {EXECUTED_ENV})" if executed else ""))
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for notebook in sorted(source.glob("*.ipynb")):
        shutil.copy2(notebook, target / notebook.name)
    return "off" if executed else "force"


nb_execution_mode = copy_notebooks(DOCS / "notebooks")


# -- tables of the validation page, from the benchmark CSVs ------------------------------
myst_substitutions = substitutions(RESULTS, BAND)

# -- HTML ---------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"ssl_inference {release}"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
