"""Gaussian mixture first stage, in modules with one idea each: the parametrisation
(``layout``), the EM fit (``em``), the likelihood, score and Hessian behind the
influence (``likelihood``), the features and their VJPs (``features``), the
identification diagnostics (``diagnostics``) and the class that assembles them
(``model``)."""
from .model import GaussianMixture

__all__ = ["GaussianMixture"]
