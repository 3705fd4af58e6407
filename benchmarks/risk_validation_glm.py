"""Monte Carlo check of the deviance-risk limit for GLM second stages (docs, theory page,
"Downstream risk of likelihood second stages"; beyond the paper).

Usage::

    nice python benchmarks/risk_validation_glm.py [--reps 2000] [--seed 0] [--jobs 1]
        [--out benchmarks/results/risk_validation_glm.csv] [--dgps logit,poisson]

For each second stage and labeled size ``n`` (pre-training size ``m = alpha n``,
``alpha = 2``), every replication draws both samples, fits PCA(2) on the pre-training
rows and the Logit or Poisson second stage ``y ~ 1 + phi(x; theta_hat)`` on the labeled
rows, and computes

* the exact excess deviance risk ``R - R*`` of the fitted pipeline, hence
  ``T = n (R - R*)``: ``E_x[d(mu*(x), mu_hat(x))]`` (the expected deviance over a new
  draw given the fit, minus that of the truth, needs only the true mean:
  :func:`ssl_inference.risk.excess_deviance_risk`), by Gauss-Hermite quadrature: with
  Gaussian ``x`` and affine features, ``eta*`` and the fitted features are jointly
  Gaussian, a three-dimensional integral (32 nodes a side; 48 change it by less than
  1e-10 relative);
* the exact split ``T = fine + pre``: ``pre = n (R(beta_bar, theta_hat) - R*)`` with
  ``beta_bar`` the population-optimal coefficients for the fitted features (the
  minimiser of the quadrature's expected deviance, a convex problem solved by Newton's
  method and checked: ``0 <= pre <= T``), and ``fine = T - pre``;
* the plug-in limit law (``results.risk_asymptotics()``) and the sandwich fine-tuning
  mean (:func:`ssl_inference.risk.fine_tuning_weights`).

The limit at the TRUE parameters is closed form: fine-tuning ``chi2_3`` (binomial and
Poisson have dispersion 1, three coefficients) plus ``alpha^{-1} sum_j kappa_j chi2_1``,
independent, with ``kappa_j = E[omega(eta*)] kappa_j^{LS}``, the least-squares PCA weights
(:func:`~ssl_inference.risk.pca_gaussian_law`) times the mean working weight
(``E[p (1 - p)]``, ``E[exp(eta*)]``; a one-dimensional Gauss-Hermite integral).

Design
------
``x ~ N(0, E diag(4, 2, 1.5, 0.6, 0.4, 0.3) E')`` in R^6 (``E`` the fixed frame of
``risk_validation.py``), both samples; PCA(2), so the eigengap at k is 2 : 1.5 and the
pre-training part is a sizeable share of the risk (34% for Logit, 45% for Poisson);
``eta* = b0 + beta' U'x``:

* ``logit``: ``b0 = -0.3``, ``beta = (0.5, 1)`` (sd of ``eta*`` 1.7);
* ``poisson``: ``b0 = 0.2``, ``beta = (0.25, 0.4)`` (mean count 2.0).

The table compares the Monte Carlo law of ``T`` with the limit (means with their Monte
Carlo SE, the KS distance ``sup |F_MC - F_limit|``) and with the plug-in laws (median over
up to 25 replications of their KS distances), the two parts with their own limits
(``fine`` against ``chi2_3``, ``pre`` against ``alpha^{-1} sum kappa_j chi2_1``) and the
correlation of the parts (independent in the limit). The KS floor with R replications
is about ``0.87 / sqrt(R)`` (the median distance of a sample from its own law).

Writes ``benchmarks/results/risk_validation_glm.csv`` and ``.md`` and a figure
(``risk_validation_glm.png``: per second stage, the histogram of T at the largest n with
the limit and one plug-in density).
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread per worker process (set before numpy loads)
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize

import ssl_inference as ssi
from ssl_inference.risk import (RiskAsymptotics, WeightedChiSquare, affine_feature_map,
                                excess_deviance_risk, fine_tuning_weights, pca_gaussian_law)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import risk_validation as ls_bench  # noqa: E402  (frame, KS distance, warning watch)

ALPHA = 2.0
N_GRID = (100, 400, 1600, 6400, 25600)
PLUGIN_LAWS = 25
#: Gauss-Hermite nodes per dimension of the exact risk integrals
QUADRATURE_NODES = 32


# ------------------------------------------------------------------------ quadrature
def gauss_hermite(dim: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Product Gauss-Hermite rule for ``E f(xi)``, ``xi ~ N(0, I_dim)``: points (N, dim)
    and weights summing to one."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * dim), indexing="ij")
    weights = np.ones(1)
    for _ in range(dim):
        weights = np.outer(weights, w).ravel()
    return np.column_stack([g.ravel() for g in grids]), weights


def gaussian_nodes(mean: np.ndarray, cov: np.ndarray, rule) -> tuple[np.ndarray, np.ndarray]:
    """Nodes of ``N(mean, cov)`` (a possibly singular ``cov``: symmetric square root)."""
    evals, evecs = np.linalg.eigh(cov)
    root = evecs * np.sqrt(np.clip(evals, 0.0, None))
    points, weights = rule
    return mean + points @ root.T, weights


def population_coefficients(family, design, mu_star, weights, start) -> np.ndarray:
    """``beta_bar = argmin_beta sum_i w_i d(mu*_i, mu(design_i' beta))`` for a CANONICAL
    link (logit, log): a convex problem, solved by Newton's method with a trust region
    (exact gradient ``2 W'(w (mu - mu*))`` and Hessian ``2 W' diag(w V(mu)) W``)."""
    def fun(beta):
        mu = family.link.inverse(design @ beta)
        return 1e4 * excess_deviance_risk(family, mu_star, mu, weights=weights)

    def jac(beta):
        mu = family.link.inverse(design @ beta)
        return 2e4 * design.T @ (weights * (mu - mu_star)) / weights.sum()

    def hess(beta):
        mu = family.link.inverse(design @ beta)
        return 2e4 * design.T @ ((weights * family.variance(mu))[:, None] * design) \
            / weights.sum()

    out = optimize.minimize(fun, start, jac=jac, hess=hess, method="trust-exact",
                            options={"gtol": 1e-13})
    return out.x


# ------------------------------------------------------------------------------ DGPs
@dataclass
class Replication:
    """What one replication returns."""

    scaled_risk: float          # T = n (R - R*), exact
    scaled_pretraining: float   # n (R(beta_bar, theta_hat) - R*): tends to ||L(Z)||^2 / alpha
    plugin: RiskAsymptotics
    robust_fine_mean: float     # sum of the sandwich fine-tuning weights
    warned: bool                # the first stage issued an IdentificationWarning


class GLMDGP:
    """PCA first stage on Gaussian x, a correctly specified GLM second stage."""

    name: str
    family: sm.families.Family
    model: type
    b0: float
    beta: np.ndarray
    p, k = 6, 2
    eigenvalues = np.array([4.0, 2.0, 1.5, 0.6, 0.4, 0.3])

    def __init__(self):
        self.E = ls_bench._frame(self.p, 20260101)
        self.U = self.E[:, :self.k]
        self.cov = (self.E * self.eigenvalues) @ self.E.T
        self.g = self.U @ self.beta
        self.rule = gauss_hermite(self.k + 1, QUADRATURE_NODES)

    def mean_working_weight(self) -> float:
        """``E[omega(eta*)]`` with ``omega = mu'(eta)^2 / V(mu)``, by 1-d Gauss-Hermite."""
        x, w = np.polynomial.hermite_e.hermegauss(120)
        eta = self.b0 + np.sqrt(self.g @ self.cov @ self.g) * x
        fam = self.family
        omega = fam.link.inverse_deriv(eta) ** 2 / fam.variance(fam.link.inverse(eta))
        return float(w @ omega / w.sum())

    def limit(self) -> RiskAsymptotics:
        """The theorem at the true parameters, on the scale of ``n (R - R*)``."""
        kappa = self.mean_working_weight() * pca_gaussian_law(self.eigenvalues,
                                                              self.beta).weights
        d = self.k + 1
        return RiskAsymptotics(WeightedChiSquare(kappa), sigma2=1.0, d_eff=d, nobs=1,
                               nobs_pretrain=int(ALPHA), loss="deviance",
                               fine_tuning_law=WeightedChiSquare(np.ones(d)))

    def _x(self, rng, size):
        return (rng.standard_normal((size, self.p)) * np.sqrt(self.eigenvalues)) @ self.E.T

    def exact_parts(self, rep, params) -> tuple[float, float]:
        """``(R - R*, R(beta_bar, theta_hat) - R*)`` of the fitted pipeline, by quadrature
        over the joint Gaussian law of ``(eta*, phi_hat(x))``."""
        a, B = affine_feature_map(rep)
        slope = np.vstack([self.g, B])                       # (eta*, phi_hat) = c + slope x
        mean = np.concatenate([[self.b0], a])
        nodes, weights = gaussian_nodes(mean, slope @ self.cov @ slope.T, self.rule)
        mu_star = self.family.link.inverse(nodes[:, 0])
        design = np.column_stack([np.ones(len(nodes)), nodes[:, 1:]])
        fitted = self.family.link.inverse(design @ params)
        excess = excess_deviance_risk(self.family, mu_star, fitted, weights=weights)
        bar = population_coefficients(self.family, design, mu_star, weights, params)
        approx = excess_deviance_risk(self.family, mu_star, self.family.link.inverse(
            design @ bar), weights=weights)
        if not -1e-12 * excess <= approx <= excess * (1 + 1e-9) + 1e-15:
            raise RuntimeError(f"beta_bar is not the minimiser: R(beta_bar) - R* = "
                               f"{approx:.3g}, R(beta_hat) - R* = {excess:.3g}")
        return excess, approx

    def replicate(self, rng, n: int) -> Replication:
        with ls_bench._Watch() as watch:
            rep = ssi.PCA(self.k).fit(self._x(rng, int(ALPHA * n)))
        X = self._x(rng, n)
        eta = self.b0 + X @ self.g
        y = self.draw(rng, self.family.link.inverse(eta))
        res = self.model(y, np.ones((n, 1)), representation=rep, features=X).fit(disp=0)
        if not res.mle_retvals["converged"]:
            raise RuntimeError(f"{self.name} fit did not converge (n = {n})")
        excess, approx = self.exact_parts(rep, np.asarray(res.params))
        model = res.model
        robust = fine_tuning_weights(model.exog, model.endog,
                                     model.predict(res.params, which="linear"), self.family)
        return Replication(n * excess, n * approx, res.risk_asymptotics(),
                           float(robust.sum()), watch.warned)


class LogitDGP(GLMDGP):
    name = "logit"
    family = sm.families.Binomial()
    model = ssi.Logit
    b0, beta = -0.3, np.array([0.5, 1.0])

    @staticmethod
    def draw(rng, mean):
        return (rng.random(mean.shape) < mean).astype(float)


class PoissonDGP(GLMDGP):
    name = "poisson"
    family = sm.families.Poisson()
    model = ssi.Poisson
    b0, beta = 0.2, np.array([0.25, 0.4])

    @staticmethod
    def draw(rng, mean):
        return rng.poisson(mean).astype(float)


DGPS = {cls.name: cls for cls in (LogitDGP, PoissonDGP)}


# ------------------------------------------------------------------------ simulation
def simulate(name: str, n: int, reps: int, seed) -> list[Replication]:
    """``reps`` replications of DGP ``name`` at labeled size ``n`` (m = alpha n)."""
    dgp = DGPS[name]()
    children = np.random.SeedSequence(seed).spawn(reps)
    return [dgp.replicate(np.random.default_rng(child), n) for child in children]


def summarise(name: str, n: int, draws: list[Replication], limit: RiskAsymptotics,
              plugin_laws: int = PLUGIN_LAWS) -> dict:
    """One table row: the Monte Carlo law of T and of its two parts against the limit
    and the plug-in laws."""
    T = np.array([d.scaled_risk for d in draws])
    pre = np.array([d.scaled_pretraining for d in draws])
    fine = T - pre
    reps = len(T)
    law = limit.law
    pre_law = WeightedChiSquare(limit.kappa / limit.alpha)
    fine_law = limit.fine_tuning_law
    plugin_means = np.array([d.plugin.mean for d in draws])
    pick = np.linspace(0, reps - 1, min(plugin_laws, reps)).astype(int)
    hi = float(T.max())
    ks_plugin = [ls_bench.ks_distance(T, ls_bench._interpolated_cdf(draws[i].plugin.law,
                                                                     0.0, hi)) for i in pick]
    ks_pre_plugin = [ls_bench.ks_distance(pre, ls_bench._interpolated_cdf(
        WeightedChiSquare(draws[i].plugin.kappa / draws[i].plugin.alpha), 0.0,
        float(pre.max()))) for i in pick]
    se = T.std(ddof=1) / np.sqrt(reps) if reps > 1 else np.nan
    return {
        "dgp": name, "n": n, "m": int(ALPHA * n), "reps": reps,
        "mc_mean": T.mean(), "mc_se": se, "limit_mean": law.mean,
        "mean_z": (T.mean() - law.mean) / se,
        "plugin_mean_avg": plugin_means.mean(),
        "plugin_mean_median": float(np.median(plugin_means)),
        "plugin_mean_sd": plugin_means.std(ddof=1) if reps > 1 else np.nan,
        "mc_median": float(np.median(T)), "limit_median": float(law.ppf(0.5)),
        "ks_limit": ls_bench.ks_distance(T, law.cdf),
        "ks_plugin_median": float(np.median(ks_plugin)),
        "pre_mc_mean": pre.mean(), "pre_limit_mean": pre_law.mean,
        "pre_mc_se": pre.std(ddof=1) / np.sqrt(reps) if reps > 1 else np.nan,
        "ks_pre_limit": ls_bench.ks_distance(pre, pre_law.cdf),
        "ks_pre_plugin_median": float(np.median(ks_pre_plugin)),
        "fine_mc_mean": fine.mean(), "fine_limit_mean": fine_law.mean,
        "fine_mc_se": fine.std(ddof=1) / np.sqrt(reps) if reps > 1 else np.nan,
        "ks_fine_limit": ls_bench.ks_distance(fine, fine_law.cdf),
        "robust_fine_mean_median": float(np.median([d.robust_fine_mean for d in draws])),
        "corr_fine_pre": float(np.corrcoef(fine, pre)[0, 1]) if reps > 2 else np.nan,
        "ks_mc_floor": 0.87 / np.sqrt(reps),
        "identification_warning_rate": float(np.mean([d.warned for d in draws])),
    }


def _run(task):
    name, n, reps, seed = task
    t0, c0 = time.perf_counter(), time.process_time()
    draws = simulate(name, n, reps, seed)
    return name, n, draws, time.perf_counter() - t0, time.process_time() - c0


def to_markdown(df: pd.DataFrame, header: str) -> str:
    lines = [
        "# Downstream deviance risk of GLM second stages: Monte Carlo vs the limit "
        "(alpha = m/n = 2)", "",
        header, "",
        "T = n (R - R*), R the expected deviance of the fitted pipeline on a new draw "
        "(exact, by quadrature), R* that of the truth. `limit` = the theorem at the true "
        "parameters: chi2_3 + alpha^-1 sum_j kappa_j chi2_1 with kappa_j = E[omega] "
        "kappa_j(least squares). `z` = (MC mean - limit mean) / MC SE. `plug-in mean` = "
        "median (and sd) over replications of the plug-in limit mean. KS: sup distance of "
        "the MC distribution to the limit law, and median over up to 25 replications of "
        "the distance to each replication's plug-in law; `floor` = 0.87/sqrt(reps), the "
        "median KS distance of a sample of that size from its own law. `pre`: the "
        "pre-training part n (R(beta_bar, theta_hat) - R*) against alpha^-1 sum kappa_j "
        "chi2_1; `fine` = T - pre against chi2_3; `sandwich` = median of the plug-in "
        "sandwich fine-tuning mean (the model-based one is 3); `corr` = correlation of "
        "the two parts over replications (independent in the limit). `warn` = share of "
        "first-stage fits with an IdentificationWarning; `CPU s` = process time of the "
        "cell.", "",
        "| dgp | n | reps | MC mean (SE) | limit mean | z | plug-in mean (sd) | KS limit "
        "| KS plug-in | pre MC mean (SE) | pre limit | KS pre limit | KS pre plug-in "
        "| fine MC mean (SE) | KS fine limit | sandwich | corr | floor | warn | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples():
        lines.append(
            f"| {r.dgp} | {r.n} | {r.reps} | {r.mc_mean:.3f} ({r.mc_se:.3f}) | "
            f"{r.limit_mean:.3f} | {r.mean_z:+.2f} | {r.plugin_mean_median:.3f} "
            f"({r.plugin_mean_sd:.3f}) | {r.ks_limit:.3f} | {r.ks_plugin_median:.3f} | "
            f"{r.pre_mc_mean:.3f} ({r.pre_mc_se:.3f}) | {r.pre_limit_mean:.3f} | "
            f"{r.ks_pre_limit:.3f} | {r.ks_pre_plugin_median:.3f} | "
            f"{r.fine_mc_mean:.3f} ({r.fine_mc_se:.3f}) | {r.ks_fine_limit:.3f} | "
            f"{r.robust_fine_mean_median:.3f} | {r.corr_fine_pre:+.3f} | "
            f"{r.ks_mc_floor:.3f} | {r.identification_warning_rate:.2f} | {r.cpu:.0f} |")
    lines.append("")
    return "\n".join(lines)


def figure(results: dict, limits: dict, path: Path) -> None:
    """Per DGP: histogram of T at the largest n, limit density, one plug-in density."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in DGPS if name in results]
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.6))
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names):
        n = max(results[name])
        draws = results[name][n]
        T = np.array([d.scaled_risk for d in draws])
        law = limits[name].law
        hi = float(max(np.quantile(T, 0.99), law.ppf(0.99)))
        ax.hist(T[T <= hi], bins=40 if len(T) > 100 else 12, density=True, color="0.8",
                label=f"MC, n = {n} ({len(T)} reps)")
        grid = np.linspace(0.0, hi, 200)[1:]
        ax.plot(grid, law.pdf(grid), color="C0", label="limit (true parameters)")
        ax.plot(grid, draws[0].plugin.law.pdf(grid), color="C1", linestyle="--",
                label="plug-in (one replication)")
        ax.axvline(limits[name].fine_tuning_law.mean, color="C2", linestyle=":",
                   label="fine-tuning mean (= 3)")
        ax.set_title(f"PCA + {name}")
        ax.set_xlabel("n (R - R*), deviance")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _limit(name: str) -> RiskAsymptotics:
    return DGPS[name]().limit()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--dgps", default=",".join(DGPS))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "risk_validation_glm.csv"))
    args = parser.parse_args(argv)
    names = args.dgps.split(",")
    tasks = [(name, n, args.reps, [args.seed, i, j])
             for i, name in enumerate(names) for j, n in enumerate(N_GRID)]
    order = sorted(tasks, key=lambda t: -t[1])
    t0 = time.perf_counter()
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(args.jobs) as pool:
            outputs = list(pool.map(_run, order))
    else:
        outputs = [_run(t) for t in order]
    limits = {name: _limit(name) for name in names}
    results: dict = {}
    rows = []
    for name, n, draws, seconds, cpu in outputs:
        results.setdefault(name, {})[n] = draws
        row = summarise(name, n, draws, limits[name])
        row["seconds"], row["cpu"] = seconds, cpu
        rows.append(row)
    df = pd.DataFrame(rows)
    df["dgp"] = pd.Categorical(df["dgp"], categories=list(DGPS))
    df = df.sort_values(["dgp", "n"]).reset_index(drop=True)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, float_format="%.6g")
    header = (f"Generated by `benchmarks/risk_validation_glm.py --reps {args.reps} --seed "
              f"{args.seed} --dgps {args.dgps}` ({seconds:.0f} s wall, {args.jobs} workers, "
              f"{df['cpu'].sum():.0f} s CPU in the replications, one BLAS thread).")
    out.with_suffix(".md").write_text(to_markdown(df, header))
    figure(results, limits, out.with_suffix(".png"))
    print(to_markdown(df, header))
    print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')} in {seconds:.1f} s")
    return df


if __name__ == "__main__":
    main()
