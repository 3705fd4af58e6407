"""Second-stage models: thin statsmodels subclasses sharing one two-stage mixin."""
from .discrete import Logit, Poisson, Probit
from .gee import GEE
from .glm import GLM
from .likelihood import (GeneralizedPoisson, MNLogit, NegativeBinomial, OrderedModel,
                         ZeroInflatedPoisson)
from .linear import OLS, WLS
from .quantreg import QuantReg

__all__ = ["OLS", "WLS", "GLM", "GEE", "Logit", "Probit", "Poisson", "NegativeBinomial",
           "GeneralizedPoisson", "ZeroInflatedPoisson", "MNLogit", "OrderedModel", "QuantReg"]
