"""Real-data loaders for demos (data that ship with statsmodels, no download)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["DemoSplit", "load_randhie_split", "RANDHIE_HEALTH_COLUMNS"]

#: Health-status block of the RAND Health Insurance Experiment data (``disea10`` is the
#: number of chronic diseases divided by 10, a fixed rescaling that keeps the block's
#: variances comparable).
RANDHIE_HEALTH_COLUMNS = ["physlm", "disea10", "hlthg", "hlthf", "hlthp"]


@dataclass(frozen=True)
class DemoSplit:
    """A pre-training sample (no outcome) and a labeled sample (with outcome)."""

    pretrain: pd.DataFrame
    labeled: pd.DataFrame
    feature_columns: list[str]


def load_randhie_split(n_pretrain: int = 1000, n_labeled: int = 1000,
                       seed: int = 0) -> DemoSplit:
    """Split the RAND Health Insurance Experiment data (20,190 person-years).

    The pre-training rows keep only the health-status block (their outcome is
    dropped); the labeled rows have the outcome ``y = log(1 + mdvis)`` (number of
    outpatient visits) and the insurance-plan covariates ``lncoins``, ``idp``,
    ``lpi``, ``fmde``. Rows are drawn without replacement, disjointly.

    Examples
    --------
    >>> split = load_randhie_split(200, 100)
    >>> split.pretrain.shape, split.labeled.shape[0]
    ((200, 5), 100)
    """
    from statsmodels.datasets import randhie

    data = randhie.load_pandas().data.copy()
    if n_pretrain + n_labeled > len(data) or min(n_pretrain, n_labeled) < 1:
        raise ValueError(f"n_pretrain + n_labeled must be between 2 and {len(data)}; got "
                         f"{n_pretrain} + {n_labeled}.")
    data["disea10"] = data["disea"] / 10.0
    data["y"] = np.log1p(data["mdvis"])
    order = np.random.default_rng(seed).permutation(len(data))
    pretrain = data.iloc[order[:n_pretrain]][RANDHIE_HEALTH_COLUMNS].reset_index(drop=True)
    labeled = data.iloc[order[n_pretrain:n_pretrain + n_labeled]].reset_index(drop=True)
    labeled = labeled[["y", "lncoins", "idp", "lpi", "fmde"] + RANDHIE_HEALTH_COLUMNS]
    return DemoSplit(pretrain, labeled, list(RANDHIE_HEALTH_COLUMNS))
