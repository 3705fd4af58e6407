"""The shared two-stage model mixin: attach a representation, fit, linearise.

A model built without a representation behaves exactly like its statsmodels parent
(statsmodels re-instantiates models internally, e.g. for ``llnull``); with one, the
learned features are appended to the design and ``fit`` returns a two-stage result.
"""
from __future__ import annotations

import textwrap
import warnings

import numpy as np
import pandas as pd
from statsmodels.formula.formulatools import advance_eval_env

from .._validation import as_float_matrix
from ..bootstrap import two_sample_bootstrap
from ..covariance import (COV_OPTIONS_DOC, CovarianceSpec, TwoStageCovariance,
                          labeled_influence_weights)
from ..design import AppendedFeatures, FormulaFeatures
from ..equations import Equation
from ..exceptions import FirstStageBlindError, GaugeDependentDesignError
from .._formula import formula_variables, mentioned_names
from ..jacobian import coefficient_jacobian
from ..jackknife import two_stage_jackknife
from ._inputs import (align_rows, align_series, check_cluster_labels, check_pretrain_index,
                      check_representation, drop_missing_rows, row_index, subset_rows)

TWO_STAGE_DOC = """
    representation : Representation, optional
        A fitted first stage (e.g. ``ssi.PCA(3).fit(X_pre)``). Its features are
        appended to the design as the last columns. Without it the model is the plain
        statsmodels model.
    features : array_like (n, p), or list of str with formulas
        Raw inputs of the labeled rows that the representation maps to features; with
        ``from_formula``, the names of those columns in ``data``.
    pretrain_index : array_like of int (n,), optional
        Overlap: for each labeled row its row number in ``X_pre`` (0-based position),
        or -1 when it is not a pre-training row. Omit for independent samples. A
        pandas Series is aligned on the index of the data (``data`` with formulas,
        else ``endog``/``exog``), not used by position.
"""


def two_stage_docstring(parent: type, examples: str, *, until: str = "Attributes") -> str:
    """The parent's parameter documentation (up to its section ``until``), the two-stage
    parameters, then ``examples``."""
    return parent.__doc__.split(until)[0].rstrip() + "\n" + TWO_STAGE_DOC + examples


#: GLM and discrete second stages: what statsmodels computes there, and why not labeled
LIKELIHOOD_UNSUPPORTED = {
    **{name: ("statsmodels computes HC0 for GLM and discrete models whatever HC number is "
              "named (its HC1-HC3 corrections are defined for least squares), so a "
              f"'two-stage {name}' label would be wrong. Use 'HC0' (the same numbers, "
              "labeled honestly) or 'cluster'; cov_type='naive' keeps statsmodels' own "
              "behaviour.") for name in ("HC1", "HC2", "HC3")},
    "HAC": ("the two-stage HAC covariance is implemented for OLS/WLS second stages. Use "
            "'cluster' with blocks of consecutive rows as clusters, or an OLS/WLS second "
            "stage."),
}
#: what statsmodels computes for GLM and discrete models when asked for HC1-HC3
LIKELIHOOD_COMPUTED = {"HC1": "HC0", "HC2": "HC0", "HC3": "HC0"}


_COV_PLACEHOLDER = "{cov_options}"


def document_cov_options(method):
    """Put the shared ``cov_type`` / ``cov_kwds`` documentation
    (:data:`~ssl_inference.covariance.COV_OPTIONS_DOC`) where ``method``'s docstring
    has a line ``{cov_options}``, at that line's indentation: one text for every
    two-stage ``fit``."""
    if method.__doc__ is None:  # python -OO
        return method
    lines = method.__doc__.splitlines(keepends=True)
    (row,) = [i for i, line in enumerate(lines) if line.strip() == _COV_PLACEHOLDER]
    indent = lines[row][:len(lines[row]) - len(lines[row].lstrip())]
    lines[row] = textwrap.indent(COV_OPTIONS_DOC, indent)
    method.__doc__ = "".join(lines)
    return method


# statsmodels' (FutureWarning) message for optimizer options that a method does not use
_UNUSED_OPTIMIZER_KWARGS = "Keyword arguments have been passed to the optimizer"


def _reject_orphans(features, pretrain_index) -> None:
    if features is not None or pretrain_index is not None:
        raise TypeError(
            "features= and pretrain_index= describe the first stage and need "
            "representation= (a fitted representation)."
        )


