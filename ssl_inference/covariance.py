r"""Two-stage (Murphy-Topel) covariance of second-stage functionals.

For functionals ``f = L_beta beta + L_theta theta`` the total influence is
(THEORY.md §3.2-3.4)

.. math::

    f_hat - f^* \approx \sum_j L_\beta a^*_j + \frac{1}{m} \sum_i K\, IF(x_i),
    \qquad K = L_\beta J + L_\theta,

where ``a*_j`` is the second-stage influence of labeled row j and ``J`` the
first-stage Jacobian of the coefficients. Hence

``Cov = L_beta Cov_2 L_beta'  +  (1/m^2) sum_i (K IF_i)(K IF_i)'  +  cross``,

with ``Cov_2`` the statsmodels second-stage covariance (so everything reduces to
statsmodels when the first stage is known), the pre-training sum taken over
clusters of ``pretrain_groups`` when given, and the cross term

``cross = sum_u (L_beta A_u)(K B_u)' + transpose``

over the units ``u`` that have rows in both samples: labeled rows that are also
pre-training rows (``pretrain_index``), or, with clusters, every cluster whose label
appears in both ``groups`` and ``pretrain_groups`` (``A_u``, ``B_u``: the unit's summed
second-stage and first-stage influences), whether or not rows overlap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .representations.base import Representation

__all__ = ["CovarianceSpec", "TwoStageCovariance", "VarianceParts"]

SECOND_STAGE_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster")
COV_TYPES = ("two-stage", "naive", "bootstrap")
COV_KWDS = {"two-stage": ("second_stage", "groups", "pretrain_groups"),
            "naive": ("second_stage", "groups", "pretrain_groups"),
            "bootstrap": ("reps", "seed", "alpha", "groups", "pretrain_groups")}


@dataclass(frozen=True)
class CovarianceSpec:
    """A validated ``cov_type`` / ``cov_kwds`` pair.

    Examples
    --------
    >>> CovarianceSpec.parse("two-stage", {"second_stage": "HC1"}).statsmodels_cov_type
    'HC1'
    """

    cov_type: str
    second_stage: str = "nonrobust"
    groups: object = None
    pretrain_groups: object = None
    reps: int = 999
    seed: object = None
    alpha: float = 0.05

    @classmethod
    def parse(cls, cov_type, cov_kwds) -> "CovarianceSpec":
        if cov_type not in COV_TYPES:
            raise ValueError(
                f"cov_type must be one of {COV_TYPES}; got {cov_type!r}. 'two-stage' adds the "
                "first-stage uncertainty to the second-stage covariance; 'naive' reproduces "
                "plain statsmodels; 'bootstrap' resamples both samples and refits. Choose the "
                "second-stage estimator with cov_kwds={'second_stage': 'HC1'} (or "
                "'nonrobust', 'HC0'-'HC3', 'cluster')."
            )
        cov_kwds = {} if cov_kwds is None else dict(cov_kwds)
        unknown = sorted(set(cov_kwds) - set(COV_KWDS[cov_type]))
        if unknown:
            raise ValueError(
                f"Unknown cov_kwds {unknown} for cov_type={cov_type!r}; allowed keys are "
                f"{list(COV_KWDS[cov_type])}."
            )
        if cov_type == "bootstrap":
            return cls._parse_bootstrap(cov_kwds)
        second = cov_kwds.get("second_stage", "nonrobust")
        if second not in SECOND_STAGE_TYPES:
            raise ValueError(
                f"cov_kwds['second_stage'] must be one of {SECOND_STAGE_TYPES}; got {second!r}."
            )
        groups = cov_kwds.get("groups")
        if (second == "cluster") != (groups is not None):
            raise ValueError(
                "cov_kwds['groups'] (cluster labels of the labeled rows) goes with "
                "second_stage='cluster' and only with it: "
                + ("pass groups=..." if groups is None else "set second_stage='cluster'") + "."
            )
        return cls(cov_type, second, groups, cov_kwds.get("pretrain_groups"))

    @classmethod
    def _parse_bootstrap(cls, cov_kwds) -> "CovarianceSpec":
        reps = cov_kwds.get("reps", 999)
        if not isinstance(reps, (int, np.integer)) or isinstance(reps, bool) or reps < 2:
            raise ValueError(f"cov_kwds['reps'] must be an integer >= 2; got {reps!r}.")
        alpha = cov_kwds.get("alpha", 0.05)
        if not 0 < alpha < 1:
            raise ValueError(f"cov_kwds['alpha'] must be in (0, 1); got {alpha!r}.")
        return cls("bootstrap", "nonrobust", cov_kwds.get("groups"),
                   cov_kwds.get("pretrain_groups"), int(reps), cov_kwds.get("seed"), alpha)

    @property
    def statsmodels_cov_type(self) -> str:
        return self.second_stage

    def statsmodels_cov_kwds(self, groups) -> dict | None:
        return {"groups": groups} if self.second_stage == "cluster" else None


@dataclass(frozen=True)
class VarianceParts:
    """Fine-tuning, pre-training and overlap parts of a two-stage covariance."""

    fine_tuning: np.ndarray
    pretraining: np.ndarray
    cross: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.fine_tuning + self.pretraining + self.cross


@dataclass
class TwoStageCovariance:
    """Two-stage covariance engine for one fitted pipeline.

    Parameters
    ----------
    representation : Representation
        The fitted first stage (its pre-training rows are streamed).
    jacobian : ndarray (d, q)
        ``J = d beta_hat / d theta``.
    cov_second : ndarray (d, d)
        Second-stage covariance as statsmodels computes it.
    second_influence : ndarray (n, d)
        Per-row second-stage influence ``a*_j`` (contribution to ``beta_hat``). Only
        its sums over the units shared by the two samples are kept for the cross term
        (computed here), so it may be dropped afterwards (``remove_data``).
    pretrain_index : ndarray (n,) of int, optional
        Row of ``X_pre`` for each labeled row, or -1.
    groups, pretrain_groups : array_like, optional
        Cluster labels of labeled and pre-training rows, of one dtype
        (:func:`~ssl_inference.models._inputs.check_cluster_labels`). A label present in
        both arrays is ONE cluster with rows in both samples: its influences from the
        two samples are summed before the outer product (the cross term), with or
        without overlapping rows.
    chunk_rows : int
        Pre-training rows per streamed chunk.
    """

    representation: Representation
    jacobian: np.ndarray
    cov_second: np.ndarray
    second_influence: np.ndarray | None
    pretrain_index: np.ndarray | None = None
    groups: np.ndarray | None = None
    pretrain_groups: np.ndarray | None = None
    chunk_rows: int = 8192
    _pre_codes: tuple | None = field(default=None, init=False, repr=False)
    _cross_units: tuple | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.pretrain_groups is not None:
            codes, uniques = pd.factorize(np.asarray(self.pretrain_groups))
            self._pre_codes = (codes, uniques)
        self._cross_units = self._shared_units()

    def _shared_units(self) -> tuple | None:
        """Units with rows in both samples: ``(A_u (u, d), position)``, or None.

        ``position`` is the unit's pre-training cluster (index into the cluster sums)
        with clusters, its row of ``X_pre`` for overlap by rows.
        """
        A = self.second_influence
        if self._pre_codes is not None:
            if self.groups is None:
                return None
            codes, uniques = pd.factorize(np.asarray(self.groups))
            sums = np.zeros((len(uniques), A.shape[1]))
            np.add.at(sums, codes, A)
            pos = pd.Index(self._pre_codes[1]).get_indexer(uniques)
            hit = pos >= 0
            return (sums[hit], pos[hit]) if hit.any() else None
        if self.pretrain_index is None or self.groups is not None:
            return None
        linked = np.flatnonzero(self.pretrain_index >= 0)
        return (A[linked], self.pretrain_index[linked]) if linked.size else None

    @property
    def shared_clusters(self) -> int:
        """Number of clusters with rows in both samples (0 without clusters)."""
        if self._cross_units is None or self._pre_codes is None:
            return 0
        return len(self._cross_units[1])

    @property
    def has_cross(self) -> bool:
        """Whether some unit (row or cluster) has rows in both samples."""
        return self._cross_units is not None

    def parts(self, L_beta: np.ndarray | None = None, L_theta: np.ndarray | None = None,
              *, diag: bool = False) -> VarianceParts:
        """Covariance parts of ``f = L_beta beta + L_theta theta`` (identity: beta itself).

        Parameters
        ----------
        L_beta : ndarray (r, d), optional
        L_theta : ndarray (r, q), optional
        diag : bool
            Return only the variances (r,) instead of (r, r) matrices.
        """
        d = self.jacobian.shape[0]
        L_beta = np.eye(d) if L_beta is None else np.atleast_2d(L_beta)
        K = L_beta @ self.jacobian
        if L_theta is not None:
            K = K + L_theta
        if diag:
            fine = np.einsum("ij,jk,ik->i", L_beta, self.cov_second, L_beta)
        else:
            fine = L_beta @ self.cov_second @ L_beta.T
        pre, cross = self._pretraining_and_cross(K, L_beta, diag)
        return VarianceParts(fine, pre, cross)

    def _pretraining_and_cross(self, K, L_beta, diag):
        rep = self.representation
        m = rep.nobs_
        r, q = K.shape
        cross = self._cross_units is not None
        if cross:
            A_units, unit_pos = self._cross_units
            A = A_units @ L_beta.T
        # Streaming B = IF(x) K' costs O(m p k r) for PCA. With many functionals
        # (predictions at many rows) stream IF(x) itself (K = I, q columns) and apply K
        # to the q x q sums afterwards: the same sums, regrouped.
        via_identity = r > 2 * q
        K_stream = np.eye(q) if via_identity else K
        s = K_stream.shape[0]
        elementwise = diag and not via_identity  # accumulate only the variances
        if self._pre_codes is not None:
            sums = rep.influence_sums(K_stream, self._pre_codes[0],
                                      chunk_rows=self.chunk_rows) / m
            pre = (sums ** 2).sum(0) if elementwise else sums.T @ sums
            if cross:
                Bc = sums[unit_pos]
                half = (A * Bc).sum(0) if elementwise else A.T @ Bc
        else:
            pre = np.zeros(s) if elementwise else np.zeros((s, s))
            half = (np.zeros(r) if elementwise else np.zeros((r, s))) if cross else None
            for start, stop, B in rep.influence_contract(K_stream, chunk_rows=self.chunk_rows):
                pre += (B ** 2).sum(0) if elementwise else B.T @ B
                if cross:
                    sel = np.flatnonzero((unit_pos >= start) & (unit_pos < stop))
                    Bsel = B[unit_pos[sel] - start] / m
                    half += (A[sel] * Bsel).sum(0) if elementwise else A[sel].T @ Bsel
            pre /= m ** 2
        if via_identity:
            pre = ((K @ pre) * K).sum(1) if diag else K @ pre @ K.T
            if cross:
                half = (half * K).sum(1) if diag else half @ K.T
        if not cross:
            return pre, np.zeros_like(pre)
        return pre, (2 * half if diag else half + half.T)
