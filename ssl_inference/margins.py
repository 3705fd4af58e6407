r"""Marginal effects of a two-stage link model, with the first stage in their covariance.

statsmodels' ``get_margeff`` (Logit, Probit, Poisson, GLM) reports, for each
non-constant design column ``c``, the derivative of the mean ``h(w'beta)`` (``h`` the
inverse link) with respect to that column, optionally as an (semi-)elasticity:

.. math::

    e_c(\beta, w) = s(w'\beta)\, \beta_c\, x_c, \qquad
    s = h' \ (\texttt{dy..}) \text{ or } h'/h \ (\texttt{ey..}), \qquad
    x_c = w_c \ (\texttt{..ex}) \text{ or } 1 \ (\texttt{..dx}),

reduced over the labeled rows ``w_j``: ``M = mean_j e(beta, w_j)`` (``at="overall"``),
``e(beta, mean_j w_j)`` ("mean"), ``e(beta, median_j w_j)`` ("median", column by
column) or ``e(beta, w_0)`` ("zero": constant columns 1, the others 0).

The rows are ``w_j = w(z_j, phi(x_j; theta))``: the margins move with ``theta_hat``
through ``beta_hat`` AND through the rows at which they are evaluated. To first order

.. math::

    \hat M - M^* \approx G_\beta (\hat\beta - \beta^*) + G_\theta (\hat\theta - \theta^*),
    \qquad G_\theta = \sum_j \frac{\partial M}{\partial w_j} D_j
                      \frac{\partial \phi_j}{\partial \theta},

(``D_j = dw_j/dphi_j``, :mod:`ssl_inference.design`: formula terms of the features
included), so ``Cov(M_hat)`` is the two-stage covariance of the functional
``f = G_beta beta + G_theta theta`` (:class:`~ssl_inference.covariance.TwoStageCovariance`):
statsmodels' own margins covariance ``G_beta Cov_2 G_beta'`` (the fine-tuning part; it
is exactly statsmodels' when the first stage carries no uncertainty) plus the
pre-training and overlap parts. ``G_theta`` is the feature VJP of the cotangents
``(dM/dw_j)`` pulled back through ``D_j``, computed in blocks of rows.

The median is not a smooth function of the rows: its derivative along ``theta`` is
``E[dw_c/dtheta | w_c = median]`` (the Bahadur representation of a quantile), estimated
by a Gaussian-kernel average over the rows near the median (Silverman's bandwidth
``0.9 min(sd, IQR/1.34) n^{-1/5}`` per column).

Like statsmodels, the margins are conditional on the labeled rows: their sampling
variation from the covariates of the labeled sample is not part of the covariance.
"""
from __future__ import annotations

import copy
import textwrap
import warnings
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.discrete.discrete_margins import DiscreteMargins
from statsmodels.genmod.families import links
from statsmodels.iolib.table import SimpleTable

from .covariance import VarianceParts
from .exceptions import GaugeDependentWarning
from .summary import blank_table_rows, notes

__all__ = ["MeanFunction", "MarginalEffects", "TwoStageMargins", "TwoStageMarginsMixin",
           "two_stage_margeff", "AT_OPTIONS", "METHODS"]

AT_OPTIONS = ("overall", "mean", "median", "zero")
METHODS = ("dydx", "eyex", "dyex", "eydx")
CHUNK_ROWS = 4096
#: relative disagreement with statsmodels' point estimates that stops the computation
_AGREEMENT_RTOL = 1e-8
#: relative change of a margin under a group element that marks it gauge-dependent
_GAUGE_RTOL = 1e-7
_N_HAAR = 3  # Haar-random elements checked for continuous groups