def statsmodels_cov_arguments(cov_type: str, cov_kwds: dict | None, use_t: bool | None) -> dict:
    """``fit`` keywords selecting statsmodels' covariance.

    ``cov_kwds`` is left out when None: discrete models hand a ``cov_kwds=None`` to
    the optimizer, which warns that it has no effect.
    """
    out = {"cov_type": cov_type, "use_t": use_t}
    if cov_kwds is not None:
        out["cov_kwds"] = cov_kwds
    return out


class TwoStageModelMixin:
    """Mixin for statsmodels models whose design contains learned features.

    Subclasses provide ``_loss_derivatives(results)`` returning ``(g, g_prime,
    hessian_inv)`` of their row loss (see :func:`ssl_inference.jacobian.coefficient_jacobian`)
    and ``_results_class``, a two-stage results class with ``from_statsmodels``.
    """

    representation = None
    features = None
    feature_columns = None
    pretrain_index = None

    # ------------------------------------------------------------ construction
    def _init_two_stage(self, endog, exog, *, representation, features, pretrain_index,
                        missing: str = "none", rowwise: dict | None = None,
                        **kwargs) -> None:
        """Run the statsmodels ``__init__``, first appending the learned features.

        ``rowwise`` holds the parent's row-aligned keyword arrays (weights, offset,
        exposure, ...): ``missing="drop"`` removes the same rows from them as from the
        outcome, covariates and features. Without a representation this is exactly
        the parent's ``__init__``.
        """
        parent_init = super(TwoStageModelMixin, self).__init__
        rowwise = dict(rowwise or {})
        if representation is None:
            _reject_orphans(features, pretrain_index)
            parent_init(endog, exog, missing=missing, **rowwise, **kwargs)
            return
        endog, exog, rowwise, state = self._array_inputs(
            endog, exog, representation, features, pretrain_index, missing, rowwise)
        parent_init(endog, exog, missing=missing, **rowwise, **kwargs)
        self._attach_two_stage(**state)

    def _array_inputs(self, endog, exog, representation, features, pretrain_index,
                      missing, rowwise: dict):
        """Validate array inputs, drop missing rows, append features to ``exog``."""
        rep = check_representation(representation)
        if features is None:
            raise ValueError("representation= needs features=: the raw inputs (n, p) of the "
                             "labeled rows.")
        raw = rep._validate_rows(features, "features", allow_nan=(missing == "drop"))
        n_input = raw.shape[0]
        if exog is None or len(exog) != n_input or len(endog) != n_input:
            raise ValueError(
                f"features has {n_input} rows but endog/exog have "
                f"{len(endog)}/{'no' if exog is None else len(exog)} rows; pass exog "
                "(e.g. a constant column) and one row of features per labeled row."
            )
        pidx = None if pretrain_index is None else check_pretrain_index(
            align_series(pretrain_index, "pretrain_index", row_index(endog, exog),
                         "endog/exog"), n_input, rep.nobs_)
        endog, exog, raw, rowwise, positions = drop_missing_rows(missing, endog, exog, raw,
                                                                 rowwise)
        names = list(rep.get_feature_names_out())
        phi = rep._transform(raw)
        exog_names = None
        if isinstance(exog, pd.DataFrame):
            clash = sorted(set(names) & set(map(str, exog.columns)))
            if clash:
                raise ValueError(f"exog already has columns {clash}; give the representation "
                                 "another feature_prefix.")
            exog = pd.concat([exog, pd.DataFrame(phi, index=exog.index, columns=names)], axis=1)
        else:
            exog_arr = np.asarray(exog, dtype=float).reshape(len(exog), -1)
            exog = np.column_stack([exog_arr, phi])
            # statsmodels would name the unnamed design by the variances of all its
            # columns (a pass over the whole design); the covariate block decides
            exog_names = _default_exog_names(exog_arr)
        state = dict(representation=rep, raw=raw, positions=positions, n_input=n_input,
                     pretrain_index=None if pidx is None else pidx[positions],
                     exog_names=exog_names)
        return endog, exog, rowwise, state

    def _attach_two_stage(self, *, representation, raw, positions, n_input, pretrain_index,
                          feature_columns=None, design=None, allow_gauge=False,
                          exog_names=None) -> None:
        """Attach the first stage; ``design`` maps features to the design (formulas);
        ``exog_names`` names an unnamed covariate block of an array model."""
        names = list(representation.get_feature_names_out())
        if design is None:  # array input: the features are the last columns
            k = len(names)
            columns = self._design_name_positions()
            if exog_names is not None and np.array_equal(columns,
                                                         np.arange(np.shape(self.exog)[1])):
                self.data.xnames = exog_names + names
            xnames = list(self.exog_names)  # statsmodels recomputes them at every access
            if not set(names) <= set(xnames):
                # statsmodels named the appended feature columns x1, x2, ...
                for column, name in zip(columns[-k:], names):
                    xnames[column] = name
                self.data.xnames = xnames
            design = AppendedFeatures(n_base=columns.size - k, n_features=k)
        self.representation = representation
        self.features = raw
        self.feature_columns = feature_columns
        self.feature_names = names
        self.feature_design = design
        self.rep_cols = design.plain_cols[design.plain_cols >= 0]
        self.pretrain_index = pretrain_index
        self._row_positions = positions
        self._n_input_rows = n_input
        self.allow_gauge = bool(allow_gauge)
        self._sample_jacobian = None
        # what results.remove_data() drops besides statsmodels' arrays: the labeled rows'
        # raw features, the design jacobian cached for them and the formula data frame
        self._data_attr = list(self._data_attr) + ["features", "_sample_jacobian",
                                                   "data.frame"]
        jacobian = self.design_jacobian()  # refuses non-differentiable terms first
        try:
            self.coefficient_action = design.coefficient_action(
                representation.symmetry_, self._design_rows(), self._sample_features(),
                np.asarray(self.exog, dtype=float), jacobian)
        except GaugeDependentDesignError:
            if not allow_gauge:
                raise
            self.coefficient_action = None

    def _design_name_positions(self) -> np.ndarray:
        """Positions in ``exog_names`` of the design's columns.

        All of them here; models that also name other parameters there (inflation
        coefficients before the design's) override.
        """
        return np.arange(np.shape(self.exog)[1])

    @property
    def param_names(self) -> list[str]:
        """Names of the flat coefficient vector, as hypothesis strings spell them."""
        return list(self.exog_names)

    @property
    def equations(self) -> tuple[Equation, ...]:
        """Where the learned features enter the coefficients (:mod:`ssl_inference.equations`)."""
        return (Equation("", np.arange(self.feature_design.n_params), self.feature_design),)

    def _design_rows(self, index=None):
        """What the design needs besides the features, for the sample's rows ``index``."""
        if isinstance(self.feature_design, AppendedFeatures):
            base = np.asarray(self.exog, dtype=float)[:, :-len(self.feature_names)]
            return base if index is None else base[index]
        frame, labels = self.data.frame, self.data.row_labels
        if not (len(labels) == len(frame) and frame.index.equals(labels)):
            frame = frame.loc[labels]  # rows dropped (missing values)
        return frame if index is None else frame.iloc[index]

    def _sample_features(self) -> np.ndarray:
        """Learned features of the sample's rows at ``theta_hat``, (n, k)."""
        return np.asarray(self.exog, dtype=float)[:, self.rep_cols] \
            if self.feature_design.is_selector else self.representation._transform(self.features)

    def design_jacobian(self):
        """``D_j = d w_j / d phi_j`` of the sample's design rows (:mod:`ssl_inference.design`)."""
        if self._sample_jacobian is None:
            self._sample_jacobian = self.feature_design.jacobian(self._design_rows(),
                                                                 self._sample_features())
        return self._sample_jacobian

    @classmethod
    def from_formula(cls, formula, data, subset=None, drop_cols=None, *args,
                     representation=None, features=None, pretrain_index=None,
                     allow_gauge: bool = False, **kwargs):
        """Create a model from a formula in the covariates and the learned features.

        The learned features (``representation.get_feature_names_out()``, e.g.
        ``pc0, pc1``) are variables of the formula: each feature the formula does not
        mention is appended as a main effect; a feature it mentions enters exactly as
        written (``y ~ z * pc0``, ``y ~ z + pc0 + I(pc0**2)``, ``y ~ z - pc1``). Terms
        of features must be differentiable in them (no ``C(pc0 > 0)``, ``center(pc0)``
        or ``np.floor(pc0)``), and the representation's symmetry group must map the
        design's span onto itself, else the fit is refused with the reason;
        ``allow_gauge=True`` fits a gauge-dependent design anyway (every number is
        then in the reported gauge, and the summary says so).
        """
        if representation is None:
            _reject_orphans(features, pretrain_index)
            if allow_gauge:
                raise TypeError("allow_gauge= describes a two-stage design and needs "
                                "representation=.")
            advance_eval_env(kwargs)
            return super().from_formula(formula, data, subset, drop_cols, *args, **kwargs)
        rep = check_representation(representation)
        if not isinstance(data, pd.DataFrame):
            raise TypeError("Formulas with a representation need data as a pandas DataFrame.")
        cols = [features] if isinstance(features, str) else list(features or [])
        if not cols:
            raise ValueError("features= must name the raw columns of data that the "
                             "representation maps, e.g. features=['x1', 'x2', ...].")
        missing_cols = [c for c in cols if c not in data.columns]
        if missing_cols:
            raise ValueError(f"features names columns not in data: {missing_cols[:10]}.")
        if not data.index.is_unique:
            raise ValueError("data has a non-unique index; call data.reset_index(drop=True).")
        if pretrain_index is not None:
            pretrain_index = check_pretrain_index(
                align_series(pretrain_index, "pretrain_index", data.index, "data"),
                len(data), rep.nobs_)
        if subset is not None:
            keep = pd.Series(np.arange(len(data)), index=data.index).loc[subset].to_numpy()
            data = data.iloc[keep]
            pretrain_index = None if pretrain_index is None else pretrain_index[keep]
        names = list(rep.get_feature_names_out())
        clash = sorted(set(names) & set(map(str, data.columns)))
        if clash:
            raise ValueError(f"data already has columns {clash}; give the representation "
                             "another feature_prefix.")
        missing = kwargs.get("missing", "drop")
        raw_all = rep._validate_rows(data[cols], "features", allow_nan=(missing == "drop"))
        frame = data.copy(deep=False)  # copy-on-write: the user's columns are not copied
        complete = ~np.isnan(raw_all).any(axis=1)
        if not complete.all() and missing != "drop":
            raise ValueError(
                f"{int((~complete).sum())} rows have NaN in the feature columns; use "
                "missing='drop' (the formula default) or impute them."
            )
        if complete.all():
            phi = rep._transform(raw_all)
        else:
            phi = np.full((len(data), len(names)), np.nan)
            phi[complete] = rep._transform(raw_all[complete])
        for i, name in enumerate(names):
            frame[name] = phi[:, i]
        mentioned = mentioned_names(formula, names)
        appended = [name for name in names if name not in mentioned]
        full_formula = formula + "".join(f" + {name}" for name in appended)
        advance_eval_env(kwargs)
        mod = super().from_formula(full_formula, frame, None, drop_cols, *args, **kwargs)
        positions = frame.index.get_indexer(mod.data.row_labels)
        every_row = positions.size == len(frame) and bool(
            (positions == np.arange(len(frame))).all())
        design = FormulaFeatures(mod.data, names,
                                 [mod.exog_names[p] for p in mod._design_name_positions()],
                                 phi if every_row else phi[positions])
        if design.feature_cols.size == 0:
            raise ValueError(
                f"The formula '{formula}' removes every learned feature "
                f"({', '.join(names)}) from the design: nothing of the first stage is "
                "left to estimate. Fit the plain statsmodels model instead.")
        mod._attach_two_stage(
            representation=rep, raw=raw_all if every_row else raw_all[positions],
            positions=positions,
            n_input=len(frame), feature_columns=cols, design=design, allow_gauge=allow_gauge,
            pretrain_index=None if pretrain_index is None else pretrain_index[positions])
        return mod

    # ---------------------------------------------------------------------- fit
    #: second-stage estimators refused with a first stage, with the reason
    _unsupported_second_stages: dict = {}
    #: estimators statsmodels computes under another name (reached with cov_type="naive")
    _computed_second_stage: dict = {}

    def _fit_two_stage(self, fit_parent, cov_type, cov_kwds, use_t, fit_kwargs):
        """Fit with statsmodels' second-stage covariance, then add the first stage."""
        spec = CovarianceSpec.parse("two-stage" if cov_type is None else cov_type, cov_kwds,
                                    unsupported=self._unsupported_second_stages)
        if (spec.second_stage == "HAC" and spec.cov_type != "naive"
                and self.pretrain_index is not None):
            raise ValueError(
                "cov_type='HAC' with overlapping samples (pretrain_index) is not available: "
                "the serial dependence of the labeled rows carries into the pre-training "
                "rows they share, so the first-stage and overlap terms would need the same "
                "kernel over a time order of X_pre that the first stage does not know. Use "
                "cov_type='cluster' with time blocks as clusters in both samples (groups "
                "and pretrain_groups), or independent samples.")
        groups, pre_groups = self._cluster_labels(spec)
        cov_args = statsmodels_cov_arguments(spec.statsmodels_cov_type,
                                             spec.statsmodels_cov_kwds(groups),
                                             use_t if spec.cov_type == "naive" else None)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=_UNUSED_OPTIMIZER_KWARGS,
                                    category=FutureWarning)
            try:
                res = fit_parent(**cov_args, **fit_kwargs)
            except FutureWarning as exc:
                raise TypeError(f"fit() got unexpected keyword arguments: {exc}") from None
        covariance = self._two_stage_covariance(res._results, spec, groups, pre_groups)
        replicates = self._replicates(spec, res._results, covariance, groups, pre_groups,
                                      fit_kwargs)
        out = self._results_class.from_statsmodels(res, spec, covariance, use_t, replicates)
        out._results._fit_kwargs = dict(fit_kwargs)  # refits (get_robustcov_results) reuse them
        return out

    def _replicates(self, spec: CovarianceSpec, results, covariance, groups, pre_groups,
                    fit_kwargs: dict):
        """Bootstrap or jackknife replicates for ``spec`` (None for analytic types);
        replicate refits use the options of this ``fit``."""
        options = dict(groups=groups, pretrain_groups=pre_groups, seed=spec.seed,
                       n_jobs=spec.n_jobs, progress=spec.progress, fit_kwds=fit_kwargs,
                       max_degenerate=spec.max_degenerate)
        if spec.cov_type == "bootstrap":
            return two_sample_bootstrap(self, reps=spec.reps, spread=spec.spread, **options)
        if spec.cov_type == "jackknife":
            return two_stage_jackknife(self, results, covariance.jacobian, method=spec.method,
                                       **options)
        return None

    def _cluster_labels(self, spec: CovarianceSpec):
        """Cluster labels of the labeled and pre-training rows, aligned and validated.

        Series are aligned on the index of the rows they label (the model's data;
        ``X_pre``'s index for ``pretrain_groups`` when it was a DataFrame). Labels
        present in both arrays name clusters shared by the two samples
        (:func:`~ssl_inference.models._inputs.check_cluster_labels`).
        """
        rep = self.representation
        groups = None
        if spec.groups is not None:
            values = align_series(spec.groups, "groups", self.data.row_labels,
                                  "the model's data")
            groups = align_rows(values, "groups", self._row_positions, self._n_input_rows,
                                getattr(self.data, "frame", None))
        pre_groups = None
        if spec.pretrain_groups is not None:
            pre_groups = np.asarray(align_series(
                spec.pretrain_groups, "pretrain_groups",
                getattr(rep, "pretrain_row_labels_", None), "the rows of X_pre"))
            if pre_groups.ndim != 1 or pre_groups.shape[0] != rep.nobs_:
                raise ValueError(
                    f"pretrain_groups must have one label per pre-training row "
                    f"({rep.nobs_}); got shape {pre_groups.shape}."
                )
        overlap = self.pretrain_index is not None and bool((self.pretrain_index >= 0).any())
        if overlap and (groups is None) != (pre_groups is None):
            raise ValueError(
                "With overlapping samples (pretrain_index) clustering must cover both "
                "samples: pass groups (labeled rows) and pretrain_groups (X_pre rows) with "
                "shared labels for shared clusters, or neither."
            )
        return check_cluster_labels(groups, pre_groups, self.pretrain_index)

    #: options added to the user's ``fit`` options when replicates (bootstrap,
    #: jackknife) refit the plain second stage: silence, nothing else
    _plain_fit_kwds: dict = {}

    def _flat(self, params) -> np.ndarray:
        """statsmodels' parameters as one flat vector (equation by equation for
        multi-equation models): the layout of the covariance, ``score_obs``, the
        ``hessian`` and the replicates."""
        return np.asarray(params, dtype=float).ravel(order="F")

    def _plain_fit(self, endog, exog, rows, fit_kwds: dict):
        """The plain statsmodels model on rows ``rows`` of this sample (design ``exog``),
        fitted with ``fit_kwds``; row-aligned options (weights, offset, exposure) are
        subset to ``rows``."""
        n = self.exog.shape[0]
        kwds = {}
        for key, value in self._get_init_kwds().items():
            if key in ("formula", "model_spec", "missing_idx", "missing"):
                continue
            if value is not None and np.ndim(value) > 0 and np.shape(value)[0] == n:
                value = np.asarray(value)[rows]
            kwds[key] = value
        return type(self)(endog, exog, **kwds).fit(**fit_kwds)

    def _two_stage_covariance(self, results, spec: CovarianceSpec, groups, pretrain_groups,
                              *, jacobian: np.ndarray | None = None) -> TwoStageCovariance:
        """The covariance engine around statsmodels' second-stage fit ``results``.

        ``results.cov_params()`` is the second-stage part; the labeled influences
        ``a_j = -g_j H^{-1} w_j`` carry the estimator's weights ``sqrt(c_j)``
        (:func:`~ssl_inference.covariance.labeled_influence_weights`) for the overlap
        term. ``jacobian`` (``J``, d x q) is reused when given.
        """
        if spec.second_stage in self._computed_second_stage:
            spec = spec.with_second_stage(self._computed_second_stage[spec.second_stage])
        exog = np.asarray(self.exog, dtype=float)
        shared = self.pretrain_index is not None or pretrain_groups is not None
        # a naive fit without shared units needs no loss derivatives unless J is asked for
        derivatives = (None if jacobian is None and spec.cov_type == "naive" and not shared
                       else self._loss_derivatives(results))
        if jacobian is None:
            model, rep, raw, D = self, self.representation, self.features, \
                self.design_jacobian()

            def jacobian():  # remove_data() computes it first: the model's data are needed
                g, g_prime, h_inv = derivatives or model._loss_derivatives(results)
                return coefficient_jacobian(rep, raw, exog, np.asarray(results.params), D,
                                            g, g_prime, h_inv)
            if spec.cov_type != "naive":  # a naive fit computes J only if asked
                jacobian = jacobian()
        second_influence = None  # only the cross term between the samples reads it
        if shared:
            g, _, h_inv = derivatives
            weights = labeled_influence_weights(
                spec, nobs=exog.shape[0], df_resid=results.df_resid, k_params=exog.shape[1],
                groups=groups, leverage=(self._leverage(results)
                                         if spec.second_stage in ("HC2", "HC3") else None))
            second_influence = -(exog * (g * np.sqrt(weights))[:, None]) @ h_inv
        return TwoStageCovariance(
            representation=self.representation, jacobian=jacobian,
            cov_second=np.asarray(results.cov_params()), second_influence=second_influence,
            pretrain_index=self.pretrain_index, groups=groups,
            pretrain_groups=pretrain_groups, small_sample=spec.small_sample)

    def fit_regularized(self, *args, **kwargs):
        """statsmodels' ``fit_regularized``; refused with a representation attached.

        A penalized second stage has no two-stage covariance, and the standard errors
        statsmodels attaches to some penalized fits treat the learned features as
        known.
        """
        if self.representation is not None:
            parent = next(c for c in type(self).__mro__
                          if c.__module__.startswith("statsmodels."))
            raise FirstStageBlindError(
                "fit_regularized() is not available with a representation: a penalized "
                "second stage has no two-stage covariance, and the standard errors "
                "statsmodels attaches to penalized fits treat the learned features as "
                "known. For penalized point estimates on the learned features fit the "
                f"plain statsmodels model on this design, e.g. sm.{parent.__name__}("
                "model.endog, model.exog, <same options>).fit_regularized(...), and "
                "report no standard errors from it.")
        return super().fit_regularized(*args, **kwargs)

    def _new_rows(self, exog, features, transform: bool = True):
        """Design context, raw features, row labels and completeness of new rows.

        The context is what :attr:`feature_design` needs besides the features: the
        covariate block (array models) or the data frame (formula models). A row is
        incomplete when a raw feature, a covariate or a formula variable is missing
        (NaN); context and raw features are returned for the complete rows only, the
        labels (None for arrays) and the mask ``complete`` for all rows.
        """
        rep = self.representation
        if self.feature_columns is not None and transform:
            if features is not None:
                raise TypeError("For formula models the raw feature columns are read from the "
                                "new data by name; do not pass features=.")
            if isinstance(exog, dict):
                exog = pd.DataFrame(exog)
            if not isinstance(exog, pd.DataFrame):
                raise TypeError("Predicting from a formula model needs a DataFrame of new "
                                "rows with the formula's variables and the feature columns.")
            missing_cols = [c for c in self.feature_columns if c not in exog.columns]
            if missing_cols:
                raise ValueError(f"New data lack feature columns {missing_cols[:10]}.")
            raw = rep._validate_rows(exog[self.feature_columns], "features", allow_nan=True)
            used = [c for c in formula_variables(self.data.model_spec) if c in exog.columns]
            complete = ~(np.isnan(raw).any(axis=1)
                         | exog[used].isna().any(axis=1).to_numpy())
            return subset_rows(exog, complete), raw[complete], exog.index, complete
        if features is None:
            raise ValueError("Pass the raw features of the new rows: features=... (n0, p).")
        raw = rep._validate_rows(features, "features", allow_nan=True)
        base = as_float_matrix(np.asarray(exog, dtype=float).reshape(raw.shape[0], -1),
                               "exog", allow_nan=True)
        expected = self.feature_design.n_params - len(self.feature_names)
        if base.shape[1] != expected:
            raise ValueError(f"exog for prediction has {base.shape[1]} columns; the model's "
                             f"covariates (without learned features) have {expected}.")
        labels = exog.index if isinstance(exog, (pd.DataFrame, pd.Series)) else None
        complete = ~(np.isnan(raw).any(axis=1) | np.isnan(base).any(axis=1))
        return base[complete], raw[complete], labels, complete

    def _prediction_rows(self, exog, features, transform: bool = True):
        """Design of the complete new rows, their raw features and context, the labels
        of all rows and the mask of complete rows (see :meth:`_new_rows`).

        A row whose design has a missing value (e.g. ``np.log`` of a negative feature)
        is incomplete too, as statsmodels' formula handling treats it.
        """
        rows, raw, labels, complete = self._new_rows(exog, features, transform)
        if not complete.any():
            return np.empty((0, self.feature_design.n_params)), raw, rows, labels, complete
        design = self.feature_design.build(rows, self.representation._transform(raw))
        bad = np.isnan(design).any(axis=1)
        if bad.any():
            complete[np.flatnonzero(complete)[bad]] = False
            design, raw, rows = design[~bad], raw[~bad], subset_rows(rows, ~bad)
        return design, raw, rows, labels, complete

    def _new_design(self, exog, features, transform: bool = True):
        """Design rows, raw features, row labels and design context of new data.

        ``exog`` and ``features`` None: the estimation sample. New rows must be
        complete (:meth:`_prediction_rows` handles missing values).
        """
        if exog is None and features is None:
            if self.exog is None:
                raise ValueError(
                    "The estimation sample's data were dropped by remove_data(), so "
                    "in-sample predictions are not available; pass the rows to predict "
                    "(exog=..., and features=... for array models).")
            return np.asarray(self.exog, dtype=float), self.features, None, self._design_rows()
        design, raw, rows, labels, complete = self._prediction_rows(exog, features, transform)
        if not complete.all():
            raise ValueError(
                "New data give missing values in the model's design matrix; predictions "
                "are undefined for those rows. Drop or impute them before predicting.")
        return design, raw, labels, rows


def _default_exog_names(block: np.ndarray) -> list[str]:
    """statsmodels' names of an unnamed exog block: ``x1, x2, ...`` with ``const`` at
    the first column of zero variance, if any (``statsmodels.base.data``'s rule)."""
    var = np.asfortranarray(block).var(axis=0)  # column-major: 10x faster than strided
    if not (var == 0).any():
        return [f"x{i}" for i in range(1, block.shape[1] + 1)]
    names = [f"x{i}" for i in range(1, block.shape[1])]
    names.insert(int(var.argmin()), "const")
    return names
