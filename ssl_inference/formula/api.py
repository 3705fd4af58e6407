"""Formula interface, mirroring ``statsmodels.formula.api``.

>>> import ssl_inference.formula.api as smf
>>> smf.ols.__self__.__name__
'OLS'
"""
from ..models import (GEE, GLM, OLS, WLS, Logit, MNLogit, NegativeBinomial, Poisson, Probit,
                      QuantReg)

ols = OLS.from_formula
wls = WLS.from_formula
glm = GLM.from_formula
logit = Logit.from_formula
probit = Probit.from_formula
poisson = Poisson.from_formula
negativebinomial = NegativeBinomial.from_formula
mnlogit = MNLogit.from_formula
gee = GEE.from_formula
quantreg = QuantReg.from_formula

__all__ = ["ols", "wls", "glm", "logit", "probit", "poisson", "negativebinomial", "mnlogit",
           "gee", "quantreg"]
