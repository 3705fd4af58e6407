"""Monte Carlo coverage of naive and two-stage inference: factor-model first stage, OLS second.

Usage::

    nice python benchmarks/coverage_factor.py [--reps 2000] [--seed 0]
        [--out benchmarks/results/coverage_factor.csv] [--jobs 2]

Writes a long-format CSV (one row per configuration x target) and a Markdown copy next
to it (same stem, ``.md``).

Design
------
Raw inputs ``x = mu + Lambda h + e`` in R^p, ``p = 6``, ``k = 2`` factors,
``Var(h) = I``, ``Var(e) = Psi = diag(PSI)``; the loadings ``LAMBDA`` have two clear
factors (signal-to-noise ``diag(Lambda' Psi^-1 Lambda)`` = (6.8, 4.1) in the gauge).
A ``FactorModel(2, noise="diagonal", scores="regression")`` is fitted by maximum
likelihood on ``m`` pre-training rows; the labeled sample has ``n`` independent rows.

* Laws: Gaussian (``h``, ``e`` standard normal) and skewed (``h``, ``e`` centred unit
  exponentials, skewness 2, excess kurtosis 6). Both have the same covariance, so the
  ML estimate targets the same ``theta*``; under the skewed law the Gaussian Fisher
  information is wrong and only the sandwich first-stage term is right.
* Features at the truth: ``phi*(x) = W*(x - mu)``, ``W* = Lambda' Sigma^-1`` (regression
  scores), written here in the generating rotation; the fitted features estimate a
  rotation of it, which leaves every target below unchanged.
* Covariate ``z = Z_MEAN + c'(x - mu) + SD_Z e_z`` with ``c = C_X`` loading on raw
  features 2 and 5, i.e. on the factors *and* on the unique parts ``e_2, e_5``. An
  estimated ``theta_hat`` changes how much of ``e_2, e_5`` the learned features carry;
  that leak is correlated with ``z``, so ``b_z_hat`` moves at order ``1/sqrt(m)``.
* Outcome ``y = B0 + B_Z z + BETA' phi*(x) + SIGMA eps``: exactly linear in
  ``[1, z, phi*(x)]`` with an independent error, so the second-stage targets are the
  generating values (THEORY.md §1). A second outcome ``y0 = B0 + B_Z z + SIGMA eps``
  (``beta_rep = 0``) on the same rows gives the null for the joint test.

Targets (all invariant under the rotation group O(2), so they have a gauge-free meaning):

* ``const`` (``B0``) and ``z`` (``B_Z``): 95% Wald intervals;
* ``pred``: the regression function ``B0 + B_Z z0 + BETA' phi*(x0)`` at a fixed new raw
  point, ``x0 = mu + 2 lambda_1 - lambda_2 + e_2`` (partly outside the factor span, so
  the new features move with ``theta_hat`` too), ``z0 = 1.5``;
* ``wald_null``: the joint test ``f0 = f1 = 0`` (chi-square, 2 df, level 5%) for the null
  outcome ``y0``; the reported "coverage" is 1 - rejection rate (target 95%). Under
  ``beta_rep = 0`` the first stage enters the covariance only through the residuals'
  correlation with ``d phi / d theta``, which is zero: this row checks the size of the
  invariant test, not a first-stage correction (naive and two-stage agree).

Sizes: ``n = 2000`` and ``m in {20000, 2000, 400}`` (n/m = 0.1, 1, 5). At ``m = 400``
(~67 rows per raw feature) the first stage multiplies the intercept SE by ~2.5 and the
SEs of ``b_z`` and of the prediction by ~1.3-1.6; naive intervals are far too short
there.

Intervals: naive = plain statsmodels (first stage known), ``t_{df_resid}`` quantiles with
``bse_naive``, prediction SE from ``cov_params_naive``, naive Wald from
``cov_params_naive``. Two-stage = ``res.conf_int()``, ``get_prediction().conf_int()``,
``res.wald_test(..., use_f=False)`` (normal / chi-square reference, the package default).
Second stage ``nonrobust``.

Speed: ``FactorModel(n_init=1)`` (Joreskog's start only; on these well-posed problems the
extra random starts of the default ``n_init=3`` reach the same optimum and triple the
cost). Runs with one BLAS thread per worker.

Monte Carlo SE of a coverage ``c`` over R reps: ``sqrt(c (1 - c) / R)``; 0.49 points at
R = 2000 and c = 0.95, so the 93.5-96.5% band is about +-3 MC SE.
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

import ssl_inference as ssi
from ssl_inference.exceptions import GaugeDependentWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _coverage  # noqa: E402  (the shared Monte Carlo machinery)

P = 6
K = 2
LAMBDA = np.array([[1.0, 0.8, 0.7, 0.2, 0.1, 0.5],
                   [0.0, 0.3, -0.4, 0.9, 1.0, 0.6]]).T
PSI = np.array([0.5, 0.4, 0.6, 0.5, 0.3, 0.7])
MU = np.array([3.0, -1.0, 0.5, 0.0, 2.0, 1.0])
B0 = 0.5
B_Z = 1.0
BETA = np.array([1.0, 1.0])
SIGMA = 1.0
Z_MEAN = 1.0
SD_Z = 0.5
C_X = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 1.0])
Z0 = 1.5
X0 = MU + 2.0 * LAMBDA[:, 0] - LAMBDA[:, 1] + np.eye(P)[2]
TARGETS = ("const", "z", "pred", "wald_null")
LEVEL = 0.95
LAWS = ("gaussian", "skewed")
N_LABELED = 2000
M_VALUES = (20_000, 2_000, 400)


def population_scores() -> np.ndarray:
    """``W* = Lambda' Sigma^-1`` (k, p): regression scores at the truth."""
    return np.linalg.solve(LAMBDA @ LAMBDA.T + np.diag(PSI), LAMBDA).T


