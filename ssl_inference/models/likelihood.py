r"""Two-stage likelihood second stages through statsmodels' per-row scores and Hessian.

One path for statsmodels likelihood models whose design contains learned features
(:mod:`ssl_inference.score_jacobian`): the score rows ``s_j`` (``score_obs``), the
Hessian ``H`` (``hessian``) and the design derivative of the score, obtained by
evaluating the score of the same statsmodels model with a feature column of the
design moved (``model.__class__(endog, exog, **init_kwds)``), or mixed differences
of ``loglikeobs`` when statsmodels' score is itself numerical (``OrderedModel``). Then
``J = -H^{-1} C`` and ``a_j = -H^{-1} s_j`` feed the shared
:class:`~ssl_inference.covariance.TwoStageCovariance`.

* :class:`NegativeBinomial`, :class:`GeneralizedPoisson`: one equation plus the
  dispersion ``alpha`` (a parameter that multiplies no design column).
* :class:`ZeroInflatedPoisson`: the count equation on ``exog``; the inflation
  equation on ``exog_infl`` (a constant by default) holds the learned features too
  with ``inflation_features=True``.
* :class:`MNLogit`: one equation per non-reference outcome category, all on the same
  design; the symmetry group moves every equation's feature block.
* :class:`OrderedModel`: one equation (no constant) plus the thresholds.

OLS, WLS, GLM, Logit, Probit and Poisson keep their closed forms
(:func:`ssl_inference.jacobian.coefficient_jacobian`).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.base.model import GenericLikelihoodModel, GenericLikelihoodModelResults, Model
from statsmodels.base.wrapper import ResultsWrapper
from statsmodels.formula.formulatools import advance_eval_env
from scipy import special, stats
from statsmodels.miscmodels.ordinal_model import OrderedModel as _SMOrderedModel

from ..covariance import CovarianceSpec, TwoStageCovariance, labeled_influence_weights
from ..design import AppendedFeatures
from ..equations import Equation, lift_action
from ..exceptions import ConvergenceWarning
from ..results.base import _stacklevel_outside_libraries
from ..score_jacobian import (DesignSlot, central_derivative, design_derivative,
                              estimating_equation_jacobian, loglike_design_derivative,
                              second_stage_influence)
from ._inputs import check_representation
from ._two_stage import (LIKELIHOOD_COMPUTED, LIKELIHOOD_UNSUPPORTED, TwoStageModelMixin,
                         document_cov_options, statsmodels_cov_arguments,
                         two_stage_docstring)

__all__ = ["NegativeBinomial", "GeneralizedPoisson", "ZeroInflatedPoisson", "MNLogit",
           "OrderedModel"]

#: keys of ``_get_init_kwds`` that describe a formula, not the model
_FORMULA_KEYS = ("formula", "model_spec", "missing_idx", "missing")
#: Newton step at the reported optimum, in standard errors, above which we warn
_STATIONARY_TOL = 1e-2
_EPS = np.finfo(float).eps


class TwoStageLikelihoodMixin(TwoStageModelMixin):
    """Two-stage second stage for a statsmodels ``LikelihoodModel``.

    A class combines it with a statsmodels ``LikelihoodModel`` (its parent: the first
    class of the MRO without the two-stage machinery, e.g. ``sm.NegativeBinomial`` or
    a user's ``GenericLikelihoodModel``) and names its results class
    (``_results_name`` in :mod:`ssl_inference.results`); models with several equations
    or designs override :attr:`equations` and :meth:`_design_slots`. What it needs of
    the parent: ``score_obs`` and ``hessian`` (statsmodels' own, numerical or
    analytic), ``loglikeobs`` when the score is numerical, and re-instantiation as
    ``parent(endog, exog, **model._get_init_kwds())``.

    Examples
    --------
    A Poisson model written as a ``GenericLikelihoodModel`` (statsmodels differentiates
    its log-likelihood numerically) gets the two-stage covariance of the closed form:

    >>> import numpy as np, ssl_inference as ssi
    >>> from scipy.special import gammaln
    >>> from statsmodels.base.model import GenericLikelihoodModel
    >>> class MyPoisson(GenericLikelihoodModel):
    ...     def loglikeobs(self, params):
    ...         eta = self.exog @ params
    ...         return self.endog * eta - np.exp(eta) - gammaln(self.endog + 1)
    >>> class TwoStageMyPoisson(TwoStageLikelihoodMixin, MyPoisson):
    ...     _results_name = "TwoStagePoissonResults"
    ...     def __init__(self, endog, exog, *, representation=None, features=None):
    ...         self._init_two_stage(endog, exog, representation=representation,
    ...                              features=features, pretrain_index=None)
    >>> rng = np.random.default_rng(0)
    >>> rep = ssi.PCA(1).fit(rng.normal(size=(500, 3)) * [2.0, 1.0, 0.5])
    >>> X = rng.normal(size=(300, 3)) * [2.0, 1.0, 0.5]
    >>> y = rng.poisson(np.exp(0.3 + 0.2 * X[:, 0]))
    >>> mine = TwoStageMyPoisson(y, np.ones((300, 1)), representation=rep,
    ...                          features=X).fit(method="bfgs", disp=0)
    >>> closed = ssi.Poisson(y, np.ones((300, 1)), representation=rep, features=X).fit(disp=0)
    >>> bool(np.allclose(mine.bse, closed.bse, rtol=1e-4))
    True
    """

    _plain_fit_kwds = {"disp": 0}
    _unsupported_second_stages = LIKELIHOOD_UNSUPPORTED
    _computed_second_stage = LIKELIHOOD_COMPUTED
    _results_name: str

    @property
    def _results_class(self):
        from .. import results
        return getattr(results, self._results_name)

    @classmethod
    def _statsmodels_class(cls) -> type:
        """The model class this one extends: the first of the MRO without the two-stage
        machinery (a statsmodels model, or a user's ``GenericLikelihoodModel``)."""
        return next(c for c in cls.__mro__
                    if issubclass(c, Model) and not issubclass(c, TwoStageModelMixin))

    # ------------------------------------------------------------ layout
    def _attach_two_stage(self, **state) -> None:
        state["exog_names"] = None  # statsmodels names extra parameters (alpha, cuts...)
        super()._attach_two_stage(**state)
        self._design_action = self.coefficient_action
        self._lift_coefficient_action()

    def _equation_actions(self) -> list:
        """The group's action on each equation's coefficients (same order as equations)."""
        return [self._design_action for _ in self.equations]

    def _lift_coefficient_action(self) -> None:
        """The action on the flat parameters from the equations' actions."""
        self.coefficient_action = lift_action(self.equations, self._equation_actions(),
                                              len(self.param_names))

    def _design_slots(self) -> list[DesignSlot]:
        """The designs that contain learned features, at ``theta_hat``."""
        return [DesignSlot("exog", np.asarray(self.exog, dtype=float),
                           self.design_jacobian(), self.feature_design.feature_cols)]

    def _unflat(self, params: np.ndarray):
        """The flat parameters in the layout of statsmodels' ``predict``."""
        return params

    # ------------------------------------------------------------ prediction
    def _sample_predict_kwds(self) -> dict:
        """``predict`` keywords that reproduce the sample's own offset and exposure."""
        kwds = self._get_init_kwds()
        return {key: kwds[key] for key in ("offset", "exposure")
                if kwds.get(key) is not None}

    def _prediction_slots(self, rows, raw, extra: dict, representation=None):
        """Design slots of new rows and the keywords of ``predict`` for them.

        ``rows`` is the design context (:meth:`_design_rows`), ``raw`` the raw
        features; ``representation`` (a bootstrap replicate's) defaults to the fitted
        one.
        """
        rep = self.representation if representation is None else representation
        phi = rep._transform(raw)
        design = self.feature_design
        slot = DesignSlot("exog", design.build(rows, phi), design.jacobian(rows, phi),
                          design.feature_cols)
        return [slot], dict(extra)

    # ------------------------------------------------------------ plain model
    def _plain_model(self, **designs):
        """The plain statsmodels model of this sample, some designs replaced.

        ``model.__class__(endog, exog, **init_kwds)`` with statsmodels' parent class:
        how statsmodels itself re-instantiates models (``llnull``, ``_fit_zeros``).
        """
        kwds = {key: value for key, value in self._get_init_kwds().items()
                if key not in _FORMULA_KEYS}
        exog = designs.pop("exog", np.asarray(self.exog, dtype=float))
        kwds.update(designs)
        plain = self._statsmodels_class()(np.asarray(self.endog), exog, **kwds)
        if hasattr(self, "_transparams"):
            # statsmodels' count models read their last parameter as log(alpha) until
            # fit() switches this flag off; the fitted model's parameters are alpha
            plain._transparams = self._transparams
        return plain

    # ------------------------------------------------------------ linearisation
    def _score_is_numerical(self) -> bool:
        """Whether statsmodels' ``score_obs`` of this model is a numerical derivative."""
        return self._statsmodels_class().score_obs is GenericLikelihoodModel.score_obs

    def _score_design_derivatives(self, params: np.ndarray) -> list[np.ndarray]:
        """``S_j = ds_j/dw_j`` on the feature columns of every design slot."""
        slots = self._design_slots()
        if self._score_is_numerical():
            return loglike_design_derivative(
                lambda designs: self._plain_model(**designs).loglikeobs, params, slots)
        return design_derivative(
            lambda designs: self._score_obs_of(self._plain_model(**designs), params), slots)

    def _score_obs_of(self, model, params) -> np.ndarray:
        """``score_obs`` of a plain statsmodels ``model`` of this family (a model with
        a faster analytic score overrides it)."""
        return model.score_obs(params)

    def _two_stage_covariance(self, results, spec: CovarianceSpec, groups, pretrain_groups,
                              *, jacobian: np.ndarray | None = None) -> TwoStageCovariance:
        """The covariance engine around statsmodels' fit ``results``.

        ``results.cov_params()`` is the second-stage part; the labeled influences
        ``a_j = -H^{-1} s_j`` carry the estimator's weights ``sqrt(c_j)``
        (:func:`~ssl_inference.covariance.labeled_influence_weights`) for the cross
        term.
        """
        if spec.second_stage in self._computed_second_stage:
            spec = spec.with_second_stage(self._computed_second_stage[spec.second_stage])
        params = self._flat(results.params)
        score = np.asarray(self.score_obs(params), dtype=float)
        hessian = np.asarray(self.hessian(params), dtype=float)
        self._check_stationary(score.sum(axis=0), hessian, results)
        if jacobian is None:
            jacobian = estimating_equation_jacobian(
                self.representation, self.features, self._design_slots(),
                self._score_design_derivatives(params), hessian)
        weights = labeled_influence_weights(
            spec, nobs=score.shape[0], df_resid=results.df_resid, k_params=params.size,
            groups=groups)
        influence = second_stage_influence(score * np.reshape(np.sqrt(weights), (-1, 1)),
                                           hessian)
        return TwoStageCovariance(
            representation=self.representation, jacobian=jacobian,
            cov_second=np.asarray(results.cov_params()), second_influence=influence,
            pretrain_index=self.pretrain_index, groups=groups,
            pretrain_groups=pretrain_groups, small_sample=spec.small_sample)

    def _check_stationary(self, gradient, hessian, results) -> None:
        """Warn when the reported optimum is not a stationary point of the likelihood.

        The linearisation (``J``, ``a_j``) assumes ``sum_j s_j = 0`` at ``beta_hat``;
        the Newton step ``-H^{-1} g`` measured in standard errors says how far off it is.
        """
        inverse = np.linalg.pinv(-hessian)
        step = inverse @ gradient
        scale = np.sqrt(np.abs(np.diag(inverse)))
        worst = float(np.max(np.abs(step) / np.where(scale > 0, scale, 1.0)))
        if worst > _STATIONARY_TOL:
            warnings.warn(
                f"The second-stage optimizer stopped {worst:.3g} standard errors away from "
                "a stationary point of the likelihood (one Newton step). The two-stage "
                "linearisation assumes the score sums to zero at the estimate; refit with "
                "a gradient-based method and a tighter tolerance, e.g. "
                "fit(method='bfgs', maxiter=1000) or method='newton'.",
                ConvergenceWarning, stacklevel=_stacklevel_outside_libraries())

    # ------------------------------------------------------------ fit
    @document_cov_options
    def fit(self, start_params=None, method: str | None = None, maxiter: int | None = None,
            full_output: bool = True, disp: bool = True, callback=None,
            cov_type: str | None = None, cov_kwds: dict | None = None,
            use_t: bool | None = None, **kwargs):
        """Fit the second stage by maximum likelihood; two-stage covariance by default.

        Parameters
        ----------
        start_params, method, maxiter, full_output, disp, callback
            As in the statsmodels model's ``fit`` (``method`` and ``maxiter`` default
            to statsmodels' choice for the model).
        {cov_options}
        use_t : bool, optional
            t/F instead of normal/chi2 reference distributions.
        **kwargs
            Options of the optimizer ``method`` or of the statsmodels model's ``fit``;
            others raise ``TypeError`` when a representation is attached.
        """
        fit_kwargs = dict(start_params=start_params, full_output=full_output, disp=disp,
                          callback=callback, **kwargs)
        if method is not None:
            fit_kwargs["method"] = method
        if maxiter is not None:
            fit_kwargs["maxiter"] = maxiter
        if self.representation is None:
            return super().fit(**statsmodels_cov_arguments(cov_type or "nonrobust", cov_kwds,
                                                           use_t), **fit_kwargs)
        self._check_replicates(cov_type, cov_kwds or {})
        parent_fit = super().fit

        def fit_parent(**kwargs):
            res = parent_fit(**kwargs)
            # GenericLikelihoodModel returns its results without a pandas wrapper
            return res if hasattr(res, "_results") else wrap_results(res)

        return self._fit_two_stage(fit_parent, cov_type, cov_kwds, use_t, fit_kwargs)

    def _check_replicates(self, cov_type, cov_kwds: dict) -> None:
        """Refuse replicate covariances these models cannot give: the one-step
        jackknife (its closed-form deletion step is for single-index second stages);
        models whose replicates cannot be rebuilt extend this hook."""
        if cov_type == "jackknife" and cov_kwds.get("method") == "one-step":
            raise NotImplementedError(
                f"The one-step jackknife is not available for {type(self).__name__}: its "
                "closed-form deletion step is written for single-index second stages "
                "(OLS, WLS, GLM, Logit, Probit, Poisson). Use the exact jackknife (the "
                "default method), the bootstrap, or the analytic two-stage covariance.")


# ---------------------------------------------------------------- examples
_COUNT_EXAMPLE = """
    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> X_pre = rng.normal(size=(2000, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> rep = ssi.PCA(2).fit(X_pre)
    >>> X = rng.normal(size=(500, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> y = rng.negative_binomial(2, 2 / (2 + np.exp(0.5 + 0.2 * X[:, 0])))
    >>> res = ssi.{name}(y, np.ones((500, 1)), representation=rep, features=X).fit(disp=0)
    >>> res.model.param_names
    ['const', 'pc0', 'pc1', 'alpha']
    >>> bool(res.bse[1] > res.bse_naive[1])
    True
"""


class NegativeBinomial(TwoStageLikelihoodMixin, sm.NegativeBinomial):
    __doc__ = two_stage_docstring(sm.NegativeBinomial,
                                  _COUNT_EXAMPLE.format(name="NegativeBinomial"))
    _results_name = "TwoStageNegativeBinomialResults"

    def __init__(self, endog, exog, loglike_method: str = "nb2", offset=None, exposure=None,
                 missing: str = "none", check_rank: bool = True, *, representation=None,
                 features=None, pretrain_index=None, **kwargs):
        self._check_kwargs(kwargs, error=True)
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=pretrain_index, missing=missing,
                             rowwise={"offset": offset, "exposure": exposure},
                             loglike_method=loglike_method, check_rank=check_rank, **kwargs)

    def score_obs(self, params):
        """Per-observation score, (n, k + 1), analytic for NB1 and NB2
        (``_negative_binomial_score_obs``); statsmodels differentiates
        ``loglikeobs`` by complex steps."""
        return _negative_binomial_score_obs(self, params)

    def _score_obs_of(self, model, params):
        return _negative_binomial_score_obs(model, params)


def _negative_binomial_score_obs(model, params) -> np.ndarray:
    r"""Per-observation score of a statsmodels ``NegativeBinomial`` ``model``, (n, k + 1):
    statsmodels' analytic NB1/NB2 score (``_score_nbin``) before its sum over
    observations.

    statsmodels' own ``score_obs`` differentiates ``loglikeobs`` by complex steps (one
    log-likelihood per parameter); the two-stage covariance evaluates the score at many
    perturbed designs. With ``a = mu^Q / alpha`` (``Q`` = 0 for NB2, 1 for NB1),
    ``p = a / (a + mu)`` and ``g = psi(y + a) - psi(a)``:

    * NB2: ``x a (y - mu) / (mu + a)`` and
      ``-(g + log p - (y - mu) / (a + mu)) / alpha^2``;
    * NB1: ``x a (log p + g)`` and
      ``(alpha (y - mu log p - mu (g + 1)) - mu (log p + g)) / (alpha^2 (alpha + 1))``;

    the last column times ``alpha`` when the fit steps in ``log(alpha)``. The geometric
    model keeps statsmodels' numerical score.
    """
    if model.loglike_method not in ("nb1", "nb2"):
        return sm.NegativeBinomial.score_obs(model, params)
    params = np.asarray(params)
    log_scale = getattr(model, "_transparams", False)  # statsmodels' own switch
    alpha = np.exp(params[-1]) if log_scale else params[-1]
    y = model.endog
    mu = model.predict(params[:-1])
    a1 = mu / alpha if model.loglike_method == "nb1" else np.full_like(mu, 1 / alpha)
    log_prob = np.log(a1 / (a1 + mu))
    dgpart = special.digamma(y + a1) - special.digamma(a1)
    if model.loglike_method == "nb2":
        dparams = a1 * (y - mu) / (mu + a1)
        dalpha = -(dgpart + log_prob - (y - mu) / (a1 + mu)) / alpha ** 2
    else:
        dparams = a1 * (log_prob + dgpart)
        dalpha = ((alpha * (y - mu * log_prob - mu * (dgpart + 1))
                   - mu * (log_prob + dgpart)) / (alpha ** 2 * (alpha + 1)))
    if log_scale:
        dalpha = dalpha * alpha
    return np.column_stack([model.exog * dparams[:, None], dalpha])


class GeneralizedPoisson(TwoStageLikelihoodMixin, sm.GeneralizedPoisson):
    __doc__ = two_stage_docstring(sm.GeneralizedPoisson,
                                  _COUNT_EXAMPLE.format(name="GeneralizedPoisson"))
    _results_name = "TwoStageGeneralizedPoissonResults"

    def __init__(self, endog, exog, p: int = 1, offset=None, exposure=None,
                 missing: str = "none", check_rank: bool = True, *, representation=None,
                 features=None, pretrain_index=None, **kwargs):
        self._check_kwargs(kwargs, error=True)
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=pretrain_index, missing=missing,
                             rowwise={"offset": offset, "exposure": exposure}, p=p,
                             check_rank=check_rank, **kwargs)