class MeanFunction(NamedTuple):
    """The inverse link ``h`` and its first two derivatives in the linear predictor."""

    inverse: Callable[[np.ndarray], np.ndarray]
    deriv: Callable[[np.ndarray], np.ndarray]
    deriv2: Callable[[np.ndarray], np.ndarray]

    @classmethod
    def from_link(cls, link) -> "MeanFunction":
        """From a statsmodels link (``inverse``, ``inverse_deriv``, ``inverse_deriv2``).

        statsmodels' generic ``inverse_deriv2`` is ``-g''(mu) / g'(mu)^3``, which is
        0/0 where the mean saturates (``mu`` rounds to a bound of its range, e.g. a
        fitted probability of exactly 1); there ``h'`` and ``h''`` are both 0 in the
        limit. The logistic inverse link gets its closed form ``h (1 - h) (1 - 2 h)``.

        Examples
        --------
        >>> import statsmodels.api as sm
        >>> logistic = MeanFunction.from_link(sm.families.links.Logit())
        >>> round(float(logistic.deriv2(np.array([1.0]))[0]), 6)   # p (1 - p) (1 - 2 p)
        -0.090858
        >>> bool(np.isfinite(logistic.deriv2(np.array([800.0]))[0]))
        True
        """
        if type(link) is links.Logit:  # (statsmodels derives CDFLink, e.g. Probit, from it)
            def logistic_deriv2(eta):
                p = link.inverse(eta)
                return p * (1 - p) * (1 - 2 * p)

            return cls(link.inverse, link.inverse_deriv, logistic_deriv2)

        def deriv2(eta):
            with np.errstate(divide="ignore", invalid="ignore"):
                out = np.asarray(link.inverse_deriv2(eta), dtype=float)
            return np.where(~np.isfinite(out) & (link.inverse_deriv(eta) == 0), 0.0, out)

        return cls(link.inverse, link.inverse_deriv, deriv2)


@dataclass(frozen=True)
class MarginalEffects:
    r"""statsmodels' marginal effects as a function of ``(beta, W)``, with derivatives.

    Parameters
    ----------
    mean : MeanFunction
    at : {"overall", "mean", "median", "zero"}
    method : {"dydx", "eyex", "dyex", "eydx"}
    cols : ndarray of int (r,)
        Design columns whose effects are reported (the non-constant ones).
    constant : ndarray of bool (d,)
        Constant design columns (set to 1 in the "zero" row).

    Examples
    --------
    >>> from scipy.special import expit
    >>> logistic = MeanFunction(expit, lambda e: expit(e) * (1 - expit(e)),
    ...                         lambda e: expit(e) * (1 - expit(e)) * (1 - 2 * expit(e)))
    >>> W = np.column_stack([np.ones(3), [0.0, 1.0, 2.0]])
    >>> me = MarginalEffects.for_design(logistic, "overall", "dydx", W)
    >>> me.value(np.array([0.0, 2.0]), W).round(4)   # mean of p(1-p) * 2
    array([0.2484])
    """

    mean: MeanFunction
    at: str
    method: str
    cols: np.ndarray
    constant: np.ndarray

    @classmethod
    def for_design(cls, mean: MeanFunction, at: str, method: str,
                   W: np.ndarray) -> "MarginalEffects":
        """Effects of the columns of ``W`` that vary (statsmodels' ``var != 0`` rule)."""
        constant = np.asarray(W).var(axis=0) == 0
        return cls(mean, at, method, np.flatnonzero(~constant), constant)

    # ---------------------------------------------------------------- pieces
    def evaluation_rows(self, W: np.ndarray) -> np.ndarray:
        """The rows at which the effects are evaluated (n, d) or (1, d)."""
        if self.at == "overall":
            return W
        if self.at == "mean":
            return W.mean(axis=0, keepdims=True)
        if self.at == "median":
            return np.median(W, axis=0, keepdims=True)
        row = np.zeros((1, W.shape[1]))
        row[0, self.constant] = 1.0
        return row

    def _scale(self, eta):
        """``s(eta)`` and ``s'(eta)``: ``h', h''`` or ``h'/h, h''/h - (h'/h)^2``."""
        h1, h2 = self.mean.deriv(eta), self.mean.deriv2(eta)
        if self.method.startswith("ey"):
            s = h1 / self.mean.inverse(eta)
            return s, h2 / self.mean.inverse(eta) - s ** 2
        return h1, h2

    def _factors(self, b, V):
        """``s, s'`` per row and ``x`` (rows, r): ``w_c`` for elasticities in x, else 1."""
        s, sp = self._scale(V @ b)
        x = V[:, self.cols] if self.method.endswith("ex") else np.ones((V.shape[0],
                                                                          self.cols.size))
        return s, sp, x

    def _row_gradients(self, b, V) -> np.ndarray:
        r"""``de_c/dw_a = s' beta_a beta_c x_c + s beta_c [ex] 1(a = c)``: (rows, d, r)."""
        s, sp, x = self._factors(b, V)
        bx = b[self.cols] * x
        out = sp[:, None, None] * b[None, :, None] * bx[:, None, :]
        if self.method.endswith("ex"):
            out[:, self.cols, np.arange(self.cols.size)] += s[:, None] * b[self.cols]
        return out

    # ------------------------------------------------------------- interface
    def value(self, b: np.ndarray, W: np.ndarray) -> np.ndarray:
        """The margins ``M(beta, W)`` (r,)."""
        V = self.evaluation_rows(W)
        s, _, x = self._factors(b, V)
        return (s[:, None] * b[self.cols] * x).mean(axis=0)

    def beta_gradient(self, b: np.ndarray, W: np.ndarray) -> np.ndarray:
        r"""``G_beta = dM/dbeta`` (r, d): the row-mean of
        ``s' w_a beta_c x_c + s x_c 1(a = c)``."""
        V = self.evaluation_rows(W)
        s, sp, x = self._factors(b, V)
        G = ((sp[:, None] * b[self.cols] * x).T @ V) / V.shape[0]
        G[np.arange(self.cols.size), self.cols] += (s[:, None] * x).mean(axis=0)
        return G

    def row_cotangents(self, b: np.ndarray, W: np.ndarray):
        """A function ``rows -> dM/dw_j`` (len(rows), d, r) for index arrays or slices.

        "overall": ``(1/n) de/dw(w_j)``; "mean": ``(1/n) de/dw(w_bar)``; "median":
        ``de/dw_a(w_med)`` times the kernel weight of row j in column a; "zero": 0.
        """
        n, d = W.shape
        r = self.cols.size
        if self.at == "overall":
            return lambda rows: self._row_gradients(b, W[rows]) / n
        if self.at == "zero":
            return lambda rows: np.zeros((np.arange(n)[rows].size, d, r))
        point = self._row_gradients(b, self.evaluation_rows(W))[0]          # (d, r)
        weights = (np.full((n, d), 1.0 / n) if self.at == "mean"
                   else median_weights(W, self.constant))
        return lambda rows: weights[rows][:, :, None] * point[None]


