"""Monte Carlo check of the small-sample factor of the first-stage part (few clusters).

Usage::

    python benchmarks/small_sample_clusters.py [--reps 2000] [--seed 0]
        [--out benchmarks/results/small_sample_clusters.csv] [--jobs 2]

Writes a CSV (one row per number of pre-training clusters x target) and a Markdown copy
next to it (same stem, ``.md``).

Question
--------
The two-stage covariance sums the first-stage influences within pre-training clusters.
With ``G_pre`` clusters that sum of squares estimates the variance with divisor
``G_pre`` where the unbiased one is ``G_pre - 1`` (the influences sum to zero within the
sample), so without a correction the first-stage part is ``(G_pre - 1)/G_pre`` of what it
should be: 3.3% low at 30 clusters. The package multiplies it by ``G_pre/(G_pre - 1)``
whenever the second stage is corrected (here HC1; HC0 is the uncorrected reference,
obtained from the same fit as ``res.cov_HC0``). This script measures, for each target,
the mean standard error over replications divided by the Monte Carlo SD of the estimate
(1 when the SE is right on average), with and without the correction, and the same for
variances (mean SE^2 / MC variance, free of the Jensen gap E[SE] < sqrt(E[SE^2])).

Design
------
``p = 5`` raw inputs with mean ``MU``; PCA with ``k = 2`` components (sign gauge).

* Pre-training: ``G_pre`` clusters of ``ROWS_PER_CLUSTER = 20`` rows,
  ``x = MU + u_g + e``, cluster effect ``u_g ~ N(0, diag(CLUSTER_VAR))`` shared by the
  rows of cluster ``g``, ``e ~ N(0, diag(ROW_VAR))``: strong within-cluster correlation
  (intra-cluster correlation 0.5 in the top direction), so the first stage has about
  ``G_pre`` independent units.
* Labeled: ``n = 2000`` independent rows of ``x ~ N(MU, diag(CLUSTER_VAR + ROW_VAR))``
  (the pre-training marginal law), ``z = 0.5 x_3 + N(0, 1)`` (correlated with ``x`` only
  outside the learned span) and ``y = 1 + 0.5 z + s_0 - 0.5 s_1 + N(0, 1)`` with the
  population scores ``s = U'(x - MU)``, ``U`` the top-2 axes (eigenvalues 16, 4, 1, 0.5,
  0.25 of the marginal covariance: gaps of ratio 4, so the components stay identified
  with 15 clusters, and a stable gauge).
* Targets: the generating coefficients (intercept, z, pc0, pc1); with ``n`` large next
  to the effective first-stage sample the pre-training part dominates the intercept and
  the component coefficients.
* Second stage HC1 with ``pretrain_groups`` (labeled rows independent).

Monte Carlo error: the relative SE of an SD estimated from R replications is about
``1 / sqrt(2 R)`` (1.6% at R = 2000); the corrected and uncorrected ratios share it
(same replications), so their difference ``sqrt(G_pre / (G_pre - 1))`` is exact.
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread per worker process (set before numpy loads)
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm

import ssl_inference as ssi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _coverage  # noqa: E402  (the shared Monte Carlo machinery)

P, K = 5, 2
MU = np.array([1.0, -1.0, 0.5, 0.0, 2.0])
CLUSTER_VAR = np.array([8.0, 2.0, 0.5, 0.25, 0.125])
ROW_VAR = np.array([8.0, 2.0, 0.5, 0.25, 0.125])
ROWS_PER_CLUSTER = 20
N_LABELED = 2000
TRUTH = np.array([1.0, 0.5, 1.0, -0.5])  # intercept, z, pc0, pc1
TARGETS = ("const", "z", "pc0", "pc1")
CLUSTERS = (15, 30, 100)


def draw(rng: np.random.Generator, n_clusters: int):
    """Clustered pre-training rows, their cluster labels and a labeled sample."""
    labels = np.repeat(np.arange(n_clusters), ROWS_PER_CLUSTER)
    effects = rng.standard_normal((n_clusters, P)) * np.sqrt(CLUSTER_VAR)
    X_pre = MU + effects[labels] + rng.standard_normal((labels.size, P)) * np.sqrt(ROW_VAR)
    x = MU + rng.standard_normal((N_LABELED, P)) * np.sqrt(CLUSTER_VAR + ROW_VAR)
    z = 0.5 * x[:, 3] + rng.standard_normal(N_LABELED)
    scores = (x - MU)[:, :K]
    y = (TRUTH[0] + TRUTH[1] * z + scores @ TRUTH[2:]
         + rng.standard_normal(N_LABELED))
    return X_pre, labels, y, z, x


def one_replication(rng: np.random.Generator, n_clusters: int) -> dict:
    """Estimates and corrected (HC1 fit) / uncorrected (its ``cov_HC0``) SEs."""
    X_pre, labels, y, z, x = draw(rng, n_clusters)
    rep = ssi.PCA(K).fit(X_pre)
    res = ssi.OLS(y, sm.add_constant(z), representation=rep, features=x).fit(
        cov_type="HC1", cov_kwds={"pretrain_groups": labels})
    return {"est": np.asarray(res.params), "se_corrected": np.asarray(res.bse),
            "se_uncorrected": np.asarray(res.HC0_se)}


def simulate(n_clusters: int, reps: int, seed) -> pd.DataFrame:
    """Table of one number of pre-training clusters: per target, the MC SD of the
    estimate and the mean SE (and SE^2) with and without the small-sample factor."""
    a = _coverage.stack(_coverage.replicate(lambda rng: one_replication(rng, n_clusters),
                                            reps, seed))
    rows = []
    for i, target in enumerate(TARGETS):
        sd = a["est"][:, i].std(ddof=1)
        row = {"clusters": n_clusters, "m": n_clusters * ROWS_PER_CLUSTER, "n": N_LABELED,
               "target": target, "reps": reps, "bias": a["est"][:, i].mean() - TRUTH[i],
               "sd_mc": sd}
        for kind in ("uncorrected", "corrected"):
            se = a[f"se_{kind}"][:, i]
            row[f"se_over_sd_{kind}"] = se.mean() / sd
            row[f"var_over_mc_var_{kind}"] = (se ** 2).mean() / sd ** 2
        rows.append(row)
    return pd.DataFrame(rows)


def run_config(n_clusters, reps, seed):
    return simulate(n_clusters, reps, seed)


def to_markdown(df: pd.DataFrame, reps: int, seed: int, seconds: float) -> str:
    header = [
        "# Small-sample factor of the first-stage part: few pre-training clusters",
        "",
        _coverage.generated_by("small_sample_clusters.py", reps, seed, seconds) + " "
        "PCA (k=2, p=5) on G clusters of 20 rows, OLS second stage (HC1) on n = 2000 "
        "independent rows. `se/sd`: mean SE / Monte Carlo SD of the estimate; `var/var`: "
        "mean SE^2 / Monte Carlo variance. `uncorrected`: no factor (the fit's `cov_HC0`); "
        "`corrected`: the package default, first-stage part times G/(G-1).",
        "",
        "| G | target | se/sd uncorrected | se/sd corrected | var/var uncorrected "
        "| var/var corrected |",
        "|---|---|---|---|---|---|",
    ]
    rows = [f"| {r.clusters} | {r.target} | {r.se_over_sd_uncorrected:.3f} | "
            f"{r.se_over_sd_corrected:.3f} | {r.var_over_mc_var_uncorrected:.3f} | "
            f"{r.var_over_mc_var_corrected:.3f} |" for r in df.itertuples()]
    return _coverage.markdown_table(header, rows)


def main(argv=None):
    return _coverage.main(argv, doc=__doc__, script_file=__file__, configs=list(CLUSTERS),
                          run_config=run_config, to_markdown=to_markdown,
                          cost=lambda g: g)


if __name__ == "__main__":
    main()
