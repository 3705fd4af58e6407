"""The closed-form covariance streams of FactorModel, SpectralContrastive and
GaussianMixture (``K H_h^+`` folded into the score formulas, issue 13 §3) against the
generic path: the (rows, q) estimating-function arrays times ``-K H_h^+``.

Equal to 1e-10 (relative to the largest entry) for the per-row contractions, the
Gram and cluster sums, the overlap cross term and whole two-stage fits with
overlapping rows and shared clusters.
"""
from __future__ import annotations

import copy
import types

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import ssl_inference as ssi
from ssl_inference.representations.linearization import MEstimatorBase

pytestmark = pytest.mark.filterwarnings("ignore::ssl_inference.IdentificationWarning",
                                        "ignore::ssl_inference.ConvergenceWarning")
M, N = 900, 150


def _factor_rows(rng, m, p=6, k=2, heywood=False):
    L = rng.normal(size=(p, k)) * 2.0
    X = rng.normal(size=(m, k)) @ L.T + rng.normal(size=(m, p)) + 3.0
    if heywood:  # a raw feature that is (almost) a factor: its unique variance ~ 0
        X[:, 0] = X[:, 1] - X[:, 2] + 1e-4 * rng.normal(size=m)
    return X


def _mixture_rows(rng, m, d=3):
    centres = rng.normal(size=(3, d)) * 1.5  # overlapping: soft responsibilities
    return centres[np.arange(m) % 3] + rng.normal(size=(m, d)) @ rng.normal(size=(d, d)) * 0.6


def _spectral_views(rng, m, d=4):
    X = rng.normal(size=(m, d)) * np.linspace(2.0, 0.7, d)
    return X, X * [0.9, 0.7, 0.3, 0.1][:d] + rng.normal(size=(m, d)), rng.normal(size=(m, d))


def _fit(name, rng):
    if name.startswith("factor"):
        noise = "isotropic" if "isotropic" in name else "diagonal"
        X = _factor_rows(rng, M, heywood="heywood" in name)
        return ssi.FactorModel(2, noise=noise).fit(X), X
    if name.startswith("spectral"):
        X, Xp, Xn = _spectral_views(rng, M)
        rep = (ssi.SpectralContrastive(2).fit(X, Xp) if "permutation" in name
               else ssi.SpectralContrastive(2).fit(X, Xp, Xn))
        return rep, X
    cov, feat = name.split("-")[1:]
    X = _mixture_rows(rng, M)
    return ssi.GaussianMixture(3, covariance_type=cov, features=feat,
                               random_state=0).fit(X), X


NAMES = ["factor-diagonal", "factor-isotropic", "factor-heywood", "spectral-permutation",
         "spectral-given", "mixture-full-responsibilities", "mixture-diag-responsibilities",
         "mixture-spherical-gated", "mixture-full-gated"]


def _reference(rep):
    """A copy of ``rep`` whose contraction is the generic one (estimating-function
    arrays times ``-K H_h^+``) and whose streams read whole arrays of units."""
    ref = copy.copy(rep)
    ref._prepare_contraction = types.MethodType(MEstimatorBase._prepare_contraction, ref)
    ref._contract_units = types.MethodType(MEstimatorBase._contract_units, ref)
    ref.influence_contract = types.MethodType(MEstimatorBase.influence_contract, ref)
    return ref


def _close(actual, desired, rtol=1e-10):
    np.testing.assert_allclose(actual, desired, rtol=0,
                               atol=rtol * np.abs(desired).max())


@pytest.fixture(scope="module", params=NAMES)
def fitted(request):
    rep, X = _fit(request.param, np.random.default_rng(NAMES.index(request.param)))
    return request.param, rep, X


def test_heywood_case_takes_the_direct_path():
    rep, _ = _fit("factor-heywood", np.random.default_rng(NAMES.index("factor-heywood")))
    assert rep.heywood_.size and rep._prepare_contraction(np.eye(rep.params_.size)[:2])[4] \
        is None
    rep, _ = _fit("factor-diagonal", np.random.default_rng(0))
    assert rep._prepare_contraction(np.eye(rep.params_.size)[:2])[4] is not None


