"""Figure of the coverage studies: naive against two-stage coverage of every cell.

Reads the tables that ``benchmarks/coverage_*.py`` write (``results/coverage_*.csv``)
and draws one panel per study. Each point is one row of its table, a configuration
(law, n, m, second-stage covariance, ...) and a target: the coverage of the naive
interval on the horizontal axis, that of the two-stage interval on the vertical axis,
with a 95% Monte Carlo interval (+-1.96 MC SE). For Wald-test targets the "coverage" is
100 minus the rejection rate of a true null, as in the tables. The two-stage target band
93.5-96.5% is shaded.

Run: ``python benchmarks/plot_validation.py``. Writes ``results/coverage.png``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _coverage import BAND  # noqa: E402  (the band of the Markdown tables)

RESULTS = Path(__file__).resolve().parent / "results"
#: target name -> kind of quantity, in legend order
KINDS = ["intercept", "covariate", "learned-feature coefficient", "prediction",
         "joint Wald test", "dispersion or threshold"]
WALD_TARGETS = {"wald_null", "joint_inv", "block"}
STRESS_LABEL = "hollow: stress row outside the design (documented)"


def target_kind(target: str) -> str:
    """What a coverage target is (``const``, ``z``, ``pc0``, ``pred_mean``, ...; an
    equation prefix such as ``y1_`` or ``inflate_`` is ignored)."""
    name = target.split("_", 1)[1] if target.startswith(("y1_", "y2_", "inflate_")) \
        else target
    if name == "const":
        return "intercept"
    if name == "z":
        return "covariate"
    if name.startswith("pred"):
        return "prediction"
    if name in WALD_TARGETS:
        return "joint Wald test"
    if name == "alpha" or "/" in name:  # dispersion, ordered-model thresholds
        return "dispersion or threshold"
    return "learned-feature coefficient"


def study_title(csv_path: Path) -> str:
    """The study's description from the heading of its Markdown table, else the stem."""
    md = csv_path.with_suffix(".md")
    if md.exists():
        heading = md.read_text().splitlines()[0]
        if ": " in heading:
            return heading.split(": ", 1)[1]
    return csv_path.stem


def stress_rows(table: pd.DataFrame) -> pd.Series:
    """Rows outside a study's design grid: documented stress tests, not held to the band
    (``regime`` other than ``grid`` in the PCA study, ``banded`` false in the mixture one)."""
    stress = pd.Series(False, index=table.index)
    if "regime" in table:
        stress |= table["regime"] != "grid"
    if "banded" in table:
        stress |= ~table["banded"].astype(bool)
    return stress


def plot_study(ax, table: pd.DataFrame, title: str, low: float) -> None:
    """Two-stage against naive coverage (in %) of each row, the band shaded; stress rows
    (:func:`stress_rows`) hollow."""
    ax.axhspan(100 * BAND[0], 100 * BAND[1], color="tab:green", alpha=0.15, lw=0)
    ax.axhline(95, color="tab:green", lw=0.8)
    stress = stress_rows(table)
    for i, kind in enumerate(KINDS):
        of_kind = table["target"].map(target_kind) == kind
        for hollow in (False, True):
            rows = table[of_kind & (stress == hollow)]
            if rows.empty:
                continue
            ax.errorbar(100 * rows["coverage_naive"], 100 * rows["coverage_two_stage"],
                        yerr=196 * rows["mcse_two_stage"], fmt="o", ms=3.5, lw=0.8,
                        color=f"C{i}", mfc="white" if hollow else f"C{i}",
                        label=STRESS_LABEL if hollow else kind)
    ax.set_xlim(0, 100)
    ax.set_ylim(low, 100)
    ax.set_title(title, fontsize=9, wrap=True)
    ax.set_xlabel("naive coverage (%)")
    ax.set_ylabel("two-stage coverage (%)")


def figure(results: Path, out: Path) -> Path:
    """Draw every ``coverage_*.csv`` under ``results`` into ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = sorted(results.glob("coverage_*.csv"))
    if not paths:
        raise FileNotFoundError(f"no coverage_*.csv in {results}; run the coverage "
                                "benchmarks first.")
    tables = [pd.read_csv(p) for p in paths]
    low = min(85.0, min(100 * t["coverage_two_stage"].min() for t in tables) - 2.0)
    cols = 3
    rows = -(-(len(paths) + 1) // cols)  # one more slot for the legend
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    flat = axes.ravel()
    for ax, path, table in zip(flat, paths, tables):
        plot_study(ax, table, study_title(path), low)
    handles = {}
    for ax in flat[:len(paths)]:
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    band = plt.Rectangle((0, 0), 1, 1, color="tab:green", alpha=0.15)
    for ax in flat[len(paths):]:
        ax.axis("off")
    labels = [k for k in KINDS + [STRESS_LABEL] if k in handles]
    flat[len(paths)].legend([band] + [handles[k] for k in labels],
                            [f"target band {100 * BAND[0]:g}-{100 * BAND[1]:g}%"] + labels,
                            loc="center", title="each point: one cell x target")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=str(RESULTS),
                        help="directory with the coverage_*.csv tables")
    parser.add_argument("--out", default=str(RESULTS / "coverage.png"))
    args = parser.parse_args(argv)
    out = figure(Path(args.results), Path(args.out))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