def median_weights(W: np.ndarray, constant: np.ndarray) -> np.ndarray:
    r"""Kernel weights (n, d) of the rows near each column's median (columns sum to 1).

    ``d median_j(w_jc) / d theta ~= sum_j kappa_jc dw_jc/dtheta`` with
    ``kappa_jc ∝ exp(-((w_jc - med_c) / h_c)^2 / 2)``, ``h_c = 0.9 min(sd, IQR/1.34)
    n^{-1/5}`` (the sd alone when the IQR is 0); constant columns get weight 0.

    Examples
    --------
    >>> w = median_weights(np.array([[0.0], [1.0], [2.0], [10.0], [-9.0]]),
    ...                    np.array([False]))
    >>> bool(w[1, 0] == w.max()), round(float(w.sum()), 12)
    (True, 1.0)
    """
    n = W.shape[0]
    out = np.zeros(W.shape)
    for c in np.flatnonzero(~constant):
        col = W[:, c]
        sd = col.std(ddof=1)
        iqr = np.subtract(*np.percentile(col, [75, 25]))
        spread = min(sd, iqr / 1.34) if iqr > 0 else sd
        h = 0.9 * spread * n ** -0.2
        kernel = np.exp(-0.5 * ((col - np.median(col)) / h) ** 2)
        out[:, c] = kernel / kernel.sum()
    return out


