"""Identification diagnostics of a fitted Gaussian mixture: collapsed components,
indistinguishable components, a Hessian that is not negative definite, and nearly tied
eigenvalues that the gated basis needs."""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from ...exceptions import IdentificationWarning
from ..chunked import DEFAULT_CHUNK_ROWS

__all__ = ["MixtureDiagnostics"]


class MixtureDiagnostics:
    """Warnings issued by :meth:`GaussianMixture.fit` (a mixin: it reads the fitted state
    and streams the influence through ``influence_covariance``)."""

    def _warn_if_unidentified(self) -> None:
        layout, mix, m = self._layout, self._mixture, self.nobs_
        per_component = 1 + layout.d + layout.n_cov
        counts = m * self.weights_
        for k in np.flatnonzero(counts < 2 * per_component):
            warnings.warn(
                f"Component {k} of the mixture has collapsed: weight {self.weights_[k]:.3g}, "
                f"about {counts[k]:.1f} of the m={m} pre-training rows for its "
                f"{per_component} parameters. Its parameters and the standard errors that "
                "depend on them are unreliable; fit fewer components.",
                IdentificationWarning, stacklevel=3)
        for j, k, reason in self._indistinguishable_pairs():
            warnings.warn(
                f"Components {j} and {k} of the mixture are not distinguishable ({reason}): "
                "the mixture is not identified near this fit (probably too many components, "
                "one cluster split in two), so individual components and the influence "
                "functions are unreliable. Fit fewer components.",
                IdentificationWarning, stacklevel=3)
        curvature = np.linalg.eigvalsh(-self.hessian_)
        if not curvature[0] > 1e-10 * max(curvature[-1], 1e-300):
            warnings.warn(
                "The average Hessian of the mixture log-likelihood is not negative definite "
                "at the fitted parameters: EM stopped on a flat ridge or at a saddle point "
                "(usually too many components), so the first-stage influence functions are "
                "not identified. Refit with fewer components, or with a smaller tol and "
                "more starts (n_init).",
                IdentificationWarning, stacklevel=3)
        if self._frame is not None:
            self._warn_if_gated_basis_unidentified()

    def _fit_influence_covariance(self, K: np.ndarray) -> np.ndarray:
        """``influence_covariance(K)`` of the rows the fit saw: for a weighted fit
        (``_fit_rows = (X, w)``, a resampling replicate without pre-training data)
        ``(1/m^2) sum_i w_i B_i B_i'`` with ``B = IF(x_i) K'``, in chunks of rows."""
        rows = getattr(self, "_fit_rows", None)
        if rows is None:
            return self.influence_covariance(K)
        X, w = rows
        gram = np.zeros((K.shape[0], K.shape[0]))
        for start in range(0, X.shape[0], DEFAULT_CHUNK_ROWS):
            B = self.influence(X[start:start + DEFAULT_CHUNK_ROWS]) @ K.T
            gram += (B * w[start:start + DEFAULT_CHUNK_ROWS, None]).T @ B
        return gram / self.nobs_ ** 2

    def _indistinguishable_pairs(self) -> list[tuple[int, int, str]]:
        """Pairs of components whose parameters are not significantly different.

        Wald statistic of equal component parameters ``(mu_j, c_j) = (mu_k, c_k)`` with
        the sandwich covariance ``(1/m^2) sum_i IF IF'``, against the 95% quantile of
        ``chi2_{d + c}``.
        """
        layout, K = self._layout, self.n_components
        own = [np.r_[np.arange(layout.mean_slice(k).start, layout.mean_slice(k).stop),
                     np.arange(layout.cov_slice(k).start, layout.cov_slice(k).stop)]
               for k in range(K)]
        size = own[0].size
        selection = np.zeros((K * size, layout.q))
        selection[np.arange(K * size), np.concatenate(own)] = 1.0
        V = self._fit_influence_covariance(selection)
        threshold = stats.chi2.ppf(0.95, size)
        out = []
        for j in range(K):
            for k in range(j + 1, K):
                L = np.zeros((size, K * size))
                L[:, j * size:(j + 1) * size] = np.eye(size)
                L[:, k * size:(k + 1) * size] = -np.eye(size)
                diff = L @ (selection @ self.params_)
                wald = float(diff @ np.linalg.lstsq(L @ V @ L.T, diff, rcond=None)[0])
                if wald < threshold:
                    out.append((j, k, f"Wald statistic of equal means and covariances "
                                      f"{wald:.3g} < {threshold:.3g}, the 95% quantile of "
                                      f"chi2_{size}"))
        return out

    def _warn_if_gated_basis_unidentified(self) -> None:
        """Eigengaps of M that the gated basis needs, against 2 delta-method SEs.

        Sign mode needs every gap among the top ``r + 1`` eigenvalues; rotation mode only
        the gap at the cut-off ``r``.
        """
        E, lam = self._frame
        r, K = self._gated_rank, self.n_components
        layout = self._layout
        centred = self._mixture.means - self._mixture.means.mean(axis=0)
        pairs = np.arange(r) if self._gated_mode == "sign" else np.array([r - 1])
        # d lambda_a = (2/K) sum_k (e_a'c_k) e_a' d mu_k: gradient of each gap in theta
        grads = np.zeros((pairs.size, layout.q))
        for i, a in enumerate(pairs):
            for b_sign, b in ((1.0, a), (-1.0, a + 1)):
                g = (2.0 / K) * (centred @ E[:, b])[:, None] * E[:, b][None, :]
                grads[i, layout.mean_start:layout.cov_start] += b_sign * g.ravel()
        se = np.sqrt(np.diag(self._fit_influence_covariance(grads)))
        gaps = lam[pairs] - lam[pairs + 1]
        for a, gap, s in zip(pairs.tolist(), gaps, se):
            if gap < 2.0 * s:
                where = ("inside the top-r eigenspace: the individual gated coordinates "
                         "(the columns of the basis B) are not identified and the standard "
                         "errors that depend on them are unreliable. Results invariant under "
                         "a common rotation of the coordinates (covariates, intercept, "
                         "predictions, tests of whole coordinate blocks) stay valid with "
                         "GaussianMixture(..., gated_symmetry='rotation'), which also refuses "
                         "the hypotheses that depend on the basis" if a < r - 1 else
                         "at the cut-off r: the projected subspace itself is not identified; "
                         "choose another gated_rank")
                warnings.warn(
                    f"Eigenvalues {a} and {a + 1} of the centred means' scatter are nearly "
                    f"tied ({lam[a]:.4g} vs {lam[a + 1]:.4g}; gap {gap:.3g} < 2 x its "
                    f"standard error {s:.3g}) {where}.", IdentificationWarning, stacklevel=4)
