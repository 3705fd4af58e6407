"""Principal components of the pre-training covariance (or correlation) matrix, with their
influence functions."""
from __future__ import annotations

import functools
import warnings
from typing import Literal

import numpy as np

from .._validation import positive_number
from ..exceptions import IdentificationWarning
from ..symmetry import Orthogonal, SignFlips
from .chunked import as_pretrain_array, reduce_rows, row_moments
from .linearization import MEstimatorBase

__all__ = ["PCA"]


class PCA(MEstimatorBase):
    r"""Principal component features learned on a pre-training sample.

    ``theta = (mu, u_0, ..., u_{k-1})``: the mean and the top-k eigenvectors of the
    pre-training covariance ``S = (1/m) sum_i (x_i - mu)(x_i - mu)'``. Features are
    ``phi(x; theta) = U'(x - mu)``. Two options change the features (the adapters
    :func:`~ssl_inference.from_sklearn` and :func:`~ssl_inference.from_statsmodels`
    use them to reproduce other libraries' conventions exactly); each adds the
    estimated quantities it uses to ``theta``, so their uncertainty is accounted for:

    * ``standardize=True``: PCA of the correlation matrix ``R = D^-1 S D^-1``,
      ``D = diag(sigma)`` the (1/m) standard deviations; features ``U' z`` with
      ``z = D^-1 (x - mu)``; ``theta`` gains ``sigma``;
    * ``whiten=True``: features divided by ``sqrt(lambda_l)`` (unit variance over
      ``X_pre`` with divisor ``m``); ``theta`` gains the ``k`` eigenvalues.

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
    standardize : bool
        Principal components of the correlation matrix (each raw column centred and
        divided by its standard deviation, divisor ``m``), as statsmodels' ``PCA``
        does by default.
    whiten : bool
        Divide each feature by the square root of its eigenvalue. Only with
        ``symmetry="sign"``: under rotations of the subspace whitened features are not
        equivariant unless the eigenvalues are equal.
    feature_scale : float
        A positive constant multiplying every feature, e.g. ``sqrt((m - 1) / m)`` for
        scikit-learn's ``whiten=True`` (variance divisor ``m - 1``) or ``1 / sqrt(m)``
        for statsmodels' ``normalize=True`` (unit sum of squares). It changes no test
        or prediction, only the scale of the feature coefficients.
    feature_prefix : str
        Prefix of the feature names (``"pc"`` gives ``pc0, pc1, ...``).

    Attributes
    ----------
    mean_ : ndarray (p,)
    scale_ : ndarray (p,) or None
        The standard deviations ``sigma`` with ``standardize=True``.
    components_ : ndarray (k, p)
        ``U'`` in the reported gauge (moved by :meth:`act`).
    explained_variance_ : ndarray (k,)
        ``lambda_0 .. lambda_{k-1}`` (divisor ``m``).
    eigenvalues_, eigenvectors_ : ndarray (p,), (p, p)
        All eigenpairs of ``S`` (or ``R``), decreasing; the influence needs them all.
    rotation_ : ndarray (k, k)
        ``components_ = rotation_ @ (components in the gauge)``; identity after ``fit``.
    params_ : ndarray (q,)
        ``[mean_, scale_ (standardize), components_.ravel(), explained_variance_
        (whiten)]``.

    Notes
    -----
    Influence functions (THEORY.md §4.1), with ``v = x - mu`` and all ``p``
    eigenpairs ``(lambda_j, u_j)``:

    .. math::

        IF_\mu(x) = v, \qquad
        IF_{u_l}(x) = \sum_{j \ne l} u_j \frac{(u_j'v)(v'u_l)}{\lambda_l - \lambda_j},
        \qquad IF_{\lambda_l}(x) = (u_l'v)^2 - \lambda_l,

    with the sum over all ``j != l`` in sign mode and over ``j >= k`` in rotation
    mode (the within-subspace terms are vertical). With ``standardize=True`` the
    eigenpairs are those of ``R``, ``IF_{sigma_i} = (v_i^2 - sigma_i^2) / (2 sigma_i)``,
    and ``(u_j'v)(v'u_l)`` becomes ``u_j' IF_R u_l = s_j s_l - (lambda_j + lambda_l)
    sum_i u_ij u_il e_i`` (``s = U'z``, ``e_i = (z_i^2 - 1)/2``: the correlation
    matrix moves with the estimated standard deviations); ``IF_{lambda_l} = s_l^2 -
    lambda_l - 2 lambda_l sum_i u_il^2 e_i``. As an M-estimator
    (:class:`~ssl_inference.representations.linearization.MEstimatorBase`) this is
    ``IF = -H_h^+ psi`` with the estimating function of :meth:`estimating_function`
    and ``H_h^+`` in closed form from the eigen-decomposition: the ``u_l`` block is
    ``-sum_j u_j u_j' / (lambda_l - lambda_j)`` over the same ``j``; no ``q x q``
    matrix is formed. Under Gaussian ``x`` (covariance PCA) their covariance is
    Anderson's (1963) ``sum_{j != l} lambda_l lambda_j / (lambda_l - lambda_j)^2
    u_j u_j'``; the sandwich form used here does not assume Gaussian fourth moments.

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
    >>> white = ssi.PCA(2, whiten=True).fit(X_pre)          # unit variance over X_pre
    >>> np.round(white.transform(X_pre).var(axis=0), 12)
    array([1., 1.])
    """

    gauge_convention = ("components by decreasing eigenvalue; largest-|loading| "
                        "entry positive")

    def __init__(self, n_components: int, *, symmetry: Literal["sign", "rotation"] = "sign",
                 standardize: bool = False, whiten: bool = False,
                 feature_scale: float = 1.0, feature_prefix: str = "pc"):
        self.n_components = n_components
        self.symmetry = symmetry
        self.standardize = standardize
        self.whiten = whiten
        self.feature_scale = feature_scale
        self.feature_prefix = feature_prefix

    @property
    def n_features_out_(self) -> int:
        return int(self.n_components)

    @property
    def _matrix(self) -> str:
        return "correlation matrix" if self.standardize else "covariance"

    def _check_hyperparameters(self) -> None:
        if self.symmetry not in ("sign", "rotation"):
            raise ValueError(
                f"symmetry must be 'sign' (components identified up to sign) or 'rotation' "
                f"(only the subspace is identified); got {self.symmetry!r}."
            )
        for name in ("standardize", "whiten"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False; got "
                                 f"{getattr(self, name)!r}.")
        if self.whiten and self.symmetry == "rotation":
            raise ValueError(
                "whiten=True needs symmetry='sign': dividing each component by its own "
                "eigenvalue singles out the eigenvectors, so rotating the subspace "
                "(symmetry='rotation') would not move whitened features by a rotation.")
        positive_number(self.feature_scale, "feature_scale")

    def fit(self, X, y=None) -> "PCA":
        """Fit mean, (scales,) eigenvectors (and eigenvalues) on the rows ``X`` (m, p)."""
        return self._fit_moments(X, None)

    def _fit_weighted(self, X, weights: np.ndarray, rows=None) -> "PCA":
        """Fit on the rows of ``X`` counted ``weights`` times: the weighted mean and
        ``sum_i w_i (x_i - mean)(x_i - mean)' / sum_i w_i`` in one chunked pass (and the
        eigengap check weighted likewise); ``X[rows]`` is never gathered."""
        return self._fit_moments(X, np.asarray(weights, dtype=np.float64))

    def _fit_moments(self, X, weights: np.ndarray | None) -> "PCA":
        """The fit from the (weighted) moments of the rows of ``X``."""
        self._check_hyperparameters()
        arr = as_pretrain_array(X, "X_pre")
        p = arr.shape[1]
        m = arr.shape[0] if weights is None else int(round(weights.sum()))
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
        mean, cov = row_moments(arr, "X_pre", weights=weights)  # one chunked pass
        scale = None
        if self.standardize:
            scale = np.sqrt(np.diag(cov))
            constant = np.flatnonzero(scale <= 1e-12 * max(scale.max(), np.finfo(float).tiny))
            if constant.size:
                raise ValueError(
                    f"X_pre column(s) {constant.tolist()} are constant, so they cannot be "
                    "standardized (standardize=True divides by the standard deviation). "
                    "Drop these columns.")
            cov = cov / np.outer(scale, scale)
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
        self.eigenvalues_ = evals
        self.eigenvectors_ = evecs
        self.rotation_ = np.eye(k)
        self.scale_ = scale
        self._set_params(np.concatenate(
            [mean] + ([scale] if self.standardize else []) + [evecs[:, :k].T.ravel()]
            + ([evals[:k]] if self.whiten else [])))
        if not self.whiten:
            self.explained_variance_ = evals[:k].copy()
        self.symmetry_ = SignFlips(k) if self.symmetry == "sign" else Orthogonal(k)
        self.pretrain_data_ = arr if weights is None else None  # a replicate keeps none
        self._warn_if_unidentified(arr, weights)
        return self

    # ---------------------------------------------------------------- parameters
    def _blocks(self) -> dict:
        """Slices of ``params_``: mean, scale (standardize), components, eigenvalues
        (whiten)."""
        p, k = self.n_features_in_, self.n_components
        sizes = [("mean", p), ("scale", p if self.standardize else 0),
                 ("components", k * p), ("eigenvalues", k if self.whiten else 0)]
        out, start = {}, 0
        for name, size in sizes:
            out[name] = slice(start, start + size)
            start += size
        return out

    def _set_params(self, theta: np.ndarray) -> None:
        b = self._blocks()
        self.params_ = theta
        self.mean_ = theta[b["mean"]]
        if self.standardize:
            self.scale_ = theta[b["scale"]]
        self.components_ = theta[b["components"]].reshape(self.n_components, -1)
        if self.whiten:
            self.explained_variance_ = theta[b["eigenvalues"]]

    def _standardized(self, X: np.ndarray) -> np.ndarray:
        """``z = D^-1 (x - mu)`` (or ``x - mu`` without standardization), (n, p)."""
        Z = np.asarray(X, dtype=float) - self.mean_
        return Z / self.scale_ if self.standardize else Z

    def _feature_factors(self) -> np.ndarray:
        """The constant (and eigenvalue) factor of each feature, (k,)."""
        factors = np.full(self.n_components, float(self.feature_scale))
        return factors / np.sqrt(self.explained_variance_) if self.whiten else factors

    # ------------------------------------------------------------------ symmetry
    def act(self, g) -> "PCA":
        """A copy moved by group element ``g``: features ``rho(g) phi``.

        The components become ``rho(g) U'`` (no longer the documented gauge unless ``g``
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
        """``g`` moves the components ``U' -> rho(g) U'`` (``T = I`` on the other blocks;
        whitening needs sign flips, which leave the eigenvalues alone)."""
        self._check_fitted()
        T = np.eye(self.params_.size)
        b = self._blocks()["components"]
        T[b, b] = np.kron(self.symmetry_.rho(g), np.eye(self.n_features_in_))
        return T @ self.params_, T

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
                    f"Eigenvalue {l} of the pre-training {self._matrix} is exactly tied with "
                    "another one, so its eigenvector has no influence function. Use "
                    "symmetry='rotation' (if the tie is inside the top k) or another "
                    "n_components (if it is at the cut-off)."
                )
            w[l, j] = 1.0 / gap
        return w

    def _warn_if_unidentified(self, X, weights: np.ndarray | None = None) -> None:
        """Warn when an eigengap that the chosen mode needs is within 2 SE of zero (over
        the rows of ``X``, counted ``weights`` times when given)."""
        k, m = self.n_components, self.nobs_
        pairs = np.arange(k) if self.symmetry == "sign" else np.array([k - 1])
        lam = self.eigenvalues_
        E = self.eigenvectors_[:, pairs[0]:pairs[-1] + 2]  # consecutive columns
        gaps = lam[pairs] - lam[pairs + 1]
        # Var(s_j^2 - s_{j+1}^2) over the rows (s = E'z) in one chunked pass,
        # O(chunk) memory; the mean of s_j^2 - s_{j+1}^2 is the gap, so deviations from
        # it are summed (no cancellation in the one-pass variance)
        dev_sum, dev_sumsq = reduce_rows(
            X, functools.partial(  # fingerprinted just now by fit
                _gap_deviations, mean=self.mean_,
                scale=self.scale_ if self.standardize else None, E=E, gaps=gaps,
                centre_after=not self.standardize and bool(
                    np.abs(self.mean_).max() <= 1e3 * np.sqrt(lam[pairs[-1] + 1]))),
            aligned=() if weights is None else (weights,))
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
                    f"Eigenvalues {j} and {j + 1} of the pre-training {self._matrix} are "
                    f"nearly "
                    f"tied ({lam[j]:.4g} vs {lam[j + 1]:.4g}; gap {gap:.3g} < 2 x its "
                    f"standard error {se_gap:.3g}): {advice}",
                    IdentificationWarning, stacklevel=3,
                )

    # ------------------------------------------------------------------ features
    def _transform(self, X: np.ndarray) -> np.ndarray:
        return (self._standardized(X) @ self.components_.T) * self._feature_factors()

    def feature_vjp(self, X, C, *, per_row: bool = False) -> np.ndarray:
        r"""Vector-Jacobian product of ``phi_l(x) = f_l c_l' z`` (``z = D^-1 (x - mu)``).

        ``f_l`` is ``feature_scale`` (divided by ``sqrt(lambda_l)`` when whitening).
        With ``ct_l = f_l c_l`` for a cotangent ``c``: ``d/d mu = -D^-1 U ct``,
        ``d/d sigma_i = -z_i (U ct)_i / sigma_i``, ``d/d u_l = ct_l z`` and
        ``d/d lambda_l = -c_l phi_l / (2 lambda_l)``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(1).normal(size=(50, 3)) * [2.0, 1.0, 0.5]
        >>> rep = ssi.PCA(1).fit(X)
        >>> rep.feature_vjp(X[:4], np.ones((4, 1, 2))).shape
        (6, 2)
        """
        Z = self._standardized(X)
        C = np.asarray(C, dtype=float)
        f = self._feature_factors()
        U = self.components_
        inv_scale = 1.0 / self.scale_ if self.standardize else 1.0
        if per_row:
            Ct = C * f
            back = Ct @ U                                                   # (n, p)
            parts = [-back * inv_scale]
            if self.standardize:
                parts.append(-back * Z * inv_scale)
            parts.append((Ct[:, :, None] * Z[:, None, :]).reshape(len(Z), -1))
            if self.whiten:
                parts.append(-0.5 * C * (Z @ U.T) * f / self.explained_variance_)
            return np.hstack(parts)
        n, k, r = C.shape
        Ct = C * f[None, :, None]
        # sum_j z_j ct_{j,l,r} for all (l, r) as one BLAS product Z' Ct: (p, k r)
        A = (Z.T @ Ct.reshape(n, k * r)).reshape(-1, k, r)
        back = np.einsum("lp,lr->pr", U, Ct.sum(axis=0))
        parts = [-back * (inv_scale if np.isscalar(inv_scale) else inv_scale[:, None])]
        if self.standardize:
            parts.append(-np.einsum("lp,plr->pr", U, A) * inv_scale[:, None])
        parts.append(A.transpose(1, 0, 2).reshape(-1, r))
        if self.whiten:
            phi = (Z @ U.T) * f
            parts.append(-0.5 * np.einsum("nl,nlr->lr", phi, C)
                         / self.explained_variance_[:, None])
        return np.vstack(parts)

    # ----------------------------------------------------------------- influence
    def estimating_function(self, U) -> np.ndarray:
        r"""Per-row estimating function in the ``params_`` layout (n, q).

        ``psi_mu = v``, ``psi_sigma = v^2 - sigma^2`` (standardize), ``psi_{c_l} =
        (I - P) z (z'c_l)`` for the reported components ``c_l`` (rows of
        ``components_``), with ``P = c_l c_l'`` in sign mode and ``C'C`` (the principal
        subspace) in rotation mode, and ``psi_{lambda_l} = (c_l'z)^2 - lambda_l``
        (whiten): the projected eigen-equations ``(I - P) R c_l = 0`` and their
        eigenvalues, whose mean is zero at the fit.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(400, 3)) @ [[3, 1, 0], [0, 2, 1], [0, 0, 1]]
        >>> rep = ssi.PCA(2, standardize=True, whiten=True).fit(X)
        >>> bool(np.abs(rep.estimating_function(X).mean(axis=0)).max() < 1e-12)
        True
        """
        self._check_fitted()
        X = self._validate_units(U)
        V = X - self.mean_
        Z = self._standardized(X)
        C = self.components_
        S = Z @ C.T                                                  # s_l = c_l'z
        if self.symmetry == "rotation":
            psi = (Z - S @ C)[:, None, :] * S[:, :, None]            # (I - C'C) z s_l
        else:
            psi = Z[:, None, :] * S[:, :, None] - (S ** 2)[:, :, None] * C[None, :, :]
        parts = [V]
        if self.standardize:
            parts.append(V ** 2 - self.scale_ ** 2)
        parts.append(psi.reshape(len(V), -1))
        if self.whiten:
            parts.append(S ** 2 - self.explained_variance_)
        return np.hstack(parts)

    def influence(self, U) -> np.ndarray:
        """Per-row influence in the ``params_`` layout of rows ``U``, shape (n, q).

        The closed form of the class Notes, row by row (``O(n p^2 k)``).
        """
        self._check_fitted()
        X = self._validate_units(U)
        V = X - self.mean_
        Z = self._standardized(X)
        E, lam = self.eigenvectors_, self.eigenvalues_
        S = Z @ E
        e = (Z ** 2 - 1.0) / 2.0 if self.standardize else None
        w = self._gap_weights()
        IF_u = []
        for l in range(self.n_components):
            coef = S * S[:, [l]]
            if e is not None:
                coef = coef - (e @ (E * E[:, [l]])) * (lam[l] + lam)
            IF_u.append((coef * w[l]) @ E.T)
        IF_c = np.einsum("lj,njp->nlp", self.rotation_, np.stack(IF_u, 1))  # c = R u
        parts = [V]
        if self.standardize:
            parts.append(self.scale_ * e)
        parts.append(IF_c.reshape(len(V), -1))
        if self.whiten:
            k = self.n_components
            IF_lam = S[:, :k] ** 2 - lam[:k]
            if e is not None:
                IF_lam = IF_lam - 2.0 * lam[:k] * (e @ E[:, :k] ** 2)
            parts.append(IF_lam)
        return np.hstack(parts)

    def _prepare_contraction(self, K: np.ndarray):
        r"""Fold ``-K H_h^+`` into the score formula: one product with ``z`` (and ``z^2``).

        With ``s = E'z`` (all eigen-scores), ``K_{u_l} IF_{u_l}(x)`` is ``s_l N_l z``
        plus, when standardized, ``-e' M_l`` (``e = (z^2 - 1)/2``), where
        ``N_l = (K_{u_l} E) diag(w_l) E'`` (that is ``-K_{u_l} H_l^+``),
        ``w_{lj} = 1/(lambda_l - lambda_j)`` on the horizontal pairs and ``M_l`` collects
        ``(lambda_l + lambda_j) w_{lj} (K_{u_l} u_j) (u_j o u_l)'``. Hence one product
        ``Z_chunk P`` with ``P = [E_k, (D K_mu')', N_0', ..., N_{k-1}']`` (``p x (k + r +
        k r)``) and, standardized, one ``Z_chunk^2 Q`` (``p x r``) give the chunk:
        cost ``O(m p k r)``.
        """
        r = K.shape[0]
        k, p = self.n_components, self.n_features_in_
        b = self._blocks()
        E, lam = self.eigenvectors_, self.eigenvalues_
        w = self._gap_weights()
        # parameters c = R u of the reported components: K_c IF_c = (K_c R) IF_u
        K_u = np.einsum("lj,rlp->rjp", self.rotation_,
                        K[:, b["components"]].reshape(r, k, p))
        a = [K_u[:, l, :] @ E for l in range(k)]                       # (r, p) each
        N = [(a[l] * w[l]) @ E.T for l in range(k)]
        K_mu = K[:, b["mean"]] * (self.scale_ if self.standardize else 1.0)
        P = np.hstack([E[:, :k], K_mu.T] + [n.T for n in N])
        K_lam = K[:, b["eigenvalues"]]                                   # (r, k) or (r, 0)
        Q = None
        if self.standardize:
            M = sum(((a[l] * w[l] * (lam[l] + lam)) @ E.T) * E[:, l] for l in range(k))
            Q = (-M + K[:, b["scale"]] * self.scale_).T                   # (p, r)
            if self.whiten:
                Q = Q - 2.0 * (E[:, :k] ** 2 * lam[:k]) @ K_lam.T
        return P, Q, K_lam, r

    def _contract_units(self, U: np.ndarray, prepared) -> np.ndarray:
        P, Q, K_lam, r = prepared
        k = self.n_components
        Z = self._standardized(U)
        T = Z @ P
        s = T[:, :k]
        B = T[:, k:k + r] + np.einsum("cl,clr->cr", s, T[:, k + r:].reshape(-1, k, r))
        if Q is not None:
            B += ((Z ** 2 - 1.0) / 2.0) @ Q
        if K_lam.size:
            B += (s ** 2 - self.eigenvalues_[:k]) @ K_lam.T
        return B

    def _contraction_chunk_rows(self, chunk_rows: int, prepared) -> int:
        """Chunks shortened (to no fewer than 64 rows) so that ``Z_chunk P`` holds no more
        numbers than ``X_chunk``: memory ``O(chunk p)`` however many functionals."""
        P = prepared[0]
        return min(chunk_rows, max(64, chunk_rows * P.shape[0] // P.shape[1]))


def _gap_deviations(X, start, stop, *weights, mean, scale, E, gaps, centre_after=False):
    """Sums of ``dev_j = s_j^2 - s_{j+1}^2 - gap_j`` and of ``dev_j^2`` over a chunk of
    rows (each row counted ``weights[0]`` times when given), ``s = E'z`` for the
    consecutive eigenvectors ``E`` of the pairs.

    ``centre_after``: ``s = E'x - E'mean`` (no centred copy of the chunk; used when the
    mean is not large against the spread, so that nothing cancels)."""
    if centre_after:
        sq = X @ E
        sq -= mean @ E
    else:
        Z = X - mean
        sq = (Z / scale if scale is not None else Z) @ E
    sq *= sq
    dev = sq[:, :-1] - sq[:, 1:]
    dev -= gaps
    if weights:
        return weights[0] @ dev, weights[0] @ (dev * dev)
    return dev.sum(axis=0), np.einsum("ij,ij->j", dev, dev)
