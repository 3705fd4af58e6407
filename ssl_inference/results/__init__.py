"""Two-stage results: statsmodels results whose default covariance includes the first stage."""
from .base import TwoStageResultsMixin
from .discrete import TwoStageLogitResults, TwoStagePoissonResults, TwoStageProbitResults
from .glm import TwoStageGLMResults
from .likelihood import (TwoStageGeneralizedPoissonResults, TwoStageLikelihoodResultsMixin,
                         TwoStageMNLogitResults, TwoStageNegativeBinomialResults,
                         TwoStageOrderedResults, TwoStageZeroInflatedPoissonResults)
from .linear import TwoStageOLSResults, TwoStageRegressionResults

__all__ = ["TwoStageResultsMixin", "TwoStageOLSResults", "TwoStageRegressionResults",
           "TwoStageGLMResults", "TwoStageLogitResults", "TwoStageProbitResults",
           "TwoStagePoissonResults", "TwoStageLikelihoodResultsMixin",
           "TwoStageNegativeBinomialResults", "TwoStageGeneralizedPoissonResults",
           "TwoStageZeroInflatedPoissonResults", "TwoStageMNLogitResults",
           "TwoStageOrderedResults"]
