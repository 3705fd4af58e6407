"""Shared machinery of the Monte Carlo coverage benchmarks (``benchmarks/coverage_*.py``).

Each coverage script keeps its own data-generating process, targets, grid, table
columns and docstring; this module holds what they have in common:

* :func:`replicate` / :func:`stack`: run one replication per child of a
  ``numpy.random.SeedSequence`` and stack the per-replication outputs;
* :func:`coverage_columns`: naive and two-stage coverage with their Monte Carlo SEs
  ``sqrt(c (1 - c) / R)``;
* :func:`se_sd_ratio`, :func:`se_sd_columns`: mean SE / Monte Carlo SD of the estimates
  (1 for a correct SE) with its Monte Carlo SE, so that an SE that is too *large* is
  visible too;
* :func:`run_configs`: map a per-configuration simulation over the grid (optionally in
  a process pool), configuration ``i`` seeded with ``[seed, i]`` and timed;
* :func:`build_parser`, :func:`write_tables`, :func:`main`: the common CLI
  (``--reps``, ``--seed``, ``--out``, ``--jobs``) and the CSV + Markdown output.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

BAND = (0.935, 0.965)  # two-stage target band of the Markdown tables


# ------------------------------------------------------------------ replications
def replicate(one_replication, reps: int, seed) -> list:
    """``[one_replication(rng) for each of reps independent streams]``.

    ``seed`` (int or sequence of int) is ``numpy.random.SeedSequence`` entropy; every
    replication gets its own child stream ``default_rng(child)``.
    """
    return [one_replication(np.random.default_rng(child))
            for child in np.random.SeedSequence(seed).spawn(reps)]


def stack(runs: list) -> dict:
    """Per-replication dicts -> dict of arrays with the replications along axis 0."""
    return {key: np.array([r[key] for r in runs]) for key in runs[0]}


def coverage_columns(cover_naive, cover_two_stage, reps: int) -> dict:
    """Coverage of naive and two-stage intervals (mean of the per-replication 0/1 hits)
    with Monte Carlo SEs ``sqrt(c (1 - c) / reps)``, as table columns in this order:
    ``coverage_naive, mcse_naive, coverage_two_stage, mcse_two_stage``."""
    covn = np.asarray(cover_naive).mean()
    cov2 = np.asarray(cover_two_stage).mean()
    return {"coverage_naive": covn, "mcse_naive": np.sqrt(covn * (1 - covn) / reps),
            "coverage_two_stage": cov2, "mcse_two_stage": np.sqrt(cov2 * (1 - cov2) / reps)}


def se_sd_ratio(est, se) -> tuple[float, float]:
    r"""``mean(se) / sd(est)`` over the replications and its Monte Carlo SE.

    Delta method on ``log r = log mean(se) - log(v) / 2`` with ``d = est - mean(est)``,
    ``v = mean(d^2)``:

    .. math:: R\,\mathrm{Var}(\log r) \approx \frac{\mathrm{var}(se)}{\overline{se}^2}
              + \frac{1}{4}\Big(\frac{\overline{d^4}}{v^2} - 1\Big)
              - \frac{\mathrm{cov}(se, d^2)}{\overline{se}\, v}.

    For normal estimates and a nearly constant SE this is ``1 / (2R)``: the relative
    error of a Monte Carlo SD is ``1 / sqrt(2R)`` (2.2% at R = 1000). Heavy-tailed
    estimates (large ``d^4 / v^2``) make it larger, and the formula says by how much.
    """
    est, se = np.asarray(est, dtype=float), np.asarray(se, dtype=float)
    d = est - est.mean()
    v, mse = np.mean(d ** 2), se.mean()
    ratio = mse / np.sqrt(v) * np.sqrt((len(d) - 1) / len(d))  # sd with ddof=1
    var_log = (se.var() / mse ** 2 + (np.mean(d ** 4) / v ** 2 - 1) / 4
               - np.mean((se - mse) * (d ** 2 - v)) / (mse * v)) / len(d)
    return float(ratio), float(ratio * np.sqrt(max(var_log, 0.0)))


def se_sd_columns(est, se_naive, se_two_stage) -> dict:
    """Table columns ``se_sd_naive, se_sd_two_stage, mcse_se_sd_two_stage``: mean SE /
    Monte Carlo SD of naive and two-stage SEs (:func:`se_sd_ratio`) and the MC SE of
    the two-stage ratio."""
    naive, _ = se_sd_ratio(est, se_naive)
    two, mcse = se_sd_ratio(est, se_two_stage)
    return {"se_sd_naive": naive, "se_sd_two_stage": two, "mcse_se_sd_two_stage": mcse}


def se_sd_tolerance(reps: int, n_se: float = 3.0) -> float:
    """Half-width of a band around 1 for mean SE / Monte Carlo SD at ``reps`` replications.

    ``n_se`` Monte Carlo SEs of the ratio, ``1 / sqrt(2 reps)`` each (normal estimates,
    nearly constant SE; :func:`se_sd_ratio`), rounded up to 0.01: 0.07 at 1000 reps, 0.09
    at 600, 0.14 at 250. A correct SE leaves a 3-SE band with probability ~0.3%.
    """
    return math.ceil(100 * n_se / math.sqrt(2 * reps)) / 100


def se_sd_outside(df: pd.DataFrame, tol: float, se: str = "mean_se_two_stage",
                  sd: str = "sd_est") -> pd.DataFrame:
    """Rows of a coverage table whose ``mean SE / MC SD`` is more than ``tol`` from 1
    (or not a number), with the ratio in a column ``se/sd``."""
    out = df.assign(**{"se/sd": df[se] / df[sd]})
    return out[~((out["se/sd"] - 1).abs() <= tol)]


# ------------------------------------------------------------------ grid runner
def _timed(task):
    run_config, idx, cfg, reps, seed = task
    t0 = time.perf_counter()
    df = run_config(cfg, reps, [seed, idx])
    df["seconds"] = time.perf_counter() - t0
    return df


def run_configs(run_config, configs, reps: int, seed: int, jobs: int = 1,
                cost=None) -> pd.DataFrame:
    """Concatenated tables of ``run_config(cfg, reps, [seed, i])`` over ``configs``.

    Configuration ``i`` gets SeedSequence entropy ``[seed, i]``, so the result does not
    depend on ``jobs`` or on the scheduling order; each table gets a ``seconds`` column
    (wall time of its configuration). With ``jobs > 1`` the configurations run in a
    process pool, ordered by decreasing ``cost(cfg)`` if given (largest first, so the
    workers finish together); the output keeps the order of ``configs``.
    ``run_config`` must be a module-level function (it is pickled).
    """
    tasks = [(run_config, i, cfg, reps, seed) for i, cfg in enumerate(configs)]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor
        order = tasks if cost is None else sorted(tasks, key=lambda t: -cost(t[2]))
        with ProcessPoolExecutor(jobs) as pool:
            parts = dict(zip([t[1] for t in order], pool.map(_timed, order)))
        frames = [parts[i] for i in range(len(tasks))]
    else:
        frames = [_timed(t) for t in tasks]
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------ output / CLI
def in_band(coverage: float) -> bool:
    return BAND[0] <= coverage <= BAND[1]


def coverage_cells(r) -> str:
    """``naive (mcse) | two-stage (mcse)`` Markdown cells of a table row, in %."""
    return (f"{100 * r.coverage_naive:.1f} ({100 * r.mcse_naive:.1f}) | "
            f"{100 * r.coverage_two_stage:.1f} ({100 * r.mcse_two_stage:.1f})")


def generated_by(script: str, reps: int, seed: int, seconds: float) -> str:
    return (f"Generated by `benchmarks/{script} --reps {reps} --seed {seed}` "
            f"({seconds:.0f} s wall).")


def markdown_table(header_lines, rows) -> str:
    """Header lines, then one line per row, newline-terminated."""
    return "\n".join([*header_lines, *rows, ""])


def write_tables(df: pd.DataFrame, out_csv, markdown: str) -> Path:
    """Write ``df`` to ``out_csv`` (``%.6g`` floats) and ``markdown`` next to it (same
    stem, ``.md``); create the directory if needed. Returns the CSV path."""
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, float_format="%.6g")
    out.with_suffix(".md").write_text(markdown)
    return out


def build_parser(description: str, default_out,
                 default_reps: int = 2000) -> argparse.ArgumentParser:
    """``--reps`` (``default_reps``), ``--seed`` (0), ``--out`` (``default_out``),
    ``--jobs`` (2)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--reps", type=int, default=default_reps)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(default_out))
    parser.add_argument("--jobs", type=int, default=2,
                        help="worker processes (one configuration each)")
    return parser


def main(argv, *, doc: str, script_file: str, configs, run_config, to_markdown,
         cost=None, default_reps: int = 2000) -> pd.DataFrame:
    """The CLI of a coverage script: parse, run the grid, write and print the tables.

    ``doc``: the script's docstring (its first line is the ``--help`` description);
    the default output is ``results/<script stem>.csv`` next to ``script_file``.
    ``to_markdown(df, reps, seed, seconds)`` renders the Markdown copy.
    """
    script = Path(script_file)
    args = build_parser(doc.split("\n")[0],
                        script.parent / "results" / f"{script.stem}.csv").parse_args(argv)
    t0 = time.perf_counter()
    df = run_configs(run_config, configs, args.reps, args.seed, args.jobs, cost=cost)
    seconds = time.perf_counter() - t0
    markdown = to_markdown(df, args.reps, args.seed, seconds)
    out = write_tables(df, args.out, markdown)
    print(markdown)
    print(f"wrote {out} and {out.with_suffix('.md')} in {seconds:.1f} s")
    return df