class MNLogit(TwoStageLikelihoodMixin, sm.MNLogit):
    __doc__ = two_stage_docstring(sm.MNLogit, """
    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> X_pre = rng.normal(size=(2000, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> rep = ssi.PCA(2).fit(X_pre)
    >>> X = rng.normal(size=(600, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> eta = np.column_stack([np.zeros(600), 0.3 * X[:, 0], -0.2 * X[:, 1]])
    >>> prob = np.exp(eta) / np.exp(eta).sum(1, keepdims=True)
    >>> y = (rng.random((600, 1)) > prob.cumsum(1)).sum(1)
    >>> res = ssi.MNLogit(y, np.ones((600, 1)), representation=rep, features=X).fit(disp=0)
    >>> res.params.shape, res.model.param_names[:3]
    ((3, 2), ['y1_const', 'y1_pc0', 'y1_pc1'])
""")
    _results_name = "TwoStageMNLogitResults"

    def __init__(self, endog, exog, check_rank: bool = True, offset=None, *,
                 representation=None, features=None, pretrain_index=None, **kwargs):
        self._check_kwargs(kwargs, error=True)
        if offset is not None and representation is not None:
            raise ValueError("offset= has no effect in statsmodels' MNLogit (its likelihood "
                             "does not use it), so it is not accepted with a first stage. "
                             "Drop it, or add the variable to the design.")
        if representation is None:  # statsmodels' own keyword (llnull passes it on)
            kwargs["offset"] = offset
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=pretrain_index, check_rank=check_rank, **kwargs)

    def _attach_two_stage(self, **state) -> None:
        super()._attach_two_stage(**state)
        # statsmodels built the coefficient labels from the design names before the
        # feature columns were named
        old = self.data.cov_names
        self.data.cov_names = pd.MultiIndex.from_product(
            (list(old.get_level_values(0).unique()), list(self.data.xnames)),
            names=old.names)

    def _unflat(self, params: np.ndarray):
        return np.asarray(params).reshape(self.K, -1, order="F")

    @property
    def param_names(self) -> list[str]:
        """statsmodels' names of MNLogit coefficients in hypotheses: ``y{level}_{name}``."""
        return [f"y{level}_{name}" for level, name in self.data.cov_names]

    @property
    def equations(self) -> tuple[Equation, ...]:
        """One equation per non-reference outcome level, each on the whole design."""
        d = self.feature_design.n_params
        levels = list(self.data.cov_names.get_level_values(0).unique())
        return tuple(Equation(f"{self.endog_names}={level}", np.arange(e * d, (e + 1) * d),
                              self.feature_design) for e, level in enumerate(levels))


