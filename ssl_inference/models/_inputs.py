"""Validation and alignment of the two-stage inputs of a model (features, overlap, groups).

Row-aligned inputs given as pandas Series are aligned on the index of the rows they
describe (the model's data, or ``X_pre`` for ``pretrain_groups``), never used by
position behind the user's back. Cluster labels of the two samples must be of one kind
(numbers or strings): a label present in both arrays names ONE cluster, and an
overlapping row must carry the same label in both.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._validation import nan_rows
from ..adapters import adapter_hint
from ..representations.base import Representation


def check_representation(representation) -> Representation:
    if not isinstance(representation, Representation):
        kind = type(representation)
        raise TypeError(
            "representation must be a fitted ssl_inference representation (e.g. "
            f"ssi.PCA(...).fit(X_pre)); got {kind.__module__}.{kind.__qualname__}. Estimators "
            "of other libraries give point estimates but not the influence functions "
            f"two-stage inference needs. {adapter_hint(representation)}"
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


def align_series(values, name: str, index, rows: str):
    """Align a pandas Series on ``index`` (the labels of the rows it describes).

    Anything that is not a Series passes through unchanged (it is used by position).
    A Series with a default ``RangeIndex`` is positional when the rows have no index.

    Parameters
    ----------
    values : Series or array_like
    name : str
        The argument's name, for messages.
    index : pandas Index or None
        Labels of the described rows; None when they have none (numpy input).
    rows : str
        What the rows are, for messages (e.g. ``"the model's data"``).

    Examples
    --------
    >>> s = pd.Series([10, 20, 30], index=["c", "a", "b"])
    >>> align_series(s, "groups", pd.Index(["a", "b", "c"]), "the data").tolist()
    [20, 30, 10]
    """
    if not isinstance(values, pd.Series):
        return values
    if index is None:
        if values.index.equals(pd.RangeIndex(len(values))):
            return values.to_numpy()
        raise ValueError(
            f"{name} is a pandas Series with its own index, but {rows} are numpy arrays "
            "without an index to align it on, and a Series is never used by position "
            f"silently. Pass {name}.to_numpy() if its order is the rows' order, or give "
            f"{rows} as pandas objects with the matching index.")
    if not values.index.is_unique:
        raise ValueError(f"{name} is a pandas Series with a non-unique index; it cannot be "
                         f"aligned on {rows}. Pass {name}.to_numpy() to use it by position.")
    index = pd.Index(index)
    missing = index[~index.isin(values.index)]
    if len(missing):
        raise ValueError(
            f"{name} is a pandas Series whose index lacks {len(missing)} row label(s) of "
            f"{rows} (e.g. {list(missing[:5])}); it is aligned on the index, not used by "
            f"position. Give it the index of {rows}, or pass {name}.to_numpy() to use "
            "it by position.")
    return values.loc[index].to_numpy()


def row_index(*objects):
    """The index of the first pandas object among ``objects``, else None."""
    for obj in objects:
        if isinstance(obj, (pd.Series, pd.DataFrame)):
            return obj.index
    return None


_NUMERIC_LABELS = {"integer", "floating", "mixed-integer-float", "decimal", "boolean",
                   "complex"}
_STRING_LABELS = {"string", "bytes"}


def _label_kind(labels: np.ndarray) -> str:
    kind = pd.api.types.infer_dtype(labels, skipna=False)
    if kind in _NUMERIC_LABELS:
        return "numbers"
    return "strings" if kind in _STRING_LABELS else kind


def _check_labels(labels, name: str) -> np.ndarray:
    arr = np.asarray(labels)
    missing = np.flatnonzero(pd.isna(arr))
    if missing.size:
        raise ValueError(
            f"{name} has {missing.size} missing cluster label(s) (NaN/None), e.g. at rows "
            f"{missing[:5].tolist()}. Every row must belong to a cluster; give those rows "
            "a label (their own cluster, if they are independent of the others).")
    return arr


def _show(label) -> str:
    return repr(label.item() if isinstance(label, np.generic) else label)


def check_cluster_labels(groups, pretrain_groups, pretrain_index):
    """Validate the cluster labels of the two samples and give them one dtype.

    A label present in both ``groups`` (labeled rows) and ``pretrain_groups``
    (pre-training rows) names ONE cluster, whose rows in both samples are dependent;
    so the two arrays must hold the same kind of label (3 and "3" would silently be
    two clusters), and a labeled row that is also pre-training row ``i``
    (``pretrain_index``) must carry the label of row ``i``.

    Returns
    -------
    groups, pretrain_groups : ndarray or None

    Examples
    --------
    >>> g, h = check_cluster_labels([1, 2], [1.0, 1.0, 3.0], np.array([0, -1]))
    >>> g.dtype == h.dtype
    True
    """
    groups = None if groups is None else _check_labels(groups, "groups")
    pretrain_groups = (None if pretrain_groups is None
                       else _check_labels(pretrain_groups, "pretrain_groups"))
    if groups is None or pretrain_groups is None:
        return groups, pretrain_groups
    kinds = {_label_kind(groups), _label_kind(pretrain_groups)}
    if kinds == {"numbers", "strings"}:
        raise TypeError(
            "groups and pretrain_groups hold different kinds of cluster labels (one "
            "numbers, the other strings). A label present in both arrays names one cluster "
            "shared by the two samples, so 3 and '3' would silently be two clusters and "
            "the cross term between the samples would be lost. Convert one array to the "
            "other's type (e.g. np.asarray(groups).astype(str)); if the two samples' "
            "clusters are unrelated, keep their labels distinct.")
    joint = np.concatenate([groups, pretrain_groups])
    groups, pretrain_groups = joint[:groups.size], joint[groups.size:]
    if pretrain_index is not None:
        linked = np.flatnonzero(pretrain_index >= 0)
        lab = pd.Series(groups[linked], dtype=object)
        pre = pd.Series(pretrain_groups[pretrain_index[linked]], dtype=object)
        differ = np.flatnonzero(lab.to_numpy() != pre.to_numpy())
        if differ.size:
            j = linked[differ[0]]
            raise ValueError(
                f"groups and pretrain_groups disagree on {differ.size} overlapping row(s): "
                f"e.g. labeled row {j} is in cluster {_show(groups[j])} but it is "
                f"pre-training row {pretrain_index[j]} (pretrain_index), which is in cluster "
                f"{_show(pretrain_groups[pretrain_index[j]])}. A row in both samples is one "
                "unit and belongs to one cluster. Make the labels agree "
                "(groups[j] == pretrain_groups[pretrain_index[j]]), or correct "
                "pretrain_index.")
    return groups, pretrain_groups


def subset_rows(obj, keep: np.ndarray):
    """Rows ``keep`` (boolean) of an array, Series or DataFrame; scalars pass through."""
    if obj is None or np.ndim(obj) == 0:
        return obj
    if isinstance(obj, (pd.Series, pd.DataFrame)):
        return obj.iloc[keep]
    return np.asarray(obj)[keep]


def drop_missing_rows(missing: str, endog, exog, raw: np.ndarray, rowwise: dict):
    """With ``missing='drop'``, remove rows with NaN in any input; return the kept positions.

    ``raw`` has been validated: it holds NaN only with ``missing='drop'``.
    """
    n = raw.shape[0]
    if missing != "drop":
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
