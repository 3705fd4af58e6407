"""Independent oracle for clustered two-stage covariances: clusters as the units.

delicatessen's stacked estimating equations (the PCA + OLS system of
``tests/test_oracle_delicatessen.py``: one column per row-unit, a labeled row that is
also a pre-training row being ONE unit with both sets of equations) are summed within
clusters, so that each cluster, with its rows in BOTH samples, is one column. The
empirical sandwich of that system, ``(sum dpsi)^-1 (sum_c psi_c psi_c') (sum dpsi)^-T``,
is the cluster-robust two-stage covariance with no small-sample factor anywhere.

Two designs, (a) overlapping rows with clusters and (b) clusters shared by the samples
without any shared row, fitted with
``fit(cov_kwds={"second_stage": "cluster", "groups": ..., "pretrain_groups": ...})``.

What is compared, and why this way. The oracle has no small-sample factor, so the
package is fitted with ``use_correction=False`` (no factor on any part: statsmodels'
cluster covariance without CRV1's ``G/(G-1) (n-1)/(n-d)``, first-stage and cross parts
without ``c_pre``; the factors themselves are checked exactly in
``tests/test_small_sample.py``). Compared, from ``res._covariance.parts()``:

* ``fine_tuning`` against a second delicatessen system with only the second-stage
  equations at the fitted features, clustered by the labeled clusters (``F0``);
* ``pretraining + cross`` against ``V_full - F0`` (the first-stage-dependent part);
* in design (b) also ``cross`` alone, against ``V_full - V_unrelated``, where
  ``V_unrelated`` is the stacked system with the pre-training labels made distinct
  (the same clusters declared unrelated across samples, so no unit has rows in both);
* the total ``cov_params()`` against ``V_full``; and the corrected fit's parts are the
  uncorrected ones times their factors (``c_pre`` and ``sqrt(c_pre c_lab)``).

Measured (seeds below, m=300, n=150, p=5, k=2, 30 pre-training and 30 labeled cluster
labels, 15 of them shared; exact derivatives): fine-tuning part 2e-15 to 3e-15, first-stage
plus cross part 3.5e-15 to 5e-15 (relative to sqrt(V_ii V_jj)), the first-stage-dependent
difference 2.5e-14 of its largest entry, the cross term alone 1.2e-14. The cross term is
-9 % to +22 % of the coefficients' variances (overlap, 27 shared clusters) and up to 15 %
(shared clusters without shared rows), so dropping it would fail these tests.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import ssl_inference as ssi

from .test_oracle_delicatessen import (K, N_FIRST, P, SCALES, SHIFT, _max_rel, _stacked_psi,
                                       _unit_arrays, pca_init)

delicatessen = pytest.importorskip("delicatessen")
from delicatessen import MEstimator  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error::ssl_inference.IdentificationWarning")

M, N, N_OVERLAP = 300, 150, 60
G_PRE, G_LAB, SHARED = 30, 30, 15   # pre labels 0..29, labeled 15..44: 15..29 shared


def _make_problem(seed: int, *, overlap: bool):
    """Skewed x with cluster shifts in both samples, a cluster effect on y."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(P, P)))
    n_labels = G_PRE + G_LAB - SHARED
    shift = rng.normal(size=(n_labels, P)) * 0.6 * SCALES
    effect = shift @ Q.T[:, 0] / SCALES[0] + 0.3 * rng.normal(size=n_labels)
    pre_groups = rng.integers(0, G_PRE, size=M)
    groups = rng.integers(G_PRE - SHARED, n_labels, size=N)
    pidx = None
    if overlap:
        pidx = np.full(N, -1)
        pidx[:N_OVERLAP] = rng.choice(M, size=N_OVERLAP, replace=False)
        groups[:N_OVERLAP] = pre_groups[pidx[:N_OVERLAP]]  # a shared row keeps its cluster

    def draw(labels):
        e = (rng.exponential(size=(labels.size, P)) - 1.0) * SCALES + shift[labels]
        return e @ Q.T + SHIFT

    X_pre = draw(pre_groups)
    X_lab = draw(groups)
    if overlap:
        X_lab[:N_OVERLAP] = X_pre[pidx[:N_OVERLAP]]
    z = rng.normal(size=N)
    y = (1.0 + 0.5 * z + X_lab[:, 0] - 0.5 * X_lab[:, 1] + 0.3 * X_lab[:, 0] ** 2
         + effect[groups] + (1.0 + 0.5 * np.abs(z)) * rng.normal(size=N))
    return X_pre, X_lab, y, sm.add_constant(z), pidx, groups, pre_groups


def _cluster_matrix(pretrain_index, groups, pre_groups):
    """(units x clusters) indicator: each row-unit of ``_unit_arrays`` in its cluster."""
    pidx = np.full(N, -1) if pretrain_index is None else pretrain_index
    unit_labels = np.concatenate([pre_groups, groups[pidx < 0]]).astype(object)
    codes, uniques = pd.factorize(unit_labels)
    ind = np.zeros((codes.size, uniques.size))
    ind[np.arange(codes.size), codes] = 1.0
    return ind


