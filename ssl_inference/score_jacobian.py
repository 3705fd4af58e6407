r"""First-stage Jacobian of a second stage defined by per-row estimating equations.

The second stage solves ``sum_j s_j(beta, w_j(theta)) = 0``: ``s_j`` is the per-row
score (statsmodels' ``score_obs`` row, P entries) and ``w_j`` the row's design, which
contains learned features. A model may have several designs that contain features
(the count and the inflation design of a zero-inflated model); each is a
:class:`DesignSlot`. By the implicit-function theorem (THEORY.md §3.1)

.. math::

    J = \frac{d\hat\beta}{d\theta} = -H^{-1} C, \qquad
    H = \sum_j \frac{\partial s_j}{\partial \beta'}, \qquad
    C v = \sum_j \sum_{\text{slots}} \frac{\partial s_j}{\partial w_j}\,
          D_j \frac{d\phi_j}{d\theta} v,

``D_j = dw_j/dphi_j`` (:mod:`ssl_inference.design`) and ``dphi_j/dtheta`` reached
through the representation's feature VJP. Row r of ``J`` is the VJP of the cotangents
``c_{j,r} = -D_j' (H^{-1} S_j)[r, :]'``, ``S_j = ds_j/dw_j`` (P x d per row): one call
for all P rows, in blocks of rows. Parameters that multiply no design column (a
negative binomial's ``alpha``, ordered-model thresholds) have rows in ``S_j`` too (the
score of ``alpha`` depends on the design through the mean) and columns in ``H``; the
feature part of ``C`` only has the design columns that depend on the features.

``S_j`` is what this module adds to the single-index closed form
(:func:`ssl_inference.jacobian.coefficient_jacobian`, ``ds/dw = g I + w beta' g'``): it
is obtained from the model itself, with the score evaluated on designs whose feature
column ``c`` is moved by ``+-h`` on every row at once (row j's score depends on row
j's design only, so one evaluation gives ``dS_j/dw_{jc}`` for all rows):

* :func:`design_derivative` differentiates an analytic per-row score (central
  differences, one Richardson step: error ``O(h^4)``, step ``h = eps^{1/5} s_c``
  with ``s_c`` the column's root mean square);
* :func:`loglike_design_derivative` is the fallback for models whose score is itself a
  numerical derivative (statsmodels' ``GenericLikelihoodModel``, e.g. ``OrderedModel``):
  mixed central differences of the per-row log-likelihood in ``(beta_a, w_c)``, with
  one Richardson step (error ``O(h^4)``, steps ``eps^{1/6}``-scaled), never a
  difference of differences of different precision.

Cost: ``4 c`` score evaluations (``16 c P`` log-likelihood evaluations in the
fallback) for ``c`` feature-dependent design columns; memory ``n P c``.

Estimating equations whose units are clusters (GEE) plug in by giving per-unit scores
and perturbing one row per cluster at a time; the VJP below then runs on the rows.

The second-stage influence used for the overlap and cluster cross terms is
``a_j = -H^{-1} s_j`` (:func:`second_stage_influence`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .design import DesignJacobian
from .representations.base import DEFAULT_CHUNK_ROWS, Representation

__all__ = ["DesignSlot", "central_derivative", "design_derivative", "cluster_design_derivative",
           "loglike_design_derivative", "estimating_equation_jacobian",
           "feature_gradients", "second_stage_influence"]

_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class DesignSlot:
    """One design matrix of the second stage that contains learned features.

    Attributes
    ----------
    name : str
        The model's keyword for it (``"exog"``, ``"exog_infl"``).
    design : ndarray (n, d)
        Its rows at ``theta_hat``.
    jacobian : DesignJacobian
        ``D_j = d w_j / d phi_j`` of those rows.
    feature_cols : ndarray of int
        Columns that depend on the learned features.
    """

    name: str
    design: np.ndarray
    jacobian: DesignJacobian
    feature_cols: np.ndarray


def central_derivative(func: Callable[[float], np.ndarray], step: float) -> np.ndarray:
    r"""``f'(0)`` by central differences with one Richardson step.

    ``d(h) = (f(h) - f(-h)) / 2h`` has error ``c h^2 + O(h^4)``, so
    ``(4 d(h/2) - d(h)) / 3`` has error ``O(h^4)``.

    Examples
    --------
    >>> d = central_derivative(lambda t: np.exp(np.asarray(t)), 1e-2)
    >>> bool(abs(d - 1.0) < 1e-10)
    True
    """
    def d(h):
        return (np.asarray(func(h)) - np.asarray(func(-h))) / (2.0 * h)
    return (4.0 * d(step / 2.0) - d(step)) / 3.0


def _column_step(column: np.ndarray, power: float) -> float:
    """``eps^power`` times the column's root mean square (1 for a zero column)."""
    scale = float(np.sqrt(np.mean(np.square(column)))) if column.size else 0.0
    return _EPS ** power * (scale if scale > 0 else 1.0)


