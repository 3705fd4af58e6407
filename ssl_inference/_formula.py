"""Design matrices for new data from a fitted model's formula spec (patsy or formulaic)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import patsy


def design_for(model_spec, data: pd.DataFrame) -> np.ndarray:
    """Right-hand-side design of ``data`` built with the fitted ``model_spec``.

    Uses the engines' public APIs (``patsy.dmatrix`` on a ``DesignInfo``, formulaic's
    ``ModelSpec.get_model_matrix``) so that stateful transforms and categorical levels
    are those learned at fit time. Rows that the engine would drop raise instead.
    """
    if isinstance(model_spec, patsy.DesignInfo):
        out = patsy.dmatrix(model_spec, data, return_type="dataframe",
                            NA_action=patsy.NAAction(NA_types=[]))
    else:
        out = model_spec.get_model_matrix(data, output="pandas", na_action="ignore")
    arr = np.asarray(out, dtype=float)
    if arr.shape[0] != len(data) or np.isnan(arr).any():
        raise ValueError(
            "New data give missing values in the model's design matrix; predictions are "
            "undefined for those rows. Drop or impute them before predicting."
        )
    return arr
