r"""Exact conditional test risk of a fitted least-squares pipeline (for simulations).

For a representation held fixed at ``theta_hat`` (paper, Prop. B.1; THEORY.md §6):

.. math::

    R = \sigma^2 + \mathrm{Rep} + \mathrm{Leakage}
        + \frac{\sigma^2}{n} \operatorname{tr}(\Sigma \Sigma_n^+),

the expectation over a new test point and over the label noise, given both samples'
inputs. It needs the data-generating process: the true regression function ``f*``
and the downstream population moments of the fitted design, so it is a tool for
simulations (the risk of each replication exactly, without test-label noise).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PopulationMoments", "RiskDecomposition", "conditional_risk"]


@dataclass(frozen=True)
class PopulationMoments:
    r"""Downstream population moments of the fitted design ``w = w(x, z; theta_hat)``
    and the true regression function ``f* = E(y | x, z)``.

    Attributes
    ----------
    second_moment : ndarray (d, d)
        ``Sigma = E[w w']``.
    cross_moment : ndarray (d,)
        ``E[w f*]``.
    signal_power : float
        ``E[f*^2]``.
    """

    second_moment: np.ndarray
    cross_moment: np.ndarray
    signal_power: float

    @classmethod
    def affine(cls, design_intercept, design_slope, signal_intercept: float, signal_slope,
               mean, cov) -> "PopulationMoments":
        r"""Exact moments when the design and ``f*`` are affine in the inputs.

        ``w(u) = a + B u`` and ``f*(u) = c + g'u`` for downstream inputs ``u``
        (raw features and covariates stacked) with mean ``mu`` and covariance ``S``
        (any law: only two moments enter):
        ``E ww' = (a + B mu)(a + B mu)' + B S B'``, ``E w f* = (a + B mu)(c + g'mu) +
        B S g``, ``E f*^2 = (c + g'mu)^2 + g'S g``. PCA, factor-score and spectral
        (``A x``) features with an intercept and linear covariates are affine.

        Parameters
        ----------
        design_intercept : array_like (d,)
            ``a``.
        design_slope : array_like (d, p)
            ``B``.
        signal_intercept : float
            ``c``.
        signal_slope : array_like (p,)
            ``g``.
        mean : array_like (p,)
            ``mu``.
        cov : array_like (p, p)
            ``S``.

        Examples
        --------
        >>> import numpy as np
        >>> pm = PopulationMoments.affine([1.0, 0.0], [[0.0], [1.0]], 0.0, [2.0],
        ...                               [0.0], [[1.0]])
        >>> pm.cross_moment, pm.signal_power
        (array([0., 2.]), 4.0)
        """
        a = np.asarray(design_intercept, dtype=float)
        B = np.atleast_2d(np.asarray(design_slope, dtype=float))
        g = np.asarray(signal_slope, dtype=float)
        mu = np.asarray(mean, dtype=float)
        S = np.atleast_2d(np.asarray(cov, dtype=float))
        w_mean = a + B @ mu
        f_mean = float(signal_intercept + g @ mu)
        return cls(np.outer(w_mean, w_mean) + B @ S @ B.T,
                   w_mean * f_mean + B @ S @ g, f_mean ** 2 + float(g @ S @ g))

    @classmethod
    def from_sample(cls, design, signal) -> "PopulationMoments":
        """Monte Carlo moments from a large downstream sample (any feature map).

        Parameters
        ----------
        design : ndarray (N, d)
            ``w(x_i; theta_hat)`` of ``N`` fresh downstream draws.
        signal : ndarray (N,)
            ``f*(x_i)`` of the same draws.

        Examples
        --------
        >>> import numpy as np
        >>> u = np.random.default_rng(0).normal(size=100_000)
        >>> pm = PopulationMoments.from_sample(np.column_stack([np.ones_like(u), u]), 2 * u)
        >>> bool(abs(pm.signal_power - 4.0) < 0.05)
        True
        """
        W = np.asarray(design, dtype=float)
        f = np.asarray(signal, dtype=float)
        N = W.shape[0]
        return cls(W.T @ W / N, W.T @ f / N, float(f @ f / N))


@dataclass(frozen=True)
class RiskDecomposition:
    """Parts of the conditional test risk ``R`` of one fitted pipeline.

    Attributes
    ----------
    sigma2 : float
        Noise variance (the irreducible part).
    representation : float
        ``Rep``: the population approximation error of the fitted features.
    leakage : float
        Error of the coefficients due to the approximation residuals at the labeled rows.
    variance : float
        ``(sigma^2 / n) tr(Sigma Sigma_n^+)``, the label-noise part.
    nobs : int
        ``n``.
    """

    sigma2: float
    representation: float
    leakage: float
    variance: float
    nobs: int

    @property
    def excess(self) -> float:
        """``R - sigma^2``."""
        return self.representation + self.leakage + self.variance

    @property
    def total(self) -> float:
        """``R``."""
        return self.sigma2 + self.excess

    @property
    def scaled_excess(self) -> float:
        """``n (R - sigma^2)``, the quantity of the limit theorem."""
        return self.nobs * self.excess


def conditional_risk(design, signal, *, sigma2: float,
                     population: PopulationMoments) -> RiskDecomposition:
    r"""Exact conditional test risk of an OLS fit on a fixed (fitted) representation.

    For the OLS coefficients ``beta_hat = (W'W)^+ W'y`` on the labeled design ``W``
    (n x d, the features at ``theta_hat``) with ``y = f* + eps``, ``E eps = 0``,
    ``Var eps = sigma^2`` independent of the inputs, the risk of a new test point
    ``R = E[(y_0 - w_0'beta_hat)^2 | inputs]`` (expectation over the test point and
    all label noise) is, with ``Sigma = E[w w']``, ``Sigma_n = W'W / n``, the population
    projection ``b = Sigma^+ E[w f*]``, and the residuals ``r = f*(x_j) - w_j'b``:

    .. math::

        R = \sigma^2 + \underbrace{E f^{*2} - b'\Sigma b}_{\mathrm{Rep}}
          + \underbrace{\delta'\Sigma\delta}_{\mathrm{Leakage}}
          + \frac{\sigma^2}{n}\operatorname{tr}(\Sigma\Sigma_n^+),
        \qquad \delta = \Sigma_n^+ \frac{W'r}{n} - (I - \Sigma_n^+\Sigma_n) b

    (paper Prop. B.1; the second part of ``delta`` is zero for a full-rank ``W``).
    ``Rep`` is the representation (approximation) error, ``Leakage`` the error that
    the approximation residuals at the labeled rows put into ``beta_hat``, the last
    term the label-noise variance.

    Parameters
    ----------
    design : ndarray (n, d) or two-stage OLS results
        The labeled design ``W`` at ``theta_hat`` (for results: ``results.model.exog``).
    signal : array_like (n,)
        ``f*`` at the labeled rows (the noise-free regression function).
    sigma2 : float
        Noise variance.
    population : PopulationMoments
        ``E[ww']``, ``E[w f*]``, ``E[f*^2]`` of the downstream law, with ``w`` computed
        by the same fitted representation (:meth:`PopulationMoments.affine` for affine
        features, :meth:`PopulationMoments.from_sample` otherwise).

    Returns
    -------
    RiskDecomposition

    Examples
    --------
    A representation that misses half of the signal ``f* = x_1 + x_2`` (``x ~ N(0, I)``):

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 2))
    >>> W = np.column_stack([np.ones(200), x[:, 0]])        # features [1, x_1]
    >>> pm = PopulationMoments.affine([1.0, 0.0], [[0.0, 0.0], [1.0, 0.0]], 0.0,
    ...                               [1.0, 1.0], np.zeros(2), np.eye(2))
    >>> risk = conditional_risk(W, x.sum(axis=1), sigma2=1.0, population=pm)
    >>> risk.representation                                  # E x_2^2
    1.0
    >>> bool(0 < risk.leakage < 0.05 and abs(risk.variance - 2 / 200) < 1e-3)
    True
    """
    model = getattr(getattr(design, "_results", design), "model", None)
    W = np.asarray(model.exog if model is not None else design, dtype=float)
    f = np.asarray(signal, dtype=float).ravel()
    n = W.shape[0]
    if f.shape[0] != n:
        raise ValueError(f"signal has {f.shape[0]} values for {n} design rows.")
    Sigma = np.asarray(population.second_moment, dtype=float)
    b = np.linalg.pinv(Sigma, hermitian=True) @ population.cross_moment
    rep = max(float(population.signal_power - b @ Sigma @ b), 0.0)
    Sigma_n_pinv = np.linalg.pinv(W.T @ W / n, hermitian=True)
    r = f - W @ b
    delta = Sigma_n_pinv @ (W.T @ r / n) - (b - Sigma_n_pinv @ (W.T @ (W @ b)) / n)
    leakage = float(delta @ Sigma @ delta)
    variance = float(sigma2 * np.trace(Sigma @ Sigma_n_pinv) / n)
    return RiskDecomposition(float(sigma2), rep, leakage, variance, n)
