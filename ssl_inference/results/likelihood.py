r"""Two-stage results of the generic likelihood second stages and their pandas wrappers.

Predictions use the full two-stage delta method for any statistic the statsmodels
model predicts (``which``): a prediction ``f(beta_hat, w_0(theta_hat))`` at new raw
rows moves with ``theta_hat`` through ``beta_hat`` and through the new rows' designs,

.. math::

    \nabla_\beta f = \frac{\partial f}{\partial \beta}, \qquad
    \nabla_\theta f = \sum_{\text{slots}} \frac{\partial f}{\partial w_0} D_0
                      \frac{d\phi_0}{d\theta},

both by central differences of statsmodels' ``predict`` (one Richardson step) and the
feature VJP (:func:`~ssl_inference.score_jacobian.feature_gradients`); the variance is
that of the functional ``L_beta beta + L_theta theta``
(:meth:`~ssl_inference.covariance.TwoStageCovariance.parts`). For the mean of a count
model with a log link the variance of the linear predictor is mapped through the
inverse link as statsmodels does (:class:`~ssl_inference.prediction.PredictionResultsMonotonic`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.base.wrapper as wrap
from statsmodels.discrete.count_model import (ZeroInflatedPoissonResults,
                                              ZeroInflatedPoissonResultsWrapper)
from statsmodels.discrete.discrete_model import (GeneralizedPoissonResults,
                                                 GeneralizedPoissonResultsWrapper,
                                                 MultinomialResults, MultinomialResultsWrapper,
                                                 NegativeBinomialResults,
                                                 NegativeBinomialResultsWrapper)
from statsmodels.genmod.families import links
from statsmodels.miscmodels.ordinal_model import OrderedResults, OrderedResultsWrapper

from ..exceptions import FirstStageBlindError
from ..margins import MeanFunction, TwoStageMarginsMixin
from ..prediction import PredictionResultsBase, PredictionResultsMonotonic
from ..score_jacobian import central_derivative, design_derivative, feature_gradients
from .base import (WRAP_ATTRS, TwoStageResultsMixin, TwoStageResultsWrapperMixin,
                   kept_rows, wrap_methods)
from .refusals import DiagnosticRefused, ScoreTestRefused

__all__ = ["TwoStageLikelihoodResultsMixin", "TwoStageNegativeBinomialResults",
           "TwoStageGeneralizedPoissonResults", "TwoStageZeroInflatedPoissonResults",
           "TwoStageMNLogitResults", "TwoStageOrderedResults"]

_EPS = np.finfo(float).eps


class TwoStageLikelihoodResultsMixin(ScoreTestRefused, TwoStageResultsMixin):
    """Two-stage results of a second stage fitted through statsmodels' scores."""

    #: statsmodels' default ``which`` of the model's ``predict``
    _default_which = "mean"
    #: the link of ``which="mean"`` when it is ``l^{-1}`` of ``which="linear"``
    _mean_link = None

    # ------------------------------------------------------------- refusals
    def risk_asymptotics(self):
        """Not available: the test-risk limit theorem is for least squares.

        Raises
        ------
        NotImplementedError
            Always, with the reason.
        """
        raise NotImplementedError(
            "risk_asymptotics() implements the paper's limit theorem for the squared-error "
            "test risk of a least-squares second stage. For likelihood second stages "
            f"({type(self.model).__name__}) the risk is a different loss (deviance, log "
            "loss) and the theorem's terms do not apply. Use get_prediction() for "
            "inference on predictions, or an OLS second stage to study squared-error risk.")

    # ------------------------------------------------------------- prediction
    def predict(self, exog=None, transform=True, *args, features=None, which=None,
                **kwargs):
        """Predictions for new raw data (features computed by the representation).

        ``which`` as in the statsmodels model's ``predict``. As in statsmodels, rows
        with a missing value are predicted as NaN (array models) and keep the new
        data's index; formula models leave them out.
        """
        which = self._default_which if which is None else which
        if exog is None and features is None:
            return super(TwoStageResultsMixin, self).predict(
                None, transform, *args, which=which, **kwargs)
        _, raw, rows, labels, complete = self.model._prediction_rows(exog, features,
                                                                     transform)
        extra = {key: kept_rows(value, complete) for key, value in kwargs.items()
                 if value is not None}
        slots, pred_kwds = self.model._prediction_slots(rows, raw, extra)
        values = self._predict_at(self._flat_params, {slot.name: slot.design
                                                      for slot in slots}, which, pred_kwds)
        out = np.full((complete.size,) + values.shape[1:], np.nan)
        out[complete] = values
        if labels is None:
            return out
        return (pd.Series(out, index=labels) if out.ndim == 1
                else pd.DataFrame(out, index=labels))

    def get_prediction(self, exog=None, transform=True, which=None, row_labels=None,
                       average: bool = False, agg_weights=None, y_values=None, *,
                       features=None, **kwargs) -> PredictionResultsBase:
        """Predictions with the full two-stage delta method (see the module docstring).

        Parameters
        ----------
        exog : DataFrame (formula models) or array (array models), optional
            New rows; None for the estimation sample.
        transform : bool
            Apply the formula to ``exog`` (formula models).
        which : str, optional
            Any statistic the statsmodels model's ``predict`` offers (e.g. "mean",
            "linear", "var", "prob"); the model's default when None.
        row_labels : sequence, optional
        average : bool
            The average of the predictions over the rows, ``mean_i(w_i f_i)`` with
            ``w_i = agg_weights`` (1 when None), as statsmodels averages: e.g. an
            average discrete change with ``agg_weights = 2 * [1, ..., -1, ...]`` over
            stacked counterfactual rows.
        agg_weights : array_like, optional
        y_values : array_like, optional
            Counts for ``which="prob"`` of count models.
        features : array_like (n0, p), optional
            Raw features of the new rows (array models only).
        **kwargs
            ``offset``, ``exposure`` and ``exog_infl`` of the new rows, as the model's
            ``predict`` takes them.

        Returns
        -------
        PredictionResultsBase
            ``predicted``, ``se``, ``conf_int()``, ``summary_frame()``; two-dimensional
            (rows x outcomes) for statistics with several values per row
            (probabilities). The mean of a log-link count model is a
            :class:`~ssl_inference.prediction.PredictionResultsMonotonic`.
        """
        which = self._default_which if which is None else which
        if y_values is not None:
            kwargs["y_values"] = y_values
        if agg_weights is not None and not average:
            raise ValueError("agg_weights are the weights of average=True; pass average=True "
                             "or drop them.")
        if which == "mean" and self._mean_link is not None and not average:
            linear = self.get_prediction(exog, transform, "linear", row_labels,
                                         features=features, **kwargs)
            return PredictionResultsMonotonic(linear.predicted, linear.var_pred,
                                              self._mean_link.inverse,
                                              self._mean_link.inverse_deriv, df=linear.df,
                                              row_labels=linear.row_labels)
        model = self.model
        in_sample = exog is None and features is None
        extra = {key: value for key, value in kwargs.items() if value is not None}
        if in_sample:
            if model.exog is None:
                raise ValueError(
                    "The estimation sample's data were dropped by remove_data(), so "
                    "in-sample predictions are not available; pass the rows to predict "
                    "(exog=..., and features=... for array models).")
            rows, raw, labels, complete = model._design_rows(), model.features, None, None
            slots = model._design_slots()
            pred_kwds = {**model._sample_predict_kwds(), **extra}
        else:
            _, raw, rows, labels, complete = model._prediction_rows(exog, features, transform)
            extra = {key: kept_rows(value, complete) for key, value in extra.items()}
            slots, pred_kwds = model._prediction_slots(rows, raw, extra)
        weights = None
        if average:
            weights = np.broadcast_to(np.asarray(1.0 if agg_weights is None else agg_weights,
                                                 dtype=float), (raw.shape[0],))
        predicted, var = self._prediction_variance(slots, rows, raw, which, pred_kwds,
                                                   weights)
        if average:
            row_labels, complete = None, None
        elif row_labels is None:
            row_labels = model.data.row_labels if in_sample else labels
        if complete is not None and not complete.all():
            if model.feature_columns is not None and transform:  # formula: drop the rows
                row_labels = None if row_labels is None else row_labels[complete]
            else:
                predicted = _with_nan_rows(predicted, complete)
                var = _with_nan_rows(var, complete)
        df = self.df_resid if self.use_t else None
        labels = None
        if predicted.ndim == 2:
            labels = self._column_labels(which, predicted.shape[1], pred_kwds)
        return PredictionResultsBase(predicted, var, df=df, row_labels=row_labels,
                                     column_labels=labels)

    def _column_labels(self, which: str, n_columns: int, pred_kwds: dict):
        """Labels of the values of two-dimensional predictions (outcome levels, counts)."""
        if "y_values" in pred_kwds:
            return list(np.asarray(pred_kwds["y_values"]).ravel())
        return None

    # ------------------------------------------------------------- internals
    @property
    def _flat_params(self) -> np.ndarray:
        return np.asarray(self.params, dtype=float).ravel(order="F")

    def _predict_at(self, params, designs: dict, which: str, pred_kwds: dict) -> np.ndarray:
        """statsmodels' prediction at flat ``params`` and the designs ``{name: (n, d)}``."""
        designs = dict(designs)
        exog = designs.pop("exog")
        out = self.model.predict(self.model._unflat(params), exog, which=which,
                                 **designs, **pred_kwds)
        return np.asarray(out, dtype=float)

    def _prediction_variance(self, slots, rows, raw, which, pred_kwds, weights):
        """Predicted values and the variance of each: two-stage, bootstrap or naive.

        ``weights`` (rows,) average the predictions (``mean_i(w_i f_i)``); None keeps
        one prediction per row.
        """
        params = self._flat_params
        designs = {slot.name: slot.design for slot in slots}
        n0 = raw.shape[0]

        def f(p, d):
            value = self._predict_at(p, d, which, pred_kwds).reshape(n0, -1)
            return value if weights is None else (value * weights[:, None]).mean(
                axis=0, keepdims=True)

        predicted = f(params, designs)
        shape = (predicted.shape[0],) if predicted.shape[1] == 1 else predicted.shape
        if weights is not None:
            shape = shape[1:]
        if n0 == 0:
            return predicted.reshape(shape), np.zeros(shape)
        steps = _EPS ** 0.2 * np.maximum(np.abs(params), 0.1)
        L_beta = np.stack([central_derivative(
            lambda h, a=a: f(params + h * np.eye(params.size)[a], designs), steps[a])
            for a in range(params.size)], axis=-1)                # (rows, r, P)
        L_beta = L_beta.reshape(-1, params.size)
        if self._spec.cov_type == "two-stage":
            dF = design_derivative(lambda d: self._predict_at(params, d, which, pred_kwds)
                                   .reshape(n0, -1), slots)
            G = feature_gradients(self.model.representation, raw, slots, dF)  # (n0, r, q)
            if weights is not None:
                G = (G * weights[:, None, None]).mean(axis=0, keepdims=True)
            var = self._covariance.parts(L_beta, G.reshape(-1, G.shape[-1]),
                                         diag=True).total
        elif self._replicates is not None:
            reps = self._replicates
            if reps.representations is None:
                raise NotImplementedError(
                    "Predictions of this model are not available after the one-step "
                    "jackknife (cov_kwds={'method': 'one-step'}), which keeps no refitted "
                    "representation to move the new rows' features with. Refit with the "
                    "exact jackknife (the default), the bootstrap or cov_type='two-stage'.")
            draws = []
            for p, rep in zip(reps.params, reps.representations):
                moved, _ = self.model._prediction_slots(rows, raw, {}, representation=rep)
                draws.append(f(p, {slot.name: slot.design for slot in moved}).ravel())
            var = reps.variance(np.asarray(draws))
        else:
            var = np.einsum("ij,jk,ik->i", L_beta, self._cov_naive, L_beta)
        return predicted.reshape(shape), var.reshape(shape)


