"""Exceptions and warnings raised by ssl_inference.

Every message says what happened, why it matters statistically, and what to do.
"""
from __future__ import annotations

__all__ = ["NotFittedError", "IdentificationWarning", "ConvergenceWarning",
           "NonInvariantHypothesisError"]


class NotFittedError(ValueError, AttributeError):
    """A representation was used before ``fit`` was called.

    Subclasses ``ValueError`` and ``AttributeError`` like scikit-learn's error of the
    same name, so code that catches either keeps working.
    """


class IdentificationWarning(UserWarning):
    """A first-stage quantity is (nearly) not identified by the data.

    Raised for nearly tied eigenvalues (individual principal components are then
    determined only up to rotation), Heywood cases and collapsed mixture components.
    """


class ConvergenceWarning(UserWarning):
    """An iterative first-stage fit stopped before meeting its convergence criterion.

    Raised, e.g., when the EM algorithm of a Gaussian mixture reaches ``max_iter``. The
    estimate may not be a maximum of the objective, and influence functions computed
    there (which assume a zero score) may be wrong: increase ``max_iter`` or check the
    data.
    """

class NonInvariantHypothesisError(ValueError):
    """A hypothesis on learned-feature coefficients has no gauge-free meaning.

    The representation is identified only up to its symmetry group, and the
    hypothesis is not mapped to itself by that group: another, equally good fit of the
    first stage would change whether it holds. The message lists invariant
    alternatives; ``allow_gauge=True`` tests in the reported gauge anyway.
    """
