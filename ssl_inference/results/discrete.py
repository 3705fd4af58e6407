"""Two-stage results of discrete second stages (Logit, Probit, Poisson) and their wrappers."""
from __future__ import annotations

import numpy as np
import statsmodels.base.wrapper as wrap
from statsmodels.discrete.discrete_model import (BinaryResultsWrapper, LogitResults,
                                                 PoissonResults, PoissonResultsWrapper,
                                                 ProbitResults)

from ..margins import MeanFunction
from ..prediction import PredictionResultsBase
from .base import WRAP_ATTRS, TwoStageResultsWrapperMixin, wrap_methods
from .glm import TwoStageLinkResultsMixin
from .refusals import DiagnosticRefused

__all__ = ["TwoStageLogitResults", "TwoStageProbitResults", "TwoStagePoissonResults"]


class _TwoStageDiscreteMixin(TwoStageLinkResultsMixin):
    def get_prediction(self, exog=None, transform=True, which: str = "mean", row_labels=None,
                       average: bool = False, agg_weights=None, y_values=None, *,
                       features=None, **kwargs) -> PredictionResultsBase:
        """Predictions for new raw rows with the two-stage delta method.

        Parameters
        ----------
        exog : DataFrame (formula models) or array (array models), optional
            New rows; None for the estimation sample.
        transform : bool
            Apply the formula to ``exog`` (formula models).
        which : {"mean", "linear"}
            The mean (probability or rate; delta method through the inverse link) or
            the linear predictor.
        row_labels : sequence, optional
        average, agg_weights, y_values
            Not available for two-stage results (they raise).
        features : array_like (n0, p), optional
            Raw features of the new rows (array models only).
        **kwargs
            ``offset`` (and ``exposure`` for Poisson) of the new rows.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> rep = ssi.PCA(2).fit(rng.normal(size=(1000, 4)) * [3.0, 2.0, 1.0, 0.5])
        >>> X = rng.normal(size=(400, 4)) * [3.0, 2.0, 1.0, 0.5]
        >>> y = (rng.random(400) < 1 / (1 + np.exp(-0.3 * X[:, 0]))).astype(float)
        >>> res = ssi.Logit(y, np.ones((400, 1)), representation=rep, features=X).fit(disp=0)
        >>> pred = res.get_prediction(np.ones((1, 1)), features=X[:1])
        >>> bool(0 < pred.predicted[0] < 1 and pred.se[0] > 0)
        True
        """
        if y_values is not None:
            raise ValueError("y_values goes with which='prob', which two-stage results do "
                             "not offer; use which='mean' or 'linear'.")
        return self._link_prediction(exog, features, transform, which, row_labels,
                                     average or agg_weights is not None, kwargs)


class _TwoStageBinaryMixin(_TwoStageDiscreteMixin):
    def _mean_function(self) -> MeanFunction:
        """statsmodels' ``cdf`` and ``pdf`` (what its margins use) and the second
        derivative of its link's inverse."""
        model = self.model
        return MeanFunction(model.cdf, model.pdf, MeanFunction.from_link(model.link).deriv2)


class TwoStageLogitResults(_TwoStageBinaryMixin, LogitResults):
    """Two-stage results of a Logit second stage."""


class TwoStageProbitResults(_TwoStageBinaryMixin, ProbitResults):
    """Two-stage results of a Probit second stage."""


class TwoStagePoissonResults(DiagnosticRefused, _TwoStageDiscreteMixin, PoissonResults):
    """Two-stage results of a Poisson second stage."""

    def _mean_function(self) -> MeanFunction:
        """``exp`` and its derivatives (statsmodels' Poisson margins)."""
        return MeanFunction(np.exp, np.exp, np.exp)


class TwoStageBinaryResultsWrapper(TwoStageResultsWrapperMixin, BinaryResultsWrapper):
    _wrap_attrs = wrap.union_dicts(BinaryResultsWrapper._wrap_attrs, WRAP_ATTRS)
    _wrap_methods = wrap_methods(BinaryResultsWrapper)


class TwoStagePoissonResultsWrapper(TwoStageResultsWrapperMixin, PoissonResultsWrapper):
    _wrap_attrs = wrap.union_dicts(PoissonResultsWrapper._wrap_attrs, WRAP_ATTRS)
    _wrap_methods = wrap_methods(PoissonResultsWrapper)


wrap.populate_wrapper(TwoStageBinaryResultsWrapper, TwoStageLogitResults)
wrap.populate_wrapper(TwoStagePoissonResultsWrapper, TwoStagePoissonResults)
TwoStageLogitResults._wrapper_class = TwoStageBinaryResultsWrapper
TwoStageProbitResults._wrapper_class = TwoStageBinaryResultsWrapper
TwoStagePoissonResults._wrapper_class = TwoStagePoissonResultsWrapper
