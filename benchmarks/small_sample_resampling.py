"""Small samples: coverage of two-stage analytic, bootstrap and jackknife intervals.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/small_sample_resampling.py [--reps 300] [--seed 0]
        [--out benchmarks/results/small_sample_resampling.csv] [--jobs 2]

Writes a long-format CSV (one row per configuration x target) and a Markdown copy next
to it (same stem, ``.md``).

Question
--------
The analytic two-stage covariance is first-order asymptotics. With a few hundred rows
per sample, heavy tails or 10-40 clusters per sample, which of the package's intervals
cover: the analytic two-stage Wald interval, the two-sample bootstrap (percentile,
basic, or Wald with the bootstrap SD) or the two-stage jackknife (Wald)?

Design
------
Heavy tails everywhere: raw inputs, covariate noise and outcome noise are Student t
with 5 degrees of freedom, scaled to the stated variances.

* ``pca-ols``: the design of ``coverage_pca_ols.py`` (p = 6, PCA with k = 2
  components, eigenvalues 16, 4, 1, 0.5, 0.3, 0.2; ``z`` loads on the directions
  outside the learned span; ``y = b0 + b_z z + beta's + eps``), with the raw inputs
  multivariate t5 (elliptical: the fourth-moment factor 3 of the eigenvector influence
  is real) and ``eps`` t5. Targets: intercept, ``z``, ``pc0``, ``pc1``, the regression
  function at a fixed new point (``pred``).
* ``factor-logit``: the design of ``coverage_factor.py`` (p = 6, a k = 2 factor model
  fitted by ML, ``z`` loading on factors and unique parts), factors and unique parts
  t5, binary ``y ~ Bernoulli(expit(b0 + b_z z + beta' phi*(x)))`` with ``b0 = 0``,
  ``b_z = 0.5``, ``beta = (1, 1)``; second stage Logit. Targets (invariant under the
  rotation group): intercept, ``z`` and the linear predictor at a fixed new point.
* Rows: ``n = m`` in {100, 200, 400}, independent rows.
* Clusters: 10, 20 or 40 clusters of 10 rows in each sample (``n = m`` = 100, 200,
  400); every raw input, covariate and outcome noise is
  ``sqrt(rho) cluster part + sqrt(1 - rho) row part`` with intra-cluster correlation
  ``rho = 0.3`` (both parts t5). Analytic: ``cov_type="cluster"`` with
  ``pretrain_groups``; bootstrap and jackknife resample / delete clusters.

Methods (all 95%):

* ``analytic``: ``res.conf_int()`` of the default-type two-stage fit with HC1 (rows) or
  CRV1 (clusters) second stage; normal quantiles (the package default).
* ``boot-pct``, ``boot-basic``, ``boot-wald``: ``cov_type="bootstrap"``,
  ``reps=199`` (``BOOT_REPS``), percentile, basic and normal Wald intervals.
  Predictions have Wald intervals only (``get_prediction``). 199 replicates: a
  bootstrap SE then has a ~5% Monte Carlo error, which costs Wald coverage about 0.1
  point; the percentile endpoints (5th smallest / largest replicate) are noisier.
  ``max_degenerate=1`` (drop every degenerate replicate, never refuse); ``degenerate``
  is the mean share of dropped replicates, ``refused`` the share of data sets on which
  the default ``max_degenerate=0.1`` would have refused the bootstrap, and
  ``boot_reason`` (CSV) the most frequent reason.
* ``jk``: ``cov_type="jackknife"``, normal Wald intervals; ``jk-t``: the same with
  ``t_{G-1}`` quantiles, ``G`` the number of units (clusters, or rows) of the smaller
  sample, what ``fit(cov_type="jackknife", use_t=True)`` uses. Exact refits
  (``method="exact"``) except for ``factor-logit`` with rows, where 200-800
  maximum-likelihood refits per data set are too slow for this study: there
  ``method="one-step"`` (the ``jackknife`` column says which).

Monte Carlo error: with R data sets the SE of a coverage ``c`` is ``sqrt(c (1 - c) /
R)``, 1.26 points at R = 300 and c = 0.95; the band 93.5-96.5% is +- 1.2 MC SE there.
``sd/se``: Monte Carlo SD of the estimate over the method's mean SE (1 when the SEs are
right on average). Run with ``OMP_NUM_THREADS=1`` (the script sets it for itself).
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
from scipy import stats

import ssl_inference as ssi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _coverage  # noqa: E402  (the shared Monte Carlo machinery)
import coverage_factor as factor  # noqa: E402  (the factor-model design)
import coverage_pca_ols as pca  # noqa: E402  (the PCA design)

LEVEL = 0.95
T_DF = 5
RHO = 0.3                 # intra-cluster correlation of every variable
ROWS_PER_CLUSTER = 10
BOOT_REPS = 199
FACTOR_B0, FACTOR_BZ = 0.0, 0.5
METHODS = ("analytic", "boot-pct", "boot-basic", "boot-wald", "jk", "jk-t")
SE_OF = {"analytic": "analytic", "boot-pct": "boot", "boot-basic": "boot",
         "boot-wald": "boot", "jk": "jk", "jk-t": "jk"}


@dataclass(frozen=True)
class Config:
    """One cell: model, sizes, clusters per sample (0: independent rows)."""

    model: str            # "pca-ols" or "factor-logit"
    n: int
    m: int
    clusters: int = 0

    @property
    def jackknife(self) -> str:
        return "one-step" if self.model == "factor-logit" and not self.clusters else "exact"

    @property
    def targets(self) -> tuple:
        return pca.TARGETS if self.model == "pca-ols" else ("const", "z", "pred")


GRID = tuple(
    [Config("pca-ols", s, s) for s in (100, 200, 400)]
    + [Config("pca-ols", 10 * g, 10 * g, g) for g in (10, 20, 40)]
    + [Config("factor-logit", s, s) for s in (100, 200, 400)]
    + [Config("factor-logit", 10 * g, 10 * g, g) for g in (10, 20, 40)])


# ------------------------------------------------------------------ heavy-tailed draws
def t5(rng: np.random.Generator, size) -> np.ndarray:
    """Student t5 scaled to unit variance."""
    return rng.standard_t(T_DF, size=size) * np.sqrt((T_DF - 2) / T_DF)


def t5_vectors(rng: np.random.Generator, size: int, dim: int) -> np.ndarray:
    """Multivariate (elliptical) t5 rows with identity covariance."""
    w = rng.chisquare(T_DF, size=size)
    return rng.standard_normal((size, dim)) * np.sqrt((T_DF - 2) / w)[:, None]


def clustered(draw, rng: np.random.Generator, size: int, clusters: int):
    """``draw(rng, size)`` rows (mean zero), or ``sqrt(rho) cluster + sqrt(1 - rho) row``
    parts with ``size / clusters`` rows per cluster (the same covariance); returns the
    rows and the cluster labels."""
    if not clusters:
        return draw(rng, size), None
    labels = np.repeat(np.arange(clusters), size // clusters)
    return (np.sqrt(RHO) * draw(rng, clusters)[labels]
            + np.sqrt(1 - RHO) * draw(rng, size)), labels


# ------------------------------------------------------------------ the two designs
PCA_DESIGN = pca.Design()


def pca_data(rng, cfg: Config, offset: int):
    """Pre-training rows, labeled (y, z, x), cluster labels (offset: distinct labels)."""
    root = PCA_DESIGN.sqrt_sigma
    x_pre, g_pre = clustered(lambda r, s: t5_vectors(r, s, pca.P) @ root.T, rng, cfg.m,
                             cfg.clusters)
    x, g = clustered(lambda r, s: t5_vectors(r, s, pca.P) @ root.T, rng, cfg.n,
                     cfg.clusters)
    x_pre, x = x_pre + pca.MU, x + pca.MU
    scores = (x - pca.MU) @ PCA_DESIGN.E
    e_z, _ = clustered(lambda r, s: t5(r, s), rng, cfg.n, cfg.clusters)
    z = pca.Z_MEAN + scores[:, pca.K:] @ pca.C_PERP + pca.SD_Z * e_z
    eps, _ = clustered(lambda r, s: t5(r, s), rng, cfg.n, cfg.clusters)
    y = pca.B0 + pca.B_Z * z + scores[:, :pca.K] @ pca.BETA + pca.SIGMA * eps
    return x_pre, g_pre, y, z, x, (None if g is None else g + offset)


def factor_data(rng, cfg: Config, offset: int):
    def draw(r, s):
        return t5_vectors(r, s, factor.K) @ factor.LAMBDA.T \
            + t5_vectors(r, s, factor.P) * np.sqrt(factor.PSI)
    x_pre, g_pre = clustered(draw, rng, cfg.m, cfg.clusters)
    x, g = clustered(draw, rng, cfg.n, cfg.clusters)
    x_pre, x = x_pre + factor.MU, x + factor.MU
    e_z, _ = clustered(lambda r, s: t5(r, s), rng, cfg.n, cfg.clusters)
    z = factor.Z_MEAN + (x - factor.MU) @ factor.C_X + factor.SD_Z * e_z
    eta = FACTOR_B0 + FACTOR_BZ * z + (x - factor.MU) @ factor.population_scores().T \
        @ factor.BETA
    y = (rng.random(cfg.n) < 1 / (1 + np.exp(-eta))).astype(float)
    return x_pre, g_pre, y, z, x, (None if g is None else g + offset)


def truth(cfg: Config) -> np.ndarray:
    if cfg.model == "pca-ols":
        return np.array([PCA_DESIGN.truth[t] for t in pca.TARGETS])
    pred = FACTOR_B0 + FACTOR_BZ * factor.Z0 + factor.BETA @ factor.population_scores() \
        @ (factor.X0 - factor.MU)
    return np.array([FACTOR_B0, FACTOR_BZ, pred])


# ------------------------------------------------------------------ one data set
def one_replication(rng: np.random.Generator, cfg: Config) -> dict:
    """Estimates, SEs of each method and whether each method's interval covers."""
    offset = 10_000  # labeled clusters carry labels distinct from the pre-training ones
    if cfg.model == "pca-ols":
        x_pre, g_pre, y, z, x, g = pca_data(rng, cfg, offset)
        new_exog, new_x = np.array([[1.0, pca.Z0]]), PCA_DESIGN.x0[None, :]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = ssi.PCA(pca.K, symmetry="sign").fit(x_pre)
        model = ssi.OLS(y, sm.add_constant(z), representation=rep, features=x)
        fit = {}
        pred_kwds = {}
    else:
        x_pre, g_pre, y, z, x, g = factor_data(rng, cfg, offset)
        new_exog, new_x = np.array([[1.0, factor.Z0]]), factor.X0[None, :]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = ssi.FactorModel(factor.K, n_init=1).fit(x_pre)
        model = ssi.Logit(y, sm.add_constant(z), representation=rep, features=x)
        fit = {"disp": 0}
        pred_kwds = {"which": "linear"}
    first_stage_warned = bool(rep.fit_warnings_)
    clusters = {} if g is None else {"groups": g, "pretrain_groups": g_pre}
    analytic_type = ("cluster" if g is not None
                     else "HC1" if cfg.model == "pca-ols" else "HC0")
    quiet = {"progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {
            "analytic": model.fit(cov_type=analytic_type, cov_kwds=clusters or None, **fit),
            "boot": model.fit(cov_type="bootstrap", **fit, cov_kwds={
                "reps": BOOT_REPS, "seed": int(rng.integers(2 ** 31)), "max_degenerate": 1.0,
                **clusters, **quiet}),
            "jk": model.fit(cov_type="jackknife", **fit, cov_kwds={
                "method": cfg.jackknife, "max_degenerate": 1.0, **clusters, **quiet}),
        }
    k = len(cfg.targets)
    lower, upper, ses = {}, {}, {}
    for name, res in fits.items():
        pred = res.get_prediction(new_exog, features=new_x, **pred_kwds)
        params = np.asarray(res.params)[:k - 1]
        mean = pred.predicted_mean if cfg.model == "pca-ols" else pred.predicted
        est = np.append(params, np.asarray(mean)[0])
        se = np.append(np.asarray(res.bse)[:k - 1], np.asarray(pred.se)[0])
        ses[name] = se
        if name == "boot":
            q = stats.norm.ppf(0.5 + LEVEL / 2)
            lower["boot-wald"], upper["boot-wald"] = est - q * se, est + q * se
            for method in ("percentile", "basic"):
                ci = np.asarray(res.conf_int(method=method))[:k - 1]
                key = "boot-pct" if method == "percentile" else "boot-basic"
                lower[key] = np.append(ci[:, 0], np.nan)
                upper[key] = np.append(ci[:, 1], np.nan)
        else:
            ci = np.vstack([np.asarray(res.conf_int())[:k - 1], pred.conf_int()])
            lower[name], upper[name] = ci[:, 0], ci[:, 1]
    q_t = stats.t.ppf(0.5 + LEVEL / 2, fits["jk"].df_resid_inference)  # use_t=True's
    lower["jk-t"], upper["jk-t"] = est - q_t * ses["jk"], est + q_t * ses["jk"]
    target = truth(cfg)
    boot_dropped = fits["boot"].degenerate_replicates
    return {
        "est": est,
        **{f"se_{name}": value for name, value in ses.items()},
        **{f"cover_{method}": np.where(np.isnan(lower[method]), np.nan,
                                       (lower[method] <= target) & (target <= upper[method]))
           for method in METHODS},
        "boot_degenerate": boot_dropped.fraction,
        "boot_reason": next(iter(boot_dropped.counts()), ""),
        "jk_degenerate": fits["jk"].degenerate_replicates.fraction,
        "warned": first_stage_warned,
    }


