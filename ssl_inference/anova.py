"""statsmodels' ``anova_lm`` with two-stage results: per-term Wald tests, or a refusal.

``statsmodels.stats.anova.anova_lm`` reads attributes of the results it is given:

* one model, ``typ=2`` or ``typ=3``: per-term F tests through ``results.f_test`` with
  ``results.cov_params()`` (or ``cov_HC0`` ... ``cov_HC3`` for ``robust="hc0"``...),
  which for two-stage results are two-stage covariances; hypotheses the symmetry group
  does not preserve are refused by ``f_test``. Correct as it is.
* one model, ``typ=1``: sequential sums of squares from the QR ``effects``. Two-stage
  results refuse through their ``effects`` attribute, whatever the import order.
* several models: F tests from each model's ``ssr``, ``df_resid`` and ``scale``, which
  ignore the first stage and cannot be intercepted through attributes. :func:`anova_lm`
  refuses them; ``import ssl_inference`` installs it as
  ``statsmodels.stats.anova.anova_lm`` and ``statsmodels.stats.api.anova_lm``
  (``sm.stats.anova_lm``). With any other arguments it calls statsmodels' function
  unchanged. A reference to statsmodels' function taken before ``import
  ssl_inference`` (``from statsmodels.stats.anova import anova_lm`` first) is not
  covered for several models.
"""
from __future__ import annotations

import statsmodels.stats.anova as sm_anova
import statsmodels.stats.api as sm_stats_api

from .exceptions import FirstStageBlindError

__all__ = ["anova_lm", "install_anova_guard"]

#: statsmodels' own function (also when this module is reloaded after installing)
STATSMODELS_ANOVA_LM = getattr(sm_anova.anova_lm, "__wrapped__", sm_anova.anova_lm)


def _is_two_stage(results) -> bool:
    from .results import TwoStageResultsMixin

    results = getattr(results, "_results", results)
    return isinstance(results, TwoStageResultsMixin) and results._spec.cov_type != "naive"


def anova_lm(*args, **kwargs):
    """statsmodels' ``anova_lm``, refusing a comparison of several models with a
    two-stage result among them.

    Parameters and returns are statsmodels'
    (:func:`statsmodels.stats.anova.anova_lm`). A single two-stage result works with
    ``typ=2`` and ``typ=3`` (per-term Wald F tests with the two-stage covariance) and
    refuses ``typ=1``; several models raise
    :class:`~ssl_inference.exceptions.FirstStageBlindError` when one of them is a
    two-stage result (``cov_type="naive"`` results are statsmodels' own and pass).

    Examples
    --------
    >>> import numpy as np, pandas as pd, statsmodels.api as sm
    >>> import ssl_inference as ssi, ssl_inference.formula.api as smf
    >>> rng = np.random.default_rng(0)
    >>> rep = ssi.PCA(2).fit(rng.normal(size=(500, 4)) * [3.0, 2.0, 1.0, 0.5])
    >>> df = pd.DataFrame(rng.normal(size=(300, 4)) * [3.0, 2.0, 1.0, 0.5],
    ...                   columns=["x0", "x1", "x2", "x3"])
    >>> df["z"] = rng.normal(size=300)
    >>> df["y"] = df["x0"] + 0.5 * df["z"] + rng.normal(size=300)
    >>> full = smf.ols("y ~ z", df, representation=rep, features=list(df)[:4]).fit()
    >>> list(sm.stats.anova_lm(full, typ=2).index)
    ['z', 'pc0', 'pc1', 'Residual']
    >>> small = smf.ols("y ~ 1", df, representation=rep, features=list(df)[:4]).fit()
    >>> sm.stats.anova_lm(small, full)
    Traceback (most recent call last):
        ...
    ssl_inference.exceptions.FirstStageBlindError: anova_lm(...) with several models ...
    """
    if len(args) > 1 and any(_is_two_stage(arg) for arg in args):
        raise FirstStageBlindError(
            "anova_lm(...) with several models compares their residual sums of squares, "
            "which treat the learned features as known data: the F tests ignore the first "
            "stage and have no two-stage version. Compare nested models with "
            "full.compare_f_test(restricted) (a two-stage Wald F test), one pair at a "
            "time, or use anova_lm(full, typ=2) / full.wald_test_terms().")
    return STATSMODELS_ANOVA_LM(*args, **kwargs)


anova_lm.__wrapped__ = STATSMODELS_ANOVA_LM


def install_anova_guard() -> None:
    """Make ``statsmodels.stats.anova.anova_lm`` and ``sm.stats.anova_lm`` refer to
    :func:`anova_lm` (idempotent)."""
    sm_anova.anova_lm = anova_lm
    sm_stats_api.anova_lm = anova_lm
