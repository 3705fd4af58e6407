"""Monte Carlo coverage of naive and two-stage intervals: formula terms of learned features.

Usage::

    python benchmarks/coverage_formula.py [--reps 2000] [--seed 0]
        [--out benchmarks/results/coverage_formula.csv] [--jobs 2]

Writes a long-format CSV (one row per configuration x formula x target) and a Markdown
copy next to it (same stem, ``.md``).

What is checked
---------------
A second-stage formula can use the learned features inside terms:
``smf.ols("y ~ z * pc0", ..., representation=rep, features=cols)`` or
``"y ~ z + pc0 + I(pc0**2)"``. Then every design column built from a feature moves with
the first-stage estimate (``d w_j / d theta = (d w_j / d phi_j)(d phi_j / d theta)``), not
only the plain ``pc0, pc1`` columns. Before the design was treated as a function of the
features, the package ignored that chain rule; issue 11 measured, at m = 200, n = 2000,
an SE of ``z`` in ``y ~ z * pc0`` of 0.0225 against a sampling SD of 0.110. This study
reports, for both formulas, coverage and mean SE / Monte Carlo SD of the naive and the
two-stage standard errors.

Design
------
The raw inputs, the first stage and the covariate are those of
``benchmarks/coverage_pca_ols.py`` (imported, not copied): ``x`` in R^6 with mean ``MU``
and covariance ``E diag(16, 4, 1, 0.5, 0.3, 0.2) E'`` (``E`` fixed, its columns in the
package's sign gauge with a clear pivot), Gaussian; ``k = 2`` principal components learned
on ``m`` pre-training rows with ``ssi.PCA(2, symmetry="sign")``; the covariate
``z = 1 + c' x_perp + 0.5 e_z`` is correlated with ``x`` only outside the learned
subspace. With ``s = U'(x - mu)`` the population scores (``U`` = the first two columns
of ``E``) and ``eps ~ N(0, 1)``, one labeled sample carries two outcomes:

* ``interaction``: ``y = 0.5 + z + s_0 + 0.25 z s_0 + s_1 + eps``, fitted with
  ``y ~ z * pc0`` (design ``Intercept, z, pc0, z:pc0, pc1``; pc1 is appended);
* ``quadratic``: ``y = 0.5 + z + s_0 + 0.1 s_0^2 + s_1 + eps``, fitted with
  ``y ~ z + pc0 + I(pc0**2)`` (design ``Intercept, z, pc0, I(pc0 ** 2), pc1``).

Why the first stage matters here: the learned scores are ``s_hat = U_hat'(x - mu_hat)``,
so an error ``mu_hat - mu`` shifts ``pc0`` by ``c = -u_0'(mu_hat - mu)`` (variance
``lambda_0 / m = 16 / m``). In ``y ~ z * pc0`` the term ``0.25 z s_0`` then reads
``0.25 z pc0 + 0.25 c z``: the coefficient of ``z`` absorbs ``0.25 c``, an error of SD
``0.25 * 4 / sqrt(m)`` (0.071 at m = 200), against a second-stage SE of ~0.02. In the
quadratic model ``0.1 s_0^2 = 0.1 pc0^2 + 0.2 c pc0 + ...`` moves the coefficient of
``pc0`` by ``0.2 c`` (SD 0.057 at m = 200, second-stage SE ~0.006). Treating only the
plain ``pc0, pc1`` columns as moving with theta misses exactly these terms.

Targets. Both outcome models are exactly linear in their formula's design evaluated at
the population first-stage solution ``theta*`` (``mu``, ``U`` in the gauge), with an
independent error, so the population least-squares coefficients (THEORY.md §1) are the
generating ones: ``z = 1``, ``pc0 = 1``, ``z:pc0 = 0.25``, ``I(pc0 ** 2) = 0.1``.
``pc0`` and ``z:pc0`` flip sign with the first component, ``I(pc0 ** 2)`` and ``z`` do
not; the targets are in the package's gauge because ``E`` is, and at these ``m`` the
estimated pivot of ``u_0`` never changes (its loading SE is ~0.055 at m = 200, the pivot
margin 0.15). ``pred``: the regression function at the fixed new raw point
``(z0, x0) = (1.5, mu + 2 u_0 - 1.5 u_1 + u_2)`` (invariant; ``x0`` has a component
outside the learned subspace, so ``U_hat`` also moves its features).

Configurations: ``n = 2000`` labeled rows, ``m in {200, 500, 1000, 2000}`` pre-training
rows (n/m = 10, 4, 2, 1).

Intervals (95%): naive = estimate +- t_{df_resid} x the SE plain statsmodels reports
(``bse_naive``; for ``pred`` ``w0' cov_params_naive() w0`` with the new design row ``w0``
at the fitted features held fixed); two-stage = ``res.conf_int()`` and
``res.get_prediction(new).conf_int()`` (normal reference, the package default). Second
stage ``nonrobust``.

Columns ``se_sd_naive`` and ``se_sd_two_stage``: mean SE over the replications divided
by the Monte Carlo SD of the estimates (1 for a correct SE), with the Monte Carlo SE of
the two-stage ratio (``mcse_se_sd_two_stage``, delta method, ``_coverage.se_sd_ratio``;
about ``1 / sqrt(2R)``, 1.6% at R = 2000). Monte Carlo SE of a coverage ``c``:
``sqrt(c (1 - c) / R)``, 0.49 points at R = 2000 and c = 0.95.
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
from scipy import stats

import ssl_inference as ssi
import ssl_inference.formula.api as smf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _coverage  # noqa: E402  (the shared Monte Carlo machinery)
import coverage_pca_ols as ols_bench  # noqa: E402  (the shared x design)

K = ols_bench.K
LEVEL = ols_bench.LEVEL
COLS = [f"x{i}" for i in range(ols_bench.P)]
B0, B_Z, BETA = 0.5, 1.0, np.array([1.0, 1.0])


@dataclass(frozen=True)
class Outcome:
    """``y = B0 + B_Z z + BETA's + coef * term(z, s_0) + eps`` fitted with ``formula``;
    the design column of ``term`` is named ``column``."""

    formula: str
    column: str
    coef: float

    def term(self, z, s0):
        return z * s0 if self.column == "z:pc0" else s0 ** 2

    def mean(self, z, scores):
        return B0 + B_Z * z + scores @ BETA + self.coef * self.term(z, scores[..., 0])

    @property
    def targets(self) -> tuple[str, ...]:
        return ("z", "pc0", self.column, "pred")


OUTCOMES = {
    "interaction": Outcome("y ~ z * pc0", "z:pc0", 0.25),
    "quadratic": Outcome("y ~ z + pc0 + I(pc0**2)", "I(pc0 ** 2)", 0.1),
}


def truth(outcome: Outcome, design: ols_bench.Design) -> np.ndarray:
    """Population targets (generating coefficients at theta*, in the gauge) in the order
    of ``outcome.targets``."""
    s0 = design.U.T @ (design.x0 - ols_bench.MU)
    return np.array([B_Z, BETA[0], outcome.coef, outcome.mean(ols_bench.Z0, s0)])


def design_row(names, z0: float, phi0: np.ndarray) -> np.ndarray:
    """The formula designs' row ``w0`` at ``z0`` and features ``phi0``, in ``names`` order."""
    terms = {"Intercept": 1.0, "z": z0, "pc0": phi0[0], "pc1": phi0[1],
             "z:pc0": z0 * phi0[0], "I(pc0 ** 2)": phi0[0] ** 2}
    return np.array([terms[name] for name in names])


