"""Two-stage results of GLM second stages, the link-scale prediction they share with the
discrete models, and their pandas wrappers."""
from __future__ import annotations

import numpy as np
import statsmodels.base.wrapper as wrap
from statsmodels.genmod.generalized_linear_model import GLMResults, GLMResultsWrapper

from ..margins import MeanFunction, TwoStageMarginsMixin
from ..prediction import (PredictionResults, PredictionResultsBase, PredictionResultsMean,
                          PredictionResultsMonotonic)
from .base import (WRAP_ATTRS, TwoStageResultsMixin, TwoStageResultsWrapperMixin,
                   kept_rows, wrap_methods)
from .refusals import ScoreTestRefused

__all__ = ["TwoStageGLMResults", "TwoStageLinkResultsMixin"]


class TwoStageLinkResultsMixin(ScoreTestRefused, TwoStageMarginsMixin, TwoStageResultsMixin):
    """Two-stage results of a model with a link: ``E(y | w) = l^{-1}(w'beta + offset)``."""

    def risk_asymptotics(self, *, fine_tuning: str = "model",
                         average_label_noise: bool = False):
        r"""Plug-in limiting law of the downstream deviance risk (beyond the paper).

        ``R`` is the expected unit deviance of the fitted pipeline on a new draw (for
        binomial and Poisson twice the expected log loss, up to a constant), ``R*``
        that of the population optimum; with the mean correctly specified,

        .. math::

            n (R - R^*) \to \sum_j \lambda_j \chi^2_1
            + \alpha^{-1} \sum_j \kappa_j \chi^2_1,

        a fine-tuning part (``lambda_j = phi``, the dispersion, ``d_eff`` times; or
        the sandwich estimate) and an independent pre-training part (``kappa`` as for
        least squares, in the norm weighted by the GLM working weights). See
        :func:`ssl_inference.risk.deviance_risk_asymptotics`.

        Parameters
        ----------
        fine_tuning : {"model", "robust"}
            ``"model"``: ``lambda_j = phi_hat`` (right when the variance function
            is); ``"robust"``: sandwich ``eig(H^{-1} S) / 2`` from the labeled rows.
        average_label_noise : bool
            True: the risk averaged over the labels given the inputs (the paper's
            least-squares convention; the fine-tuning part becomes its mean).

        Returns
        -------
        ssl_inference.risk.RiskAsymptotics
            ``mean``, ``var``, ``quantile``, ``cdf``, ``decomposition()``,
            ``crossover_alpha()``, ``pretrain_size_for()``, ``plot()``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> scales = np.array([3.0, 2.0, 1.0, 0.5])
        >>> rep = ssi.PCA(2).fit(rng.normal(size=(1000, 4)) * scales)
        >>> X = rng.normal(size=(500, 4)) * scales
        >>> y = rng.poisson(np.exp(0.3 + 0.2 * X[:, 0] - 0.2 * X[:, 1]))
        >>> ra = ssi.Poisson(y, np.ones((500, 1)), representation=rep, features=X).fit(
        ...     disp=0).risk_asymptotics()
        >>> ra.loss, ra.d_eff, ra.d_base, ra.fine_tuning_law.mean
        ('Poisson deviance', 3, 5, 3.0)
        """
        from ..risk import deviance_risk_asymptotics
        return deviance_risk_asymptotics(self, fine_tuning=fine_tuning,
                                         average_label_noise=average_label_noise)

    @property
    def _link(self):
        """The link function (statsmodels' lookup: the model's, else its family's)."""
        link = getattr(self.model, "link", None)
        return self.model.family.link if link is None else link

    def _mean_function(self) -> MeanFunction:
        """The inverse link and its derivatives, as statsmodels' margins evaluate them."""
        return MeanFunction.from_link(self._link)

    def _link_prediction(self, exog, features, transform, which, row_labels, average,
                         pred_kwds: dict) -> PredictionResultsBase:
        r"""Linear predictor or mean of new raw rows with the two-stage delta method.

        ``eta_0 = w(x0; theta_hat)' beta_hat + offset_0`` has the variance of
        :meth:`_linear_prediction` (it moves with ``theta_hat`` through ``beta_hat``
        and the new features); ``mu_0 = l^{-1}(eta_0)`` adds the factor
        ``(d l^{-1} / d eta)^2`` (:class:`~ssl_inference.prediction.PredictionResultsMonotonic`).
        """
        if which not in (None, "mean", "linear"):
            raise ValueError(f"which must be 'mean' or 'linear' for two-stage results; got "
                             f"{which!r}.")
        if average:
            raise NotImplementedError(
                "average=True is not available for two-stage results; predict the rows and "
                "combine them with a contrast (res.t_test) or average the linear predictor "
                "design yourself.")
        design, var, labels, complete = self._linear_prediction(exog, features, transform)
        in_sample = exog is None and features is None
        extra = {key: kept_rows(value, complete) for key, value in pred_kwds.items()
                 if value is not None}
        eta = self.model.predict(np.asarray(self.params), None if in_sample else design,
                                 which="linear", **extra)
        if row_labels is None:
            row_labels = self.model.data.row_labels if in_sample else labels
        df = getattr(self, "df_resid_inference", self.df_resid) if self.use_t else None
        link = self._link
        if which == "linear":
            return PredictionResultsBase(eta, var, df=df, row_labels=row_labels)
        if which == "mean":
            return PredictionResultsMonotonic(eta, var, link.inverse, link.inverse_deriv,
                                              df=df, row_labels=row_labels)
        return PredictionResultsMean(
            PredictionResults(eta, var, self.scale, df=df, row_labels=row_labels),
            link.inverse, link.inverse_deriv)


