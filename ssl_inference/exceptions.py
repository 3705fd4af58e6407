"""Exceptions and warnings raised by ssl_inference.

Every message says what happened, why it matters statistically, and what to do.
"""
from __future__ import annotations

__all__ = ["NotFittedError", "IdentificationWarning", "ConvergenceWarning",
           "NonInvariantHypothesisError", "NonDifferentiableDesignError",
           "GaugeDependentDesignError", "GaugeDependentWarning", "PretrainDataModifiedError",
           "FirstStageBlindError", "RepresentationCheckError", "UnsupportedEstimatorError",
           "PolishedEstimateWarning"]


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


class NonDifferentiableDesignError(ValueError):
    """A formula term of the learned features is not a differentiable function of them.

    Two-stage standard errors propagate the first-stage uncertainty through the design
    by the chain rule; categorical codings (``C(pc0 > 0)``), stateful transforms
    (``center(pc0)``, splines with data-dependent knots) and step functions
    (``np.floor(pc0)``) of a learned feature break it.
    """


class GaugeDependentDesignError(ValueError):
    """The representation's symmetry group does not map the design's span onto itself.

    Then an equally good first-stage fit changes the fitted values themselves (e.g.
    ``I(pc0**2)`` under rotations of the components), and no number of the second stage
    has a gauge-free meaning. ``allow_gauge=True`` fits in the reported gauge anyway.
    """


class GaugeDependentWarning(UserWarning):
    """A number was requested that depends on the arbitrary gauge of the first stage.

    E.g. the p-value of a single principal component's coefficient when the components
    are identified only up to rotation: it is returned as NaN, with this warning.
    """


class PretrainDataModifiedError(RuntimeError):
    """The pre-training rows changed in place after the representation was fitted.

    A fitted representation keeps a read-only reference to ``X_pre`` (not a copy) and
    checks a fingerprint of its bytes before every use; first-stage influences of
    changed rows would not belong to the fitted parameters. Refit, or fit on a copy.
    """


class FirstStageBlindError(NotImplementedError):
    """A statsmodels method whose numbers would ignore the first stage.

    Raised by two-stage results (and models) for methods that treat the learned
    features as known data and have no two-stage version, e.g. ``get_influence``,
    ``compare_lr_test``, ``score_test`` or ``fit_regularized``. The message names the
    two-stage alternative; ``fit(cov_type="naive")`` gives statsmodels' own results,
    where these methods work as in statsmodels.
    """


class RepresentationCheckError(AssertionError):
    """A first stage failed :func:`ssl_inference.testing.check_representation`.

    The message lists every failing check with what was found and what a correct
    implementation does; ``report`` holds the full
    :class:`~ssl_inference.testing.ConformanceReport`.
    """

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class UnsupportedEstimatorError(TypeError, ValueError):
    """An estimator of another library that :func:`ssl_inference.from_sklearn` or
    :func:`ssl_inference.from_statsmodels` cannot wrap (the message names what is
    supported), or a configuration of it whose features no ssl_inference first stage
    reproduces exactly.

    Subclasses ``TypeError`` (the wrong kind of object) and ``ValueError`` (a setting
    that is not supported).
    """


class PolishedEstimateWarning(UserWarning):
    """An adapter moved a wrapped estimator's estimate to the optimum of its objective.

    Influence functions are a linearisation at that optimum; estimators that stop at a
    tolerance (or regularise, like scikit-learn's ``reg_covar``) are polished by Newton
    steps from their estimate. The message gives how much the features changed; the
    representation's ``adapted_from_`` records it.
    """
