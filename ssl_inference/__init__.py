"""ssl_inference: two-stage inference on learned representations, in statsmodels' idiom.

>>> import numpy as np, ssl_inference as ssi
>>> X_pre = np.random.default_rng(0).normal(size=(500, 4)) * [3.0, 2.0, 1.0, 0.5]
>>> ssi.PCA(2).fit(X_pre).symmetry_.symbol
'{+-1}^2'
"""
from . import symmetry
from .exceptions import IdentificationWarning, NotFittedError
from .models import OLS, WLS
from .representations import PCA, Representation
from .symmetry import align

__version__ = "0.1.0"

__all__ = ["PCA", "Representation", "align", "OLS", "WLS", "symmetry", "NotFittedError",
           "IdentificationWarning", "__version__"]