def simulate(cfg: Config, reps: int, seed) -> pd.DataFrame:
    """Coverage table of one configuration (one row per target)."""
    a = _coverage.stack(_coverage.replicate(lambda rng: one_replication(rng, cfg), reps,
                                            seed))
    reasons = pd.Series(a["boot_reason"])
    reasons = reasons[reasons != ""]
    target = truth(cfg)
    rows = []
    for i, t in enumerate(cfg.targets):
        sd = a["est"][:, i].std(ddof=1)
        row = {"model": cfg.model, "n": cfg.n, "m": cfg.m, "clusters": cfg.clusters,
               "jackknife": cfg.jackknife, "target": t, "truth": target[i], "reps": reps,
               "bias": a["est"][:, i].mean() - target[i], "sd_est": sd}
        for method in METHODS:
            hits = a[f"cover_{method}"][:, i]
            c = np.nan if np.isnan(hits).all() else float(np.nanmean(hits))
            row[f"coverage_{method}"] = c
            row[f"mcse_{method}"] = np.sqrt(c * (1 - c) / reps)
        for name in ("analytic", "boot", "jk"):
            row[f"sd_over_se_{name}"] = sd / a[f"se_{name}"][:, i].mean()
        row["boot_degenerate"] = a["boot_degenerate"].mean()
        row["boot_refused"] = (a["boot_degenerate"] > 0.1).mean()
        row["boot_reason"] = reasons.mode().iloc[0] if len(reasons) else ""
        row["jk_degenerate"] = a["jk_degenerate"].mean()
        row["warning_rate"] = a["warned"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def run_config(cfg, reps, seed):
    return simulate(cfg, reps, seed)


def cost(cfg: Config) -> float:
    """Relative cost: refits per data set times the price of one refit."""
    price = 1.0 if cfg.model == "pca-ols" else 6.0
    units = cfg.n + cfg.m if not cfg.clusters else 2 * cfg.clusters
    return price * (BOOT_REPS + (units if cfg.jackknife == "exact" else 0))


def best_method(row) -> str:
    """The method whose coverage is nearest 95% (ties: the first in METHODS)."""
    values = {m: row[f"coverage_{m}"] for m in METHODS if not np.isnan(row[f"coverage_{m}"])}
    return min(values, key=lambda m: abs(values[m] - LEVEL))


def to_markdown(df: pd.DataFrame, reps: int, seed: int, seconds: float) -> str:
    header = [
        "# Small samples: analytic, bootstrap and jackknife intervals (t5 data)",
        "",
        _coverage.generated_by("small_sample_resampling.py", reps, seed, seconds) + " "
        f"Coverage of 95% intervals in % (Monte Carlo SE about {100 * np.sqrt(0.0475 / reps):.1f}"
        " points at 95%); **bold**: in the band 93.5-96.5%. `G`: clusters per sample (-: "
        f"independent rows). Bootstrap: {BOOT_REPS} replicates. `jk`: jackknife "
        "(exact refits, or one-step where the `jk` column says so), `jk-t`: with "
        "t(G-1) quantiles. `sd/se`: Monte Carlo SD of the estimate / mean SE of the "
        "method (analytic, bootstrap, jackknife). `dgn`: mean share of degenerate "
        "bootstrap replicates; `ref`: share of data sets the default max_degenerate=0.1 "
        "would refuse.",
        "",
        "| model | n=m | G | jk | target | analytic | boot-pct | boot-basic | boot-wald | jk "
        "| jk-t | sd/se an. | boot | jk | dgn | ref |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for _, r in df.iterrows():
        cells = []
        for method in METHODS:
            c = r[f"coverage_{method}"]
            text = "" if np.isnan(c) else f"{100 * c:.1f}"
            cells.append(f"**{text}**" if text and _coverage.in_band(c) else text)
        rows.append(
            f"| {r.model} | {r.n} | {r.clusters or '-'} | {r.jackknife} | {r.target} | "
            + " | ".join(cells)
            + f" | {r.sd_over_se_analytic:.2f} | {r.sd_over_se_boot:.2f} | "
            f"{r.sd_over_se_jk:.2f} | {r.boot_degenerate:.3f} | {r.boot_refused:.2f} |")
    return _coverage.markdown_table(header, rows)


def main(argv=None):
    return _coverage.main(argv, doc=__doc__, script_file=__file__, configs=list(GRID),
                          run_config=run_config, to_markdown=to_markdown, cost=cost,
                          default_reps=300)


if __name__ == "__main__":
    main()
