r"""The mixture's contracted score ``Kt s(x)`` per row, without the (rows, q) scores.

With ``Kt = -K H_h^+`` (r, q) split into the logit block ``Kt_eta``, the mean blocks
``Kt_mu_k`` (r, d) and the precision-factor blocks ``Kt_c_k``, and for each component
``v_k = x - mu_k``, ``w_k = U_k' v_k`` (as in the log-density) and ``tau_k(x)``:

.. math::

    Kt\, s(x) = Kt_\eta (\tau_{1:} - \pi_{1:}) + \sum_k \tau_k \left[
        (Kt_{\mu_k} U_k) w_k - \textstyle\sum_{a \le b} F_{k,ab}\, v_{k,a} w_{k,b}
        + \sum_a F_{k,aa} / U_{k,aa} \right],

where ``F_k`` (r, d, d) maps ``Kt_c_k`` back onto the entries of ``U_k`` (the adjoint of
:meth:`~ssl_inference.representations.mixture.layout.Layout.project`: free entries,
times ``U_aa`` on the log-scale diagonal). The bilinear term costs ``O(rows d^2 r)``
per component for full covariances (``O(rows d r)`` for diagonal and spherical ones,
whose ``F_k`` is diagonal), the rest ``O(rows d (d + r))``: the (rows, q) score array
(``q ~ K d^2 / 2``) is never formed.
"""
from __future__ import annotations

import numpy as np

from .layout import Layout, MixtureParams
from .likelihood import LOG_2PI

__all__ = ["prepare_contraction", "contracted_scores"]


def prepare_contraction(layout: Layout, mix: MixtureParams, Kt: np.ndarray) -> tuple:
    """Fold ``Kt`` (r, q) into per-component operators (see the module docstring)."""
    K, d = layout.K, layout.d
    r = Kt.shape[0]
    parts = []
    for k in range(K):
        U = mix.prec_chol[k]
        u = np.diagonal(U)
        K_cov = Kt[:, layout.cov_slice(k)]
        F = np.zeros((r, d, d))
        if layout.covariance_type == "full":
            F[:, layout.triu[0], layout.triu[1]] = K_cov * np.where(
                layout.triu_is_diag, u[layout.triu[0]], 1.0)
        else:  # diag: one entry per coordinate; spherical: one for all
            F[:, np.arange(d), np.arange(d)] = np.broadcast_to(K_cov, (r, d)) * u
        constant = np.einsum("raa->r", F / u[None, :, None])
        mean = U.T @ Kt[:, layout.mean_slice(k)].T                             # (d, r)
        if layout.covariance_type == "full":  # T[n, b, r] = sum_a v_a F[r, a, b]
            bilinear = F.transpose(1, 2, 0).reshape(d, d * r)
        else:
            bilinear = np.diagonal(F, axis1=1, axis2=2).T                       # (d, r)
        parts.append((mean, bilinear, constant))
    return Kt[:, :K - 1], parts, r


def contracted_scores(layout: Layout, mix: MixtureParams, X: np.ndarray,
                      prepared: tuple) -> np.ndarray:
    """``Kt s(x)`` for the rows ``X`` (n, r), from :func:`prepare_contraction`."""
    K_eta, parts, r = prepared
    K, d = layout.K, layout.d
    n = X.shape[0]
    log_det = np.log(np.diagonal(mix.prec_chol, axis1=1, axis2=2)).sum(axis=1)
    joint = np.empty((n, K))
    V, W = [], []
    for k in range(K):  # the log-density's own products, kept for the score
        V.append(X - mix.means[k])
        W.append(V[k] @ mix.prec_chol[k])
        joint[:, k] = -0.5 * (W[k] * W[k]).sum(axis=1)
    joint += mix.log_weights + log_det - 0.5 * d * LOG_2PI
    tau = np.exp(joint - joint.max(axis=1, keepdims=True))
    tau /= tau.sum(axis=1, keepdims=True)
    pi = np.exp(mix.log_weights)
    out = (tau[:, 1:] - tau.sum(axis=1, keepdims=True) * pi[1:]) @ K_eta.T
    for k, (mean, bilinear, constant) in enumerate(parts):
        term = W[k] @ mean + constant
        if layout.covariance_type == "full":
            term -= np.einsum("nb,nbr->nr", W[k], (V[k] @ bilinear).reshape(n, d, r))
        else:
            term -= (V[k] * W[k]) @ bilinear
        out += tau[:, k, None] * term
    return out