class _DirectEvaluation:
    """``cdf`` and ``pdf`` of a standard scipy distribution (no shape, ``loc`` or
    ``scale``) by its own formulas (``_cdf``, ``_pdf``, the documented subclassing
    hooks), without ``rv_continuous``' generic argument handling, which costs most of
    an ordered model's likelihood evaluation. The values are those of the generic path
    (it evaluates the same formulas at ``(x - 0) / 1``; ``+-inf`` and NaN included, the
    support being the real line). Other calls go the generic way."""

    def cdf(self, x, *args, **kwds):
        if args or kwds:
            return super().cdf(x, *args, **kwds)
        out = self._cdf(np.asarray(x, dtype=float))
        return out[()] if out.ndim == 0 else out

    def pdf(self, x, *args, **kwds):
        if args or kwds:
            return super().pdf(x, *args, **kwds)
        out = self._pdf(np.asarray(x, dtype=float))
        return out[()] if out.ndim == 0 else out


class _Logistic(_DirectEvaluation, type(stats.logistic)):
    pass


class _Normal(_DirectEvaluation, type(stats.norm)):
    pass


#: statsmodels' named links of OrderedModel, with direct cdf and pdf.
_ORDERED_DISTRIBUTIONS = {"logit": _Logistic(name="logistic"), "probit": _Normal(name="norm")}


