"""Linear hypotheses parsed the patsy way, whatever statsmodels' formula engine.

Under formulaic, statsmodels turns ``"a = b = 0"`` into ONE constraint; patsy gives
two. We parse strings with ``patsy.DesignInfo(names).linear_constraint`` always.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import patsy


def parse_constraints(r_matrix, names: Sequence[str]):
    """Return ``(R, q)`` for string hypotheses; anything else is returned unchanged.

    Examples
    --------
    >>> R, q = parse_constraints("a = b = 0", ["a", "b", "c"])
    >>> R.shape, q.tolist()
    ((2, 3), [0.0, 0.0])
    """
    is_str = isinstance(r_matrix, str)
    is_str_list = (isinstance(r_matrix, (list, tuple)) and len(r_matrix) > 0
                   and all(isinstance(x, str) for x in r_matrix))
    if not (is_str or is_str_list):
        return r_matrix
    lc = patsy.DesignInfo(list(names)).linear_constraint(
        r_matrix if is_str else list(r_matrix))
    return np.asarray(lc.coefs, dtype=float), np.asarray(lc.constants, dtype=float).ravel()
