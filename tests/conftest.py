"""Shared fixtures: small seeded two-stage problems and the formula-engine switch."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula

SCALES = np.array([3.0, 2.2, 1.5, 1.0, 0.6])


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
