"""Exceptions and warnings raised by ssl_inference.

Every message says what happened, why it matters statistically, and what to do.
"""
from __future__ import annotations

__all__ = ["NotFittedError", "IdentificationWarning"]


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

