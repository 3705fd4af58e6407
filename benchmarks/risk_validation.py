"""Monte Carlo check of the downstream test-risk limit theorem (THEORY.md §6).

Usage::

    nice python benchmarks/risk_validation.py [--reps 1000] [--seed 0] [--jobs 2]
        [--out benchmarks/results/risk_validation.csv] [--dgps pca,factor,spectral,mixture]

For each data-generating process (DGP) and labeled size ``n`` (pre-training size
``m = alpha n``, ``alpha = 2``), every replication draws both samples, fits the first
stage and the OLS second stage, and computes

* the exact conditional test risk ``R`` of the fitted pipeline
  (:func:`ssl_inference.risk.conditional_risk`, paper Prop. B.1), hence
  ``T = n (R - sigma^2)``;
* the plug-in limit law (``results.risk_asymptotics()``).

The table compares the Monte Carlo law of ``T`` with the theorem's limit
``sigma^2 d_eff + ||L(Z)||^2 / alpha`` evaluated at the TRUE parameters (closed form,
or for the mixture a plug-in at n = 50000) and with the plug-in laws: the means
(with their Monte Carlo SE), the KS distance ``sup |F_MC - F_limit|`` and the median
over replications of ``sup |F_MC - F_plugin,r|`` (for up to 25 replications' plug-in
laws). Both distances should shrink with ``n``; the Monte Carlo floor of a KS distance
with R replications is about ``0.87 / sqrt(R)`` (its median under the null).

DGPs
----
* ``pca``: x ~ N(0, E diag(16, 4, 1, 0.5, 0.3, 0.2) E') in R^6 (E a fixed rotation),
  both samples; PCA(2); ``f* = 0.5 + (1, 1)' U'x``, sigma = 1; limit
  :func:`~ssl_inference.risk.pca_gaussian_law`.
* ``factor``: x = A h + e (d = 6, k = 2, A with singular values 2 and 1.2 along a fixed
  frame), y = (1, -0.7)'h + N(0, 1); PPCA first stage ``ssi.FactorModel(2,
  noise="isotropic")``; limit :func:`~ssl_inference.risk.factor_law`, noise variance
  ``1 + beta'(I + A'A)^{-1} beta``.
* ``spectral``: the paper's diagonal model, (k, d) = (2, 4), Sigma_pre = I,
  C = diag(1, 1/2, 1/3, 1/4), beta = 1, independent negatives
  (``ssi.SpectralContrastive(2, negatives="given")``), downstream x ~ N(0, I), sigma = 1;
  limit :func:`~ssl_inference.risk.spectral_diagonal_law` (E||L(Z)||^2 = 39.05).
* ``mixture``: the paper's Figure 3 experiment, K = 4, d = 20, separation 2, gated
  features, alpha = 2, sigma = 0.5 (:class:`ssl_inference.datasets.GaussianMixtureData`);
  first stage ``ssi.GaussianMixture(4, covariance_type="spherical", features="gated",
  gated_symmetry="rotation")``
  with an intercept (so d_eff = 16); population moments of the fitted features from a
  fixed downstream sample of 40000 rows. No closed form exists; the "limit" is the
  plug-in law at n = 50000, m = 100000 with sigma known (its own sampling error is
  small against the Monte Carlo SE: the plug-in mean's sd is about 0.1 at n = 6400 and
  shrinks like 1/sqrt(n)). The population's K - 1 non-zero scatter eigenvalues of the
  centred means are tied, so individual gated coordinates are not identified: the fit
  uses ``gated_symmetry="rotation"`` (group S_4 x O(3); in sign mode every fit would
  warn). The risk is invariant under that rotation.

Writes ``benchmarks/results/risk_validation.csv`` and ``.md`` and a figure like the
paper's Figure 3 (``risk_validation.png``: per DGP, the Monte Carlo histogram of T at
the largest n against the limit density and one plug-in density).
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread per worker process (set before numpy loads)
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import ssl_inference as ssi
from ssl_inference.datasets import FactorModelData, GaussianMixtureData, SpectralDiagonalModel
from ssl_inference.risk import (PopulationMoments, RiskAsymptotics, WeightedChiSquare,
                                affine_feature_map, conditional_risk, factor_law,
                                pca_gaussian_law)

ALPHA = 2.0
N_GRID = {"pca": (100, 400, 1600, 6400), "factor": (100, 400, 1600, 6400),
          "spectral": (100, 400, 1600), "mixture": (100, 400, 1600, 6400)}
REPS_FACTOR = {"pca": 1.0, "factor": 0.5, "spectral": 0.25, "mixture": 0.25}
MIXTURE_LIMIT_N = 50_000
PLUGIN_LAWS = 25
MIXTURE_POPULATION_ROWS = 40_000


def _frame(p: int, seed: int) -> np.ndarray:
    """A fixed orthogonal matrix with columns signed by the package's gauge."""
    Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((p, p)))[0]
    pivot = np.argmax(np.abs(Q), axis=0)
    return Q * np.sign(Q[pivot, np.arange(p)])


