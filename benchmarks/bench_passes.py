"""Every pass close to a bare pass over X_pre (issue 13 §3): measured ratios.

All times are CPU times of this process with one BLAS thread (``threadpoolctl``), best
of ``--repeats``, in one process; every ratio is against a baseline timed in the same
run (the 1-minute load average is reported with each row):

* ``naive``: ``ssi.OLS/Logit(..., representation=rep).fit(cov_type="naive")`` (array
  and formula API) against plain statsmodels on the same design, once with the
  features precomputed (``sm.OLS(y, [W, F]).fit()``) and once with the feature map
  included (``F = rep.transform(X)``, then statsmodels: what a naive user runs).
  Target 1.2.
* ``streams``: the first-stage covariance stream of each representation,
  ``rep.influence_gram(K)`` with ``K`` (r, q), r = 3 + k (the directions of an OLS second
  stage with a constant, two covariates and the k features), against a bare ``X'X``
  over the same pre-training array (``pretrain_data_``), and the reference path
  ``sum_chunks (psi(U) Kt')' (psi(U) Kt')`` with ``Kt = -K H_h^+`` applied to the
  (rows, q) estimating-function arrays (the implementation before issue 13 §3; it
  also checks that both agree). Target 3.
* ``fits``: ``rep.fit`` against the same bare pass (target: one pass plus the
  iterations of EM / the optimiser; the spectral fit <= 20).

Run: ``python benchmarks/bench_passes.py [--sections naive streams fits] [--m 200000]``.
Writes ``benchmarks/results/bench_passes.csv`` and ``bench_passes.md``.
"""
from __future__ import annotations

import argparse
import csv
import gc
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf

import ssl_inference as ssi
from ssl_inference.representations.base import DEFAULT_CHUNK_ROWS
from ssl_inference.representations.linearization import MEstimatorBase

RESULTS = Path(__file__).resolve().parent / "results"


def best(fn, repeats: int) -> float:
    """Best CPU time of this process over ``repeats`` calls (with one BLAS thread it is
    the work done, much less disturbed by other processes than the wall time)."""
    out = np.inf
    for _ in range(repeats):
        gc.collect()
        t0 = time.process_time()
        fn()
        out = min(out, time.process_time() - t0)
    return out


def bare_pass(X: np.ndarray) -> np.ndarray:
    """``X'X`` over the rows in one BLAS call (the bound every pass is measured against)."""
    return X.T @ X


