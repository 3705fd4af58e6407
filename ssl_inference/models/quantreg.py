r"""Two-stage quantile regression on learned features.

The second stage minimises the check loss ``sum_j rho_tau(y_j - w_j(theta)'beta)``,
``rho_tau(e) = e (tau - 1{e < 0})``; its estimating function is

.. math:: \sum_j \psi_\tau(e_j) w_j = 0, \qquad \psi_\tau(e) = \tau - 1\{e < 0\}

(``psi = tau`` for ``e > 0`` and ``tau - 1`` otherwise, statsmodels' convention at
``e = 0``). The loss is not smooth: the derivative of the expected estimating function in
``beta`` is ``-A``, ``A = E[f(0 | x) w w']`` (``f(. | x)`` the density of the error at
the quantile), estimated with a kernel ``K`` and bandwidth ``h``, both statsmodels'
(``kernel=``, Epanechnikov by default; ``bandwidth=``, Hall-Sheather by default:
``h = min(sd(y), IQR(e)/1.34) (Phi^{-1}(tau + h_n) - Phi^{-1}(tau - h_n))``, see
``QuantReg.fit``). Two estimates of ``A`` (``vcov=``):

* ``"robust"`` and ``"iid"`` (statsmodels' covariances, the default; the second-stage
  part is then statsmodels' covariance exactly):

  .. math::

      \hat A = \hat f(0) \sum_j w_j w_j', \qquad
      \hat f(0) = \frac{1}{n h} \sum_j K\!\left(\frac{e_j}{h}\right),

  which assumes that the error density at the quantile does not depend on ``x``
  (location-shift models);
* ``"powell"`` (Powell 1991; R quantreg's ``se="ker"``), consistent when it does:

  .. math::

      \hat A = \frac{1}{h} \sum_j K\!\left(\frac{e_j}{h}\right) w_j w_j'

  (with the uniform kernel ``(1/(2h)) sum_j 1{|e_j| <= h} w_j w_j'``); its second-stage
  part ``A^{-1} (sum_j psi_j^2 w_j w_j') A^{-1}`` is computed here (statsmodels has no
  such covariance).

The two-stage covariance is

.. math::

    \hat A^{-1}\Big[\sum_j \psi_j^2 w_j w_j' + \text{first-stage} + \text{cross}\Big]
    \hat A^{-1},

where the first bracket with ``A_hat`` is statsmodels' ``vcov="robust"``
(``vcov="iid"`` replaces it by ``tau (1 - tau) sum_j w_j w_j'``), and the first stage
enters through ``J = d beta_hat / d theta = A^{-1} C`` with

.. math::

    C = \frac{d}{d\theta} \sum_j \psi_\tau(y_j - w_j(\theta)'\beta) w_j(\theta)
      = \sum_j \Big[\psi_j\, \frac{dw_j}{d\theta}
        - \hat f_j\, w_j \beta' \frac{dw_j}{d\theta}\Big]:

the derivative of the expected estimating function with the expectation replaced by
the sample average, ``f_hat_j`` the density weight of row j in ``A_hat`` (``f_hat(0)``,
or ``K(e_j/h)/h`` for Powell: one density estimate in every part) and the ``psi_j``
term kept (its mean is zero at the truth; its sample version is ``O_p(n^{-1/2})``
relative to the density term, so either choice has the same limit, and keeping it
makes ``C`` the exact derivative of the sample estimating function in the features).
It is the single-index row
loss of :func:`ssl_inference.jacobian.coefficient_jacobian` with
``g_j = -psi_j`` and ``g'_j = f_hat_j``.
"""
from __future__ import annotations

import numpy as np
import statsmodels.api as sm
from statsmodels.regression.linear_model import RegressionResultsWrapper
from statsmodels.regression.quantile_regression import QuantRegResults, kernels

from ..covariance import CovarianceSpec
from ._two_stage import TwoStageModelMixin, two_stage_docstring

__all__ = ["QuantReg"]

#: statsmodels' QuantReg covariance estimators (``fit(vcov=...)``) and Powell's
QUANTREG_VCOV = ("robust", "iid", "powell")


