"""Second-stage models: thin statsmodels subclasses sharing one two-stage mixin."""
from .discrete import Logit, Poisson, Probit
from .glm import GLM
from .likelihood import (GeneralizedPoisson, MNLogit, NegativeBinomial, OrderedModel,
                         ZeroInflatedPoisson)
from .linear import OLS, WLS

__all__ = ["OLS", "WLS", "GLM", "Logit", "Probit", "Poisson", "NegativeBinomial",
           "GeneralizedPoisson", "ZeroInflatedPoisson", "MNLogit", "OrderedModel"]
