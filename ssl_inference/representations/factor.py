r"""Maximum-likelihood factor analysis and probabilistic PCA, with horizontal influence.

The model (THEORY.md §4.3) for a raw row ``x`` in R^p is

.. math::

    x = \mu + \Lambda h + e, \qquad h \sim N(0, I_k), \qquad e \sim N(0, \Psi),

so ``x ~ N(mu, Sigma)`` with ``Sigma = Lambda Lambda' + Psi``. ``Psi`` is diagonal
(factor analysis) or ``s^2 I`` (probabilistic PCA). The likelihood depends on
``Lambda`` only through ``Lambda Lambda'``, so it is invariant under
``Lambda -> Lambda Q'`` for every orthogonal ``Q``: the group is ``O(k)``.
"""
from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from .._validation import positive_number
from ..exceptions import ConvergenceWarning, IdentificationWarning
from ..symmetry import Orthogonal
from .chunked import as_pretrain_array, row_moments
from .factor_likelihood import (gaussian_loglike, inv_spd, loglike_hessian,
                                maximise_profile_likelihood, newton_refine,
                                ppca_closed_form, principal_axes_gauge)
from .linearization import MEstimatorBase, rotation_tangent

__all__ = ["FactorModel"]

#: Unique variance below this fraction of the raw variance: a Heywood case.
HEYWOOD_RATIO = 1e-3
#: ``Lambda' Psi^-1 Lambda`` diagonal entries below this: a factor with zero loadings.
ZERO_FACTOR = 1e-8
#: Reciprocal (Jacobi-scaled) condition of the horizontal Hessian below this: not
#: identified.
SINGULAR_HESSIAN = 1e-10
#: A scale-free gradient above this after refinement means no stationary point.
STATIONARY_GTOL = 1e-6


