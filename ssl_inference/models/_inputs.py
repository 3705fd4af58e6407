"""Validation and alignment of the two-stage inputs of a model (features, overlap, groups)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._validation import nan_rows
from ..representations.base import Representation


def check_representation(representation) -> Representation:
    if not isinstance(representation, Representation):
        kind = type(representation)
        raise TypeError(
            "representation must be a fitted ssl_inference representation (e.g. "
            f"ssi.PCA(...).fit(X_pre)); got {kind.__module__}.{kind.__qualname__}. Estimators "
            "of other libraries (scikit-learn, statsmodels) give point estimates but not the "
            "influence functions two-stage inference needs: fit the matching ssl_inference "
            "first stage on the same X_pre instead."
        )
    representation._check_fitted()
    return representation


def check_pretrain_index(pretrain_index, n: int, m: int) -> np.ndarray:
    """Validate ``pretrain_index``: for each labeled row its row in X_pre, or -1."""
    arr = np.asarray(pretrain_index)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"pretrain_index must be 1-D with one entry per labeled row ({n}); got shape "
            f"{arr.shape}. Use -1 for labeled rows that are not in X_pre."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise ValueError("pretrain_index must hold integers (row numbers of X_pre, or -1).")
        arr = arr.astype(np.int64)
    bad = (arr < -1) | (arr >= m)
    if bad.any():
        raise ValueError(
            f"pretrain_index has {int(bad.sum())} entries outside [-1, {m - 1}] (X_pre has "
            f"{m} rows), e.g. {arr[bad][:5].tolist()}."
        )
    used = arr[arr >= 0]
    if np.unique(used).size != used.size:
        raise ValueError(
            "pretrain_index maps two labeled rows to the same pre-training row; each "
            "pre-training row is one unit and can be at most one labeled row."
        )
    return arr.astype(np.int64)


def subset_rows(obj, keep: np.ndarray):
    """Rows ``keep`` (boolean) of an array, Series or DataFrame; scalars pass through."""
    if obj is None or np.ndim(obj) == 0:
        return obj
    if isinstance(obj, (pd.Series, pd.DataFrame)):
        return obj.iloc[keep]
    return np.asarray(obj)[keep]


def drop_missing_rows(missing: str, endog, exog, raw: np.ndarray, rowwise: dict):
    """With ``missing='drop'``, remove rows with NaN in any input; return the kept positions."""
    n = raw.shape[0]
    if missing != "drop":
        if np.isnan(raw).any():
            raise ValueError(
                "features contain NaN; pass missing='drop' to drop those rows from outcome, "
                "covariates and features together, or impute them."
            )
        return endog, exog, raw, rowwise, np.arange(n)
    arrays = [endog, exog, raw] + [v for v in rowwise.values()
                                   if v is not None and np.ndim(v) > 0 and len(v) == n]
    keep = ~nan_rows(*arrays)
    rowwise = {k: subset_rows(v, keep) if v is not None and np.ndim(v) > 0 else v
               for k, v in rowwise.items()}
    return (subset_rows(endog, keep), subset_rows(exog, keep), raw[keep], rowwise,
            np.flatnonzero(keep))


def align_rows(values, name: str, positions: np.ndarray, n_input: int, frame=None):
    """Align a per-row array (or a column name of the formula data) to the kept rows."""
    if isinstance(values, str):
        if frame is None or values not in frame.columns:
            raise ValueError(f"{name}={values!r} is not a column of the model's data.")
        return np.asarray(frame[values])[positions]
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per row); got shape {arr.shape}.")
    if arr.shape[0] == positions.size:
        return arr
    if arr.shape[0] == n_input:
        return arr[positions]
    raise ValueError(
        f"{name} has {arr.shape[0]} entries; expected one per row used in the fit "
        f"({positions.size}) or per input row ({n_input})."
    )