# ------------------------------------------------------------------------------ DGPs
@dataclass
class Replication:
    """What one replication returns."""

    scaled_risk: float          # T = n (R - sigma^2), exact
    scaled_pretraining: float   # n (Rep + Leakage): the part that tends to ||L(Z)||^2 / alpha
    plugin: RiskAsymptotics
    warned: bool                # the first stage issued an IdentificationWarning


def _replication(risk, res, warned) -> Replication:
    pre = risk.nobs * (risk.representation + risk.leakage)
    return Replication(risk.scaled_excess, pre, res.risk_asymptotics(), warned)


class _Watch:
    """Record (and silence) IdentificationWarnings of a first-stage fit."""

    def __enter__(self):
        self._ctx = warnings.catch_warnings(record=True)
        self.caught = self._ctx.__enter__()
        warnings.simplefilter("always", ssi.IdentificationWarning)
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        self.warned = any(issubclass(w.category, ssi.IdentificationWarning)
                          for w in self.caught)
        return False


class PCADGP:
    name = "pca"
    p, k = 6, 2
    eigenvalues = np.array([16.0, 4.0, 1.0, 0.5, 0.3, 0.2])
    beta = np.array([1.0, 1.0])
    b0, sigma = 0.5, 1.0

    def __init__(self):
        self.E = _frame(self.p, 20260101)
        self.U = self.E[:, :self.k]
        self.cov = (self.E * self.eigenvalues) @ self.E.T
        self.g = self.U @ self.beta

    def limit(self) -> RiskAsymptotics:
        return RiskAsymptotics(pca_gaussian_law(self.eigenvalues, self.beta),
                               sigma2=self.sigma ** 2, d_eff=self.k + 1, nobs=1,
                               nobs_pretrain=int(ALPHA))

    def _x(self, rng, size):
        return (rng.standard_normal((size, self.p)) * np.sqrt(self.eigenvalues)) @ self.E.T

    def replicate(self, rng, n: int) -> Replication:
        with _Watch() as watch:
            rep = ssi.PCA(self.k).fit(self._x(rng, int(ALPHA * n)))
        X = self._x(rng, n)
        signal = self.b0 + X @ self.g
        y = signal + self.sigma * rng.standard_normal(n)
        res = ssi.OLS(y, np.ones((n, 1)), representation=rep, features=X).fit()
        a, B = affine_feature_map(rep)
        pop = PopulationMoments.affine(np.append(1.0, a), np.vstack([np.zeros(self.p), B]),
                                       self.b0, self.g, np.zeros(self.p), self.cov)
        risk = conditional_risk(res, signal, sigma2=self.sigma ** 2, population=pop)
        return _replication(risk, res, watch.warned)


class FactorDGP:
    name = "factor"
    d, k = 6, 2

    def __init__(self):
        F = _frame(self.d, 7)
        V = np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]])
        self.model = FactorModelData(F[:, :2] @ np.diag([2.0, 1.2]) @ V.T,
                                     np.array([1.0, -0.7]), sigma=1.0)

    def limit(self) -> RiskAsymptotics:
        return RiskAsymptotics(factor_law(self.model.loadings, self.model.beta),
                               sigma2=self.model.noise_variance, d_eff=self.k + 1, nobs=1,
                               nobs_pretrain=int(ALPHA))

    def replicate(self, rng, n: int) -> Replication:
        with _Watch() as watch:
            rep = ssi.FactorModel(self.k, noise="isotropic").fit(
                self.model.pretrain(int(ALPHA * n), rng))
        s = self.model.labeled(n, rng)
        res = ssi.OLS(s.y, np.ones((n, 1)), representation=rep, features=s.X).fit()
        a, B = affine_feature_map(rep)
        pop = PopulationMoments.affine(np.append(1.0, a), np.vstack([np.zeros(self.d), B]),
                                       0.0, self.model.coefficients, np.zeros(self.d),
                                       self.model.cov)
        risk = conditional_risk(res, s.signal, sigma2=self.model.noise_variance,
                                population=pop)
        return _replication(risk, res, watch.warned)


