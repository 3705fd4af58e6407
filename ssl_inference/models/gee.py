r"""Two-stage generalized estimating equations: clustered labeled data on learned features.

GEE solves, over the clusters ``i`` of ``groups`` (statsmodels' meaning),

.. math::

    \Psi(\beta, \theta) = \sum_i D_i' V_i^{-1} (y_i - \mu_i) = 0, \qquad
    \mu_i = l^{-1}(W_i(\theta) \beta + o_i), \quad D_i = \partial\mu_i / \partial\beta',
    \quad V_i = A_i^{1/2} R(\hat\alpha) A_i^{1/2},

with ``W_i(theta)`` the cluster's design rows, which contain the learned features,
``A_i`` the variance function and ``R(alpha)`` the working correlation. The working
correlation parameters ``alpha`` (and the scale, which cancels from ``Psi``) are
nuisance parameters held at their estimate: the standard GEE sandwich argument
(Liang and Zeger 1986), in which a root-n consistent ``alpha_hat`` does not change
the first-order behaviour of ``beta_hat``; the same holds for the first stage, so
``alpha`` has no row in the stacked system. The two-stage covariance is

.. math::

    A^{-1} \Big[ \sum_i \psi_i \psi_i' + \text{first-stage} + \text{cross} \Big] A^{-1},
    \qquad A = \sum_i D_i' V_i^{-1} D_i, \quad \psi_i = D_i' V_i^{-1} (y_i - \mu_i),

where ``A^{-1} (sum_i psi_i psi_i') A^{-1}`` is statsmodels' robust covariance
(``cov_robust``), the first-stage part is ``J Cov(theta_hat) J'`` with

.. math::

    J = \frac{d\hat\beta}{d\theta} = A^{-1} C, \qquad
    C = \frac{\partial \Psi}{\partial \theta'} = \sum_i \sum_{j \in i}
        \frac{\partial \psi_i}{\partial w_j} D_j \frac{d\phi_j}{d\theta},

(:func:`~ssl_inference.score_jacobian.cluster_design_derivative` differentiates
``psi_i`` in the design rows of its cluster, by central differences of the model's own
estimating function, one row per cluster at a time), and the cross term sums over the
clusters that have rows in both samples (labels of ``groups`` that also appear in
``pretrain_groups``). ``A`` is statsmodels' bread, the expected derivative of
``-Psi`` in ``beta`` (it drops the terms proportional to the residuals, whose mean is
zero at the truth); the same ``A`` multiplies every part.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm

from ..covariance import CovarianceSpec, TwoStageCovariance
from ..exceptions import FirstStageBlindError
from ..score_jacobian import (DesignSlot, cluster_design_derivative,
                              estimating_equation_jacobian, second_stage_influence)
from ._two_stage import TwoStageModelMixin, _reject_orphans, two_stage_docstring

__all__ = ["GEE"]

#: statsmodels' GEE covariance types
GEE_COV_TYPES = ("robust", "naive", "bias_reduced")

_GEE_COV_DOC = """\
cov_type : str, optional
    ``"two-stage"`` (default with a representation; ``"robust"``, statsmodels'
    name, is the same): statsmodels' robust (sandwich) covariance, clustered by
    ``groups``, plus the first-stage term and, for clusters with rows in both
    samples, the cross term. ``"naive"``: exactly what statsmodels reports,
    the learned features treated as known; ``cov_kwds["second_stage"]`` picks
    statsmodels' GEE covariance there (``"robust"``, default, ``"naive"``: the
    model-based one, ``"bias_reduced"``: Mancl-DeRouen). Refused with a first
    stage: ``"bias_reduced"`` (its leverage correction of the residuals has no
    first-stage counterpart here), statsmodels' model-based covariance as a
    second stage (it is valid only under a correct working correlation, which
    the robust one does not need), the bootstrap and the jackknife, and the
    cov_types of the other models (GEE's covariance is clustered by ``groups``
    by definition).
