r"""Prediction results with the two-stage delta-method variance (statsmodels' interfaces).

* :class:`PredictionResults`: least squares (``statsmodels.regression``'s class), with
  observation intervals;
* :class:`PredictionResultsBase`: a predicted statistic with its variance (GLM and
  discrete ``which="linear"``);
* :class:`PredictionResultsMonotonic`: the mean ``mu = l^{-1}(eta)`` of a link model
  (``which="mean"``), by the delta method through the inverse link;
* :class:`PredictionResultsMean`: GLM's default (``which=None``), the same numbers under
  statsmodels' backward-compatible names.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["PredictionResults", "PredictionResultsBase", "PredictionResultsMonotonic",
           "PredictionResultsMean"]


class PredictionResultsBase:
    """A predicted statistic with its variance, standard errors and intervals.

    Parameters
    ----------
    predicted : ndarray (n0,) or (n0, r)
        One value per row, or several (e.g. the probability of each outcome).
    var_pred : ndarray, shaped like ``predicted``
        Variance of each estimate, including the first stage when two-stage.
    df : float, optional
        Degrees of freedom for t intervals and tests; None gives normal ones.
    row_labels : index, optional
    column_labels : sequence, optional
        Labels of the r values of each row (two-dimensional predictions).

    Examples
    --------
    >>> pred = PredictionResultsBase(np.array([1.0]), np.array([0.25]))
    >>> pred.conf_int(alpha=0.05).round(3)
    array([[0.02, 1.98]])
    >>> probs = PredictionResultsBase(np.array([[0.2, 0.8]]), np.array([[0.01, 0.01]]),
    ...                               column_labels=["no", "yes"])
    >>> probs.conf_int().shape
    (1, 2, 2)
    >>> frame = probs.summary_frame()
    >>> frame.index.tolist(), frame["ci_lower"].round(3).tolist()
    ([(0, 'no'), (0, 'yes')], [0.004, 0.604])
    """

    def __init__(self, predicted, var_pred, df=None, row_labels=None, column_labels=None):
        self.predicted = np.asarray(predicted)
        self.var_pred = np.asarray(var_pred)
        self.df = df
        self.row_labels = row_labels
        self.column_labels = column_labels
        self.dist = stats.norm if df is None else stats.t
        self.dist_args = () if df is None else (df,)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(self.var_pred)

    @property
    def tvalues(self) -> np.ndarray:
        return self.predicted / self.se

    def t_test(self, value=0, alternative: str = "two-sided"):
        """z- or t-test of ``predicted == value``; returns ``(statistic, pvalue)``.

        ``alternative`` is ``"two-sided"``, ``"larger"`` or ``"smaller"``.
        """
        stat = (self.predicted - value) / self.se
        if alternative == "two-sided":
            return stat, 2 * self.dist.sf(np.abs(stat), *self.dist_args)
        if alternative == "larger":
            return stat, self.dist.sf(stat, *self.dist_args)
        if alternative == "smaller":
            return stat, self.dist.cdf(stat, *self.dist_args)
        raise ValueError(f"alternative must be 'two-sided', 'larger' or 'smaller'; got "
                         f"{alternative!r}.")

    def _interval(self, center, se, alpha: float) -> np.ndarray:
        q = self.dist.ppf(1 - alpha / 2, *self.dist_args)
        return np.stack([center - q * se, center + q * se], axis=-1)

    def conf_int(self, *, alpha: float = 0.05, **kwds) -> np.ndarray:
        """Wald intervals ``predicted -+ q se``: (n0, 2), or (n0, r, 2)."""
        return self._interval(self.predicted, self.se, alpha)

    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """DataFrame with columns predicted, se, ci_lower, ci_upper (as statsmodels).

        Two-dimensional predictions have one row per (row, value), indexed by
        ``(row, level)``.
        """
        ci = self.conf_int(alpha=alpha)
        index = self.row_labels
        if self.predicted.ndim == 2:
            n0, r = self.predicted.shape
            rows = np.arange(n0) if self.row_labels is None else list(self.row_labels)
            levels = range(r) if self.column_labels is None else list(self.column_labels)
            index = pd.MultiIndex.from_product([rows, levels], names=["row", "level"])
        return pd.DataFrame({"predicted": self.predicted.ravel(), "se": self.se.ravel(),
                             "ci_lower": ci[..., 0].ravel(), "ci_upper": ci[..., 1].ravel()},
                            index=index)


class _MeanNames:
    """statsmodels' names for a predicted mean: ``predicted_mean``, ``var_pred_mean``, ``se_mean``."""

    @property
    def predicted_mean(self) -> np.ndarray:
        return self.predicted

    @property
    def var_pred_mean(self) -> np.ndarray:
        return self.var_pred

    @property
    def se_mean(self) -> np.ndarray:
        return self.se


