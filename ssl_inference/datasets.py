"""Data for demos and simulations.

* Real data that ship with statsmodels (no download): :func:`load_randhie_split`.
* The paper's data-generating processes (THEORY.md §6), as seeded generators with the
  population quantities a simulation needs (true regression function, downstream
  moments, closed-form limit law): :class:`SpectralDiagonalModel`,
  :class:`FactorModelData`, :class:`GaussianMixtureData`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["DemoSplit", "load_randhie_split", "RANDHIE_HEALTH_COLUMNS", "load_anes_split",
           "ANES_ATTITUDE_COLUMNS", "LabeledSample",
           "SpectralDiagonalModel", "FactorModelData", "GaussianMixtureData"]

#: Health-status block of the RAND Health Insurance Experiment data (``disea10`` is the
#: number of chronic diseases divided by 10, a fixed rescaling that keeps the block's
#: variances comparable).
RANDHIE_HEALTH_COLUMNS = ["physlm", "disea10", "hlthg", "hlthf", "hlthp"]


@dataclass(frozen=True)
class DemoSplit:
    """A pre-training sample (no outcome) and a labeled sample (with outcome)."""

    pretrain: pd.DataFrame
    labeled: pd.DataFrame
    feature_columns: list[str]


def load_randhie_split(n_pretrain: int = 1000, n_labeled: int = 1000,
                       seed: int = 0) -> DemoSplit:
    """Split the RAND Health Insurance Experiment data (20,190 person-years).

    The pre-training rows keep only the health-status block (their outcome is
    dropped); the labeled rows have the outcome ``y = log(1 + mdvis)`` (number of
    outpatient visits) and the insurance-plan covariates ``lncoins``, ``idp``,
    ``lpi``, ``fmde``. Rows are drawn without replacement, disjointly.

    Examples
    --------
    >>> split = load_randhie_split(200, 100)
    >>> split.pretrain.shape, split.labeled.shape[0]
    ((200, 5), 100)
    """
    from statsmodels.datasets import randhie

    data = randhie.load_pandas().data.copy()
    if n_pretrain + n_labeled > len(data) or min(n_pretrain, n_labeled) < 1:
        raise ValueError(f"n_pretrain + n_labeled must be between 2 and {len(data)}; got "
                         f"{n_pretrain} + {n_labeled}.")
    data["disea10"] = data["disea"] / 10.0
    data["y"] = np.log1p(data["mdvis"])
    order = np.random.default_rng(seed).permutation(len(data))
    pretrain = data.iloc[order[:n_pretrain]][RANDHIE_HEALTH_COLUMNS].reset_index(drop=True)
    labeled = data.iloc[order[n_pretrain:n_pretrain + n_labeled]].reset_index(drop=True)
    labeled = labeled[["y", "lncoins", "idp", "lpi", "fmde"] + RANDHIE_HEALTH_COLUMNS]
    return DemoSplit(pretrain, labeled, list(RANDHIE_HEALTH_COLUMNS))


#: Attitude and media items of the 1996 American National Election Survey, all on 0-7
#: scales: left-right self-placement, placement of Clinton and of Dole, party
#: identification, days watching TV news, education level.
ANES_ATTITUDE_COLUMNS = ["selfLR", "ClinLR", "DoleLR", "PID", "TVnews", "educ"]


def load_anes_split(n_pretrain: int = 100, seed: int = 0) -> DemoSplit:
    """Split the 1996 American National Election Survey (944 respondents).

    The pre-training rows keep only the six attitude and media items
    (:data:`ANES_ATTITUDE_COLUMNS`; their vote is dropped); the labeled rows are all the
    other respondents, with ``vote`` (1 = Dole, 0 = Clinton), ``age``, ``income``
    (24 brackets), ``logpopul`` (log population of the place of residence) and the
    items. Rows are drawn without replacement, disjointly.

    Examples
    --------
    >>> split = load_anes_split(100)
    >>> split.pretrain.shape, split.labeled.shape[0]
    ((100, 6), 844)
    """
    from statsmodels.datasets import anes96

    data = anes96.load_pandas().data
    if not 1 <= n_pretrain <= len(data) - 20:
        raise ValueError(f"n_pretrain must be between 1 and {len(data) - 20} (the survey has "
                         f"{len(data)} respondents, and at least 20 stay labeled); got "
                         f"{n_pretrain}.")
    order = np.random.default_rng(seed).permutation(len(data))
    pretrain = data.iloc[order[:n_pretrain]][ANES_ATTITUDE_COLUMNS].reset_index(drop=True)
    labeled = data.iloc[order[n_pretrain:]].reset_index(drop=True)
    labeled = labeled[["vote", "age", "income", "logpopul"] + ANES_ATTITUDE_COLUMNS]
    return DemoSplit(pretrain, labeled, list(ANES_ATTITUDE_COLUMNS))


# --------------------------------------------------------------------------------------
# The paper's data-generating processes (THEORY.md §6)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabeledSample:
    """A labeled sample: outcome ``y``, raw inputs ``X`` and the noise-free ``signal``
    ``f*(X)`` (what :func:`ssl_inference.risk.conditional_risk` needs)."""

    y: np.ndarray
    X: np.ndarray
    signal: np.ndarray


def _rng(random_state) -> np.random.Generator:
    return np.random.default_rng(random_state)


@dataclass(frozen=True)
class SpectralDiagonalModel:
    r"""Spectral contrastive pre-training on the diagonal model (paper §6.1).

    Pre-training triples: ``x ~ N(0, diag(a))``, ``x+ = diag(c / a) x + e`` with
    ``e ~ N(0, diag(a - c^2 / a))`` (so ``Var(x+) = diag(a)``, ``E x+ x' = diag(c)``),
    and an independent negative ``x- ~ N(0, diag(a))``. Downstream: ``x ~ N(0, I)``,
    ``y = f*(x) + N(0, sigma^2)`` with ``f*(x) = m*'x``,
    ``m*_i = sqrt(lambda_i / a_i) beta_i`` for ``i <= k = len(beta)`` (else 0) and
    ``lambda = c / a``. Default: the paper's example ``a = 1``, ``c_i = 1 / i``.

    Examples
    --------
    >>> model = SpectralDiagonalModel.paper_example(k=2, d=4)
    >>> X, X_pos, X_neg = model.pretrain(1000, random_state=0)
    >>> X.shape, round(model.limit_law().mean, 2)
    ((1000, 4), 39.05)
    """

    a: np.ndarray
    c: np.ndarray
    beta: np.ndarray
    sigma: float = 1.0

    @classmethod
    def paper_example(cls, k: int = 2, d: int = 4, sigma: float = 1.0) -> "SpectralDiagonalModel":
        """``Sigma_pre = I``, ``C = diag(1, 1/2, ..., 1/d)``, ``beta = 1_k``."""
        return cls(np.ones(d), 1.0 / np.arange(1, d + 1), np.ones(k), sigma)

    @property
    def coefficients(self) -> np.ndarray:
        """``m*`` with ``f*(x) = m*'x``."""
        k = len(self.beta)
        out = np.zeros(len(self.a))
        out[:k] = np.sqrt(self.c[:k] / self.a[:k] ** 2) * self.beta
        return out

    def pretrain(self, m: int, random_state=None):
        """Triples ``(X, X_pos, X_neg)``, each (m, d)."""
        rng = _rng(random_state)
        a, c = np.asarray(self.a, float), np.asarray(self.c, float)
        X = rng.standard_normal((m, a.size)) * np.sqrt(a)
        X_pos = X * (c / a) + rng.standard_normal((m, a.size)) * np.sqrt(a - c ** 2 / a)
        X_neg = rng.standard_normal((m, a.size)) * np.sqrt(a)
        return X, X_pos, X_neg

    def labeled(self, n: int, random_state=None) -> LabeledSample:
        """Downstream rows: ``x ~ N(0, I)``, ``y = m*'x + N(0, sigma^2)``."""
        rng = _rng(random_state)
        X = rng.standard_normal((n, len(self.a)))
        signal = X @ self.coefficients
        return LabeledSample(signal + self.sigma * rng.standard_normal(n), X, signal)

    @property
    def downstream_mean(self) -> np.ndarray:
        return np.zeros(len(self.a))

    @property
    def downstream_cov(self) -> np.ndarray:
        return np.eye(len(self.a))

    def limit_law(self):
        """Closed-form law of ``||L(Z)||^2`` (:func:`ssl_inference.risk.spectral_diagonal_law`)."""
        from .risk import spectral_diagonal_law
        return spectral_diagonal_law(self.a, self.c, self.beta)


@dataclass(frozen=True)
class FactorModelData:
    r"""Factor model / probabilistic PCA (paper §6.2).

    ``x = A h + e``, ``h ~ N(0, I_k)``, ``e ~ N(0, I_d)`` for both samples; the outcome
    ``y = beta'h + N(0, sigma^2)``. Its regression function on the observed ``x`` is
    ``f*(x) = E(y | x) = beta'A'(I + AA')^{-1} x`` and the noise around it,
    ``beta'(h - E(h | x)) + eps``, is Gaussian and homoscedastic with variance
    ``noise_variance = sigma^2 + beta'(I + A'A)^{-1} beta``.

    Examples
    --------
    >>> model = FactorModelData(np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]),
    ...                         np.array([1.0, 1.0]))
    >>> model.labeled(5, random_state=0).X.shape, round(model.noise_variance, 3)
    ((5, 4), 1.7)
    """

    loadings: np.ndarray
    beta: np.ndarray
    sigma: float = 1.0

    @property
    def cov(self) -> np.ndarray:
        """``Sigma = AA' + I``."""
        A = np.asarray(self.loadings, float)
        return A @ A.T + np.eye(A.shape[0])

    @property
    def coefficients(self) -> np.ndarray:
        """``g`` with ``f*(x) = g'x``: ``(I + AA')^{-1} A beta``."""
        return np.linalg.solve(self.cov, np.asarray(self.loadings, float) @ self.beta)

    @property
    def noise_variance(self) -> float:
        A = np.asarray(self.loadings, float)
        k = A.shape[1]
        return float(self.sigma ** 2 + self.beta @ np.linalg.solve(np.eye(k) + A.T @ A,
                                                                   self.beta))

    def _draw(self, size: int, rng):
        A = np.asarray(self.loadings, float)
        h = rng.standard_normal((size, A.shape[1]))
        return h, h @ A.T + rng.standard_normal((size, A.shape[0]))

    def pretrain(self, m: int, random_state=None) -> np.ndarray:
        """Pre-training rows ``X`` (m, d)."""
        return self._draw(m, _rng(random_state))[1]

    def labeled(self, n: int, random_state=None) -> LabeledSample:
        """Downstream rows with ``y = beta'h + N(0, sigma^2)``."""
        rng = _rng(random_state)
        h, X = self._draw(n, rng)
        y = h @ self.beta + self.sigma * rng.standard_normal(n)
        return LabeledSample(y, X, X @ self.coefficients)

    @property
    def downstream_mean(self) -> np.ndarray:
        return np.zeros(len(self.loadings))

    @property
    def downstream_cov(self) -> np.ndarray:
        return self.cov

    def limit_law(self):
        """Closed-form law of ``||L(Z)||^2`` (:func:`ssl_inference.risk.factor_law`)."""
        from .risk import factor_law
        return factor_law(self.loadings, self.beta)


def _gated_projector(means: np.ndarray, rank: int) -> np.ndarray:
    centred = means - means.mean(axis=0)
    evals, evecs = np.linalg.eigh(centred.T @ centred / len(means))
    top = evecs[:, ::-1][:, :rank]
    return top @ top.T


@dataclass(frozen=True)
class GaussianMixtureData:
    r"""Gaussian mixture with the paper's gated features (paper §6.3, Figures 2-4).

    Both samples: ``x ~ (1/K) sum_i N(u_i, I_d)`` with ``u_i = separation * e_i``.
    Gated features at the truth, per component ``i``:
    ``(tau_i(x) P(x - u_i), tau_i(x))`` with the posterior probabilities ``tau_i`` and
    ``P`` the projector onto the top-``r`` eigenspace of the centred means
    (``r = K - 1``, their span). The regression function is

    .. math::

        f^*(x) = \sum_i 	au_i(x) ig(g_i' P (x - u_i) + c_iig),

    with block ``i``'s coefficients ``(g_i, c_i)`` of norm proportional to ``1 / i``
    (``i = 1..K``), then the whole vector normalised to norm one. The paper fixes only
    the block magnitudes; here each block points along its own centred mean and the
    constant with equal weight: ``g_i = P(u_i - u_bar) / ||P(u_i - u_bar)|| / sqrt(2)``
    and ``c_i = 1 / sqrt(2)`` before scaling. ``f*`` is invariant under relabelling
    and under rotations of the coordinates of ``P``, so it lies in the span of the
    fitted gated features of :class:`ssl_inference.GaussianMixture` (``features="gated"``,
    ``gated_rank = K - 1``) at the true parameters. Defaults: the paper's experiment
    ``K = 4``, ``d = 20``, separation 2; ``sigma = 0.5`` makes the fine-tuning part
    ``sigma^2 d_eff = 0.25 * K (r + 1) = 4``.

    Examples
    --------
    >>> model = GaussianMixtureData()
    >>> sample = model.labeled(6, random_state=0)
    >>> sample.X.shape, round(float(np.linalg.norm(model.block_coefficients)), 6)
    ((6, 20), 1.0)
    """

    n_components: int = 4
    dim: int = 20
    separation: float = 2.0
    sigma: float = 0.5
    means: np.ndarray = field(init=False, repr=False)
    block_coefficients: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        K, d = self.n_components, self.dim
        if not 2 <= K <= d:
            raise ValueError(f"need 2 <= n_components <= dim; got {K}, {d}.")
        means = self.separation * np.eye(K, d)
        P = _gated_projector(means, K - 1)
        centred = means - means.mean(axis=0)
        blocks = []
        for i in range(K):
            direction = P @ centred[i]
            direction /= np.linalg.norm(direction)
            blocks.append(np.append(direction, 1.0) / np.sqrt(2.0) / (i + 1))
        coef = np.array(blocks)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "block_coefficients", coef / np.linalg.norm(coef))

    @property
    def projector(self) -> np.ndarray:
        """``P`` (d x d)."""
        return _gated_projector(self.means, self.n_components - 1)

    def responsibilities(self, X: np.ndarray) -> np.ndarray:
        """``tau_i(x)`` at the true parameters, (n, K)."""
        logits = -0.5 * ((X[:, None, :] - self.means[None]) ** 2).sum(axis=2)
        logits -= logits.max(axis=1, keepdims=True)
        tau = np.exp(logits)
        return tau / tau.sum(axis=1, keepdims=True)

    def regression_function(self, X) -> np.ndarray:
        """``f*(x)`` (n,)."""
        X = np.asarray(X, dtype=float)
        tau = self.responsibilities(X)
        g, c = self.block_coefficients[:, :-1], self.block_coefficients[:, -1]
        P = self.projector
        proj = np.einsum("nkd,kd->nk", (X[:, None, :] - self.means[None]) @ P, g)
        return (tau * (proj + c)).sum(axis=1)

    def _draw(self, size: int, rng) -> np.ndarray:
        labels = rng.integers(0, self.n_components, size=size)
        return self.means[labels] + rng.standard_normal((size, self.dim))

    def pretrain(self, m: int, random_state=None) -> np.ndarray:
        """Pre-training rows ``X`` (m, d)."""
        return self._draw(m, _rng(random_state))

    def labeled(self, n: int, random_state=None) -> LabeledSample:
        """Downstream rows, ``y = f*(x) + N(0, sigma^2)``."""
        rng = _rng(random_state)
        X = self._draw(n, rng)
        signal = self.regression_function(X)
        return LabeledSample(signal + self.sigma * rng.standard_normal(n), X, signal)
