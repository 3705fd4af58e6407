r"""Likelihood of the Gaussian factor model and its maximum-likelihood fit.

The profile likelihood of ``Psi`` (Joreskog 1967) with its gradient, maximised by
multi-start SLSQP; the full log-likelihood's gradient and closed-form Hessian (also the
Hessian behind :class:`~ssl_inference.FactorModel`'s influence), with which Newton steps
refine the fit in the horizontal space; the PPCA closed form; the principal-axes gauge.
Formulas in :class:`~ssl_inference.FactorModel`'s Notes.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg, optimize

from .linearization import horizontal_inverse, rotation_tangent

__all__ = ["inv_spd", "profile_objective", "profile_loadings", "maximise_profile_likelihood",
           "ppca_closed_form", "principal_axes_gauge", "gaussian_loglike",
           "loglike_gradient", "loglike_hessian", "newton_refine"]

#: Lower bound of ``psi_i / S_ii`` in the optimiser (the Heywood boundary, numerically).
PSI_FLOOR = 1e-6
#: Newton refinement: at most this many steps, stop at this scale-free gradient size.
NEWTON_STEPS = 30
NEWTON_GTOL = 1e-13


def inv_spd(A: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix (Cholesky), symmetrised."""
    inv = linalg.cho_solve(linalg.cho_factor(A), np.eye(A.shape[0]))
    return (inv + inv.T) / 2


def profile_eigen(R: np.ndarray, psi: np.ndarray):
    r = 1.0 / np.sqrt(psi)
    d, U = np.linalg.eigh(R * np.outer(r, r))
    return d[::-1], U[:, ::-1]


def profile_objective(t: np.ndarray, R: np.ndarray, k: int):
    """Per-row negative profile log-likelihood (no constants) and its gradient in ``t``."""
    d, U = profile_eigen(R, np.exp(t))
    dk = np.maximum(d[:k], 1.0)
    f = 0.5 * (t.sum() + np.sum(np.log(dk) + d[:k] / dk) + d[k:].sum())
    c = d - 1.0
    c[:k] = np.where(d[:k] > 1.0, 0.0, c[:k])
    return f, -0.5 * (U ** 2) @ c


def profile_loadings(R: np.ndarray, psi: np.ndarray, k: int) -> np.ndarray:
    """``Lambda = Psi^{1/2} U_k (D_k - I)_+^{1/2}`` maximising the likelihood at fixed Psi."""
    d, U = profile_eigen(R, psi)
    return np.sqrt(psi)[:, None] * U[:, :k] * np.sqrt(np.maximum(d[:k] - 1.0, 0.0))


def maximise_profile_likelihood(R: np.ndarray, k: int, *, n_init: int, max_iter: int,
                            tol: float, random_state):
    """Multi-start SLSQP on the profile likelihood of the correlation matrix ``R``.

    Returns ``(Lambda, psi, iterations, converged)`` on the scale of ``R``.

    SLSQP handles the bounds on ``log psi`` and, unlike L-BFGS-B (whose tiny BLAS
    calls stall when the BLAS threads compete with other processes), costs the same
    with any thread setting.
    """
    p = R.shape[0]
    rng = np.random.default_rng(random_state)
    bounds = [(np.log(PSI_FLOOR), np.log(2.0))] * p
    try:
        start = (1.0 - k / (2.0 * p)) / np.diag(np.linalg.inv(R))
    except np.linalg.LinAlgError:
        start = np.full(p, 0.5)
    starts = [np.log(np.clip(start, 2 * PSI_FLOOR, 1.0))]
    starts += [np.log(rng.uniform(0.05, 0.95, size=p)) for _ in range(n_init - 1)]
    best = None
    for t0 in starts:
        res = optimize.minimize(profile_objective, t0, args=(R, k), jac=True,
                                method="SLSQP", bounds=bounds,
                                options={"maxiter": max_iter, "ftol": tol})
        if best is None or res.fun < best.fun:
            best = res
    psi = np.exp(best.x)
    # status 9 = iteration limit; other stops (e.g. a line search limited by
    # rounding near the optimum) are judged by the Newton refinement's gradient
    converged = best.status != 9
    return profile_loadings(R, psi, k), psi, int(best.nit), converged



def ppca_closed_form(S: np.ndarray, k: int):
    """PPCA MLE (Tipping & Bishop 1999).

    ``s^2`` is the mean of the ``p - k`` smallest eigenvalues of ``S`` and
    ``Lambda = U_k (L_k - s^2 I)^{1/2}`` (principal axes: already in the gauge).
    """
    evals, evecs = np.linalg.eigh(S)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    s2 = evals[k:].mean()
    if s2 <= 1e-12 * evals[0]:
        raise ValueError(
            f"X_pre has only {int(np.sum(evals > 1e-12 * evals[0]))} non-degenerate "
            f"directions, so the isotropic noise variance is zero with n_factors={k}; "
            "choose fewer factors."
        )
    L = evecs[:, :k] * np.sqrt(np.maximum(evals[:k] - s2, 0.0))
    return L, np.full(S.shape[0], s2), 0, True


