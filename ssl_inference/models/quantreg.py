r"""Two-stage quantile regression on learned features.

The second stage minimises the check loss ``sum_j rho_tau(y_j - w_j(theta)'beta)``,
``rho_tau(e) = e (tau - 1{e < 0})``; its estimating function is

.. math:: \sum_j \psi_\tau(e_j) w_j = 0, \qquad \psi_\tau(e) = \tau - 1\{e < 0\}

(``psi = tau`` for ``e > 0`` and ``tau - 1`` otherwise, statsmodels' convention at
``e = 0``). The loss is not smooth: the derivative of the expected estimating function
in ``beta`` is ``-E[f(0 | x) w w']`` (``f`` the density of the error at the quantile)
and is estimated by a kernel. We use statsmodels' own estimate, so that the
second-stage part is statsmodels' covariance exactly:

.. math::

    A = \hat f(0) \sum_j w_j w_j', \qquad
    \hat f(0) = \frac{1}{n h} \sum_j K\!\left(\frac{e_j}{h}\right),

with statsmodels' kernel ``K`` (``kernel=``, Epanechnikov by default) and bandwidth
``h = min(sd(y), IQR(e)/1.34) (Phi^{-1}(tau + h_n) - Phi^{-1}(tau - h_n))``, ``h_n``
Hall-Sheather by default (``bandwidth=``; ``QuantReg.fit``). This is Powell's kernel
estimate ``(1/(n h)) sum_j K(e_j/h) w_j w_j'`` under the assumption that the error
density at the quantile does not depend on ``x`` (the assumption statsmodels' robust
covariance makes in its bread). The two-stage covariance is

.. math::

    A^{-1}\Big[\sum_j \psi_j^2 w_j w_j' + \text{first-stage} + \text{cross}\Big] A^{-1},

where ``A^{-1} (sum_j psi_j^2 w_j w_j') A^{-1}`` is statsmodels' ``vcov="robust"``
(``vcov="iid"``: ``tau (1 - tau) / f(0)^2 (W'W)^{-1}``), and the first stage enters
through ``J = d beta_hat / d theta = -A^{-1} C`` with

.. math::

    C = \frac{d}{d\theta} \sum_j \psi_\tau(y_j - w_j(\theta)'\beta) w_j(\theta)
      = \sum_j \Big[\psi_j\, \frac{dw_j}{d\theta}
        - \hat f(0)\, w_j \beta' \frac{dw_j}{d\theta}\Big]:

the derivative of the expected estimating function with the expectation replaced by
the sample average, the density term with the same kernel estimate as ``A`` (one
estimate of the density in every part) and the ``psi_j`` term kept (its mean is zero
at the truth, its sample version is ``O_p(n^{-1/2})``). It is the single-index row
loss of :func:`ssl_inference.jacobian.coefficient_jacobian` with
``g_j = -psi_j`` and ``g'_j = f_hat(0)``.
"""
from __future__ import annotations

import numpy as np
import statsmodels.api as sm

from ..covariance import CovarianceSpec
from ._two_stage import TwoStageModelMixin, two_stage_docstring

__all__ = ["QuantReg"]

#: statsmodels' QuantReg covariance estimators (``fit(vcov=...)``)
QUANTREG_VCOV = ("robust", "iid")


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

    def _loss_derivatives(self, results):
        r"""The check loss in the linear predictor: ``g_j = -psi_tau(e_j)``,
        ``g'_j = f_hat(0)`` (statsmodels' kernel density of the residuals at zero,
        ``1 / results.sparsity``) and ``A^{-1} = (f_hat(0) W'W)^{-1}``."""
        q = results.q
        exog = np.asarray(self.exog, dtype=float)
        resid = np.asarray(self.endog, dtype=float) - exog @ np.asarray(results.params)
        density = 1.0 / results.sparsity
        psi = np.where(resid > 0, q, q - 1.0)
        return (-psi, np.full(resid.shape, density),
                np.linalg.pinv(exog.T @ exog) / density)

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
        vcov : {"robust", "iid"}
            statsmodels' second-stage covariance; the summary reads ``two-stage
            robust`` or ``two-stage iid``.
        cov_type : {"two-stage", "naive"}, optional
            ``"two-stage"`` (default with a representation): ``vcov``'s covariance plus
            the first-stage term and, with overlapping rows, the cross term (no
            small-sample factors: statsmodels' QuantReg has none). ``"naive"``: exactly
            statsmodels' covariance, the learned features treated as known. The
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
        res = super().fit(**options)
        covariance = self._two_stage_covariance(res._results, spec, groups, pre_groups)
        out = self._results_class.from_statsmodels(res, spec, covariance, use_t)
        out._results._fit_kwargs = options
        return out

    def _quantreg_spec(self, cov_type, cov_kwds, vcov) -> CovarianceSpec:
        """Validate ``cov_type`` / ``cov_kwds`` of a two-stage quantile regression."""
        if vcov not in QUANTREG_VCOV:
            raise ValueError(f"vcov must be one of {QUANTREG_VCOV} (statsmodels' QuantReg "
                             f"covariances); got {vcov!r}.")
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