def test_per_row_contraction_and_influence_match_the_estimating_function(fitted):
    name, rep, _ = fitted
    U = rep.pretrain_units()
    K = np.random.default_rng(1).normal(size=(5, rep.params_.size))
    Kt = MEstimatorBase._prepare_contraction(rep, K)
    desired = rep.estimating_function(U) @ Kt.T
    _close(np.vstack([B for _, _, B in rep.influence_contract(K, chunk_rows=128)]), desired)
    _close(rep._contract_units(U, rep._prepare_contraction(K)), desired)
    # K None: the plain influence -H_h^+ psi
    _close(rep.influence(U[:40]), -rep.estimating_function(U[:40]) @ rep._horizontal_inverse.T)
    # the closed form is not the generic path under another name
    assert type(rep)._contract_units is not MEstimatorBase._contract_units


def test_gram_cluster_sums_and_overlap_cross_term_match(fitted):
    name, rep, _ = fitted
    rng = np.random.default_rng(2)
    ref = _reference(rep)
    K = rng.normal(size=(4, rep.params_.size))
    B = ref.estimating_function(rep.pretrain_units()) @ \
        MEstimatorBase._prepare_contraction(rep, K).T
    gram, cross = rep.influence_gram(K, chunk_rows=200)
    _close(gram, B.T @ B)
    assert cross is None
    groups = rng.integers(0, 40, size=M)
    _close(rep.influence_sums(K, groups, chunk_rows=300),
           np.array([B[groups == g].sum(axis=0) for g in pd.unique(groups)]))
    A, pos = rng.normal(size=(7, 3)), rng.choice(M, size=7, replace=False)
    gram, cross = rep.influence_gram(K, shared=(A, pos), chunk_rows=250)
    _close(gram, B.T @ B)
    _close(cross, A.T @ B[pos])
    for got, want in zip(rep.influence_gram(K, shared=(A, pos)),
                         ref.influence_gram(K, shared=(A, pos))):
        _close(got, want)


@pytest.mark.parametrize("design", ["independent", "overlap", "clusters+overlap"])
def test_two_stage_fits_match_the_generic_path(fitted, design):
    name, rep, X_pre = fitted
    if name.startswith("spectral"):
        pytest.skip("overlap by rows needs X_pre rows as labeled inputs: spectral units "
                    "are triples (covered by the sums above)")
    rng = np.random.default_rng(3)
    X_lab = X_pre[rng.choice(M, size=N, replace=False)] \
        + 0.1 * rng.normal(size=(N, X_pre.shape[1]))
    Z = rng.normal(size=(N, 1))
    y = Z[:, 0] + X_lab[:, 0] + rng.normal(size=N)
    kwargs, cov = {}, {}
    pidx = np.full(N, -1)
    pidx[:40] = np.arange(40) * 7
    X_lab[:40] = X_pre[pidx[:40]]
    if design != "independent":
        kwargs["pretrain_index"] = pidx
    if design == "clusters+overlap":
        pre_groups = np.arange(M) % 60
        groups = np.where(pidx >= 0, pre_groups[np.maximum(pidx, 0)], 100 + np.arange(N) % 30)
        cov = {"cov_type": "cluster", "cov_kwds": {"groups": groups,
                                                   "pretrain_groups": pre_groups}}
    fits = [ssi.OLS(y, sm.add_constant(Z), representation=r, features=X_lab,
                    **kwargs).fit(**cov) for r in (rep, _reference(rep))]
    _close(np.asarray(fits[0].cov_params()), np.asarray(fits[1].cov_params()))
    # the first stage moves the standard errors (the comparison is not of two zeros)
    assert not np.allclose(fits[0].bse, fits[0].bse_naive, rtol=1e-5, atol=0)
