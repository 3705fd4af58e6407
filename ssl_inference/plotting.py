"""Figures: where the first stage matters, and how much unlabeled data is enough.

Each function draws on a matplotlib ``Axes`` (a new figure when none is given) and
returns it. matplotlib is an optional dependency (``pip install "ssl_inference[plot]"``).

* :func:`plot_standard_errors`: naive vs two-stage standard error of every coefficient,
  annotated with the pre-training share of its variance (``res.plot_standard_errors()``);
* :func:`plot_risk_density`: the limit law of the downstream test risk
  (``RiskAsymptotics.plot()``);
* :func:`plot_pretrain_size`: the limiting expected excess risk, with a quantile band,
  against the pre-training size ``m`` at fixed ``n``, the downstream-only baseline and
  the crossover (``RiskAsymptotics.plot_pretrain_size()``).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["plot_standard_errors", "plot_risk_density", "plot_pretrain_size"]


def _axes(ax, figsize):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "Plotting needs matplotlib, an optional dependency: "
            'pip install "ssl_inference[plot]" (or pip install matplotlib).') from exc
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_standard_errors(results, ax=None):
    """Naive and two-stage standard error of each coefficient, side by side.

    One pair of horizontal bars per coefficient: the standard error plain statsmodels
    reports (``bse_naive``) and the one of ``results`` (two-stage or bootstrap), with
    the ratio and the pre-training share of the variance written next to them. Where
    the bars differ, the first stage matters.

    Parameters
    ----------
    results : two-stage results
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> rep = ssi.PCA(2).fit(rng.normal(size=(200, 4)) * [3.0, 2.0, 1.0, 0.5])
    >>> X = rng.normal(size=(300, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> res = ssi.OLS(X[:, 0] + rng.normal(size=300), np.ones((300, 1)),
    ...               representation=rep, features=X).fit()
    >>> plot_standard_errors(res).get_xlabel()
    'standard error'
    """
    from .summary import inflation_frame

    frame = inflation_frame(getattr(results, "_results", results))
    ax = _axes(ax, (6.5, 0.45 * len(frame) + 1.6))
    y = np.arange(len(frame))[::-1]
    label = frame.columns[1]
    ax.barh(y + 0.2, frame["naive SE"], height=0.38, color="0.7", label="naive SE")
    ax.barh(y - 0.2, frame[label], height=0.38, color="C0", label=label)
    right = float(frame[["naive SE", label]].to_numpy().max())
    for yi, ratio, share in zip(y, frame["SE ratio"], frame["pretrain share"]):
        ax.text(right * 1.03, yi, f"x{ratio:.2f}  ({100 * share:.0f}% pre-training)",
                va="center", fontsize=8)
    ax.set_yticks(y, list(frame.index))
    ax.set_xlim(0, right * 1.6)
    ax.set_xlabel("standard error")
    ax.set_title("Where the first stage matters: SE ratio and pre-training share")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2,
              frameon=False)
    return ax


def plot_risk_density(risk, ax=None, *, excess: bool = False, quantiles=(0.5, 0.9),
                      points: int = 200):
    """Density of the limit law of the test risk, fine-tuning point and quantiles marked.

    For least squares the fine-tuning part is the point ``sigma^2 d_eff`` where the law
    starts; for a GLM deviance risk it is random and its mean is marked instead.

    Parameters
    ----------
    risk : ssl_inference.risk.RiskAsymptotics
    ax : matplotlib Axes, optional
    excess : bool
        The law of ``R - R*`` (``R - sigma^2`` for least squares) instead of
        ``n (R - R*)``.
    quantiles : sequence of float
        Marked with dashed lines.
    points : int
        Grid size of the density.

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax, (6, 3.5))
    law = risk.excess_law if excess else risk.law
    label = risk.excess_label if excess else f"n ({risk.excess_label})"
    shift = law.shift
    scale = 1.0 / risk.nobs if excess else 1.0
    fine = risk.fine_tuning_law
    if law.is_degenerate:
        ax.axvline(shift, color="C0", label=f"{label}: point mass")
    else:
        hi = float(law.ppf(0.995))
        grid = np.linspace(shift, hi, points)[1:]
        ax.plot(grid, law.pdf(grid), color="C0", label=f"limit density of {label}")
        if fine.is_degenerate:
            text = ("fine-tuning part sigma^2 d_eff" if risk.excess_label == "R - sigma^2"
                    else "fine-tuning part (averaged over labels)")
            ax.axvline(shift, color="C2", linestyle=":",
                       label=text + (" / n" if excess else ""))
        else:
            ax.axvline(fine.mean * scale, color="C2", linestyle=":",
                       label="mean of the fine-tuning part" + (" / n" if excess else ""))
        for q in quantiles:
            ax.axvline(float(law.ppf(q)), color="C1", linestyle="--", linewidth=1)
            ax.text(float(law.ppf(q)), ax.get_ylim()[1] * 0.95, f" q{100 * q:g}",
                    color="C1", va="top", fontsize=8)
    ax.set_xlabel(label)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return ax


def plot_pretrain_size(risk, ax=None, *, sizes=None, band=(0.1, 0.9), d_base=None):
    r"""How much unlabeled data is enough: limiting excess risk against ``m``.

    At fixed ``n`` and ``alpha = m / n``, the excess test risk is approximately
    ``(F + sum_j (kappa_j / alpha) chi2_1) / n`` with ``F`` the fine-tuning part
    (``sigma^2 d_eff`` for least squares; a weighted chi-square for a GLM deviance
    risk, independent of the rest); its mean ``E F / n + E||L(Z)||^2 / m`` is drawn
    against ``m`` (log scale) with the quantiles ``band`` of the total shaded, the
    fine-tuning floor ``E F / n``, the downstream-only baseline ``sigma^2 d_base / n``
    (``phi d_base / n`` for a GLM: the mean of its limit) and the crossover
    ``m_0 = n alpha_0`` (:meth:`~ssl_inference.risk.RiskAsymptotics.crossover_alpha`)
    when ``d_base`` is known and the comparison defined, and the fitted ``m``.

    Parameters
    ----------
    risk : ssl_inference.risk.RiskAsymptotics
    ax : matplotlib Axes, optional
    sizes : array_like, optional
        Pre-training sizes ``m`` (default: 40 points from ``m / 30`` to ``30 m``).
    band : (float, float)
        Quantile levels of the shaded band.
    d_base : int, optional
        Parameters of the downstream-only baseline (default: ``risk.d_base``; without
        one, or for a GLM law with a sandwich fine-tuning part, the baseline and
        crossover are not drawn; passing one then raises, see
        :meth:`~ssl_inference.risk.RiskAsymptotics.crossover_alpha`).

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax, (6.5, 3.8))
    m_fit, n = risk.nobs_pretrain, risk.nobs
    if d_base is None:  # an explicit d_base with no comparable baseline raises below
        d_base = risk.d_base if risk.has_baseline else None
    m0 = n * risk.crossover_alpha(d_base) if d_base is not None else math.nan
    if sizes is None:
        low = m_fit / 30 if not (math.isfinite(m0) and m0 > 0) else min(m_fit / 30, m0 / 3)
        sizes = np.geomspace(max(low, 1.0), m_fit * 30, 60)
    sizes = np.asarray(sizes, dtype=float)
    floor = risk.fine_tuning
    mean = floor + risk.pretrain_law.mean / sizes
    lo, hi = (_total_quantile(risk, sizes, q) for q in band)
    ax.fill_between(sizes, lo, hi, color="C0", alpha=0.2,
                    label=f"{100 * band[0]:g}-{100 * band[1]:g}% quantiles")
    ax.plot(sizes, mean, color="C0", label="expected excess risk (limit)")
    least_squares = risk.excess_label == "R - sigma^2"
    ax.axhline(floor, color="C2", linestyle=":",
               label="fine-tuning floor " + ("sigma^2 d_eff / n" if least_squares
                                             else "E[fine-tuning] / n"))
    top = _total_quantile(risk, [m_fit], band[1])[0]
    if d_base is not None:
        baseline = risk.sigma2 * d_base / n
        top = max(top, baseline)
        ax.axhline(baseline, color="C3", linestyle="--",
                   label="downstream-only baseline " + ("sigma^2 d_base / n" if least_squares
                                                        else "phi d_base / n"))
    ax.set_ylim(floor - 0.1 * (top - floor), floor + 1.4 * (top - floor))
    if math.isfinite(m0) and m0 > 0:
        ax.axvline(m0, color="C3", linewidth=1)
        ax.text(m0, ax.get_ylim()[1], f" crossover m = {m0:,.0f}", color="C3", va="top",
                fontsize=8)
    ax.axvline(m_fit, color="0.4", linewidth=1, linestyle="-.")
    ax.text(m_fit, ax.get_ylim()[0], f" fitted m = {m_fit:,}", color="0.3", va="bottom",
            fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"pre-training rows m (n = {n:,} labeled rows fixed)")
    ax.set_ylabel(f"excess test risk {risk.excess_label}")
    ax.set_title("How much unlabeled data is enough")
    ax.legend(fontsize=8)
    return ax


#: a random fine-tuning part needs the quantiles of the whole law at each m: computed
#: at this many sizes and interpolated in log m
_QUANTILE_SIZES = 16


def _total_quantile(risk, sizes, q: float) -> np.ndarray:
    """Quantile ``q`` of the limiting excess risk ``(F + sum_j (kappa_j n / m) chi2_1) / n``
    at each ``m``: ``E F / n`` plus the pre-training quantile when ``F`` is a point."""
    from .risk import WeightedChiSquare

    sizes = np.asarray(sizes, dtype=float)
    fine = risk.fine_tuning_law
    if fine.is_degenerate:
        return risk.fine_tuning + _part_quantile(risk, sizes, q)
    probe = np.geomspace(sizes.min(), sizes.max(), _QUANTILE_SIZES) if sizes.size > \
        _QUANTILE_SIZES else sizes
    values = np.array([float(WeightedChiSquare(
        np.concatenate([fine.weights, risk.kappa * risk.nobs / m]), fine.shift).ppf(q))
        for m in probe]) / risk.nobs
    return np.interp(np.log(sizes), np.log(probe), values)


def _part_quantile(risk, sizes, q: float) -> np.ndarray:
    """Quantile ``q`` of the pre-training part ``sum_j kappa_j chi2_1 / m`` at each ``m``."""
    base = float(risk.pretrain_law.ppf(q)) if risk.kappa.size else 0.0
    return base / np.asarray(sizes, dtype=float)
