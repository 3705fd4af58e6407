"""Monte Carlo coverage of naive and two-stage intervals: PCA first stage, GEE / QuantReg second.

Usage::

    python benchmarks/coverage_gee_quantreg.py [--reps 2000] [--seed 0]
        [--out benchmarks/results/coverage_gee_quantreg.csv] [--jobs 2]

Writes a long-format CSV (one row per configuration x target) and a Markdown copy
next to it (same stem, ``.md``).

Design
------
The raw inputs, the first stage and the covariate are those of
``benchmarks/coverage_pca_ols.py`` (imported, not copied): ``x`` in R^6 with mean
``MU`` and covariance ``E diag(16, 4, 1, 0.5, 0.3, 0.2) E'``, ``k = 2`` principal
components learned on ``m`` pre-training rows, the covariate ``z`` correlated with
``x`` only outside the learned subspace; ``s = U'(x - mu)`` are the population scores
and ``eta = b0 + b_z z + beta's`` with ``(b0, b_z, beta) = (0.5, 1, (1, 1))`` (Gaussian
outcomes) or ``(-0.3, 0.8, (0.25, 0.5))`` (binary outcomes, those of
``coverage_glm.py``).

GEE (``ssi.GEE``, exchangeable working correlation, default two-stage robust
covariance): ``n = 2000`` labeled rows in ``G = 500`` clusters of 4 (the rows' ``x``
and ``z`` are independent; the outcomes of a cluster are dependent):

* ``gee-gaussian``: ``y = eta + u_g + e``, ``u_g ~ N(0, 0.8^2)`` per cluster,
  ``e ~ N(0, 1)``: the marginal mean is ``eta`` (identity link) and the working
  correlation is correct (``alpha = 0.39``);
* ``gee-logit``: ``y = 1{Phi(Z) < expit(eta)}`` with ``Z`` exchangeable normal within
  a cluster (correlation 0.5, a Gaussian copula): the marginal mean is exactly
  ``expit(eta)``, so the marginal logistic GEE is correctly specified, and the working
  correlation is only approximately right (the robust sandwich does not need it).

Targets: ``const``, ``z``, ``pc0``, ``pc1`` (the generating coefficients, the
population GEE solution at ``theta*``) and the mean ``pred`` at the fixed raw point
``(z0, x0)`` of ``coverage_pca_ols.py`` (delta-method interval).

QuantReg (``ssi.QuantReg``, ``n = 2000`` independent rows):

* ``qr-t4``: ``y = eta + e``, ``e ~ t_4`` (a location shift): the ``tau``-quantile
  coefficients are ``(b0 + F^{-1}(tau), b_z, beta)``, ``tau in {0.5, 0.25}``, default
  ``vcov="robust"`` (statsmodels' pooled density);
* ``qr-hetero``: ``y = eta + (0.5 + |z|) e``, ``e ~ N(0, 1)``, ``tau = 0.5``: the
  median is ``eta``, but the error density at the median varies with ``z``, so the
  pooled density estimate of ``vcov="robust"`` is inconsistent; ``vcov="powell"``
  (Powell's local kernel weights) is the estimator that fits it.

Targets: the four coefficients and the fitted conditional quantile ``pred`` at
``(z0, x0)``.

Pre-training sizes ``m in {2000, 400}`` (n/m = 1 and 5) for every model (GEE-logit and
QuantReg hetero at n/m = 1 only). Intervals (95%, normal reference): naive = estimate
-+ z * statsmodels' SE (features treated as known; prediction SE from
``cov_params_naive`` with the new features held fixed); two-stage = ``res.conf_int()``
and ``res.get_prediction(...).conf_int()``.

statsmodels' QuantReg solver (iteratively reweighted least squares) stops at its
iteration limit in a few replications per thousand (with an ``IterationLimitWarning``);
their estimates are kept, as a user would get them.

Monte Carlo SE of a coverage ``c`` over R reps: ``sqrt(c (1 - c) / R)``; at R = 2000 and
c = 0.95 it is 0.49 points, so the 93.5-96.5% band is about +-3 MC SE. Run time: about
0.5 s per GEE replication (the first-stage derivative of the estimating function is one
pass over the 500 clusters per moved row position and feature column), 0.03 s per
QuantReg replication.
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread per worker process (set before numpy loads)
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit

import ssl_inference as ssi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _coverage  # noqa: E402  (the shared Monte Carlo machinery)
import coverage_pca_ols as ols_bench  # noqa: E402  (the shared x design)

K = ols_bench.K
LEVEL = ols_bench.LEVEL
TARGETS = ("const", "z", "pc0", "pc1", "pred")
CLUSTER_SIZE = 4
RANDOM_EFFECT_SD = 0.8
COPULA_CORRELATION = 0.5
T_DF = 4
#: (b0, b_z, beta) of the Gaussian / quantile and of the binary outcomes
LINEAR = (ols_bench.B0, ols_bench.B_Z, tuple(ols_bench.BETA))
BINARY = (-0.3, 0.8, (0.25, 0.5))


def coefficients(model: str):
    return BINARY if model == "gee-logit" else LINEAR


def linear_predictor(model: str, z, scores):
    b0, b_z, beta = coefficients(model)
    return b0 + b_z * z + scores @ np.asarray(beta)


def truth(model: str, tau: float, design: ols_bench.Design) -> np.ndarray:
    """Population targets in the order of ``TARGETS``."""
    b0, b_z, beta = coefficients(model)
    if model == "qr-t4":
        b0 = b0 + stats.t.ppf(tau, T_DF)
    s0 = design.U.T @ (design.x0 - ols_bench.MU)
    eta0 = b0 + b_z * ols_bench.Z0 + s0 @ np.asarray(beta)
    return np.array([b0, b_z, *beta, expit(eta0) if model == "gee-logit" else eta0])


def draw_outcome(model: str, rng, z, scores, groups) -> np.ndarray:
    eta = linear_predictor(model, z, scores)
    n, n_groups = eta.size, groups.max() + 1
    if model == "gee-gaussian":
        return eta + RANDOM_EFFECT_SD * rng.standard_normal(n_groups)[groups] \
            + rng.standard_normal(n)
    if model == "gee-logit":
        rho = COPULA_CORRELATION
        latent = (np.sqrt(rho) * rng.standard_normal(n_groups)[groups]
                  + np.sqrt(1 - rho) * rng.standard_normal(n))
        return (stats.norm.cdf(latent) < expit(eta)).astype(float)
    if model == "qr-t4":
        return eta + rng.standard_t(T_DF, size=n)
    if model == "qr-hetero":
        return eta + (0.5 + np.abs(z)) * rng.standard_normal(n)
    raise ValueError(f"unknown model {model!r}")


def fit(model: str, y, z, x, groups, rep, tau: float, vcov: str):
    exog = sm.add_constant(z)
    if model.startswith("gee"):
        family = sm.families.Binomial() if model == "gee-logit" else sm.families.Gaussian()
        return ssi.GEE(y, exog, groups, family=family,
                       cov_struct=sm.cov_struct.Exchangeable(), representation=rep,
                       features=x).fit(ctol=1e-8)
    return ssi.QuantReg(y, exog, representation=rep, features=x).fit(q=tau, vcov=vcov)


def one_replication(design, model: str, rng, n: int, m: int, tau: float,
                    vcov: str) -> dict:
    """One data set: estimates, naive and two-stage SEs and coverage of the 5 targets."""
    X_pre = design.draw_x(rng, m, "gaussian")
    _, z, x = design.draw_labeled(rng, n, "gaussian")  # its y is not used
    groups = np.arange(n) // CLUSTER_SIZE
    y = draw_outcome(model, rng, z, (x - ols_bench.MU) @ design.U, groups)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ssi.IdentificationWarning)
        rep = ssi.PCA(K, symmetry="sign").fit(X_pre)
    warned = any(issubclass(w.category, ssi.IdentificationWarning) for w in caught)
    res = fit(model, y, z, x, groups, rep, tau, vcov)
    exog0, feat0 = np.array([[1.0, ols_bench.Z0]]), design.x0[None, :]
    w0 = np.append(exog0[0], rep.transform(feat0)[0])
    se_lin_naive = np.sqrt(w0 @ np.asarray(res.cov_params_naive()) @ w0)
    if model.startswith("gee"):
        pred = res.get_prediction(exog0, features=feat0, which="mean")
        ci_pred = pred.conf_int(method="delta")
        slope = res.model.family.link.inverse_deriv(w0 @ np.asarray(res.params))
        se_pred_naive = np.abs(slope) * se_lin_naive
    else:
        pred = res.get_prediction(exog0, features=feat0)
        ci_pred = pred.conf_int()
        se_pred_naive = se_lin_naive
    est = np.append(np.asarray(res.params), pred.predicted)
    se_two = np.append(np.asarray(res.bse), pred.se)
    se_naive = np.append(np.asarray(res.bse_naive), se_pred_naive)
    ci_two = np.vstack([np.asarray(res.conf_int()), ci_pred])
    target = truth(model, tau, design)
    q = stats.norm.ppf(0.5 + LEVEL / 2)
    return {"est": est, "se_two_stage": se_two, "se_naive": se_naive,
            "cover_two_stage": (ci_two[:, 0] <= target) & (target <= ci_two[:, 1]),
            "cover_naive": np.abs(est - target) <= q * se_naive, "warned": warned}


def simulate(model: str, n: int, m: int, reps: int, seed, *, tau: float = 0.5,
             vcov: str = "robust", design: ols_bench.Design | None = None) -> pd.DataFrame:
    """Coverage table of one (model, n, m, tau, vcov) configuration.

    Parameters
    ----------
    model : {"gee-gaussian", "gee-logit", "qr-t4", "qr-hetero"}
    n, m : int
        Labeled and pre-training sample sizes.
    reps : int
    seed : int or sequence of int
        ``numpy.random.SeedSequence`` entropy; every replication gets its own child.
    tau, vcov
        Quantile and covariance of the QuantReg models (ignored for GEE).

    Returns
    -------
    DataFrame with one row per target: naive and two-stage coverage with MC SEs, bias,
    empirical SD of the estimate and the mean SEs.
    """
    design = ols_bench.Design() if design is None else design
    target = truth(model, tau, design)
    a = _coverage.stack(_coverage.replicate(
        lambda rng: one_replication(design, model, rng, n, m, tau, vcov), reps, seed))
    rows = []
    for i, name in enumerate(TARGETS):
        rows.append({
            "model": model, "tau": tau if model.startswith("qr") else np.nan,
            "vcov": vcov if model.startswith("qr") else "robust",
            "n": n, "m": m, "n_over_m": n / m, "target": name, "truth": target[i],
            "reps": reps,
            **_coverage.coverage_columns(a["cover_naive"][:, i], a["cover_two_stage"][:, i],
                                         reps),
            **_coverage.se_sd_columns(a["est"][:, i], a["se_naive"][:, i],
                                      a["se_two_stage"][:, i]),
            "bias": a["est"][:, i].mean() - target[i], "sd_est": a["est"][:, i].std(ddof=1),
            "mean_se_naive": a["se_naive"][:, i].mean(),
            "mean_se_two_stage": a["se_two_stage"][:, i].mean(),
            "identification_warning_rate": a["warned"].mean(),
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- grid / CLI
N_LABELED = 2000


def grid():
    """(model, n, m, tau, vcov) of the benchmark, in a stable order."""
    n = N_LABELED
    return [("gee-gaussian", n, n, 0.5, "robust"), ("gee-gaussian", n, n // 5, 0.5, "robust"),
            ("gee-logit", n, n, 0.5, "robust"),
            ("qr-t4", n, n, 0.5, "robust"), ("qr-t4", n, n // 5, 0.5, "robust"),
            ("qr-t4", n, n // 5, 0.25, "robust"),
            ("qr-hetero", n, n, 0.5, "powell")]


def run_config(cfg, reps, seed):
    """Coverage table of one grid entry ``(model, n, m, tau, vcov)``."""
    model, n, m, tau, vcov = cfg
    return simulate(model, n, m, reps, seed=seed, tau=tau, vcov=vcov)


def cost(cfg) -> float:
    """Relative run time (GEE's per-cluster loops dominate)."""
    return 10.0 if cfg[0].startswith("gee") else 1.0


def to_markdown(df: pd.DataFrame, reps: int, seed: int, seconds: float) -> str:
    header = [
        "# Coverage of 95% intervals: PCA (k=2, p=6) first stage, GEE / QuantReg second "
        "stage",
        "",
        _coverage.generated_by("coverage_gee_quantreg.py", reps, seed, seconds) + " "
        "Coverage in %, Monte Carlo SE in parentheses. "
        "`se ratio` = mean two-stage SE / mean naive SE; `se/sd` = mean two-stage SE / "
        "Monte Carlo SD of the estimate (1 if the two-stage SE is right), its MC SE in "
        "parentheses. Two-stage target band: 93.5-96.5%. GEE: 500 clusters of 4, "
        "exchangeable working correlation, two-stage robust covariance; QuantReg: "
        "`vcov` is the second-stage covariance (`robust`: statsmodels', `powell`: "
        "Powell's kernel sandwich). `pred`: the mean (GEE) or the conditional quantile "
        "(QuantReg) at a fixed raw point.",
        "",
        "| model | tau | vcov | n | m | n/m | target | naive | two-stage | in band | "
        "se ratio | se/sd |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [
        f"| {r.model} | {'' if np.isnan(r.tau) else f'{r.tau:g}'} | {r.vcov} | {r.n} | "
        f"{r.m} | {r.n_over_m:g} | {r.target} | {_coverage.coverage_cells(r)} | "
        f"{'yes' if _coverage.in_band(r.coverage_two_stage) else '**NO**'} | "
        f"{r.mean_se_two_stage / r.mean_se_naive:.2f} | "
        f"{r.se_sd_two_stage:.3f} ({r.mcse_se_sd_two_stage:.3f}) |"
        for r in df.itertuples()]
    return _coverage.markdown_table(header, rows)


def main(argv=None):
    return _coverage.main(argv, doc=__doc__, script_file=__file__, configs=grid(),
                          run_config=run_config, to_markdown=to_markdown, cost=cost)


if __name__ == "__main__":
    main()
