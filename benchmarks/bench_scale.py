"""Unlabeled data at scale: out-of-core and distributed first stages, cached predictions.

Sections (``--sections``, all by default), each a row of
``benchmarks/results/bench_scale.csv`` (times in seconds; ratios against a bare pass
over the same ``X_pre`` in the same run):

* ``predict``: in memory, ``m`` = 1e6, p = 50, k = 5, n = 20,000, one BLAS thread.
  Bare ``X'X`` (one BLAS call), ``PCA.fit``, the two-stage OLS fit on the fitted
  representation (second stage + first-stage covariance stream), naive and plain
  statsmodels fits, and ``get_prediction`` on 1000 new rows: the first call (it extends
  the first-stage cache by one pass with the prediction directions) and a second call
  on other rows (served from the cache: no pass over ``X_pre``).
* ``ooc``: PCA -> OLS with X_pre a dask array over ``.npy`` chunks on disk (written to
  ``/tmp`` and deleted afterwards; m = 1e7, p = 100, k = 10, n = 1e5 by default), run
  in a fresh process: total time, peak RSS, and the ratio of the two-stage fit to a
  bare chunked ``X'X`` pass over the same dask array.
* ``distributed``: the same pipeline on a ``dask.distributed.LocalCluster`` (2 worker
  processes) against the in-memory fit: largest relative difference of estimates and
  standard errors.
* ``embeddings``: p = 768 float32 embeddings on disk, m = 2e6, k = 20, PCA -> OLS on
  n = 20,000 labeled rows, end to end.

Run: ``python benchmarks/bench_scale.py [--sections predict ooc ...] [--m-ooc 1e7]``.
"""
from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import statsmodels.api as sm

import ssl_inference as ssi
from ssl_inference.representations.chunked import reduce_rows

RESULTS = Path(__file__).resolve().parent / "results" / "bench_scale.csv"
TITLES = {
    "predict": "Cached predictions (in memory, one BLAS thread)",
    "ooc": "PCA -> OLS from .npy chunks on disk (dask, 2 threads x 1 BLAS thread)",
    "distributed": "dask.distributed LocalCluster (2 worker processes) vs in memory",
    "embeddings": "float32 embeddings from .npy chunks on disk (dask)",
}
SCRATCH = Path("/tmp/ssl_inference_bench_scale")


def make_rows(rng, m, p, k, Q, dtype=np.float64):
    """Rows with a clear eigengap after k (``x = Q diag(scales) e + 1``)."""
    scales = np.concatenate([np.linspace(6.0, 3.0, k), np.linspace(1.5, 0.5, p - k)])
    return (rng.normal(size=(m, p)) @ (Q * scales).T + 1.0).astype(dtype)


def labeled(rng, n, p, k, Q, dtype=np.float64):
    X = make_rows(rng, n, p, k, Q, dtype).astype(np.float64)
    Z = rng.normal(size=(n, 2))
    y = 1.0 + Z @ [0.5, -0.5] + (X - 1.0) @ Q[:, :k] @ np.linspace(0.3, 0.1, k) \
        + rng.normal(size=n)
    return X, sm.add_constant(Z), y


def timed(fn, *args, repeats=1):
    best, out = np.inf, None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, out


def bare_pass(X):
    """``X'X`` over the rows, chunked like the first stages' passes (dask: a reduction)."""
    return reduce_rows(X, lambda b, lo, hi: b.T @ b)


