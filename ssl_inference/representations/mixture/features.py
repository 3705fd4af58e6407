r"""Features of a fitted Gaussian mixture: responsibilities or the paper's gated features,
their names, and their vector-Jacobian products (formulas in
:class:`~ssl_inference.GaussianMixture`'s Notes)."""
from __future__ import annotations

import numpy as np

from ...symmetry import PermutationContrasts
from .likelihood import component_gradient, posterior

__all__ = ["MixtureFeatures"]


class MixtureFeatures:
    """Feature map of :class:`~ssl_inference.GaussianMixture` (a mixin: it reads the fitted
    state ``_mixture``, ``_layout``, ``_frame``, ``_gated_rank``, ``_gated_mode`` and
    ``_gated_rotation``)."""

    @property
    def n_features_out_(self) -> int:
        self._check_fitted()
        return int(self.symmetry_.k)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the learned features.

        ``{prefix}_h{j}`` is the j-th Helmert contrast of the responsibilities
        (``coding="contrast"``), ``{prefix}{k}`` the responsibility of component ``k``
        (``coding="full"``), and ``{prefix}{k}_c{j}`` coordinate ``j`` of the gated
        ``tau_k B'(x - mu_k)``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> X = np.vstack([rng.normal(size=(100, 2)) + c for c in ([0, 0], [5, 0], [0, 5])])
        >>> rep = ssi.GaussianMixture(3, features="gated", gated_rank=1,
        ...                           random_state=0).fit(X)
        >>> list(rep.get_feature_names_out())
        ['gmm0_c0', 'gmm1_c0', 'gmm2_c0', 'gmm_h1', 'gmm_h2']
        """
        self._check_fitted()
        p, K, r = self.feature_prefix, self.n_components, self._gated_rank
        coords = [[f"{p}{k}_c{j}" for j in range(r)] for k in range(K)]
        if self.coding == "full":
            names = [name for k in range(K) for name in coords[k] + [f"{p}{k}"]]
        else:
            names = [name for block in coords for name in block]
            names += [f"{p}_h{j}" for j in range(1, K)]
        return np.array(names, dtype=object)

    def _gated_frame(self, means: np.ndarray):
        """Eigenpairs ``(E, lambda)`` of the centred means' scatter, in the gauge; None if r = d."""
        if self._gated_rank == means.shape[1]:
            return None
        centred = means - means.mean(axis=0)
        evals, evecs = np.linalg.eigh(centred.T @ centred / means.shape[0])
        evals, evecs = evals[::-1].copy(), evecs[:, ::-1].copy()
        pivot = np.argmax(np.abs(evecs), axis=0)
        evecs *= np.sign(evecs[pivot, np.arange(evecs.shape[1])])
        return evecs, evals

    def _gauge_basis(self) -> np.ndarray:
        """The top-``r`` eigenvectors of ``M`` in the gauge (``I`` when ``r = d``)."""
        if self._frame is None:
            return np.eye(self.n_features_in_)
        return self._frame[0][:, :self._gated_rank]

    def _basis(self) -> np.ndarray:
        """The basis in use, ``B R'`` (``R`` = the coordinate part of ``act``)."""
        return self._gauge_basis() @ self._gated_rotation.T

    def _transform(self, X: np.ndarray) -> np.ndarray:
        tau = posterior(X, self._mixture)[0]
        n, K, r = X.shape[0], self.n_components, self._gated_rank
        if r:
            coords = tau[:, :, None] * ((X[:, None, :] - self._mixture.means[None])
                                        @ self._basis())                   # (n, K, r)
        else:
            coords = np.zeros((n, K, 0))
        if self.coding == "full":
            return np.concatenate([coords, tau[:, :, None]], axis=2).reshape(n, -1)
        H = PermutationContrasts.contrast_matrix(K)
        return np.hstack([coords.reshape(n, -1), tau @ H])

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities ``tau_k(x)`` of all ``K`` components (gauge order), (n, K).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(200, 1)) * 0.5
        >>> X[:100] += 4.0
        >>> rep = ssi.GaussianMixture(2, random_state=0).fit(X)
        >>> rep.predict_proba(np.array([[0.0], [4.0]])).round(3)
        array([[1., 0.],
               [0., 1.]])
        """
        return posterior(self._validate_rows(X, "X"), self._mixture)[0]

    # ------------------------------------------------------------------ VJP
    def feature_vjp(self, X, C, *, per_row: bool = False) -> np.ndarray:
        r"""Vector-Jacobian product of the feature map with respect to ``theta``.

        Responsibilities: ``d tau_k = tau_k (d l_k - sum_j tau_j d l_j)``, so a cotangent
        ``c`` on ``tau`` is the weighted score ``sum_k W_k d l_k / d theta`` with weights
        ``W_k = tau_k (c_k - sum_j tau_j c_j)`` (contrast coding: ``c = H c_h``).
        Gated features add, per component, ``-tau_k B c_k`` to the mean ``mu_k``
        (``c_k`` = the cotangent of the coordinates), the cotangent
        ``t_k = c_k' B'(x - mu_k) + c_{k, tau}`` on ``tau_k``, and the path through the
        basis: with ``G = sum_k tau_k (x - mu_k) c_k'`` (d x r, taken to the gauge basis
        when :meth:`act` has re-based the coordinates) and the eigenpairs
        ``(lambda_a, e_a)`` of ``M``,
        ``Mbar = sym(sum_{a < r} sum_{b != a} e_b e_a' (e_b' G_a) / (lambda_a - lambda_b))``
        and ``d mu_k += (2 / K) Mbar (mu_k - mu_bar)``. With
        ``gated_symmetry="rotation"`` the sum runs over ``b >= r`` only (the horizontal
        derivative of ``B``; the within-span terms are a gauge direction). The per-row
        sums are formed as weighted moments, never as an n x k x q Jacobian.

        Parameters
        ----------
        X : ndarray (n, d)
        C : ndarray (n, k, r), or (n, k) with ``per_row=True``
        per_row : bool

        Returns
        -------
        ndarray (q, r), or (n, q) with ``per_row=True``

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> X = np.vstack([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 4.0])
        >>> rep = ssi.GaussianMixture(2, random_state=0).fit(X)
        >>> rep.feature_vjp(X[:5], np.ones((5, 1, 3))).shape, rep.params_.shape
        ((11, 3), (11,))
        """
        self._check_fitted()
        X = np.asarray(X, dtype=float)
        C = np.asarray(C, dtype=float)
        if per_row:
            C = C[:, :, None]
        n, _, R = C.shape
        layout, mix = self._layout, self._mixture
        K, r = layout.K, self._gated_rank
        if self.coding == "full":
            blocks = C.reshape(n, K, r + 1, R)
            C_coord, c_tau = blocks[:, :, :r], blocks[:, :, r]
        else:
            C_coord = C[:, :K * r].reshape(n, K, r, R)
            c_tau = np.einsum("kj,njR->nkR", PermutationContrasts.contrast_matrix(K),
                              C[:, K * r:])
        tau = posterior(X, mix)[0]
        if r:
            centred_x = X[:, None, :] - mix.means[None]                     # (n, K, d)
            coords = centred_x @ self._basis()                               # (n, K, r)
            c_coord = tau[:, :, None, None] * C_coord                        # tau_k c_k
            c_tau = c_tau + np.einsum("nka,nkaR->nkR", coords, C_coord)
        W = tau[:, :, None] * (c_tau - np.einsum("nk,nkR->nR", tau, c_tau)[:, None, :])
        if per_row:
            grad = component_gradient(layout, X, mix, W[:, :, 0], per_row=True)
        else:
            grad = component_gradient(layout, X, mix, W, per_row=False)
        if r:
            grad[:, layout.mean_start:layout.cov_start] += self._gated_mean_terms(
                centred_x, c_coord, per_row).reshape(grad.shape[0], -1)
        return grad if per_row else grad.T

    def _gated_mean_terms(self, centred_x: np.ndarray, c_coord: np.ndarray,
                          per_row: bool) -> np.ndarray:
        """Mean cotangents of the gated coordinates: direct and through the basis B.

        The path through ``B`` is the eigenvector perturbation of ``M``: all pairs
        ``(a < r, b != a)`` in sign mode, only the horizontal pairs ``(a < r, b >= r)``
        in rotation mode (mixing inside the top-``r`` span is a gauge direction).
        """
        B = self._basis()
        if per_row:
            direct = -c_coord[..., 0] @ B.T                                 # (n, K, d)
            frame_bar = np.einsum("nkd,nka->nda", centred_x, c_coord[..., 0])
        else:
            direct = -np.einsum("da,nkaR->Rkd", B, c_coord)                 # (R, K, d)
            frame_bar = np.einsum("nkd,nkaR->Rda", centred_x, c_coord)
        if self._frame is None:
            return direct
        E, lam = self._frame
        r = self._gated_rank
        gap = lam[None, :r] - lam[:, None]                                   # [b, a]
        off = np.ones_like(gap, dtype=bool)
        if self._gated_mode == "rotation":
            off[:r] = False          # within-span mixing: vertical, dropped
        else:
            off[np.arange(r), np.arange(r)] = False
        if np.any(gap[off] == 0):
            if self._gated_mode == "rotation":
                raise ValueError(
                    f"Eigenvalues {r - 1} and {r} of the centred means' scatter are exactly "
                    "tied, so the projected subspace has no derivative; choose another "
                    "gated_rank.")
            raise ValueError(
                "Two top eigenvalues of the centred means' scatter are exactly tied, so the "
                "gated basis has no derivative; use gated_symmetry='rotation' (if the tie "
                "is inside the top r) or choose another gated_rank."
            )
        inv_gap = np.where(off, 1.0 / np.where(off, gap, 1.0), 0.0)
        # cotangent on the gauge basis B_g (the coordinates are R B_g'(x - mu_k))
        frame_bar = frame_bar @ self._gated_rotation
        coeffs = (E.T @ frame_bar) * inv_gap                                # (batch, d, r)
        mbar = E @ coeffs @ self._gauge_basis().T
        mbar = 0.5 * (mbar + mbar.transpose(0, 2, 1))
        centred_means = self._mixture.means - self._mixture.means.mean(axis=0)
        return direct + (2.0 / self.n_components) * np.einsum("bij,kj->bki", mbar,
                                                               centred_means)
