"""Shared fixtures: small seeded two-stage problems, the formula-engine switch, a
loader for the benchmark scripts (``load_benchmark``) and a session cache of executed
notebooks (``executed_notebook``)."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# One BLAS thread: the tests' matrices are small, and on a shared 2-core machine a
# multithreaded BLAS spins against the other processes (5-10x slower under load). The
# variables reach the subprocesses (docs build, notebook kernels, replicate workers);
# threadpoolctl limits the BLAS numpy has already loaded.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import statsmodels.formula  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(1)

SCALES = np.array([3.0, 2.2, 1.5, 1.0, 0.6])
ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds


#: Modules of Monte Carlo checks and of the documentation build, marked ``slow``: the
#: inner loop is ``pytest -m "not slow"``; the README / CI command runs everything.
SLOW_MODULES = ("test_coverage_", "test_risk_validation", "test_docs")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name.startswith(SLOW_MODULES):
            item.add_marker(pytest.mark.slow)


def load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` as module ``name`` (once; later calls reuse it).

    The module is registered in ``sys.modules`` before it runs: dataclasses resolve their
    module through it, and a benchmark that imports another one by name gets this copy.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def make_problem(seed: int = 0, m: int = 400, n: int = 150, p: int = 5):
    """X_pre (m, p) and a labeled DataFrame with y, z, treat, g and raw columns x0..x{p-1}."""
    rng = np.random.default_rng(seed)
    scales = np.resize(SCALES, p)
    X_pre = rng.standard_t(6, size=(m, p)) * scales + 0.5
    X = rng.standard_t(6, size=(n, p)) * scales + 0.5
    z = 0.4 * X[:, -1] + rng.normal(size=n)
    treat = rng.integers(0, 2, size=n)
    y = 1.0 + 0.8 * X[:, 0] - 0.5 * X[:, 1] + 0.3 * z + 0.7 * treat + rng.normal(size=n)
    cols = [f"x{i}" for i in range(p)]
    df = pd.DataFrame(X, columns=cols)
    df["z"], df["treat"], df["y"] = z, treat, y
    df["g"] = rng.integers(0, 25, size=n)
    return X_pre, df, cols


@pytest.fixture
def problem():
    return make_problem()


@pytest.fixture(params=["patsy", "formulaic"])
def engine(request):
    old = statsmodels.formula.options.formula_engine
    statsmodels.formula.options.formula_engine = request.param
    yield request.param
    statsmodels.formula.options.formula_engine = old


@pytest.fixture(scope="session")
def executed_notebook(tmp_path_factory):
    """``run(path) -> Path``: execute a notebook and return its executed copy.

    The notebook runs top to bottom in a ``python3`` kernel, in its own directory, with
    at most ``CELL_TIMEOUT`` seconds per cell; an error in any cell fails the calling
    test. The executed copy is written to a session directory under the notebook's
    name, and later calls with the same notebook return it without running it again.
    """
    out_dir = tmp_path_factory.mktemp("executed_notebooks")
    done: dict[Path, Path] = {}

    def run(path) -> Path:
        path = Path(path).resolve()
        if path not in done:
            nb = nbformat.read(path, as_version=4)
            NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            errors = [o for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []) if o.output_type == "error"]
            assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
            nbformat.write(nb, out_dir / path.name)
            done[path] = out_dir / path.name
        return done[path]

    return run
