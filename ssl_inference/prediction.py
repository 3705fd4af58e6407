"""Prediction results with the two-stage delta-method variance."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["PredictionResults"]


class PredictionResults:
    """Predicted means with standard errors and intervals (statsmodels' interface).

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
        self.predicted_mean = np.asarray(predicted_mean)
        self.var_pred_mean = np.asarray(var_pred_mean)
        self.var_resid = var_resid
        self.df = df
        self.row_labels = row_labels
        self.dist = stats.norm if df is None else stats.t
        self.dist_args = () if df is None else (df,)

    @property
    def predicted(self) -> np.ndarray:
        """Alias of ``predicted_mean``."""
        return self.predicted_mean

    @property
    def se_mean(self) -> np.ndarray:
        return np.sqrt(self.var_pred_mean)

    @property
    def se_obs(self) -> np.ndarray:
        return np.sqrt(self.var_pred_mean + self.var_resid)

    def conf_int(self, obs: bool = False, alpha: float = 0.05) -> np.ndarray:
        """Intervals for the mean (``obs=False``) or for a new observation."""
        se = self.se_obs if obs else self.se_mean
        q = self.dist.ppf(1 - alpha / 2, *self.dist_args)
        return np.column_stack([self.predicted_mean - q * se, self.predicted_mean + q * se])

    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """DataFrame with columns mean, mean_se, mean_ci_*, obs_ci_* (as statsmodels)."""
        ci_mean = self.conf_int(alpha=alpha)
        ci_obs = self.conf_int(obs=True, alpha=alpha)
        return pd.DataFrame({
            "mean": self.predicted_mean, "mean_se": self.se_mean,
            "mean_ci_lower": ci_mean[:, 0], "mean_ci_upper": ci_mean[:, 1],
            "obs_ci_lower": ci_obs[:, 0], "obs_ci_upper": ci_obs[:, 1],
        }, index=self.row_labels)
