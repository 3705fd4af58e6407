"""Principal components of the pre-training covariance, with their influence functions."""
from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from .._validation import as_float_matrix
from ..exceptions import IdentificationWarning
from ..symmetry import Orthogonal, SignFlips
from .base import DEFAULT_CHUNK_ROWS
from .linearization import MEstimatorBase

__all__ = ["PCA"]


class PCA(MEstimatorBase):
    r"""Principal component features learned on a pre-training sample.

    ``theta = (mu, u_0, ..., u_{k-1})``: the mean and the top-k eigenvectors of the
    pre-training covariance ``Sigma_hat = (1/m) sum_i (x_i - mu)(x_i - mu)'``.
    Features are ``phi(x; theta) = U'(x - mu)``.

    Parameters
    ----------
    n_components : int
        Number of components ``k``, with ``1 <= k < p``.
    symmetry : {"sign", "rotation"}
        ``"sign"``: the components themselves are the target (needs distinct
        eigenvalues); the group is ``{+-1}^k``. ``"rotation"``: only the principal
        subspace is the target; the group is ``O(k)`` and only horizontal
        (out-of-subspace) influence terms are kept. Covariate and intercept standard
        errors and predictions agree between the modes. The joint Wald statistic of the
        feature block differs in finite samples: sign mode adds the variance of the
        components' mixing inside the subspace, a term proportional to the feature
        coefficients, so the two statistics agree asymptotically under the block's
        null (all feature coefficients zero) and both tests are valid.
    feature_prefix : str
        Prefix of the feature names (``"pc"`` gives ``pc0, pc1, ...``).

    Notes
    -----
    Influence functions (THEORY.md §4.1), with ``v = x - mu`` and all ``p``
    eigenpairs ``(lambda_j, u_j)``:

    .. math::

        IF_\mu(x) = v, \qquad
        IF_{u_l}(x) = \sum_{j \ne l} u_j \frac{(u_j'v)(v'u_l)}{\lambda_l - \lambda_j}

    with the sum over all ``j != l`` in sign mode and over ``j >= k`` in rotation
    mode (the within-subspace terms are vertical). As an M-estimator
    (:class:`~ssl_inference.representations.linearization.MEstimatorBase`) this is
    ``IF = -H_h^+ psi`` with the estimating function ``psi_mu = v``,
    ``psi_{u_l} = (I - P) v v' u_l`` (``P = u_l u_l'`` in sign mode, ``U U'`` in
    rotation mode) and ``H_h^+`` in closed form from the eigen-decomposition: the
    ``u_l`` block is ``-sum_j u_j u_j' / (lambda_l - lambda_j)`` over the same ``j``;
    no ``q x q`` matrix is formed. Under Gaussian ``x`` their
    covariance is Anderson's (1963) ``sum_{j != l} lambda_l lambda_j /
    (lambda_l - lambda_j)^2 u_j u_j'``; the sandwich form used here does not assume
    Gaussian fourth moments.

    Gauge: components are ordered by decreasing eigenvalue, and each is signed so
    that its entry of largest absolute value (the first, on ties) is positive.

    Examples
    --------
    >>> import numpy as np
    >>> import ssl_inference as ssi
    >>> X_pre = np.random.default_rng(0).normal(size=(500, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> rep = ssi.PCA(n_components=2).fit(X_pre)
    >>> rep.transform(X_pre[:3]).shape
    (3, 2)
    >>> list(rep.get_feature_names_out())
    ['pc0', 'pc1']
    """

    gauge_convention = ("components by decreasing eigenvalue; largest-|loading| "
                        "entry positive")

    def __init__(self, n_components: int, *, symmetry: Literal["sign", "rotation"] = "sign",
                 feature_prefix: str = "pc"):
        self.n_components = n_components
        self.symmetry = symmetry
        self.feature_prefix = feature_prefix

    @property
    def n_features_out_(self) -> int:
        return int(self.n_components)

    def fit(self, X, y=None) -> "PCA":
        """Fit mean and eigenvectors on the pre-training rows ``X`` (m, p)."""
        if self.symmetry not in ("sign", "rotation"):
            raise ValueError(
                f"symmetry must be 'sign' (components identified up to sign) or 'rotation' "
                f"(only the subspace is identified); got {self.symmetry!r}."
            )
        arr = as_float_matrix(X, "X_pre")
        m, p = arr.shape
        k = self.n_components
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k < p:
            raise ValueError(
                f"n_components must be an integer with 1 <= n_components < p = {p} "
                f"(the number of raw features); got {k!r}."
                + (" With k = p the features are a rotation of the raw data and there is "
                   "nothing to learn." if k == p else "")
            )
        if m < 2:
            raise ValueError(f"X_pre needs at least 2 rows to estimate a covariance; got {m}.")
        mean = arr.mean(axis=0)
        cov = np.zeros((p, p))
        for start in range(0, m, DEFAULT_CHUNK_ROWS):
            block = arr[start:start + DEFAULT_CHUNK_ROWS] - mean
            cov += block.T @ block
        cov /= m
        evals, evecs = np.linalg.eigh(cov)
        evals, evecs = evals[::-1].copy(), evecs[:, ::-1].copy()
        pivot = np.argmax(np.abs(evecs), axis=0)
        evecs *= np.sign(evecs[pivot, np.arange(p)])
        if evals[k - 1] <= 1e-12 * max(evals[0], np.finfo(float).tiny):
            raise ValueError(
                f"X_pre has only {int(np.sum(evals > 1e-12 * evals[0]))} non-degenerate "
                f"directions but n_components={k}; choose fewer components."
            )
        self._record_input_names(self, X)
        self.n_features_in_ = p
        self.nobs_ = m
        self.mean_ = mean
        self.eigenvalues_ = evals
        self.eigenvectors_ = evecs
        self.rotation_ = np.eye(k)
        self.components_ = evecs[:, :k].T.copy()
        self.explained_variance_ = evals[:k].copy()
        self.params_ = np.concatenate([mean, self.components_.ravel()])
        self.symmetry_ = SignFlips(k) if self.symmetry == "sign" else Orthogonal(k)
        self.pretrain_data_ = arr
        self._warn_if_unidentified()
        return self

    # ------------------------------------------------------------------ symmetry
    def act(self, g) -> "PCA":
        """A copy moved by group element ``g``: features ``rho(g) U'(x - mu)``.

        The components become ``rho(g) U`` (no longer the documented gauge unless ``g``
        is the identity); influence and VJP follow, so invariant results do not change.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(300, 3)) * [3.0, 2.0, 1.0]
        >>> rep = ssi.PCA(2).fit(X)
        >>> flipped = rep.act(np.array([1.0, -1.0]))
        >>> bool(np.allclose(flipped.transform(X)[:, 1], -rep.transform(X)[:, 1]))
        True
        """
        theta, _ = self.moved_params(g)
        moved = self.with_params(theta)
        moved.rotation_ = self.symmetry_.rho(g) @ self.rotation_
        return moved

    def moved_params(self, g) -> tuple[np.ndarray, np.ndarray]:
        """``g`` moves the components ``U' -> rho(g) U'``: ``T = blockdiag(I, rho(g) kron I)``."""
        self._check_fitted()
        T = np.eye(self.params_.size)
        p = self.n_features_in_
        T[p:, p:] = np.kron(self.symmetry_.rho(g), np.eye(p))
        return T @ self.params_, T

    def _set_params(self, theta: np.ndarray) -> None:
        p = self.n_features_in_
        self.params_ = theta
        self.mean_ = theta[:p]
        self.components_ = theta[p:].reshape(-1, p)

    def alignment_coordinates(self) -> np.ndarray:
        """Rows that move with ``rho(g)``: the components (k, p)."""
        self._check_fitted()
        return self.components_

    # ------------------------------------------------------------- identification
    def _gap_weights(self) -> np.ndarray:
        """``w[l, j] = 1 / (lambda_l - lambda_j)`` on the horizontal pairs, else 0 (k, p)."""
        k, p = self.n_components, self.n_features_in_
        lam = self.eigenvalues_
        first = k if self.symmetry == "rotation" else 0
        w = np.zeros((k, p))
        for l in range(k):
            j = np.array([j for j in range(first, p) if j != l])
            gap = lam[l] - lam[j]
            if np.any(gap == 0):
                raise ValueError(
                    f"Eigenvalue {l} of the pre-training covariance is exactly tied with "
                    "another one, so its eigenvector has no influence function. Use "
                    "symmetry='rotation' (if the tie is inside the top k) or another "
                    "n_components (if it is at the cut-off)."
                )
            w[l, j] = 1.0 / gap
        return w

    def _warn_if_unidentified(self) -> None:
        """Warn when an eigengap that the chosen mode needs is within 2 SE of zero."""
        k, m = self.n_components, self.nobs_
        pairs = np.arange(k) if self.symmetry == "sign" else np.array([k - 1])
        lam = self.eigenvalues_
        E = self.eigenvectors_[:, :pairs[-1] + 2]
        offset = self.mean_ @ E
        gaps = lam[pairs] - lam[pairs + 1]
        # Var(s_j^2 - s_{j+1}^2) over the rows (s = E'(x - mu)) in one streamed pass,
        # O(chunk) memory; the mean of s_j^2 - s_{j+1}^2 is the gap, so deviations from
        # it are summed (no cancellation in the one-pass variance)
        dev_sum = np.zeros(pairs.size)
        dev_sumsq = np.zeros(pairs.size)
        X = self.pretrain_data_
        for start in range(0, m, DEFAULT_CHUNK_ROWS):
            sq = (X[start:start + DEFAULT_CHUNK_ROWS] @ E - offset) ** 2
            dev = sq[:, pairs] - sq[:, pairs + 1] - gaps
            dev_sum += dev.sum(axis=0)
            dev_sumsq += (dev ** 2).sum(axis=0)
        se_gaps = np.sqrt(np.maximum(dev_sumsq / m - (dev_sum / m) ** 2, 0.0) / m)
        for j, gap, se_gap in zip(pairs.tolist(), gaps, se_gaps):
            if gap < 2.0 * se_gap:
                if j < k - 1:
                    advice = (f"components {self.feature_prefix}{j} and "
                              f"{self.feature_prefix}{j + 1} are not identified individually "
                              "and their standard errors are unreliable. Invariant results "
                              "(covariates, predictions, the joint block test) stay valid "
                              "with PCA(..., symmetry='rotation').")
                else:
                    advice = (f"the {k}-dimensional principal subspace itself is not "
                              "identified; choose n_components at a clear eigengap.")
                warnings.warn(
                    f"Eigenvalues {j} and {j + 1} of the pre-training covariance are nearly "
                    f"tied ({lam[j]:.4g} vs {lam[j + 1]:.4g}; gap {gap:.3g} < 2 x its "
                    f"standard error {se_gap:.3g}): {advice}",
                    IdentificationWarning, stacklevel=3,
                )

    # ------------------------------------------------------------------ features
    def _transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.components_.T

    def feature_vjp(self, X, C, *, per_row: bool = False) -> np.ndarray:
        r"""Vector-Jacobian product of ``phi(x) = U'(x - mu)``.

        ``d phi_l / d mu = -u_l'`` and ``d phi_l / d u_l = (x - mu)'``, so for
        cotangents ``c_j``: the mu-part is ``-U' sum_j c_j`` and the ``u_l``-part is
        ``sum_j c_{jl} (x_j - mu)``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(1).normal(size=(50, 3)) * [2.0, 1.0, 0.5]
        >>> rep = ssi.PCA(1).fit(X)
        >>> rep.feature_vjp(X[:4], np.ones((4, 1, 2))).shape
        (6, 2)
        """
        V = np.asarray(X, dtype=float) - self.mean_
        C = np.asarray(C, dtype=float)
        if per_row:
            grad_mu = -(C @ self.components_)
            grad_u = C[:, :, None] * V[:, None, :]
            return np.hstack([grad_mu, grad_u.reshape(len(V), -1)])
        n, k, r = C.shape
        grad_mu = -(self.components_.T @ C.sum(axis=0))
        # sum_j v_j c_{j,l,r} for all (l, r) as one BLAS product V' C: (p, k r)
        grad_u = (V.T @ C.reshape(n, k * r)).reshape(-1, k, r).transpose(1, 0, 2)
        return np.vstack([grad_mu, grad_u.reshape(-1, r)])

    # ----------------------------------------------------------------- influence
    def estimating_function(self, U) -> np.ndarray:
        r"""Per-row estimating function ``[v, psi_c0, ..., psi_c(k-1)]`` (n, q).

        ``v = x - mu`` and ``psi_{c_l} = (I - P) v (v'c_l)`` for the reported components
        ``c_l`` (rows of ``components_``), with ``P = c_l c_l'`` in sign mode and
        ``C'C`` (the principal subspace) in rotation mode: the projected eigen-equations
        ``(I - P) Sigma c_l = 0``, whose mean is zero at the fit.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(400, 3)) * [3.0, 2.0, 1.0]
        >>> rep = ssi.PCA(2).fit(X)
        >>> bool(np.abs(rep.estimating_function(X).mean(axis=0)).max() < 1e-12)
        True
        """
        self._check_fitted()
        V = self._validate_units(U) - self.mean_
        C = self.components_
        S = V @ C.T                                                  # s_l = v'c_l
        if self.symmetry == "rotation":
            R = V - S @ C                                            # (I - C'C) v
            psi = R[:, None, :] * S[:, :, None]
        else:
            psi = V[:, None, :] * S[:, :, None] - (S ** 2)[:, :, None] * C[None, :, :]
        return np.hstack([V, psi.reshape(len(V), -1)])

    def influence(self, U) -> np.ndarray:
        """Per-row influence ``[IF_mu, IF_u0, ..., IF_u(k-1)]`` of rows ``U``, shape (n, q).

        The closed form of the class Notes, row by row (``O(n p^2 k)``).
        """
        self._check_fitted()
        V = self._validate_units(U) - self.mean_
        E = self.eigenvectors_
        S = V @ E
        w = self._gap_weights()
        IF_u = np.stack([(S * S[:, [l]] * w[l]) @ E.T for l in range(self.n_components)], 1)
        IF_c = np.einsum("lj,njp->nlp", self.rotation_, IF_u)  # components c = R u
        return np.hstack([V, IF_c.reshape(len(V), -1)])

    def _prepare_contraction(self, K: np.ndarray):
        r"""Fold ``-K H_h^+`` into the score formula: one ``p x (k + r + k r)`` matrix.

        With ``s = E'v`` (all eigen-scores), ``K_{u_l} IF_{u_l}(x) = s_l N_l v`` where
        ``N_l = (K_{u_l} E) diag(w_l) E'`` (that is ``-K_{u_l} H_l^+``) and
        ``w_{lj} = 1/(lambda_l - lambda_j)`` on the horizontal pairs; ``K_mu IF_mu =
        K_mu v``. Hence one product ``X_chunk P`` with
        ``P = [U, K_mu', N_0', ..., N_{k-1}']`` gives the chunk: cost ``O(m p k r)``.
        """
        r = K.shape[0]
        k, p = self.n_components, self.n_features_in_
        E = self.eigenvectors_
        w = self._gap_weights()
        # parameters c = R u of the reported components: K_c IF_c = (K_c R) IF_u
        K_u = np.einsum("lj,rlp->rjp", self.rotation_, K[:, p:].reshape(r, k, p))
        N = [((K_u[:, l, :] @ E) * w[l]) @ E.T for l in range(k)]
        P = np.hstack([E[:, :k], K[:, :p].T] + [n.T for n in N])
        return P, self.mean_ @ P, r

    def _contract_units(self, U: np.ndarray, prepared) -> np.ndarray:
        P, offset, r = prepared
        k = self.n_components
        T = U @ P - offset
        s = T[:, :k]
        return T[:, k:k + r] + np.einsum("cl,clr->cr", s, T[:, k + r:].reshape(-1, k, r))

    def _contraction_chunk_rows(self, chunk_rows: int, prepared) -> int:
        """Chunks shortened (to no fewer than 64 rows) so that ``X_chunk P`` holds no more
        numbers than ``X_chunk``: memory ``O(chunk p)`` however many functionals."""
        P = prepared[0]
        return min(chunk_rows, max(64, chunk_rows * P.shape[0] // P.shape[1]))
