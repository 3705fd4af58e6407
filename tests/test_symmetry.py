"""Symmetry groups, invariance checks, alignment and invariant inference (issue 3)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.exceptions import NonInvariantHypothesisError
from ssl_inference.symmetry import Orthogonal, Permutations, SignFlips, Trivial

from .conftest import make_problem

# ------------------------------------------------------------------ is_invariant by hand
# coefficient layout for the hand-worked cases: [const, z, f0, f1, f2], features at 2..4
REP = [2, 3, 4]


@pytest.mark.parametrize("group, R, r, expected", [
    # sign flips: a single component = 0 survives flipping it; comparisons do not
    (SignFlips(3), [[0, 0, 1, 0, 0]], None, True),
    (SignFlips(3), [[0, 0, 1, 0, 0], [0, 0, 0, 0, 1]], None, True),
    (SignFlips(3), [[0, 0, 1, -1, 0]], None, False),
    (SignFlips(3), [[0, 0, 1, 0, 0]], [0.5], False),          # f0 = 0.5 flips to -0.5
    (SignFlips(3), [[0, 1, 0, 0, 0]], [2.0], True),           # covariates never move
    (SignFlips(3), [[1, 0, 1, 0, 0]], None, False),           # const + f0 = 0 -> const - f0
    # rotations: only the whole block, or covariates
    (Orthogonal(3), np.eye(5)[2:], None, True),
    (Orthogonal(3), [[0, 0, 1, 0, 0]], None, False),
    (Orthogonal(3), [[0, 0, 1, 0, 0], [0, 0, 0, 1, 0]], None, False),
    (Orthogonal(3), [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]], [1.0, 2.0], True),
    (Orthogonal(3), [[0, 0, 1, 1, 1]], None, False),
    # permutations: all equal, sums; single components are not invariant
    (Permutations(3), [[0, 0, 1, -1, 0], [0, 0, 0, 1, -1]], None, True),
    (Permutations(3), [[0, 0, 1, 1, 1]], [3.0], True),
    (Permutations(3), [[0, 0, 1, 0, 0]], None, False),
    (Permutations(3), [[0, 0, 1, -1, 0]], None, False),
    (Trivial(3), [[0, 0, 1, -1, 0]], [0.3], True),
    # tiny but nonzero coefficients are coefficients: scaling does not change the answer
    (Orthogonal(3), [[0, 5e-324, 0, 0, 0]], None, True),
    (Orthogonal(3), [[0, 1.0, 0, 1e-3, 0]], None, False),
])
def test_is_invariant_hand_worked(group, R, r, expected):
    assert group.is_invariant(R, r, rep_cols=REP) is expected


def test_permutation_blocks_act_on_whole_components():
    G = Permutations(2, block_size=2)          # features [a0, a1, b0, b1]
    assert np.array_equal(G.rho([1, 0]), np.array([[0, 0, 1, 0], [0, 0, 0, 1],
                                                   [1, 0, 0, 0], [0, 1, 0, 0.]]))
    assert G.is_invariant([[1, 0, -1, 0], [0, 1, 0, -1]], rep_cols=[0, 1, 2, 3])
    assert not G.is_invariant([[1, -1, 0, 0]], rep_cols=[0, 1, 2, 3])


@pytest.mark.parametrize("group", [SignFlips(3), Orthogonal(3), Permutations(3)])
def test_group_elements_are_orthogonal_and_alignment_recovers_them(group):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 6))
    for _ in range(5):
        g = group.sample(rng)
        P = group.rho(g)
        np.testing.assert_allclose(P @ P.T, np.eye(3), atol=1e-12)
        back = group.align(P @ A, A)
        np.testing.assert_allclose(group.rho(back) @ P @ A, A, atol=1e-10)
    np.testing.assert_allclose(group.rho(group.align(A, A)), np.eye(3), atol=1e-12)


# ------------------------------------------------------------------ fitted pipelines
@pytest.fixture(scope="module")
def pipeline():
    X_pre, df, cols = make_problem(seed=2, m=500, n=200)
    new = make_problem(seed=11, n=6)[1]
    return X_pre, df, cols, new


def _fit(rep, df, cols, **kw):
    return smf.ols("y ~ z + treat", df, representation=rep, features=cols).fit(
        cov_kwds={"second_stage": "HC1"}, **kw)


def _element(group, seed):
    return group.sample(np.random.default_rng(seed))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), mode=st.sampled_from(["sign", "rotation"]))
def test_invariant_results_do_not_depend_on_the_gauge(pipeline, seed, mode):
    X_pre, df, cols, new = pipeline
    rep = ssi.PCA(3, symmetry=mode).fit(X_pre)
    g = _element(rep.symmetry_, seed)
    moved = rep.act(g)
    res, res_g = _fit(rep, df, cols), _fit(moved, df, cols)
    fixed = ["Intercept", "z", "treat"]
    np.testing.assert_allclose(res_g.params[fixed], res.params[fixed], rtol=1e-8)
    np.testing.assert_allclose(res_g.bse[fixed], res.bse[fixed], rtol=1e-8)
    feats = list(rep.get_feature_names_out())
    np.testing.assert_allclose(res_g.params[feats], rep.symmetry_.rho(g) @ res.params[feats],
                               rtol=1e-8, atol=1e-12)
    for (label, a), (_, b) in zip(res.invariant_tests().iterrows(),
                                  res_g.invariant_tests().iterrows()):
        assert b.statistic == pytest.approx(a.statistic, rel=1e-8), label
    pred, pred_g = res.get_prediction(new), res_g.get_prediction(new)
    np.testing.assert_allclose(pred_g.predicted_mean, pred.predicted_mean, rtol=1e-8)
    np.testing.assert_allclose(pred_g.se_mean, pred.se_mean, rtol=1e-8)
    wt = res.wald_test("z = 0, treat = 0", scalar=True)
    assert res_g.wald_test("z = 0, treat = 0", scalar=True).statistic == pytest.approx(
        wt.statistic, rel=1e-8)


@settings(max_examples=25, deadline=None)
@given(weights=st.lists(st.floats(-3, 3, allow_nan=False), min_size=3, max_size=3),
       covariate=st.sampled_from([0.0, 0.5, -1.3]))
def test_non_invariant_hypotheses_are_always_refused(pipeline, weights, covariate):
    X_pre, df, cols, _ = pipeline
    w = np.asarray(weights)
    w[np.abs(w) < 1e-3] = 0.0          # exactly zero or clearly not
    rep = ssi.PCA(3, symmetry="rotation").fit(X_pre)
    res = _fit(rep, df, cols)
    R = np.concatenate([[0.0, covariate, 0.0], w])[None, :]
    if not w.any() and covariate == 0.0:
        return                          # the empty hypothesis 0 = 0
    if not w.any():
        # covariates only: allowed, the t statistic of covariate * b_z = 0
        assert res.t_test(R).tvalue.item() == pytest.approx(
            np.sign(covariate) * res.params["z"] / res.bse["z"], rel=1e-10)
        return
    with pytest.raises(NonInvariantHypothesisError, match="rotations O\\(3\\)"):
        res.t_test(R)
    with pytest.raises(NonInvariantHypothesisError):
        res.wald_test(R)
    with pytest.raises(NonInvariantHypothesisError):
        res.f_test(R)


def test_error_message_names_group_and_alternatives(pipeline):
    X_pre, df, cols, _ = pipeline
    res = _fit(ssi.PCA(3).fit(X_pre), df, cols)
    with pytest.raises(NonInvariantHypothesisError) as err:
        res.t_test("pc0 = pc1")
    msg = str(err.value)
    assert "'pc0 - pc1 = 0' is not invariant under" in msg
    assert "sign flips {+-1}^3" in msg
    assert "'pc0 = 0'" in msg and "'pc0 = pc1 = pc2 = 0'" in msg
    assert "allow_gauge=True" in msg
    assert res.t_test("pc0 = 0").tvalue.item() == pytest.approx(res.tvalues["pc0"])


def test_allow_gauge_tests_in_reported_gauge_and_says_so(pipeline):
    X_pre, df, cols, _ = pipeline
    res = _fit(ssi.PCA(3, symmetry="rotation").fit(X_pre), df, cols)
    t = res.t_test("pc0 = 0", allow_gauge=True)
    assert t.gauge_dependent
    # the reported gauge's t statistic; res.tvalues["pc0"] itself is NaN (no gauge-free meaning)
    assert t.tvalue.item() == pytest.approx(res.params["pc0"] / res.bse["pc0"], rel=1e-12)
    assert "gauge-dependent: tested in the reported gauge" in str(t.summary())
    w = res.wald_test("pc0 = pc1", allow_gauge=True, scalar=True)
    assert "NOTE: gauge-dependent" in str(w)


def test_wald_test_terms_merges_rotating_features(pipeline):
    X_pre, df, cols, _ = pipeline
    rot = _fit(ssi.PCA(3, symmetry="rotation").fit(X_pre), df, cols)
    table = rot.wald_test_terms().table
    assert list(table.index) == ["Intercept", "z", "treat",
                                 "representation block (pc0, pc1, pc2)"]
    joint = rot.wald_test("pc0 = pc1 = pc2 = 0", scalar=True)
    assert table.iloc[-1]["statistic"] == pytest.approx(joint.statistic, rel=1e-12)
    assert "pc0" in rot.wald_test_terms(allow_gauge=True).table.index
    sign = _fit(ssi.PCA(3).fit(X_pre), df, cols)
    assert "pc0" in sign.wald_test_terms().table.index


def test_invariant_tests_table_per_group(pipeline):
    X_pre, df, cols, _ = pipeline
    sign = _fit(ssi.PCA(3).fit(X_pre), df, cols).invariant_tests()
    assert list(sign.index) == ["pc0 = pc1 = pc2 = 0", "pc0 = 0", "pc1 = 0", "pc2 = 0"]
    res = _fit(ssi.PCA(3).fit(X_pre), df, cols)
    assert sign.loc["pc1 = 0", "statistic"] == pytest.approx(res.tvalues["pc1"] ** 2, rel=1e-10)
    rot = _fit(ssi.PCA(3, symmetry="rotation").fit(X_pre), df, cols)
    table = rot.invariant_tests()
    assert list(table.index) == ["pc0 = pc1 = pc2 = 0"] and table["df"].item() == 3
    text = str(rot.summary())
    assert "Invariant tests (symmetry rotations O(3))" in text
    assert "pc0*" in text and "t, p and intervals are not shown" in text
    sign_text = str(res.summary())
    assert "pc0*" not in sign_text


def test_align_moves_fit_onto_reference(pipeline):
    X_pre = pipeline[0]
    for mode in ["sign", "rotation"]:
        rep = ssi.PCA(3, symmetry=mode).fit(X_pre)
        same, g = ssi.align(rep, rep)
        np.testing.assert_allclose(rep.symmetry_.rho(g), np.eye(3), atol=1e-12)
        moved = rep.act(_element(rep.symmetry_, 4))
        back, _ = ssi.align(moved, rep)
        np.testing.assert_allclose(back.components_, rep.components_, atol=1e-10)
        np.testing.assert_allclose(back.transform(X_pre[:5]), rep.transform(X_pre[:5]),
                                   atol=1e-10)
    other = ssi.PCA(3, symmetry="rotation").fit(make_problem(seed=3, m=500)[0])
    with pytest.raises(ValueError, match="different symmetry groups"):
        ssi.align(other, ssi.PCA(3).fit(X_pre))