class FactorModel(MEstimatorBase):
    r"""Factor scores learned by maximum likelihood on a pre-training sample.

    ``theta = (mu, Lambda, Psi)``, reported as
    ``params_ = [mean_, components_.ravel(), noise_variance_]`` with
    ``components_ = Lambda'`` (k, p) and ``noise_variance_`` the ``p`` unique variances
    (``noise="diagonal"``) or the single ``s^2`` (``noise="isotropic"``). Features are
    the factor scores ``phi(x; theta) = W (x - mu)`` with

    * ``scores="regression"`` (Thomson): ``W = Lambda' Sigma^{-1}
      = (I + M)^{-1} Lambda' Psi^{-1}``, the posterior mean ``E[h | x]``;
    * ``scores="bartlett"``: ``W = M^{-1} Lambda' Psi^{-1}``, the GLS estimate of ``h``,

    where ``M = Lambda' Psi^{-1} Lambda``, times the constant ``feature_scale``.

    Parameters
    ----------
    n_factors : int
        Number of factors ``k``. With diagonal noise the model must have no more free
        parameters than the ``p(p+1)/2`` covariances (Ledermann bound
        ``(p - k)^2 >= p + k``); with isotropic noise ``1 <= k < p``.
    noise : {"diagonal", "isotropic"}
        ``Psi`` diagonal (factor analysis) or ``s^2 I`` (probabilistic PCA, Tipping &
        Bishop 1999, whose ML estimate is closed form).
    scores : {"regression", "bartlett"}
        Which factor scores are the features. Both move by ``Q`` when the loadings are
        rotated (see Notes), so invariant results do not depend on the choice of gauge.
    n_init : int
        Starts of the optimiser (diagonal noise): Joreskog's start
        ``psi_i = (1 - k / 2p) / (S^{-1})_ii`` and ``n_init - 1`` random ones; the fit
        with the largest log-likelihood is kept.
    max_iter : int
        Maximum SLSQP iterations per start.
    tol : float
        SLSQP stops when the per-row profile negative log-likelihood (in
        ``log(psi_i / S_ii)``) changes by less than ``tol``. The best start is then
        refined by Newton steps on the full likelihood to a gradient ~1e-13.
    random_state : int, Generator or None
        Seed of the random starts (the default 0 makes fits reproducible).
    feature_scale : float
        A positive constant multiplying every feature (e.g. ``sqrt((m - 1) / m)`` to
        reproduce statsmodels' ``Factor`` scores, computed from data standardised with
        divisor ``m - 1``). It changes no test or prediction, only the scale of the
        feature coefficients.
    feature_prefix : str
        Prefix of the feature names (``"f"`` gives ``f0, f1, ...``).

    Attributes
    ----------
    mean_ : ndarray (p,)
    components_ : ndarray (k, p)
        ``Lambda'`` in the reported gauge (moved by :meth:`act`).
    noise_variance_ : ndarray (p,)
        Unique variances ``diag(Psi)`` (all equal to ``s^2`` when isotropic).
    loglike_ : float
        Gaussian log-likelihood ``sum_i log N(x_i; mu, Sigma)`` at the estimate.
    n_iter_ : int
        SLSQP iterations of the kept start (0 for the closed-form PPCA).
    converged_ : bool
    heywood_ : ndarray of int
        Raw features whose unique variance is at the boundary zero (Heywood cases).
    rotation_ : ndarray (k, k)
        ``components_ = rotation_ @ (components in the gauge)``; identity after ``fit``.
    hessian_ : ndarray (q, q)
        Average log-likelihood Hessian at the estimate (``params_`` layout).
    vertical_ : ndarray (q, k(k-1)/2)
        Orthonormal basis of the rotation directions.

    Notes
    -----
    **Fit.** With ``S`` the (1/m) sample covariance, ``mu_hat = x_bar`` and, for
    diagonal noise, the loadings are profiled out (Joreskog 1967): for fixed ``Psi``
    let ``d_j, u_j`` be the eigenpairs of ``Psi^{-1/2} S Psi^{-1/2}``; then
    ``Lambda = Psi^{1/2} U_k (D_k - I)_+^{1/2}`` and the per-row negative profile
    log-likelihood (without constants) is

    .. math::

        F(\Psi) = \tfrac12 \Big[\sum_i \log \psi_i + \sum_{j \le k} (\log d_j^+
                 + d_j / d_j^+) + \sum_{j > k} d_j\Big], \qquad d^+ = \max(d, 1),

    with gradient ``dF / d log psi_i = -1/2 sum_j u_ij^2 (d_j - 1)`` over the
    ``j > k`` (and any ``j <= k`` with ``d_j <= 1``). It is minimised by SLSQP
    over ``log(psi_i / S_ii)`` (scale-free), then refined by Newton steps on the full
    log-likelihood in the horizontal space (below). For isotropic noise the ML
    estimate is closed form: ``s^2`` is the mean of the ``p - k`` smallest eigenvalues
    of ``S`` and ``Lambda = U_k (L_k - s^2 I)^{1/2}``.

    **Gauge.** ``M = Lambda' Psi^{-1} Lambda`` is diagonal with decreasing entries
    (factors ordered by signal-to-noise ratio), and each column of ``Lambda`` is
    signed so that its entry of largest absolute value (the first, on ties) is
    positive. For PPCA this is the principal-axes solution.

    **Symmetry.** ``g = Q`` in ``O(k)`` acts as ``Lambda -> Lambda Q'``, i.e.
    ``components_ -> Q components_``. ``Sigma`` is unchanged and both kinds of scores
    move by ``phi -> Q phi``: ``rho(Q) = Q`` (:class:`~ssl_inference.symmetry.
    Orthogonal`). The rows of ``components_`` are the alignment coordinates.

    **Influence.** Per row, with ``v = x - mu``, ``P = Sigma^{-1}``, ``a = P v`` and
    ``E_x = P v v' P - P``, the log-likelihood score is

    .. math::

        s_\mu = a, \qquad s_\Lambda = E_x \Lambda \;(= a (\Lambda' a)' - P\Lambda),
        \qquad s_{\psi_i} = \tfrac12 (a_i^2 - P_{ii})

    (``s_{s^2} = sum_i s_{psi_i}`` for PPCA). The average Hessian ``H`` at the MLE
    (``mu_hat = x_bar``, so the mean block is ``-P`` and decoupled) is, for
    directions with ``dSigma_a = dLambda_a Lambda' + Lambda dLambda_a' + dPsi_a``,

    .. math::

        H_{ab} = -\operatorname{tr}(P\, d\Sigma_a\, T\, d\Sigma_b)
                 + \tfrac12 \operatorname{tr}(P\, d\Sigma_a\, P\, d\Sigma_b)
                 + \operatorname{tr}(E\, d\Lambda_a\, d\Lambda_b'),
        \qquad T = P S P, \; E = T - P,

    assembled in closed form. ``H`` is singular exactly on the vertical space
    ``{(0, Lambda A, 0) : A' = -A}`` (``k(k-1)/2`` directions). With ``N`` an
    orthonormal basis of its complement, the horizontal influence is the sandwich (no
    Gaussian assumption)

    .. math::

        IF(x) = -H_h^{+} s(x), \qquad H_h^{+} = N (N'HN)^{-1} N'

    (:func:`~ssl_inference.representations.linearization.horizontal_inverse`),
    the null space being removed explicitly. The unconstrained ``Lambda`` makes the
    average score exactly zero at the MLE, so no curvature term is needed
    (THEORY.md §2). Rows sum to zero over the pre-training sample and are orthogonal
    to ``V``; their contamination derivative is that of the Procrustes-aligned refit.

    Examples
    --------
    >>> import numpy as np
    >>> import ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> Lam = np.array([[1.0, 0.0], [0.8, 0.3], [0.6, -0.5], [0.0, 1.0], [0.4, 0.7],
    ...                 [0.7, 0.2]])
    >>> X_pre = rng.normal(size=(800, 2)) @ Lam.T + 0.5 * rng.normal(size=(800, 6))
    >>> fa = ssi.FactorModel(n_factors=2).fit(X_pre)
    >>> fa.transform(X_pre[:3]).shape
    (3, 2)
    >>> list(fa.get_feature_names_out()), fa.symmetry_.symbol
    (['f0', 'f1'], 'O(2)')
    >>> M = fa.components_ / fa.noise_variance_ @ fa.components_.T   # the gauge
    >>> bool(abs(M[0, 1]) < 1e-8 and M[0, 0] > M[1, 1])
    True
    """

    gauge_convention = ("Lambda' Psi^-1 Lambda diagonal with decreasing entries; each "
                        "loading column's largest-|loading| entry positive")

    def __init__(self, n_factors: int, *,
                 noise: Literal["diagonal", "isotropic"] = "diagonal",
                 scores: Literal["regression", "bartlett"] = "regression",
                 n_init: int = 3, max_iter: int = 1000, tol: float = 1e-12,
                 random_state: int | np.random.Generator | None = 0,
                 feature_scale: float = 1.0, feature_prefix: str = "f"):
        self.n_factors = n_factors
        self.noise = noise
        self.scores = scores
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.feature_scale = feature_scale
        self.feature_prefix = feature_prefix

    @property
    def n_features_out_(self) -> int:
        return int(self.n_factors)

    # ------------------------------------------------------------------------ fit
    def fit(self, X, y=None) -> "FactorModel":
        """Fit the factor model by maximum likelihood on the pre-training rows ``X`` (m, p).

        Warns (``ConvergenceWarning``) when the optimiser stops before convergence and
        (``IdentificationWarning``) on Heywood cases, factors with zero loadings and a
        singular horizontal Hessian; in these cases the standard errors are not valid.
        """
        return self._fit_moments(X, self._moments(X))

    def _fit_weighted(self, X, weights: np.ndarray, rows=None) -> "FactorModel":
        """Fit on the rows of ``X`` counted ``weights`` times: the likelihood depends on
        the rows through their mean and covariance only, so the weighted moments
        (:func:`~ssl_inference.representations.chunked.row_moments`, one chunked pass)
        are the fit's whole reading of ``X``; ``X[rows]`` is never gathered."""
        return self._fit_moments(X, self._moments(X, np.asarray(weights, dtype=np.float64)))

    def _fit_moments(self, X, moments) -> "FactorModel":
        """Maximum likelihood from ``(arr, mean, S, sd, m, weighted)`` of :meth:`_moments`."""
        arr, mean, S, sd, m, weighted = moments
        k = self.n_factors
        if self.noise == "isotropic":
            L, psi, n_iter, converged = ppca_closed_form(S, k)
            heywood = np.array([], dtype=int)
        else:
            R = S / np.outer(sd, sd)
            L, psi, n_iter, converged = maximise_profile_likelihood(
                R, k, n_init=self.n_init, max_iter=self.max_iter, tol=self.tol,
                random_state=self.random_state)
            heywood = np.flatnonzero(psi < HEYWOOD_RATIO)
            if converged and not heywood.size:
                L, psi, gnorm = newton_refine(R, L, psi)
                if gnorm > STATIONARY_GTOL:
                    converged = False
            L, psi = sd[:, None] * L, sd ** 2 * psi
        self._set_fit(X, arr, mean, S, L, psi, n_iter, converged, heywood, m=m,
                      keep_data=not weighted)
        return self

    def _fit_at(self, X, loadings, noise_variance) -> "FactorModel":
        """Fit from a given estimate (``loadings`` Lambda (p, k), ``noise_variance`` the
        ``p`` unique variances, raw scale) instead of the multi-start search: Newton
        steps polish it to the maximum of the likelihood (diagonal noise); the adapters
        use it. Falls back to :meth:`fit` when the polish does not reach a stationary
        point."""
        arr, mean, S, sd, _, _ = self._moments(X)
        L = np.asarray(loadings, dtype=float)
        psi = np.asarray(noise_variance, dtype=float)
        if self.noise == "isotropic":
            raise ValueError("_fit_at polishes factor analysis (noise='diagonal') only.")
        L, psi = L / sd[:, None], psi / sd ** 2
        heywood = np.flatnonzero(psi < HEYWOOD_RATIO)
        converged = not heywood.size
        if converged:
            L, psi, gnorm = newton_refine(S / np.outer(sd, sd), L, psi)
            converged = gnorm <= STATIONARY_GTOL
        if not converged and not heywood.size:
            return self.fit(X)
        self._set_fit(X, arr, mean, S, sd[:, None] * L, sd ** 2 * psi, 0, converged, heywood)
        return self

    def _moments(self, X, weights: np.ndarray | None = None):
        """Validated ``X_pre``, its mean, (1/m) covariance, standard deviations, ``m``
        and whether the rows were weighted (rows counted ``weights`` times)."""
        self._check_hyperparameters()
        arr = as_pretrain_array(X, "X_pre")
        p = arr.shape[1]
        m = arr.shape[0] if weights is None else int(round(weights.sum()))
        self._check_n_factors(self.n_factors, p)
        if m < 2:
            raise ValueError(f"X_pre needs at least 2 rows to estimate a covariance; got {m}.")
        mean, S = row_moments(arr, "X_pre", weights=weights)  # one chunked pass
        sd = np.sqrt(np.diag(S))
        constant = np.flatnonzero(sd <= 1e-12 * max(sd.max(), np.finfo(float).tiny))
        if constant.size:
            raise ValueError(
                f"X_pre column(s) {constant.tolist()} are constant: a factor model needs a "
                "positive variance for every raw feature. Drop these columns."
            )
        return arr, mean, S, sd, m, weights is not None

    def _set_fit(self, X, arr, mean, S, L, psi, n_iter, converged, heywood, *,
                 m: int | None = None, keep_data: bool = True) -> None:
        """Fitted state at the estimate ``(mean, L, psi)`` (raw scale), in the gauge
        (``m`` units, ``arr.shape[0]`` unless weighted; a weighted refit keeps no
        pre-training data)."""
        p = arr.shape[1]
        m = arr.shape[0] if m is None else m
        k = self.n_factors
        L = principal_axes_gauge(L, psi)
        self._record_input_names(self, X)
        self.n_features_in_ = p
        self.nobs_ = m
        self.mean_ = mean
        self.components_ = L.T.copy()
        self.noise_variance_ = psi
        self.rotation_ = np.eye(k)
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.heywood_ = heywood
        self.loglike_ = gaussian_loglike(S, L, psi, m)
        self.params_ = self._pack_params()
        self.symmetry_ = Orthogonal(k)
        self.pretrain_data_ = arr if keep_data else None
        self._sample_cov = S
        cond = self.linearize(self._average_hessian(),
                              rotation_tangent(self.components_, lead=p,
                                               trail=self.params_.size - p - k * p),
                              rtol=SINGULAR_HESSIAN, singular="pinv")
        self._warn(converged, heywood, cond)

    def _check_hyperparameters(self) -> None:
        if self.noise not in ("diagonal", "isotropic"):
            raise ValueError(f"noise must be 'diagonal' (factor analysis) or 'isotropic' "
                             f"(probabilistic PCA); got {self.noise!r}.")
        if self.scores not in ("regression", "bartlett"):
            raise ValueError(f"scores must be 'regression' or 'bartlett'; got "
                             f"{self.scores!r}.")
        for name, low in (("n_init", 1), ("max_iter", 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) \
                    or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
        if not (isinstance(self.tol, (int, float, np.floating)) and self.tol > 0):
            raise ValueError(f"tol must be a positive number; got {self.tol!r}.")
        positive_number(self.feature_scale, "feature_scale")

    def _check_n_factors(self, k, p: int) -> None:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k < p:
            raise ValueError(
                f"n_factors must be an integer with 1 <= n_factors < p = {p} (the number "
                f"of raw features); got {k!r}."
            )
        if self.noise == "diagonal" and (p - k) ** 2 < p + k:
            k_max = max(j for j in range(p) if (p - j) ** 2 >= p + j)
            raise ValueError(
                f"n_factors={k} is too many for p={p} raw features with diagonal noise: "
                f"the model would have more free parameters than the {p * (p + 1) // 2} "
                f"covariances it fits (Ledermann bound (p - k)^2 >= p + k allows "
                f"k <= {k_max}), so the loadings are not identified. Use fewer factors or "
                "noise='isotropic'."
            )

    def _warn(self, converged: bool, heywood: np.ndarray, cond: float) -> None:
        if not converged:
            warnings.warn(
                f"FactorModel did not converge (max_iter={self.max_iter}, tol={self.tol}): "
                "the estimate is not a maximum of the likelihood, so features, influence "
                "functions and two-stage standard errors are unreliable. Increase max_iter, "
                "try more starts (n_init) or fewer factors.",
                ConvergenceWarning, stacklevel=3)
        if heywood.size:
            warnings.warn(
                f"Heywood case: the unique variance of raw feature(s) {heywood.tolist()} is "
                f"at the boundary zero (psi_i / Var(x_i) < {HEYWOOD_RATIO:g}); the factors "
                "explain these variables entirely. The ML estimate then sits on the edge of "
                "the parameter space, where its influence function and the two-stage "
                "standard errors are not valid. Usual causes: too many factors, a variable "
                "that is (nearly) a combination of others, or few pre-training rows. Try "
                "fewer factors, drop or combine the variable, or noise='isotropic'.",
                IdentificationWarning, stacklevel=3)
        # diag(Lambda' Psi^-1 Lambda): each factor's signal-to-noise ratio
        strength = (self.components_ ** 2 / self.noise_variance_).sum(axis=1)
        weak = np.flatnonzero(strength < ZERO_FACTOR)
        if weak.size:
            warnings.warn(
                f"Factor(s) {weak.tolist()} have (numerically) zero loadings: the data "
                f"support fewer than n_factors={self.n_factors} factors, and the zero "
                "factors are not identified. Use fewer factors.",
                IdentificationWarning, stacklevel=3)
        elif cond < SINGULAR_HESSIAN and not heywood.size:
            warnings.warn(
                f"The log-likelihood Hessian is singular beyond the rotation directions "
                f"(scaled condition number {cond:.2g}): the factor model is not locally "
                "identified here, and its standard errors are unreliable. Use fewer "
                "factors.", IdentificationWarning, stacklevel=3)

    def _pack_params(self) -> np.ndarray:
        psi = self.noise_variance_[:1] if self.noise == "isotropic" else self.noise_variance_
        return np.concatenate([self.mean_, self.components_.ravel(), psi])

    # ------------------------------------------------------------------- symmetry
    def moved_params(self, g) -> tuple[np.ndarray, np.ndarray]:
        """``Q = g`` in O(k) moves ``Lambda -> Lambda Q'`` (``components_ -> Q components_``).

        ``T = blockdiag(I, Q kron I_p, I)``; :meth:`act` gives the copy, whose features
        are ``Q phi``. ``Sigma``, the likelihood and every invariant result are unchanged.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(1)
        >>> X = rng.normal(size=(500, 2)) @ rng.normal(size=(2, 6)) + rng.normal(size=(500, 6))
        >>> fa = ssi.FactorModel(2).fit(X)
        >>> Q = fa.symmetry_.sample(rng)
        >>> moved = fa.act(Q)
        >>> bool(np.allclose(moved.transform(X), fa.transform(X) @ Q.T))
        True
        """
        self._check_fitted()
        Q = self.symmetry_.rho(g)
        T = np.eye(self.params_.size)
        p, k = self.n_features_in_, self.n_factors
        T[p:p + k * p, p:p + k * p] = np.kron(Q, np.eye(p))
        return T @ self.params_, T

    def act(self, g) -> "FactorModel":
        """A copy moved by ``Q = g`` (:meth:`moved_params`); ``rotation_`` records ``Q``."""
        moved = super().act(g)
        moved.rotation_ = self.symmetry_.rho(g) @ self.rotation_
        return moved

    def _set_params(self, theta: np.ndarray) -> None:
        p, k = self.n_features_in_, self.n_factors
        self.params_ = theta
        self.mean_ = theta[:p]
        self.components_ = theta[p:p + k * p].reshape(k, p)
        psi = theta[p + k * p:]
        self.noise_variance_ = np.full(p, psi[0]) if self.noise == "isotropic" else psi

    def alignment_coordinates(self) -> np.ndarray:
        """Rows that move with ``rho(Q) = Q``: ``components_ = Lambda'`` (k, p)."""
        self._check_fitted()
        return self.components_

    def get_covariance(self) -> np.ndarray:
        """Fitted covariance ``Sigma = Lambda Lambda' + Psi`` (p, p).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(2)
        >>> X = rng.normal(size=(500, 1)) @ [[1.0, 0.8, 0.6, 0.9]] + rng.normal(size=(500, 4))
        >>> fa = ssi.FactorModel(1).fit(X)
        >>> bool(np.allclose(np.diag(fa.get_covariance()), X.var(axis=0)))  # ML property
        True
        """
        self._check_fitted()
        return self.components_.T @ self.components_ + np.diag(self.noise_variance_)

    # ------------------------------------------------------------------- features
    def _precision_terms(self):
        """``B = Lambda' Psi^-1`` (k, p), ``M = B Lambda`` and the score matrix
        ``G = (I + M)^-1`` (regression) or ``M^-1`` (Bartlett), so ``W = G B``."""
        L = self.components_.T
        B = self.components_ / self.noise_variance_
        M = B @ L
        G = np.linalg.inv(M + np.eye(M.shape[0]) if self.scores == "regression" else M)
        return B, M, (G + G.T) / 2

    def _transform(self, X: np.ndarray) -> np.ndarray:
        B, _, G = self._precision_terms()
        return self.feature_scale * ((X - self.mean_) @ (G @ B).T)

    def feature_vjp(self, X, C, *, per_row: bool = False) -> np.ndarray:
        r"""Vector-Jacobian product of the factor scores ``phi = G B (x - mu)``.

        With ``B = Lambda' Psi^{-1}``, ``M = B Lambda``, ``G = (I + M)^{-1}``
        (regression) or ``M^{-1}`` (Bartlett), a cotangent ``c``, ``a = G c`` and the
        residual ``r = v - Lambda phi`` (``v = x - mu``):

        .. math::

            \frac{\partial c'\phi}{\partial \mu} = -B'G c, \quad
            \frac{\partial c'\phi}{\partial \Lambda} = \Psi^{-1}(r a' - \Lambda a \phi'),
            \quad \frac{\partial c'\phi}{\partial \psi_i}
                = -\frac{(\Lambda a)_i\, r_i}{\psi_i^2}

        (from ``dG = -G dM G`` and ``dM = dB Lambda + B dLambda``); for PPCA the last
        is summed over ``i``. Shapes as in :meth:`Representation.feature_vjp`.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(3)
        >>> X = rng.normal(size=(300, 1)) @ [[1.0, 2.0, 1.5, 0.5, 1.0]]
        >>> X = X + rng.normal(size=(300, 5))
        >>> fa = ssi.FactorModel(1).fit(X)
        >>> fa.feature_vjp(X[:4], np.ones((4, 1, 2))).shape   # q = 5 + 5 + 5
        (15, 2)
        """
        self._check_fitted()
        V = np.asarray(X, dtype=float) - self.mean_
        C = self.feature_scale * np.asarray(C, dtype=float)  # cotangent of the raw scores
        B, _, G = self._precision_terms()
        L, psi = self.components_.T, self.noise_variance_
        Phi = V @ (G @ B).T
        Res = V - Phi @ L.T
        n, k = Phi.shape
        if per_row:
            A = C @ G
            LA = A @ L.T
            grad_mu = -(C @ (G @ B))
            grad_L = (A[:, :, None] * (Res / psi)[:, None, :]
                      - Phi[:, :, None] * (LA / psi)[:, None, :])
            grad_psi = -(LA * Res) / psi ** 2
            if self.noise == "isotropic":
                grad_psi = grad_psi.sum(axis=1, keepdims=True)
            return np.hstack([grad_mu, grad_L.reshape(n, -1), grad_psi])
        r = C.shape[2]
        A = np.einsum("jnr,nl->jlr", C, G).reshape(n, k * r)
        grad_mu = -(G @ B).T @ C.sum(axis=0)
        Y = (Res.T @ A).reshape(-1, k, r)                      # sum_j r_ji A_jlr
        T2 = (Phi.T @ A).reshape(k, k, r)                      # sum_j phi_jl A_jnr
        grad_L = (Y / psi[:, None, None]).transpose(1, 0, 2) - np.einsum(
            "in,lnr->lir", L / psi[:, None], T2)
        grad_psi = -np.einsum("in,inr->ir", L, Y) / psi[:, None] ** 2
        if self.noise == "isotropic":
            grad_psi = grad_psi.sum(axis=0, keepdims=True)
        return np.vstack([grad_mu, grad_L.reshape(-1, r), grad_psi])

    # ------------------------------------------------------------------ influence
    def estimating_function(self, U) -> np.ndarray:
        r"""Per-row score ``d log N(x; mu, Sigma) / d theta`` in the ``params_`` layout (n, q).

        The estimating function of the ML fit; the influence is ``IF(x) = -H_h^+ s(x)``
        (Notes).

        ``s_mu = a``, ``s_Lambda' = (Lambda'a) a' - (P Lambda)'``,
        ``s_psi = (a^2 - diag P) / 2`` with ``P = Sigma^{-1}`` and ``a = P (x - mu)``;
        PPCA sums the last block. Averages to zero over the pre-training rows at the MLE.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(5)
        >>> X = rng.normal(size=(500, 1)) @ [[1.0, 2.0, 1.5, 0.5, 1.0]]
        >>> X = X + rng.normal(size=(500, 5))
        >>> fa = ssi.FactorModel(1).fit(X)
        >>> bool(np.abs(fa.estimating_function(X).mean(axis=0)).max() < 1e-10)
        True
        """
        self._check_fitted()
        V = self._validate_units(U) - self.mean_
        L, psi = self.components_.T, self.noise_variance_
        P = inv_spd(L @ L.T + np.diag(psi))
        A = V @ P
        AL = A @ L
        s_L = AL[:, :, None] * A[:, None, :] - (P @ L).T[None, :, :]
        s_psi = 0.5 * (A ** 2 - np.diag(P))
        if self.noise == "isotropic":
            s_psi = s_psi.sum(axis=1, keepdims=True)
        return np.hstack([A, s_L.reshape(len(V), -1), s_psi])

    def _prepare_contraction(self, K: np.ndarray | None):
        r"""Fold ``-K H_h^+`` into the score formula (chunks cost ``O(rows p (k + r + k r))``).

        With ``Kt = -K H_h^+`` split into its blocks ``Kt_mu`` (r, p), ``Kt_Lambda``
        (r, k, p) and ``Kt_psi`` (r, p) (PPCA: the single column repeated), the
        contracted score of a row with ``a = Sigma^{-1} (x - mu)`` is

        .. math:: Kt\, s(x) = Kt_\mu a + \sum_l (\Lambda'a)_l\, Kt_{\Lambda,l} a
                  + \tfrac12 Kt_\psi (a \circ a) + c, \qquad
                  c = -\sum_{l,i} (\Sigma^{-1}\Lambda)_{il} Kt_{\Lambda,li}
                      - \tfrac12 Kt_\psi \operatorname{diag}\Sigma^{-1},

        so a chunk needs ``a`` (Woodbury: with ``w = Lambda'Psi^{-1} v``,
        ``a = Psi^{-1} v - Psi^{-1} Lambda (I + M)^{-1} w``, ``O(rows p k)``, and
        ``Lambda'a = (I + M)^{-1} w``, ``O(rows k^2)``; ``Sigma^{-1} v`` and ``Lambda'a``
        directly in a Heywood case, where ``Psi^{-1}`` is ill-conditioned) and one
        product with ``P = [Kt_mu', Kt_Lambda,0', ..., Kt_Lambda,k-1']`` (p x (r + k r)),
        never the (rows, q) scores. ``K`` None gives the plain influence (``Kt = -H_h^+``).
        """
        Kt = super()._prepare_contraction(K)
        r, k, p = Kt.shape[0], self.n_factors, self.n_features_in_
        L, psi = self.components_.T, self.noise_variance_
        Sigma_inv = inv_spd(L @ L.T + np.diag(psi))
        K_L = Kt[:, p:p + k * p].reshape(r, k, p)
        K_psi = np.broadcast_to(Kt[:, p + k * p:], (r, p))            # PPCA: repeated
        P = np.hstack([Kt[:, :p].T, K_L.transpose(2, 1, 0).reshape(p, k * r)])
        const = (-np.einsum("il,rli->r", Sigma_inv @ L, K_L)
                 - 0.5 * K_psi @ np.diag(Sigma_inv))
        woodbury = None
        if np.all(psi >= HEYWOOD_RATIO * np.diag(self._sample_cov)):
            B = self.components_ / psi                                 # Lambda' Psi^-1
            G = inv_spd(np.eye(k) + B @ L)                             # (I + M)^-1
            woodbury = (B, G @ B, G)
        return P, 0.5 * K_psi.T, const, Sigma_inv, woodbury, r

    def _contract_units(self, U: np.ndarray, prepared) -> np.ndarray:
        P, Q, const, Sigma_inv, woodbury, r = prepared
        k = self.n_factors
        V = U - self.mean_
        if woodbury is None:
            A = V @ Sigma_inv
            t = A @ self.components_.T                                  # Lambda'a
        else:
            B, GB, G = woodbury
            W = V @ B.T
            A = V                                        # in place: V is a fresh copy
            A /= self.noise_variance_
            A -= W @ GB
            t = W @ G                                                   # Lambda'a
        T = A @ P
        out = T[:, :r] + np.einsum("cl,clr->cr", t, T[:, r:].reshape(-1, k, r))
        A *= A                                           # A is ours here: squared in place
        out += A @ Q
        out += const
        return out

    def score_samples(self, X) -> np.ndarray:
        """Gaussian log-likelihood ``log N(x; mu, Sigma)`` of each row, (n,).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(5)
        >>> X = rng.normal(size=(500, 1)) @ [[1.0, 2.0, 1.5, 0.5, 1.0]]
        >>> fa = ssi.FactorModel(1).fit(X + rng.normal(size=(500, 5)))
        >>> bool(np.isclose(fa.score_samples(fa.pretrain_data_).sum(), fa.loglike_))
        True
        """
        V = self._validate_rows(X, "X") - self.mean_
        Sigma = self.get_covariance()
        _, logdet = np.linalg.slogdet(Sigma)
        quad = np.einsum("ij,ij->i", V @ inv_spd(Sigma), V)
        return -0.5 * (V.shape[1] * np.log(2 * np.pi) + logdet + quad)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of the rows ``X`` (scikit-learn's ``score``).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(5)
        >>> X = rng.normal(size=(500, 1)) @ [[1.0, 2.0, 1.5, 0.5, 1.0]]
        >>> fa = ssi.FactorModel(1).fit(X + rng.normal(size=(500, 5)))
        >>> bool(np.isclose(fa.score(fa.pretrain_data_) * 500, fa.loglike_))
        True
        """
        return float(np.mean(self.score_samples(X)))

    def _average_hessian(self) -> np.ndarray:
        """Average log-likelihood Hessian at the fit, ``params_`` layout (q, q)."""
        H = loglike_hessian(self._sample_cov, self.components_.T, self.noise_variance_)
        if self.noise == "isotropic":  # psi = s^2 1: chain rule (Sigma is linear in psi)
            p = self.n_features_in_
            Jmap = np.zeros((H.shape[0], H.shape[0] - p + 1))
            Jmap[:-p, :-1] = np.eye(H.shape[0] - p)
            Jmap[-p:, -1] = 1.0
            H = Jmap.T @ H @ Jmap
        return H
