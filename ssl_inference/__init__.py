"""ssl_inference: two-stage inference on learned representations, in statsmodels' idiom.

>>> import ssl_inference as ssi
>>> sorted(n for n in ssi.__all__ if n[0].isupper())[:3]
['IdentificationWarning', 'NotFittedError', 'OLS']
"""
from . import symmetry
from .exceptions import ConvergenceWarning, IdentificationWarning, NotFittedError
from .models import OLS, WLS
from .representations import PCA, Representation

__version__ = "0.1.0"

__all__ = ["PCA", "Representation", "OLS", "WLS", "symmetry", "NotFittedError",
           "IdentificationWarning", "ConvergenceWarning", "__version__"]
