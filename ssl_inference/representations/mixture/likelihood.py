r"""Likelihood of a Gaussian mixture: log-density, responsibilities, score and Hessian.

The per-row score ``s(x) = sum_k tau_k(x) d l_k / d theta`` (the first stage's
estimating function) and the average Hessian ``H`` of ``log p`` give the influence
``IF(x) = -H^{-1} s(x)`` (formulas in :class:`~ssl_inference.GaussianMixture`'s Notes).
"""
from __future__ import annotations

import numpy as np

from ..base import DEFAULT_CHUNK_ROWS
from .layout import Layout, MixtureParams

__all__ = ["log_joint", "posterior", "log_likelihood", "component_gradient", "score_sum",
           "mean_hessian"]

LOG_2PI = float(np.log(2.0 * np.pi))


def log_joint(X: np.ndarray, mix: MixtureParams) -> np.ndarray:
    """``l_k(x) = log pi_k + log N(x; mu_k, Sigma_k)`` for all rows and components."""
    K, d = mix.means.shape
    log_det = np.log(np.diagonal(mix.prec_chol, axis1=1, axis2=2)).sum(axis=1)
    out = np.empty((X.shape[0], K))
    for k in range(K):  # O(n d) memory per component
        w = (X - mix.means[k]) @ mix.prec_chol[k]
        out[:, k] = -0.5 * (w * w).sum(axis=1)
    return out + (mix.log_weights + log_det - 0.5 * d * LOG_2PI)


def posterior(X: np.ndarray, mix: MixtureParams) -> tuple[np.ndarray, np.ndarray]:
    """Responsibilities (n, K) and per-row log-density (n,)."""
    joint = log_joint(X, mix)
    shift = joint.max(axis=1, keepdims=True)
    e = np.exp(joint - shift)
    total = e.sum(axis=1, keepdims=True)
    return e / total, (shift + np.log(total))[:, 0]


def component_gradient(layout: Layout, X: np.ndarray, mix: MixtureParams, W: np.ndarray, *,
                        per_row: bool) -> np.ndarray:
    r"""``sum_k W_k d l_k / d theta`` from weighted moments of ``v = x - mu_k``.

    With ``N_k = W_k``, ``S1_k = W_k v``, ``S2_k = W_k v v'`` (summed over the rows
    unless ``per_row``): logits ``N_{1:} - (sum_k N_k) pi_{1:}``, means
    ``U_k U_k' S1_k``, and ``d/dU_k = N_k diag(1/U_k,jj) - S2_k U_k`` projected on the
    free entries.

    ``W`` is (n, K) with ``per_row`` (returns (n, q)) or (n, K, R) (returns (R, q)).
    """
    K, d = layout.K, layout.d
    n = X.shape[0]
    if per_row:
        counts = W
    else:
        R = W.shape[2]
        counts = W.sum(axis=0).T                                              # (R, K)
    out = np.empty((counts.shape[0], layout.q))
    pi = np.exp(mix.log_weights)
    out[:, :K - 1] = counts[:, 1:] - counts.sum(axis=1, keepdims=True) * pi[1:]
    diag = np.arange(d)
    for k in range(K):
        if per_row and not W[:, k].any():  # e.g. one component's own gradient: the
            out[:, layout.mean_slice(k)] = 0.0  # other components' blocks are zero
            out[:, layout.cov_slice(k)] = 0.0
            continue
        U = mix.prec_chol[k]
        V = X - mix.means[k]
        if per_row:
            S1 = W[:, k, None] * V
            S2U = S1[:, :, None] * (V @ U)[:, None, :]
        else:
            Wk = W[:, k, :]
            S1 = Wk.T @ V
            S2 = ((V[:, None, :] * Wk[:, :, None]).reshape(n, R * d).T @ V).reshape(R, d, d)
            S2U = S2 @ U
        out[:, layout.mean_slice(k)] = S1 @ (U @ U.T)
        G = -S2U
        G[:, diag, diag] += counts[:, k, None] / np.diagonal(U)
        out[:, layout.cov_slice(k)] = layout.project(G, U)
    return out