# ----------------------------------------------------------------------- predict
def section_predict(args) -> dict:
    from threadpoolctl import threadpool_limits
    m, p, k, n = int(args.m_predict), 50, 5, 20_000
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    X_pre = make_rows(rng, m, p, k, Q)
    X, W, y = labeled(rng, n, p, k, Q)
    X_new, W_new, _ = labeled(rng, 1000, p, k, Q)
    X_new2, W_new2, _ = labeled(rng, 1000, p, k, Q)
    with threadpool_limits(limits=1):
        t_bare, _ = timed(lambda: X_pre.T @ X_pre, repeats=3)
        t_pca, rep = timed(lambda: ssi.PCA(k).fit(X_pre), repeats=3)
        two = lambda: ssi.OLS(y, W, representation=rep, features=X).fit()  # noqa: E731
        t_two, res = timed(two, repeats=3)
        naive = lambda: ssi.OLS(y, W, representation=rep,  # noqa: E731
                                features=X).fit(cov_type="naive")
        t_naive, _ = timed(naive, repeats=3)
        F = rep.transform(X)
        t_plain, _ = timed(lambda: sm.OLS(y, np.column_stack([W, F])).fit(), repeats=3)
        t_pred1, pred = timed(lambda: res.get_prediction(W_new, features=X_new))
        t_pred2, pred2 = timed(lambda: res.get_prediction(W_new2, features=X_new2), repeats=3)
        t_ttest, _ = timed(lambda: res.t_test(np.eye(len(res.params))[1:3]), repeats=3)
    fit = t_pca + t_two
    return {"section": "predict", "m": m, "p": p, "k": k, "n": n,
            "bare_XtX_s": t_bare, "pca_fit_s": t_pca, "pca_fit_ratio": t_pca / t_bare,
            "two_stage_ols_s": t_two, "two_stage_ols_ratio": t_two / t_bare,
            "naive_ols_s": t_naive, "plain_statsmodels_s": t_plain,
            "naive_vs_statsmodels": t_naive / t_plain,
            "fit_total_s": fit, "prediction_first_s": t_pred1,
            "prediction_cached_s": t_pred2, "t_test_s": t_ttest,
            "prediction_first_over_fit": t_pred1 / fit,
            "prediction_cached_over_fit": t_pred2 / fit,
            "cached_directions": int(res._covariance.first_stage_gram()[0].shape[0]),
            "q": int(rep.params_.size), "blas_threads": 1,
            "se_mean_finite": bool(np.all(np.isfinite(pred.se_mean))
                                   and np.all(np.isfinite(pred2.se_mean)))}


# --------------------------------------------------------------------------- ooc
def write_chunks(path: Path, m: int, p: int, k: int, rows: int, dtype, seed: int = 1):
    """X_pre as .npy files of ``rows`` rows each; returns the file names."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(p, p)))
    files = []
    for i, start in enumerate(range(0, m, rows)):
        name = path / f"chunk_{i:05d}.npy"
        np.save(name, make_rows(rng, min(rows, m - start), p, k, Q, dtype))
        files.append(str(name))
    return files


def dask_from_files(files):
    """One dask block per file, read (``np.load``) by the task that needs it and freed
    after: the pattern of zarr/HDF5 chunks, so that peak RSS counts what the
    pipeline holds, not the page cache of a memory map."""
    import dask
    import dask.array as da
    blocks = []
    for f in files:
        header = np.load(f, mmap_mode="r")
        blocks.append(da.from_delayed(dask.delayed(np.load)(f), shape=header.shape,
                                      dtype=header.dtype))
    return da.concatenate(blocks)


def run_ooc_child(spec: dict) -> dict:
    """In a fresh process (so that peak RSS is this pipeline's): fit from disk chunks."""
    import dask
    from threadpoolctl import threadpool_limits
    # parallel over blocks (dask threads), one BLAS thread each: on a shared machine
    # nested BLAS threads oversubscribe the cores and run many times slower
    threadpool_limits(limits=1)
    dask.config.set(scheduler="threads", num_workers=spec["workers"])
    X_pre = dask_from_files(spec["files"])
    m, p = X_pre.shape
    k = spec["k"]
    rng = np.random.default_rng(2)
    Q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(p, p)))
    X, W, y = labeled(rng, spec["n"], p, k, Q)
    t0 = time.perf_counter()
    bare_pass(X_pre)
    t_bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = ssi.PCA(k).fit(X_pre)
    t_pca = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = ssi.OLS(y, W, representation=rep, features=X).fit()
    t_two = time.perf_counter() - t0
    out = {"m": m, "p": p, "k": k, "n": spec["n"], "dtype": str(X_pre.dtype),
           "bare_chunked_XtX_s": t_bare, "pca_fit_s": t_pca, "two_stage_ols_s": t_two,
           "two_stage_fit_s": t_pca + t_two,
           "two_stage_fit_over_bare": (t_pca + t_two) / t_bare,
           "bse_max": float(np.max(res.bse)),
           "X_pre_GB": X_pre.nbytes / 1e9}
    if spec.get("predict"):
        X_new, W_new, _ = labeled(rng, 1000, p, k, Q)
        t0 = time.perf_counter()
        res.get_prediction(W_new, features=X_new)
        out["prediction_first_s"] = time.perf_counter() - t0
    out["peak_rss_GB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    out["labeled_and_design_GB"] = (X.nbytes + W.nbytes) / 1e9
    return out


def section_ooc(args, *, name, m, p, k, n, dtype, rows, predict) -> dict:
    path = SCRATCH / name
    try:
        t0 = time.perf_counter()
        files = write_chunks(path, m, p, k, rows, dtype)
        t_write = time.perf_counter() - t0
        spec = {"files": files, "k": k, "n": n, "workers": 2, "predict": predict}
        t0 = time.perf_counter()
        child = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                               capture_output=True, text=True, check=True)
        total = time.perf_counter() - t0
    finally:
        shutil.rmtree(path, ignore_errors=True)
    row = json.loads(child.stdout.strip().splitlines()[-1])
    row.update(section=name, write_s=t_write, total_process_s=total, chunk_rows=rows)
    return row


