"""Cost of the aligned two-sample bootstrap relative to the analytic two-stage fit, and
of a replicate's first-stage refit on weighted units relative to the copying refit.

Runs both in one process on the same problem and prints (and writes) the time ratio and
the agreement of the standard errors (``bench_bootstrap.csv``). Then, for each built-in
first stage on a larger ``X_pre`` (a numpy memmap for the moment-based ones), one
replicate's refit both ways in the same process: the weighted refit
(``_fit_weighted(X_pre, counts)``, what replicates do) and the copying refit
``clone().fit(X_pre[rows])`` (the old path, still the fallback), with the peak of
Python-tracked memory (tracemalloc: numpy's allocations; memmap pages are not
allocations) and the best time of a few refits, and the largest difference of the
parameters (``bench_bootstrap_weighted.csv``); its first row is a whole PCA bootstrap
on the memmap both ways (its difference column: of the standard errors).

    python benchmarks/bench_bootstrap.py [--m 2000] [--n 500] [--reps 400]
                                         [--big-m 200000] [--weighted-only]
"""
from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import ssl_inference as ssi
import ssl_inference.formula.api as smf


def problem(m: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    scales = np.array([3.0, 2.2, 1.5, 1.0, 0.6])
    X_pre = rng.standard_t(6, size=(m, 5)) * scales + 0.5
    X = rng.standard_t(6, size=(n, 5)) * scales + 0.5
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    df["z"] = 0.4 * X[:, -1] + rng.normal(size=n)
    df["y"] = 1.0 + 0.8 * X[:, 0] - 0.5 * X[:, 1] + 0.3 * df["z"] + rng.normal(size=n)
    return X_pre, df, [f"x{i}" for i in range(5)]


def best_time(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_and_time(fn, repeat: int = 5) -> tuple[float, float, object]:
    """Peak traced memory (MB) of one call, best time of ``repeat`` calls, the result."""
    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return peak, best_time(fn, repeat), out


class CopyingPCA(ssi.PCA):
    """PCA whose replicates take the copying path (a subclass that overrides ``fit`` is
    refitted on ``X_pre[rows]``): the old path, for comparison."""

    def fit(self, X, y=None):
        return super().fit(X)


def whole_bootstrap(X_pre, rng, reps: int = 10) -> dict:
    """A whole PCA bootstrap (``reps`` replicates, one process) on a memmap ``X_pre``:
    weighted replicates vs copying ones."""
    p = X_pre.shape[1]
    cols = [f"x{i}" for i in range(p)]
    X = rng.standard_t(6, size=(500, p)) * np.linspace(3.0, 0.5, p)
    df = pd.DataFrame(X, columns=cols)
    df["y"] = X[:, 0] - 0.5 * X[:, 1] + rng.normal(size=500)
    cov = {"reps": reps, "seed": 0, "progress": False}
    out = {}
    for path, cls in (("weighted", ssi.PCA), ("copy", CopyingPCA)):
        model = smf.ols("y ~ 1", df, representation=cls(3).fit(X_pre), features=cols)
        out[path] = peak_and_time(lambda: model.fit(cov_type="bootstrap", cov_kwds=cov), 2)
    (w_peak, w_time, w_res), (c_peak, c_time, c_res) = out["weighted"], out["copy"]
    row = dict(first_stage=f"PCA bootstrap ({reps} replicates)", storage="memmap",
               m=X_pre.shape[0], width=p, data_mb=X_pre.nbytes / 2 ** 20,
               weighted_peak_mb=w_peak, copy_peak_mb=c_peak, peak_ratio=w_peak / c_peak,
               weighted_s=w_time, copy_s=c_time, time_ratio=w_time / c_time,
               max_abs_param_diff=float(np.max(np.abs(w_res.bse - c_res.bse))))
    print(row)
    return row


def weighted_vs_copy(big_m: int, seed: int = 0) -> list[dict]:
    """One replicate's first-stage refit, weighted vs copying, for each first stage."""
    rng = np.random.default_rng(seed)
    p = 20
    cases = []
    moments = rng.standard_t(6, size=(big_m, p)) * np.linspace(3.0, 0.5, p)
    path = Path(tempfile.mkdtemp()) / "X_pre.dat"
    memmap = np.memmap(path, dtype=np.float64, mode="w+", shape=moments.shape)
    memmap[:] = moments
    memmap.flush()
    memmap = np.memmap(path, dtype=np.float64, mode="r", shape=moments.shape)
    cases.append(("PCA", "memmap", ssi.PCA(3), memmap))
    cases.append(("FactorModel", "memmap", ssi.FactorModel(2, noise="isotropic"), memmap))
    small = big_m // 10
    mix = np.concatenate([rng.normal(-3, 1, (small // 2, 5)), rng.normal(3, 1, (small // 2, 5))])
    cases.append(("GaussianMixture", "numpy", ssi.GaussianMixture(2, random_state=0), mix))
    cases.append(("MEstimatorRepresentation", "numpy", ssi.MEstimatorRepresentation(
        loss=lambda X, t: ((X - t) ** 2).sum(axis=1), transform=lambda X, t: X - t,
        params=np.zeros(p), optimize=True), moments[:small]))
    X = rng.normal(size=(small, 5))
    triples = np.hstack([X, [0.9, 0.6, 0.3, 0.1, 0.05] * X + rng.normal(size=X.shape),
                         rng.normal(size=X.shape)])  # distinct eigenvalues: identified
    cases.append(("SpectralContrastive", "numpy",
                  ssi.SpectralContrastive(2, negatives="given"), triples))
    rows_out = [whole_bootstrap(memmap, rng)]
    for name, storage, rep, data in cases:
        m = data.shape[0]
        rows = rng.integers(0, m, size=m)
        counts = np.bincount(rows, minlength=m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w_peak, w_time, w_fit = peak_and_time(lambda: rep.clone()._fit_weighted(data, counts))
            c_peak, c_time, c_fit = peak_and_time(lambda: rep.clone().fit(data[rows]))
        row = dict(first_stage=name, storage=storage, m=m, width=data.shape[1],
                   data_mb=data.nbytes / 2 ** 20, weighted_peak_mb=w_peak,
                   copy_peak_mb=c_peak, peak_ratio=w_peak / c_peak, weighted_s=w_time,
                   copy_s=c_time, time_ratio=w_time / c_time,
                   max_abs_param_diff=float(np.max(np.abs(w_fit.params_ - c_fit.params_))))
        print(row)
        rows_out.append(row)
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--m", type=int, default=2000)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--big-m", type=int, default=200000)
    parser.add_argument("--weighted-only", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "bench_bootstrap.csv"))
    args = parser.parse_args()
    weighted = pd.DataFrame(weighted_vs_copy(args.big_m))
    weighted.to_csv(Path(args.out).with_name("bench_bootstrap_weighted.csv"), index=False)
    if args.weighted_only:
        return
    X_pre, df, cols = problem(args.m, args.n)
    for mode in ["sign", "rotation"]:
        rep = ssi.PCA(2, symmetry=mode).fit(X_pre)
        model = smf.ols("y ~ z", df, representation=rep, features=cols)
        analytic = model.fit(cov_kwds={"second_stage": "HC0"})
        boot = model.fit(cov_type="bootstrap", cov_kwds={"reps": args.reps, "seed": 0})
        t_analytic = best_time(lambda: model.fit(cov_kwds={"second_stage": "HC0"}))
        t_boot = best_time(lambda: model.fit(cov_type="bootstrap",
                                             cov_kwds={"reps": args.reps, "seed": 0}), 1)
        ratio = (boot.bse / analytic.bse).to_numpy()
        row = dict(mode=mode, m=args.m, n=args.n, reps=args.reps, analytic_s=t_analytic,
                   bootstrap_s=t_boot, time_ratio=t_boot / t_analytic,
                   max_abs_se_ratio_minus_1=float(np.max(np.abs(ratio - 1))))
        print(row)
        pd.DataFrame([row]).to_csv(args.out, mode="a" if mode == "rotation" else "w",
                                   header=mode == "sign", index=False)


if __name__ == "__main__":
    main()
