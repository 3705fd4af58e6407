"""Two-sample, orbit-aligned bootstrap of a two-stage pipeline (THEORY.md §5).

Each replicate resamples the pre-training rows and the labeled rows (respecting overlap
and clusters), refits the representation, moves it onto the original estimate's gauge
with :func:`ssl_inference.align`, recomputes the labeled features and refits the second
stage. Without the alignment, replicates land at arbitrary points of the symmetry orbit
and gauge-dependent coefficients get meaningless spread.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .exceptions import IdentificationWarning
from .symmetry import align as align_to

__all__ = ["BootstrapDraws", "resample_units", "two_sample_bootstrap"]


@dataclass
class BootstrapDraws:
    """Replicates of a two-stage fit.

    Attributes
    ----------
    params : ndarray (reps, d)
        Second-stage coefficients of each replicate.
    representations : list
        Each replicate's aligned representation (its pre-training data dropped), so
        that functionals of new data (predictions) can be bootstrapped too.
    """

    params: np.ndarray
    representations: list

    def cov(self) -> np.ndarray:
        return np.atleast_2d(np.cov(self.params, rowvar=False))


def _cluster_draw(rng, labels: np.ndarray) -> np.ndarray:
    codes, uniques = pd.factorize(labels)
    chosen = rng.integers(0, len(uniques), size=len(uniques))
    members = pd.Series(np.arange(len(labels))).groupby(codes).indices
    return np.concatenate([members[c] for c in chosen])


def resample_units(rng: np.random.Generator, m: int, n: int,
                   pretrain_index: np.ndarray | None = None, groups=None,
                   pretrain_groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (with repetition) of pre-training and labeled rows for one replicate.

    * shared clusters (a label present in both ``groups`` and ``pretrain_groups``,
      with or without overlapping rows): the clusters of both samples are the units,
      and each drawn cluster brings all its rows from both samples;
    * overlap by rows: pre-training rows are the units; a labeled row that is a
      pre-training row comes with it (as often as it is drawn), the other labeled rows
      are resampled among themselves;
    * otherwise (independent samples): each sample resampled on its own, by row or by
      cluster.

    Examples
    --------
    >>> pre, lab = resample_units(np.random.default_rng(0), 5, 3, np.array([0, -1, 4]))
    >>> len(pre), int((np.isin(lab, [0, 2])).sum()) == int(np.isin(pre, [0, 4]).sum())
    (5, True)
    """
    if groups is not None and pretrain_groups is not None:
        codes, uniques = pd.factorize(np.concatenate([np.asarray(pretrain_groups),
                                                      np.asarray(groups)]))
        pre_codes, lab_codes = codes[:m], codes[m:]
        if np.isin(lab_codes, pre_codes).any():
            chosen = rng.integers(0, len(uniques), size=len(uniques))
            pre_members = pd.Series(np.arange(m)).groupby(pre_codes).indices
            lab_members = pd.Series(np.arange(n)).groupby(lab_codes).indices
            empty = np.array([], dtype=int)
            pre = np.concatenate([pre_members.get(c, empty) for c in chosen])
            lab = np.concatenate([lab_members.get(c, empty) for c in chosen])
            return pre, lab
    if pretrain_index is not None and groups is None and (pretrain_index >= 0).any():
        pre = rng.integers(0, m, size=m)
        counts = np.bincount(pre, minlength=m)
        linked = np.flatnonzero(pretrain_index >= 0)
        free = np.flatnonzero(pretrain_index < 0)
        lab = [np.repeat(linked, counts[pretrain_index[linked]])]
        if free.size:
            lab.append(free[rng.integers(0, free.size, size=free.size)])
        return pre, np.concatenate(lab)
    pre = (rng.integers(0, m, size=m) if pretrain_groups is None
           else _cluster_draw(rng, np.asarray(pretrain_groups)))
    lab = (rng.integers(0, n, size=n) if groups is None
           else _cluster_draw(rng, np.asarray(groups)))
    return pre, lab


def two_sample_bootstrap(model, *, reps: int, seed=None, groups=None, pretrain_groups=None,
                         align: bool = True, progress: bool = True) -> BootstrapDraws:
    """Bootstrap replicates of a two-stage model's coefficients.

    Parameters
    ----------
    model : two-stage model with a representation
    reps : int
        Number of replicates.
    seed : int or numpy Generator, optional
        Makes the replicates reproducible.
    groups, pretrain_groups : array_like, optional
        Cluster labels of labeled and pre-training rows (resampled as clusters).
    align : bool
        Align each refitted representation to the original (the default and the
        correct choice; False exists to show what goes wrong without it).
    progress : bool
        Show a progress bar when ``tqdm`` is installed.
    """
    rep = model.representation
    rng = np.random.default_rng(seed)
    X_pre = rep.pretrain_data_
    n = model.exog.shape[0]
    endog = np.asarray(model.endog, dtype=float)
    params, reps_out = [], []
    for _ in _progress(range(reps), progress):
        pre, lab = resample_units(rng, X_pre.shape[0], n, model.pretrain_index,
                                  groups, pretrain_groups)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IdentificationWarning)
            refit = rep.clone().fit(X_pre[pre])
        if align:
            refit, _ = align_to(refit, rep)
        design = model.feature_design.build(model._design_rows(lab),
                                            refit._transform(model.features[lab]))
        params.append(model._plain_params(endog[lab], design, lab))
        refit = copy.copy(refit)
        refit.pretrain_data_ = None
        reps_out.append(refit)
    return BootstrapDraws(np.asarray(params), reps_out)


def _progress(iterable, enabled: bool):
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return iterable
        return tqdm(iterable, desc="two-sample bootstrap", leave=False, disable=None)
    return iterable
