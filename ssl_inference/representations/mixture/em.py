"""Maximum-likelihood fit of a Gaussian mixture: EM from k-means++ starts, Newton polish,
and the gauge that fixes the component labels."""
from __future__ import annotations

import numpy as np

from .layout import Layout, MixtureParams
from .likelihood import log_likelihood, mean_hessian, posterior, score_sum

__all__ = ["DegenerateStart", "best_em_start", "newton_polish", "gauge_order", "to_gauge"]

#: Newton steps that polish the EM solution until the score is zero to rounding
NEWTON_STEPS = 8
#: EM starts that degenerate (a collapsed component) are replaced, at most this often
MAX_FAILED_STARTS = 10


class DegenerateStart(Exception):
    """An EM start produced a singular covariance or an empty component."""


def initial_responsibilities(X: np.ndarray, K: int, rng: np.random.Generator,
                             weights: np.ndarray | None = None) -> np.ndarray:
    """Hard assignment to k-means++ seeds refined by a few Lloyd iterations.

    With ``weights`` (row ``i`` counted ``w_i`` times) the seeds are drawn from the
    sample with the rows repeated in place, ``np.repeat(arange(n), w)`` (an index of
    ``m`` integers, not a copy of the rows), with the same random numbers, and the
    Lloyd means are weighted: the start of ``X[np.repeat(arange(n), w)]``.
    """
    expanded = (None if weights is None
                else np.repeat(np.arange(X.shape[0]), np.asarray(weights, dtype=np.intp)))
    m = X.shape[0] if expanded is None else expanded.size

    def row(i):
        return X[i] if expanded is None else X[expanded[i]]

    centers = np.empty((K, X.shape[1]))
    centers[0] = row(rng.integers(m))
    dist2 = ((X - centers[0]) ** 2).sum(axis=1)
    for k in range(1, K):
        per_draw = dist2 if expanded is None else dist2[expanded]
        total = per_draw.sum()
        idx = rng.choice(m, p=per_draw / total) if total > 0 else rng.integers(m)
        centers[k] = row(idx)
        dist2 = np.minimum(dist2, ((X - centers[k]) ** 2).sum(axis=1))
    sq_norms = (X ** 2).sum(axis=1, keepdims=True)
    w = np.ones(X.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    for _ in range(10):
        labels = (sq_norms - 2.0 * X @ centers.T + (centers ** 2).sum(axis=1)).argmin(axis=1)
        mine = [(labels == k) & (w > 0) for k in range(K)]
        new = np.array([w[mine[k]] @ X[mine[k]] / w[mine[k]].sum() if np.any(mine[k])
                        else centers[k] for k in range(K)])
        if np.array_equal(new, centers):
            break
        centers = new
    resp = np.zeros((X.shape[0], K))
    resp[np.arange(X.shape[0]), labels] = 1.0
    return resp


def m_step(X: np.ndarray, resp: np.ndarray, covariance_type: str,
           weights: np.ndarray | None = None) -> MixtureParams:
    """Weighted ML update of weights, means and covariances (precision Cholesky); rows
    counted ``weights`` times when given (``resp`` times the weights in every sum)."""
    d = X.shape[1]
    m = X.shape[0] if weights is None else float(weights.sum())
    if weights is not None:
        resp = resp * weights[:, None]
    K = resp.shape[1]
    counts = resp.sum(axis=0)
    if np.any(counts <= 1e-8 * m):
        raise DegenerateStart(f"component {int(np.argmin(counts))} lost all its rows.")
    means = (resp.T @ X) / counts[:, None]
    cov = np.empty((K, d, d))
    for k in range(K):  # O(m d) memory per component
        diff = X - means[k]
        cov[k] = (resp[:, k, None] * diff).T @ diff / counts[k]
    if covariance_type == "full":
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            worst = int(np.argmin(np.linalg.eigvalsh(cov)[:, 0]))
            raise DegenerateStart(f"the covariance of component {worst} became "
                                  "singular.") from None
        U = np.triu(np.linalg.inv(chol).transpose(0, 2, 1))  # Sigma^-1 = U U', U = chol^-T
    else:
        var = np.diagonal(cov, axis1=1, axis2=2)                         # (K, d)
        if covariance_type == "spherical":
            var = np.repeat(var.mean(axis=1, keepdims=True), d, axis=1)
        if np.any(var <= 1e-300):
            raise DegenerateStart(f"a variance of component "
                                  f"{int(np.argmin(var.min(axis=1)))} became zero.")
        U = np.zeros((K, d, d))
        U[:, np.arange(d), np.arange(d)] = 1.0 / np.sqrt(var)
    return MixtureParams(np.log(counts / m), means, U)


def run_em(X: np.ndarray, resp: np.ndarray, covariance_type: str, max_iter: int,
           tol: float, weights: np.ndarray | None = None):
    """EM from initial responsibilities: (mixture, mean loglik, n_iter, converged); rows
    counted ``weights`` times when given."""
    previous = -np.inf
    for n_iter in range(1, max_iter + 1):
        mix = m_step(X, resp, covariance_type, weights)
        resp, loglik = posterior(X, mix)
        current = float(loglik.mean() if weights is None
                        else weights @ loglik / weights.sum())
        if not np.isfinite(current):
            raise DegenerateStart("the log-likelihood became infinite.")
        if abs(current - previous) < tol:
            return mix, current, n_iter, True
        previous = current
    return mix, current, max_iter, False


def best_em_start(X: np.ndarray, K: int, covariance_type: str, *, n_init: int,
                  max_iter: int, tol: float, rng: np.random.Generator,
                  weights: np.ndarray | None = None):
    """The best of ``n_init`` EM starts: (mixture, n_iter, converged, failure messages);
    rows counted ``weights`` times when given.

    A start that degenerates is replaced by a fresh one, at most ``MAX_FAILED_STARTS``
    times in all.

    Raises
    ------
    ValueError
        When every start degenerated.
    """
    best, failures, successes = None, [], 0
    while successes < n_init and len(failures) < MAX_FAILED_STARTS:
        try:
            result = run_em(X, initial_responsibilities(X, K, rng, weights),
                            covariance_type, max_iter, tol, weights)
        except DegenerateStart as exc:
            failures.append(str(exc))
            continue
        successes += 1
        if best is None or result[1] > best[1]:
            best = result
    if best is None:
        raise ValueError(
            f"All {len(failures)} EM starts failed: {failures[0]} A Gaussian component "
            "needs at least d + 1 distinct rows; use fewer components, "
            "covariance_type='diag' or 'spherical', or remove duplicated rows."
        )
    mix, _, n_iter, converged = best
    return mix, n_iter, converged, failures


def newton_polish(X: np.ndarray, layout: Layout, theta: np.ndarray,
                  weights: np.ndarray | None = None) -> np.ndarray:
    """Newton steps on the mean log-likelihood (fixed Hessian, backtracking); rows
    counted ``weights`` times when given."""
    hessian = mean_hessian(layout, X, layout.unpack(theta), weights=weights)
    try:
        np.linalg.cholesky(-hessian)
    except np.linalg.LinAlgError:
        return theta  # not at a strict local maximum: reported by the diagnostics
    m = X.shape[0] if weights is None else weights.sum()
    loglik = log_likelihood(X, layout.unpack(theta), weights)
    for _ in range(NEWTON_STEPS):
        grad = score_sum(X, layout, theta, weights) / m
        step = np.linalg.solve(-hessian, grad)
        for t in 0.5 ** np.arange(12):
            candidate = theta + t * step
            new = log_likelihood(X, layout.unpack(candidate), weights)
            if new >= loglik - 1e-12 * abs(loglik):
                break
        else:
            return theta
        theta, loglik = candidate, new
        if np.max(np.abs(t * step)) <= 1e-13 * (1.0 + np.max(np.abs(theta))):
            break
    return theta


def gauge_order(means: np.ndarray) -> np.ndarray:
    """Order of the components under the gauge rule (leading axis of the centred means)."""
    K = means.shape[0]
    centred = means - means.mean(axis=0)
    evals, evecs = np.linalg.eigh(centred.T @ centred / K)
    axis = evecs[:, -1]
    axis = axis * np.sign(axis[np.argmax(np.abs(axis))])
    keys = tuple(means[:, j] for j in reversed(range(means.shape[1]))) + (means @ axis,)
    return np.lexsort(keys)


def to_gauge(layout: Layout, theta: np.ndarray) -> np.ndarray:
    """Relabel the components by the gauge rule (see the class Notes)."""
    mix = layout.unpack(theta)
    order = gauge_order(mix.means)
    return layout.pack(np.exp(mix.log_weights[order]), mix.means[order],
                       mix.prec_chol[order])
