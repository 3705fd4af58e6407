r"""The law of a weighted sum of independent chi-square(1) variables.

``Q = shift + sum_j w_j chi2_1``: the limiting law of the pre-training part of the
downstream test risk (THEORY.md §6). Its distribution function is computed exactly (to
quadrature accuracy) by Imhof's (1961) inversion of the characteristic function.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize, stats

__all__ = ["WeightedChiSquare"]

#: absolute tolerance of the Imhof integrals (probabilities are accurate to ~1e-9)
_EPSABS = 1e-11
#: the Imhof integral is split at this many half-periods of ``sin(x u / 2)`` (or earlier,
#: once the integrand has decayed): an ordinary adaptive rule before, the
#: Fourier-integral rule (QUADPACK QAWF) after
_SPLIT_HALF_PERIODS = 8.0


def _quad(fun, a: float, b: float, **kwargs) -> tuple[float, float]:
    """``scipy.integrate.quad`` without its warnings.

    QUADPACK warns of round-off when a tolerance far below the integral's rounding
    level is asked for (probabilities near 0 or 1); the value is still accurate to
    ~1e-12 there (tests/test_risk.py checks against exact chi-square laws).
    """
    out = integrate.quad(fun, a, b, full_output=1, **kwargs)
    return out[0], out[1]


def _phase_and_modulus(lam: np.ndarray):
    """``u -> (phi(u), 1 / rho(u))`` with ``phi = (1/2) sum arctan(lam u)`` and
    ``rho = prod (1 + lam^2 u^2)^(1/4)`` (plain floats: quad calls it thousands of times;
    ``1 / rho`` underflows to 0 instead of overflowing)."""
    lam_list = [float(v) for v in lam]
    if len(lam_list) <= 40:
        def phase_rho(u: float):
            phi = 0.0
            log_rho = 0.0
            for v in lam_list:
                z = v * u
                phi += math.atan(z)
                log_rho += math.log1p(z * z)
            return 0.5 * phi, math.exp(-0.25 * log_rho)
        return phase_rho

    def phase_rho_vec(u: float):
        z = lam * u
        return 0.5 * float(np.arctan(z).sum()), math.exp(-0.25 * float(np.log1p(z * z).sum()))
    return phase_rho_vec


class WeightedChiSquare:
    r"""Law of ``Q = shift + sum_j w_j X_j`` with ``X_j`` iid chi-square(1).

    Parameters
    ----------
    weights : array_like (r,)
        The weights ``w_j`` (any sign; zeros are allowed and dropped). For the risk
        limit they are the eigenvalues ``kappa_j`` of ``V^{1/2} G V^{1/2}``. A weight
        of multiplicity ``h`` (a ``w chi2_h`` term) is passed as ``h`` equal weights.
    shift : float
        Deterministic location ``shift``.

    Notes
    -----
    Moments: ``E Q = shift + sum_j w_j``, ``Var Q = 2 sum_j w_j^2``.

    Distribution function (Imhof 1961, central case), with ``y = x - shift``:

    .. math::

        P(Q > x) = \frac12 + \frac1\pi \int_0^\infty
        \frac{\sin\theta(u)}{u\,\rho(u)}\, du, \qquad
        \theta(u) = \tfrac12 \sum_j \arctan(w_j u) - \tfrac12 y u, \quad
        \rho(u) = \prod_j (1 + w_j^2 u^2)^{1/4},

    and density ``f(x) = (2\pi)^{-1} \int_0^\infty \cos\theta(u) / \rho(u)\, du``.
    The integrals are evaluated with ``scipy.integrate.quad``: an adaptive rule on
    ``[0, a]`` and QUADPACK's Fourier-integral rule (``weight="sin"/"cos"``, QAWF) on
    ``[a, inf)`` after writing ``sin(theta) = sin(phi) cos(y u / 2) - cos(phi) sin(y u / 2)``
    with the bounded phase ``phi(u) = (1/2) sum_j arctan(w_j u)``; the weights are
    rescaled to ``max |w_j| = 1`` first. One non-zero weight uses the exact scaled
    chi-square(1); all weights zero is the point mass at ``shift`` (``cdf`` is then the
    step ``1{x >= shift}``). ``ppf`` inverts ``cdf`` by Brent's method.

    Examples
    --------
    >>> law = WeightedChiSquare([2.0, 1.0, 0.5], shift=1.0)
    >>> law.mean, law.var
    (4.5, 10.5)
    >>> round(float(law.cdf(4.0)), 6)
    0.566592
    >>> bool(np.isclose(law.cdf(law.ppf(0.9)), 0.9))
    True
    >>> chi2_3 = WeightedChiSquare(np.ones(3))          # equal weights: chi2 with 3 df
    >>> bool(np.isclose(chi2_3.cdf(2.5), stats.chi2(3).cdf(2.5), atol=1e-9))
    True
    >>> WeightedChiSquare([0.0, 0.0], shift=4.0).cdf([3.9, 4.0])   # a point mass
    array([0., 1.])
    """

    def __init__(self, weights, shift: float = 0.0):
        w = np.atleast_1d(np.asarray(weights, dtype=float)).ravel()
        if not np.all(np.isfinite(w)) or not np.isfinite(shift):
            raise ValueError("weights and shift must be finite numbers.")
        self.weights = w
        self.shift = float(shift)
        self._active = w[w != 0.0]

    def __repr__(self) -> str:
        w = np.array2string(self.weights, precision=4, threshold=8)
        return f"WeightedChiSquare(weights={w}, shift={self.shift:.6g})"

    # --------------------------------------------------------------- moments
    @property
    def mean(self) -> float:
        """``shift + sum_j w_j``."""
        return self.shift + float(self.weights.sum())

    @property
    def var(self) -> float:
        """``2 sum_j w_j^2``."""
        return 2.0 * float(np.sum(self.weights ** 2))

    @property
    def std(self) -> float:
        """Standard deviation."""
        return float(np.sqrt(self.var))

    @property
    def is_degenerate(self) -> bool:
        """True when all weights are zero (a point mass at ``shift``)."""
        return self._active.size == 0

    def scaled(self, factor: float, shift: float | None = None) -> "WeightedChiSquare":
        """The law of ``factor * Q`` (shift also multiplied, unless ``shift`` is given).

        Examples
        --------
        >>> WeightedChiSquare([1.0, 2.0], shift=3.0).scaled(0.5).mean
        3.0
        """
        new_shift = factor * self.shift if shift is None else shift
        return WeightedChiSquare(factor * self.weights, new_shift)

    # --------------------------------------------------------- distribution
    def cdf(self, x) -> np.ndarray | float:
        """``P(Q <= x)``, vectorised over ``x``."""
        return self._map(x, self._cdf_scalar)

    def sf(self, x) -> np.ndarray | float:
        """``P(Q > x)``, vectorised (computed directly: accurate in the upper tail)."""
        return self._map(x, lambda v: 1.0 - self._cdf_scalar(v) if self.is_degenerate
                         else self._sf_scalar(v))

    def pdf(self, x) -> np.ndarray | float:
        """Density of the continuous part (0 for a point mass), vectorised over ``x``."""
        return self._map(x, self._pdf_scalar)

    def ppf(self, q) -> np.ndarray | float:
        """Quantile function: the smallest ``x`` with ``cdf(x) >= q``, vectorised."""
        return self._map(q, self._ppf_scalar)

    def rvs(self, size=None, random_state=None) -> np.ndarray | float:
        """Random draws ``shift + sum_j w_j Z_j^2`` (``Z_j`` standard normal).

        Parameters
        ----------
        size : int or tuple of int, optional
        random_state : int, numpy Generator or None

        Examples
        --------
        >>> draws = WeightedChiSquare([1.0, 0.5]).rvs(200_000, random_state=0)
        >>> bool(abs(draws.mean() - 1.5) < 0.02)
        True
        """
        rng = np.random.default_rng(random_state)
        shape = () if size is None else (size,) if np.isscalar(size) else tuple(size)
        count = int(np.prod(shape))
        out = np.full(count, self.shift)
        chunk = max(1, 2 ** 22 // max(1, self._active.size))
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            z = rng.standard_normal((stop - start, self._active.size))
            out[start:stop] += (z * z) @ self._active
        return out.reshape(shape) if shape else float(out[0])

    # ------------------------------------------------------------ internals
    @staticmethod
    def _map(x, fun):
        arr = np.asarray(x, dtype=float)
        out = np.array([fun(float(v)) for v in arr.ravel()]).reshape(arr.shape)
        return float(out) if out.ndim == 0 else out

    def _cdf_scalar(self, x: float) -> float:
        if np.isnan(x):
            return np.nan
        y = x - self.shift
        w = self._active
        if w.size == 0:
            return float(y >= 0)
        if np.all(w > 0) and y <= 0:
            return 0.0
        if np.all(w < 0) and y >= 0:
            return 1.0
        if w.size == 1:
            return float(stats.chi2.cdf(y / w[0], 1) if w[0] > 0 else stats.chi2.sf(y / w[0], 1))
        return float(np.clip(1.0 - self._imhof_sf(y), 0.0, 1.0))

    def _sf_scalar(self, x: float) -> float:
        if np.isnan(x):
            return np.nan
        y = x - self.shift
        w = self._active
        if np.all(w > 0) and y <= 0:
            return 1.0
        if np.all(w < 0) and y >= 0:
            return 0.0
        if w.size == 1:
            return float(stats.chi2.sf(y / w[0], 1) if w[0] > 0 else stats.chi2.cdf(y / w[0], 1))
        return float(np.clip(self._imhof_sf(y), 0.0, 1.0))

    def _pdf_scalar(self, x: float) -> float:
        if np.isnan(x):
            return np.nan
        y = x - self.shift
        w = self._active
        if w.size == 0 or (np.all(w > 0) and y <= 0) or (np.all(w < 0) and y >= 0):
            return 0.0
        if w.size == 1:
            return float(stats.chi2.pdf(y / w[0], 1) / abs(w[0]))
        scale = np.abs(w).max()
        lam, t = w / scale, y / scale
        phase_rho = _phase_and_modulus(lam)

        def cos_part(u):
            phi, inv_rho = phase_rho(u)
            return math.cos(phi) * inv_rho

        def sin_part(u):
            phi, inv_rho = phase_rho(u)
            return math.sin(phi) * inv_rho

        omega = 0.5 * t
        if omega == 0.0:
            val = _quad(cos_part, 0.0, np.inf, epsabs=_EPSABS, limit=500)[0]
        else:
            val = (_quad(cos_part, 0.0, np.inf, weight="cos", wvar=abs(omega),
                                  epsabs=_EPSABS)[0]
                   + np.sign(omega) * _quad(sin_part, 0.0, np.inf, weight="sin",
                                                     wvar=abs(omega), epsabs=_EPSABS)[0])
        return float(max(val / (2.0 * np.pi * scale), 0.0))

    def _imhof_sf(self, y: float) -> float:
        """Imhof's ``P(sum_j w_j X_j > y)`` for two or more non-zero weights."""
        scale = np.abs(self._active).max()
        lam, t = self._active / scale, y / scale
        phase_rho = _phase_and_modulus(lam)

        def integrand(u):
            if u == 0.0:
                return 0.5 * (lam.sum() - t)
            phi, inv_rho = phase_rho(u)
            return math.sin(phi - 0.5 * t * u) * inv_rho / u

        def sin_part(u):
            phi, inv_rho = phase_rho(u)
            return math.sin(phi) * inv_rho / u

        def cos_part(u):
            phi, inv_rho = phase_rho(u)
            return math.cos(phi) * inv_rho / u

        omega = 0.5 * t
        if omega == 0.0:  # no oscillation; the integrand decays like u^(-1 - r/2)
            total = _quad(integrand, 0.0, np.inf, epsabs=_EPSABS, limit=500)[0]
        else:
            # split after a few oscillations, or earlier where the integrand is already
            # small (u rho(u) >= 1e4); the Fourier rule takes the rest
            a = _SPLIT_HALF_PERIODS * np.pi / abs(omega)
            decay = 1.0
            while decay < a and phase_rho(decay)[1] > 1e-4 * decay:
                decay *= 2.0
            a = min(a, decay)
            head = _quad(integrand, 0.0, a, epsabs=_EPSABS, limit=500)[0]
            # sin(phi - omega u) = sin(phi) cos(omega u) - cos(phi) sin(omega u)
            tail_cos = _quad(sin_part, a, np.inf, weight="cos", wvar=abs(omega),
                                      epsabs=_EPSABS)[0]
            tail_sin = _quad(cos_part, a, np.inf, weight="sin", wvar=abs(omega),
                                      epsabs=_EPSABS)[0]
            total = head + tail_cos - np.sign(omega) * tail_sin
        return 0.5 + total / np.pi

    def _ppf_scalar(self, q: float) -> float:
        if np.isnan(q) or not 0.0 <= q <= 1.0:
            return np.nan
        w = self._active
        if w.size == 0:
            return self.shift
        lower_bounded, upper_bounded = np.all(w > 0), np.all(w < 0)
        if q == 0.0:
            return self.shift if lower_bounded else -np.inf
        if q == 1.0:
            return self.shift if upper_bounded else np.inf
        if w.size == 1:
            return self.shift + float(w[0] * (stats.chi2.ppf(q, 1) if w[0] > 0
                                              else stats.chi2.isf(q, 1)))
        sd = self.std
        lo = self.shift if lower_bounded else self.mean - 4.0 * sd
        hi = self.shift if upper_bounded else self.mean + 4.0 * sd
        step = 4.0 * sd
        while not lower_bounded and self._cdf_scalar(lo) > q:
            lo -= step
            step *= 2.0
        step = 4.0 * sd
        while not upper_bounded and self._cdf_scalar(hi) < q:
            hi += step
            step *= 2.0
        return float(optimize.brentq(lambda v: self._cdf_scalar(v) - q, lo, hi,
                                     xtol=1e-12 * max(1.0, abs(hi)), rtol=1e-12))