def _with_nan_rows(values: np.ndarray, complete: np.ndarray) -> np.ndarray:
    out = np.full((complete.size,) + values.shape[1:], np.nan)
    out[complete] = values
    return out


class _MarginsRefused:
    """``get_margeff`` refused with a first stage (a multi-outcome model)."""

    def get_margeff(self, *args, **kwargs):
        """Not available with a first stage: statsmodels' marginal-effect covariance holds
        the learned features fixed.

        Raises :class:`~ssl_inference.exceptions.FirstStageBlindError`; after
        ``fit(cov_type="naive")`` this is statsmodels' method. Average discrete
        changes with two-stage standard errors: ``get_prediction`` of stacked
        counterfactual rows with ``average=True`` and ``agg_weights`` +-2.
        """
        if self._spec.cov_type == "naive":
            return super().get_margeff(*args, **kwargs)
        raise FirstStageBlindError(
            f"get_margeff() is not available for two-stage {type(self.model).__name__} "
            "results: statsmodels' marginal effects of each outcome's probability and their "
            "standard errors hold the learned features fixed, and the two-stage version is "
            "implemented for single-index models only (Logit, Probit, Poisson, GLM, "
            "NegativeBinomial, GeneralizedPoisson). For an average discrete change with "
            "two-stage standard errors stack the rows at two covariate values (n rows "
            "each) and use get_prediction(stacked, average=True, "
            "agg_weights=np.r_[np.ones(n), -np.ones(n)] * 2); for statsmodels' margins "
            "given the features use res.model.fit(cov_type='naive').get_margeff().")


