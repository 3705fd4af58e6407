r"""Two-stage delete-one-unit jackknife (``cov_type="jackknife"``).

Units
-----
Every unit is deleted once, from *both* samples (:func:`jackknife_units`):

* shared clusters (a label in both ``groups`` and ``pretrain_groups``): the clusters of
  the two samples together, each deleting its rows from both samples (one stratum);
* overlap by rows (``pretrain_index``): the pre-training rows, each deleting itself
  and the labeled rows that are that row; and the labeled rows that are not
  pre-training rows (two strata);
* independent samples: the pre-training rows (or ``pretrain_groups`` clusters) and
  the labeled rows (or ``groups`` clusters) (two strata).

These are the units the bootstrap resamples (:func:`~ssl_inference.bootstrap.resample_units`).

Variance
--------
With ``theta_(u)`` the estimate without unit ``u``, ``S`` the strata and ``G_s`` the
number of units of stratum ``s``,

.. math::

    \widehat{V}_{JK} = \sum_{s \in S} \frac{G_s - 1}{G_s} \sum_{u \in s}
        (\theta_{(u)} - \bar\theta_s)(\theta_{(u)} - \bar\theta_s)', \qquad
    \bar\theta_s = \frac{1}{G_s} \sum_{u \in s} \theta_{(u)},

the stratified (JKn) jackknife: the samples are independent strata, so their
variances add. For a linear statistic it is the unbiased two-sample variance; for the
two-stage estimator, ``theta_(u) - theta_hat ~= -G_s/(G_s - 1) IF_u`` with ``IF_u`` the
unit's total (first- plus second-stage) influence, so it estimates the two-stage
covariance ``sum_u IF_u IF_u'`` (rows: HC3-like leverage corrections on the labeled
side; clusters: the CR3 jackknife of both stages). Each refit is aligned to the
full-sample representation (:func:`ssl_inference.align`), as in the bootstrap.

Exact and one-step
------------------
``method="exact"`` (default) refits the pipeline without each unit (the
representation only for units with pre-training rows). ``method="one-step"``
replaces the refits by one Newton step of each stage, for large samples: the first
stage linearised,

.. math:: \theta_{(u)} - \hat\theta \approx -\frac{1}{m - m_u}
          \sum_{i \in u} IF(x_i),

(``m_u`` pre-training rows of the unit, ``IF`` the representation's influence), and
the second stage one Newton step of its estimating equation without the unit's labeled
rows ``L_u`` at the moved features,

.. math:: \beta_{(u)} - \hat\beta \approx (H - H_u)^{-1}
          \Big(\sum_{j \in L_u} g_j w_j + H J (\theta_{(u)} - \hat\theta)\Big),

``H = sum_j g'_j w_j w_j'``, ``H_u`` its sum over ``L_u``, ``J`` the first-stage
Jacobian of the coefficients. For OLS the second-stage part is the exact
delete-one(-cluster) coefficient change, the HC3 / CR3 form.

Degenerate deletions (:mod:`ssl_inference.resampling`) are dropped and counted, and
``G_s`` counts the units kept; too many refuse the covariance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .resampling import (DEFAULT_MAX_DEGENERATE, DegenerateReplicates, ReplicateFit,
                         refit_replicate, run_replicates)

__all__ = ["JACKKNIFE_METHODS", "JackknifeReplicates", "JackknifeUnits",
           "first_stage_shifts", "jackknife_covariance", "jackknife_units",
           "two_stage_jackknife"]

JACKKNIFE_METHODS = ("exact", "one-step")
#: 1 - leverage below which deleting a unit leaves a singular second stage
SINGULAR_DELETION = 1e-10


@dataclass(frozen=True)
class JackknifeUnits:
    """The deletion units of the two samples.

    Attributes
    ----------
    pre_unit : ndarray (m,) of int
        Unit of each pre-training row.
    lab_unit : ndarray (n,) of int
        Unit of each labeled row.
    stratum : ndarray (G,) of int
        Stratum of each unit (0: units with pre-training rows, 1: the other labeled
        units; one stratum with shared clusters).
    """

    pre_unit: np.ndarray
    lab_unit: np.ndarray
    stratum: np.ndarray

    @property
    def n_units(self) -> int:
        return self.stratum.size

    def pre_counts(self) -> np.ndarray:
        """Pre-training rows of each unit (G,)."""
        return np.bincount(self.pre_unit, minlength=self.n_units)

    def kept_rows(self, unit: int) -> tuple[np.ndarray | None, np.ndarray]:
        """Rows of both samples without ``unit``; None for the pre-training rows when
        the unit has none (the representation is not refitted)."""
        pre = self.pre_unit != unit
        return (None if pre.all() else np.flatnonzero(pre)), np.flatnonzero(
            self.lab_unit != unit)


def jackknife_units(m: int, n: int, pretrain_index: np.ndarray | None = None, groups=None,
                    pretrain_groups=None) -> JackknifeUnits:
    """Deletion units of a two-stage fit (see the module docstring).

    Examples
    --------
    >>> units = jackknife_units(3, 2, np.array([2, -1]))     # labeled row 0 is X_pre row 2
    >>> units.pre_unit, units.lab_unit, units.stratum
    (array([0, 1, 2]), array([2, 3]), array([0, 0, 0, 1]))
    """
    if groups is not None and pretrain_groups is not None:
        codes, uniques = pd.factorize(np.concatenate([np.asarray(pretrain_groups),
                                                      np.asarray(groups)]))
        if np.isin(codes[m:], codes[:m]).any():
            return JackknifeUnits(codes[:m], codes[m:], np.zeros(len(uniques), dtype=int))
    if pretrain_index is not None and groups is None and (pretrain_index >= 0).any():
        linked = pretrain_index >= 0
        lab_unit = np.empty(n, dtype=int)
        lab_unit[linked] = pretrain_index[linked]
        lab_unit[~linked] = m + np.arange(int((~linked).sum()))
        stratum = np.r_[np.zeros(m, dtype=int), np.ones(int((~linked).sum()), dtype=int)]
        return JackknifeUnits(np.arange(m), lab_unit, stratum)
    pre_unit = (np.arange(m) if pretrain_groups is None
                else pd.factorize(np.asarray(pretrain_groups))[0])
    g_pre = int(pre_unit.max()) + 1
    lab_unit = (np.arange(n) if groups is None else pd.factorize(np.asarray(groups))[0])
    g_lab = int(lab_unit.max()) + 1
    return JackknifeUnits(pre_unit, g_pre + lab_unit,
                          np.r_[np.zeros(g_pre, dtype=int), np.ones(g_lab, dtype=int)])


def jackknife_covariance(values: np.ndarray, strata: np.ndarray) -> np.ndarray:
    r"""Stratified jackknife covariance ``sum_s (G_s-1)/G_s sum_{u in s} (v_u - vbar_s)
    (v_u - vbar_s)'`` of delete-one values ``values`` (G, r).

    Examples
    --------
    The jackknife of a mean is the unbiased variance of the mean:

    >>> x = np.array([1.0, 2.0, 4.0, 7.0])
    >>> deleted = (x.sum() - x) / 3
    >>> v = jackknife_covariance(deleted[:, None], np.zeros(4, int))[0, 0]
    >>> round(float(v), 12), round(float(x.var(ddof=1) / 4), 12)
    (1.75, 1.75)
    """
    values = np.asarray(values, dtype=float)
    out = np.zeros((values.shape[1], values.shape[1]))
    for s in np.unique(strata):
        block = values[strata == s]
        if len(block) < 2:
            continue
        centred = block - block.mean(axis=0)
        out += (len(block) - 1.0) / len(block) * centred.T @ centred
    return out


@dataclass
class JackknifeReplicates:
    """Delete-one-unit estimates of a two-stage fit.

    Attributes
    ----------
    params : ndarray (G_kept, d)
        Coefficients without each kept unit (one-step: their one-step approximations).
    representations : list or None
        Exact: each kept deletion's aligned representation (the full-sample one for
        units without pre-training rows). One-step: None.
    units : JackknifeUnits
    kept : ndarray of int
        The units whose deletion was kept (not degenerate).
    degenerate : DegenerateReplicates
    method : {"exact", "one-step"}
    """

    params: np.ndarray
    representations: list | None
    units: JackknifeUnits
    kept: np.ndarray
    degenerate: DegenerateReplicates
    method: str = "exact"

    @property
    def strata(self) -> np.ndarray:
        return self.units.stratum[self.kept]

    def covariance(self, values: np.ndarray) -> np.ndarray:
        """Stratified jackknife covariance of delete-one values (G_kept, r)."""
        return jackknife_covariance(values, self.strata)

    def variance(self, values: np.ndarray) -> np.ndarray:
        """Diagonal of :meth:`covariance`."""
        values = np.asarray(values, dtype=float)
        out = np.zeros(values.shape[1])
        for s in np.unique(self.strata):
            block = values[self.strata == s]
            if len(block) > 1:
                out += (len(block) - 1.0) / len(block) * ((block - block.mean(0)) ** 2).sum(0)
        return out

    def cov(self) -> np.ndarray:
        return self.covariance(self.params)

    @property
    def df_inference(self) -> int:
        """``G - 1`` with ``G`` the kept units of the smallest stratum: the degrees of
        freedom of t and F references with ``use_t=True`` (statsmodels' cluster
        convention; conservative when both samples have many units)."""
        return int(np.bincount(self.strata)[np.bincount(self.strata) > 0].min()) - 1

    def first_stage_shifts(self, representation, K: np.ndarray) -> np.ndarray:
        """:func:`first_stage_shifts` of the kept units (G_kept, r)."""
        return first_stage_shifts(representation, self.units, K)[self.kept]


def first_stage_shifts(representation, units: JackknifeUnits, K: np.ndarray,
                       chunk_rows: int = 8192) -> np.ndarray:
    r"""``K (theta_(u) - theta_hat)`` of the one-step first stage for every unit (G, r):
    ``-K sum_{i in u} IF(x_i) / (m - m_u)``, streamed over ``X_pre`` (zero for units
    without pre-training rows)."""
    m = units.pre_unit.size
    sums = np.zeros((units.n_units, K.shape[0]))
    for start, stop, B in representation.influence_contract(K, chunk_rows=chunk_rows):
        np.add.at(sums, units.pre_unit[start:stop], B)
    return -sums / np.maximum(m - units.pre_counts(), 1)[:, None]


@dataclass(frozen=True)
class _JackknifeDeletion:
    """One exact deletion (a picklable task for worker processes)."""

    model: object
    X_pre: np.ndarray
    units: JackknifeUnits
    fit_kwds: dict
    entropy: int

    def __call__(self, unit: int) -> ReplicateFit:
        pre, lab = self.units.kept_rows(unit)
        rng = np.random.default_rng(np.random.SeedSequence(self.entropy, spawn_key=(unit,)))
        return refit_replicate(self.model, self.X_pre, pre, lab, fit_kwds=self.fit_kwds,
                               random_state=int(rng.integers(2 ** 32, dtype=np.uint64)))


def two_stage_jackknife(model, results=None, jacobian=None, *, method: str = "exact",
                        groups=None, pretrain_groups=None, seed=None, n_jobs: int = 1,
                        progress: bool = True, fit_kwds: dict | None = None,
                        max_degenerate: float = DEFAULT_MAX_DEGENERATE
                        ) -> JackknifeReplicates:
    """Delete-one-unit jackknife of a two-stage model (see the module docstring).

    Parameters
    ----------
    model : two-stage model with a representation
    results : statsmodels results of the full-sample second stage
        Its coefficients (and, for ``"one-step"``, the loss derivatives there).
    jacobian : ndarray (d, q), optional
        ``J = d beta_hat / d theta`` (needed by ``"one-step"``).
    method : {"exact", "one-step"}
    groups, pretrain_groups : array_like, optional
        Cluster labels: units are clusters instead of rows.
    seed : optional
        Seeds the random starts of refitted representations whose ``random_state``
        is None (exact method); the result does not depend on ``n_jobs``.
    n_jobs, progress, fit_kwds, max_degenerate
        As in :func:`~ssl_inference.bootstrap.two_sample_bootstrap`.

    Raises
    ------
    ValueError
        When more than ``max_degenerate`` of the deletions are degenerate.
    """
    rep = model.representation
    X_pre = rep.pretrain_data_
    units = jackknife_units(X_pre.shape[0], model.exog.shape[0], model.pretrain_index,
                            groups, pretrain_groups)
    d = model.exog.shape[1]
    if method == "one-step":
        replicates = _one_step(model, results, jacobian, units)
    else:
        task = _JackknifeDeletion(model, X_pre, units,
                                  {**(fit_kwds or {}), **model._plain_fit_kwds},
                                  int(np.random.SeedSequence(seed).entropy))
        fits = run_replicates(task, list(range(units.n_units)), n_jobs=n_jobs,
                              progress=progress, desc="two-stage jackknife")
        params, kept, degenerate = DegenerateReplicates.collect(fits, d)
        replicates = JackknifeReplicates(params, [fits[u].representation for u in kept],
                                         units, np.asarray(kept, dtype=int), degenerate)
    replicates.degenerate.check(max_degenerate, "jackknife",
                                getattr(rep, "fit_warnings_", ()))
    return replicates


def _one_step(model, results, jacobian, units: JackknifeUnits) -> JackknifeReplicates:
    """One-step deletions (module docstring): no refits."""
    g, g_prime, h_inv = model._loss_derivatives(results)
    W = np.asarray(model.exog, dtype=float)
    beta = np.asarray(results.params, dtype=float)
    G = units.n_units
    shift = first_stage_shifts(model.representation, units, np.asarray(jacobian))
    delta = shift.copy()
    H = (W * g_prime[:, None]).T @ W
    HinvW = W @ h_inv
    lab_counts = np.bincount(units.lab_unit, minlength=G)
    single = lab_counts[units.lab_unit] == 1
    singular = np.zeros(G, dtype=bool)
    if single.any():  # Sherman-Morrison: (H - c w w')^{-1} v = H^-1 v + H^-1 w c w'H^-1 v / (1-h)
        rows = np.flatnonzero(single)
        u = units.lab_unit[rows]
        one_minus_h = 1.0 - g_prime[rows] * np.einsum("ij,ij->i", W[rows], HinvW[rows])
        singular[u] = one_minus_h < SINGULAR_DELETION
        safe = np.where(singular[u], 1.0, one_minus_h)
        coef = (g[rows] + g_prime[rows] * np.einsum("ij,ij->i", W[rows], shift[u])) / safe
        delta[u] += HinvW[rows] * coef[:, None]
    for unit in np.flatnonzero(lab_counts > 1):
        rows = np.flatnonzero(units.lab_unit == unit)
        H_u = (W[rows] * g_prime[rows, None]).T @ W[rows]
        rhs = W[rows].T @ g[rows] + H_u @ shift[unit]
        try:
            delta[unit] += np.linalg.solve(H - H_u, rhs)
        except np.linalg.LinAlgError:
            singular[unit] = True
    reasons = ("deleting the unit leaves a singular second stage",) * int(singular.sum())
    bad = np.flatnonzero(singular)
    params = beta + delta
    degenerate = DegenerateReplicates(G, bad, reasons, params[bad])
    kept = np.flatnonzero(~singular)
    return JackknifeReplicates(params[kept], None, units, kept, degenerate, "one-step")
