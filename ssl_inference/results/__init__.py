"""Two-stage results: statsmodels results whose default covariance includes the first stage."""
from .base import TwoStageResultsMixin
from .linear import TwoStageOLSResults, TwoStageRegressionResults

__all__ = ["TwoStageResultsMixin", "TwoStageOLSResults", "TwoStageRegressionResults"]