def _moved(designs: dict, name: str, col: int, step: float) -> dict:
    out = dict(designs)
    moved = np.array(designs[name], dtype=float)
    moved[:, col] += step
    out[name] = moved
    return out


def design_derivative(row_function: Callable[[dict], np.ndarray],
                      slots: Sequence[DesignSlot]) -> list[np.ndarray]:
    r"""Derivative of a per-row function of the designs on each slot's feature columns.

    ``row_function(designs) -> (n, r)`` must depend on row j's design rows only (a
    per-row score at ``beta_hat``: ``S_j = ds_j/dw_j``; a prediction). Central
    differences with one Richardson step, column by column, all rows at once.

    Parameters
    ----------
    row_function : callable
        ``row_function(designs) -> (n, r)`` with ``designs = {slot name: (n, d)}``.
    slots : sequence of DesignSlot

    Returns
    -------
    list of ndarray (n, r, len(slot.feature_cols))
        ``[j, a, i] = d f_{ja} / d w_{j, feature_cols[i]}``.

    Examples
    --------
    The Poisson score ``(y - exp(w'b)) w`` against its closed form
    ``ds/dw = (y - mu) I - mu w b'``:

    >>> from ssl_inference.design import AppendedFeatures
    >>> rng = np.random.default_rng(0)
    >>> W, y, b = rng.normal(size=(5, 2)), rng.poisson(size=5), np.array([0.3, -0.2])
    >>> des = AppendedFeatures(n_base=1, n_features=1)
    >>> slot = DesignSlot("exog", W, des.jacobian(W[:, :1], W[:, 1:]), np.array([1]))
    >>> def score(designs):
    ...     X = designs["exog"]
    ...     return (y - np.exp(X @ b))[:, None] * X
    >>> (S,) = design_derivative(score, [slot])
    >>> mu = np.exp(W @ b)
    >>> exact = (y - mu)[:, None] * np.eye(2)[1] - (mu * b[1])[:, None] * W
    >>> bool(np.allclose(S[:, :, 0], exact, rtol=0, atol=1e-10))
    True
    """
    designs = {slot.name: slot.design for slot in slots}
    out = []
    for slot in slots:
        columns = []
        for col in slot.feature_cols:
            step = _column_step(slot.design[:, col], 1.0 / 5.0)
            columns.append(central_derivative(
                lambda h: row_function(_moved(designs, slot.name, col, h)), step))
        out.append(np.stack(columns, axis=2) if columns
                   else np.zeros(slot.design.shape[:1] + (0, 0)))
    return out


