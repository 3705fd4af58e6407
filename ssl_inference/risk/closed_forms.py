r"""Closed-form limits of the pre-training part ``||L(Z)||^2`` on the paper's models.

Each function returns the :class:`~ssl_inference.risk.WeightedChiSquare` law of
``||L(Z)||^2`` (THEORY.md §6), the random part of
``n (R - sigma^2) -> sigma^2 d_eff + alpha^{-1} ||L(Z)||^2``. They serve to validate the
generic plug-in computation (:meth:`RiskAsymptotics.from_results`) and simulations.

The paper's printed Corollaries 6.3 (spectral pre-training) and 6.4 (factor model) do
not match simulation (THEORY.md §6: two independent Monte Carlo checks, KS p < 1e-30).
:func:`spectral_diagonal_law` and :func:`factor_law` implement the corrected forms of
THEORY.md §6; both are checked here against direct Monte Carlo of the representation
error ``m * Rep(theta_hat)`` of refitted first stages (tests/test_risk_validation.py).
:func:`pca_gaussian_law` (not in the paper) is the same computation for the PCA first
stage, from Anderson's (1963) eigenvector covariance; the factor-model form is its
special case.
"""
from __future__ import annotations

import numpy as np

from .weighted_chi2 import WeightedChiSquare

__all__ = ["pca_gaussian_law", "spectral_diagonal_law", "factor_law"]