class OrderedModel(TwoStageLikelihoodMixin, _SMOrderedModel):
    __doc__ = two_stage_docstring(_SMOrderedModel, """
    The design has no constant (the thresholds take its place): with arrays, ``exog``
    holds the covariates and may be None (the learned features alone).

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> X_pre = rng.normal(size=(2000, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> rep = ssi.PCA(2).fit(X_pre)
    >>> X = rng.normal(size=(500, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> latent = 0.4 * X[:, 0] + rng.logistic(size=500)
    >>> y = np.digitize(latent, [-1.0, 1.0])
    >>> res = ssi.OrderedModel(y, None, distr="logit", representation=rep,
    ...                        features=X).fit(method="bfgs", disp=0)
    >>> res.model.param_names
    ['pc0', 'pc1', '0/1', '1/2']
""")
    _results_name = "TwoStageOrderedResults"
    _plain_fit_kwds = {"disp": 0, "method": "bfgs", "maxiter": 1000}

    def __init__(self, endog, exog, offset=None, distr="probit", *, representation=None,
                 features=None, pretrain_index=None, **kwargs):
        if exog is None and representation is not None:
            exog = np.empty((len(endog), 0))
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=pretrain_index, rowwise={"offset": offset},
                             distr=_ORDERED_DISTRIBUTIONS.get(distr, distr)
                             if isinstance(distr, str) else distr, **kwargs)
        # statsmodels keeps neither in the re-instantiation keywords
        self._init_keys = list(self._init_keys) + [key for key in ("offset", "distr")
                                                   if key not in self._init_keys]