def loglike_design_derivative(loglike_rows: Callable[[dict], Callable[[np.ndarray],
                                                                     np.ndarray]],
                              params: np.ndarray,
                              slots: Sequence[DesignSlot]) -> list[np.ndarray]:
    r"""``S_j = d^2 l_j / d beta dw_j'`` from the per-row log-likelihood ``l_j``.

    For models whose score is itself a numerical derivative: mixed central
    differences

    .. math::

        \Delta(h, k) = \frac{l(\beta + h e_a, w + k e_c) - l(\beta + h e_a, w - k e_c)
                       - l(\beta - h e_a, w + k e_c) + l(\beta - h e_a, w - k e_c)}{4 h k}

    (error ``O(h^2 + k^2)``) and ``(4 Delta(h/2, k/2) - Delta(h, k)) / 3`` (error
    ``O(h^4)``), steps ``eps^{1/6}`` times ``max(|beta_a|, 0.1)`` and the column's
    root mean square, which balances truncation and rounding at about ``eps^{2/3}``.

    Parameters
    ----------
    loglike_rows : callable
        ``loglike_rows(designs)`` returns the per-row log-likelihood with those
        designs, a function ``params -> (n,)`` (built once per moved design).
    params : ndarray (P,)
    slots : sequence of DesignSlot

    Returns
    -------
    list of ndarray (n, P, len(slot.feature_cols))

    Examples
    --------
    >>> from ssl_inference.design import AppendedFeatures
    >>> rng = np.random.default_rng(0)
    >>> W, y, b = rng.normal(size=(5, 2)), rng.poisson(size=5), np.array([0.3, -0.2])
    >>> des = AppendedFeatures(n_base=1, n_features=1)
    >>> slot = DesignSlot("exog", W, des.jacobian(W[:, :1], W[:, 1:]), np.array([1]))
    >>> def loglike(designs):
    ...     return lambda beta: y * (designs["exog"] @ beta) - np.exp(designs["exog"] @ beta)
    >>> (S,) = loglike_design_derivative(loglike, b, [slot])
    >>> mu = np.exp(W @ b)
    >>> exact = (y - mu)[:, None] * np.eye(2)[1] - (mu * b[1])[:, None] * W
    >>> bool(np.allclose(S[:, :, 0], exact, rtol=0, atol=1e-8))
    True
    """
    params = np.asarray(params, dtype=float)
    designs = {slot.name: slot.design for slot in slots}
    param_steps = _EPS ** (1.0 / 6.0) * np.maximum(np.abs(params), 0.1)
    out = []
    for slot in slots:
        n = slot.design.shape[0]
        block = np.empty((n, params.size, slot.feature_cols.size))
        for i, col in enumerate(slot.feature_cols):
            k0 = _column_step(slot.design[:, col], 1.0 / 6.0)
            moved = {sign: {scale: loglike_rows(_moved(designs, slot.name, col,
                                                       sign * scale * k0))
                            for scale in (1.0, 0.5)} for sign in (1, -1)}
            for a in range(params.size):
                def delta(scale):
                    h, k = scale * param_steps[a], scale * k0
                    total = 0.0
                    for sb in (1, -1):
                        beta = params.copy()
                        beta[a] += sb * h
                        for sw in (1, -1):
                            total = total + sb * sw * np.asarray(moved[sw][scale](beta),
                                                                 dtype=float)
                    return total / (4.0 * h * k)
                block[:, a, i] = (4.0 * delta(0.5) - delta(1.0)) / 3.0
        out.append(block)
    return out