class PredictionResults(_MeanNames, PredictionResultsBase):
    """Predicted means of least squares with standard errors and intervals.

    Parameters
    ----------
    predicted_mean : ndarray (n0,)
    var_pred_mean : ndarray (n0,)
        Variance of the estimated mean, including the first stage when two-stage.
    var_resid : float or ndarray
        Residual variance of a new observation (for observation intervals).
    df : float, optional
        Degrees of freedom for t intervals; None gives normal intervals.
    row_labels : index, optional
    """

    def __init__(self, predicted_mean, var_pred_mean, var_resid, df=None, row_labels=None):
        super().__init__(predicted_mean, var_pred_mean, df=df, row_labels=row_labels)
        self.var_resid = var_resid

    @property
    def se_obs(self) -> np.ndarray:
        return np.sqrt(self.var_pred_mean + self.var_resid)

    def conf_int(self, obs: bool = False, alpha: float = 0.05) -> np.ndarray:
        """Intervals for the mean (``obs=False``) or for a new observation."""
        return self._interval(self.predicted_mean, self.se_obs if obs else self.se_mean, alpha)

    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """DataFrame with columns mean, mean_se, mean_ci_*, obs_ci_* (as statsmodels)."""
        ci_mean = self.conf_int(alpha=alpha)
        ci_obs = self.conf_int(obs=True, alpha=alpha)
        return pd.DataFrame({
            "mean": self.predicted_mean, "mean_se": self.se_mean,
            "mean_ci_lower": ci_mean[:, 0], "mean_ci_upper": ci_mean[:, 1],
            "obs_ci_lower": ci_obs[:, 0], "obs_ci_upper": ci_obs[:, 1],
        }, index=self.row_labels)


class PredictionResultsMonotonic(PredictionResultsBase):
    r"""The mean ``mu = f(eta)`` of a link model, ``f`` the (monotone) inverse link.

    The influence of ``mu_hat(x0)`` is ``f'(eta_0)`` times that of the linear predictor
    ``eta_hat(x0)`` (two-stage: from both samples), so

    .. math:: \operatorname{Var}(\hat\mu_0) = f'(\eta_0)^2 \operatorname{Var}(\hat\eta_0).

    Parameters
    ----------
    linpred : ndarray (n0,)
        Linear predictor ``eta`` (offset and exposure included).
    var_linpred : ndarray (n0,)
        Its variance.
    func, deriv : callable
        Inverse link and its derivative.
    df : float, optional
    row_labels : index, optional

    Examples
    --------
    >>> from scipy.special import expit
    >>> pred = PredictionResultsMonotonic(np.array([0.0]), np.array([0.04]), expit,
    ...                                   lambda e: expit(e) * (1 - expit(e)))
    >>> float(pred.predicted[0]), float(pred.se[0])
    (0.5, 0.05)
    """

    def __init__(self, linpred, var_linpred, func, deriv, df=None, row_labels=None):
        linpred = np.asarray(linpred)
        var_linpred = np.asarray(var_linpred)
        super().__init__(func(linpred), deriv(linpred) ** 2 * var_linpred, df=df,
                         row_labels=row_labels)
        self._eta = self.linpred = linpred
        self.linpred_se = np.sqrt(var_linpred)
        self.func = func
        self.deriv = deriv

    def conf_int(self, method: str = "endpoint", alpha: float = 0.05, **kwds) -> np.ndarray:
        """Intervals for the mean.

        ``"endpoint"`` (default) maps the linear predictor's Wald interval through the
        inverse link (it stays inside the mean's range; sorted, so also right for
        decreasing links); ``"delta"`` is ``predicted -+ q se``.
        """
        if method == "endpoint":
            return np.sort(self.func(self._interval(self._eta, self.linpred_se, alpha)),
                           axis=1)
        if method == "delta":
            return self._interval(self.predicted, self.se, alpha)
        raise ValueError(f"method must be 'endpoint' or 'delta'; got {method!r}.")


class PredictionResultsMean(_MeanNames, PredictionResultsMonotonic):
    """GLM's default prediction result (``which=None``), statsmodels' legacy names.

    The numbers are those of :class:`PredictionResultsMonotonic`; ``linpred`` is the
    linear predictor's own result (a :class:`PredictionResults`) and
    :meth:`summary_frame` has the columns mean, mean_se, mean_ci_lower, mean_ci_upper.

    Parameters
    ----------
    linpred : PredictionResults
        The linear predictor with its variance.
    func, deriv : callable
        Inverse link and its derivative.
    """

    def __init__(self, linpred: PredictionResults, func, deriv):
        super().__init__(linpred.predicted_mean, linpred.var_pred_mean, func, deriv,
                         df=linpred.df, row_labels=linpred.row_labels)
        self.linpred = linpred
        self.var_resid = linpred.var_resid

    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """DataFrame with columns mean, mean_se, mean_ci_lower, mean_ci_upper."""
        ci = self.conf_int(alpha=alpha)
        return pd.DataFrame({"mean": self.predicted_mean, "mean_se": self.se_mean,
                             "mean_ci_lower": ci[:, 0], "mean_ci_upper": ci[:, 1]},
                            index=self.row_labels)
