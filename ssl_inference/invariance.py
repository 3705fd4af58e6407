"""Symmetry-aware hypothesis testing: refuse what the data cannot answer (THEORY.md §5)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.iolib.summary import Summary
from statsmodels.stats.contrast import ContrastResults, WaldTestResults

from .exceptions import NonInvariantHypothesisError

__all__ = ["GaugeDependentContrastResults", "check_invariant", "gauge_free_terms",
           "invariant_hypotheses", "invariant_tests_frame", "gauge_dependent_columns",
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

    Returns True when the hypothesis is NOT invariant but ``allow_gauge`` (or a model
    fitted with ``allow_gauge=True`` on a gauge-dependent design) lets it through; the
    caller marks the result as gauge-dependent.
    """
    model = results.model
    action = model.coefficient_action
    if action is None:  # the design itself depends on the gauge (opted in at the model)
        return True
    names = model.param_names
    R, q = _as_matrix(constraints, len(names))
    if action.preserves(R, q):
        return False
    if allow_gauge:
        return True
    rep = model.representation
    group = rep.symmetry_
    alternatives = [f"'{label}'" for label, _ in invariant_hypotheses(model)]
    raise NonInvariantHypothesisError(
        f"The hypothesis '{_describe(R, q, names)}' is not invariant under the "
        f"representation's symmetry group, {group.name}: the first stage "
        f"({type(rep).__name__}) identifies its features only up to that group, so an "
        "equally good fit could make this hypothesis true or false - it has no gauge-free "
        "meaning. Invariant alternatives: hypotheses on the covariates and intercept, "
        + ", ".join(alternatives) + " (see res.invariant_tests()). To test in the reported "
        f"gauge ({rep.gauge_convention}) anyway, pass allow_gauge=True."
    )


def invariant_hypotheses(model) -> list[tuple[str, np.ndarray]]:
    """Hypotheses on the learned-feature terms with a gauge-free meaning, as (label, R).

    For each equation (:attr:`equations`; one for single-index models): with the
    features as plain columns, the group's own list
    (:meth:`~ssl_inference.symmetry.Group.invariant_hypotheses`) on that equation's
    coefficients; with formula terms of the features, all of those terms jointly zero,
    then each term whose zero-test the group preserves (``z:pc0 = 0`` under sign
    flips, ``I(pc0**2) = 0``). With several equations, first the features' terms in
    all equations jointly zero. Nothing for a gauge-dependent design.
    """
    if model.coefficient_action is None:
        return []
    names = model.param_names
    d = len(names)
    equations = model.equations
    out = []
    if len(equations) > 1:
        cols = np.concatenate([eq.feature_params for eq in equations])
        out.append((" = ".join(names[c] for c in cols) + " = 0", np.eye(d)[cols]))
    for eq in equations:
        if eq.design.is_selector:
            plain = eq.plain_params
            for label, R_rep in model.representation.symmetry_.invariant_hypotheses(
                    [names[c] for c in plain]):
                R = np.zeros((R_rep.shape[0], d))
                R[:, plain] = R_rep
                out.append((label, R))
            continue
        cols = eq.feature_params
        out.append((" = ".join(names[c] for c in cols) + " = 0", np.eye(d)[cols]))
        if len(cols) > 1:
            out += [(f"{names[c]} = 0", np.eye(d)[[c]]) for c in cols
                    if model.coefficient_action.preserves(np.eye(d)[[c]])]
    return out


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
    rows, index = [], []
    for label, R in invariant_hypotheses(results.model):
        wt = results.wald_test(R, scalar=True, use_f=results.use_t)
        df = int(wt.df_num) if results.use_t else int(wt.df_denom)
        rows.append([float(wt.statistic), df, float(wt.pvalue),
                     "F" if results.use_t else "chi2"])
        index.append(label)
    return pd.DataFrame(rows, index=index, columns=["statistic", "df", "pvalue", "distribution"])


def gauge_dependent_columns(results) -> list[int]:
    """Coefficient positions whose single-coefficient test is not invariant.

    Empty for a design fitted with ``allow_gauge=True`` (every coefficient is then in
    the reported gauge, and the summary says so once for all).
    """
    model = results.model
    action = model.coefficient_action
    if action is None:
        return []
    d = len(model.param_names)
    return [int(c) for eq in model.equations for c in eq.feature_params
            if not action.preserves(np.eye(d)[[c]])]


def gauge_free_terms(results, terms):
    """Replace non-invariant rows of a ``wald_test_terms`` result by the joint block test."""
    model = results.model
    action = model.coefficient_action
    if action is None:
        return terms
    names = model.param_names
    d = len(names)
    keep = [name for name, constraint in terms.temp
            if action.preserves(*_as_matrix(constraint, d))]
    if len(keep) == len(terms.temp):
        return terms
    table = terms.table.loc[keep]
    cols = np.concatenate([eq.feature_params for eq in model.equations])
    block = np.eye(d)[cols]
    wt = results.wald_test(block, scalar=True)
    row = [float(wt.statistic), float(wt.pvalue),
           int(wt.df_num) if results.use_t else int(wt.df_denom)]
    if results.use_t:
        row.append(wt.df_denom)
    label = f"learned-feature terms ({', '.join(names[c] for c in cols)})"
    if len(model.equations) == 1 and model.feature_design.is_selector:
        label = f"representation block ({', '.join(model.feature_names)})"
    table = pd.concat([table, pd.DataFrame([row], index=[label], columns=table.columns)])
    out = WaldTestResults(None, terms.distribution, None, table=table)
    out.temp = [(n, c) for n, c in terms.temp if n in keep] + [(label, block)]
    return out
