"""What ssl_inference needs to know of a fitted formula (patsy or formulaic).

* :func:`design_for`: the right-hand-side design of new rows, with the state (categorical
  levels, stateful transforms) learned at fit time;
* :func:`formula_factors`: the factors of the design, the design columns each one enters,
  and whether it is categorical or stateful;
* :func:`names_in`, :func:`mentioned_names`: the variable names an expression or a
  formula refers to.

Engine-specific code lives here and nowhere else.
"""
from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy

__all__ = ["FormulaFactor", "design_for", "formula_factors", "formula_variables",
           "mentioned_names", "names_in"]


def design_for(model_spec, data: pd.DataFrame, *, check_missing: bool = True) -> np.ndarray:
    """Right-hand-side design of ``data`` built with the fitted ``model_spec``.

    Uses the engines' public APIs (``patsy.dmatrix`` on a ``DesignInfo``, formulaic's
    ``ModelSpec.get_model_matrix``) so that stateful transforms and categorical levels
    are those learned at fit time. Rows the engine cannot build are NaN rows; with
    ``check_missing`` they raise instead.
    """
    if isinstance(model_spec, patsy.DesignInfo):
        out = patsy.dmatrix(model_spec, data, return_type="dataframe",
                            NA_action=patsy.NAAction(NA_types=[]))
    else:
        out = model_spec.get_model_matrix(data, output="pandas", na_action="ignore")
    arr = np.asarray(out, dtype=float)
    if arr.shape[0] != len(data):
        raise ValueError("The formula dropped rows of the new data; predictions need one "
                         "design row per data row. Drop or impute missing values first.")
    if check_missing and np.isnan(arr).any():
        raise ValueError(
            "New data give missing values in the model's design matrix; predictions are "
            "undefined for those rows. Drop or impute them before predicting."
        )
    return arr


@dataclass(frozen=True)
class FormulaFactor:
    """One factor of a fitted formula: its expression and the design columns it enters.

    Attributes
    ----------
    expression : str
        Python expression of the factor, e.g. ``"np.exp(pc1)"``.
    columns : tuple of int
        Design columns of the terms that contain the factor.
    categorical : bool
        Coded by levels (``C(...)``, strings, booleans).
    stateful : bool
        Uses state learned from the fit data (``center``, ``standardize``, ``bs``...).
    """

    expression: str
    columns: tuple
    categorical: bool
    stateful: bool


def formula_factors(model_spec) -> list[FormulaFactor]:
    """The factors of a fitted patsy ``DesignInfo`` or formulaic ``ModelSpec``.

    Examples
    --------
    >>> import pandas as pd, patsy
    >>> df = pd.DataFrame({"z": [1.0, 2.0, 3.0], "a": [0.5, 0.1, 0.7]})
    >>> spec = patsy.dmatrix("z * a + center(a)", df).design_info
    >>> [(f.expression, f.columns, f.stateful) for f in formula_factors(spec)]
    [('z', (1, 3), False), ('a', (2, 3), False), ('center(a)', (4,), True)]
    """
    columns: dict[str, list[int]] = {}
    kinds: dict[str, tuple[bool, bool]] = {}
    if isinstance(model_spec, patsy.DesignInfo):
        for term, sl in model_spec.term_slices.items():
            for factor in term.factors:
                info = model_spec.factor_infos[factor]
                columns.setdefault(factor.code, []).extend(range(sl.start, sl.stop))
                kinds[factor.code] = (info.type == "categorical",
                                      bool(info.state.get("transforms")))
    else:
        encoders = model_spec.encoder_state
        for term, sl in model_spec.term_slices.items():
            for factor in term.factors:
                expr = str(factor.expr)
                if expr == "1":
                    continue
                columns.setdefault(expr, []).extend(range(sl.start, sl.stop))
                kind = encoders.get(expr, (None, {}))[0]
                kinds[expr] = (getattr(kind, "value", None) == "categorical",
                               expr in model_spec.transform_state)
    return [FormulaFactor(expr, tuple(sorted(set(cols))), *kinds[expr])
            for expr, cols in columns.items()]


def formula_variables(model_spec) -> set[str]:
    """Names the right-hand side of a fitted formula reads from the data.

    Examples
    --------
    >>> import pandas as pd, patsy
    >>> df = pd.DataFrame({"z": [1.0, 2.0, 3.0], "a": [0.5, 0.1, 0.7]})
    >>> sorted(formula_variables(patsy.dmatrix("z + np.log(a)", df).design_info))
    ['a', 'np', 'z']
    """
    return set().union(*(names_in(f.expression) for f in formula_factors(model_spec)))


def names_in(expression: str) -> set[str]:
    """Variable names an expression refers to (``Q("x")`` and backticks included).

    Examples
    --------
    >>> sorted(names_in("np.exp(pc1) + Q('pc0')"))
    ['Q', 'np', 'pc0', 'pc1']
    """
    text = expression.strip()
    if text.startswith("`") and text.endswith("`"):
        return {text[1:-1]}
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return set()
    out = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "Q" and node.args
                and isinstance(node.args[0], ast.Constant)):
            out.add(str(node.args[0].value))
    return out


def mentioned_names(formula: str, names) -> set[str]:
    """Which of ``names`` the right-hand side of ``formula`` mentions (also in ``- x``).

    Examples
    --------
    >>> sorted(mentioned_names("y ~ z * pc0 - pc1", ["pc0", "pc1", "pc2"]))
    ['pc0', 'pc1']
    """
    rhs = formula.split("~", 1)[-1]
    wanted = set(names)
    found = set()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(rhs).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        tokens = []
    for tok in tokens:
        text = tok.string
        if tok.type == tokenize.STRING:
            text = text.strip("'\"")
        if text in wanted:
            found.add(text)
    for quoted in rhs.split("`")[1::2]:  # formulaic's backtick names
        if quoted in wanted:
            found.add(quoted)
    return found