cov_kwds : dict, optional
    ``pretrain_groups``: cluster labels of the pre-training rows (one per row of
    ``X_pre``); a label equal to one of ``groups`` is the same cluster (cross
    term). Needed with overlapping samples (``pretrain_index``).
    ``second_stage`` with ``cov_type="naive"`` (above).
"""


class _GEEFormula(sm.GEE):
    """statsmodels' GEE with the generic ``from_formula`` signature
    ``(formula, data, subset, drop_cols, **kwargs)``: :meth:`GEE.from_formula`
    reads ``groups``, ``time``, ``offset`` and ``exposure`` from the data first."""

    @classmethod
    def from_formula(cls, formula, data, subset=None, drop_cols=None, *args, **kwargs):
        return super(sm.GEE, cls).from_formula(formula, data, subset, drop_cols, *args,
                                               **kwargs)


class GEE(TwoStageModelMixin, _GEEFormula):
    __doc__ = two_stage_docstring(sm.GEE, """
    The estimating function, the nuisance treatment of the working correlation and the
    two-stage covariance are in :mod:`ssl_inference.models.gee`.

    Examples
    --------
    >>> import numpy as np, statsmodels.api as sm, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> rep = ssi.PCA(2).fit(rng.normal(size=(2000, 4)) * [3.0, 2.0, 1.0, 0.5])
    >>> X = rng.normal(size=(400, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> groups = np.repeat(np.arange(100), 4)
    >>> y = 1 + X[:, 0] + rng.normal(size=100)[groups] + rng.normal(size=400)
    >>> res = ssi.GEE(y, np.ones((400, 1)), groups,
    ...               cov_struct=sm.cov_struct.Exchangeable(),
    ...               representation=rep, features=X).fit()
    >>> res.cov_type, bool(res.bse[1] > res.bse_naive[1])
    ('two-stage robust', True)
""", until="See Also")

    def __init__(self, endog, exog, groups, time=None, family=None, cov_struct=None,
                 missing: str = "none", offset=None, exposure=None, dep_data=None,
                 constraint=None, update_dep: bool = True, weights=None, *,
                 representation=None, features=None, pretrain_index=None, **kwargs):
        if representation is not None and constraint is not None:
            raise ValueError(
                "constraint= is not available with a representation: statsmodels' GEE "
                "reparametrizes the design for linear constraints, which moves the "
                "learned features into combined columns. Test the constraint with "
                "res.wald_test('...') on the unconstrained two-stage fit instead.")
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=pretrain_index, missing=missing,
                             rowwise={"groups": groups, "time": time, "offset": offset,
                                      "exposure": exposure, "weights": weights,
                                      "dep_data": dep_data},
                             family=family, cov_struct=cov_struct, constraint=constraint,
                             update_dep=update_dep, **kwargs)

    @classmethod
    def from_formula(cls, formula, groups, data, subset=None, time=None, offset=None,
                     exposure=None, *args, **kwargs):
        """Create a GEE from a formula in the covariates and the learned features.

        ``groups``, ``time``, ``offset`` and ``exposure`` are arrays or column names
        of ``data`` (statsmodels' meaning); the learned features enter the formula as
        in the other two-stage models (``representation=``, ``features=`` the raw
        columns; see :meth:`ssl_inference.OLS.from_formula`).
        """
        if kwargs.get("representation") is None:
            kwargs.pop("representation", None)
            _reject_orphans(kwargs.pop("features", None), kwargs.pop("pretrain_index", None))
            if kwargs.pop("allow_gauge", False):
                raise TypeError("allow_gauge= describes a two-stage design and needs "
                                "representation=.")
            return sm.GEE.from_formula.__func__(cls, formula, groups, data, subset, time,
                                                offset, exposure, *args, **kwargs)
        if not isinstance(data, pd.DataFrame):
            raise TypeError("Formulas with a representation need data as a pandas DataFrame.")
        if subset is not None:
            raise ValueError("subset= is not available for two-stage GEE formulas (groups, "
                             "time, offset and exposure are per-row arrays of all of "
                             "data); pass data.loc[subset] instead.")
        columns = {}
        for name, value in (("groups", groups), ("time", time), ("offset", offset),
                            ("exposure", exposure)):
            if isinstance(value, str):
                if value not in data.columns:
                    raise ValueError(f"{name}={value!r} is not a column of data.")
                value = data[value]
            columns[name] = None if value is None else np.asarray(value)
        if kwargs.get("dep_data") is not None:
            raise ValueError("dep_data= is not available with a representation in "
                             "formulas; pass it with the array interface ssi.GEE(...).")
        mod = super().from_formula(formula, data, None, None, *args, **columns, **kwargs)
        mod._groups_name = groups if isinstance(groups, str) else "Group"
        return mod

    # ------------------------------------------------------------ estimating function
    def _cluster_codes(self) -> np.ndarray:
        """Cluster of each row, ``0 .. G-1`` in statsmodels' order of ``group_labels``."""
        codes = np.empty(len(self.endog), dtype=int)
        for i, label in enumerate(self.group_labels):
            codes[self.group_indices[label]] = i
        return codes

    def estimating_rows(self, params, exog=None, *,
                        with_bread: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        r"""Per-row pieces of GEE's estimating function and its bread at ``params``.

        Row j of cluster i gets ``d_j (V_i^{-1} r_i)_j`` (``d_j`` the row of ``D_i``,
        ``r_i = y_i - mu_i``, with statsmodels' case weights ``f_i r_i`` and
        ``f_i D_i`` in the solve), so the rows of a cluster sum to
        ``psi_i = D_i' V_i^{-1} r_i``; the working correlation is held at the fitted
        ``alpha``. Also ``A = sum_i D_i' V_i^{-1} D_i``. The computation is
        statsmodels' own (``mean_deriv``, ``cov_struct.covariance_matrix_solve``).

        Parameters
        ----------
        params : array_like (d,)
        exog : ndarray (n, d), optional
            The design (the model's by default; a moved one for derivatives).
        with_bread : bool
            Also compute ``A`` (False: None, for the many evaluations of a derivative).

        Returns
        -------
        rows : ndarray (n, d)
        bread : ndarray (d, d) or None
        """
        params = np.asarray(params, dtype=float)
        exog = np.asarray(self.exog if exog is None else exog, dtype=float)
        exog_li = self.cluster_list(exog)
        offset = self.offset_li
        weights = getattr(self, "weights_li", None) if self.weights is not None else None
        rows = np.empty(exog.shape)
        bread = np.zeros((exog.shape[1], exog.shape[1])) if with_bread else None
        for i, label in enumerate(self.group_labels):
            lpr = exog_li[i] @ params
            if offset is not None:
                lpr = lpr + offset[i]
            expval = self.family.link.inverse(lpr)
            resid = self.endog_li[i] - expval
            dmat = self.mean_deriv(exog_li[i], lpr)
            sdev = np.sqrt(self.family.variance(expval))
            if weights is not None:
                wresid, wdmat = resid * weights[i], dmat * weights[i][:, None]
            else:
                wresid, wdmat = resid, dmat
            solved = self.cov_struct.covariance_matrix_solve(
                expval, i, sdev, (wresid, wdmat) if with_bread else (wresid,))
            if solved is None:
                raise ValueError(f"The working covariance of cluster {label!r} is singular "
                                 "at the estimate; the GEE estimating function is undefined.")
            if with_bread:
                bread += dmat.T @ solved[1]
            rows[self.group_indices[label]] = dmat * np.reshape(solved[0], (-1, 1))
        return rows, bread

    def _cluster_scores(self, params, exog) -> np.ndarray:
        """``psi_i`` of every cluster (G, d) with design ``exog``."""
        rows, _ = self.estimating_rows(params, exog, with_bread=False)
        out = np.zeros((len(self.group_labels), rows.shape[1]))
        np.add.at(out, self._cluster_codes(), rows)
        return out

    def _two_stage_covariance(self, results, spec: CovarianceSpec, groups, pretrain_groups,
                              *, jacobian: np.ndarray | None = None) -> TwoStageCovariance:
        """The covariance engine around statsmodels' GEE fit ``results`` (module docstring).

        The labeled influences ``a_j = A^{-1} d_j (V_i^{-1} r_i)_j`` sum to the
        cluster's ``A^{-1} psi_i``; the engine sums them by ``groups`` (the GEE
        clusters) for the cross term.
        """
        params = np.asarray(results.params, dtype=float)
        exog = np.asarray(self.exog, dtype=float)
        rows, bread = self.estimating_rows(params, exog)
        if jacobian is None:
            rep, raw = self.representation, self.features
            slot = DesignSlot("exog", exog, self.design_jacobian(),
                              self.feature_design.feature_cols)
            codes = self._cluster_codes()

            def jacobian():
                (S,) = cluster_design_derivative(
                    lambda designs: self._cluster_scores(params, designs["exog"]), [slot],
                    codes)
                return estimating_equation_jacobian(rep, raw, [slot], [S], -bread)
            if spec.cov_type != "naive":
                jacobian = jacobian()
        return TwoStageCovariance(
            representation=self.representation, jacobian=jacobian,
            cov_second=np.asarray(results.cov_params()),
            second_influence=second_stage_influence(rows, -bread),
            pretrain_index=self.pretrain_index, groups=groups,
            pretrain_groups=pretrain_groups, small_sample=False)

    # ---------------------------------------------------------------------- fit
    def _gee_spec(self, cov_type, cov_kwds) -> CovarianceSpec:
        """Validate ``cov_type`` / ``cov_kwds`` of a two-stage GEE fit (see :meth:`fit`)."""
        kind = "two-stage" if cov_type in (None, "two-stage", "robust") else cov_type
        if kind == "bias_reduced":
            raise ValueError(
                "cov_type='bias_reduced' is not available with a first stage: the "
                "Mancl-DeRouen correction inflates each cluster's residuals by its "
                "leverage, and there is no matching correction of the first-stage and "
                "cross terms here. Use the two-stage robust covariance (the default); "
                "statsmodels' own bias-reduced one (learned features treated as known) is "
                "fit(cov_type='naive', cov_kwds={'second_stage': 'bias_reduced'}).")
        if kind in ("bootstrap", "jackknife"):
            raise ValueError(
                f"cov_type={kind!r} is not available for GEE second stages: its replicates "
                "would have to resample or delete whole GEE clusters in step with the "
                "pre-training units and refit the working correlation in each. Use the "
                "analytic two-stage covariance (the default).")
        if kind not in ("two-stage", "naive"):
            raise ValueError(
                f"cov_type for GEE must be 'two-stage' (or statsmodels' 'robust', the same) "
                f"or 'naive'; got {cov_type!r}. GEE's covariance is clustered by its groups "
                "by definition, so the cov_types of the other models ('HC0', 'cluster', "
                "...) do not apply; statsmodels' model-based GEE covariance is "
                "fit(cov_type='naive', cov_kwds={'second_stage': 'naive'}) (learned "
                "features treated as known).")
        cov_kwds = {} if cov_kwds is None else dict(cov_kwds)
        allowed = ("pretrain_groups",) + (("second_stage",) if kind == "naive" else ())
        unknown = sorted(set(cov_kwds) - set(allowed))
        if unknown:
            raise ValueError(f"Unknown cov_kwds {unknown} for a GEE fit with "
                             f"cov_type={kind!r}; allowed keys are {list(allowed)} (the "
                             "labeled clusters are the model's groups).")
        second = cov_kwds.get("second_stage", "robust")
        if second not in GEE_COV_TYPES:
            raise ValueError(f"cov_kwds['second_stage'] for GEE must be one of "
                             f"{GEE_COV_TYPES}; got {second!r}.")
        pre_groups = cov_kwds.get("pretrain_groups")
        if (kind == "two-stage" and pre_groups is None and self.pretrain_index is not None
                and bool((self.pretrain_index >= 0).any())):
            raise ValueError(
                "With overlapping samples (pretrain_index) a GEE fit needs "
                "cov_kwds={'pretrain_groups': ...}: the cluster of every pre-training row, "
                "with the GEE cluster label (groups) for the rows the samples share, so "
                "that a cluster's influences from both samples are summed.")
        return CovarianceSpec(kind, second, groups=np.asarray(self.groups),
                              pretrain_groups=pre_groups)

    def fit(self, maxiter: int = 60, ctol: float = 1e-6, start_params=None,
            params_niter: int = 1, first_dep_update: int = 0, cov_type: str | None = None,
            ddof_scale=None, scaling_factor: float = 1.0, scale=None, *,
            cov_kwds: dict | None = None):
        """Fit by statsmodels' GEE; two-stage robust covariance by default.

        Parameters
        ----------
        maxiter, ctol, start_params, params_niter, first_dep_update, ddof_scale, scale
            As in :meth:`statsmodels.genmod.generalized_estimating_equations.GEE.fit`.
            The linearisation assumes a root of the estimating equations; statsmodels
            stops when the score norm is below ``ctol``.
        {gee_cov_options}
        scaling_factor : float
            statsmodels' factor on its covariances; only 1 (the default) with a first
            stage (a factor on the second-stage part alone would be arbitrary).

        Returns
        -------
        TwoStageGEEResults
            Without a representation, statsmodels' own results.
        """
        fit_kwargs = dict(maxiter=maxiter, ctol=ctol, start_params=start_params,
                          params_niter=params_niter, first_dep_update=first_dep_update,
                          ddof_scale=ddof_scale, scaling_factor=scaling_factor, scale=scale)
        if self.representation is None:
            if cov_kwds is not None:
                raise TypeError("cov_kwds= selects two-stage options and needs a model with "
                                "representation=.")
            return super().fit(cov_type=cov_type or "robust", **fit_kwargs)
        spec = self._gee_spec(cov_type, cov_kwds)
        if scaling_factor != 1.0 and spec.cov_type != "naive":
            raise ValueError(
                "scaling_factor= other than 1 is not available with a first stage: it "
                "would scale statsmodels' second-stage part and not the first-stage one. "
                "Multiply cov_params() yourself if a factor is wanted.")
        groups, pre_groups = self._cluster_labels(spec)
        res = super().fit(cov_type=spec.second_stage if spec.cov_type == "naive" else "robust",
                          **fit_kwargs)
        if res is None:
            raise ValueError("statsmodels' GEE fit failed (see its warning): there is no "
                             "estimate to attach a two-stage covariance to.")
        covariance = self._two_stage_covariance(res._results, spec, groups, pre_groups)
        out = self._results_class.from_statsmodels(res, spec, covariance, None)
        out._results._fit_kwargs = fit_kwargs
        return out

    fit.__doc__ = fit.__doc__.replace(
        "{gee_cov_options}", _GEE_COV_DOC.replace("\n", "\n        ").rstrip())

    @property
    def _results_class(self):
        from ..results import TwoStageGEEResults
        return TwoStageGEEResults

    def compare_score_test(self, submodel):
        """Not available with a representation: the score test treats the learned
        features as known data (statsmodels' method without one)."""
        if self.representation is None:
            return super().compare_score_test(submodel)
        raise FirstStageBlindError(
            "compare_score_test() evaluates this model's score at the submodel's "
            "estimates with the learned features treated as known data; its chi-square "
            "reference ignores the first stage, and there is no two-stage version. Fit "
            "the larger model and test the added coefficients with res.wald_test('...').")

