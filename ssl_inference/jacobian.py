"""First-stage Jacobian of the second-stage coefficients, by the implicit-function theorem."""
from __future__ import annotations

import numpy as np

from .design import DesignJacobian
from .representations.base import DEFAULT_CHUNK_ROWS, Representation

__all__ = ["coefficient_jacobian"]


def coefficient_jacobian(representation: Representation, raw_features: np.ndarray,
                         exog: np.ndarray, params: np.ndarray, design_jacobian: DesignJacobian,
                         g: np.ndarray, g_prime: np.ndarray,
                         hessian_inv: np.ndarray, *,
                         chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    r"""``J = d beta_hat / d theta`` (d x q) for a row loss ``rho(y, w'beta)``.

    With ``g = d rho / d eta`` and ``g' = d g / d eta`` per row, the score derivative
    is ``ds/dw = g I + w beta' g'`` (THEORY.md §3.1), and the design moves with
    ``theta`` through the learned features, ``dw_j/dtheta = D_j dphi_j/dtheta``
    (:mod:`ssl_inference.design`), so

    .. math::

        J v = -H^{-1} \sum_j \left[ g_j D_j \frac{d\phi_j}{d\theta} v
              + w_j g'_j \beta' D_j \frac{d\phi_j}{d\theta} v \right],

    ``H = sum_j g'_j w_j w_j'``. Row r of J is the feature VJP with cotangents
    ``c_{j,r} = -(g_j (H^{-1} D_j)[r, :] + g'_j (H^{-1} w_j)_r \beta' D_j)``: d VJPs
    in one call per block of ``chunk_rows`` rows, never the n x k x q Jacobian.

    Parameters
    ----------
    representation : Representation
        Fitted first stage.
    raw_features : ndarray (n, p)
        Raw inputs of the labeled rows.
    exog : ndarray (n, d)
        Second-stage design.
    params : ndarray (d,)
        ``beta_hat``.
    design_jacobian : DesignJacobian
        ``D_j = d w_j / d phi_j`` of the labeled rows.
    g, g_prime : ndarray (n,)
        First and second derivative of the row loss in the linear predictor (for
        (weighted) least squares ``g = -wt * resid`` and ``g' = wt``).
    hessian_inv : ndarray (d, d)
        ``H^{-1}`` on the sum scale (``normalized_cov_params`` for OLS/WLS).
    chunk_rows : int
        Labeled rows per block of cotangents (memory ``O(chunk_rows k d)``).

    Returns
    -------
    ndarray (d, q)

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> from ssl_inference.design import AppendedFeatures
    >>> rng = np.random.default_rng(0)
    >>> rep = ssi.PCA(1).fit(rng.normal(size=(200, 3)) * [2.0, 1.0, 0.5])
    >>> X = rng.normal(size=(50, 3)); phi = rep.transform(X)
    >>> design = AppendedFeatures(n_base=1, n_features=1)
    >>> W = design.build(np.ones((50, 1)), phi)
    >>> y = W @ [1.0, 2.0] + rng.normal(size=50)
    >>> beta = np.linalg.lstsq(W, y, rcond=None)[0]
    >>> J = coefficient_jacobian(rep, X, W, beta, design.jacobian(None, phi),
    ...                          -(y - W @ beta), np.ones(50), np.linalg.inv(W.T @ W))
    >>> J.shape
    (2, 6)
    """
    n, d = exog.shape
    JT = 0.0
    # the VJP is a sum over rows: build the (rows, k, d) cotangents chunk by chunk
    for start in range(0, n, chunk_rows):
        rows = slice(start, start + chunk_rows)
        D = design_jacobian.rows(rows)
        C = D.project(hessian_inv)                               # (H^-1 D_j)' : (rows, k, d)
        C *= -g[rows, None, None]
        direction = D.pull(np.broadcast_to(params, (C.shape[0], d)))   # beta' D_j
        scaled = g_prime[rows, None] * (exog[rows] @ hessian_inv)      # g'_j (H^-1 w_j)'
        C -= direction[:, :, None] * scaled[:, None, :]
        JT = JT + representation.feature_vjp(raw_features[rows], C)
    return JT.T