class ZeroInflatedPoisson(TwoStageLikelihoodMixin, sm.ZeroInflatedPoisson):
    __doc__ = two_stage_docstring(sm.ZeroInflatedPoisson, """
    inflation_features : bool
        Also append the learned features to the inflation design ``exog_infl``
        (a constant when not given), so that the probability of a structural zero
        depends on them too. Default False: the features enter the count equation
        only. A DataFrame ``exog_infl`` with formulas is aligned on the data's index.

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> X_pre = rng.normal(size=(2000, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> rep = ssi.PCA(2).fit(X_pre)
    >>> X = rng.normal(size=(800, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> zero = rng.random(800) < 1 / (1 + np.exp(1.0 - 0.3 * X[:, 1]))
    >>> y = np.where(zero, 0, rng.poisson(np.exp(0.5 + 0.2 * X[:, 0])))
    >>> res = ssi.ZeroInflatedPoisson(y, np.ones((800, 1)), representation=rep,
    ...                               features=X, inflation_features=True).fit(disp=0)
    >>> res.model.param_names
    ['inflate_const', 'inflate_pc0', 'inflate_pc1', 'const', 'pc0', 'pc1']
""")
    _results_name = "TwoStageZeroInflatedPoissonResults"
    _inflation_design = None

    def __init__(self, endog, exog, exog_infl=None, offset=None, exposure=None,
                 inflation: str = "logit", missing: str = "none", *, representation=None,
                 features=None, pretrain_index=None, inflation_features: bool = False,
                 **kwargs):
        self._check_kwargs(kwargs, error=True)
        if inflation_features and representation is None:
            raise TypeError("inflation_features=True appends the learned features to the "
                            "inflation design and needs representation= and features=.")
        exog_infl = _aligned_inflation_design(exog_infl, endog)
        self._inflation_request = bool(inflation_features)
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=pretrain_index, missing=missing,
                             rowwise={"offset": offset, "exposure": exposure,
                                      "exog_infl": exog_infl},
                             inflation=inflation, **kwargs)
        if self._inflation_request:
            self._attach_inflation_features()

    @classmethod
    def from_formula(cls, formula, data, subset=None, drop_cols=None, *args,
                     inflation_features: bool = False, **kwargs):
        """Create a model from a formula (see the two-stage ``from_formula``).

        ``exog_infl`` (array or DataFrame, one row per row of ``data``) is the
        inflation design, a constant when omitted; ``inflation_features=True`` appends
        the learned features to it.
        """
        if inflation_features:
            if kwargs.get("representation") is None:
                raise TypeError("inflation_features=True appends the learned features to "
                                "the inflation design and needs representation= and "
                                "features=.")
            kwargs["exog_infl"] = _inflation_frame(data, kwargs.get("exog_infl"),
                                                   check_representation(
                                                       kwargs["representation"]),
                                                   kwargs.get("features"))
        advance_eval_env(kwargs)
        mod = super().from_formula(formula, data, subset, drop_cols, *args, **kwargs)
        if inflation_features:
            mod._attach_inflation_features()
        return mod

    def _array_inputs(self, endog, exog, representation, features, pretrain_index, missing,
                      rowwise: dict):
        endog, exog, rowwise, state = super()._array_inputs(
            endog, exog, representation, features, pretrain_index, missing, rowwise)
        if self._inflation_request:
            names = list(state["representation"].get_feature_names_out())
            phi = np.asarray(exog, dtype=float)[:, -len(names):]
            base = rowwise.get("exog_infl")
            if base is None:
                base = pd.DataFrame({"const": np.ones(phi.shape[0])})
            elif not isinstance(base, pd.DataFrame):
                base = np.asarray(base, dtype=float).reshape(phi.shape[0], -1)
                base = pd.DataFrame(base, columns=[f"x{i + 1}" for i in range(base.shape[1])])
            base = base.reset_index(drop=True)
            rowwise["exog_infl"] = pd.concat([base, pd.DataFrame(phi, columns=names)], axis=1)
        return endog, exog, rowwise, state

    def _attach_inflation_features(self) -> None:
        """The learned features are the last columns of ``exog_infl``: their equation."""
        k = len(self.feature_names)
        if not np.allclose(self.exog_infl[:, -k:], self._sample_features(), rtol=1e-12,
                           atol=0):
            raise RuntimeError("The inflation design's feature columns do not match the "
                               "learned features of the sample rows.")
        self._inflation_design = AppendedFeatures(n_base=self.k_inflate - k, n_features=k)
        xnames = list(self.exog_names)
        for position, name in zip(range(self.k_inflate - k, self.k_inflate),
                                  self.feature_names):
            xnames[position] = f"inflate_{name}"
        self.data.xnames = xnames
        self._lift_coefficient_action()

    def _design_name_positions(self) -> np.ndarray:
        return self.k_inflate + np.arange(np.shape(self.exog)[1])

    def hessian(self, params):
        r"""Hessian of the log-likelihood: with a representation, the derivative of
        statsmodels' analytic score.

        statsmodels 0.15's ``ZeroInflatedPoisson.hessian`` leaves the inflation x count
        block at zero (its symmetrisation copies the empty lower block over the computed
        upper one), which makes its standard errors too small. With a first stage
        attached (so for the two-stage AND the naive covariance) this model uses the
        Jacobian of ``score`` instead: central differences with one Richardson step,
        symmetrised, error ``O(h^4)``. Without a representation it is statsmodels'
        method, unchanged.
        """
        if self.representation is None:
            return super().hessian(params)
        params = np.asarray(params, dtype=float)
        steps = _EPS ** 0.2 * np.maximum(np.abs(params), 0.1)
        basis = np.eye(params.size)
        H = np.column_stack([central_derivative(lambda h, a=a: self.score(params + h * basis[a]),
                                                steps[a]) for a in range(params.size)])
        return (H + H.T) / 2.0

    @property
    def equations(self) -> tuple[Equation, ...]:
        """The count equation, then the inflation equation when it has the features."""
        main = Equation("", self._design_name_positions(), self.feature_design)
        if self._inflation_design is None:
            return (main,)
        return (main, Equation("inflate", np.arange(self.k_inflate), self._inflation_design))

    def _equation_actions(self) -> list:
        actions = [self._design_action]
        if self._inflation_design is not None:
            actions.append(self.representation.symmetry_.coefficient_action(
                self.k_inflate, self._inflation_design.plain_cols))
        return actions

    def _design_slots(self) -> list[DesignSlot]:
        slots = super()._design_slots()
        if self._inflation_design is not None:
            design = np.asarray(self.exog_infl, dtype=float)
            k = len(self.feature_names)
            slots.append(DesignSlot("exog_infl", design, self._inflation_design.jacobian(
                design[:, :-k], design[:, -k:]), self._inflation_design.feature_cols))
        return slots

    def _prediction_slots(self, rows, raw, extra: dict, representation=None):
        """The count design and, with inflation features, the inflation design
        ``[exog_infl, phi]`` of new rows (``exog_infl`` a constant when not given)."""
        slots, kwds = super()._prediction_slots(rows, raw, extra, representation)
        if self._inflation_design is None:
            return slots, kwds
        phi = slots[0].design[:, self.rep_cols] if self.feature_design.is_selector else (
            (self.representation if representation is None else representation)
            ._transform(raw))
        n_base = self._inflation_design.n_params - len(self.feature_names)
        base = kwds.pop("exog_infl", None)
        if base is None:
            if n_base != 1 or not np.all(self.exog_infl[:, 0] == 1):
                raise ValueError(
                    f"Pass exog_infl=... for the new rows: the inflation design has "
                    f"{n_base} columns besides the learned features.")
            base = np.ones((phi.shape[0], 1))
        base = np.asarray(base, dtype=float).reshape(phi.shape[0], -1)
        if base.shape[1] != n_base:
            raise ValueError(f"exog_infl for prediction has {base.shape[1]} columns; the "
                             f"inflation design has {n_base} besides the learned features "
                             "(which are appended).")
        design = self._inflation_design.build(base, phi)
        slots.append(DesignSlot("exog_infl", design,
                                self._inflation_design.jacobian(base, phi),
                                self._inflation_design.feature_cols))
        return slots, kwds

    def _check_replicates(self, cov_type, cov_kwds: dict) -> None:
        super()._check_replicates(cov_type, cov_kwds)
        if cov_type in ("bootstrap", "jackknife") and self._inflation_design is not None:
            raise ValueError(
                f"cov_type={cov_type!r} is not available with inflation_features=True: "
                "the replicates would have to rebuild the inflation design from each "
                "refitted representation, which the bootstrap and the jackknife do not "
                "do. Use the analytic two-stage covariance (the default), or keep the "
                "features in the count equation only.")


