"""Second-stage models: thin statsmodels subclasses sharing one two-stage mixin."""
from .discrete import Logit, Poisson, Probit
from .glm import GLM
from .linear import OLS, WLS

__all__ = ["OLS", "WLS", "GLM", "Logit", "Probit", "Poisson"]
