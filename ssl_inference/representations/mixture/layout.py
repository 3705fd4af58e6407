"""The unconstrained parametrisation ``theta`` of a Gaussian mixture and its layout."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MixtureParams", "Layout"]


@dataclass(frozen=True)
class MixtureParams:
    """Mixture parameters in matrix form."""

    log_weights: np.ndarray  # (K,)
    means: np.ndarray        # (K, d)
    prec_chol: np.ndarray    # (K, d, d) upper triangular U_k, Sigma_k^-1 = U_k U_k'


class Layout:
    """The unconstrained parametrisation ``theta`` of a K-component mixture in R^d.

    ``theta = [eta_1..eta_{K-1}, mu_0, ..., mu_{K-1}, c_0, ..., c_{K-1}]`` with
    ``eta_k = log pi_k - log pi_0`` and ``c_k`` the free entries of the upper-triangular
    precision Cholesky factor ``U_k`` (``Sigma_k^-1 = U_k U_k'``), diagonal entries on
    the log scale: full = the upper triangle row by row (d(d+1)/2), diag = ``log U_jj``
    (d), spherical = ``log U_11`` (1).
    """

    def __init__(self, n_components: int, n_dims: int, covariance_type: str):
        self.K, self.d, self.covariance_type = n_components, n_dims, covariance_type
        d = n_dims
        self.n_cov = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[covariance_type]
        self.triu = np.triu_indices(d)
        self.triu_is_diag = self.triu[0] == self.triu[1]
        self.mean_start = self.K - 1
        self.cov_start = self.mean_start + self.K * d
        self.q = self.cov_start + self.K * self.n_cov

    def mean_slice(self, k: int) -> slice:
        return slice(self.mean_start + k * self.d, self.mean_start + (k + 1) * self.d)

    def cov_slice(self, k: int) -> slice:
        return slice(self.cov_start + k * self.n_cov, self.cov_start + (k + 1) * self.n_cov)

    def unpack(self, theta: np.ndarray) -> MixtureParams:
        """``theta`` to (log-weights, means, precision Cholesky factors)."""
        K, d = self.K, self.d
        logits = np.concatenate([np.zeros(1), theta[:K - 1]])
        shift = logits.max()
        log_weights = logits - (shift + np.log(np.exp(logits - shift).sum()))
        means = theta[self.mean_start:self.cov_start].reshape(K, d)
        free = theta[self.cov_start:].reshape(K, self.n_cov)
        U = np.zeros((K, d, d))
        diag = np.arange(d)
        if self.covariance_type == "full":
            values = free.copy()
            values[:, self.triu_is_diag] = np.exp(values[:, self.triu_is_diag])
            U[:, self.triu[0], self.triu[1]] = values
        else:  # diag: one log-precision-sd per coordinate; spherical: one per component
            U[:, diag, diag] = np.exp(free)
        return MixtureParams(log_weights, means, U)

    def pack(self, weights: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`unpack` (real parameters)."""
        logits = np.log(weights[1:]) - np.log(weights[0])
        if self.covariance_type == "full":
            free = prec_chol[:, self.triu[0], self.triu[1]].copy()
            free[:, self.triu_is_diag] = np.log(free[:, self.triu_is_diag])
        elif self.covariance_type == "diag":
            free = np.log(np.diagonal(prec_chol, axis1=1, axis2=2))
        else:
            free = np.log(prec_chol[:, :1, 0])
        return np.concatenate([logits, means.ravel(), free.ravel()])

    def project(self, G: np.ndarray, U: np.ndarray) -> np.ndarray:
        """Gradient wrt the free entries ``c_k`` from ``G = d/dU_k`` (batch, d, d)."""
        u_diag = np.diagonal(U)
        if self.covariance_type == "full":
            out = G[:, self.triu[0], self.triu[1]]
            out[:, self.triu_is_diag] *= u_diag  # chain rule of the log-diagonal
            return out
        diag = np.diagonal(G, axis1=1, axis2=2) * u_diag
        return diag if self.covariance_type == "diag" else diag.sum(axis=1, keepdims=True)

    def names(self) -> list[str]:
        names = [f"logit{k}" for k in range(1, self.K)]
        names += [f"mean{k}[{j}]" for k in range(self.K) for j in range(self.d)]
        for k in range(self.K):
            if self.covariance_type == "full":
                names += [f"log_prec_chol{k}[{a},{b}]" if a == b else f"prec_chol{k}[{a},{b}]"
                          for a, b in zip(*self.triu)]
            elif self.covariance_type == "diag":
                names += [f"log_prec_chol{k}[{j},{j}]" for j in range(self.d)]
            else:
                names.append(f"log_prec_chol{k}")
        return names