class _LogLinkMargins(TwoStageMarginsMixin):
    """Margins of a count model with mean ``exp(w'beta)``, as statsmodels computes them."""

    def _mean_function(self) -> MeanFunction:
        return MeanFunction(np.exp, np.exp, np.exp)


class TwoStageNegativeBinomialResults(_LogLinkMargins, DiagnosticRefused,
                                      TwoStageLikelihoodResultsMixin, NegativeBinomialResults):
    """Two-stage results of a negative binomial second stage."""

    _mean_link = links.Log()


class TwoStageGeneralizedPoissonResults(_LogLinkMargins, DiagnosticRefused,
                                        TwoStageLikelihoodResultsMixin,
                                        GeneralizedPoissonResults):
    """Two-stage results of a generalized Poisson second stage."""

    _mean_link = links.Log()


class TwoStageZeroInflatedPoissonResults(DiagnosticRefused, TwoStageLikelihoodResultsMixin,
                                         ZeroInflatedPoissonResults):
    """Two-stage results of a zero-inflated Poisson second stage."""

    def _predict_at(self, params, designs, which, pred_kwds):
        if self.model.exog is None:
            raise ValueError(
                "statsmodels' ZeroInflatedPoisson.predict reads the model's own exog, which "
                "remove_data() dropped, so predictions are not available after "
                "remove_data() for this model. Predict before removing the data.")
        return super()._predict_at(params, designs, which, pred_kwds)


