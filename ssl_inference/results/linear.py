"""Two-stage results of least-squares second stages (OLS, WLS) and their pandas wrappers."""
from __future__ import annotations

from functools import cached_property

import numpy as np
import statsmodels.base.wrapper as wrap
from statsmodels.regression.linear_model import (OLSResults, RegressionResults,
                                                 RegressionResultsWrapper)

from ..exceptions import FirstStageBlindError
from ..hypotheses import nesting_restrictions
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


def _robust_covariance(name: str) -> cached_property:
    """``cov_HCx``: the two-stage covariance with a second-stage ``name`` estimator."""

    def cov(self) -> np.ndarray:
        return self._robust_cov(name)

    cov.__name__ = f"cov_{name}"
    cov.__doc__ = (f"Two-stage covariance with statsmodels' {name} second stage (see "
                   ":meth:`_robust_cov`); statsmodels' own after ``cov_type='naive'``.")
    return cached_property(cov)


def _robust_se(name: str) -> property:
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(getattr(self, f"cov_{name}")))

    se.__doc__ = f"Standard errors of :attr:`cov_{name}` (two-stage)."
    return property(se)


class _LeastSquaresSurfaceMixin:
    """statsmodels' least-squares results methods, made two-stage or refused."""

    def _robust_cov(self, name: str) -> np.ndarray:
        r"""Two-stage covariance with statsmodels' ``name`` (HC0-HC3) second stage.

        ``fit(cov_type=name)`` with this fit's ``pretrain_groups``, without refitting:
        statsmodels' ``cov_HCx`` of the second stage plus the first-stage part and,
        with overlap, the cross term built from the labeled influences weighted as
        the HCx estimator weights them (HC2: ``1/sqrt(1 - h_j)``, HC3: ``1/(1 - h_j)``)
        and the small-sample factors of the fit (:mod:`ssl_inference.covariance`).
        """
        plain = RegressionResults(self.model, np.asarray(self.params),
                                  normalized_cov_params=self.normalized_cov_params,
                                  scale=self.scale, cov_type=name)
        if self._spec.cov_type == "naive":
            return np.asarray(plain.cov_params())
        covariance = self._covariance
        if covariance.pretrain_index is not None and covariance.groups is not None:
            raise ValueError(
                f"cov_{name} is not available for this fit: it clusters overlapping samples "
                f"(groups shared with pretrain_groups), while {name} treats the labeled rows "
                "as independent units. Use cov_params() (the clustered two-stage "
                "covariance) or refit with another cluster definition.")
        engine = self.model._two_stage_covariance(
            plain, self._spec.with_second_stage(name), None, covariance.pretrain_groups,
            jacobian=covariance.jacobian)
        return engine.parts().total

    cov_HC0 = _robust_covariance("HC0")
    cov_HC1 = _robust_covariance("HC1")
    cov_HC2 = _robust_covariance("HC2")
    cov_HC3 = _robust_covariance("HC3")
    HC0_se = _robust_se("HC0")
    HC1_se = _robust_se("HC1")
    HC2_se = _robust_se("HC2")
    HC3_se = _robust_se("HC3")

    def compare_f_test(self, restricted):
        r"""Two-stage Wald F test of a restricted model nested in this one.

        The restricted model's design columns must be linear combinations of this
        model's (same rows, outcome and weights; learned features from the same fitted
        representation). The restrictions ``R beta = 0`` are read off the two designs
        (:func:`~ssl_inference.hypotheses.nesting_restrictions`) and tested with the
        two-stage covariance, ``F = (R beta)'(R V R')^{-1}(R beta) / r`` on ``(r,
        df_resid)`` degrees of freedom; it is statsmodels' sum-of-squares F test when
        ``V`` is the nonrobust second-stage covariance alone. Restrictions the
        symmetry group does not preserve are refused as in :meth:`wald_test`.

        Returns
        -------
        f_value, p_value, df_diff : float
        """
        if self._spec.cov_type == "naive":
            return super().compare_f_test(restricted)
        R = self._nesting_restrictions(restricted)
        test = self.wald_test((R, np.zeros(R.shape[0])), use_f=True, scalar=True)
        return float(np.squeeze(test.statistic)), float(test.pvalue), float(R.shape[0])

    def _nesting_restrictions(self, restricted) -> np.ndarray:
        other = getattr(restricted, "_results", restricted).model
        model = self.model
        n = model.exog.shape[0]
        same = (other.exog.shape[0] == n
                and np.allclose(np.asarray(other.endog), np.asarray(model.endog))
                and np.allclose(np.broadcast_to(np.asarray(getattr(other, "weights", 1.0),
                                                           dtype=float), n),
                                np.broadcast_to(np.asarray(model.weights, dtype=float), n)))
        if not same:
            raise ValueError(
                "compare_f_test needs the restricted model fitted to the same rows, outcome "
                "and weights as this one, with fewer (or combined) design columns. State "
                "the restrictions directly with res.wald_test('...').")
        return nesting_restrictions(model.exog, other.exog)

    def compare_lr_test(self, restricted, large_sample: bool = False):
        """Not available: the likelihood ratio treats the learned features as data.

        Raises :class:`~ssl_inference.exceptions.FirstStageBlindError`; use
        :meth:`compare_f_test` (two-stage Wald) instead.
        """
        if self._spec.cov_type == "naive":
            return super().compare_lr_test(restricted, large_sample=large_sample)
        raise FirstStageBlindError(
            "compare_lr_test() compares log-likelihoods (or, with large_sample=True, "
            "scores) of fits that treat the learned features as known data: its chi-square "
            "reference ignores the first-stage uncertainty, and there is no two-stage "
            "likelihood ratio. Use res.compare_f_test(restricted) (a two-stage Wald F test "
            "of the restrictions nesting the restricted model in this one), or "
            "res.wald_test('...') / res.wald_test_terms().")

    def compare_lm_test(self, restricted, demean: bool = True, use_lr: bool = False):
        """Not available: the score test treats the learned features as data.

        Raises :class:`~ssl_inference.exceptions.FirstStageBlindError`; use
        :meth:`compare_f_test` (two-stage Wald) instead.
        """
        if self._spec.cov_type == "naive":
            return super().compare_lm_test(restricted, demean=demean, use_lr=use_lr)
        raise FirstStageBlindError(
            "compare_lm_test() evaluates the scores of the restricted fit with the learned "
            "features treated as known data and the second-stage covariance of the scores "
            "only, ignoring the first stage; there is no two-stage version. Use "
            "res.compare_f_test(restricted) (two-stage Wald F test) or res.wald_test('...').")

    def el_test(self, *args, **kwargs):
        """Not available: empirical likelihood treats the learned features as data."""
        if self._spec.cov_type == "naive":
            return super().el_test(*args, **kwargs)
        raise FirstStageBlindError(_EMPIRICAL_LIKELIHOOD.format(method="el_test"))

    def conf_int_el(self, *args, **kwargs):
        """Not available: empirical likelihood treats the learned features as data."""
        if self._spec.cov_type == "naive":
            return super().conf_int_el(*args, **kwargs)
        raise FirstStageBlindError(_EMPIRICAL_LIKELIHOOD.format(method="conf_int_el"))

    @property
    def effects(self):
        """Not available (read by statsmodels' type I ``anova_lm``): the sequential sums
        of squares treat the learned features as data.

        Raises :class:`~ssl_inference.exceptions.FirstStageBlindError`; ``anova_lm(res,
        typ=2)`` or ``typ=3`` give per-term Wald F tests with the two-stage covariance.
        """
        if self._spec.cov_type == "naive":
            raise AttributeError("effects")  # statsmodels' results have none (QR of anova)
        raise FirstStageBlindError(
            "Type I (sequential) ANOVA, statsmodels' anova_lm(res) default typ=1, builds F "
            "tests from sums of squares that treat the learned features as known data, and "
            "has no two-stage version. Use anova_lm(res, typ=2) or typ=3 (per-term Wald F "
            "tests with the two-stage covariance; robust='hc0'...'hc3' picks the second-stage "
            "estimator), or res.wald_test_terms().")


_EMPIRICAL_LIKELIHOOD = (
    "{method}() builds an empirical likelihood from the second-stage estimating equations "
    "with the learned features treated as known data, ignoring the first stage; there is no "
    "two-stage version. Use res.t_test('...') / res.wald_test('...') and res.conf_int(), "
    "which use the two-stage covariance.")


class TwoStageRegressionResults(_LeastSquaresSurfaceMixin, _LeastSquaresRiskMixin,
                                TwoStageResultsMixin, RegressionResults):
    """Two-stage results of a WLS second stage."""


class TwoStageOLSResults(_LeastSquaresSurfaceMixin, _LeastSquaresRiskMixin,
                         TwoStageResultsMixin, OLSResults):
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
