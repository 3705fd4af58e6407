r"""The paper's main theorem: the limiting law of the downstream test risk, plug-in.

For the least-squares second stage on ``w(x; theta_hat) = [1, z, phi(x; theta_hat)]``,
with ``alpha = m / n`` fixed (THEORY.md §6),

.. math::

    n (R - \sigma^2) \to \sigma^2 d_{eff} + \alpha^{-1} \|L(Z)\|^2, \qquad
    Z \sim N(0, V), \quad \|L(Z)\|^2 = Z'GZ \sim \sum_j \kappa_j \chi^2_1,

``kappa = eig(V^{1/2} G V^{1/2})``. For GLM-type second stages (deviance risk,
:mod:`ssl_inference.risk.deviance`) the fine-tuning part becomes a weighted chi-square
too and ``G`` is weighted by the GLM working weights. :class:`RiskAsymptotics` holds
the law and answers the questions a user asks of it (quantiles, the fine-tuning /
pre-training split, the crossover with a downstream-only fit, the pre-training size for
a target share).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import linalg

from ..covariance import TwoStageCovariance
from ..design import DesignJacobian
from ..representations.base import Representation
from .affine import affine_feature_map
from .weighted_chi2 import WeightedChiSquare

__all__ = ["RiskAsymptotics", "plugin_risk_weights"]

#: the loss of the paper's theorem (least squares); its excess risk is ``R - sigma^2``
SQUARED_ERROR = "squared error"

#: eigenvalues of G_hat below this fraction of the largest are rounding noise
#: (directions inside the span of the design)
_RANK_RTOL = 1e-12


def plugin_risk_weights(representation: Representation, features: np.ndarray,
                        design: np.ndarray, coefficients: np.ndarray, rep_cols,
                        *, weights=None, d_eff: int | None = None,
                        covariance: TwoStageCovariance | None = None) -> np.ndarray:
    r"""Plug-in weights ``kappa`` of ``||L(Z)||^2 ~ sum_j kappa_j chi2_1``.

    Computation (THEORY.md §6):

    1. ``D`` (n x q): ``D_jq = beta_hat' d w_j / d theta_q``, the directional
       derivatives of the fitted regression function at the labeled rows, from one
       per-row feature VJP with cotangent ``D_j' beta_hat`` (``D_j = d w_j / d phi_j``;
       ``beta_rep`` when the features are plain columns: covariate and intercept
       columns do not depend on ``theta``).
    2. ``D_res``: the columns of ``D`` residualised on the design ``W`` (the empirical
       ``(I - Pi)``; with weights, both are scaled by ``sqrt(weight)`` first, i.e. the
       projection and norms of the weighted ``L2``). Directions that only move the
       features inside their span (the vertical, symmetry directions) give zero.
    3. ``G_hat = D_res' D_res / (n - d_eff)`` (the degrees-of-freedom correction of
       statsmodels' ``scale``: residualising on ``d_eff`` columns in sample removes
       that much of the norm). ``G_hat = K'K`` with ``K`` (r x q, ``r <= min(n, q)``)
       from the eigendecomposition of the smaller Gram matrix: ``G_hat = Q diag(g) Q'``
       gives ``K = diag(sqrt(g)) Q'`` (q <= n); ``D_res D_res' = P diag(g) P'`` gives
       ``K = P' D_res`` (q > n). Eigenvalues below ``1e-12 g_max`` are dropped
       (rounding noise of directions in the span).
    4. ``K V_hat K'`` with ``V_hat = (1/m) sum_i IF(x_i) IF(x_i)'`` the horizontal
       first-stage covariance, by streaming the contraction ``IF(X_pre) K'`` over the
       pre-training rows (:meth:`Representation.influence_contract`, through the
       two-stage covariance engine, so ``pretrain_groups`` clustering is honoured):
       the q x q matrix ``V`` is never formed.
    5. ``kappa = eig(K V_hat K')``, the non-zero eigenvalues of ``G_hat V_hat`` (=
       ``eig(V^{1/2} G V^{1/2})``).

    Memory ``O(n q)`` for ``D`` (per-row VJPs; acceptable for moderate ``q``, e.g.
    PCA's ``q = p (k + 1)``), ``O(min(n, q)^2 + r q)`` for the Gram matrix and ``K``,
    and ``O(chunk (q + r))`` while streaming; time ``O(n q min(n, q))`` plus one
    streamed pass over ``X_pre`` (``O(m p k r)`` for PCA).

    Parameters
    ----------
    representation : Representation
        The fitted first stage.
    features : ndarray (n, p)
        Raw inputs of the labeled rows.
    design : ndarray (n, d)
        Second-stage design (unweighted), learned features in ``rep_cols``.
    coefficients : ndarray (d,)
        ``beta_hat``.
    rep_cols : array_like of int (k,), or DesignJacobian
        Columns of the design holding the learned features, or ``D_j = d w_j / d phi_j``
        of each row when the features enter through formula terms
        (:meth:`ssl_inference.models.OLS.design_jacobian`).
    weights : array_like (n,), optional
        Row weights of the norm: WLS weights, or the GLM working weights
        ``a mu'(eta)^2 / V(mu)`` for the deviance risk
        (:func:`~ssl_inference.risk.deviance_risk_asymptotics`).
    d_eff : int, optional
        Rank of the design (default: computed).
    covariance : TwoStageCovariance, optional
        The results' covariance engine (for its clustering of the pre-training rows);
        default: independent pre-training rows.

    Returns
    -------
    ndarray
        ``kappa``, decreasing, non-negative.

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> scales = np.array([3.0, 2.0, 1.0, 0.5])
    >>> rep = ssi.PCA(2).fit(rng.normal(size=(2000, 4)) * scales)
    >>> X = rng.normal(size=(500, 4)) * scales
    >>> W = np.column_stack([np.ones(500), rep.transform(X)])
    >>> beta = np.array([0.0, 1.0, 1.0])
    >>> plugin_risk_weights(rep, X, W, beta, [1, 2]).shape
    (2,)
    """
    W = np.asarray(design, dtype=float)
    X = np.asarray(features, dtype=float)
    beta = np.asarray(coefficients, dtype=float)
    n = W.shape[0]
    if not isinstance(rep_cols, DesignJacobian):
        rep_cols = DesignJacobian(W.shape[1], [[c] for c in np.asarray(rep_cols, dtype=int)],
                                  [np.ones((n, 1))] * len(rep_cols))
    D = representation.feature_vjp(X, rep_cols.pull(np.broadcast_to(beta, W.shape)),
                                   per_row=True)
    if weights is not None:
        sw = np.sqrt(np.broadcast_to(np.asarray(weights, dtype=float), (n,)))
        W = W * sw[:, None]
        D = D * sw[:, None]
    # orthonormal basis of the column space of W: rank-revealing (pivoted) QR
    Q, R, _ = linalg.qr(W, mode="economic", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > max(W.shape) * np.finfo(float).eps * diag.max())) if diag.size else 0
    basis = Q[:, :rank]
    if d_eff is None:
        d_eff = rank
    D_res = D - basis @ (basis.T @ D)
    dof = n - d_eff
    if dof <= 0:
        raise ValueError(f"The design has rank {d_eff} with only {n} rows: no residual "
                         "degrees of freedom to estimate the representation error.")
    D_res /= math.sqrt(dof)
    # G_hat = D_res'D_res = K'K: from the smaller of the q x q and n x n Gram matrices
    small = D_res.T @ D_res if D_res.shape[1] <= n else D_res @ D_res.T
    evals, evecs = np.linalg.eigh(0.5 * (small + small.T))
    if evals.size == 0 or evals.max() <= 0.0:
        return np.zeros(0)
    keep = evals > _RANK_RTOL * evals.max()
    if D_res.shape[1] <= n:
        K = np.sqrt(evals[keep])[:, None] * evecs[:, keep].T
    else:  # D_res = P S Q'  =>  K = S Q' = P' D_res
        K = evecs[:, keep].T @ D_res
    if covariance is None:
        q = D.shape[1]
        covariance = TwoStageCovariance(representation, np.zeros((1, q)), np.zeros((1, 1)),
                                        np.zeros((n, 1)))
    m = representation.nobs_
    d_cov = covariance.jacobian.shape[0]
    KVK = m * covariance.parts(np.zeros((K.shape[0], d_cov)), K).pretraining
    kappa = np.linalg.eigvalsh(0.5 * (KVK + KVK.T))[::-1]
    return np.clip(kappa, 0.0, None)


def _affine_dimension(representation: Representation, features: np.ndarray) -> int | None:
    """``p`` when the feature map is affine in the raw inputs (PCA, factor scores,
    spectral ``A x``), else None: checked on the labeled rows, to rounding."""
    try:
        affine_feature_map(representation, features)
    except ValueError:
        return None
    return np.asarray(features).shape[1]


def _least_squares_weights(model) -> np.ndarray | None:
    """WLS weights, None when all are one (OLS)."""
    weights = np.asarray(getattr(model, "weights", 1.0), dtype=float)
    return None if np.all(weights == 1.0) else weights


def _plugin_pretraining(res, weights) -> tuple[np.ndarray, int, int | None]:
    """``(kappa, d_eff, d_base)`` of a fitted two-stage result (results, not wrapper).

    ``kappa`` by :func:`plugin_risk_weights` with the row ``weights`` of the norm (WLS
    weights; GLM working weights), the results' clustering of the pre-training rows and
    no small-sample factor; ``d_eff`` = the rank of the design; ``d_base`` = covariate
    columns + raw inputs when the feature map is affine in them, else None.
    """
    model = res.model
    rep = model.representation
    if rep is None:
        raise ValueError("risk_asymptotics needs a two-stage fit (a model with "
                         "representation=...).")
    design = np.asarray(model.exog, dtype=float)
    d_eff = int(round(res.nobs - res.df_resid))
    kappa = plugin_risk_weights(rep, model.features, design, np.asarray(res.params),
                                model.design_jacobian(), weights=weights, d_eff=d_eff,
                                # its clustering, without the SEs' small-sample factor
                                covariance=replace(res._covariance, small_sample=False))
    p = _affine_dimension(rep, model.features) if model.feature_design.is_selector else None
    d_base = None if p is None else design.shape[1] - len(model.rep_cols) + p
    return kappa, d_eff, d_base


class RiskAsymptotics:
    r"""Limiting law of the downstream test risk of a two-stage fit.

    **Least squares** (the paper's theorem). With ``n`` labeled rows, ``m = alpha n``
    pre-training rows, noise variance ``sigma^2`` and ``d_eff`` design columns (the
    rank of the second-stage design),

    .. math::

        n (R - \sigma^2) \to \sigma^2 d_{eff} + \alpha^{-1} \|L(Z)\|^2,
        \qquad \|L(Z)\|^2 \sim \sum_j \kappa_j \chi^2_1

    (THEORY.md §6). ``R`` is the conditional test risk (expectation over a new test
    point and the label noise, given both samples' inputs); the first term is the
    fine-tuning part (deterministic: the risk averages over label noise), the second
    the pre-training part. The theorem assumes a well-specified second stage at
    ``theta*`` (the regression function lies in the span of ``w(x; theta*)``) and
    homoscedastic noise; overlapping samples leave the limit unchanged.

    **GLM-type second stages** (GLM, Logit, Probit, Poisson; docs, theory page,
    "Downstream risk of likelihood second stages"). ``R`` is the expected unit
    deviance of the fitted pipeline on a new draw, ``R*`` that of the population
    optimum, and

    .. math::

        n (R - R^*) \to \sum_j \lambda_j \chi^2_1 + \alpha^{-1} \|L(Z)\|^2_\omega,

    two independent weighted chi-squares: the fine-tuning part (``fine_tuning_law``,
    weights ``lambda = eig(H^{-1} S) / 2``, all equal to the dispersion ``phi`` under
    a correctly specified variance function) and the pre-training part, whose
    ``kappa`` are those of least squares with the norm weighted by the GLM working
    weights. ``sigma2`` is then the dispersion ``phi`` (statsmodels' ``scale``: 1 for
    binomial and Poisson). With ``fine_tuning_law=None`` the fine-tuning part is the
    point mass ``sigma^2 d_eff`` (least squares, or a GLM risk averaged over the label
    noise).

    Built by ``results.risk_asymptotics()`` (plug-in, :meth:`from_results`) or
    directly from a known law (e.g. a closed form).

    Parameters
    ----------
    pretrain_law : WeightedChiSquare
        Law of ``||L(Z)||^2`` (weights ``kappa``).
    sigma2 : float
        Noise variance ``sigma^2`` (least squares) or dispersion ``phi`` (GLM deviance);
        statsmodels' ``scale`` in both cases.
    d_eff : int
        Number of second-stage design columns actually used (its rank).
    nobs : int
        ``n``, labeled rows.
    nobs_pretrain : int
        ``m``, pre-training rows.
    d_base : int, optional
        Dimension of the downstream-only baseline, the default of
        :meth:`crossover_alpha`.
    fine_tuning_law : WeightedChiSquare, optional
        Law of the fine-tuning part of the limit (non-negative weights and shift).
        Default: the point mass ``sigma^2 d_eff``.
    loss : str
        Name of the loss whose risk this is (for display): ``"squared error"``
        (default) or e.g. ``"Binomial deviance"``.

    Examples
    --------
    >>> from ssl_inference.risk import WeightedChiSquare
    >>> ra = RiskAsymptotics(WeightedChiSquare([2.0, 1.0]), sigma2=1.0, d_eff=3,
    ...                      nobs=100, nobs_pretrain=200)
    >>> ra.alpha, ra.mean          # sigma^2 d_eff + E||L(Z)||^2 / alpha = 3 + 3 / 2
    (2.0, 4.5)
    >>> round(ra.expected_excess_risk, 4), round(ra.pretraining_share, 4)
    (0.045, 0.3333)
    >>> ra.crossover_alpha(d_base=6)   # E||L||^2 / (sigma^2 (d_base - d_eff))
    1.0
    >>> ra.pretrain_size_for(0.1)      # m at which pre-training is 10% of the excess risk
    900.0

    A logistic second stage with three coefficients: the fine-tuning part is a
    chi-square with three degrees of freedom instead of a point mass.

    >>> glm = RiskAsymptotics(WeightedChiSquare([2.0, 1.0]), sigma2=1.0, d_eff=3,
    ...                       nobs=100, nobs_pretrain=200, loss="Binomial deviance",
    ...                       fine_tuning_law=WeightedChiSquare([1.0, 1.0, 1.0]))
    >>> glm.mean, glm.var          # same mean; variance 2 (3 + (4 + 1) / 4)
    (4.5, 8.5)
    >>> glm.crossover_alpha(d_base=6)
    1.0
    """

    def __init__(self, pretrain_law: WeightedChiSquare, *, sigma2: float, d_eff: int,
                 nobs: int, nobs_pretrain: int, d_base: int | None = None,
                 fine_tuning_law: WeightedChiSquare | None = None,
                 loss: str = SQUARED_ERROR):
        if not isinstance(pretrain_law, WeightedChiSquare) or pretrain_law.shift != 0:
            raise ValueError("pretrain_law must be a WeightedChiSquare with shift 0 "
                             "(the law of ||L(Z)||^2).")
        if np.any(pretrain_law.weights < 0):
            raise ValueError("||L(Z)||^2 is a non-negative quadratic form: its weights "
                             "must be >= 0.")
        if not sigma2 >= 0 or nobs < 1 or nobs_pretrain < 1 or d_eff < 0:
            raise ValueError("need sigma2 >= 0, nobs >= 1, nobs_pretrain >= 1, d_eff >= 0.")
        if fine_tuning_law is not None and (
                not isinstance(fine_tuning_law, WeightedChiSquare)
                or np.any(fine_tuning_law.weights < 0) or fine_tuning_law.shift < 0):
            raise ValueError("fine_tuning_law must be a WeightedChiSquare with non-negative "
                             "weights and shift (the fine-tuning part is an excess risk, "
                             ">= 0); None for the point mass sigma2 * d_eff.")
        self.pretrain_law = pretrain_law
        self.sigma2 = float(sigma2)
        self.d_eff = int(d_eff)
        self.nobs = int(nobs)
        self.nobs_pretrain = int(nobs_pretrain)
        self.d_base = d_base
        self._fine_tuning_law = fine_tuning_law
        self.loss = str(loss)

    # ------------------------------------------------------------ plug-in
    @classmethod
    def from_results(cls, results, **options) -> "RiskAsymptotics":
        r"""Plug-in estimate from a fitted two-stage result.

        **OLS / WLS** (no options). ``kappa`` by :func:`plugin_risk_weights` at
        ``(theta_hat, beta_hat)`` on the labeled rows and the pre-training rows;
        ``sigma^2`` by the results' ``scale`` (``SSR / (n - d_eff)``; for WLS the
        weighted residual variance, and the risk is then the weighted risk
        ``E[wt (y - f_hat)^2]``, which is the usual one for constant weights);
        ``d_eff`` = the rank of the design; ``d_base`` (for :meth:`crossover_alpha`) =
        the covariate columns plus the ``p`` raw inputs when the feature map is affine in
        the raw inputs (the baseline regresses ``y`` on the covariates and the raw
        ``x``), else unset.

        **GLM, Logit, Probit, Poisson**: the deviance risk,
        :func:`ssl_inference.risk.deviance_risk_asymptotics` (``options`` are its
        keywords ``fine_tuning`` and ``average_label_noise``).
        """
        res = getattr(results, "_results", results)
        from .deviance import deviance_risk_asymptotics, second_stage_family
        if second_stage_family(res.model) is not None:
            return deviance_risk_asymptotics(res, **options)
        if options:
            raise TypeError(
                f"{sorted(options)} apply to GLM-type second stages (the deviance risk); "
                "the least-squares law has none: its fine-tuning part sigma^2 d_eff "
                "already averages over the label noise (the paper's theorem).")
        kappa, d_eff, d_base = _plugin_pretraining(res, _least_squares_weights(res.model))
        return cls(WeightedChiSquare(kappa), sigma2=float(res.scale), d_eff=d_eff,
                   nobs=res.model.exog.shape[0], nobs_pretrain=res.model.representation.nobs_,
                   d_base=d_base)

    # ------------------------------------------------------------ the law
    @property
    def kappa(self) -> np.ndarray:
        """Weights of ``||L(Z)||^2 ~ sum_j kappa_j chi2_1``."""
        return self.pretrain_law.weights

    @property
    def alpha(self) -> float:
        """``m / n``."""
        return self.nobs_pretrain / self.nobs

    @property
    def fine_tuning_law(self) -> WeightedChiSquare:
        """Law of the fine-tuning part of the limit: the point mass ``sigma^2 d_eff``
        (least squares), or ``sum_j lambda_j chi2_1`` (GLM deviance risk)."""
        if self._fine_tuning_law is None:
            return WeightedChiSquare(np.zeros(0), shift=self.sigma2 * self.d_eff)
        return self._fine_tuning_law

    @property
    def excess_label(self) -> str:
        """The excess risk this law describes: ``"R - sigma^2"`` (least squares) or
        ``"R - R*"`` (``R*``: the risk of the population optimum)."""
        return "R - sigma^2" if self.loss == SQUARED_ERROR else "R - R*"

    @property
    def has_baseline(self) -> bool:
        """Whether :meth:`crossover_alpha` can compare with a downstream-only baseline:
        the fine-tuning mean is ``sigma^2 d_eff`` (least squares; GLM with the
        model-based fine-tuning law), so the baseline's is ``sigma^2 d_base``."""
        return math.isclose(self.fine_tuning_law.mean, self.sigma2 * self.d_eff,
                            rel_tol=1e-9, abs_tol=1e-300)

    @property
    def law(self) -> WeightedChiSquare:
        """Limit law of ``n (R - R*)`` (``R* = sigma^2`` for least squares): the
        fine-tuning law plus ``sum_j (kappa_j / alpha) chi2_1``, independent; for least
        squares ``sigma^2 d_eff + sum_j (kappa_j / alpha) chi2_1``."""
        fine = self.fine_tuning_law
        return WeightedChiSquare(np.concatenate([fine.weights, self.kappa / self.alpha]),
                                 shift=fine.shift)

    @property
    def excess_law(self) -> WeightedChiSquare:
        """Approximate law of the excess risk ``R - R*`` (the limit law / n)."""
        return self.law.scaled(1.0 / self.nobs)

    @property
    def mean(self) -> float:
        """Mean of the limit of ``n (R - R*)``: ``E[fine-tuning] + tr(GV) / alpha``
        (``sigma^2 d_eff + tr(GV) / alpha`` for least squares)."""
        return self.law.mean

    @property
    def var(self) -> float:
        """Variance of the limit of ``n (R - R*)``: ``2 sum lambda_j^2 + 2 tr((GV)^2) /
        alpha^2`` (no first term for least squares)."""
        return self.law.var

    def quantile(self, q, *, excess: bool = False):
        """Quantiles of ``n (R - R*)`` (``excess=True``: of ``R - R*``)."""
        return (self.excess_law if excess else self.law).ppf(q)

    def cdf(self, x, *, excess: bool = False):
        """Distribution function of ``n (R - R*)`` (``excess=True``: of ``R - R*``)."""
        return (self.excess_law if excess else self.law).cdf(x)

    # ----------------------------------------------------- decomposition
    @property
    def fine_tuning(self) -> float:
        """Fine-tuning part of the expected excess risk: ``E[fine-tuning] / n``
        (``sigma^2 d_eff / n`` for least squares and for a GLM with the model-based
        fine-tuning law)."""
        return self.fine_tuning_law.mean / self.nobs

    @property
    def pretraining(self) -> float:
        """Pre-training part of the expected excess risk: ``E||L(Z)||^2 / m``."""
        return self.pretrain_law.mean / self.nobs_pretrain

    @property
    def expected_excess_risk(self) -> float:
        """``fine_tuning + pretraining`` (the limit mean divided by ``n``)."""
        return self.fine_tuning + self.pretraining

    @property
    def pretraining_share(self) -> float:
        """Share of the expected excess risk due to the pre-training estimate."""
        total = self.expected_excess_risk
        return self.pretraining / total if total > 0 else 0.0

    def decomposition(self) -> pd.DataFrame:
        """Fine-tuning and pre-training parts of the expected excess risk.

        Returns
        -------
        DataFrame
            Rows ``fine_tuning``, ``pretraining``, ``total``; columns ``excess_risk``
            (the ``R - R*`` scale), ``scaled`` (times ``n``) and ``share``.
        """
        parts = np.array([self.fine_tuning, self.pretraining, self.expected_excess_risk])
        total = parts[-1]
        share = parts / total if total > 0 else np.array([np.nan, np.nan, 1.0])
        return pd.DataFrame({"excess_risk": parts, "scaled": parts * self.nobs,
                             "share": share},
                            index=["fine_tuning", "pretraining", "total"])

    def crossover_alpha(self, d_base: int | None = None) -> float:
        r"""Pre-training ratio ``alpha_0`` above which the two-stage pipeline wins.

        The downstream-only baseline (the whole model fitted on the ``n`` labels, with
        ``d_base`` parameters) has ``n (R - R*) -> sigma^2 d_base`` (least squares; for
        a GLM of the same family the mean of its limit ``phi chi2_{d_base}``); the
        pipeline's limit mean is ``sigma^2 d_eff + E||L(Z)||^2 / alpha``. So the
        pipeline has the smaller expected limit iff ``alpha > alpha_0`` with

        .. math:: \alpha_0 = \frac{E\|L(Z)\|^2}{\sigma^2 (d_{base} - d_{eff})}.

        Special cases: ``inf`` when ``d_base <= d_eff`` (the baseline is not larger, so
        pre-training can only add error: no ``alpha`` makes the pipeline win) or when
        ``sigma^2 = 0`` with ``E||L(Z)||^2 > 0``; ``0`` when ``E||L(Z)||^2 = 0`` and
        ``d_base > d_eff`` (the pipeline wins at every ``alpha``).

        Parameters
        ----------
        d_base : int, optional
            Baseline dimension. Default (plug-in results with a feature map affine in
            the raw inputs, e.g. PCA): covariate columns + raw inputs ``p``. For
            non-linear feature maps there is no default: pass the dimension of the
            downstream-only model you would fit instead.

        Raises
        ------
        ValueError
            Without ``d_base``; or when the fine-tuning mean is not ``sigma^2 d_eff``
            (a GLM law with ``fine_tuning="robust"``): the baseline's fine-tuning mean
            is then not ``sigma^2 d_base`` either, and is unknown without fitting it.
        """
        if d_base is None:
            d_base = self.d_base
        if d_base is None:
            raise ValueError(
                "crossover_alpha needs d_base, the number of parameters of the "
                "downstream-only model fitted on the labels alone. It has a default only "
                "for feature maps that are affine in the raw inputs (covariates + raw "
                "inputs); pass d_base=... for this representation.")
        if not self.has_baseline:
            fine = self.fine_tuning_law.mean
            raise ValueError(
                f"crossover_alpha compares the pipeline with a downstream-only baseline "
                f"whose fine-tuning part has mean sigma2 * d_base, which holds when both "
                f"use the model's variance function. This law's fine-tuning mean "
                f"{fine:.4g} is not sigma2 * d_eff = {self.sigma2 * self.d_eff:.4g} (a "
                f"sandwich estimate, fine_tuning='robust'), so the baseline's mean is "
                f"unknown: use risk_asymptotics(fine_tuning='model'), or fit the baseline "
                f"and compare its limit mean with this law's mean.")
        gap = d_base - self.d_eff
        expected = self.pretrain_law.mean
        if gap <= 0 or (self.sigma2 == 0 and expected > 0):
            return math.inf
        return expected / (self.sigma2 * gap)

    def pretrain_size_for(self, share: float) -> float:
        r"""Pre-training size ``m`` at which pre-training makes up ``share`` of the
        expected excess risk (at the current ``n``).

        The pre-training part ``E||L(Z)||^2 / m`` falls with ``m``; solving
        ``pretraining / (pretraining + fine_tuning) = share`` gives, with ``F`` the
        fine-tuning mean (``sigma^2 d_eff`` for least squares),

        .. math:: m = \frac{1 - s}{s}\, \frac{n\, E\|L(Z)\|^2}{F},

        and any larger ``m`` gives a smaller share (round up). ``0`` when
        ``E||L(Z)||^2 = 0``; ``inf`` when the fine-tuning part is zero.
        """
        if not 0 < share < 1:
            raise ValueError(f"share must be in (0, 1); got {share!r}.")
        expected = self.pretrain_law.mean
        if expected == 0:
            return 0.0
        fine = self.fine_tuning_law.mean
        if fine == 0:
            return math.inf
        return (1.0 - share) / share * self.nobs * expected / fine

    # ---------------------------------------------------------- display
    def summary_frame(self) -> pd.Series:
        """The main numbers in one Series (GLM laws add ``fine_tuning_mean``)."""
        law = self.law
        numbers = {
            "nobs": self.nobs, "nobs_pretrain": self.nobs_pretrain, "alpha": self.alpha,
            "sigma2": self.sigma2, "d_eff": self.d_eff}
        if self._fine_tuning_law is not None:
            numbers["fine_tuning_mean"] = self.fine_tuning_law.mean
        numbers.update({
            "E||L(Z)||^2": self.pretrain_law.mean, "mean": law.mean, "sd": law.std,
            "median": float(law.ppf(0.5)), "q90": float(law.ppf(0.9)),
            "expected_excess_risk": self.expected_excess_risk,
            "pretraining_share": self.pretraining_share})
        return pd.Series(numbers)

    def __repr__(self) -> str:
        if self._fine_tuning_law is None and self.loss == SQUARED_ERROR:
            return (f"RiskAsymptotics(n={self.nobs}, m={self.nobs_pretrain}, "
                    f"sigma2={self.sigma2:.4g}, d_eff={self.d_eff}, "
                    f"E||L(Z)||^2={self.pretrain_law.mean:.4g}, "
                    f"pretraining_share={self.pretraining_share:.3f})")
        return (f"RiskAsymptotics(loss={self.loss!r}, n={self.nobs}, m={self.nobs_pretrain}, "
                f"sigma2={self.sigma2:.4g}, d_eff={self.d_eff}, "
                f"E[fine-tuning]={self.fine_tuning_law.mean:.4g}, "
                f"E||L(Z)||^2={self.pretrain_law.mean:.4g}, "
                f"pretraining_share={self.pretraining_share:.3f})")

    def plot(self, ax=None, *, excess: bool = False, quantiles=(0.5, 0.9), points: int = 200):
        """Density of the limit law with the fine-tuning point (least squares) or
        mean (GLM) and quantiles marked.

        Needs matplotlib (``pip install "ssl_inference[plot]"``); see
        :func:`ssl_inference.plotting.plot_risk_density` for the parameters.

        Returns
        -------
        matplotlib Axes
        """
        from ..plotting import plot_risk_density
        return plot_risk_density(self, ax, excess=excess, quantiles=quantiles, points=points)

    def plot_pretrain_size(self, ax=None, *, sizes=None, band=(0.1, 0.9), d_base=None):
        """How much unlabeled data is enough: limiting excess risk against ``m``.

        The expected excess risk ``E[fine-tuning] / n + E||L(Z)||^2 / m`` (``sigma^2
        d_eff / n`` the first term for least squares) with a quantile band of the total,
        the fine-tuning floor, the downstream-only baseline and the crossover
        (when ``d_base`` is known), at the fitted ``n``. Needs matplotlib; see
        :func:`ssl_inference.plotting.plot_pretrain_size` for the parameters.

        Returns
        -------
        matplotlib Axes

        Examples
        --------
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> scales = np.array([3.0, 2.0, 1.0, 0.5])
        >>> rep = ssi.PCA(2).fit(rng.normal(size=(300, 4)) * scales)
        >>> X = rng.normal(size=(500, 4)) * scales
        >>> y = 1 + X[:, 0] + X[:, 1] + rng.normal(size=500)
        >>> ra = ssi.OLS(y, np.ones((500, 1)), representation=rep, features=X).fit(
        ...     ).risk_asymptotics()
        >>> ra.plot_pretrain_size().get_xscale()
        'log'
        """
        from ..plotting import plot_pretrain_size
        return plot_pretrain_size(self, ax, sizes=sizes, band=band, d_base=d_base)
