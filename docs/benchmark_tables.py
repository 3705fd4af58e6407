"""Markdown tables for the validation page, built from the CSVs ``benchmarks/`` writes.

``conf.py`` exposes them as MyST substitutions: ``{{ coverage_summary }}``,
``{{ speed_two_stage }}`` and ``{{ speed_bootstrap }}``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

#: bench_two_stage.csv column -> header
SPEED_TWO_STAGE = {
    "m": "m", "p": "p", "k": "k", "n": "n", "naive_s": "naive (s)",
    "two_stage_s": "two-stage (s)", "ratio": "time ratio",
    "cpu_1thread_ratio": "CPU time ratio, 1 thread",
    "extra_second_stage_peak_MB": "extra peak memory (MB)",
    "bound_chunk_p_plus_p2_MB": "chunk x p + p^2 (MB)", "X_pre_MB": "X_pre (MB)",
}
#: bench_bootstrap.csv column -> header
SPEED_BOOTSTRAP = {
    "mode": "PCA symmetry", "m": "m", "n": "n", "reps": "replicates",
    "analytic_s": "analytic (s)", "bootstrap_s": "bootstrap (s)",
    "time_ratio": "time ratio", "max_abs_se_ratio_minus_1": "max abs(SE ratio - 1)",
}


def markdown_table(frame: pd.DataFrame, columns: dict[str, str], digits: int = 3) -> str:
    """``frame[list(columns)]`` as a Markdown table under the headers ``columns.values()``;
    floats to ``digits`` significant digits."""
    def cell(value) -> str:
        return f"{value:.{digits}g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |"
              for _, row in frame.iterrows()]
    return "\n".join(lines)


def coverage_summary(results: Path, band: tuple[float, float]) -> str:
    """One row per ``coverage_*.csv``: cells, how many intervals cover within ``band``,
    and the range of the coverages (in %)."""
    def within(coverage: pd.Series) -> int:
        return int(coverage.between(*band).sum())

    rows = []
    for path in sorted(results.glob("coverage_*.csv")):
        table = pd.read_csv(path)
        naive, two = 100 * table["coverage_naive"], 100 * table["coverage_two_stage"]
        rows.append({
            "study": f"`{path.name}`", "rows": len(table),
            "two-stage in band": within(table["coverage_two_stage"]),
            "naive in band": within(table["coverage_naive"]),
            "two-stage range": f"{two.min():.1f}-{two.max():.1f}",
            "naive range": f"{naive.min():.1f}-{naive.max():.1f}",
        })
    frame = pd.DataFrame(rows)
    return markdown_table(frame, {c: c for c in frame.columns})


def substitutions(results: Path, band: tuple[float, float]) -> dict[str, str]:
    """The MyST substitutions of the validation page."""
    return {
        "coverage_summary": coverage_summary(results, band),
        "speed_two_stage": markdown_table(pd.read_csv(results / "bench_two_stage.csv"),
                                          SPEED_TWO_STAGE),
        "speed_bootstrap": markdown_table(pd.read_csv(results / "bench_bootstrap.csv"),
                                          SPEED_BOOTSTRAP),
    }
