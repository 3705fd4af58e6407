"""Second-stage models: thin statsmodels subclasses sharing one two-stage mixin."""
from .linear import OLS, WLS

__all__ = ["OLS", "WLS"]
