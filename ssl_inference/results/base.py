"""Two-stage results: statsmodels results whose default covariance includes the first stage."""
from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from functools import cached_property

import numpy as np
import pandas as pd
import statsmodels.base.wrapper as wrap

from ..covariance import CovarianceSpec, TwoStageCovariance, VarianceParts
from ..exceptions import FirstStageBlindError, GaugeDependentWarning
from ..hypotheses import parse_constraints
from ..invariance import (check_invariant, gauge_dependent_columns, gauge_free_terms,
                          invariant_tests_frame, mark_gauge_dependent)
from ..prediction import PredictionResults
from ..resampling import DegenerateReplicates
from ..summary import (covariance_description, extend_summary, extend_summary2,
                       resampling_description)

__all__ = ["TwoStageResultsMixin", "TwoStageResultsWrapperMixin", "WRAP_ATTRS",
           "WRAP_METHODS", "wrap_methods"]

#: What the pandas wrappers of two-stage results add to their statsmodels parents'.
WRAP_ATTRS = {"bse_naive": "columns"}
WRAP_METHODS = {"cov_params_naive": "cov"}


def wrap_methods(parent: type) -> dict:
    """A parent wrapper's methods plus :data:`WRAP_METHODS`, without ``conf_int``
    (:class:`TwoStageResultsWrapperMixin` labels it, also for a subset of ``cols``)."""
    methods = wrap.union_dicts(parent._wrap_methods, WRAP_METHODS)
    methods.pop("conf_int", None)
    return methods


class TwoStageResultsWrapperMixin:
    """Methods the pandas wrappers of two-stage results define themselves."""

    def conf_int(self, alpha: float | None = None, cols=None, *, method: str = "wald"):
        """Confidence intervals, labelled by coefficient names for pandas input.

        See :meth:`TwoStageResultsMixin.conf_int`; ``cols`` selects coefficients by
        position.
        """
        results = object.__getattribute__(self, "_results")
        out = results.model.data.wrap_output(results.conf_int(alpha, method=method),
                                             how="columns")
        if cols is None:
            return out
        return out.iloc[cols] if isinstance(out, pd.DataFrame) else np.asarray(out)[cols]


