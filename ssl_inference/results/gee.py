"""Two-stage results of GEE second stages and their pandas wrapper."""
from __future__ import annotations

import numpy as np
import statsmodels.base.wrapper as wrap
from statsmodels.genmod.generalized_estimating_equations import (GEEResults,
                                                                  GEEResultsWrapper)

from ..exceptions import FirstStageBlindError
from .base import WRAP_ATTRS, TwoStageResultsWrapperMixin, wrap_methods
from .glm import TwoStageGLMResults

__all__ = ["TwoStageGEEResults"]


def _blind_covariance(name: str, meaning: str) -> property:
    """statsmodels' ``name`` covariance attribute: its own after ``cov_type="naive"``,
    refused for two-stage results (it treats the learned features as known)."""

    def get(self):
        if self._spec.cov_type == "naive":
            return self.__dict__[name]
        raise FirstStageBlindError(
            f"{name} is statsmodels' {meaning} covariance of the second stage with the "
            "learned features treated as known data; it has no first-stage term. Use "
            "res.cov_params() (two-stage robust); res.cov_params_naive() is statsmodels' "
            "covariance of this fit, and fit(cov_type='naive', cov_kwds={'second_stage': "
            "...}) gives statsmodels' other GEE covariances.")

    get.__doc__ = (f"statsmodels' {meaning} covariance after ``cov_type='naive'``; raises "
                   ":class:`~ssl_inference.exceptions.FirstStageBlindError` otherwise.")
    return property(get)


class TwoStageGEEResults(TwoStageGLMResults, GEEResults):
    """Two-stage results of a GEE second stage.

    ``cov_params()``, ``bse``, tests, intervals, ``summary()``, ``get_prediction()``
    (the two-stage delta method on the mean or the linear predictor) use the two-stage
    robust covariance of :mod:`ssl_inference.models.gee`; statsmodels' first-stage
    blind quantities (``cov_naive``, ``cov_robust_bc``, ``qic``, ``score_test``,
    ``sensitivity_params``, ``get_margeff``, ``get_influence``) raise
    :class:`~ssl_inference.exceptions.FirstStageBlindError` unless the fit was
    ``cov_type="naive"``.
    """

    @property
    def bse(self) -> np.ndarray:
        """Standard errors of ``cov_params()`` (two-stage robust)."""
        if self._spec.cov_type == "naive":
            return GEEResults.standard_errors(self, self.cov_type)
        return np.sqrt(np.diag(self.cov_params()))

    def standard_errors(self, cov_type: str = "robust") -> np.ndarray:
        """Standard errors: ``"robust"`` is the two-stage robust covariance's.

        statsmodels' ``"naive"`` and ``"bias_reduced"`` treat the learned features as
        known and are refused (available after ``fit(cov_type="naive")``).
        """
        if self._spec.cov_type == "naive":
            return super().standard_errors(cov_type)
        if cov_type != "robust":
            raise FirstStageBlindError(
                f"standard_errors({cov_type!r}) is statsmodels' {cov_type} GEE covariance "
                "with the learned features treated as known; there is no two-stage "
                "version. res.bse (= standard_errors('robust')) is the two-stage robust "
                "standard error.")
        return self.bse

    cov_robust = property(
        lambda self: (self.__dict__["cov_robust"] if self._spec.cov_type == "naive"
                      else self.cov_params()),
        doc="The robust covariance: two-stage (statsmodels' own after cov_type='naive').")
    cov_naive = _blind_covariance("cov_naive", "model-based (naive)")
    cov_robust_bc = _blind_covariance("cov_robust_bc", "bias-reduced (Mancl-DeRouen)")

    def _refuse(self, method: str, reason: str, alternative: str) -> None:
        raise FirstStageBlindError(f"{method} {reason} with the learned features treated "
                                   f"as known data; there is no two-stage version. "
                                   f"{alternative}")

    def qic(self, *args, **kwargs):
        """Not available: QIC's penalty is built from first-stage blind covariances."""
        if self._spec.cov_type == "naive":
            return super().qic(*args, **kwargs)
        self._refuse("qic()", "penalises the quasi-likelihood by trace(Omega^-1 V) with "
                     "statsmodels' model-based and robust covariances of the second stage",
                     "Compare working correlations on the fit itself (both are consistent "
                     "for beta) and test coefficients with res.wald_test('...').")

    def sensitivity_params(self, *args, **kwargs):
        """Not available: refits with fixed working correlations and first-stage blind
        standard errors."""
        if self._spec.cov_type == "naive":
            return super().sensitivity_params(*args, **kwargs)
        self._refuse("sensitivity_params()", "refits the plain GEE at a grid of working "
                     "correlation parameters and reports their statsmodels results",
                     "Refit ssi.GEE with cov_struct set to each working correlation of "
                     "interest (the two-stage covariance holds it fixed at its estimate).")

    def get_margeff(self, *args, **kwargs):
        """Not available for GEE: statsmodels' GEE margins hold the features fixed.

        Average marginal effects of covariates are contrasts of predictions: use
        :meth:`get_prediction` (two-stage delta method) at the rows of interest.
        """
        if self._spec.cov_type == "naive":
            return GEEResults.get_margeff(self, *args, **kwargs)
        self._refuse("get_margeff()", "differentiates the GEE mean and scales the effects "
                     "by statsmodels' covariance",
                     "Predict the mean at shifted covariate values with res.get_prediction"
                     "(...) (two-stage delta method) and contrast them.")

    def get_robustcov_results(self, *args, **kwargs):
        """Not available: GEE's covariance is the robust sandwich clustered by its groups."""
        raise ValueError(
            "get_robustcov_results() changes the second-stage estimator (HC0-HC3, cluster) "
            "of least-squares and likelihood fits; GEE's two-stage covariance is the robust "
            "sandwich clustered by the model's groups and has no other second stage. "
            "statsmodels' model-based and bias-reduced GEE covariances (learned features "
            "treated as known) are fit(cov_type='naive', cov_kwds={'second_stage': "
            "'naive'}) and {'second_stage': 'bias_reduced'}.")

    def risk_asymptotics(self, *args, **kwargs):
        """Not available: the deviance-risk law assumes independent labeled rows."""
        raise NotImplementedError(
            "risk_asymptotics() is derived for independent labeled rows (GLM and "
            "likelihood second stages); with clustered rows and a working correlation the "
            "fine-tuning part of the risk law has another form. Fit ssi.GLM(...) for "
            "independent rows.")


class TwoStageGEEResultsWrapper(TwoStageResultsWrapperMixin, GEEResultsWrapper):
    _wrap_attrs = wrap.union_dicts(GEEResultsWrapper._wrap_attrs, WRAP_ATTRS)
    _wrap_methods = wrap_methods(GEEResultsWrapper)


wrap.populate_wrapper(TwoStageGEEResultsWrapper, TwoStageGEEResults)
TwoStageGEEResults._wrapper_class = TwoStageGEEResultsWrapper
