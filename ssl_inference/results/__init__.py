"""Two-stage results: statsmodels results whose default covariance includes the first stage."""
from .base import TwoStageResultsMixin
from .discrete import TwoStageLogitResults, TwoStagePoissonResults, TwoStageProbitResults
from .gee import TwoStageGEEResults
from .glm import TwoStageGLMResults
from .likelihood import (TwoStageGeneralizedPoissonResults, TwoStageLikelihoodResultsMixin,
                         TwoStageMNLogitResults, TwoStageNegativeBinomialResults,
                         TwoStageOrderedResults, TwoStageZeroInflatedPoissonResults)
from .linear import TwoStageOLSResults, TwoStageRegressionResults
from .quantreg import TwoStageQuantRegResults

__all__ = ["TwoStageResultsMixin", "TwoStageOLSResults", "TwoStageRegressionResults",
           "TwoStageGLMResults", "TwoStageGEEResults", "TwoStageLogitResults",
           "TwoStageProbitResults",
           "TwoStagePoissonResults", "TwoStageLikelihoodResultsMixin",
           "TwoStageNegativeBinomialResults", "TwoStageGeneralizedPoissonResults",
           "TwoStageZeroInflatedPoissonResults", "TwoStageMNLogitResults",
           "TwoStageOrderedResults", "TwoStageQuantRegResults"]
