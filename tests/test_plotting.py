"""Figures are drawn from the results' own numbers, with labelled axes (Agg backend)."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest

import ssl_inference as ssi

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    scales = np.array([3.0, 2.0, 1.0, 0.5])
    rep = ssi.PCA(2).fit(rng.normal(size=(150, 4)) * scales)
    X = rng.normal(size=(2000, 4)) * scales
    y = 1 + X[:, 0] + X[:, 1] + rng.normal(size=2000)
    return ssi.OLS(y, np.ones((2000, 1)), representation=rep, features=X).fit()


def test_standard_error_bars_are_the_results_numbers(fitted):
    ax = fitted.plot_standard_errors()
    bars = [p.get_width() for p in ax.patches]
    d = len(fitted.params)
    np.testing.assert_allclose(bars[:d], fitted.bse_naive[::-1][::-1])
    np.testing.assert_allclose(bars[d:], fitted.bse)
    assert ax.get_xlabel() == "standard error"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(fitted.model.exog_names)
    texts = [t.get_text() for t in ax.texts]
    ratio = fitted.bse / fitted.bse_naive
    assert texts[0].startswith(f"x{ratio[0]:.2f}")
    plt.close(ax.figure)


def test_pretrain_size_curve(fitted):
    risk = fitted.risk_asymptotics()
    ax = risk.plot_pretrain_size(sizes=[50, 150, 1000])
    mean = ax.lines[0].get_ydata()
    np.testing.assert_allclose(mean, risk.fine_tuning + risk.pretrain_law.mean
                               / np.array([50, 150, 1000]))
    hlines = sorted(line.get_ydata()[0] for line in ax.lines[1:3])
    assert hlines == pytest.approx(sorted([risk.fine_tuning,
                                           risk.sigma2 * risk.d_base / risk.nobs]))
    assert any("crossover" in t.get_text() for t in ax.texts)
    assert ax.get_xscale() == "log" and "pre-training rows m" in ax.get_xlabel()
    assert ax.get_ylabel() == "excess test risk R - sigma^2"
    plt.close(ax.figure)


def test_risk_density_still_draws(fitted):
    ax = fitted.risk_asymptotics().plot()
    assert ax.get_ylabel() == "density" and ax.get_xlabel() == "n (R - sigma^2)"
    plt.close(ax.figure)