class TwoStageMNLogitResults(_MarginsRefused, TwoStageLikelihoodResultsMixin,
                             MultinomialResults):
    """Two-stage results of a multinomial logit second stage.

    ``params``, ``bse``, ``tvalues`` and ``pvalues`` are (design columns x equations)
    as in statsmodels; the covariance is over the flat coefficients, equation by
    equation (``model.param_names``).
    """

    def _nan_if_gauge_dependent(self, values):
        """NaN for gauge-dependent coefficients in statsmodels' layouts: (columns,
        equations) for ``tvalues``/``pvalues``, (equations, columns, 2) for intervals."""
        values = np.asarray(values, dtype=float)
        if values.ndim == 2:
            flat = super()._nan_if_gauge_dependent(values.ravel(order="F"))
            return flat.reshape(values.shape, order="F")
        return super()._nan_if_gauge_dependent(values.reshape(-1, 2)).reshape(values.shape)

    def _column_labels(self, which: str, n_columns: int, pred_kwds: dict):
        levels = self.model._ynames_map
        return [levels[i] for i in range(n_columns)] if n_columns == self.model.J else None

    def conf_int(self, alpha: float | None = None, cols=None, *, method: str = "wald"):
        """Confidence intervals, (equations, design columns, 2) as in statsmodels.

        See :meth:`TwoStageResultsMixin.conf_int`. statsmodels' MNLogit intervals
        have no ``cols``: index the returned array instead.
        """
        if cols is not None:
            raise ValueError("MNLogit's conf_int() has no cols (as in statsmodels); index "
                             "the (equations, columns, 2) array it returns instead.")
        if method == "wald":
            return super().conf_int(alpha, cols, method=method)
        alpha = self._spec.alpha if alpha is None else alpha
        flat = self._replicate_intervals(alpha, method, self._flat_params)
        return self._nan_if_gauge_dependent(
            flat.reshape(-1, self.model.feature_design.n_params, 2))