class SpectralDGP:
    name = "spectral"

    def __init__(self):
        self.model = SpectralDiagonalModel.paper_example(k=2, d=4, sigma=1.0)

    def limit(self) -> RiskAsymptotics:
        return RiskAsymptotics(self.model.limit_law(), sigma2=1.0, d_eff=3, nobs=1,
                               nobs_pretrain=int(ALPHA))

    def replicate(self, rng, n: int) -> Replication:
        d = len(self.model.a)
        with _Watch() as watch:
            rep = ssi.SpectralContrastive(2, negatives="given").fit(
                *self.model.pretrain(int(ALPHA * n), rng))
        s = self.model.labeled(n, rng)
        res = ssi.OLS(s.y, np.ones((n, 1)), representation=rep, features=s.X).fit()
        a, B = affine_feature_map(rep)
        pop = PopulationMoments.affine(np.append(1.0, a), np.vstack([np.zeros(d), B]),
                                       0.0, self.model.coefficients, np.zeros(d), np.eye(d))
        risk = conditional_risk(res, s.signal, sigma2=1.0, population=pop)
        return _replication(risk, res, watch.warned)


class MixtureDGP:
    name = "mixture"

    def __init__(self):
        self.model = GaussianMixtureData()
        self.population = self.model.labeled(MIXTURE_POPULATION_ROWS, random_state=99)

    def _fit(self, X):
        return ssi.GaussianMixture(4, covariance_type="spherical", features="gated",
                                   gated_symmetry="rotation",
                                   n_init=2, random_state=0).fit(X)

    def limit(self) -> RiskAsymptotics:
        """Population proxy: the plug-in at n = 50000, m = 100000, with sigma known."""
        rng = np.random.default_rng(12345)
        n = MIXTURE_LIMIT_N
        with _Watch():
            rep = self._fit(self.model.pretrain(int(ALPHA * n), rng))
        s = self.model.labeled(n, rng)
        res = ssi.OLS(s.signal, np.ones((n, 1)), representation=rep, features=s.X).fit()
        ra = res.risk_asymptotics()
        return RiskAsymptotics(ra.pretrain_law, sigma2=self.model.sigma ** 2,
                               d_eff=ra.d_eff, nobs=1, nobs_pretrain=int(ALPHA))

    def replicate(self, rng, n: int) -> Replication:
        with _Watch() as watch:
            rep = self._fit(self.model.pretrain(int(ALPHA * n), rng))
        s = self.model.labeled(n, rng)
        res = ssi.OLS(s.y, np.ones((n, 1)), representation=rep, features=s.X).fit()
        P = self.population
        W_pop = np.column_stack([np.ones(len(P.y)), rep._transform(P.X)])
        pop = PopulationMoments.from_sample(W_pop, P.signal)
        risk = conditional_risk(res, s.signal, sigma2=self.model.sigma ** 2, population=pop)
        return _replication(risk, res, watch.warned)


DGPS = {cls.name: cls for cls in (PCADGP, FactorDGP, SpectralDGP, MixtureDGP)}


# ------------------------------------------------------------------------ simulation
def simulate(name: str, n: int, reps: int, seed) -> list[Replication]:
    """``reps`` replications of DGP ``name`` at labeled size ``n`` (m = alpha n)."""
    dgp = DGPS[name]()
    children = np.random.SeedSequence(seed).spawn(reps)
    return [dgp.replicate(np.random.default_rng(child), n) for child in children]


def _interpolated_cdf(law: WeightedChiSquare, lo: float, hi: float, points: int = 120):
    grid = np.linspace(lo, hi, points)
    values = law.cdf(grid)
    return lambda x: np.interp(x, grid, values, left=0.0, right=1.0)