# ------------------------------------------------------------------- distributed
def section_distributed(args) -> dict:
    import dask.array as da
    from distributed import Client, LocalCluster
    m, p, k, n = int(args.m_distributed), 100, 10, 20_000
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    X_pre = make_rows(rng, m, p, k, Q)
    X, W, y = labeled(rng, n, p, k, Q)
    pre_groups = np.arange(m) // 50
    cov = {"cov_type": "cluster", "cov_kwds": {"groups": np.arange(n) // 10,
                                               "pretrain_groups": pre_groups}}

    def fit(data):
        rep = ssi.PCA(k).fit(data)
        res = ssi.OLS(y, W, representation=rep, features=X).fit(**cov)
        return np.r_[res.params, res.bse]

    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=1)  # in this process; the workers run one thread each
    t_mem, expected = timed(fit, X_pre)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        t_dist, got = timed(fit, da.from_array(X_pre, chunks=(m // 8, p)))
    return {"section": "distributed", "m": m, "p": p, "k": k, "n": n,
            "in_memory_s": t_mem, "distributed_s": t_dist,
            "max_rel_diff_params_bse": float(np.max(np.abs(got - expected)
                                                    / np.abs(expected)))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="+",
                    default=["predict", "ooc", "distributed", "embeddings"])
    ap.add_argument("--m-predict", type=float, default=1e6)
    ap.add_argument("--m-ooc", type=float, default=1e7)
    ap.add_argument("--m-distributed", type=float, default=4e5)
    ap.add_argument("--m-embeddings", type=float, default=2e6)
    ap.add_argument("--child", default=None)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_ooc_child(json.loads(args.child))))
        return None
    rows = []
    for section in args.sections:
        if section == "predict":
            row = section_predict(args)
        elif section == "ooc":
            row = section_ooc(args, name="ooc", m=int(args.m_ooc), p=100, k=10, n=100_000,
                              dtype=np.float64, rows=250_000, predict=True)
        elif section == "distributed":
            row = section_distributed(args)
        elif section == "embeddings":
            row = section_ooc(args, name="embeddings", m=int(args.m_embeddings), p=768,
                              k=20, n=20_000, dtype=np.float32, rows=100_000,
                              predict=False)
        else:
            raise SystemExit(f"unknown section {section!r}")
        row["load_avg_1min"] = os.getloadavg()[0]
        print(json.dumps(row, default=float), flush=True)
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = []
    if args.out.exists():  # keep the other sections' last rows
        with open(args.out) as fh:
            previous = [r for r in csv.DictReader(fh)
                        if r["section"] not in {r2["section"] for r2 in rows}]
    with open(args.out, "w", newline="") as fh:
        keys = ["section"] + sorted({key for r in previous + rows for key in r} - {"section"})
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(previous + rows)
    write_markdown(previous + rows, args.out.with_suffix(".md"))
    return rows


def _fmt(value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number.is_integer() and abs(number) >= 1:
        return f"{int(number):,}"
    return f"{number:.3g}"


def write_markdown(rows, path: Path) -> None:
    """One two-column table per section, in the order of ``TITLES``."""
    lines = ["# Scale: out-of-core and distributed first stages, cached predictions", "",
             f"Measured by `benchmarks/bench_scale.py` on {os.cpu_count()} cores "
             "(times in seconds; ratios against a bare pass over the same X_pre in the "
             "same run).", ""]
    for section in TITLES:
        for row in rows:
            if row["section"] != section:
                continue
            lines += [f"**{TITLES[section]}**", "", "| quantity | value |", "| --- | --- |"]
            lines += [f"| {key} | {_fmt(value)} |" for key, value in row.items()
                      if key != "section" and value not in ("", None)]
            lines.append("")
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