def truth() -> dict:
    """Population targets (gauge-free); ``wald_null`` is the non-rejection rate."""
    return {"const": B0, "z": B_Z,
            "pred": B0 + B_Z * Z0 + BETA @ population_scores() @ (X0 - MU),
            "wald_null": LEVEL}


def draw_x(rng: np.random.Generator, size: int, law: str) -> np.ndarray:
    """Rows ``mu + Lambda h + e``: Gaussian or centred-exponential ``h`` and ``e``."""
    if law == "gaussian":
        h, e = rng.standard_normal((size, K)), rng.standard_normal((size, P))
    elif law == "skewed":
        h, e = rng.exponential(size=(size, K)) - 1.0, rng.exponential(size=(size, P)) - 1.0
    else:
        raise ValueError(f"unknown law {law!r}")
    return MU + h @ LAMBDA.T + e * np.sqrt(PSI)


def one_replication(rng: np.random.Generator, n: int, m: int, law: str) -> dict:
    """One data set: estimates, naive and two-stage SEs and coverage of each target."""
    target = truth()
    X_pre = draw_x(rng, m, law)
    x = draw_x(rng, n, law)
    z = Z_MEAN + (x - MU) @ C_X + SD_Z * rng.standard_normal(n)
    noise = SIGMA * rng.standard_normal(n)
    y = B0 + B_Z * z + (x - MU) @ population_scores().T @ BETA + noise
    y0 = B0 + B_Z * z + noise
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = ssi.FactorModel(K, n_init=1).fit(X_pre)
    warned = any(issubclass(w.category, (ssi.IdentificationWarning, ssi.ConvergenceWarning))
                 for w in caught)
    exog = sm.add_constant(z)
    res = ssi.OLS(y, exog, representation=rep, features=x).fit()
    pred = res.get_prediction(np.array([[1.0, Z0]]), features=X0[None, :])
    est = np.array([res.params[0], res.params[1], pred.predicted_mean[0]])
    se2 = np.array([res.bse[0], res.bse[1], pred.se_mean[0]])
    w0 = np.append([1.0, Z0], rep.transform(X0[None, :])[0])
    cov_n = np.asarray(res.cov_params_naive())
    se_n = np.array([res.bse_naive[0], res.bse_naive[1], np.sqrt(w0 @ cov_n @ w0)])
    with warnings.catch_warnings():  # the learned features' rows are NaN (gauge-dependent)
        warnings.simplefilter("ignore", GaugeDependentWarning)
        ci2 = np.vstack([np.asarray(res.conf_int())[:2], pred.conf_int()])
    q = stats.t.ppf(0.5 + LEVEL / 2, res.df_resid)
    values = np.array([target[t] for t in TARGETS[:3]])
    cover2 = (ci2[:, 0] <= values) & (values <= ci2[:, 1])
    cover_n = np.abs(est - values) <= q * se_n

    res0 = ssi.OLS(y0, exog, representation=rep, features=x).fit()
    R = np.zeros((K, 2 + K))
    R[:, 2:] = np.eye(K)
    wald2 = res0.wald_test(R, use_f=False, scalar=True)
    wald_n = res0.wald_test(R, cov_p=np.asarray(res0.cov_params_naive()), use_f=False,
                            scalar=True)
    return {
        "est": np.append(est, wald2.statistic), "se_two_stage": np.append(se2, np.nan),
        "se_naive": np.append(se_n, np.nan),
        "cover_two_stage": np.append(cover2, wald2.pvalue >= 1 - LEVEL),
        "cover_naive": np.append(cover_n, wald_n.pvalue >= 1 - LEVEL),
        "warned": warned,
    }