class TwoStageResultsMixin:
    """Everything a two-stage result adds to its statsmodels parent.

    ``cov_params()`` (and so ``bse``, ``tvalues``, ``pvalues``, ``conf_int``,
    ``t_test``, ``wald_test``, ``summary``) is the two-stage covariance (or the
    bootstrap's or jackknife's) and exactly statsmodels' after
    ``fit(cov_type="naive")``. statsmodels
    methods whose numbers would ignore the first stage either use it too or raise
    :class:`~ssl_inference.exceptions.FirstStageBlindError` (never for "naive" results,
    which are statsmodels' own).
    """

    _wrapper_class: type

    @classmethod
    def from_statsmodels(cls, sm_results, spec: CovarianceSpec,
                         covariance: TwoStageCovariance, use_t: bool | None,
                         replicates=None):
        """Re-class a fitted statsmodels result and install the two-stage covariance
        (or that of the bootstrap or jackknife ``replicates``)."""
        base = getattr(sm_results, "_results", sm_results)
        obj = cls.__new__(cls)
        obj.__dict__.update(base.__dict__)
        obj._cov_naive = np.asarray(base.cov_params())
        obj._spec = spec
        obj._covariance = covariance
        if spec.cov_type == "two-stage":
            obj.cov_params_default = obj._parts.total
            obj.cov_type = spec.label
            obj.cov_kwds = {"description": covariance_description(spec, covariance)}
            obj.use_t = bool(use_t) if use_t is not None else False
        elif replicates is not None:
            obj.cov_params_default = replicates.cov()
            obj.cov_type = spec.label
            obj.cov_kwds = {"description": resampling_description(spec, replicates)}
            obj.use_t = bool(use_t) if use_t is not None else False
            if spec.cov_type == "jackknife":
                obj.df_resid_inference = replicates.df_inference
        obj._replicates = replicates
        obj._cache = {}
        return cls._wrapper_class(obj)

    @cached_property
    def _parts(self) -> VarianceParts:
        return self._covariance.parts()

    # ------------------------------------------------------------- covariance
    def cov_params_naive(self) -> np.ndarray:
        """The covariance plain statsmodels reports (first stage treated as known)."""
        return self._cov_naive

    @property
    def bse_naive(self) -> np.ndarray:
        """Standard errors plain statsmodels reports."""
        return np.sqrt(np.diag(self._cov_naive))

    @property
    def first_stage_jacobian(self) -> np.ndarray:
        """``J = d beta_hat / d theta`` (d x q)."""
        return self._covariance.jacobian

    def variance_decomposition(self) -> pd.DataFrame:
        """Per coefficient: fine-tuning, pre-training and overlap parts of the variance.

        Returns
        -------
        DataFrame
            Columns ``fine_tuning``, ``pretraining``, ``overlap`` (cross term, zero for
            independent samples), ``total`` and the shares ``fine_tuning_share``,
            ``pretraining_share``.
        """
        p = self._parts
        total = np.diag(p.total)
        frame = pd.DataFrame({"fine_tuning": np.diag(p.fine_tuning),
                              "pretraining": np.diag(p.pretraining),
                              "overlap": np.diag(p.cross), "total": total},
                             index=list(self.model.param_names))
        frame["fine_tuning_share"] = frame["fine_tuning"] / total
        frame["pretraining_share"] = frame["pretraining"] / total
        return frame

    def get_robustcov_results(self, cov_type: str = "HC1", use_t: bool | None = None,
                              **kwargs):
        """Refit with another second-stage covariance, keeping this result's cov_type.

        The refit uses the options of the original ``fit`` (optimizer, tolerances,
        ``disp``), so it reaches the same estimates silently; ``use_t`` defaults to
        this result's.

        Parameters
        ----------
        cov_type : str
            Second-stage estimator: "nonrobust", "HC0"-"HC3" or "cluster".
        use_t : bool, optional
        groups : array_like, optional
            Cluster labels of the labeled rows (with ``cov_type="cluster"``).

        Raises
        ------
        ValueError
            For bootstrap and jackknife results, which have no second-stage estimator
            to change.
        """
        kind = self._spec.cov_type
        if kind in ("bootstrap", "jackknife"):
            raise ValueError(
                "get_robustcov_results changes the second-stage estimator (HC0-HC3, "
                f"cluster) of an analytic covariance; {kind} standard errors "
                f"(cov_type={kind!r}) use none, they come from refitting "
                + ("resamples" if kind == "bootstrap" else "the data without each unit")
                + ". For analytic two-stage standard errors refit with "
                f"fit(cov_kwds={{'second_stage': {cov_type!r}}}); for clusters use "
                f"fit(cov_type={kind!r}, cov_kwds={{'groups': ..., 'pretrain_groups': ...}}).")
        groups = kwargs.pop("groups", None)
        if kwargs:
            raise TypeError(f"get_robustcov_results got unexpected keywords {sorted(kwargs)}.")
        cov_kwds = dict(second_stage=cov_type)
        if groups is not None:
            cov_kwds["groups"] = groups
        if self._spec.pretrain_groups is not None and self._spec.cov_type == "two-stage":
            cov_kwds["pretrain_groups"] = self._spec.pretrain_groups
        new = self.model.fit(cov_type=self._spec.cov_type, cov_kwds=cov_kwds,
                             use_t=self.use_t if use_t is None else use_t,
                             **self._fit_kwargs)
        return new._results

    def remove_data(self) -> None:
        """statsmodels' ``remove_data``, plus the data of the two-stage parts.

        Also drops the labeled rows' raw features, the cached design jacobian, the
        formula data frame and the per-row second-stage influences (the covariance
        keeps their sums over the units shared with the pre-training sample).
        ``predict(new)`` and ``get_prediction(new)`` keep working; in-sample
        predictions need the dropped data. The representation is the caller's object
        and keeps ``X_pre``: the first-stage part of new predictions' standard errors
        is streamed from it.
        """
        self._covariance.jacobian  # noqa: B018 - a naive fit's J is computed on first use,
        super().remove_data()      # from the model's data: now, before they are dropped
        self._covariance.second_influence = None

    def get_influence(self, *args, **kwargs):
        """Not available: statsmodels' influence diagnostics hold the features fixed.

        Raises :class:`~ssl_inference.exceptions.FirstStageBlindError` (so does
        ``outlier_test``, which builds on it); after ``fit(cov_type="naive")`` this is
        statsmodels' method.
        """
        if self._spec.cov_type == "naive":
            return super().get_influence(*args, **kwargs)
        raise FirstStageBlindError(
            "get_influence() (and what builds on it, such as outlier_test) computes "
            "leverage, Cook's distances, DFBETAS and studentized residuals of the second "
            "stage with the learned features held fixed: the measures scaled by standard "
            "errors ignore the first stage, the pre-training rows' influence is missing, "
            "and there is no two-stage version. For diagnostics of the second stage given "
            "the features use res.model.fit(cov_type='naive').get_influence() (statsmodels' "
            "own results); variance_decomposition() shows what the first stage adds.")

    # ------------------------------------------- gauge-dependent single-coefficient inference
    @property
    def tvalues(self):
        """z (or t) statistics; NaN for gauge-dependent coefficients (see :meth:`pvalues`)."""
        return self._nan_if_gauge_dependent(super().tvalues)

    @property
    def pvalues(self):
        """Two-sided p-values of ``coef = 0``; NaN for gauge-dependent coefficients.

        A coefficient whose single test the representation's symmetry group does not
        preserve (e.g. one principal component's under rotations) has no gauge-free
        meaning: its t, p and interval are NaN, with one
        :class:`~ssl_inference.exceptions.GaugeDependentWarning` per result. Its joint
        tests are in :meth:`invariant_tests`.

        Examples
        --------
        >>> import warnings
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> scales = np.array([3.0, 2.0, 1.0, 0.5])
        >>> rep = ssi.PCA(2, symmetry="rotation").fit(rng.normal(size=(1000, 4)) * scales)
        >>> X, z = rng.normal(size=(500, 4)) * scales, rng.normal(size=500)
        >>> y = 1 + 0.5 * z + X[:, 0] + rng.normal(size=500)
        >>> exog = np.column_stack([np.ones(500), z])
        >>> res = ssi.OLS(y, exog, representation=rep, features=X).fit()
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     p = res.pvalues
        >>> p.round(4), caught[0].category.__name__
        (array([ 0.,  0., nan, nan]), 'GaugeDependentWarning')
        >>> res.conf_int()[2:]
        array([[nan, nan],
               [nan, nan]])
        """
        return self._nan_if_gauge_dependent(super().pvalues)

    @cached_property
    def _gauge_dependent_columns(self) -> list[int]:
        return gauge_dependent_columns(self)

    def _nan_if_gauge_dependent(self, values: np.ndarray) -> np.ndarray:
        """A copy of ``values`` with NaN in the rows of gauge-dependent coefficients.

        Warns once per result (not while a summary, which explains it, is built).
        """
        cols = self._gauge_dependent_columns
        if not cols:
            return values
        out = np.array(values, dtype=float)
        out[cols] = np.nan
        if not (self.__dict__.get("_gauge_warned") or self.__dict__.get("_summarizing")):
            self._gauge_warned = True
            names = ", ".join(self.model.param_names[c] for c in cols)
            warnings.warn(
                f"t, p and confidence intervals of {names} are NaN: under the "
                f"representation's symmetry group, {self.model.representation.symmetry_.name}, "
                "these single coefficients have no gauge-free meaning (an equally good "
                "first-stage fit moves them), so a test of one of them could be made true or "
                "false. Use res.invariant_tests() for the tests the group allows, or "
                "t_test(..., allow_gauge=True) to test in the reported gauge.",
                GaugeDependentWarning, stacklevel=_stacklevel_outside_libraries())
        return out

    @contextmanager
    def _summary_in_progress(self):
        """The summary blanks and explains gauge-dependent rows itself: no warning."""
        self._summarizing = True
        try:
            yield
        finally:
            del self._summarizing

    # ------------------------------------------------------------- hypotheses
    def _guarded(self, r_matrix, allow_gauge: bool):
        """Parse a hypothesis the patsy way and refuse it unless it is invariant."""
        constraints = parse_constraints(r_matrix, self.model.param_names)
        if getattr(self, "_terms_in_progress", False):
            return constraints, False
        return constraints, check_invariant(self, constraints, allow_gauge)

    def t_test(self, r_matrix, cov_p=None, use_t=None, *, allow_gauge: bool = False):
        """statsmodels' ``t_test`` after a symmetry-invariance check.

        Raises :class:`~ssl_inference.exceptions.NonInvariantHypothesisError` for a
        hypothesis that the representation's symmetry group does not preserve;
        ``allow_gauge=True`` tests it in the reported gauge and marks the result.
        """
        constraints, gauge = self._guarded(r_matrix, allow_gauge)
        out = super().t_test(constraints, cov_p=cov_p, use_t=use_t)
        return mark_gauge_dependent(out, self) if gauge else out

    def f_test(self, r_matrix, cov_p=None, invcov=None, *, allow_gauge: bool = False):
        """statsmodels' ``f_test`` after a symmetry-invariance check (see :meth:`t_test`)."""
        constraints, gauge = self._guarded(r_matrix, allow_gauge)
        self._terms_in_progress = True
        try:
            out = super().f_test(constraints, cov_p=cov_p, invcov=invcov)
        finally:
            del self._terms_in_progress
        return mark_gauge_dependent(out, self) if gauge else out

    def wald_test(self, r_matrix, cov_p=None, invcov=None, use_f=None, df_constraints=None,
                  scalar=True, *, allow_gauge: bool = False):
        """statsmodels' ``wald_test`` after a symmetry-invariance check (see :meth:`t_test`)."""
        constraints, gauge = self._guarded(r_matrix, allow_gauge)
        out = super().wald_test(constraints, cov_p=cov_p, invcov=invcov, use_f=use_f,
                                df_constraints=df_constraints, scalar=scalar)
        return mark_gauge_dependent(out, self) if gauge else out

    def wald_test_terms(self, skip_single=False, extra_constraints=None, combine_terms=None,
                        scalar=True, *, allow_gauge: bool = False):
        """statsmodels' ``wald_test_terms`` with gauge-free terms.

        Learned-feature terms whose single test is not invariant (rotations,
        permutations) are replaced by one joint test of the representation block,
        unless ``allow_gauge=True``. Non-invariant ``extra_constraints`` raise.
        """
        for _, constraint in extra_constraints or []:
            check_invariant(self, constraint, allow_gauge)
        self._terms_in_progress = True
        try:
            out = super().wald_test_terms(skip_single=skip_single,
                                          extra_constraints=extra_constraints,
                                          combine_terms=combine_terms, scalar=scalar)
        finally:
            del self._terms_in_progress
        if allow_gauge:
            return out
        return gauge_free_terms(self, out)

    def invariant_tests(self) -> pd.DataFrame:
        """Wald tests that are meaningful for the representation's symmetry group.

        The representation block jointly zero (always); each component zero (sign
        flips); all component effects equal (label permutations). Columns:
        ``statistic``, ``df``, ``pvalue``, ``distribution``.
        """
        return invariant_tests_frame(self)

    # ------------------------------------------------------------- prediction
    def predict(self, exog=None, transform=True, *args, features=None, **kwargs):
        """Predicted means for new raw data (features computed by the representation).

        As in statsmodels, rows with a missing value (a raw feature, a covariate, a
        formula variable) are predicted as NaN, keeping the new data's index.
        """
        if exog is None and features is None:
            return super().predict(None, transform, *args, **kwargs)
        design, _, _, labels, complete = self.model._prediction_rows(exog, features,
                                                                     transform)
        kwargs = {key: kept_rows(value, complete) for key, value in kwargs.items()}
        pred = np.full(complete.size, np.nan)
        pred[complete] = self.model.predict(self.params, design, *args, **kwargs)
        return pred if labels is None else pd.Series(pred, index=labels)

    def get_prediction(self, exog=None, transform=True, weights=None, row_labels=None, *,
                       features=None):
        r"""Predictions with the full two-stage delta method (THEORY.md §3.4).

        For new raw rows the prediction ``w(x0; theta_hat)' beta_hat`` moves with
        ``theta_hat`` through ``beta_hat`` and the new features, so its influence is
        ``w0' a*_j`` from the labeled rows and ``(w0' J + beta_rep' d phi(x0)/d theta)
        IF(x_i) / m`` from the pre-training rows.

        Rows with missing values are handled as statsmodels does: formula models
        leave them out (the result's row labels are those of the complete rows), array
        models return NaN for them.

        Parameters
        ----------
        exog : DataFrame (formula models) or array (array models), optional
            New rows; None for the estimation sample.
        transform : bool
            Apply the formula to ``exog`` (formula models).
        weights : float or array, optional
            Weights of new observations for observation intervals (WLS).
        row_labels : sequence, optional
            Index of the returned frame.
        features : array_like (n0, p), optional
            Raw features of the new rows (array models only).
        """
        design, var, labels, complete = self._linear_prediction(exog, features, transform)
        mean = design @ np.asarray(self.params)
        in_sample = exog is None and features is None
        if weights is None:
            weights = self.model.weights if in_sample else 1.0
        var_resid = self.scale / kept_rows(np.asarray(weights, dtype=float), complete)
        if row_labels is None:
            row_labels = self.model.data.row_labels if in_sample else labels
        df = getattr(self, "df_resid_inference", self.df_resid) if self.use_t else None
        return PredictionResults(mean, var, var_resid, df=df, row_labels=row_labels)

    def _linear_prediction(self, exog, features, transform):
        """Design rows ``w(x0)``, variances of ``w(x0)' beta_hat``, labels and kept rows.

        The variance follows ``cov_type``: the two-stage delta method on the stacked
        influence (new features move with ``theta_hat``, THEORY.md §3.4), the bootstrap
        replicates, or naive (statsmodels' ``w0' Cov w0``). Rows with missing values:
        formula models leave them out (``complete`` marks the rows kept, None when all
        are), array models keep them as NaN rows, as statsmodels' ``get_prediction``.
        """
        model = self.model
        if exog is None and features is None:
            design, raw, labels, rows = model._new_design(None, None, transform)
            complete = np.ones(design.shape[0], dtype=bool)
        else:
            design, raw, rows, labels, complete = model._prediction_rows(exog, features,
                                                                         transform)
        if design.shape[0] == 0:  # every new row has a missing value
            var = np.zeros(0)
        elif self._spec.cov_type == "two-stage":
            var = self._covariance.parts(design, self._feature_gradient(rows, raw),
                                         diag=True).total
        elif self._replicates is not None:
            var = self._replicate_prediction_variance(design, rows, raw)
        else:
            var = np.einsum("ij,jk,ik->i", design, self._cov_naive, design)
        if complete.all():
            return design, var, labels, None
        if model.feature_columns is not None and transform:  # formula: drop the rows
            return design, var, None if labels is None else labels[complete], complete
        full_design = np.full((complete.size, design.shape[1]), np.nan)
        full_design[complete] = design
        full_var = np.full(complete.size, np.nan)
        full_var[complete] = var
        return full_design, full_var, labels, None

    def _feature_gradient(self, rows, raw) -> np.ndarray:
        """``d (w(x0; theta)' beta_hat) / d theta`` of new rows (n0, q): how each
        prediction moves with the first stage through its own features."""
        model = self.model
        jac = model.feature_design.jacobian(rows, model.representation._transform(raw))
        beta = np.broadcast_to(np.asarray(self.params), (raw.shape[0], len(self.params)))
        return model.representation.feature_vjp(raw, jac.pull(beta), per_row=True)

    def _replicate_prediction_variance(self, design, rows, raw,
                                       chunk: int = 256) -> np.ndarray:
        """Variances of ``w(x0)' beta`` over the replicates, each with its own features.

        Bootstrap and exact jackknife: each replicate's representation gives the new
        rows' features. One-step jackknife: ``w0' beta_(u) + G0 (theta_(u) -
        theta_hat)`` with ``G0`` :meth:`_feature_gradient` (streamed over ``X_pre``,
        ``chunk`` new rows at a time).
        """
        reps = self._replicates
        if reps.representations is not None:
            build = self.model.feature_design.build
            values = np.asarray([build(rows, rep._transform(raw)) @ params for params, rep
                                 in zip(reps.params, reps.representations)])
            return reps.variance(values)
        gradient = self._feature_gradient(rows, raw)
        out = np.empty(design.shape[0])
        for start in range(0, design.shape[0], chunk):
            part = slice(start, start + chunk)
            values = reps.params @ design[part].T + reps.first_stage_shifts(
                self.model.representation, gradient[part])
            out[part] = reps.variance(values)
        return out

    def conf_int(self, alpha: float | None = None, cols=None, *, method: str = "wald"):
        r"""Confidence intervals; percentile and basic intervals for bootstrap results.

        Parameters
        ----------
        alpha : float, optional
            1 - coverage; defaults to 0.05 (or ``cov_kwds["alpha"]`` of a bootstrap fit).
        cols : array_like of int, optional
            Positions of the coefficients to return (statsmodels' meaning); all if None.
        method : {"wald", "percentile", "basic"}
            ``"wald"``: estimate +- quantile x SE from ``cov_params()``.
            ``"percentile"``: the ``alpha/2`` and ``1 - alpha/2`` quantiles ``q`` of the
            kept bootstrap replicates; ``"basic"``: ``2 beta_hat - q`` (reversed), the
            percentile interval reflected around the estimate, which corrects a bias
            of the replicates to first order (``cov_type="bootstrap"`` only).

        Returns
        -------
        ndarray (d, 2) (a DataFrame for pandas input)
            NaN in the rows of gauge-dependent coefficients (see :attr:`pvalues`).
        """
        if alpha is None:
            alpha = self._spec.alpha
        if method == "wald":
            out = self._nan_if_gauge_dependent(super().conf_int(alpha=alpha))
        else:
            out = self._nan_if_gauge_dependent(
                self._replicate_intervals(alpha, method, np.asarray(self.params)))
        return out if cols is None else np.asarray(out)[cols]

    def _replicate_intervals(self, alpha: float, method: str,
                             params: np.ndarray) -> np.ndarray:
        """Percentile or basic intervals (d, 2) of the flat coefficients ``params``
        from the bootstrap replicates, not yet blanked; other methods refused."""
        if method not in ("wald", "percentile", "basic"):
            raise ValueError(f"method must be 'wald', 'percentile' or 'basic'; got "
                             f"{method!r}.")
        if self._spec.cov_type != "bootstrap":
            extra = (" Jackknife deletions are not draws from the sampling distribution "
                     "(their spread is about 1/G of it), so only Wald intervals "
                     "(method='wald') use them." if self._spec.cov_type == "jackknife"
                     else "")
            raise ValueError(f"{method.capitalize()} intervals need bootstrap replicates: "
                             f"fit with cov_type='bootstrap'.{extra}")
        q = np.quantile(self._replicates.params, [alpha / 2, 1 - alpha / 2], axis=0).T
        if method == "basic":
            q = 2 * params[:, None] - q[:, ::-1]
        return q

    def _replicates_of(self, kind: str, name: str):
        if self._spec.cov_type != kind:
            raise AttributeError(f"{name} exists only after fit(cov_type={kind!r}).")
        return self._replicates

    @property
    def bootstrap_params(self) -> np.ndarray:
        """Coefficients of each kept bootstrap replicate (reps - dropped, d);
        ``cov_type="bootstrap"`` only."""
        return self._replicates_of("bootstrap", "bootstrap_params").params

    @property
    def jackknife_params(self) -> np.ndarray:
        """Coefficients without each kept unit (units - dropped, d), one-step
        approximations with ``method="one-step"``; ``cov_type="jackknife"`` only."""
        return self._replicates_of("jackknife", "jackknife_params").params

    @property
    def degenerate_replicates(self) -> DegenerateReplicates:
        """The bootstrap replicates or jackknife deletions dropped as degenerate: their
        number (``.count`` of ``.total``), reasons (``.counts()``), positions and
        coefficients (:class:`~ssl_inference.resampling.DegenerateReplicates`)."""
        if self._replicates is None:
            raise AttributeError("degenerate_replicates exists only after "
                                 "fit(cov_type='bootstrap') or fit(cov_type='jackknife').")
        return self._replicates.degenerate

    def plot_standard_errors(self, ax=None):
        """Naive vs two-stage standard error of every coefficient, with the pre-training
        share of its variance (:func:`ssl_inference.plotting.plot_standard_errors`).

        Returns
        -------
        matplotlib Axes
        """
        from ..plotting import plot_standard_errors
        return plot_standard_errors(self, ax)

    # ---------------------------------------------------------------- summary
    def summary(self, *args, **kwargs):
        """statsmodels' summary plus a first-stage block and an SE-inflation table."""
        with self._summary_in_progress():
            return extend_summary(self, super().summary(*args, **kwargs))

    def summary2(self, *args, **kwargs):
        """statsmodels' summary2 plus the first-stage information and SE inflation."""
        with self._summary_in_progress():
            return extend_summary2(self, super().summary2(*args, **kwargs))


def _stacklevel_outside_libraries() -> int:
    """``stacklevel`` of the first caller outside ssl_inference and statsmodels (and the
    standard-library decorators their attributes go through): the user's line."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in (
            "ssl_inference", "statsmodels", "contextlib", "functools"):
        frame, level = frame.f_back, level + 1
    return level


def kept_rows(value, complete):
    """Rows ``complete`` of a per-row array of new data (offset, exposure, weights);
    scalars, None and the in-sample case (``complete`` None) pass through."""
    if complete is None or value is None or np.ndim(value) == 0 \
            or len(value) != complete.size:
        return value
    return value[complete] if isinstance(value, np.ndarray) else np.asarray(value)[complete]
