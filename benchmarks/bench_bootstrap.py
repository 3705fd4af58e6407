"""Cost of the aligned two-sample bootstrap relative to the analytic two-stage fit.

Runs both in one process on the same problem and prints (and writes) the time ratio and
the agreement of the standard errors.

    python benchmarks/bench_bootstrap.py [--m 2000] [--n 500] [--reps 400]
"""
from __future__ import annotations

import argparse
import time
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--m", type=int, default=2000)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "bench_bootstrap.csv"))
    args = parser.parse_args()
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
