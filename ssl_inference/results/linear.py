"""Two-stage results of least-squares second stages (OLS, WLS) and their pandas wrappers."""
from __future__ import annotations

import statsmodels.base.wrapper as wrap
from statsmodels.regression.linear_model import (OLSResults, RegressionResults,
                                                 RegressionResultsWrapper)

from .base import TwoStageResultsMixin

__all__ = ["TwoStageOLSResults", "TwoStageRegressionResults"]


class TwoStageRegressionResults(TwoStageResultsMixin, RegressionResults):
    """Two-stage results of a WLS second stage."""


class TwoStageOLSResults(TwoStageResultsMixin, OLSResults):
    """Two-stage results of an OLS second stage."""


class TwoStageRegressionResultsWrapper(RegressionResultsWrapper):
    _attrs = {"bse_naive": "columns"}
    _wrap_attrs = wrap.union_dicts(RegressionResultsWrapper._wrap_attrs, _attrs)
    _methods = {"cov_params_naive": "cov"}
    _wrap_methods = wrap.union_dicts(RegressionResultsWrapper._wrap_methods, _methods)


class TwoStageOLSResultsWrapper(TwoStageRegressionResultsWrapper):
    pass


wrap.populate_wrapper(TwoStageRegressionResultsWrapper, TwoStageRegressionResults)
wrap.populate_wrapper(TwoStageOLSResultsWrapper, TwoStageOLSResults)
TwoStageRegressionResults._wrapper_class = TwoStageRegressionResultsWrapper
TwoStageOLSResults._wrapper_class = TwoStageOLSResultsWrapper
