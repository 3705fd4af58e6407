"""Two-stage results of quantile regression second stages and their pandas wrapper."""
from __future__ import annotations

import numpy as np
import statsmodels.base.wrapper as wrap
from statsmodels.regression.linear_model import RegressionResultsWrapper
from statsmodels.regression.quantile_regression import QuantRegResults

from ..exceptions import FirstStageBlindError
from ..prediction import PredictionResultsBase
from .base import WRAP_ATTRS, TwoStageResultsMixin, TwoStageResultsWrapperMixin, wrap_methods

__all__ = ["TwoStageQuantRegResults"]

_LEAST_SQUARES = (
    "{name} is a least-squares quantity of statsmodels' RegressionResults (computed from "
    "the quantile regression's residuals as if they were least-squares residuals, with the "
    "learned features treated as known data); it is neither a quantile regression "
    "covariance nor two-stage. Use res.cov_params() / res.bse (two-stage, statsmodels' "
    "vcov={vcov!r} second stage), and res.t_test('...') / res.wald_test('...').")


def _refused(name: str, *, attribute: bool = False):
    """A RegressionResults member that quantile regression results refuse (statsmodels'
    own after ``cov_type="naive"``)."""

    def check(self):
        if self._spec.cov_type != "naive":
            raise FirstStageBlindError(_LEAST_SQUARES.format(name=name,
                                                             vcov=self._spec.second_stage))

    if attribute:
        def get(self):
            check(self)
            return getattr(super(TwoStageQuantRegResults, self), name)
        get.__doc__ = f"statsmodels' ``{name}`` after ``cov_type='naive'``; refused otherwise."
        return property(get)

    def method(self, *args, **kwargs):
        check(self)
        return getattr(super(TwoStageQuantRegResults, self), name)(*args, **kwargs)
    method.__name__ = name
    method.__doc__ = (f"statsmodels' ``{name}`` after ``cov_type='naive'``; raises "
                      ":class:`~ssl_inference.exceptions.FirstStageBlindError` otherwise.")
    return method


class TwoStageQuantRegResults(TwoStageResultsMixin, QuantRegResults):
    """Two-stage results of a quantile regression second stage.

    ``cov_params()``, ``bse``, tests, intervals and ``summary()`` use the two-stage
    covariance of :mod:`ssl_inference.models.quantreg`; ``get_prediction()`` gives the
    fitted conditional quantile with the two-stage delta method. The least-squares
    members of statsmodels' ``RegressionResults`` (``cov_HC0`` ... ``cov_HC3``,
    ``get_robustcov_results``, ``compare_f_test`` / ``compare_lr_test`` /
    ``compare_lm_test``, ``el_test``, ``conf_int_el``, ``get_influence``,
    ``outlier_test``) raise :class:`~ssl_inference.exceptions.FirstStageBlindError`
    unless the fit was ``cov_type="naive"``.
    """

    def summary(self, *args, **kwargs):
        """statsmodels' summary with the two-stage blocks; its "Method: Least Squares"
        line (statsmodels prints it for quantile regression too) reads "Covariance
        Type:" with this fit's covariance, e.g. ``two-stage robust``."""
        smry = super().summary(*args, **kwargs)
        for row in smry.tables[0]:
            for label, value in zip(row, row[1:]):
                if str(label.data).strip() == "Method:" and \
                        str(value.data).strip() == "Least Squares":
                    label.data, value.data = "Covariance Type:", self.cov_type
        return smry

    def get_prediction(self, exog=None, transform=True, row_labels=None, *,
                       features=None) -> PredictionResultsBase:
        r"""The fitted conditional quantile ``w(x0; theta_hat)' beta_hat`` of new rows.

        Its variance is the two-stage delta method (the new features move with
        ``theta_hat``, THEORY.md §3.4). There is no observation interval: the fitted
        quantile is itself the boundary of a one-sided prediction interval, and a
        two-sided one comes from two quantile fits.

        Parameters
        ----------
        exog : DataFrame (formula models) or array (array models), optional
            New rows; None for the estimation sample.
        transform : bool
            Apply the formula to ``exog`` (formula models).
        row_labels : sequence, optional
        features : array_like (n0, p), optional
            Raw features of the new rows (array models only).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> rep = ssi.PCA(2).fit(rng.normal(size=(1000, 4)) * [3.0, 2.0, 1.0, 0.5])
        >>> X = rng.normal(size=(300, 4)) * [3.0, 2.0, 1.0, 0.5]
        >>> y = 1 + X[:, 0] + rng.normal(size=300)
        >>> res = ssi.QuantReg(y, np.ones((300, 1)), representation=rep,
        ...                    features=X).fit(q=0.75)
        >>> list(res.get_prediction(np.ones((2, 1)), features=X[:2]).summary_frame())
        ['predicted', 'se', 'ci_lower', 'ci_upper']
        """
        design, var, labels, complete = self._linear_prediction(exog, features, transform)
        in_sample = exog is None and features is None
        if row_labels is None:
            row_labels = self.model.data.row_labels if in_sample else labels
        df = self.df_resid if self.use_t else None
        return PredictionResultsBase(design @ np.asarray(self.params), var, df=df,
                                     row_labels=row_labels)


for _name in ("cov_HC0", "cov_HC1", "cov_HC2", "cov_HC3"):  # (statsmodels refuses HCx_se)
    setattr(TwoStageQuantRegResults, _name, _refused(_name, attribute=True))
for _name in ("get_robustcov_results", "compare_f_test", "compare_lr_test", "compare_lm_test",
              "el_test", "conf_int_el", "outlier_test"):
    setattr(TwoStageQuantRegResults, _name, _refused(_name))


class TwoStageQuantRegResultsWrapper(TwoStageResultsWrapperMixin, RegressionResultsWrapper):
    _wrap_attrs = wrap.union_dicts(RegressionResultsWrapper._wrap_attrs, WRAP_ATTRS)
    _wrap_methods = wrap_methods(RegressionResultsWrapper)


wrap.populate_wrapper(TwoStageQuantRegResultsWrapper, TwoStageQuantRegResults)
TwoStageQuantRegResults._wrapper_class = TwoStageQuantRegResultsWrapper
