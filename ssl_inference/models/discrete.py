"""Two-stage discrete second stages: Logit, Probit and Poisson with learned features."""
from __future__ import annotations

import numpy as np
import statsmodels.api as sm

from ._two_stage import (LIKELIHOOD_COMPUTED, LIKELIHOOD_UNSUPPORTED, TwoStageModelMixin,
                         document_cov_options, statsmodels_cov_arguments,
                         two_stage_docstring)

__all__ = ["Logit", "Probit", "Poisson"]


class _DiscreteMixin(TwoStageModelMixin):
    _plain_fit_kwds = {"disp": 0}  # silent optimizer in bootstrap refits
    _unsupported_second_stages = LIKELIHOOD_UNSUPPORTED
    _computed_second_stage = LIKELIHOOD_COMPUTED

    def _loss_derivatives(self, results):
        r"""Row loss ``rho_j = -loglike_j(eta_j)``: derivatives from statsmodels' factors.

        ``g = d rho / d eta = -score_factor`` and ``g' = d g / d eta = -hessian_factor``
        (observed): for Logit ``g = -(y - p)``, ``g' = p (1 - p)``; for Poisson
        ``g = -(y - lambda)``, ``g' = lambda``; for Probit, with ``q = 2y - 1`` and
        ``r = q phi(q eta) / Phi(q eta)``, ``g = -r`` and ``g' = r (r + eta)``.
        ``H = sum_j g'_j w_j w_j'`` is minus statsmodels' Hessian.
        """
        params = np.asarray(results.params)
        return (-self.score_factor(params), -self.hessian_factor(params),
                np.linalg.pinv(-self.hessian(params)))

    @document_cov_options
    def fit(self, start_params=None, method: str = "newton", maxiter: int = 35,
            full_output: bool = True, disp: bool = True, callback=None,
            cov_type: str | None = None, cov_kwds: dict | None = None,
            use_t: bool | None = None, **kwargs):
        """Fit the second stage by maximum likelihood; two-stage covariance by default.

        Parameters
        ----------
        start_params, method, maxiter, full_output, disp, callback
            As in statsmodels' discrete ``fit``.
        {cov_options}
        use_t : bool, optional
            t/F instead of normal/chi2 reference distributions.
        **kwargs
            Options of the optimizer ``method``; others raise ``TypeError`` when a
            representation is attached.
        """
        fit_kwargs = dict(start_params=start_params, method=method, maxiter=maxiter,
                          full_output=full_output, disp=disp, callback=callback, **kwargs)
        if self.representation is None:
            return super().fit(**statsmodels_cov_arguments(cov_type or "nonrobust", cov_kwds,
                                                           use_t), **fit_kwargs)
        return self._fit_two_stage(super().fit, cov_type, cov_kwds, use_t, fit_kwargs)


_BINARY_EXAMPLE = """
    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> X_pre = rng.normal(size=(2000, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> rep = ssi.PCA(2).fit(X_pre)
    >>> X = rng.normal(size=(500, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> y = (rng.random(500) < 1 / (1 + np.exp(-0.3 * X[:, 0]))).astype(float)
    >>> res = ssi.{name}(y, np.ones((500, 1)), representation=rep, features=X).fit(disp=0)
    >>> res.cov_type, bool(res.bse[0] > res.bse_naive[0])
    ('two-stage', True)
"""


class _BinaryMixin(_DiscreteMixin):
    """Shared constructor of the two-stage binary models (Logit, Probit)."""

    _results_name: str

    def __init__(self, endog, exog, offset=None, check_rank: bool = True, *,
                 representation=None, features=None, pretrain_index=None, **kwargs):
        self._check_kwargs(kwargs, error=True)
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=pretrain_index, rowwise={"offset": offset},
                             check_rank=check_rank, **kwargs)

    @property
    def _results_class(self):
        from .. import results
        return getattr(results, self._results_name)


class Logit(_BinaryMixin, sm.Logit):
    __doc__ = two_stage_docstring(sm.Logit, _BINARY_EXAMPLE.format(name="Logit"))
    _results_name = "TwoStageLogitResults"


class Probit(_BinaryMixin, sm.Probit):
    __doc__ = two_stage_docstring(sm.Probit, _BINARY_EXAMPLE.format(name="Probit"))
    _results_name = "TwoStageProbitResults"


class Poisson(_DiscreteMixin, sm.Poisson):
    __doc__ = two_stage_docstring(sm.Poisson, """
    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> X_pre = rng.normal(size=(2000, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> rep = ssi.PCA(2).fit(X_pre)
    >>> X = rng.normal(size=(400, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> y = rng.poisson(np.exp(0.5 + 0.2 * X[:, 0]))
    >>> res = ssi.Poisson(y, np.ones((400, 1)), representation=rep, features=X).fit(disp=0)
    >>> res.cov_type, bool(res.bse[0] > res.bse_naive[0])
    ('two-stage', True)
""")

    def __init__(self, endog, exog, offset=None, exposure=None, missing: str = "none",
                 check_rank: bool = True, *, representation=None, features=None,
                 pretrain_index=None, **kwargs):
        self._check_kwargs(kwargs, error=True)
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=pretrain_index, missing=missing,
                             rowwise={"offset": offset, "exposure": exposure},
                             check_rank=check_rank, **kwargs)

    @property
    def _results_class(self):
        from ..results import TwoStagePoissonResults
        return TwoStagePoissonResults
