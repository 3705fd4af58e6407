"""Two-stage least squares second stages: OLS and WLS with learned features."""
from __future__ import annotations

import numpy as np
import statsmodels.api as sm

from ._two_stage import TwoStageModelMixin, document_cov_options, two_stage_docstring

__all__ = ["OLS", "WLS"]


class _LeastSquaresMixin(TwoStageModelMixin):
    def _loss_derivatives(self, results):
        """Row loss ``wt (y - w'beta)^2 / 2``: ``g = -wt * resid``, ``g' = wt``, ``H = W'Omega W``."""
        wt = np.broadcast_to(np.asarray(self.weights, dtype=float), self.endog.shape)
        resid = self.endog - np.asarray(self.exog, dtype=float) @ np.asarray(results.params)
        return -wt * resid, wt, np.asarray(results.normalized_cov_params)

    def _leverage(self, results) -> np.ndarray:
        """``h_j = wt_j w_j' (W' Omega W)^{-1} w_j``, the leverage statsmodels' HC2/HC3 use."""
        wexog = np.asarray(self.wexog, dtype=float)
        return np.einsum("ij,jk,ik->i", wexog, np.asarray(results.normalized_cov_params), wexog)

    @document_cov_options
    def fit(self, method: str = "pinv", cov_type: str | None = None, cov_kwds: dict | None = None,
            use_t: bool | None = None, **kwargs):
        """Fit the second stage; two-stage covariance by default.

        Parameters
        ----------
        method : {"pinv", "qr"}
            As in statsmodels.
        {cov_options}
        use_t : bool, optional
            t/F instead of normal/chi2 reference distributions. Default: statsmodels'
            choice for "naive", normal for the others (the first-stage term is
            asymptotic).

        Returns
        -------
        TwoStageOLSResults or TwoStageRegressionResults
            Without a representation, statsmodels' own results.
        """
        if self.representation is None:
            return super().fit(method=method, cov_type=cov_type or "nonrobust",
                               cov_kwds=cov_kwds, use_t=use_t, **kwargs)
        if kwargs:
            raise TypeError(f"fit() got unexpected keyword arguments {sorted(kwargs)}; "
                            "accepted: method, cov_type, cov_kwds, use_t.")
        return self._fit_two_stage(super().fit, cov_type, cov_kwds, use_t, {"method": method})


class WLS(_LeastSquaresMixin, sm.WLS):
    __doc__ = two_stage_docstring(sm.WLS, """
    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> X_pre = rng.normal(size=(2000, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> rep = ssi.PCA(2).fit(X_pre)
    >>> X = rng.normal(size=(300, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> y = 1 + X[:, 0] + rng.normal(size=300)
    >>> res = ssi.WLS(y, np.ones((300, 1)), weights=np.ones(300),
    ...               representation=rep, features=X).fit()
    >>> res.cov_type
    'two-stage'
""")

    def __init__(self, endog, exog, weights=1.0, missing: str = "none", hasconst=None, *,
                 representation=None, features=None, pretrain_index=None, **kwargs):
        self._check_kwargs(kwargs, error=True)
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=pretrain_index, missing=missing,
                             rowwise={"weights": weights}, hasconst=hasconst, **kwargs)

    @property
    def _results_class(self):
        from ..results import TwoStageRegressionResults
        return TwoStageRegressionResults


class OLS(_LeastSquaresMixin, sm.OLS):
    __doc__ = two_stage_docstring(sm.OLS, """
    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> X_pre = rng.normal(size=(2000, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> rep = ssi.PCA(2).fit(X_pre)
    >>> X = rng.normal(size=(300, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> y = 1 + X[:, 0] + rng.normal(size=300)
    >>> res = ssi.OLS(y, np.ones((300, 1)), representation=rep, features=X).fit()
    >>> bool(res.bse[0] > res.bse_naive[0])
    True
""")

    def __init__(self, endog, exog=None, missing: str = "none", hasconst=None, *,
                 representation=None, features=None, pretrain_index=None, **kwargs):
        # statsmodels' OLS takes an offset (elastic-net refits pass one) when plain
        self._check_kwargs(kwargs, ["offset"] if representation is None else None,
                           error=True)
        self._init_two_stage(endog, exog, representation=representation, features=features,
                             pretrain_index=pretrain_index, missing=missing,
                             hasconst=hasconst, **kwargs)

    @property
    def _results_class(self):
        from ..results import TwoStageOLSResults
        return TwoStageOLSResults