def simulate(n: int, m: int, law: str, reps: int, seed) -> pd.DataFrame:
    """Coverage table of one (n, m, law) configuration.

    Parameters
    ----------
    n, m : int
        Labeled and pre-training sample sizes.
    law : {"gaussian", "skewed"}
    reps : int
    seed : int or sequence of int
        SeedSequence entropy; every replication gets an independent child stream.

    Returns
    -------
    DataFrame with one row per target: coverage (for ``wald_null``: 1 - rejection
    rate) and Monte Carlo SE of naive and two-stage inference, bias, SD of the
    estimates, mean SEs and the rate of first-stage warnings.
    """
    target = truth()
    a = _coverage.stack(_coverage.replicate(
        lambda rng: one_replication(rng, n, m, law), reps, seed))
    rows = []
    for i, t in enumerate(TARGETS):
        is_test = t == "wald_null"
        rows.append({
            "law": law, "n": n, "m": m, "n_over_m": n / m, "target": t,
            "truth": target[t], "reps": reps,
            **_coverage.coverage_columns(a["cover_naive"][:, i], a["cover_two_stage"][:, i],
                                         reps),
            "bias": np.nan if is_test else a["est"][:, i].mean() - target[t],
            "sd_est": np.nan if is_test else a["est"][:, i].std(ddof=1),
            "mean_se_naive": np.nan if is_test else a["se_naive"][:, i].mean(),
            "mean_se_two_stage": np.nan if is_test else a["se_two_stage"][:, i].mean(),
            "warning_rate": a["warned"].mean(),
        })
    return pd.DataFrame(rows)


def grid():
    """(n, m, law) of the benchmark, in a stable order."""
    return [(N_LABELED, m, law) for law in LAWS for m in M_VALUES]


def run_config(cfg, reps, seed):
    """Coverage table of one grid entry ``(n, m, law)``."""
    n, m, law = cfg
    return simulate(n, m, law, reps, seed=seed)


def to_markdown(df: pd.DataFrame, reps: int, seed: int, seconds: float) -> str:
    header = [
        "# Coverage of 95% intervals: factor model (k=2, p=6) first stage, OLS second stage",
        "",
        _coverage.generated_by("coverage_factor.py", reps, seed, seconds) + " "
        "Coverage in %, Monte Carlo SE in parentheses; for "
        "`wald_null` the entry is 100 - rejection rate of the 5%-level joint test "
        "`f0 = f1 = 0` under a true null. `se ratio` = mean two-stage SE / mean naive SE; "
        "`sd/se` = empirical SD of the estimate / mean two-stage SE (1 if the two-stage SE "
        "is right). `warn` = share of fits with an Identification/ConvergenceWarning. "
        "Two-stage target band: 93.5-96.5%.",
        "",
        "| law | n | m | n/m | target | naive | two-stage | in band | se ratio | sd/se "
        "| warn |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for r in df.itertuples():
        ratio = ("" if np.isnan(r.mean_se_naive)
                 else f"{r.mean_se_two_stage / r.mean_se_naive:.2f}")
        sdse = "" if np.isnan(r.sd_est) else f"{r.sd_est / r.mean_se_two_stage:.3f}"
        rows.append(
            f"| {r.law} | {r.n} | {r.m} | {r.n_over_m:g} | {r.target} | "
            f"{_coverage.coverage_cells(r)} | "
            f"{'yes' if _coverage.in_band(r.coverage_two_stage) else '**NO**'} | "
            f"{ratio} | {sdse} | {r.warning_rate:.3f} |")
    return _coverage.markdown_table(header, rows)


def main(argv=None):
    return _coverage.main(argv, doc=__doc__, script_file=__file__, configs=grid(),
                          run_config=run_config, to_markdown=to_markdown,
                          cost=lambda cfg: cfg[1])  # largest m first


if __name__ == "__main__":
    main()