class TwoStageGLMResults(TwoStageLinkResultsMixin, GLMResults):
    """Two-stage results of a GLM second stage."""

    def get_prediction(self, exog=None, exposure=None, offset=None, transform=True,
                       which: str | None = None, average: bool = False, agg_weights=None,
                       row_labels=None, *, features=None) -> PredictionResultsBase:
        """Predictions for new raw rows with the two-stage delta method.

        Parameters
        ----------
        exog : DataFrame (formula models) or array (array models), optional
            New rows; None for the estimation sample.
        exposure, offset : array_like, optional
            Of the new rows (statsmodels' meaning; the model's own in-sample).
        transform : bool
            Apply the formula to ``exog`` (formula models).
        which : {None, "mean", "linear"}
            None (statsmodels' GLM default): the mean, with statsmodels' legacy result
            (``predicted_mean``, ``se_mean``, ``summary_frame`` columns ``mean...``).
            "mean" / "linear": the mean or the linear predictor, generic result.
        average, agg_weights
            Not available for two-stage results (``average=True`` raises).
        row_labels : sequence, optional
        features : array_like (n0, p), optional
            Raw features of the new rows (array models only).

        Examples
        --------
        >>> import numpy as np, statsmodels.api as sm, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> rep = ssi.PCA(2).fit(rng.normal(size=(1000, 4)) * [3.0, 2.0, 1.0, 0.5])
        >>> X = rng.normal(size=(300, 4)) * [3.0, 2.0, 1.0, 0.5]
        >>> y = rng.poisson(np.exp(0.5 + 0.2 * X[:, 0]))
        >>> res = ssi.GLM(y, np.ones((300, 1)), family=sm.families.Poisson(),
        ...               representation=rep, features=X).fit()
        >>> pred = res.get_prediction(np.ones((2, 1)), features=X[:2], which="mean")
        >>> list(pred.summary_frame().columns)
        ['predicted', 'se', 'ci_lower', 'ci_upper']
        """
        return self._link_prediction(exog, features, transform, which, row_labels,
                                     average or agg_weights is not None,
                                     {"offset": offset, "exposure": exposure})


class TwoStageGLMResultsWrapper(TwoStageResultsWrapperMixin, GLMResultsWrapper):
    _wrap_attrs = wrap.union_dicts(GLMResultsWrapper._wrap_attrs, WRAP_ATTRS)
    _wrap_methods = wrap_methods(GLMResultsWrapper)


wrap.populate_wrapper(TwoStageGLMResultsWrapper, TwoStageGLMResults)
TwoStageGLMResults._wrapper_class = TwoStageGLMResultsWrapper