def _vector(values, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a non-empty vector of finite numbers.")
    return arr


def pca_gaussian_law(eigenvalues, beta, *, downstream_variances=None) -> WeightedChiSquare:
    r"""``||L(Z)||^2`` for PCA features of Gaussian pre-training data.

    Model: pre-training ``x ~ N(mu, E diag(lambda) E')`` with distinct
    ``lambda_0 > ... > lambda_{k-1} > lambda_k >= ... >= lambda_{p-1}``; features
    ``phi(x) = U'(x - mu)`` (``U`` = the top-``k`` eigenvectors, ``k = len(beta)``);
    downstream regression function ``f*(x) = b_0 + beta' U'(x - mu)``; downstream
    covariance diagonal in the same eigenbasis, with variances ``sigma_j`` of
    ``u_j'x`` (default: ``lambda``, the same law as the pre-training rows).

    Then (Anderson 1963) ``sqrt(m) u_j'(u_hat_l - u_l) -> N(0, lambda_l lambda_j /
    (lambda_l - lambda_j)^2)``, independent over the pairs ``(l, j)``; the
    within-subspace pairs stay in the span of the features, and

    .. math::

        \|L(Z)\|^2 \sim \sum_{j = k}^{p-1} \kappa_j \chi^2_1, \qquad
        \kappa_j = \sigma_j \sum_{l < k} \beta_l^2
        \frac{\lambda_l \lambda_j}{(\lambda_l - \lambda_j)^2}.

    Parameters
    ----------
    eigenvalues : array_like (p,)
        ``lambda``, decreasing, the first ``k`` strictly above the rest.
    beta : array_like (k,)
        Coefficients of the features in ``f*``.
    downstream_variances : array_like (p,), optional
        ``sigma_j = Var_down(u_j'x)``; only ``j >= k`` are used. For a GLM second
        stage (deviance risk) pass the working-weighted second moments
        ``E[omega (u_j'x)^2]``: ``E[omega] sigma_j`` for Gaussian inputs, since
        ``omega`` depends on ``x`` only through the top components (docs, theory page).

    Returns
    -------
    WeightedChiSquare
        With the ``p - k`` weights ``kappa_k, ..., kappa_{p-1}``.

    Examples
    --------
    >>> law = pca_gaussian_law([4.0, 2.0, 1.0, 0.5], [1.0, 1.0])
    >>> np.round(law.weights, 4)
    array([2.4444, 0.3039])
    """
    lam = _vector(eigenvalues, "eigenvalues")
    b = _vector(beta, "beta")
    k, p = b.size, lam.size
    if not 1 <= k < p:
        raise ValueError(f"len(beta) = k must satisfy 1 <= k < p = {p}; got {k}.")
    if np.any(np.diff(lam[:k + 1]) >= 0) or np.any(lam[k:] > lam[k - 1]):
        raise ValueError("eigenvalues must be decreasing with the first k distinct and "
                         "strictly above the others (an eigengap at k).")
    sig = lam if downstream_variances is None else _vector(downstream_variances,
                                                            "downstream_variances")
    if sig.size != p or np.any(sig < 0):
        raise ValueError("downstream_variances must have p non-negative entries.")
    top, rest = lam[:k, None], lam[None, k:]
    kappa = sig[k:] * np.sum(b[:, None] ** 2 * top * rest / (top - rest) ** 2, axis=0)
    return WeightedChiSquare(kappa)


def spectral_diagonal_law(a, c, beta) -> WeightedChiSquare:
    r"""``||L(Z)||^2`` for spectral contrastive pre-training on the diagonal model.

    Model (THEORY.md §6; paper §6.1): pre-training triples ``(x, x+, x-)`` with
    ``x ~ N(0, diag(a))``, ``x+ = diag(c / a) x + noise`` with ``Var(x+) = diag(a)``
    (so ``0 < c_i <= a_i``), and an independent negative ``x- ~ N(0, diag(a))``;
    ``S = diag(a)``, ``S+ = diag(c)``. The generalised eigenvalues ``c_i / a_i`` are
    ``lambda_1 > ... > lambda_k > 0`` (the first ``k = len(beta)`` coordinates) and
    ``mu_j = c_{k+j} / a_{k+j}`` (the others, all below ``lambda_k``); ``b_j = a_{k+j}``
    and ``tau = sum_{i<=k} lambda_i^2``. Features ``phi(x) = A x`` with the population
    loss minimiser ``A``; downstream ``x ~ N(0, I)`` and
    ``f*(x) = sum_{i<=k} sqrt(lambda_i / a_i) beta_i x_i``. Then

    .. math::

        \|L(Z)\|^2 \sim \sum_{j=1}^{d-k} s_j \chi^2_1, \qquad
        s_j = \frac{1}{2 b_j} \sum_{i \le k} \beta_i^2 \lambda_i
        \frac{1 + \tau + \lambda_i^2}{(\lambda_i - \mu_j)^2}.

    This is the corrected form of the paper's printed Corollary 6.3, which is rejected
    by simulation (THEORY.md §6). The weights here agree with direct Monte Carlo of
    ``m * Rep(A_hat)`` for refitted empirical minimisers ``A_hat``
    (tests/test_risk_validation.py).

    Parameters
    ----------
    a, c : array_like (d,)
        Diagonals of ``S = E xx'`` and ``S+ = E x+ x'``.
    beta : array_like (k,)

    Returns
    -------
    WeightedChiSquare
        With the ``d - k`` weights ``s_j``.

    Examples
    --------
    The paper's example ``Sigma_pre = I``, ``C = diag(1, 1/2, ..., 1/d)``, ``beta = 1``:

    >>> d = 4
    >>> law = spectral_diagonal_law(np.ones(d), 1.0 / np.arange(1, d + 1), np.ones(2))
    >>> round(law.mean, 3)
    39.045
    """
    a = _vector(a, "a")
    c = _vector(c, "c")
    b = _vector(beta, "beta")
    k, d = b.size, a.size
    if c.size != d or not 1 <= k < d:
        raise ValueError(f"a and c must have the same length d > k = len(beta); got "
                         f"{a.size}, {c.size} and k = {k}.")
    if np.any(a <= 0) or np.any(c <= 0) or np.any(c > a):
        raise ValueError("the diagonal model needs 0 < c_i <= a_i (Var(x+) = a).")
    ratio = c / a
    lam, mu = ratio[:k], ratio[k:]
    if np.any(np.diff(lam) >= 0) or mu.max() >= lam.min():
        raise ValueError("c / a must be strictly decreasing over the first k coordinates "
                         "and larger there than at every other coordinate (eigengap at k).")
    tau = float(np.sum(lam ** 2))
    top = lam[:, None]
    s = np.sum(b[:, None] ** 2 * top * (1.0 + tau + top ** 2) / (top - mu[None, :]) ** 2,
               axis=0) / (2.0 * a[k:])
    return WeightedChiSquare(s)


def factor_law(loadings, beta) -> WeightedChiSquare:
    r"""``||L(Z)||^2`` for the factor model / probabilistic PCA.

    Model (THEORY.md §6; paper §6.2): ``x = A h + e``, ``h ~ N(0, I_k)``,
    ``e ~ N(0, I_d)``, the same law for both samples; ``y = beta'h + noise``, so
    ``f*(x) = beta'A'(I + AA')^{-1} x``; features: the factor scores of the maximum
    likelihood fit with isotropic noise (PPCA), whose span is that of the top-``k``
    sample principal components. With the SVD ``A = U_1 D^{1/2} V_1'``:

    .. math::

        \|L(Z)\|^2 \sim w\, \chi^2_{d-k}, \qquad
        w = \sum_{i \le k} \frac{(V_1'\beta)_i^2}{D_i (1 + D_i)}.

    The paper's printed Corollary 6.4 has the weight without the ``1 / D_i`` factor,
    which simulation rejects (THEORY.md §6). The form here follows from
    :func:`pca_gaussian_law` with eigenvalues ``(1 + D, 1, ..., 1)`` and feature
    coefficients ``gamma_i = (V_1'beta)_i D_i^{1/2} / (1 + D_i)`` (the PPCA subspace
    estimate is the PCA one), and agrees with direct Monte Carlo
    (tests/test_risk_validation.py).

    Parameters
    ----------
    loadings : array_like (d, k)
        ``A``, of full column rank ``k < d``.
    beta : array_like (k,)

    Returns
    -------
    WeightedChiSquare
        ``d - k`` equal weights ``w``.

    Examples
    --------
    >>> law = factor_law(np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]),
    ...                  [1.0, 1.0])
    >>> law.weights
    array([0.55, 0.55])
    """
    A = np.asarray(loadings, dtype=float)
    b = _vector(beta, "beta")
    if A.ndim != 2 or A.shape[1] != b.size or not 1 <= b.size < A.shape[0]:
        raise ValueError("loadings must be a (d, k) matrix with k = len(beta) < d.")
    _, sv, V1t = np.linalg.svd(A, full_matrices=False)
    if sv.min() <= 1e-12 * sv.max():
        raise ValueError("loadings must have full column rank k.")
    D = sv ** 2
    w = float(np.sum((V1t @ b) ** 2 / (D * (1.0 + D))))
    return WeightedChiSquare(np.full(A.shape[0] - b.size, w))