class QuantReg(TwoStageModelMixin, sm.QuantReg):
    __doc__ = two_stage_docstring(sm.QuantReg, """
    The estimating function, the kernel estimate of its derivative and the two-stage
    covariance are in :mod:`ssl_inference.models.quantreg`.

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> rep = ssi.PCA(2).fit(rng.normal(size=(2000, 4)) * [3.0, 2.0, 1.0, 0.5])
    >>> X = rng.normal(size=(500, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> y = 1 + X[:, 0] + rng.standard_t(4, size=500)
    >>> res = ssi.QuantReg(y, np.ones((500, 1)), representation=rep,
    ...                    features=X).fit(q=0.5)
    >>> res.cov_type, bool(res.bse[1] > res.bse_naive[1])
    ('two-stage robust', True)
""", until="Notes")

    def __init__(self, endog, exog, missing: str = "none", *, representation=None,
                 features=None, pretrain_index=None, **kwargs):
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=pretrain_index, missing=missing, **kwargs)

    @property
    def _results_class(self):
        from ..results import TwoStageQuantRegResults
        return TwoStageQuantRegResults

    def _density_weights(self, results) -> np.ndarray:
        """``f_hat_j``: the density weight of each row in ``A_hat`` (module docstring)."""
        resid = self._residuals(results)
        if getattr(results, "_vcov", None) == "powell":
            h = results.bandwidth
            return kernels[results._kernel](resid / h) / h
        return np.full(resid.shape, 1.0 / results.sparsity)

    def _residuals(self, results) -> np.ndarray:
        return (np.asarray(self.endog, dtype=float)
                - np.asarray(self.exog, dtype=float) @ np.asarray(results.params))

    def _loss_derivatives(self, results):
        r"""The check loss in the linear predictor: ``g_j = -psi_tau(e_j)``,
        ``g'_j = f_hat_j`` and ``A_hat^{-1} = (sum_j f_hat_j w_j w_j')^{-1}``
        (statsmodels' ``pinv``)."""
        exog = np.asarray(self.exog, dtype=float)
        psi = np.where(self._residuals(results) > 0, results.q, results.q - 1.0)
        density = self._density_weights(results)
        return -psi, density, np.linalg.pinv((exog * density[:, None]).T @ exog)

    def _powell_results(self, results, kernel: str):
        r"""statsmodels' fit ``results`` with Powell's covariance
        ``A^{-1} (sum_j psi_j^2 w_j w_j') A^{-1}``, ``A = (1/h) sum_j K(e_j/h) w_j w_j'``."""
        base = results._results
        base._vcov, base._kernel = "powell", kernel
        g, density, a_inv = self._loss_derivatives(base)
        if not np.all(np.isfinite(a_inv)) or np.count_nonzero(density) < a_inv.shape[0]:
            raise ValueError(
                "Powell's kernel estimate of the Hessian is singular: fewer residuals than "
                "coefficients lie within the bandwidth of zero. Use vcov='robust' "
                "(statsmodels' pooled density estimate) or another bandwidth.")
        exog = np.asarray(self.exog, dtype=float)
        meat = (exog * (g ** 2)[:, None]).T @ exog
        out = QuantRegResults(self, base.params, normalized_cov_params=a_inv @ meat @ a_inv)
        for key in ("q", "iterations", "sparsity", "bandwidth", "history", "_vcov",
                    "_kernel"):
            setattr(out, key, getattr(base, key))
        return RegressionResultsWrapper(out)

    def fit(self, q: float = 0.5, vcov: str = "robust", kernel: str = "epa",
            bandwidth: str = "hsheather", max_iter: int = 1000, p_tol: float = 1e-6, *,
            cov_type: str | None = None, cov_kwds: dict | None = None,
            use_t: bool | None = None, **kwargs):
        """Fit the quantile ``q`` by statsmodels; two-stage covariance by default.

        Parameters
        ----------
        q, kernel, bandwidth, max_iter, p_tol
            As in :meth:`statsmodels.regression.quantile_regression.QuantReg.fit`
            (``kernel`` and ``bandwidth`` choose the density estimate ``f_hat(0)`` of
            every part of the covariance, see :mod:`ssl_inference.models.quantreg`).
        vcov : {"robust", "iid", "powell"}
            The second-stage covariance: statsmodels' ``"robust"`` or ``"iid"``
            (pooled density estimate), or Powell's kernel sandwich (local density
            weights; consistent when the error density at the quantile varies with
            the covariates); the summary reads e.g. ``two-stage robust``.
        cov_type : {"two-stage", "naive"}, optional
            ``"two-stage"`` (default with a representation): ``vcov``'s covariance plus
            the first-stage term and, with overlapping rows, the cross term (no
            small-sample factors: statsmodels' QuantReg has none). ``"naive"``: exactly
            statsmodels' covariance (Powell's sandwich for ``vcov="powell"``), the
            learned features treated as known. The
            bootstrap, the jackknife and the other models' cov_types are refused.
        cov_kwds : dict, optional
            ``pretrain_groups``: cluster labels of the pre-training rows (one per row
            of ``X_pre``) for the first-stage term.
        use_t : bool, optional
            t instead of normal reference distributions (default normal).
        **kwargs
            Passed to statsmodels' ``fit`` without a representation; refused with one.

        Returns
        -------
        TwoStageQuantRegResults
            Without a representation, statsmodels' own results.
        """
        options = dict(q=q, vcov=vcov, kernel=kernel, bandwidth=bandwidth,
                       max_iter=max_iter, p_tol=p_tol)
        if self.representation is None:
            if cov_type is not None or cov_kwds is not None or use_t is not None:
                raise TypeError("cov_type=, cov_kwds= and use_t= select two-stage options "
                                "and need a model with representation=; statsmodels' "
                                "QuantReg chooses its covariance by vcov=.")
            return super().fit(**options, **kwargs)
        if kwargs:
            raise TypeError(f"fit() got unexpected keyword arguments {sorted(kwargs)}.")
        spec = self._quantreg_spec(cov_type, cov_kwds, vcov)
        groups, pre_groups = self._cluster_labels(spec)
        res = super().fit(**{**options, "vcov": "robust" if vcov == "powell" else vcov})
        if vcov == "powell":
            res = self._powell_results(res, kernel)
        covariance = self._two_stage_covariance(res._results, spec, groups, pre_groups)
        out = self._results_class.from_statsmodels(res, spec, covariance, use_t)
        out._results._fit_kwargs = options
        return out

    def _quantreg_spec(self, cov_type, cov_kwds, vcov) -> CovarianceSpec:
        """Validate ``cov_type`` / ``cov_kwds`` of a two-stage quantile regression."""
        if vcov not in QUANTREG_VCOV:
            raise ValueError(f"vcov must be one of {QUANTREG_VCOV} (statsmodels' QuantReg "
                             f"covariances and Powell's kernel sandwich); got {vcov!r}.")
        kind = "two-stage" if cov_type is None else cov_type
        if kind not in ("two-stage", "naive"):
            raise ValueError(
                f"cov_type for QuantReg must be 'two-stage' or 'naive'; got {cov_type!r}. "
                "statsmodels' QuantReg chooses its second-stage covariance with vcov= "
                "('robust' or 'iid'); heteroskedasticity-consistent and cluster covariances "
                "of least squares ('HC0', 'cluster', ...) do not apply to the check loss, "
                "and the bootstrap and jackknife are not available for quantile "
                "regression second stages here.")
        cov_kwds = {} if cov_kwds is None else dict(cov_kwds)
        unknown = sorted(set(cov_kwds) - {"pretrain_groups"})
        if unknown:
            raise ValueError(f"Unknown cov_kwds {unknown} for QuantReg; the only key is "
                             "'pretrain_groups' (clusters of the pre-training rows). "
                             "Clustered labeled rows are not available for QuantReg.")
        if (cov_kwds.get("pretrain_groups") is not None and self.pretrain_index is not None
                and bool((self.pretrain_index >= 0).any())):
            raise ValueError(
                "pretrain_groups with overlapping samples (pretrain_index) is not available "
                "for QuantReg: the labeled rows cannot be clustered (statsmodels' QuantReg "
                "has no cluster covariance), so shared clusters would lose their cross "
                "term. Drop pretrain_groups (rows are then the units) or the overlap.")
        return CovarianceSpec(kind, vcov, pretrain_groups=cov_kwds.get("pretrain_groups"))