def principal_axes_gauge(L: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Rotate ``Lambda`` so ``Lambda' Psi^-1 Lambda`` is diagonal, decreasing; sign-fix columns."""
    M = (L / psi[:, None]).T @ L
    _, Vm = np.linalg.eigh((M + M.T) / 2)
    L = L @ Vm[:, ::-1]
    pivot = np.argmax(np.abs(L), axis=0)
    signs = np.sign(L[pivot, np.arange(L.shape[1])])
    return L * np.where(signs == 0, 1.0, signs)


def gaussian_loglike(S: np.ndarray, L: np.ndarray, psi: np.ndarray, m: int) -> float:
    Sigma = L @ L.T + np.diag(psi)
    _, logdet = np.linalg.slogdet(Sigma)
    p = S.shape[0]
    return float(-0.5 * m * (p * np.log(2 * np.pi) + logdet
                             + np.trace(np.linalg.solve(Sigma, S))))


def loglike_gradient(S: np.ndarray, L: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Average score in (Lambda' (k p), psi (p)) at ``mu = x_bar``.

    ``(E Lambda)'`` and ``diag(E) / 2`` with ``E = P S P - P``, ``P = Sigma^{-1}``.
    """
    P = inv_spd(L @ L.T + np.diag(psi))
    E = P @ S @ P - P
    return np.concatenate([(E @ L).T.ravel(), 0.5 * np.diag(E)])


def loglike_hessian(S: np.ndarray, L: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Average log-likelihood Hessian in (mu, Lambda' (row-major), psi), at ``mu = x_bar``.

    ``quad(A, B)`` is ``tr(A dSigma_a B dSigma_b)`` for the unit loading directions
    ``a = (l, i)``, ``b = (n, j)`` (``dSigma_a = e_i lambda_l' + lambda_l e_i'``):
    ``(AL)_in (BL)_jl + A_ij (L'BL)_ln + (L'AL)_ln B_ij + (AL)_jl (BL)_in``; the
    loading/psi and psi/psi blocks are ``A_ij (BL)_jl + B_ij (AL)_jl`` and ``A_ij B_ij``.
    """
    p, k = L.shape
    P = inv_spd(L @ L.T + np.diag(psi))
    T = P @ S @ P
    E = T - P
    PL, TL = P @ L, T @ L
    LPL, LTL = L.T @ PL, L.T @ TL

    def quad(A, AL, LAL, B, BL, LBL):
        Q = (np.einsum("in,jl->linj", AL, BL) + np.einsum("ij,ln->linj", A, LBL)
             + np.einsum("ln,ij->linj", LAL, B) + np.einsum("jl,in->linj", AL, BL))
        return Q.reshape(k * p, k * p)

    def cross(A, AL, B, BL):
        return (np.einsum("ij,jl->lij", A, BL) + np.einsum("ij,jl->lij", B, AL)).reshape(
            k * p, p)

    H_LL = (-quad(P, PL, LPL, T, TL, LTL) + 0.5 * quad(P, PL, LPL, P, PL, LPL)
            + np.kron(np.eye(k), E))
    H_Lpsi = -cross(P, PL, T, TL) + 0.5 * cross(P, PL, P, PL)
    H_psipsi = -(P * T) + 0.5 * (P * P)
    q = p + k * p + p
    H = np.zeros((q, q))
    H[:p, :p] = -P
    H[p:p + k * p, p:p + k * p] = (H_LL + H_LL.T) / 2
    H[p:p + k * p, p + k * p:] = H_Lpsi
    H[p + k * p:, p:p + k * p] = H_Lpsi.T
    H[p + k * p:, p + k * p:] = H_psipsi
    return H


def newton_refine(R: np.ndarray, L: np.ndarray, psi: np.ndarray):
    """Newton steps on the full log-likelihood of ``R`` in (Lambda, psi), horizontal space.

    A step is kept if every ``psi`` stays positive and the scale-free gradient
    (``|grad_Lambda| * sd``, ``|grad_psi| * psi``; ``sd = 1`` for a correlation matrix)
    decreases; the step is halved otherwise. Returns the refined point and its final
    scale-free gradient size.
    """
    p, k = L.shape

    def grad_size(L, psi):
        g = loglike_gradient(R, L, psi)
        return g, max(np.abs(g[:k * p]).max(), np.abs(g[k * p:] * psi).max())

    g, size = grad_size(L, psi)
    for _ in range(NEWTON_STEPS):
        if size < NEWTON_GTOL:
            break
        H = loglike_hessian(R, L, psi)[p:, p:]
        step = -horizontal_inverse(H, rotation_tangent(L.T, trail=p), singular="pinv")[0] @ g
        accepted = False
        for _halving in range(30):
            L_new = L + step[:k * p].reshape(k, p).T
            psi_new = psi + step[k * p:]
            if np.all(psi_new > 0):
                g_new, size_new = grad_size(L_new, psi_new)
                if size_new < size:
                    L, psi, g, size, accepted = L_new, psi_new, g_new, size_new, True
                    break
            step = step / 2
        if not accepted:
            break
    return L, psi, size
