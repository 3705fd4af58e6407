"""Two-stage results of least-squares second stages (OLS, WLS) and their pandas wrappers."""
from __future__ import annotations

import statsmodels.base.wrapper as wrap
from statsmodels.regression.linear_model import (OLSResults, RegressionResults,
                                                 RegressionResultsWrapper)

from .base import (WRAP_ATTRS, TwoStageResultsMixin, TwoStageResultsWrapperMixin,
                   wrap_methods)

__all__ = ["TwoStageOLSResults", "TwoStageRegressionResults"]


class _LeastSquaresRiskMixin:
    """The downstream test-risk limit (THEORY.md §6), defined for least squares only."""

    def risk_asymptotics(self):
        r"""Plug-in limiting law of the downstream test risk (the paper's main theorem).

        ``n (R - sigma^2) -> sigma^2 d_eff + alpha^{-1} ||L(Z)||^2`` with
        ``||L(Z)||^2 ~ sum_j kappa_j chi2_1``, ``kappa = eig(V^{1/2} G V^{1/2})``
        estimated from the residualised directional derivatives of the fitted
        regression function (``G``) and the first-stage influences (``V``); see
        :meth:`ssl_inference.risk.RiskAsymptotics.from_results`.

        Returns
        -------
        ssl_inference.risk.RiskAsymptotics
            ``mean``, ``var``, ``quantile``, ``cdf``, ``decomposition()``,
            ``crossover_alpha()``, ``pretrain_size_for()``, ``plot()``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> scales = np.array([3.0, 2.0, 1.0, 0.5])
        >>> rep = ssi.PCA(2).fit(rng.normal(size=(1000, 4)) * scales)
        >>> X = rng.normal(size=(500, 4)) * scales
        >>> y = 1 + X[:, 0] + X[:, 1] + rng.normal(size=500)
        >>> ra = ssi.OLS(y, np.ones((500, 1)), representation=rep, features=X).fit(
        ...     ).risk_asymptotics()
        >>> ra.d_eff, ra.alpha, ra.d_base
        (3, 2.0, 5)
        >>> bool(ra.mean > ra.sigma2 * ra.d_eff)
        True
        """
        from ..risk import RiskAsymptotics
        return RiskAsymptotics.from_results(self)


class TwoStageRegressionResults(_LeastSquaresRiskMixin, TwoStageResultsMixin,
                                RegressionResults):
    """Two-stage results of a WLS second stage."""


class TwoStageOLSResults(_LeastSquaresRiskMixin, TwoStageResultsMixin, OLSResults):
    """Two-stage results of an OLS second stage."""


class TwoStageRegressionResultsWrapper(TwoStageResultsWrapperMixin, RegressionResultsWrapper):
    _wrap_attrs = wrap.union_dicts(RegressionResultsWrapper._wrap_attrs, WRAP_ATTRS)
    _wrap_methods = wrap_methods(RegressionResultsWrapper)


class TwoStageOLSResultsWrapper(TwoStageRegressionResultsWrapper):
    pass


wrap.populate_wrapper(TwoStageRegressionResultsWrapper, TwoStageRegressionResults)
wrap.populate_wrapper(TwoStageOLSResultsWrapper, TwoStageOLSResults)
TwoStageRegressionResults._wrapper_class = TwoStageRegressionResultsWrapper
TwoStageOLSResults._wrapper_class = TwoStageOLSResultsWrapper
