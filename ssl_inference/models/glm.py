"""Two-stage generalized linear models: every statsmodels family and link."""
from __future__ import annotations

import numpy as np
import statsmodels.api as sm

from ._two_stage import (LIKELIHOOD_COMPUTED, LIKELIHOOD_UNSUPPORTED, TwoStageModelMixin,
                         document_cov_options, statsmodels_cov_arguments,
                         two_stage_docstring)

__all__ = ["GLM"]

# keywords GLM's IRLS reads from ``fit(**kwargs)``; statsmodels ignores any others silently
IRLS_OPTIONS = ("attach_wls", "atol", "rtol", "tol_criterion", "wls_method")


class GLM(TwoStageModelMixin, sm.GLM):
    __doc__ = two_stage_docstring(sm.GLM, """
    Examples
    --------
    >>> import numpy as np, statsmodels.api as sm, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> X_pre = rng.normal(size=(2000, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> rep = ssi.PCA(2).fit(X_pre)
    >>> X = rng.normal(size=(400, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> y = rng.poisson(np.exp(0.5 + 0.2 * X[:, 0]))
    >>> res = ssi.GLM(y, np.ones((400, 1)), family=sm.families.Poisson(),
    ...               representation=rep, features=X).fit()
    >>> res.cov_type, bool(res.bse[0] > res.bse_naive[0])
    ('two-stage', True)
""")

    def __init__(self, endog, exog, family=None, offset=None, exposure=None,
                 freq_weights=None, var_weights=None, missing: str = "none", *,
                 representation=None, features=None, pretrain_index=None, **kwargs):
        self._check_kwargs(kwargs, ["n_trials"], error=True)
        self._init_two_stage(
            endog, exog, representation=representation, features=features,
            pretrain_index=pretrain_index, missing=missing,
            rowwise={"offset": offset, "exposure": exposure, "freq_weights": freq_weights,
                     "var_weights": var_weights},
            family=family, **kwargs)

    def _attach_two_stage(self, **state) -> None:
        super()._attach_two_stage(**state)
        if self.pretrain_index is not None and np.any(
                np.asarray(self.freq_weights)[self.pretrain_index >= 0] != 1):
            raise ValueError(
                "freq_weights on labeled rows that are also pre-training rows "
                "(pretrain_index) are ambiguous: a frequency weight says the row stands for "
                "several units, but it is one row of X_pre. Repeat such rows in both samples, "
                "or use var_weights."
            )

    _unsupported_second_stages = LIKELIHOOD_UNSUPPORTED
    _computed_second_stage = LIKELIHOOD_COMPUTED

    @property
    def _results_class(self):
        from ..results import TwoStageGLMResults
        return TwoStageGLMResults

    def _loss_derivatives(self, results):
        r"""Row-loss derivatives in the linear predictor, free of the dispersion.

        The row loss is ``rho_j = -phi * loglike_j`` (``phi`` the scale), with
        ``mu = l^{-1}(eta)``, variance function ``V`` and prior weights
        ``a_j = freq_weights * var_weights`` (times ``n_trials`` for binomial counts):

        .. math::

            g_j = -a_j \frac{y_j - \mu_j}{V(\mu_j)\, l'(\mu_j)}, \qquad
            g'_j = \frac{a_j}{V l'^2}
                   \left[1 + (y_j - \mu_j) \frac{V l'' + V' l'}{V l'}\right],

        the OBSERVED second derivative (it differs from the IRLS weight for
        non-canonical links), and ``H = sum_j g'_j w_j w_j'``. Multiplying the loss by
        the dispersion leaves ``J = -H^{-1} C`` unchanged, so the scale only enters
        the second-stage covariance, which statsmodels computes.
        """
        params = np.asarray(results.params)
        g = -self.score_factor(params, scale=1.0)
        g_prime = self.hessian_factor(params, scale=1.0, observed=True)
        return g, g_prime, np.linalg.pinv(-self.hessian(params, scale=1.0, observed=True))

    @document_cov_options
    def fit(self, start_params=None, maxiter: int = 100, method: str = "IRLS",
            tol: float = 1e-8, scale=None, cov_type: str | None = None,
            cov_kwds: dict | None = None, use_t: bool | None = None, full_output: bool = True,
            disp: bool = False, max_start_irls: int = 3, **kwargs):
        """Fit the second stage by statsmodels' GLM; two-stage covariance by default.

        Parameters
        ----------
        start_params, maxiter, method, tol, scale, full_output, disp, max_start_irls
            As in :meth:`statsmodels.genmod.generalized_linear_model.GLM.fit`.
        {cov_options}
        use_t : bool, optional
            t/F instead of normal/chi2 reference distributions.
        **kwargs
            IRLS options (``atol``, ``rtol``, ``tol_criterion``, ``wls_method``,
            ``attach_wls``) or the optimizer's options for other methods; anything else
            raises ``TypeError`` when a representation is attached.
        """
        fit_kwargs = dict(start_params=start_params, maxiter=maxiter, method=method, tol=tol,
                          scale=scale, full_output=full_output, disp=disp,
                          max_start_irls=max_start_irls, **kwargs)
        if self.representation is None:
            return super().fit(**statsmodels_cov_arguments(cov_type or "nonrobust", cov_kwds,
                                                           use_t), **fit_kwargs)
        unknown = sorted(set(kwargs) - set(IRLS_OPTIONS))
        if method.lower() == "irls" and unknown:
            raise TypeError(f"fit() got unexpected keyword arguments {unknown}; IRLS accepts "
                            f"{list(IRLS_OPTIONS)}.")
        return self._fit_two_stage(super().fit, cov_type, cov_kwds, use_t, fit_kwargs)
