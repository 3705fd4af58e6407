"""Formula interface, mirroring ``statsmodels.formula.api``.

>>> import ssl_inference.formula.api as smf
>>> smf.ols.__self__.__name__
'OLS'
"""
from ..models import OLS, WLS

ols = OLS.from_formula
wls = WLS.from_formula

__all__ = ["ols", "wls"]