def _stacked_cluster_variance(problem, rep, res, pre_groups):
    """delicatessen's sandwich of the stacked system, one column per cluster."""
    X_pre, X_lab, y, exog, pidx, groups, _ = problem
    psi_rows = _stacked_psi(*_unit_arrays(X_pre, X_lab, y, exog, None, pidx))
    ind = _cluster_matrix(pidx, groups, pre_groups)
    init = np.array(pca_init(rep) + list(np.asarray(res.params)))
    est = MEstimator(lambda theta: psi_rows(theta) @ ind, init=init)
    est.estimate(deriv_method="exact")
    np.testing.assert_allclose(est.theta, init, rtol=0, atol=1e-10)  # same root and gauge
    d = exog.shape[1] + K
    return est.variance[-d:, -d:]


def _second_stage_cluster_variance(res, y, groups):
    """delicatessen's sandwich of the second stage alone at the fitted features (F0)."""
    W = np.asarray(res.model.exog)
    codes, uniques = pd.factorize(groups)
    ind = np.zeros((codes.size, uniques.size))
    ind[np.arange(codes.size), codes] = 1.0

    def psi(theta):
        fitted = 0.0
        for c in range(W.shape[1]):
            fitted = fitted + W[:, c] * theta[c]
        r = y - fitted
        return np.vstack([W[:, c] * r for c in range(W.shape[1])]) @ ind

    est = MEstimator(psi, init=np.asarray(res.params))
    est.estimate(deriv_method="exact")
    return est.variance


def _fit(problem, correction=False):
    X_pre, X_lab, y, exog, pidx, groups, pre_groups = problem
    rep = ssi.PCA(K, symmetry="sign").fit(X_pre)
    res = ssi.OLS(y, exog, representation=rep, features=X_lab, pretrain_index=pidx).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "pretrain_groups": pre_groups,
                                      "use_correction": correction})
    return rep, res


def _crv1(res, groups):
    n, d = np.asarray(res.model.exog).shape
    G = np.unique(groups).size
    return G / (G - 1) * (n - 1) / (n - d)


@pytest.mark.parametrize("overlap", [True, False], ids=["overlap-clusters", "shared-clusters"])
def test_clustered_two_stage_parts_match_stacked_clusters(overlap):
    problem = _make_problem(7 if overlap else 11, overlap=overlap)
    X_pre, X_lab, y, exog, pidx, groups, pre_groups = problem
    rep, res = _fit(problem)
    parts = res._covariance.parts()
    V_full = _stacked_cluster_variance(problem, rep, res, pre_groups)
    F0 = _second_stage_cluster_variance(res, y, groups)

    assert _max_rel(parts.fine_tuning, F0) < 1e-10
    assert _max_rel(parts.pretraining + parts.cross + F0, V_full) < 1e-10
    D_pkg, D_oracle = parts.pretraining + parts.cross, V_full - F0
    assert np.max(np.abs(D_pkg - D_oracle)) < 1e-9 * np.max(np.abs(D_oracle))
    assert _max_rel(np.asarray(res.cov_params()), V_full) < 1e-10

    # the default (corrected) fit scales each part by its documented factor
    _, corrected = _fit(problem, correction=True)
    c_lab, c_pre = _crv1(res, groups), G_PRE / (G_PRE - 1.0)
    cp = corrected._covariance.parts()
    assert _max_rel(cp.fine_tuning, c_lab * parts.fine_tuning) < 1e-10
    assert _max_rel(cp.pretraining, c_pre * parts.pretraining) < 1e-10
    assert np.max(np.abs(cp.cross - np.sqrt(c_pre * c_lab) * parts.cross)) < 1e-12

    # not vacuous: shared clusters carry a cross term the oracle sees
    dec = res.variance_decomposition()
    assert res._covariance.shared_clusters == (SHARED if not overlap else
                                               np.intersect1d(groups, pre_groups).size)
    assert np.max(np.abs(dec["overlap"] / dec["total"])) > 0.05


def test_shared_clusters_cross_term_alone_matches_stacked_clusters():
    """Design (b): the cross term on its own, as the oracle's difference between the
    shared-cluster system and the same system with the samples' labels made distinct."""
    problem = _make_problem(11, overlap=False)
    X_pre, X_lab, y, exog, pidx, groups, pre_groups = problem
    rep, res = _fit(problem)
    V_full = _stacked_cluster_variance(problem, rep, res, pre_groups)
    V_unrelated = _stacked_cluster_variance(problem, rep, res, pre_groups + 1000)
    cross = res._covariance.parts().cross
    assert np.max(np.abs(cross - (V_full - V_unrelated))) < 1e-9 * np.max(np.abs(cross))
    # ... and the package with distinct labels is the oracle without cross term
    unrelated = res.model.fit(cov_type="cluster", cov_kwds={
        "groups": groups, "pretrain_groups": pre_groups + 1000, "use_correction": False})
    p = unrelated._covariance.parts()
    assert unrelated._covariance.shared_clusters == 0
    np.testing.assert_array_equal(p.cross, 0.0)
    assert _max_rel(p.fine_tuning + p.pretraining, V_unrelated) < 1e-10
