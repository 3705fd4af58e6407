"""Linear hypotheses: parsed the patsy way (whatever statsmodels' formula engine), or read
off a restricted model nested in the full one.

Under formulaic, statsmodels turns ``"a = b = 0"`` into ONE constraint; patsy gives
two. We parse strings with ``patsy.DesignInfo(names).linear_constraint`` always.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import patsy
import scipy.linalg


def parse_constraints(r_matrix, names: Sequence[str]):
    """Return ``(R, q)`` for string hypotheses; anything else is returned unchanged.

    Examples
    --------
    >>> R, q = parse_constraints("a = b = 0", ["a", "b", "c"])
    >>> R.shape, q.tolist()
    ((2, 3), [0.0, 0.0])
    """
    is_str = isinstance(r_matrix, str)
    is_str_list = (isinstance(r_matrix, (list, tuple)) and len(r_matrix) > 0
                   and all(isinstance(x, str) for x in r_matrix))
    if not (is_str or is_str_list):
        return r_matrix
    lc = patsy.DesignInfo(list(names)).linear_constraint(
        r_matrix if is_str else list(r_matrix))
    return np.asarray(lc.coefs, dtype=float), np.asarray(lc.constants, dtype=float).ravel()


def nesting_restrictions(full: np.ndarray, restricted: np.ndarray, *,
                         rtol: float = 1e-8) -> np.ndarray:
    r"""Restrictions ``R beta = 0`` under which the design ``full`` reduces to ``restricted``.

    A restricted model is nested in the full one when each of its columns is a linear
    combination of the full design's columns, ``X_r = X_f A``; then the full
    coefficients are ``beta = A gamma``, i.e. ``R beta = 0`` for ``R`` spanning the
    orthogonal complement of ``range(A)``. ``R`` is made of rows of the projector
    ``I - A A^+`` chosen by pivoted QR, so dropping columns gives the unit vectors of
    the dropped columns.

    Parameters
    ----------
    full : ndarray (n, d)
    restricted : ndarray (n, d_r)
    rtol : float
        A restricted column counts as in the full span when its residual norm is at
        most ``rtol`` times its norm.

    Returns
    -------
    ndarray (r, d)

    Raises
    ------
    ValueError
        When the restricted design is not in the span of the full one, or spans all of it.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([np.ones(20), rng.normal(size=(20, 2))])
    >>> nesting_restrictions(X, X[:, [0, 2]])
    array([[0., 1., 0.]])
    """
    full = np.asarray(full, dtype=float)
    restricted = np.asarray(restricted, dtype=float).reshape(full.shape[0], -1)
    A = np.linalg.lstsq(full, restricted, rcond=None)[0]
    residual = np.linalg.norm(full @ A - restricted, axis=0)
    if np.any(residual > rtol * np.maximum(np.linalg.norm(restricted, axis=0), 1.0)):
        raise ValueError(
            "The restricted model is not nested in this one: some of its design columns are "
            "not linear combinations of this model's columns (for learned features, both "
            "models must use the same fitted representation). State the restrictions "
            "directly with res.wald_test('...').")
    projector = np.eye(full.shape[1]) - A @ np.linalg.pinv(A)
    rank = int(round(np.trace(projector)))
    if rank == 0:
        raise ValueError("The restricted model spans the same columns as this one: there is "
                         "no restriction to test.")
    pivots = scipy.linalg.qr(projector, pivoting=True)[2]
    R = projector[np.sort(pivots[:rank])]
    R[np.abs(R) < 1e-10] = 0.0
    return R