def reference_gram(rep, K: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """``sum_i (Kt psi_i)(Kt psi_i)'`` from (rows, q) estimating-function arrays, the
    generic contraction of :class:`MEstimatorBase` (the path before the closed forms;
    PCA: its per-row influence ``IF(x) K'``)."""
    generic = hasattr(rep, "_horizontal_inverse")  # PCA: its per-row closed form
    Kt = MEstimatorBase._prepare_contraction(rep, K) if generic else K
    gram = np.zeros((K.shape[0], K.shape[0]))
    for _, _, U in rep._unit_chunks(chunk_rows):
        B = (rep.estimating_function(U) if generic else rep.influence(U)) @ Kt.T
        gram += B.T @ B
    return gram


def factor_rows(rng, m, p, k, noise=1.0, shift=1.0):
    """Rows with ``k`` strong factors (loadings ~ N(0, 1)) and unit noise."""
    L = rng.normal(size=(p, k)) * np.linspace(3.0, 1.5, k)
    return rng.normal(size=(m, k)) @ L.T + noise * rng.normal(size=(m, p)) + shift


# ------------------------------------------------------------------------- naive
def section_naive(args) -> list[dict]:
    rng = np.random.default_rng(0)
    m, p, k, n = 100_000, 50, 5, args.n
    rep = ssi.PCA(k).fit(factor_rows(rng, m, p, k))
    X = factor_rows(rng, n, p, k)
    W = sm.add_constant(rng.normal(size=(n, 2)))
    F = rep.transform(X)
    y = W @ [1.0, 0.5, -0.5] + F @ np.linspace(0.3, 0.1, k) + rng.normal(size=n)
    yb = (y > np.median(y)).astype(float)
    names = [f"x{i}" for i in range(p)]
    data = pd.DataFrame(X, columns=names).assign(z0=W[:, 1], z1=W[:, 2], y=y)
    formula = "y ~ z0 + z1"
    full = formula + "".join(f" + pc{i}" for i in range(k))
    with_features = data.assign(**{f"pc{i}": F[:, i] for i in range(k)})

    def frame_pipeline():
        frame = data.copy(deep=False)
        frame[[f"pc{i}" for i in range(k)]] = rep.transform(X)
        return smf.ols(full, frame).fit()

    cases = {
        "OLS (array)": (
            lambda: ssi.OLS(y, W, representation=rep, features=X).fit(cov_type="naive"),
            lambda: sm.OLS(y, np.column_stack([W, F])).fit(),
            lambda: sm.OLS(y, np.column_stack([W, rep.transform(X)])).fit()),
        "Logit (array)": (
            lambda: ssi.Logit(yb, W, representation=rep, features=X).fit(
                cov_type="naive", disp=0),
            lambda: sm.Logit(yb, np.column_stack([W, F])).fit(disp=0),
            lambda: sm.Logit(yb, np.column_stack([W, rep.transform(X)])).fit(disp=0)),
        "OLS (formula)": (
            lambda: ssi.OLS.from_formula(formula, data, representation=rep,
                                         features=names).fit(cov_type="naive"),
            lambda: smf.ols(full, with_features).fit(),
            frame_pipeline),
    }
    rows = []
    for case, (ours, plain, pipeline) in cases.items():
        ours(), plain(), pipeline()
        t = {name: np.inf for name in ("ours", "plain", "pipeline")}
        for _ in range(args.repeats_naive):  # interleaved: the same machine load
            for name, fn in (("ours", ours), ("plain", plain), ("pipeline", pipeline)):
                t[name] = min(t[name], best(fn, 1))
        rows.append({"section": "naive", "case": case, "n": n, "p": p, "k": k,
                     "naive_s": t["ours"], "statsmodels_s": t["plain"],
                     "transform_and_statsmodels_s": t["pipeline"],
                     "ratio_vs_statsmodels": t["ours"] / t["plain"],
                     "ratio_vs_transform_and_statsmodels": t["ours"] / t["pipeline"],
                     "load_avg_1min": os.getloadavg()[0]})
        print(f"naive {case:14s}: {t['ours'] * 1e3:7.2f} ms; statsmodels "
              f"{t['plain'] * 1e3:7.2f} ms (x{t['ours'] / t['plain']:.2f}); "
              "transform + statsmodels "
              f"{t['pipeline'] * 1e3:7.2f} ms (x{t['ours'] / t['pipeline']:.2f}); load "
              f"{os.getloadavg()[0]:.2f}")
    return rows


# ----------------------------------------------------------------------- streams
def representations(args):
    """(name, fit function, pre-training array) for each first stage."""
    rng = np.random.default_rng(1)
    m, p, k = args.m, 50, 5
    X = factor_rows(rng, m, p, k)
    d_sc = args.spectral_d
    Z = rng.normal(size=(m, d_sc)) * np.linspace(2.0, 0.5, d_sc)
    Z_pos = Z * np.concatenate([np.full(k, 0.9), np.full(d_sc - k, 0.2)]) \
        + rng.normal(size=(m, d_sc))
    d_mix = args.mixture_d
    centres = rng.normal(size=(3, d_mix)) * 3.0
    G = np.concatenate([centres[j] + rng.normal(size=(m // 3 + 1, d_mix))
                        for j in range(3)])[:m]
    G = G[rng.permutation(m)]
    return [
        ("PCA", lambda: ssi.PCA(k).fit(X), X),
        ("FactorModel", lambda: ssi.FactorModel(k, n_init=1).fit(X), X),
        ("FactorModel isotropic", lambda: ssi.FactorModel(k, noise="isotropic").fit(X), X),
        ("SpectralContrastive", lambda: ssi.SpectralContrastive(k).fit(Z, Z_pos),
         np.hstack([Z, Z_pos])),
        ("GaussianMixture full", lambda: ssi.GaussianMixture(3, random_state=0).fit(G), G),
        ("GaussianMixture diag", lambda: ssi.GaussianMixture(
            3, covariance_type="diag", random_state=0).fit(G), G),
    ]


def section_streams_and_fits(args, sections) -> list[dict]:
    rows = []
    rng = np.random.default_rng(2)
    for name, fit, X in representations(args):
        if args.only and not any(o.lower() in name.lower() for o in args.only):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = fit()
        t_bare = best(lambda: bare_pass(X), args.repeats)
        row = {"section": "streams", "case": name, "m": rep.nobs_,
               "width": X.shape[1], "q": rep.params_.size, "bare_XtX_s": t_bare}
        if "fits" in sections:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_fit = best(fit, args.repeats_fit)
            row.update(fit_s=t_fit, fit_ratio=t_fit / t_bare)
        if "streams" in sections:
            r = 3 + rep.n_features_out_
            K = rng.normal(size=(r, rep.params_.size))
            gram = rep.influence_gram(K)[0]
            t_new = best(lambda: rep.influence_gram(K), args.repeats)
            t_ref = best(lambda: reference_gram(rep, K), args.repeats_ref)
            ref = reference_gram(rep, K)
            row.update(r=r, stream_s=t_new, stream_ratio=t_new / t_bare,
                       reference_stream_s=t_ref, reference_ratio=t_ref / t_bare,
                       max_rel_diff=float(np.abs(gram - ref).max() / np.abs(ref).max()))
        row["load_avg_1min"] = os.getloadavg()[0]
        rows.append(row)
        print(" ".join(f"{key}={_fmt(v)}" for key, v in row.items()))
    return rows


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def write_tables(rows: list[dict], stem: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(key for row in rows for key in row))
    with open(RESULTS / f"{stem}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["# Passes over the pre-training data, as multiples of a bare pass", "",
             "Measured by `benchmarks/bench_passes.py` (CPU seconds with one BLAS thread, "
             "best of repeats; ratios against a baseline timed in the same run).", ""]
    for section in dict.fromkeys(row["section"] for row in rows):
        part = [row for row in rows if row["section"] == section]
        cols = list(dict.fromkeys(key for row in part for key in row if key != "section"))
        lines += [f"**{section}**", "", "| " + " | ".join(cols) + " |",
                  "|" + " --- |" * len(cols)]
        lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in cols) + " |"
                  for row in part]
        lines.append("")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="+", default=["naive", "streams", "fits"])
    ap.add_argument("--only", nargs="*", default=None,
                    help="representations to run (substrings of their names)")
    ap.add_argument("--m", type=int, default=200_000)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--spectral-d", type=int, default=50)
    ap.add_argument("--mixture-d", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--repeats-ref", type=int, default=2)
    ap.add_argument("--repeats-fit", type=int, default=2)
    ap.add_argument("--repeats-naive", type=int, default=15)
    ap.add_argument("--out", default="bench_passes")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits
    rows = []
    with threadpool_limits(limits=1):
        if "naive" in args.sections:
            rows += section_naive(args)
        if {"streams", "fits"} & set(args.sections):
            rows += section_streams_and_fits(args, args.sections)
    write_tables(rows, args.out)
    return rows


if __name__ == "__main__":
    main()
