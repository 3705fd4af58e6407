"""Symmetry-aware hypothesis testing: refuse what the data cannot answer (THEORY.md §5)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.iolib.summary import Summary
from statsmodels.stats.contrast import ContrastResults, WaldTestResults

from .exceptions import NonInvariantHypothesisError

__all__ = ["GaugeDependentContrastResults", "check_invariant", "gauge_free_terms", "invariant_tests_frame", "gauge_dependent_columns",
           "mark_gauge_dependent"]

GAUGE_NOTE = ("gauge-dependent: tested in the reported gauge ({gauge}); another equally "
              "good first-stage fit can change this result.")


def _as_matrix(constraints, n_params: int):
    """``(R, q)`` from what statsmodels accepts after string parsing."""
    if isinstance(constraints, tuple):
        R, q = constraints
        R = np.atleast_2d(np.asarray(R, dtype=float))
        return R, np.asarray(q, dtype=float).ravel()
    R = np.atleast_2d(np.asarray(constraints, dtype=float))
    if R.shape[1] != n_params:
        raise ValueError(f"r_matrix must have {n_params} columns (one per coefficient); "
                         f"got shape {R.shape}.")
    return R, np.zeros(R.shape[0])


def _describe(R, q, names) -> str:
    rows = []
    for row, value in zip(R, q):
        terms = [f"{'' if c == 1 else '-' if c == -1 else f'{c:g}*'}{n}"
                 for c, n in zip(row, names) if c != 0]
        rows.append(" + ".join(terms).replace("+ -", "- ") + f" = {value:g}")
    return "; ".join(rows)


def check_invariant(results, constraints, allow_gauge: bool) -> bool:
    """Raise :class:`NonInvariantHypothesisError` unless the hypothesis is invariant.

    Returns True when the hypothesis is NOT invariant but ``allow_gauge`` lets it through
    (the caller marks the result as gauge-dependent).
    """
    model = results.model
    group = model.representation.symmetry_
    names = list(model.exog_names)
    R, q = _as_matrix(constraints, len(names))
    if group.is_invariant(R, q, rep_cols=model.rep_cols, n_params=len(names)):
        return False
    if allow_gauge:
        return True
    rep = model.representation
    alternatives = [f"'{label}'" for label, _ in group.invariant_hypotheses(model.feature_names)]
    raise NonInvariantHypothesisError(
        f"The hypothesis '{_describe(R, q, names)}' is not invariant under the "
        f"representation's symmetry group, {group.name}: the first stage "
        f"({type(rep).__name__}) identifies its features only up to that group, so an "
        "equally good fit could make this hypothesis true or false - it has no gauge-free "
        "meaning. Invariant alternatives: hypotheses on the covariates and intercept, "
        + ", ".join(alternatives) + " (see res.invariant_tests()). To test in the reported "
        f"gauge ({rep.gauge_convention}) anyway, pass allow_gauge=True."
    )


class GaugeDependentContrastResults(ContrastResults):
    """A test result computed in the reported gauge; its summary says so."""

    gauge_dependent = True
    gauge_note = ""

    def summary(self, *args, **kwargs):
        out = super().summary(*args, **kwargs)
        if isinstance(out, str):
            return out + "\nNOTE: " + self.gauge_note
        smry = Summary()
        smry.tables.append(out)
        smry.add_extra_txt([f"NOTE: {self.gauge_note}"])
        return smry


def mark_gauge_dependent(contrast, results):
    """Re-class a ContrastResults as gauge-dependent with a note naming the gauge."""
    marked = GaugeDependentContrastResults.__new__(GaugeDependentContrastResults)
    marked.__dict__.update(contrast.__dict__)
    marked.gauge_note = GAUGE_NOTE.format(
        gauge=results.model.representation.gauge_convention)
    return marked


def invariant_tests_frame(results) -> pd.DataFrame:
    """Wald tests of the hypotheses that are meaningful for the representation's group."""
    model = results.model
    group = model.representation.symmetry_
    d = len(model.exog_names)
    rows, index = [], []
    for label, R_rep in group.invariant_hypotheses(model.feature_names):
        R = np.zeros((R_rep.shape[0], d))
        R[:, model.rep_cols] = R_rep
        wt = results.wald_test(R, scalar=True, use_f=results.use_t)
        df = int(wt.df_num) if results.use_t else int(wt.df_denom)
        rows.append([float(wt.statistic), df, float(wt.pvalue),
                     "F" if results.use_t else "chi2"])
        index.append(label)
    return pd.DataFrame(rows, index=index, columns=["statistic", "df", "pvalue", "distribution"])


def gauge_dependent_columns(results) -> list[int]:
    """Coefficient positions whose single-coefficient test is not invariant."""
    model = results.model
    group = model.representation.symmetry_
    d = len(model.exog_names)
    return [int(c) for c in model.rep_cols
            if not group.is_invariant(np.eye(d)[[c]], rep_cols=model.rep_cols, n_params=d)]


def gauge_free_terms(results, terms):
    """Replace non-invariant rows of a ``wald_test_terms`` result by the joint block test."""
    model = results.model
    group = model.representation.symmetry_
    d = len(model.exog_names)
    keep = [name for name, constraint in terms.temp
            if group.is_invariant(*_as_matrix(constraint, d), rep_cols=model.rep_cols,
                                  n_params=d)]
    if len(keep) == len(terms.temp):
        return terms
    table = terms.table.loc[keep]
    block = np.zeros((len(model.rep_cols), d))
    block[np.arange(len(model.rep_cols)), model.rep_cols] = 1.0
    wt = results.wald_test(block, scalar=True)
    row = [float(wt.statistic), float(wt.pvalue),
           int(wt.df_num) if results.use_t else int(wt.df_denom)]
    if results.use_t:
        row.append(wt.df_denom)
    label = f"representation block ({', '.join(model.feature_names)})"
    table = pd.concat([table, pd.DataFrame([row], index=[label], columns=table.columns)])
    out = WaldTestResults(None, terms.distribution, None, table=table)
    out.temp = [(n, c) for n, c in terms.temp if n in keep] + [(label, block)]
    return out
