r"""Conformance checks for first stages: is a representation fit for two-stage inference?

:func:`check_representation` runs small named checks on a first stage, in the spirit of
scikit-learn's ``check_estimator``: each one verifies one promise of the protocol of
:class:`~ssl_inference.representations.Representation` against an independent
computation (refits, finite differences, the group action) and, when it fails, says
in plain words what it found and what a correct implementation does.

===========================================  ===============================================
check                                        what a correct first stage does
===========================================  ===============================================
``fit_sets_the_protocol_attributes``         ``fit`` returns ``self`` and sets ``params_``,
                                             ``nobs_``, ``symmetry_``, ``n_features_in_``,
                                             ``pretrain_data_``, a ``gauge_convention`` ...
``clone_is_unfitted_with_same_params``       ``clone()``: same class and hyper-parameters,
                                             not fitted
``refit_is_deterministic``                   equal data give the same ``theta_hat``
``pickle_round_trip``                        a pickled copy gives the same numbers
``transform_returns_k_features``             ``transform``: (n, k), DataFrame in and out
``estimating_function_is_zero_at_fit``       ``theta_hat`` solves the estimating equations
``influence_has_mean_zero``                  ``sum_i IF(u_i) = 0`` over ``X_pre``
``influence_contract_streams_influence``     ``influence_contract``, ``influence_sums`` and
                                             ``influence_covariance`` agree with
                                             ``influence``
``influence_is_horizontal``                  no component along the symmetry orbit
``influence_matches_refits``                 ``IF(u) = d theta / d eps`` when unit ``u`` is
                                             up-weighted (refits, aligned to one gauge)
``feature_vjp_matches_finite_differences``   ``feature_vjp`` is the derivative of the
                                             features (of ``with_params``), up to a motion
                                             along the orbit
``act_moves_features_by_rho``                ``act(g).transform = rho(g) transform``
``act_moves_influence_and_vjp``              the first-order change of the features that
                                             each unit causes moves by ``rho(g)`` too
``align_undoes_act``                         ``align(act(g), rep)`` is ``rep`` again
===========================================  ===============================================
"""
from __future__ import annotations

import traceback

import numpy as np

from ..representations.base import Representation
from .checks import Checker, Skip
from .report import CheckResult, ConformanceReport

__all__ = ["check_representation", "ConformanceReport", "CheckResult"]


def check_representation(representation: Representation, X_pre, *, X=None,
                         skip=(), raise_on_failure: bool = True,
                         random_state: int = 0) -> ConformanceReport:
    """Check that a first stage keeps every promise second-stage inference relies on.

    The representation is cloned and fitted on ``X_pre`` (a fitted one is refitted),
    then each check of the module's table runs against an independent computation:
    refits on ``X_pre`` with one unit duplicated or removed (the influence), central
    differences of the features at nearby parameters (the feature VJP), the group
    action and alignment (equivariance), pickling and cloning.

    Parameters
    ----------
    representation : Representation
        The first stage, fitted or not (its hyper-parameters are what is checked).
    X_pre : array_like (m, w)
        Pre-training rows in the layout ``fit`` takes (for
        :class:`~ssl_inference.SpectralContrastive`: the single array of views side by
        side). Two to five hundred rows keep the checks fast.
    X : array_like (n, p), optional
        Raw rows for the feature checks; default: the first 30 rows of ``X_pre``
        (their first ``n_features_in_`` columns).
    skip : sequence of str
        Names of checks not to run (reported as skipped).
    raise_on_failure : bool
        Raise :class:`~ssl_inference.exceptions.RepresentationCheckError` listing the
        failing checks (the default), or only return the report.
    random_state : int
        Seed of the random directions, cotangents and group elements.

    Returns
    -------
    ConformanceReport

    Raises
    ------
    RepresentationCheckError
        When a check fails and ``raise_on_failure``; it is an ``AssertionError``, so a
        test that calls this function fails with the list of problems.

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> from ssl_inference.testing import check_representation
    >>> rng = np.random.default_rng(0)
    >>> X_pre = rng.normal(size=(300, 1)) @ [[1.0, 0.8, 0.6, 0.4]] + rng.normal(size=(300, 4))
    >>> report = check_representation(ssi.FactorModel(1), X_pre)
    >>> "influence_matches_refits" in report.passed
    True

    A feature map whose VJP has the wrong sign is caught:

    >>> class Broken(ssi.PCA):
    ...     def feature_vjp(self, X, C, *, per_row=False):
    ...         return -super().feature_vjp(X, C, per_row=per_row)
    >>> report = check_representation(Broken(1), X_pre, raise_on_failure=False)
    >>> "feature_vjp_matches_finite_differences" in report.failed
    True
    """
    checker = Checker(representation, X_pre, X, np.random.default_rng(random_state))
    report = ConformanceReport(type(representation).__name__)
    for name, check in checker.checks():
        if name in skip:
            report.results.append(CheckResult(name, "skipped", "skipped by the caller"))
            continue
        try:
            measured = check()
        except Skip as reason:
            report.results.append(CheckResult(name, "skipped", str(reason)))
        except AssertionError as failure:
            report.results.append(CheckResult(name, "failed", str(failure)))
        except Exception as error:  # noqa: BLE001 - any error is a failure of the check
            where = traceback.extract_tb(error.__traceback__)[-1]
            report.results.append(CheckResult(
                name, "failed", f"raised {type(error).__name__}: {error} (at "
                f"{where.filename.rsplit('/', 1)[-1]}:{where.lineno})"))
        else:
            report.results.append(CheckResult(name, "passed", measured or ""))
    unknown = sorted(set(skip) - {name for name, _ in checker.checks()})
    if unknown:
        raise ValueError(f"Unknown check names in skip: {unknown}; the checks are "
                         f"{[name for name, _ in checker.checks()]}.")
    return report.raise_if_failed() if raise_on_failure else report