class TwoStageOrderedResults(TwoStageLikelihoodResultsMixin, OrderedResults):
    """Two-stage results of an ordered (logit, probit) second stage."""

    _default_which = "prob"

    def _column_labels(self, which: str, n_columns: int, pred_kwds: dict):
        labels = list(self.model.labels)
        return labels if n_columns == len(labels) else None

    def summary2(self, *args, **kwargs):
        """Not available: statsmodels' ordered-model results have no ``summary2``; use
        :meth:`summary`."""
        raise NotImplementedError("statsmodels' OrderedResults has no summary2(); use "
                                  "summary(), which has the two-stage tables.")

    def bootstrap(self, *args, **kwargs):
        """Not available: statsmodels' bootstrap refits the second stage only.

        Raises :class:`~ssl_inference.exceptions.FirstStageBlindError`; use
        ``fit(cov_type="bootstrap")``, which resamples both samples and refits the
        representation.
        """
        if self._spec.cov_type == "naive":
            return super().bootstrap(*args, **kwargs)
        raise FirstStageBlindError(
            "bootstrap() resamples the labeled rows and refits the second stage with the "
            "learned features held fixed, so its spread misses the first stage. Use "
            "model.fit(cov_type='bootstrap', cov_kwds={'reps': ...}), which resamples "
            "both samples and refits and aligns the representation in each replicate.")


# ---------------------------------------------------------------- wrappers
class TwoStageNegativeBinomialResultsWrapper(TwoStageResultsWrapperMixin,
                                             NegativeBinomialResultsWrapper):
    _wrap_attrs = wrap.union_dicts(NegativeBinomialResultsWrapper._wrap_attrs, WRAP_ATTRS)
    _wrap_methods = wrap_methods(NegativeBinomialResultsWrapper)


class TwoStageGeneralizedPoissonResultsWrapper(TwoStageResultsWrapperMixin,
                                               GeneralizedPoissonResultsWrapper):
    _wrap_attrs = wrap.union_dicts(GeneralizedPoissonResultsWrapper._wrap_attrs, WRAP_ATTRS)
    _wrap_methods = wrap_methods(GeneralizedPoissonResultsWrapper)


class TwoStageZeroInflatedPoissonResultsWrapper(TwoStageResultsWrapperMixin,
                                                ZeroInflatedPoissonResultsWrapper):
    _wrap_attrs = wrap.union_dicts(ZeroInflatedPoissonResultsWrapper._wrap_attrs, WRAP_ATTRS)
    _wrap_methods = wrap_methods(ZeroInflatedPoissonResultsWrapper)


class TwoStageOrderedResultsWrapper(TwoStageResultsWrapperMixin, OrderedResultsWrapper):
    _wrap_attrs = wrap.union_dicts(OrderedResultsWrapper._wrap_attrs, WRAP_ATTRS)
    _wrap_methods = wrap_methods(OrderedResultsWrapper)


class TwoStageMNLogitResultsWrapper(MultinomialResultsWrapper):
    """MNLogit's wrapper: statsmodels' multivariate labels, plus the naive covariance."""

    _wrap_attrs = wrap.union_dicts(MultinomialResultsWrapper._wrap_attrs, WRAP_ATTRS)
    _wrap_methods = wrap.union_dicts(MultinomialResultsWrapper._wrap_methods,
                                     {"cov_params_naive": "cov"})

    def conf_int(self, alpha: float | None = None, cols=None, *, method: str = "wald"):
        """Confidence intervals with statsmodels' multivariate labels for pandas input."""
        results = object.__getattribute__(self, "_results")
        return results.model.data.wrap_output(results.conf_int(alpha, cols, method=method),
                                              how="multivariate_confint")


for _wrapper, _results in [
        (TwoStageNegativeBinomialResultsWrapper, TwoStageNegativeBinomialResults),
        (TwoStageGeneralizedPoissonResultsWrapper, TwoStageGeneralizedPoissonResults),
        (TwoStageZeroInflatedPoissonResultsWrapper, TwoStageZeroInflatedPoissonResults),
        (TwoStageMNLogitResultsWrapper, TwoStageMNLogitResults),
        (TwoStageOrderedResultsWrapper, TwoStageOrderedResults)]:
    wrap.populate_wrapper(_wrapper, _results)
    _results._wrapper_class = _wrapper
