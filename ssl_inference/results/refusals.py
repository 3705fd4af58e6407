"""Refusals of statsmodels results methods that several two-stage results share.

Each mixin replaces one statsmodels method whose numbers hold the learned features
fixed and have no two-stage version: it raises
:class:`~ssl_inference.exceptions.FirstStageBlindError` naming the alternative, and is
statsmodels' own method after ``fit(cov_type="naive")``. Put the mixin before the
statsmodels results class in the bases.
"""
from __future__ import annotations

from ..exceptions import FirstStageBlindError

__all__ = ["DiagnosticRefused", "ScoreTestRefused"]


class ScoreTestRefused:
    """``score_test`` refused (GLM, discrete and likelihood results)."""

    def score_test(self, *args, **kwargs):
        """Not available: the score (Lagrange multiplier) test holds the features fixed.

        Raises :class:`~ssl_inference.exceptions.FirstStageBlindError`; after
        ``fit(cov_type="naive")`` this is statsmodels' method.
        """
        if self._spec.cov_type == "naive":
            return super().score_test(*args, **kwargs)
        raise FirstStageBlindError(
            "score_test() evaluates the second-stage score at restricted estimates with the "
            "learned features treated as known data; its chi-square reference ignores the "
            "first stage and there is no two-stage version. Test the restrictions with "
            "res.wald_test('...') or res.wald_test_terms() (two-stage covariance); to test "
            "added variables, fit the larger model and test their coefficients.")


class DiagnosticRefused:
    """``get_diagnostic`` refused (count models)."""

    def get_diagnostic(self, *args, **kwargs):
        """Not available: statsmodels' count-model specification tests hold the features
        fixed.

        Raises :class:`~ssl_inference.exceptions.FirstStageBlindError`; after
        ``fit(cov_type="naive")`` this is statsmodels' method.
        """
        if self._spec.cov_type == "naive":
            return super().get_diagnostic(*args, **kwargs)
        raise FirstStageBlindError(
            "get_diagnostic() returns statsmodels' specification tests of the count model "
            "(dispersion, zero inflation, probabilities), computed with the learned "
            "features held fixed: their reference distributions account for the estimated "
            "coefficients but not for the estimated first stage, and there is no two-stage "
            "version. For diagnostics of the second stage given the features use "
            "res.model.fit(cov_type='naive').get_diagnostic().")