def estimating_equation_jacobian(representation: Representation, raw_features: np.ndarray,
                                 slots: Sequence[DesignSlot],
                                 derivatives: Sequence[np.ndarray], hessian: np.ndarray, *,
                                 chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    r"""``J = d beta_hat / d theta = -H^{-1} C`` (P x q), see the module docstring.

    Parameters
    ----------
    representation : Representation
        The fitted first stage.
    raw_features : ndarray (n, p)
        Raw inputs of the labeled rows.
    slots : sequence of DesignSlot
    derivatives : sequence of ndarray (n, P, c_s)
        ``S_j`` on each slot's feature columns (:func:`design_derivative` or
        :func:`loglike_design_derivative`).
    hessian : ndarray (P, P)
        ``H = sum_j ds_j/dbeta'`` (statsmodels' ``hessian``: the log-likelihood's).
    chunk_rows : int
        Rows per block of cotangents (memory ``O(chunk_rows d P)``).

    Returns
    -------
    ndarray (P, q)

    Examples
    --------
    For a Poisson second stage the generic route gives the single-index closed form:

    >>> import ssl_inference as ssi
    >>> from ssl_inference.design import AppendedFeatures
    >>> from ssl_inference.jacobian import coefficient_jacobian
    >>> rng = np.random.default_rng(0)
    >>> rep = ssi.PCA(1).fit(rng.normal(size=(200, 3)) * [2.0, 1.0, 0.5])
    >>> X = rng.normal(size=(60, 3)) * [2.0, 1.0, 0.5]
    >>> des = AppendedFeatures(n_base=1, n_features=1)
    >>> W = des.build(np.ones((60, 1)), rep.transform(X))
    >>> y, b = rng.poisson(np.exp(0.2 + 0.1 * W[:, 1])), np.array([0.2, 0.1])
    >>> mu = np.exp(W @ b)
    >>> H = -(W * mu[:, None]).T @ W
    >>> slot = DesignSlot("exog", W, des.jacobian(None, W[:, 1:]), des.feature_cols)
    >>> S = design_derivative(lambda d: (y - np.exp(d["exog"] @ b))[:, None]
    ...                             * d["exog"], [slot])
    >>> J = estimating_equation_jacobian(rep, X, [slot], S, H)
    >>> closed = coefficient_jacobian(rep, X, W, b, slot.jacobian, -(y - mu), mu,
    ...                               np.linalg.inv(-H))
    >>> bool(np.allclose(J, closed, rtol=1e-8, atol=1e-10))
    True
    """
    h_inv = np.linalg.inv(np.asarray(hessian, dtype=float))
    n = raw_features.shape[0]
    n_params = h_inv.shape[0]
    JT = 0.0
    for start in range(0, n, chunk_rows):
        rows = slice(start, start + chunk_rows)
        pulled = 0.0
        for slot, S in zip(slots, derivatives):
            if slot.feature_cols.size == 0:
                continue
            S_rows = S[rows]
            C = np.zeros((S_rows.shape[0], slot.design.shape[1], n_params))
            # C[j, c, r] = -(H^{-1} S_j)[r, c]
            C[:, slot.feature_cols, :] = -np.einsum("ra,jac->jcr", h_inv, S_rows)
            pulled = pulled + slot.jacobian.rows(rows).pull(C)
        if np.ndim(pulled):
            JT = JT + representation.feature_vjp(raw_features[rows], pulled)
    if np.ndim(JT) == 0:
        raise ValueError("No design column depends on the learned features: there is no "
                         "first-stage Jacobian to compute.")
    return JT.T


def feature_gradients(representation: Representation, raw_features: np.ndarray,
                      slots: Sequence[DesignSlot],
                      derivatives: Sequence[np.ndarray]) -> np.ndarray:
    r"""Per-row first-stage gradients of per-row functionals ``f_j(w_j(theta))``.

    ``df_{jr}/dtheta = sum_slots (df_{jr}/dw_j) D_j dphi_j/dtheta``: the design
    derivatives (:func:`design_derivative`) pulled back through ``D_j`` and the
    feature VJP, one output at a time.

    Parameters
    ----------
    representation : Representation
    raw_features : ndarray (n, p)
    slots : sequence of DesignSlot
        The designs of the rows (their Jacobians ``D_j``).
    derivatives : sequence of ndarray (n, r, c_s)

    Returns
    -------
    ndarray (n, r, q)

    Examples
    --------
    >>> import ssl_inference as ssi
    >>> from ssl_inference.design import AppendedFeatures
    >>> rng = np.random.default_rng(0)
    >>> rep = ssi.PCA(1).fit(rng.normal(size=(100, 3)) * [2.0, 1.0, 0.5])
    >>> X = rng.normal(size=(4, 3))
    >>> des = AppendedFeatures(n_base=1, n_features=1)
    >>> W = des.build(np.ones((4, 1)), rep.transform(X))
    >>> slot = DesignSlot("exog", W, des.jacobian(None, W[:, 1:]), des.feature_cols)
    >>> G = feature_gradients(rep, X, [slot], [np.full((4, 1, 1), 2.0)])
    >>> bool(np.allclose(G[:, 0], rep.feature_vjp(X, np.full((4, 1), 2.0), per_row=True)))
    True
    """
    n = raw_features.shape[0]
    n_out = derivatives[0].shape[1]
    out = np.zeros((n, n_out, 0)) if n_out == 0 else None
    for r in range(n_out):
        pulled = 0.0
        for slot, dF in zip(slots, derivatives):
            if slot.feature_cols.size == 0:
                continue
            C = np.zeros((n, slot.design.shape[1]))
            C[:, slot.feature_cols] = dF[:, r, :]
            pulled = pulled + slot.jacobian.pull(C)
        grad = representation.feature_vjp(raw_features, pulled, per_row=True)
        if out is None:
            out = np.empty((n, n_out, grad.shape[1]))
        out[:, r] = grad
    return out


def second_stage_influence(score: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    r"""Per-row influence of the second stage on ``beta_hat``: ``a_j = -H^{-1} s_j``.

    ``beta_hat - beta* ~ sum_j a_j`` with ``H = sum_j ds_j/dbeta'`` (the sum-scale
    Hessian, statsmodels' ``hessian``) and ``s_j`` the rows of ``score_obs``.

    Examples
    --------
    >>> second_stage_influence(np.array([[1.0, 0.0], [0.0, 2.0]]), -2.0 * np.eye(2))
    array([[0.5, 0. ],
           [0. , 1. ]])
    """
    return -np.asarray(score, dtype=float) @ np.linalg.inv(np.asarray(hessian, dtype=float)).T


def cluster_design_derivative(unit_function: Callable[[dict], np.ndarray],
                              slots: Sequence[DesignSlot], codes: np.ndarray
                              ) -> list[np.ndarray]:
    r"""``S_j = d psi_{u(j)} / d w_j`` for estimating functions summed over clusters.

    ``psi_u`` (the cluster's estimating function, P entries) depends on the designs of
    all rows of cluster ``u`` (a GEE working correlation couples them), so a column
    cannot be moved on every row at once as in :func:`design_derivative`. Rows at the
    same position within their clusters belong to different clusters: moving the
    column on all of them together gives ``d psi_u / d w_{jc}`` for every cluster at
    once. Central differences with step ``h = eps^{1/3}`` times the column's root mean
    square (truncation ``O(h^2)`` and rounding ``O(eps/h)`` balance at about
    ``eps^{2/3}``, 4e-11 relative; exact for estimating functions quadratic in the
    design, such as GEE with an identity link). Cost: ``2 c s`` evaluations of
    ``unit_function``, ``s`` the largest cluster size (each evaluation is a pass over
    all clusters, so one-step differences rather than Richardson's four).

    Parameters
    ----------
    unit_function : callable
        ``unit_function(designs) -> (G, P)``, the estimating function of each cluster
        with ``designs = {slot name: (n, d)}``.
    slots : sequence of DesignSlot
    codes : ndarray of int (n,)
        Cluster of each row, ``0 .. G-1`` (the rows of ``unit_function``'s output).

    Returns
    -------
    list of ndarray (n, P, len(slot.feature_cols))
        ``[j, a, i] = d psi_{u(j), a} / d w_{j, feature_cols[i]}``.

    Examples
    --------
    Two clusters of an exchangeable Gaussian estimating function
    ``psi_u = X_u' R^{-1} (y_u - X_u b)``:

    >>> from ssl_inference.design import AppendedFeatures
    >>> rng = np.random.default_rng(0)
    >>> W, y, b = rng.normal(size=(5, 2)), rng.normal(size=5), np.array([0.3, -0.2])
    >>> codes = np.array([0, 0, 1, 1, 1])
    >>> def psi(designs):
    ...     X, out = designs["exog"], []
    ...     for u in (0, 1):
    ...         rows = codes == u
    ...         R = 0.5 * np.eye(rows.sum()) + 0.5
    ...         out.append(X[rows].T @ np.linalg.solve(R, y[rows] - X[rows] @ b))
    ...     return np.array(out)
    >>> des = AppendedFeatures(n_base=1, n_features=1)
    >>> slot = DesignSlot("exog", W, des.jacobian(W[:, :1], W[:, 1:]), np.array([1]))
    >>> (S,) = cluster_design_derivative(psi, [slot], codes)
    >>> R = 0.5 * np.eye(2) + 0.5
    >>> v = np.linalg.solve(R, y[:2] - W[:2] @ b)
    >>> exact = v[0] * np.eye(2)[1] - b[1] * W[:2].T @ np.linalg.solve(R, np.eye(2))[:, 0]
    >>> bool(np.allclose(S[0, :, 0], exact, rtol=0, atol=1e-10))
    True
    """
    codes = np.asarray(codes)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], codes[order])
    position = np.empty(codes.size, dtype=int)
    position[order] = np.arange(codes.size) - starts
    designs = {slot.name: slot.design for slot in slots}
    out = []
    for slot in slots:
        n = slot.design.shape[0]
        block = None
        for i, col in enumerate(slot.feature_cols):
            step = _column_step(slot.design[:, col], 1.0 / 3.0)
            for k in range(int(position.max()) + 1 if n else 0):
                rows = np.flatnonzero(position == k)

                def moved(h, rows=rows, col=col):
                    shifted = dict(designs)
                    design = np.array(designs[slot.name], dtype=float)
                    design[rows, col] += h
                    shifted[slot.name] = design
                    return unit_function(shifted)
                deriv = (moved(step) - moved(-step)) / (2.0 * step)
                if block is None:
                    block = np.zeros((n, deriv.shape[1], slot.feature_cols.size))
                block[rows, :, i] = deriv[codes[rows]]
        out.append(block if block is not None else np.zeros((n, 0, 0)))
    return out