def new_point(design: ols_bench.Design) -> pd.DataFrame:
    new = pd.DataFrame(design.x0[None, :], columns=COLS)
    new["z"] = ols_bench.Z0
    return new


def one_replication(design: ols_bench.Design, rng: np.random.Generator, n: int,
                    m: int) -> dict:
    """One data set, both formulas: per outcome, estimates, naive and two-stage SEs and
    coverage of its 4 targets, whether ``PCA.fit`` warned and whether the fitted first
    component points away from the population one (a sign outside the gauge)."""
    X_pre = design.draw_x(rng, m, "gaussian")
    _, z, x = design.draw_labeled(rng, n, "gaussian")   # its y (no formula terms) unused
    scores = (x - ols_bench.MU) @ design.U
    noise = rng.standard_normal((len(OUTCOMES), n))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ssi.IdentificationWarning)
        rep = ssi.PCA(K, symmetry="sign").fit(X_pre)
    warned = any(issubclass(w.category, ssi.IdentificationWarning) for w in caught)
    data = pd.DataFrame(x, columns=COLS)
    data["z"] = z
    new = new_point(design)
    phi0 = rep.transform(new[COLS].to_numpy())[0]
    flipped = bool(rep.components_[0] @ design.U[:, 0] < 0)   # pc0 left the gauge
    out = {}
    for (name, outcome), eps in zip(OUTCOMES.items(), noise):
        data["y"] = outcome.mean(z, scores) + eps
        res = smf.ols(outcome.formula, data, representation=rep, features=COLS).fit()
        names = list(res.model.exog_names)
        idx = [names.index(t) for t in outcome.targets[:3]]
        pred = res.get_prediction(new)
        est = np.append(np.asarray(res.params)[idx], pred.predicted_mean[0])
        se2 = np.append(np.asarray(res.bse)[idx], pred.se_mean[0])
        ci2 = np.vstack([np.asarray(res.conf_int())[idx], pred.conf_int()])
        w0 = design_row(names, ols_bench.Z0, phi0)
        cov_n = np.asarray(res.cov_params_naive())
        se_n = np.append(np.asarray(res.bse_naive)[idx], np.sqrt(w0 @ cov_n @ w0))
        q = stats.t.ppf(0.5 + LEVEL / 2, res.df_resid)
        target = truth(outcome, design)
        out[name] = {"est": est, "se_two_stage": se2, "se_naive": se_n,
                     "cover_two_stage": (ci2[:, 0] <= target) & (target <= ci2[:, 1]),
                     "cover_naive": np.abs(est - target) <= q * se_n, "warned": warned,
                     "flipped": flipped}
    return out


