"""ssl_inference: two-stage inference on learned representations, in statsmodels' idiom.

>>> import numpy as np, ssl_inference as ssi
>>> X_pre = np.random.default_rng(0).normal(size=(500, 4)) * [3.0, 2.0, 1.0, 0.5]
>>> ssi.PCA(2).fit(X_pre).symmetry_.symbol
'{+-1}^2'
"""
from . import risk, symmetry, testing
from .adapters import from_sklearn, from_statsmodels
from .anova import install_anova_guard
from .exceptions import (ConvergenceWarning, GaugeDependentWarning, IdentificationWarning,
                         NonInvariantHypothesisError, NotFittedError)
from .models import (GEE, GLM, OLS, WLS, QuantReg, GeneralizedPoisson, Logit, MNLogit, NegativeBinomial,
                     OrderedModel, Poisson, Probit, ZeroInflatedPoisson)
from .representations import (PCA, FactorModel, GaussianMixture, MEstimatorBase,
                              MEstimatorRepresentation, Representation, SpectralContrastive)
from .symmetry import align

__version__ = "0.1.0"

install_anova_guard()  # statsmodels' anova_lm refuses several-model tables of two-stage fits

__all__ = ["PCA", "FactorModel", "GaussianMixture", "SpectralContrastive",
           "MEstimatorRepresentation", "MEstimatorBase", "Representation", "align",
           "from_sklearn", "from_statsmodels", "OLS", "WLS", "GLM", "Logit", "Probit",
           "Poisson", "GEE", "QuantReg", "NegativeBinomial", "GeneralizedPoisson", "ZeroInflatedPoisson",
           "MNLogit", "OrderedModel", "risk", "symmetry", "testing", "NotFittedError",
           "NonInvariantHypothesisError", "IdentificationWarning", "GaugeDependentWarning",
           "ConvergenceWarning", "__version__"]
