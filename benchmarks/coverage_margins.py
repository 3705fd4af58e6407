"""Monte Carlo coverage of naive and two-stage intervals for marginal effects (get_margeff).

Usage::

    python benchmarks/coverage_margins.py [--reps 2000] [--seed 0]
        [--out benchmarks/results/coverage_margins.csv] [--jobs 2]

Writes a long-format CSV (one row per configuration x target) and a Markdown copy
next to it (same stem, ``.md``).

Design
------
The data-generating process is the Logit one of ``benchmarks/coverage_glm.py``
(imported, not copied): ``x`` in R^6 with covariance ``E diag(16, 4, 1, 0.5, 0.3, 0.2) E'``
(``E`` in the package's sign gauge), ``k = 2`` principal components learned on ``m``
pre-training rows, a covariate ``z`` correlated with ``x`` outside the learned subspace,
and ``P(y = 1 | z, x) = expit(-0.3 + 0.8 z + 0.25 s_0 + 0.5 s_1 + b_q s_1^2)`` with
``s = U'(x - mu)`` the population scores. Two settings:

* ``linear``: ``b_q = 0``, the array model ``ssi.Logit(y, [1, z], features=x)``
  (design ``[1, z, pc0, pc1]``), Gaussian ``x``, ``m in {400, 4000}`` (n/m = 10, 1).
  Margins: ``overall`` (the average marginal effect, AME) and ``eyex``, ``mean`` and
  ``median`` derivatives.
* ``quadratic``: ``b_q = 0.15``, the formula ``y ~ z + pc0 + pc1 + I(pc1**2)`` (a
  smooth transform of a feature: the first stage moves the ``I(pc1 ** 2)`` column
  through the design Jacobian), skewed ``x`` (centred exponential scores, same
  covariance), ``m = 400``. Margins ``overall`` and ``median`` (derivative, and the
  semi-elasticity ``dyex``, whose factor ``w_c`` at the median row makes the
  derivative of the column-wise median matter). With skewed ``x`` the kernel-smoothed
  derivative of the median (``ssl_inference.margins``) is needed: a 300-replication
  probe of this setting gave mean SE / SD of the error 0.99 for the ``I(pc1 ** 2)``
  ``dyex`` margin with it, 0.86 with the plain average derivative of all rows (the
  ``mean`` rule) and 1.33 with the derivative of the median row alone.

In both settings the Logit in the design is correctly specified: the second-stage
target is the generating coefficient vector ``beta*``.

Targets. statsmodels' marginal effects are conditional on the labeled rows (their
standard errors treat the rows as fixed), and so are the two-stage ones. The target of
one replication is therefore the margin at the TRUE parameters on ITS labeled rows,
``M(beta*, W*)`` with ``W*`` the design rows built from the population first stage
(``[1, z_j, s_j(, s_j1^2)]``), computed here directly from the logistic function (not
by the package): per column ``c``, ``s(w'beta*) beta*_c x_c`` with ``s = p (1 - p)``
(``dy``) or ``1 - p`` (``ey``) and ``x_c = w_c`` (``..ex``) or 1, averaged over the rows
(``overall``) or at the mean or column-wise median row. The ``pc`` margins flip sign
with the feature under the sign group; the gauge is fixed by the package's
convention, which the population ``E`` follows. The error of a replication is
``M_hat - M(beta*, W*)``; ``sd_err`` is its Monte Carlo SD, compared with the mean of
the reported SEs.

Intervals (95%, normal reference, as statsmodels): naive = statsmodels' margins SE
(``margeff_se_naive``: the first stage treated as known, what plain statsmodels reports
for the same design); two-stage = ``get_margeff(...).conf_int()`` of the default
``cov_type="two-stage"`` fit (second stage ``nonrobust``).

Monte Carlo SE of a coverage ``c`` over R reps: ``sqrt(c (1 - c) / R)`` (0.49 points at
R = 2000); the SE of a ratio ``mean SE / sd_err`` is about ``1 / sqrt(2 R)`` (1.6% at
R = 2000).
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread per worker process (set before numpy loads)
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.special import expit

import ssl_inference as ssi
import ssl_inference.formula.api as smf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _coverage  # noqa: E402  (the shared Monte Carlo machinery)
import coverage_glm as glm_bench  # noqa: E402  (the Logit design)

ols_bench = glm_bench.ols_bench
K = ols_bench.K
OUTCOME = glm_bench.OUTCOMES["logit"]
COLS = [f"x{i}" for i in range(ols_bench.P)]
B_QUAD = 0.15  # coefficient of s_1^2 in the quadratic setting


@dataclass(frozen=True)
class Setting:
    """A second-stage design: ``formula`` (None: the array model ``[1, z, pc0, pc1]``),
    the coefficient of ``s_1^2`` in the outcome, the ``(at, method)`` pairs reported and
    the names of the non-constant design columns (the margins, in model order)."""

    formula: str | None
    quad: float
    margins: tuple
    columns: tuple


SETTINGS = {
    "linear": Setting(None, 0.0, (("overall", "dydx"), ("overall", "eyex"), ("mean", "dydx"),
                                  ("median", "dydx")), ("z", "pc0", "pc1")),
    "quadratic": Setting("y ~ z + pc0 + pc1 + I(pc1**2)", B_QUAD,
                         (("overall", "dydx"), ("median", "dydx"), ("median", "dyex")),
                         ("z", "pc0", "pc1", "I(pc1 ** 2)")),
}


def targets(setting: Setting) -> list[str]:
    return [f"{at}:{method}:{col}" for at, method in setting.margins
            for col in setting.columns]


def true_margins(W: np.ndarray, beta: np.ndarray, setting: Setting) -> np.ndarray:
    """``M(beta*, W*)`` of every target from the logistic function: per column c,
    ``s(w'beta) beta_c x_c`` with ``s = p (1 - p)`` (dy) or ``1 - p`` (ey), ``x_c = w_c``
    (ex) or 1, averaged over the rows (overall) or at the mean / median row."""
    out = []
    for at, method in setting.margins:
        V = {"overall": W, "mean": W.mean(axis=0, keepdims=True),
             "median": np.median(W, axis=0, keepdims=True)}[at]
        p = expit(V @ beta)
        s = p * (1 - p) if method.startswith("dy") else 1 - p
        for c in range(1, W.shape[1]):
            x = V[:, c] if method.endswith("ex") else 1.0
            out.append(np.mean(s * beta[c] * x))
    return np.array(out)


def draw_x(design, rng, size: int, law: str) -> np.ndarray:
    """Rows of x with mean MU and covariance Sigma: the Gaussian law of the OLS
    benchmark, or "skewed" (centred exponential scores, skewness 2)."""
    if law != "skewed":
        return design.draw_x(rng, size, law)
    return ols_bench.MU + (rng.exponential(size=(size, ols_bench.P)) - 1.0) @ design.sqrt_sigma.T


def one_replication(design, setting: Setting, rng, n: int, m: int, law: str) -> dict:
    """One data set: estimates, naive and two-stage SEs, coverage, target."""
    X_pre = draw_x(design, rng, m, law)
    x = draw_x(design, rng, n, law)
    scores = (x - ols_bench.MU) @ design.E
    z = (ols_bench.Z_MEAN + scores[:, K:] @ ols_bench.C_PERP
         + ols_bench.SD_Z * rng.standard_normal(n))
    s = scores[:, :K]
    y = OUTCOME.draw(rng, OUTCOME.linear_predictor(z, s) + setting.quad * s[:, 1] ** 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ssi.IdentificationWarning)
        rep = ssi.PCA(K, symmetry="sign").fit(X_pre)
    warned = any(issubclass(w.category, ssi.IdentificationWarning) for w in caught)
    if setting.formula is None:
        exog = pd.DataFrame({"const": np.ones(n), "z": z})
        res = ssi.Logit(y, exog, representation=rep, features=x).fit(disp=0)
        W_true = np.column_stack([np.ones(n), z, s])
        beta_star = np.array([OUTCOME.b0, OUTCOME.b_z, *OUTCOME.beta])
    else:
        df = pd.DataFrame(x, columns=COLS)
        df["z"], df["y"] = z, y
        res = smf.logit(setting.formula, df, representation=rep, features=COLS).fit(disp=0)
        W_true = np.column_stack([np.ones(n), z, s, s[:, 1] ** 2])
        beta_star = np.array([OUTCOME.b0, OUTCOME.b_z, *OUTCOME.beta, setting.quad])
    assert tuple(res.model.exog_names[1:]) == setting.columns
    est, se, se_naive, ci = [], [], [], []
    for at, method in setting.margins:
        me = res.get_margeff(at=at, method=method)
        est.append(me.margeff)
        se.append(me.margeff_se)
        se_naive.append(me.margeff_se_naive)
        ci.append(me.conf_int())
    est, se, se_naive = map(np.concatenate, (est, se, se_naive))
    ci = np.vstack(ci)
    target = true_margins(W_true, beta_star, setting)
    q = 1.959963984540054
    return {"est": est, "target": target, "se_two_stage": se, "se_naive": se_naive,
            "cover_two_stage": (ci[:, 0] <= target) & (target <= ci[:, 1]),
            "cover_naive": np.abs(est - target) <= q * se_naive, "warned": warned}


def simulate(setting: str, law: str, n: int, m: int, reps: int, seed,
             design=None) -> pd.DataFrame:
    """Coverage table of one configuration.

    Parameters
    ----------
    setting : {"linear", "quadratic"}
    law : {"gaussian", "skewed"}
    n, m : int
        Labeled and pre-training sample sizes.
    reps : int
    seed : int or sequence of int
        ``numpy.random.SeedSequence`` entropy; every replication gets its own child.

    Returns
    -------
    DataFrame with one row per target: naive and two-stage coverage with MC SEs, the
    mean target, the bias and SD of the error ``M_hat - M(beta*, W*)``, the SD of the
    estimate itself and the mean SEs.
    """
    design = ols_bench.Design() if design is None else design
    spec = SETTINGS[setting]
    a = _coverage.stack(_coverage.replicate(
        lambda rng: one_replication(design, spec, rng, n, m, law), reps, seed))
    err = a["est"] - a["target"]
    rows = []
    for i, name in enumerate(targets(spec)):
        at, method, column = name.split(":")
        rows.append({
            "setting": setting, "law": law, "n": n, "m": m, "n_over_m": n / m, "at": at,
            "method": method, "column": column, "target": column, "reps": reps,
            "target_mean": a["target"][:, i].mean(),
            **_coverage.coverage_columns(a["cover_naive"][:, i], a["cover_two_stage"][:, i],
                                         reps),
            "bias": err[:, i].mean(), "sd_err": err[:, i].std(ddof=1),
            "sd_est": a["est"][:, i].std(ddof=1),
            "mean_se_naive": a["se_naive"][:, i].mean(),
            "mean_se_two_stage": a["se_two_stage"][:, i].mean(),
            "identification_warning_rate": a["warned"].mean(),
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- grid / CLI
N_LABELED = 4000


def grid():
    """(setting, law, n, m) of the benchmark."""
    return [("linear", "gaussian", N_LABELED, N_LABELED // 10),
            ("linear", "gaussian", N_LABELED, N_LABELED),
            ("quadratic", "skewed", N_LABELED, N_LABELED // 10)]


def run_config(cfg, reps, seed):
    setting, law, n, m = cfg
    return simulate(setting, law, n, m, reps, seed=seed)


def to_markdown(df: pd.DataFrame, reps: int, seed: int, seconds: float) -> str:
    header = [
        "# Coverage of 95% intervals for marginal effects: Logit margins (get_margeff) on "
        "PCA (k=2, p=6) features",
        "",
        _coverage.generated_by("coverage_margins.py", reps, seed, seconds) + " "
        "Coverage in %, Monte Carlo SE in parentheses. Target of a replication: the "
        "margin at the true parameters on its labeled rows (statsmodels' margins are "
        "conditional on the rows). `sd_err`: Monte Carlo SD of the error; `se/sd`: mean "
        "SE / `sd_err` for naive (statsmodels') and two-stage SEs (1 if the SE is right). "
        "Two-stage target band: 93.5-96.5%.",
        "",
        "| setting | law | n | m | n/m | at | method | margin | naive | two-stage | in band "
        "| sd_err | se/sd naive | se/sd two-stage |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [
        f"| {r.setting} | {r.law} | {r.n} | {r.m} | {r.n_over_m:g} | {r.at} | {r.method} | "
        f"{r.column} | "
        f"{_coverage.coverage_cells(r)} | "
        f"{'yes' if _coverage.in_band(r.coverage_two_stage) else '**NO**'} | "
        f"{r.sd_err:.4g} | {r.mean_se_naive / r.sd_err:.3f} | "
        f"{r.mean_se_two_stage / r.sd_err:.3f} |"
        for r in df.itertuples()]
    return _coverage.markdown_table(header, rows)


def main(argv=None):
    return _coverage.main(argv, doc=__doc__, script_file=__file__, configs=grid(),
                          run_config=run_config, to_markdown=to_markdown)


if __name__ == "__main__":
    main()