def simulate(n: int, m: int, reps: int, seed,
             design: ols_bench.Design | None = None) -> pd.DataFrame:
    """Coverage table of one (n, m) configuration, both formulas.

    Parameters
    ----------
    n, m : int
        Labeled and pre-training sample sizes.
    reps : int
    seed : int or sequence of int
        ``numpy.random.SeedSequence`` entropy; every replication gets its own child.

    Returns
    -------
    DataFrame with one row per (outcome, target): naive and two-stage coverage with MC
    SEs, bias, empirical SD of the estimate, mean SEs, mean SE / MC SD of both with the MC
    SE of the two-stage one, the rate of first-stage warnings and of fits whose first
    component left the population gauge.
    """
    design = ols_bench.Design() if design is None else design
    runs = _coverage.replicate(lambda rng: one_replication(design, rng, n, m), reps, seed)
    rows = []
    for name, outcome in OUTCOMES.items():
        a = _coverage.stack([r[name] for r in runs])
        target = truth(outcome, design)
        for i, t in enumerate(outcome.targets):
            est = a["est"][:, i]
            rows.append({
                "outcome": name, "formula": outcome.formula, "n": n, "m": m,
                "n_over_m": n / m, "target": t, "truth": target[i], "reps": reps,
                **_coverage.coverage_columns(a["cover_naive"][:, i],
                                             a["cover_two_stage"][:, i], reps),
                "bias": est.mean() - target[i], "sd_est": est.std(ddof=1),
                "mean_se_naive": a["se_naive"][:, i].mean(),
                "mean_se_two_stage": a["se_two_stage"][:, i].mean(),
                **_coverage.se_sd_columns(est, a["se_naive"][:, i],
                                          a["se_two_stage"][:, i]),
                "identification_warning_rate": a["warned"].mean(),
                "gauge_flip_rate": a["flipped"].mean(),
            })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- grid / CLI
N_LABELED = 2000
M_VALUES = (200, 500, 1000, 2000)


def grid():
    """(n, m) of the benchmark, in a stable order."""
    return [(N_LABELED, m) for m in M_VALUES]


def run_config(cfg, reps, seed):
    """Coverage table of one grid entry ``(n, m)``."""
    n, m = cfg
    return simulate(n, m, reps, seed=seed)


def to_markdown(df: pd.DataFrame, reps: int, seed: int, seconds: float) -> str:
    header = [
        "# Coverage of 95% intervals: formula terms of PCA features, OLS second stage",
        "",
        _coverage.generated_by("coverage_formula.py", reps, seed, seconds) + " "
        "Coverage in %, Monte Carlo SE in parentheses. `SE/SD` = mean SE / Monte Carlo SD "
        "of the estimate (1 if the SE is right), for the naive SE and the two-stage SE "
        "(Monte Carlo SE of the latter in parentheses). `sd/se` = its inverse for the "
        "two-stage SE, as in the other tables. Two-stage target band: 93.5-96.5%. "
        "`pred`: the regression function at a fixed new raw point.",
        "",
        "| formula | n | m | n/m | target | naive | two-stage | in band | naive SE/SD "
        "| two-stage SE/SD | sd/se |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [
        f"| `{r.formula}` | {r.n} | {r.m} | {r.n_over_m:g} | {r.target} | "
        f"{_coverage.coverage_cells(r)} | "
        f"{'yes' if _coverage.in_band(r.coverage_two_stage) else '**NO**'} | "
        f"{r.se_sd_naive:.3f} | {r.se_sd_two_stage:.3f} ({r.mcse_se_sd_two_stage:.3f}) | "
        f"{r.sd_est / r.mean_se_two_stage:.3f} |"
        for r in df.itertuples()]
    return _coverage.markdown_table(header, rows)


def _cost(cfg):
    """Relative run time of a grid entry (the pool starts the largest first)."""
    n, m = cfg
    return n + m


def main(argv=None):
    return _coverage.main(argv, doc=__doc__, script_file=__file__, configs=grid(),
                          run_config=run_config, to_markdown=to_markdown, cost=_cost)


if __name__ == "__main__":
    main()