def ks_distance(sample: np.ndarray, cdf) -> float:
    """``sup_x |F_sample(x) - F(x)|`` for a continuous (or right-continuous) ``F``."""
    x = np.sort(sample)
    F = cdf(x)
    r = len(x)
    return float(max(np.max(np.arange(1, r + 1) / r - F), np.max(F - np.arange(r) / r)))


def summarise(name: str, n: int, draws: list[Replication], limit: RiskAsymptotics,
              plugin_laws: int = PLUGIN_LAWS) -> dict:
    """One table row: Monte Carlo law of T = n (R - sigma^2) vs the limit and the plug-in.

    Also the pre-training part alone, ``n (Rep + Leakage)`` against ``||L(Z)||^2 / alpha``
    (limit and plug-in laws without their shift ``sigma^2 d_eff``): it isolates the
    theorem's random term and the plug-in ``kappa`` from the estimate of ``sigma^2``.
    """
    T = np.array([d.scaled_risk for d in draws])
    pre = np.array([d.scaled_pretraining for d in draws])
    reps = len(T)
    law = limit.law
    pre_law = WeightedChiSquare(law.weights)
    plugin_means = np.array([d.plugin.mean for d in draws])
    pick = np.linspace(0, reps - 1, min(plugin_laws, reps)).astype(int)
    lo, hi = float(min(T.min(), law.shift)), float(T.max())
    ks_plugin = [ks_distance(T, _interpolated_cdf(draws[i].plugin.law, lo, hi)) for i in pick]
    ks_pre_plugin = [ks_distance(pre, _interpolated_cdf(
        WeightedChiSquare(draws[i].plugin.law.weights), 0.0, float(pre.max()))) for i in pick]
    se = T.std(ddof=1) / np.sqrt(reps) if reps > 1 else np.nan
    return {
        "dgp": name, "n": n, "m": int(ALPHA * n), "reps": reps,
        "mc_mean": T.mean(), "mc_se": se, "limit_mean": law.mean,
        "mean_z": (T.mean() - law.mean) / se,
        "plugin_mean_avg": plugin_means.mean(),
        "plugin_mean_median": float(np.median(plugin_means)),
        "plugin_mean_sd": plugin_means.std(ddof=1) if reps > 1 else np.nan,
        "mc_median": float(np.median(T)), "limit_median": float(law.ppf(0.5)),
        "ks_limit": ks_distance(T, law.cdf), "ks_plugin_median": float(np.median(ks_plugin)),
        "pre_mc_mean": pre.mean(), "pre_limit_mean": pre_law.mean,
        "pre_mc_se": pre.std(ddof=1) / np.sqrt(reps) if reps > 1 else np.nan,
        "ks_pre_limit": ks_distance(pre, pre_law.cdf),
        "ks_pre_plugin_median": float(np.median(ks_pre_plugin)),
        "fine_tuning_mc_mean": (T - pre).mean(), "fine_tuning_limit": law.shift,
        "ks_mc_floor": 0.87 / np.sqrt(reps),
        "identification_warning_rate": float(np.mean([d.warned for d in draws])),
    }


def _run(task):
    name, n, reps, seed = task
    t0 = time.perf_counter()
    draws = simulate(name, n, reps, seed)
    return name, n, draws, time.perf_counter() - t0