def first_stage_gradient(effects: MarginalEffects, model, b: np.ndarray,
                         W: np.ndarray) -> np.ndarray:
    r"""``G_theta = sum_j (dM/dw_j) D_j dphi_j/dtheta`` (r, q).

    The cotangents ``dM/dw_j`` (:meth:`MarginalEffects.row_cotangents`) are pulled
    back through the design Jacobian ``D_j`` of the model's rows (formula terms of the
    features included) and contracted with the feature map's VJP, in blocks of
    ``CHUNK_ROWS`` rows (memory ``O(CHUNK_ROWS d r)``).

    Parameters
    ----------
    effects : MarginalEffects
    model : two-stage model
        Its ``design_jacobian()``, ``features`` (raw rows) and ``representation``.
    b : ndarray (d,)
    W : ndarray (n, d)
        The model's design at ``theta_hat``.
    """
    cotangents = effects.row_cotangents(b, W)
    D = model.design_jacobian()
    rep = model.representation
    total = 0.0
    for start in range(0, W.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        total = total + rep.feature_vjp(model.features[rows], D.rows(rows).pull(cotangents(rows)))
    return np.asarray(total).T


# --------------------------------------------------------------------------- symmetry
def gauge_dependent_margins(model, effects: MarginalEffects, b: np.ndarray,
                            W: np.ndarray) -> np.ndarray:
    r"""Which margins change (beyond a sign) when the first stage moves within its orbit.

    For group elements ``g`` (the generators, and Haar draws for continuous groups) the
    features move to ``phi rho(g)'``, the design to ``W_g = W T_g`` and the coefficients
    to ``T_g^{-1} beta`` (same fitted values). A margin is gauge-free when
    ``|M(T_g^{-1} b, W_g)| = |M(b, W)|`` for all of them (a sign change, as for a
    feature's own margin under sign flips, leaves its SE and test invariant); checked at
    ``beta_hat`` and at a perturbed coefficient vector, so that an accidental equality
    at one point does not pass. Returns a boolean mask (r,); all False when the
    design itself was fitted in the reported gauge (``allow_gauge=True`` at the model).
    """
    r = effects.cols.size
    if model.coefficient_action is None:
        return np.zeros(r, dtype=bool)
    group = model.representation.symmetry_
    elements = list(group.generators())
    if group.lie_algebra():
        rng = np.random.default_rng(0)
        elements += [group.sample(rng) for _ in range(_N_HAAR)]
    if not elements:
        return np.zeros(r, dtype=bool)
    rows, phi = model._design_rows(), model._sample_features()
    bump = np.random.default_rng(1).normal(size=b.size) * (np.abs(b) + 1.0) * 0.1
    points = [b, b + bump]
    base = [effects.value(p, W) for p in points]
    dependent = np.zeros(r, dtype=bool)
    for g in elements:
        W_g = model.feature_design.build(rows, phi @ group.rho(g).T)
        T = np.linalg.lstsq(W, W_g, rcond=None)[0]
        for p, ref in zip(points, base):
            moved = effects.value(np.linalg.solve(T, p), W_g)
            scale = np.abs(ref) + np.abs(moved) + 1e-12 * np.abs(ref).max()
            dependent |= np.abs(np.abs(moved) - np.abs(ref)) > _GAUGE_RTOL * scale
    return dependent


# --------------------------------------------------------------------------- results
class TwoStageMargins(DiscreteMargins):
    """statsmodels' ``DiscreteMargins`` with the covariance of a two-stage fit.

    ``margeff`` are statsmodels' point estimates; ``margeff_cov`` (and so
    ``margeff_se``, ``tvalues``, ``pvalues``, ``conf_int()``, ``summary()``,
    ``summary_frame()``) follow the result's ``cov_type``: two-stage (delta method
    with the first stage), bootstrap (the aligned replicates) or naive (statsmodels').
    Margins that depend on the first stage's gauge keep their value and standard
    error, but their z, p and interval are NaN (blanked in the summary) unless
    ``get_margeff(..., allow_gauge=True)``.

    Attributes
    ----------
    margeff_cov_naive : ndarray (r, r)
        statsmodels' covariance (first stage treated as known).
    gauge_dependent : ndarray of bool (r,)
        Margins without a gauge-free meaning.
    """

    margeff_cov_naive: np.ndarray
    gauge_dependent: np.ndarray
    _parts: VarianceParts | None
    _allow_gauge: bool

    @classmethod
    def from_statsmodels(cls, results, sm_margins, cov, *, parts=None, dependent=None,
                         allow_gauge: bool = False) -> "TwoStageMargins":
        """Take statsmodels' margins (computed with ``Cov_2``) and install ``cov``."""
        obj = cls.__new__(cls)
        obj._cache = {}
        obj.results = results
        obj.margeff_options = dict(sm_margins.margeff_options)
        obj.dummy_idx = sm_margins.dummy_idx
        obj.count_idx = sm_margins.count_idx
        obj.margeff = sm_margins.margeff
        obj._parts = parts
        obj._allow_gauge = allow_gauge
        if obj.margeff_options["at"] != "all":
            obj.margeff_cov_naive = sm_margins.margeff_cov
            obj.margeff_cov = np.asarray(cov)
            obj.margeff_se = np.sqrt(np.diag(obj.margeff_cov))
        r = obj.margeff.shape[-1]
        obj.gauge_dependent = np.zeros(r, dtype=bool) if dependent is None else dependent
        return obj

    def _require_inference(self):
        if self.margeff_options["at"] == "all":
            raise ValueError(
                "Only margeff is available when `at` is 'all' (statsmodels' rule: no "
                "standard errors for row-wise effects). Use at='overall', 'mean', "
                "'median' or 'zero' for inference.")

    @property
    def _hidden(self) -> np.ndarray:
        return self.gauge_dependent & (not self._allow_gauge)

    @property
    def cov_type(self) -> str:
        """``"two-stage"``, ``"bootstrap"``, ``"jackknife"`` or ``"naive"``: what the
        standard errors are."""
        return self.results._spec.cov_type

    @property
    def margeff_se_naive(self) -> np.ndarray:
        """statsmodels' standard errors of the margins (first stage treated as known)."""
        self._require_inference()
        return np.sqrt(np.diag(self.margeff_cov_naive))

    @property
    def tvalues(self) -> np.ndarray:
        """z statistics; NaN for gauge-dependent margins."""
        self._require_inference()
        return np.where(self._hidden, np.nan, self.margeff / self.margeff_se)

    @property
    def pvalues(self) -> np.ndarray:
        """Two-sided normal p-values; NaN for gauge-dependent margins."""
        return stats.norm.sf(np.abs(self.tvalues)) * 2

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Wald intervals (r, 2); NaN rows for gauge-dependent margins."""
        self._require_inference()
        q = stats.norm.ppf(1 - alpha / 2)
        ci = np.column_stack([self.margeff - q * self.margeff_se,
                              self.margeff + q * self.margeff_se])
        ci[self._hidden] = np.nan
        return ci

    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """statsmodels' table of the margins: estimate, SE, z, p, interval."""
        self._require_inference()
        return super().summary_frame(alpha=alpha)

    def variance_decomposition(self) -> pd.DataFrame:
        """Per margin: fine-tuning (statsmodels'), pre-training and overlap variance.

        Columns as :meth:`~ssl_inference.results.base.TwoStageResultsMixin.variance_decomposition`;
        ``cov_type="two-stage"`` only.
        """
        self._require_inference()
        if self._parts is None:
            raise ValueError(f"variance_decomposition() needs cov_type='two-stage'; these "
                             f"margins follow cov_type={self.cov_type!r}.")
        p = self._parts
        total = np.diag(p.total)
        frame = pd.DataFrame({"fine_tuning": np.diag(p.fine_tuning),
                              "pretraining": np.diag(p.pretraining),
                              "overlap": np.diag(p.cross), "total": total},
                             index=self._names())
        frame["fine_tuning_share"] = frame["fine_tuning"] / total
        frame["pretraining_share"] = frame["pretraining"] / total
        return frame

    def _names(self) -> list[str]:
        names = list(self.results.model.exog_names)
        return [names[c] for c in np.flatnonzero(np.asarray(self.results.model.exog
                                                            ).var(axis=0) != 0)]

    def get_margeff(self, *args, **kwargs):
        """Recompute with other options (as ``results.get_margeff``), keeping the
        two-stage covariance."""
        new = self.results.get_margeff(*args, **kwargs)
        self.__dict__.clear()
        self.__dict__.update(new.__dict__)

    def summary(self, alpha: float = 0.05):
        """statsmodels' margins table, the SE comparison with naive and notes."""
        self._require_inference()
        smry = super().summary(alpha=alpha)
        names = self._names()
        hidden = [names[i] for i in np.flatnonzero(self._hidden)]
        blank_table_rows(smry.tables[-1], hidden)
        smry.tables.append(self._se_table())
        smry.add_extra_txt(self._notes(hidden))
        return smry

    def _se_table(self) -> SimpleTable:
        label = {"two-stage": "two-stage SE", "bootstrap": "bootstrap SE",
                 "jackknife": "jackknife SE"}.get(
            self.cov_type, "SE")
        naive = self.margeff_se_naive
        data = [[f"{a:.4g}", f"{b:.4g}", f"{b / a:.4g}"]
                for a, b in zip(naive, self.margeff_se)]
        return SimpleTable(data, headers=["naive SE", label, "SE ratio"],
                           stubs=self._names(),
                           title="Standard errors of the margins: two-stage vs naive")

    def _notes(self, hidden) -> list[str]:
        rep = self.results.model.representation
        what = {
            "two-stage": ("Standard errors are two-stage: the delta method includes the "
                          f"first stage ({type(rep).__name__}, m={rep.nobs_}), through the "
                          "coefficients and through the learned features of the rows at "
                          "which the effects are evaluated."),
            "bootstrap": ("Standard errors from the two-sample bootstrap replicates: each "
                          "replicate's margins at the labeled rows with its aligned "
                          "representation's features."),
            "jackknife": ("Standard errors from the two-stage delete-one-unit jackknife: "
                          "the margins without each unit, at the labeled rows with that "
                          "deletion's aligned representation's features."),
        }.get(self.cov_type, "These standard errors are naive (statsmodels'): they ignore "
                             "that the features were estimated on X_pre.")
        lines = [what, "Conditional on the labeled rows, as in statsmodels."]
        if hidden:
            lines.append(f"{', '.join(n + '*' for n in hidden)}: marginal effects that "
                         f"depend on the gauge of {rep.symmetry_.name}; individually they "
                         "have no gauge-free meaning, so z, p and intervals are not shown.")
        elif self.gauge_dependent.any():
            dep = [n for n, g in zip(self._names(), self.gauge_dependent) if g]
            lines.append(f"{', '.join(dep)}: in the reported gauge ({rep.gauge_convention}); "
                         "another equally good first-stage fit can change them "
                         "(allow_gauge=True).")
        lines += [line for line in notes(self.results) if not line.startswith("These SEs")]
        return [textwrap.fill(f"[{i + 1}] {line}", width=78, subsequent_indent="    ")
                for i, line in enumerate(lines)]


class TwoStageMarginsMixin:
    """``get_margeff`` of two-stage results of single-index models ``E(y | w) = h(w'beta)``.

    Results classes provide ``_mean_function()`` (the :class:`MeanFunction` ``h``);
    parameters after the design's coefficients (a negative binomial's ``alpha``) do
    not enter the effects.
    """

    def get_margeff(self, at: str = "overall", method: str = "dydx", atexog=None,
                    dummy: bool = False, count: bool = False, *,
                    allow_gauge: bool = False) -> TwoStageMargins:
        r"""Marginal effects with standard errors that include the first stage.

        The point estimates are statsmodels'. With ``cov_type="two-stage"`` the
        delta method also differentiates through the learned features of the rows at
        which the effects are evaluated (:mod:`ssl_inference.margins`):
        ``Cov = G_beta Cov_2 G_beta'`` (statsmodels' margins covariance, the
        fine-tuning part) ``+`` the pre-training and overlap parts of
        ``f = G_beta beta + G_theta theta``. ``cov_type="bootstrap"``: covariance of
        the replicates' margins; ``"naive"``: statsmodels'.

        Parameters
        ----------
        at : {"overall", "mean", "median", "zero", "all"}
            statsmodels' meaning; "all" has point estimates only.
        method : {"dydx", "eyex", "dyex", "eydx"}
            Derivative, elasticity or semi-elasticities.
        atexog, dummy, count
            Not available for two-stage results (they raise), except with at="all".
        allow_gauge : bool
            Margins that depend on the first stage's gauge (e.g. with respect to one
            principal component of a rotation-mode PCA) get NaN z, p and intervals
            with a ``GaugeDependentWarning``; True reports them in the reported gauge.

        Returns
        -------
        TwoStageMargins
            statsmodels' ``DiscreteMargins`` interface (``margeff``, ``margeff_se``,
            ``margeff_cov``, ``tvalues``, ``pvalues``, ``conf_int()``, ``summary()``,
            ``summary_frame()``) plus ``margeff_se_naive`` and
            ``variance_decomposition()``.

        Raises
        ------
        NotImplementedError
            For ``atexog``, ``dummy=True``, ``count=True``, offsets, exposure and
            GLM weights (statsmodels' margins ignore the latter three).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> rep = ssi.PCA(2).fit(rng.normal(size=(300, 4)) * [3.0, 2.0, 1.0, 0.5])
        >>> X = rng.normal(size=(1000, 4)) * [3.0, 2.0, 1.0, 0.5]
        >>> y = (rng.random(1000) < 1 / (1 + np.exp(-0.3 * X[:, 0]))).astype(float)
        >>> res = ssi.Logit(y, np.ones((1000, 1)), representation=rep, features=X).fit(disp=0)
        >>> me = res.get_margeff()
        >>> bool(np.all(me.margeff_se > me.margeff_se_naive))
        True
        """
        def statsmodels_margeff(cov, **options):
            proxy = copy.copy(self)
            proxy.cov_params_default = cov
            proxy._cache = {}
            return super(TwoStageMarginsMixin, proxy).get_margeff(**options)

        return two_stage_margeff(self, statsmodels_margeff, self._mean_function(), at=at,
                                 method=method, atexog=atexog, dummy=dummy, count=count,
                                 allow_gauge=allow_gauge)


# --------------------------------------------------------------------------- entry point
def two_stage_margeff(results, statsmodels_margeff, mean: MeanFunction, *, at: str = "overall",
                      method: str = "dydx", atexog=None, dummy: bool = False,
                      count: bool = False, allow_gauge: bool = False) -> TwoStageMargins:
    """Marginal effects of a two-stage result with the covariance of its ``cov_type``.

    Parameters
    ----------
    results : two-stage Logit, Probit, Poisson, GLM, negative binomial or generalized
        Poisson results
    statsmodels_margeff : callable
        ``statsmodels_margeff(cov, **options)``: statsmodels' ``get_margeff`` of these
        results with the parameter covariance ``cov``.
    mean : MeanFunction
        The model's inverse link and its derivatives.
    at, method, atexog, dummy, count
        statsmodels' options; see the results' ``get_margeff``.
    allow_gauge : bool
        Report z, p and intervals of gauge-dependent margins in the reported gauge.
    """
    at, method = _check_options(at, method)
    if at == "all":  # statsmodels offers point estimates only: nothing first-stage-blind
        sm = statsmodels_margeff(results.cov_params_naive(), at=at, method=method,
                                 atexog=atexog, dummy=dummy, count=count)
        return TwoStageMargins.from_statsmodels(results, sm, None)
    model = results.model
    _refuse_unsupported(model, atexog=atexog, dummy=dummy, count=count)
    W = np.asarray(model.exog, dtype=float)
    params = np.asarray(results.params, dtype=float)
    b = params[:W.shape[1]]  # the design's coefficients; extra parameters (alpha) follow
    effects = MarginalEffects.for_design(mean, at, method, W)
    sm = statsmodels_margeff(results.cov_params_naive(), at=at, method=method)
    _check_agreement(effects.value(b, W), np.asarray(sm.margeff), at, method)
    dependent = gauge_dependent_margins(model, effects, b, W)
    parts = None
    cov_type = results._spec.cov_type
    if cov_type == "two-stage":
        G_beta = np.zeros((effects.cols.size, params.size))
        G_beta[:, :b.size] = effects.beta_gradient(b, W)
        extra = results._covariance.parts(G_beta, first_stage_gradient(effects, model, b, W))
        parts = VarianceParts(np.asarray(sm.margeff_cov), extra.pretraining, extra.cross)
        cov = parts.total
    elif cov_type in ("bootstrap", "jackknife"):
        cov = results._replicates.covariance(replicate_margins(results, effects))
    elif cov_type == "naive":
        cov = sm.margeff_cov
    else:
        raise NotImplementedError(f"Marginal effects are not implemented for "
                                  f"cov_type={cov_type!r}; refit with cov_type='two-stage' "
                                  "'bootstrap' or 'jackknife'.")
    if not np.all(np.isfinite(cov)):
        raise FloatingPointError(
            f"The covariance of the marginal effects (at={at!r}, method={method!r}) is not "
            "finite: the effects or their derivatives overflow at some rows (fitted means "
            "at the edge of their range, e.g. probabilities that round to 0 or 1). Check "
            "the fit (separation, extreme linear predictors) or use another `at`.")
    if dependent.any() and not allow_gauge:
        names = np.asarray(model.exog_names)[effects.cols][dependent]
        warnings.warn(
            f"The marginal effects of {', '.join(names)} (at={at!r}, method={method!r}) "
            f"depend on the gauge of the first stage, {model.representation.symmetry_.name}: "
            "an equally good first-stage fit moves them, so their z statistics, p-values "
            "and intervals are NaN (blanked in the summary). The other margins are "
            "invariant. Pass allow_gauge=True to test them in the reported gauge.",
            GaugeDependentWarning, stacklevel=3)
    return TwoStageMargins.from_statsmodels(results, sm, cov, parts=parts, dependent=dependent,
                                            allow_gauge=allow_gauge)


def replicate_margins(results, effects: MarginalEffects) -> np.ndarray:
    """Margins of each bootstrap replicate or exact jackknife deletion (reps, r) at the
    labeled rows, whose features move with the replicate's aligned representation."""
    model = results.model
    rows, raw = model._design_rows(), model.features
    draws = results._replicates
    if draws.representations is None:
        raise NotImplementedError(
            "Marginal effects are not available after the one-step jackknife "
            "(cov_kwds={'method': 'one-step'}): it keeps no refitted representation to "
            "move the features with. Refit with the exact jackknife (the default), the "
            "bootstrap, or the analytic cov_type='two-stage'.")
    d = model.feature_design.n_params
    return np.array([effects.value(params[:d],
                                   model.feature_design.build(rows, rep._transform(raw)))
                     for params, rep in zip(draws.params, draws.representations)])


def _check_options(at, method) -> tuple[str, str]:
    at_l, method_l = str(at).lower(), str(method).lower()
    if at_l not in AT_OPTIONS + ("all",):
        raise ValueError(f"at must be one of {AT_OPTIONS + ('all',)}; got {at!r}.")
    if method_l not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    return at_l, method_l


def _refuse_unsupported(model, *, atexog, dummy, count) -> None:
    """Options whose margins (or their first-stage term) this module does not compute."""
    if atexog is not None:
        raise NotImplementedError(
            "atexog is not available for two-stage margins: fixing design columns at "
            "given values mixes covariate values with learned-feature columns that are "
            "functions of theta_hat, and the first-stage term of such a point is not "
            "implemented. Use at='overall', 'mean', 'median' or 'zero', or "
            "res.get_prediction(new_rows) for predictions at chosen raw rows.")
    if dummy or count:
        what = ("dummy=True (0 -> 1 changes of binary columns)" if dummy else
                "count=True (unit changes of count columns)")
        raise NotImplementedError(
            f"{what} is not available for two-stage margins: the first-stage term of "
            "discrete changes is not implemented, and statsmodels' standard errors would "
            "ignore the first stage. Use the default derivative margins (dummy=False, "
            "count=False), or compare predictions with res.get_prediction at the two "
            "values.")
    for name in ("offset", "exposure"):
        if getattr(model, name, None) is not None:
            raise NotImplementedError(
                f"Margins of a model with {name} are not available: statsmodels evaluates "
                f"the effects at w'beta without the {name}, which is not the fitted "
                f"model's mean, and two-stage margins do not reproduce that. Fit without "
                f"{name} (e.g. log-{name} as a covariate) to get margins.")
    for name in ("freq_weights", "var_weights"):
        weights = getattr(model, name, None)
        if weights is not None and np.any(np.asarray(weights) != 1):
            raise NotImplementedError(
                f"Margins of a GLM with {name} are not available: statsmodels averages "
                "the effects over rows without the weights (it only warns), which is not "
                "the weighted population's average effect.")


def _check_agreement(ours: np.ndarray, theirs: np.ndarray, at: str, method: str) -> None:
    """Stop if this module's effects are not statsmodels' (its first-stage term would be
    the derivative of another quantity)."""
    scale = np.abs(theirs).max(initial=0.0)
    if ours.shape != theirs.shape or not np.allclose(ours, theirs, rtol=_AGREEMENT_RTOL,
                                                     atol=_AGREEMENT_RTOL * scale):
        raise RuntimeError(
            f"Internal check failed: the two-stage evaluation of the marginal effects "
            f"(at={at!r}, method={method!r}) differs from statsmodels' point estimates, so "
            "their first-stage term would belong to another quantity. Please report this "
            "with the model and options; cov_type='naive' gives statsmodels' margins.")