def mean_hessian(layout: Layout, X: np.ndarray, mix: MixtureParams,
                  chunk_rows: int = DEFAULT_CHUNK_ROWS, *,
                  weights: np.ndarray | None = None) -> np.ndarray:
    """``(1/m) sum_i d^2 log p(x_i) / d theta d theta'`` (formula in the class Notes);
    ``(1/sum w) sum_i w_i ...`` with row weights ``weights``."""
    K, d, q = layout.K, layout.d, layout.q
    n = X.shape[0]
    m = n if weights is None else float(weights.sum())
    pi = np.exp(mix.log_weights)
    H = np.zeros((q, q))
    H[:K - 1, :K - 1] = -m * (np.diag(pi[1:]) - np.outer(pi[1:], pi[1:]))
    counts, S1, S2 = np.zeros(K), np.zeros((K, d)), np.zeros((K, d, d))
    onehot = np.eye(K)
    for start in range(0, n, chunk_rows):
        chunk = X[start:start + chunk_rows]
        tau = posterior(chunk, mix)[0]
        w = None if weights is None else weights[start:start + chunk_rows, None]
        score = np.zeros((chunk.shape[0], q))
        for k in range(K):
            G = component_gradient(layout, chunk, mix,
                                    np.broadcast_to(onehot[k], tau.shape), per_row=True)
            weighted = tau[:, k, None] * G
            H += (weighted if w is None else w * weighted).T @ G  # tau_k g_k g_k'
            score += weighted
            if w is not None:
                tau = tau.copy()
                tau[:, k] *= w[:, 0]
            V = chunk - mix.means[k]
            counts[k] += tau[:, k].sum()
            S1[k] += tau[:, k] @ V
            S2[k] += (V * tau[:, k, None]).T @ V
        H -= (score if w is None else w * score).T @ score        # - s s'
    unit = np.eye(d * d).reshape(d * d, d, d)
    for k in range(K):
        U = mix.prec_chol[k]
        T = layout.project(unit, U).T                             # dU / dc (n_cov, d^2)
        mean, cov = layout.mean_slice(k), layout.cov_slice(k)
        cross = np.kron(np.eye(d), (U.T @ S1[k])[None, :]) + np.kron(S1[k][None, :], U)
        H_U = (-np.kron(S2[k], np.eye(d))
               - counts[k] * np.diag((np.eye(d) / np.diagonal(U) ** 2).ravel()))
        first = counts[k] / np.diagonal(U) - np.diagonal(S2[k] @ U)  # sum tau dl/dU_aa
        H[mean, mean] -= counts[k] * (U @ U.T)
        H[mean, cov] += cross @ T.T
        H[cov, mean] += T @ cross.T
        H[cov, cov] += T @ H_U @ T.T + np.diag(layout.project(np.diag(first)[None], U)[0])
    return (H + H.T) / (2.0 * m)


def log_likelihood(X: np.ndarray, mix: MixtureParams,
                   weights: np.ndarray | None = None) -> float:
    """``sum_i log p(x_i)`` (``sum_i w_i log p(x_i)``), streamed over chunks of rows."""
    total = 0.0
    for start in range(0, X.shape[0], DEFAULT_CHUNK_ROWS):
        logp = posterior(X[start:start + DEFAULT_CHUNK_ROWS], mix)[1]
        total += logp.sum() if weights is None else (
            weights[start:start + DEFAULT_CHUNK_ROWS] @ logp)
    return total


def score_sum(X: np.ndarray, layout: Layout, theta: np.ndarray,
              weights: np.ndarray | None = None) -> np.ndarray:
    """``sum_i s(x_i; theta)`` (``sum_i w_i s(x_i; theta)``) streamed over chunks of
    rows."""
    mix = layout.unpack(theta)
    total = np.zeros(layout.q)
    for start in range(0, X.shape[0], DEFAULT_CHUNK_ROWS):
        chunk = X[start:start + DEFAULT_CHUNK_ROWS]
        tau = posterior(chunk, mix)[0]
        if weights is not None:
            tau = tau * weights[start:start + DEFAULT_CHUNK_ROWS, None]
        total += component_gradient(layout, chunk, mix, tau[:, :, None], per_row=False)[0]
    return total
