"""Input checks shared by representations and models (fail fast, change nothing)."""
from __future__ import annotations

import numpy as np


def as_float_matrix(X, name: str, *, allow_nan: bool = False) -> np.ndarray:
    """Return ``X`` as a 2-D float64 array, raising on wrong shape or non-finite values.

    Parameters
    ----------
    X : array_like
        Data with rows as observations.
    name : str
        Name used in error messages (e.g. ``"X_pre"``).
    allow_nan : bool
        Let NaN through (``missing="drop"`` removes those rows later); inf is never allowed.
    """
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be numeric (an array or DataFrame of numbers); converting it to "
            f"float failed: {exc}"
        ) from exc
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-dimensional (rows = observations, columns = raw features); "
            f"got an array with shape {arr.shape}. Reshape a single row with X.reshape(1, -1)."
        )
    bad = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if bad.any():
        raise ValueError(nonfinite_message(name, np.flatnonzero(bad.any(axis=1)), allow_nan))
    return arr


def nonfinite_message(name: str, rows: np.ndarray, allow_nan: bool = False) -> str:
    """The error message for the rows ``rows`` of ``name`` with non-finite values."""
    what = "infinite values" if allow_nan else "NaN or infinite values"
    if name == "X_pre":
        advice = ("Remove or impute these rows before fitting the first stage (a "
                  "representation's fit has no missing='drop'), e.g. "
                  "X_pre[np.isfinite(X_pre).all(axis=1)].")
    elif allow_nan:
        advice = "Remove or impute these rows."
    else:
        advice = ("Remove or impute these rows, or pass missing='drop' to the model to "
                  "drop them from outcome, covariates and features together.")
    return (f"{name} contains {what} in {rows.size} row(s) (first: {rows[:5].tolist()}). "
            f"Estimates and standard errors would be undefined. {advice}")


def nan_rows(*arrays) -> np.ndarray:
    """Boolean mask of rows with a NaN in any of the given 1-D or 2-D arrays (None skipped)."""
    mask = None
    for a in arrays:
        if a is None or np.ndim(a) == 0:
            continue
        arr = np.asarray(a, dtype=np.float64)
        row = np.isnan(arr) if arr.ndim == 1 else np.isnan(arr).any(axis=1)
        mask = row if mask is None else (mask | row)
    return mask


def positive_number(value, name: str) -> float:
    """``value`` as a float if it is a finite positive number (not a bool), else a clear error.

    Examples
    --------
    >>> positive_number(2, "feature_scale")
    2.0
    """
    if not (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number; got {value!r}.")
    return float(value)