def wrap_results(results: GenericLikelihoodModelResults) -> ResultsWrapper:
    """A bare statsmodels result in the wrapper the two-stage results are built from."""
    return ResultsWrapper(results)


def _aligned_inflation_design(exog_infl, endog):
    """A DataFrame ``exog_infl`` for all rows of the data, aligned on ``endog``'s index.

    statsmodels' formulas drop rows with missing values from ``endog`` and ``exog`` but
    not from ``exog_infl``; aligning on the index keeps the inflation rows with theirs.
    """
    if (isinstance(exog_infl, pd.DataFrame) and isinstance(endog, (pd.Series, pd.DataFrame))
            and len(exog_infl) != len(endog) and endog.index.isin(exog_infl.index).all()):
        return exog_infl.loc[endog.index]
    return exog_infl


def _inflation_frame(data: pd.DataFrame, exog_infl, rep, features) -> pd.DataFrame:
    """``exog_infl`` (a constant by default) and the learned features of every data row."""
    cols = [features] if isinstance(features, str) else list(features or [])
    missing = [c for c in cols if c not in data.columns]
    if not cols or missing:
        raise ValueError("features= must name the raw columns of data that the "
                         "representation maps, e.g. features=['x1', 'x2', ...].")
    raw = rep._validate_rows(data[cols], "features", allow_nan=True)
    complete = ~np.isnan(raw).any(axis=1)
    names = list(rep.get_feature_names_out())
    phi = np.full((len(data), len(names)), np.nan)
    phi[complete] = rep._transform(raw[complete])
    if exog_infl is None:
        base = pd.DataFrame({"const": np.ones(len(data))}, index=data.index)
    elif isinstance(exog_infl, pd.DataFrame):
        base = exog_infl
    else:
        arr = np.asarray(exog_infl, dtype=float).reshape(len(data), -1)
        base = pd.DataFrame(arr, index=data.index,
                            columns=[f"x{i + 1}" for i in range(arr.shape[1])])
    return pd.concat([base, pd.DataFrame(phi, index=data.index, columns=names)], axis=1)