def to_markdown(df: pd.DataFrame, header: str) -> str:
    lines = [
        "# Downstream test risk: Monte Carlo vs the limit theorem (alpha = m/n = 2)", "",
        header, "",
        "T = n (R - sigma^2) with the exact conditional risk R of each replication "
        "(paper Prop. B.1). `limit` = the theorem at the true parameters (closed form; "
        "mixture: plug-in at n = 50000 with sigma known). `z` = (MC mean - limit mean) / "
        "MC SE. `plug-in mean` = median (and sd) over replications of the plug-in limit "
        "mean. KS: sup distance of the MC distribution to the limit law, and median over "
        "up to 25 replications of the distance to each replication's plug-in law; "
        "`floor` = 0.87/sqrt(reps), the median KS distance of a sample of that size from "
        "its own law. `pre` columns: the pre-training part alone, n (Rep + Leakage) "
        "against ||L(Z)||^2 / alpha (no sigma^2 d_eff shift, so the plug-in is judged on "
        "kappa without the estimation error of sigma^2). `fine` = MC mean of the "
        "label-noise part n (sigma^2/n) tr(Sigma Sigma_n^+) against sigma^2 d_eff. `warn` = "
        "share of first-stage fits with an IdentificationWarning.", "",
        "| dgp | n | reps | MC mean (SE) | limit mean | z | plug-in mean (sd) | KS limit "
        "| KS plug-in | pre MC mean (SE) | pre limit | KS pre limit | KS pre plug-in "
        "| fine MC / limit | floor | warn | time s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples():
        lines.append(
            f"| {r.dgp} | {r.n} | {r.reps} | {r.mc_mean:.3f} ({r.mc_se:.3f}) | "
            f"{r.limit_mean:.3f} | {r.mean_z:+.2f} | {r.plugin_mean_median:.3f} "
            f"({r.plugin_mean_sd:.3f}) | {r.ks_limit:.3f} | {r.ks_plugin_median:.3f} | "
            f"{r.pre_mc_mean:.3f} ({r.pre_mc_se:.3f}) | {r.pre_limit_mean:.3f} | "
            f"{r.ks_pre_limit:.3f} | {r.ks_pre_plugin_median:.3f} | "
            f"{r.fine_tuning_mc_mean:.3f} / {r.fine_tuning_limit:.3f} | {r.ks_mc_floor:.3f} | "
            f"{r.identification_warning_rate:.2f} | {r.seconds:.0f} |")
    lines.append("")
    return "\n".join(lines)


def figure(results: dict, limits: dict, path: Path) -> None:
    """Per DGP: histogram of T at the largest n, limit density, one plug-in density."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in DGPS if name in results]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6))
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names):
        n = max(results[name])
        draws = results[name][n]
        T = np.array([d.scaled_risk for d in draws])
        law = limits[name].law
        hi = float(max(np.quantile(T, 0.99), law.ppf(0.99)))
        ax.hist(T[T <= hi], bins=40 if len(T) > 100 else 12, density=True, color="0.8",
                label=f"MC, n = {n} ({len(T)} reps)")
        grid = np.linspace(law.shift, hi, 200)[1:]
        ax.plot(grid, law.pdf(grid), color="C0", label="limit (true parameters)")
        ax.plot(grid, draws[0].plugin.law.pdf(grid), color="C1", linestyle="--",
                label="plug-in (one replication)")
        ax.axvline(law.shift, color="C2", linestyle=":", label="sigma^2 d_eff")
        ax.set_title(f"{name}")
        ax.set_xlabel("n (R - sigma^2)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dgps", default=",".join(DGPS))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "risk_validation.csv"))
    args = parser.parse_args(argv)
    names = args.dgps.split(",")
    tasks = []
    for i, name in enumerate(names):
        for j, n in enumerate(N_GRID[name]):
            reps = max(2, int(args.reps * REPS_FACTOR[name]))
            tasks.append((name, n, reps, [args.seed, i, j]))
    t0 = time.perf_counter()
    cost = {"pca": 1, "factor": 2, "spectral": 20, "mixture": 15}
    order = sorted(tasks, key=lambda t: -cost[t[0]] * t[1] * t[2])
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(args.jobs) as pool:
            limit_futures = {name: pool.submit(_limit, name) for name in names}
            outputs = list(pool.map(_run, order))
            limits = {name: f.result() for name, f in limit_futures.items()}
    else:
        outputs = [_run(t) for t in order]
        limits = {name: _limit(name) for name in names}
    results: dict = {}
    rows = []
    for name, n, draws, seconds in outputs:
        results.setdefault(name, {})[n] = draws
        row = summarise(name, n, draws, limits[name])
        row["seconds"] = seconds
        rows.append(row)
    df = pd.DataFrame(rows)
    df["dgp"] = pd.Categorical(df["dgp"], categories=list(DGPS))
    df = df.sort_values(["dgp", "n"]).reset_index(drop=True)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, float_format="%.6g")
    header = (f"Generated by `benchmarks/risk_validation.py --reps {args.reps} --seed "
              f"{args.seed} --dgps {args.dgps}` ({seconds:.0f} s wall, "
              f"{args.jobs} workers).")
    out.with_suffix(".md").write_text(to_markdown(df, header))
    figure(results, limits, out.with_suffix(".png"))
    print(to_markdown(df, header))
    print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')} in {seconds:.1f} s")
    return df


def _limit(name: str) -> RiskAsymptotics:
    return DGPS[name]().limit()


if __name__ == "__main__":
    main()
