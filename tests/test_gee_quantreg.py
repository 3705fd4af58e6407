"""Estimating-equation second stages (issue 15, section 2): GEE and QuantReg.

* reduction: ``cov_type="naive"`` is statsmodels' fit of the same design (1e-10), the
  fine-tuning part of the two-stage covariance is statsmodels' covariance (GEE robust;
  QuantReg robust / iid with every kernel and bandwidth; Powell's sandwich against its
  closed form), and the engine with a known first stage (``J = 0``) returns exactly
  statsmodels' covariance; arrays and formulas;
* GEE's estimating function and bread are statsmodels' (its robust covariance rebuilt
  from them), the cluster derivative agrees with refitting the second stage on moved
  designs, ``J`` agrees with refitting on a moved first stage;
* the symmetry group: refused, allowed and invariant tests, coefficients moving by
  ``rho(g)``;
* predictions, refusals of first-stage blind methods and bad input, with their messages.

The delicatessen oracles are in ``test_oracle_gee_quantreg.py``; Monte Carlo coverage in
``test_coverage_gee_quantreg.py``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as sm_smf

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.exceptions import FirstStageBlindError, NonInvariantHypothesisError

SCALES = np.array([3.0, 2.0, 1.0, 0.5])
COLS = ["x0", "x1", "x2", "x3"]


@pytest.fixture(scope="module")
def data():
    """Pre-training rows and a labeled frame: clusters of 2-6 rows (interleaved), a
    Gaussian outcome with a cluster effect, a binary one and a heavy-tailed one."""
    rng = np.random.default_rng(0)
    n, m = 400, 1500
    X_pre = rng.normal(size=(m, 4)) * SCALES
    X = rng.normal(size=(n, 4)) * SCALES
    g = rng.permutation(np.repeat(np.arange(100), 4))
    z = rng.normal(size=n)
    effect = rng.normal(size=100)[g]
    df = pd.DataFrame(X, columns=COLS)
    df["z"], df["g"] = z, g
    df["y"] = 1.0 + 0.5 * z + 0.3 * X[:, 0] - 0.2 * X[:, 1] + effect + rng.normal(size=n)
    df["yb"] = (rng.random(n) < 1 / (1 + np.exp(-(0.2 + 0.3 * X[:, 0] + effect)))).astype(float)
    df["yq"] = 1.0 + 0.5 * z + 0.3 * X[:, 0] + (1 + 0.3 * np.abs(z)) * rng.standard_t(4, size=n)
    return X_pre, df


@pytest.fixture(scope="module")
def rep(data):
    return ssi.PCA(2).fit(data[0])


@pytest.fixture(scope="module")
def rotation(data):
    return ssi.PCA(2, symmetry="rotation").fit(data[0])


def _design(df, rep):
    exog = sm.add_constant(df[["z"]].to_numpy())
    return exog, np.column_stack([exog, rep.transform(df[COLS].to_numpy())])


GEE_CASES = {
    "gaussian-exchangeable": ("y", sm.families.Gaussian, sm.cov_struct.Exchangeable),
    "binomial-exchangeable": ("yb", sm.families.Binomial, sm.cov_struct.Exchangeable),
    "binomial-independence": ("yb", sm.families.Binomial, sm.cov_struct.Independence),
    "gaussian-autoregressive": ("y", sm.families.Gaussian,
                                lambda: sm.cov_struct.Autoregressive(grid=True)),
}


def _gee(df, rep, case, **kw):
    y, family, cov_struct = GEE_CASES[case]
    exog, _ = _design(df, rep)
    return ssi.GEE(df[y].to_numpy(), exog, df["g"].to_numpy(), family=family(),
                   cov_struct=cov_struct(), representation=rep, features=df[COLS].to_numpy(),
                   **kw)


# ----------------------------------------------------------------- reduction: GEE
@pytest.mark.parametrize("case", list(GEE_CASES))
def test_gee_reduces_to_statsmodels(case, data, rep):
    _, df = data
    y, family, cov_struct = GEE_CASES[case]
    model = _gee(df, rep, case)
    tight = dict(ctol=1e-12, maxiter=200)  # the same root whatever the design's rounding
    two = model.fit(**tight)
    naive = model.fit(cov_type="naive", **tight)
    _, W = _design(df, rep)
    ref = sm.GEE(df[y].to_numpy(), W, df["g"].to_numpy(), family=family(),
                 cov_struct=cov_struct()).fit(**tight)
    cov = np.asarray(ref.cov_params())
    np.testing.assert_allclose(np.asarray(two.params), np.asarray(ref.params), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(naive.cov_params()), cov, rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(np.asarray(naive.bse), np.asarray(ref.bse), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(two.cov_params_naive()), cov, rtol=1e-10,
                               atol=1e-16)
    parts = two._parts
    np.testing.assert_allclose(parts.fine_tuning, cov, rtol=1e-10, atol=1e-16)
    assert (np.diag(parts.pretraining) > 0).all()
    # first stage known (J = 0): exactly statsmodels' robust covariance
    engine = two._covariance
    known = type(engine)(engine.representation, np.zeros_like(engine.jacobian),
                         engine.cov_second, engine.second_influence, groups=engine.groups)
    np.testing.assert_allclose(known.parts().total, cov, rtol=1e-12, atol=1e-16)
    assert two.cov_type == "two-stage robust" and two._spec.cov_type == "two-stage"
    assert naive.cov_type == "robust"


def test_gee_estimating_function_is_statsmodels(data, rep):
    """The per-row pieces sum by cluster to psi_i; with the bread they rebuild
    statsmodels' robust covariance, and the score is zero at the estimate."""
    _, df = data
    res = _gee(df, rep, "binomial-exchangeable").fit(ctol=1e-10)
    rows, bread = res.model.estimating_rows(np.asarray(res.params))
    psi = pd.DataFrame(rows).groupby(df["g"].to_numpy()).sum().to_numpy()
    inv = np.linalg.inv(bread)
    np.testing.assert_allclose(inv @ psi.T @ psi @ inv, np.asarray(res.cov_params_naive()),
                               rtol=1e-10)
    assert np.abs(rows.sum(axis=0)).max() < 1e-8


def test_gee_statsmodels_case_weights(data, rep):
    _, df = data
    weights = np.random.default_rng(3).uniform(0.5, 2.0, size=len(df))
    model = _gee(df, rep, "gaussian-exchangeable", weights=weights)
    two = model.fit()
    _, W = _design(df, rep)
    ref = sm.GEE(df["y"].to_numpy(), W, df["g"].to_numpy(),
                 cov_struct=sm.cov_struct.Exchangeable(), weights=weights).fit()
    np.testing.assert_allclose(two._parts.fine_tuning, np.asarray(ref.cov_params()),
                               rtol=1e-10)
    rows, bread = model.estimating_rows(np.asarray(two.params))
    psi = pd.DataFrame(rows).groupby(df["g"].to_numpy()).sum().to_numpy()
    inv = np.linalg.inv(bread)
    np.testing.assert_allclose(inv @ psi.T @ psi @ inv, np.asarray(ref.cov_params()),
                               rtol=1e-10)


def test_gee_formula_is_statsmodels(data, rep):
    _, df = data
    res = smf.gee("yb ~ z", "g", df, family=sm.families.Binomial(),
                  cov_struct=sm.cov_struct.Exchangeable(), representation=rep,
                  features=COLS).fit(cov_type="naive")
    phi = rep.transform(df[COLS].to_numpy())
    plain = sm_smf.gee("yb ~ z + pc0 + pc1", "g", df.assign(pc0=phi[:, 0], pc1=phi[:, 1]),
                       family=sm.families.Binomial(),
                       cov_struct=sm.cov_struct.Exchangeable()).fit()
    assert list(res.model.exog_names) == list(plain.model.exog_names)
    np.testing.assert_allclose(np.asarray(res.params), np.asarray(plain.params), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(res.cov_params()), np.asarray(plain.cov_params()),
                               rtol=1e-10)
    two = smf.gee("yb ~ z", "g", df, family=sm.families.Binomial(),
                  cov_struct=sm.cov_struct.Exchangeable(), representation=rep,
                  features=COLS).fit()
    arrays = _gee(df, rep, "binomial-exchangeable").fit()
    np.testing.assert_allclose(np.asarray(two.cov_params()), np.asarray(arrays.cov_params()),
                               rtol=1e-8)
    assert smf.gee.__self__ is ssi.GEE and smf.quantreg.__self__ is ssi.QuantReg
    assert {"gee", "quantreg"} <= set(dir(sm_smf))
    # without a representation: statsmodels' own GEE formula
    plain_two = smf.gee("y ~ z", "g", df).fit()
    np.testing.assert_allclose(np.asarray(plain_two.bse),
                               np.asarray(sm_smf.gee("y ~ z", "g", df).fit().bse), rtol=1e-12)


def test_gee_formula_drops_missing_rows_with_their_clusters(data, rep):
    _, df = data
    holed = df.copy()
    holed.loc[[3, 50], "x1"] = np.nan
    holed.loc[7, "z"] = np.nan
    res = smf.gee("y ~ z", "g", holed, representation=rep, features=COLS).fit()
    ref = smf.gee("y ~ z", "g", df.drop(index=[3, 7, 50]), representation=rep,
                  features=COLS).fit()
    np.testing.assert_allclose(np.asarray(res.cov_params()), np.asarray(ref.cov_params()),
                               rtol=1e-10)


# ------------------------------------------------------- GEE: first-stage derivative
def test_gee_jacobian_matches_refits_on_a_moved_first_stage(data, rep):
    """``J dtheta`` against refitting GEE with the features of a moved representation
    (the working correlation held at the estimate, as the linearisation does)."""
    _, df = data
    model = _gee(df, rep, "gaussian-exchangeable")
    res = model.fit(ctol=1e-12, maxiter=200)
    alpha = model.cov_struct.dep_params
    J = res.first_stage_jacobian
    direction = np.random.default_rng(1).normal(size=J.shape[1])
    theta = rep.params_
    steps = []
    for h in (1e-5, -1e-5):
        moved = rep.with_params(theta + h * direction)
        exog, _ = _design(df, rep)
        W = np.column_stack([exog, moved.transform(df[COLS].to_numpy())])
        fixed = sm.cov_struct.Exchangeable()
        plain = sm.GEE(df["y"].to_numpy(), W, df["g"].to_numpy(), cov_struct=fixed,
                       update_dep=False)
        fixed.dep_params = alpha
        steps.append(np.asarray(plain.fit(ctol=1e-12, maxiter=200,
                                          start_params=np.asarray(res.params)).params))
    numeric = (steps[0] - steps[1]) / 2e-5
    np.testing.assert_allclose(J @ direction, numeric, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------ reduction: QuantReg
@pytest.mark.parametrize("q, vcov, kernel, bandwidth", [
    (0.5, "robust", "epa", "hsheather"), (0.25, "iid", "gau", "bofinger"),
    (0.8, "robust", "cos", "chamberlain"), (0.5, "iid", "par", "hsheather")])
def test_quantreg_reduces_to_statsmodels(q, vcov, kernel, bandwidth, data, rep):
    _, df = data
    exog, W = _design(df, rep)
    model = ssi.QuantReg(df["yq"].to_numpy(), exog, representation=rep,
                         features=df[COLS].to_numpy())
    options = dict(q=q, vcov=vcov, kernel=kernel, bandwidth=bandwidth)
    two, naive = model.fit(**options), model.fit(cov_type="naive", **options)
    ref = sm.QuantReg(df["yq"].to_numpy(), W).fit(**options)
    cov = np.asarray(ref.cov_params())
    np.testing.assert_allclose(np.asarray(two.params), np.asarray(ref.params), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(naive.cov_params()), cov, rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(two._parts.fine_tuning, cov, rtol=1e-10, atol=1e-16)
    engine = two._covariance
    known = type(engine)(engine.representation, np.zeros_like(engine.jacobian),
                         engine.cov_second, engine.second_influence)
    np.testing.assert_allclose(known.parts().total, cov, rtol=1e-12, atol=1e-16)
    assert two.cov_type == f"two-stage {vcov}"
    assert (np.diag(two._parts.pretraining) > 0).all()
    assert two.bandwidth == ref.bandwidth and two.sparsity == ref.sparsity


def test_quantreg_powell_sandwich_closed_form(data, rep):
    """``vcov="powell"``: A^{-1} (sum psi^2 w w') A^{-1}, A = (1/h) sum K(e/h) w w'."""
    _, df = data
    exog, W = _design(df, rep)
    model = ssi.QuantReg(df["yq"].to_numpy(), exog, representation=rep,
                         features=df[COLS].to_numpy())
    res = model.fit(q=0.3, vcov="powell")
    ref = sm.QuantReg(df["yq"].to_numpy(), W).fit(q=0.3)
    np.testing.assert_allclose(np.asarray(res.params), np.asarray(ref.params), rtol=1e-12)
    e = df["yq"].to_numpy() - W @ np.asarray(ref.params)
    u = e / ref.bandwidth
    A = (W * (0.75 * (1 - u ** 2) * (np.abs(u) <= 1) / ref.bandwidth)[:, None]).T @ W
    psi = np.where(e > 0, 0.3, -0.7)
    B = (W * psi[:, None] ** 2).T @ W
    powell = np.linalg.inv(A) @ B @ np.linalg.inv(A)
    np.testing.assert_allclose(res._parts.fine_tuning, powell, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(res.cov_params_naive()), powell, rtol=1e-10)
    assert res.cov_type == "two-stage powell"
    # the pooled density of statsmodels' robust covariance differs under heteroskedasticity
    assert np.max(np.abs(np.diag(powell) / np.diag(ref.cov_params()) - 1)) > 0.05


def test_quantreg_formula(data, rep):
    _, df = data
    res = smf.quantreg("yq ~ z", df, representation=rep, features=COLS).fit(q=0.4)
    phi = rep.transform(df[COLS].to_numpy())
    plain = sm_smf.quantreg("yq ~ z + pc0 + pc1", df.assign(pc0=phi[:, 0],
                                                            pc1=phi[:, 1])).fit(q=0.4)
    np.testing.assert_allclose(np.asarray(res.params), np.asarray(plain.params), rtol=1e-12)
    np.testing.assert_allclose(res._parts.fine_tuning, np.asarray(plain.cov_params()),
                               rtol=1e-10)
    assert list(res.params.index) == ["Intercept", "z", "pc0", "pc1"]
    assert list(res.conf_int().index) == ["Intercept", "z", "pc0", "pc1"]
    text = str(res.summary())
    assert "Covariance Type:     two-stage robust" in text
    assert "Least Squares" not in text and "Pre-train rows m" in text


# ------------------------------------------------------------------- symmetry group
def test_invariant_tests_gee_and_quantreg(data, rotation):
    _, df = data
    fits = {
        "gee": lambda r: smf.gee("y ~ z", "g", df, cov_struct=sm.cov_struct.Exchangeable(),
                                 representation=r, features=COLS).fit(),
        "quantreg": lambda r: smf.quantreg("yq ~ z", df, representation=r,
                                           features=COLS).fit(q=0.5),
    }
    g = rotation.symmetry_.sample(np.random.default_rng(3))
    rho = rotation.symmetry_.rho(g)
    for name, fit in fits.items():
        res, moved = fit(rotation), fit(rotation.act(g))
        with pytest.raises(NonInvariantHypothesisError, match="rotations O\\(2\\)"):
            res.t_test("pc0 = 0")
        block = res.wald_test("pc0 = pc1 = 0", scalar=True)
        np.testing.assert_allclose(moved.wald_test("pc0 = pc1 = 0", scalar=True).statistic,
                                   block.statistic, rtol=1e-5, err_msg=name)
        P, P_moved = np.asarray(res.params), np.asarray(moved.params)
        np.testing.assert_allclose(P_moved[:2], P[:2], rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(P_moved[2:], rho @ P[2:], rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(np.asarray(moved.bse)[:2], np.asarray(res.bse)[:2],
                                   rtol=1e-5, err_msg=name)
        assert list(res.invariant_tests().index) == ["pc0 = pc1 = 0"]
        assert res.t_test("z = 0").tvalue.shape == (1, 1)
        with pytest.warns(ssi.GaugeDependentWarning):
            p = np.asarray(res.pvalues)
        assert np.isnan(p[2:]).all() and np.isfinite(p[:2]).all()


# ---------------------------------------------------------------------- predictions
def test_predictions(data, rep):
    _, df = data
    gee = smf.gee("yb ~ z", "g", df, family=sm.families.Binomial(), representation=rep,
                  features=COLS).fit()
    new = df.iloc[:3]
    mean = gee.get_prediction(new, which="mean")
    lin = gee.get_prediction(new, which="linear")
    np.testing.assert_allclose(mean.predicted, gee.predict(new), rtol=1e-12)
    slope = gee.model.family.link.inverse_deriv(lin.predicted)
    np.testing.assert_allclose(mean.se, np.abs(slope) * lin.se, rtol=1e-10)
    # the new rows' features move with the first stage: more than w0' Cov w0
    W0 = np.column_stack([np.ones(3), new["z"], rep.transform(new[COLS].to_numpy())])
    plug_in = np.sqrt(np.einsum("ij,jk,ik->i", W0, np.asarray(gee.cov_params()), W0))
    assert np.max(np.abs(plug_in / lin.se - 1)) > 1e-3
    qr = smf.quantreg("yq ~ z", df, representation=rep, features=COLS).fit(q=0.5)
    pred = qr.get_prediction(new)
    np.testing.assert_allclose(pred.predicted, qr.predict(new), rtol=1e-12)
    naive = smf.quantreg("yq ~ z", df, representation=rep, features=COLS).fit(
        q=0.5, cov_type="naive").get_prediction(new)
    W0 = np.column_stack([np.ones(3), new["z"], rep.transform(new[COLS].to_numpy())])
    np.testing.assert_allclose(
        naive.se, np.sqrt(np.einsum("ij,jk,ik->i", W0, np.asarray(qr.cov_params_naive()),
                                    W0)), rtol=1e-10)
    assert (pred.se > naive.se).all()
    assert list(pred.summary_frame().columns) == ["predicted", "se", "ci_lower", "ci_upper"]


# ------------------------------------------------------------------------ refusals
def test_gee_refuses_first_stage_blind_methods(data, rep):
    _, df = data
    res = _gee(df, rep, "gaussian-exchangeable").fit()
    for call, match in [
        (lambda: res.cov_naive, "model-based"),
        (lambda: res.cov_robust_bc, "bias-reduced"),
        (lambda: res.standard_errors("naive"), "standard_errors\\('naive'\\)"),
        (lambda: res.qic(), "qic\\(\\)"),
        (lambda: res.score_test(), "score_test"),
        (lambda: res.sensitivity_params(0.0, 0.5, 3), "sensitivity_params"),
        (lambda: res.get_margeff(), "get_margeff"),
        (lambda: res.get_influence(), "get_influence"),
        (lambda: res.model.compare_score_test(res), "compare_score_test"),
        (lambda: res.model.fit_regularized(1.0), "fit_regularized"),
    ]:
        with pytest.raises(FirstStageBlindError, match=match):
            call()
    np.testing.assert_allclose(res.cov_robust, np.asarray(res.cov_params()))
    np.testing.assert_allclose(res.standard_errors("robust"), np.asarray(res.bse))
    with pytest.raises(NotImplementedError, match="independent labeled rows"):
        res.risk_asymptotics()
    with pytest.raises(ValueError, match="has no other second stage"):
        res.get_robustcov_results("HC0")
    # after cov_type="naive" they are statsmodels' own
    naive = _gee(df, rep, "gaussian-exchangeable").fit(cov_type="naive")
    assert naive.cov_naive.shape == (4, 4)
    assert np.isfinite(naive.qic(scale=1.0)).all()


def test_quantreg_refuses_least_squares_members(data, rep):
    _, df = data
    model = ssi.QuantReg(df["yq"].to_numpy(), sm.add_constant(df["z"].to_numpy()),
                         representation=rep, features=df[COLS].to_numpy())
    res = model.fit(q=0.5)
    for call, name in [(lambda: res.cov_HC0, "cov_HC0"), (lambda: res.cov_HC3, "cov_HC3"),
                       (lambda: res.get_robustcov_results("HC1"), "get_robustcov_results"),
                       (lambda: res.compare_f_test(res), "compare_f_test"),
                       (lambda: res.el_test([0.0], [1]), "el_test"),
                       (lambda: res.outlier_test(), "outlier_test")]:
        with pytest.raises(FirstStageBlindError, match=f"{name} is a least-squares quantity"):
            call()
    with pytest.raises(FirstStageBlindError, match="get_influence"):
        res.get_influence()
    with pytest.raises(NotImplementedError):  # statsmodels' own refusal, kept
        res.HC0_se


@pytest.mark.parametrize("cov_type, cov_kwds, error, match", [
    ("bias_reduced", None, ValueError, "Mancl-DeRouen"),
    ("bootstrap", None, ValueError, "not available for GEE second stages"),
    ("HC1", None, ValueError, "clustered by its groups by definition"),
    ("naive", {"second_stage": "HC0"}, ValueError, "second_stage'\\] for GEE"),
    ("two-stage", {"second_stage": "naive"}, ValueError, "Unknown cov_kwds \\['second_stage'\\]"),
    ("two-stage", {"groups": np.zeros(400)}, ValueError, "Unknown cov_kwds \\['groups'\\]"),
])
def test_gee_bad_cov_options(cov_type, cov_kwds, error, match, data, rep):
    _, df = data
    with pytest.raises(error, match=match):
        _gee(df, rep, "gaussian-exchangeable").fit(cov_type=cov_type, cov_kwds=cov_kwds)


def test_gee_bad_input(data, rep):
    _, df = data
    model = _gee(df, rep, "gaussian-exchangeable")
    with pytest.raises(ValueError, match="scaling_factor= other than 1"):
        model.fit(scaling_factor=2.0)
    with pytest.raises(ValueError, match="constraint= is not available"):
        _gee(df, rep, "gaussian-exchangeable", constraint=(np.eye(1, 4), np.zeros(1)))
    with pytest.raises(ValueError, match="subset= is not available"):
        smf.gee("y ~ z", "g", df, subset=df["z"] > 0, representation=rep, features=COLS)
    with pytest.raises(ValueError, match="groups='h' is not a column"):
        smf.gee("y ~ z", "h", df, representation=rep, features=COLS)
    with pytest.raises(TypeError, match="cov_kwds= selects two-stage options"):
        sm_like = ssi.GEE(df["y"].to_numpy(), np.ones((len(df), 1)), df["g"].to_numpy())
        sm_like.fit(cov_kwds={"pretrain_groups": None})
    # overlap needs the pre-training clusters
    X_pre = data[0]
    pidx = np.full(len(df), -1)
    pidx[:5] = np.arange(5)
    X = df[COLS].to_numpy().copy()
    X[:5] = X_pre[:5]
    overlap = ssi.GEE(df["y"].to_numpy(), np.ones((len(df), 1)), df["g"].to_numpy(),
                      representation=rep, features=X, pretrain_index=pidx)
    with pytest.raises(ValueError, match="needs cov_kwds=\\{'pretrain_groups'"):
        overlap.fit()
    # with the pre-training clusters (the shared rows in their GEE clusters): cross term
    pretrain_groups = 1000 + np.arange(len(X_pre))
    pretrain_groups[:5] = df["g"].to_numpy()[:5]
    res = overlap.fit(cov_kwds={"pretrain_groups": pretrain_groups})
    assert np.abs(res.variance_decomposition()["overlap"]).max() > 0
    with pytest.raises(TypeError, match="need representation="):
        smf.gee("y ~ z", "g", df, features=COLS)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"cov_type": "HC1"}, ValueError, "statsmodels' QuantReg chooses"),
    ({"cov_type": "bootstrap"}, ValueError, "bootstrap and jackknife are not available"),
    ({"vcov": "HC0"}, ValueError, "vcov must be one of \\('robust', 'iid', 'powell'\\)"),
    ({"cov_kwds": {"groups": np.zeros(400)}}, ValueError,
     "Unknown cov_kwds \\['groups'\\] for QuantReg"),
    ({"maxiter": 10}, TypeError, "unexpected keyword arguments \\['maxiter'\\]"),
])
def test_quantreg_bad_input(kwargs, error, match, data, rep):
    _, df = data
    model = ssi.QuantReg(df["yq"].to_numpy(), np.ones((len(df), 1)), representation=rep,
                         features=df[COLS].to_numpy())
    with pytest.raises(error, match=match):
        model.fit(**kwargs)
    with pytest.raises(TypeError, match="need a model with representation="):
        ssi.QuantReg(df["yq"].to_numpy(), np.ones((len(df), 1))).fit(cov_type="naive")


def test_quantreg_overlap_with_pretrain_groups_refused(data, rep):
    X_pre, df = data
    pidx = np.full(len(df), -1)
    pidx[:5] = np.arange(5)
    X = df[COLS].to_numpy().copy()
    X[:5] = X_pre[:5]
    model = ssi.QuantReg(df["yq"].to_numpy(), np.ones((len(df), 1)), representation=rep,
                         features=X, pretrain_index=pidx)
    with pytest.raises(ValueError, match="labeled rows cannot be clustered"):
        model.fit(cov_kwds={"pretrain_groups": np.arange(len(X_pre)) // 3})
    res = model.fit()  # rows as units: the cross term of the shared rows
    assert np.abs(res.variance_decomposition()["overlap"]).max() > 0


class _FailingIndependence(sm.cov_struct.Independence):
    """A working covariance that cannot be solved when ``failing``."""

    failing = False

    def covariance_matrix_solve(self, expval, index, stdev, rhs):
        if self.failing:
            return None
        return super().covariance_matrix_solve(expval, index, stdev, rhs)


def test_gee_singular_working_covariance(data, rep, monkeypatch):
    _, df = data
    cov_struct = _FailingIndependence()
    model = ssi.GEE(df["y"].to_numpy(), np.ones((len(df), 1)), df["g"].to_numpy(),
                    cov_struct=cov_struct, representation=rep, features=df[COLS].to_numpy())
    res = model.fit()
    cov_struct.failing = True
    with pytest.raises(ValueError, match="working covariance of cluster .* is singular"):
        res.model.estimating_rows(np.asarray(res.params))
    # statsmodels' fit returns None when its covariance is singular (after a warning)
    monkeypatch.setattr(sm.GEE, "fit", lambda self, **kwargs: None)
    with pytest.raises(ValueError, match="statsmodels' GEE fit failed"):
        model.fit()


def test_gee_formula_input_checks(data, rep):
    _, df = data
    with pytest.raises(ValueError, match="dep_data= is not available"):
        smf.gee("y ~ z", "g", df, dep_data="z", representation=rep, features=COLS)
    with pytest.raises(TypeError, match="need data as a pandas DataFrame"):
        smf.gee("y ~ z", "g", df.to_dict("list"), representation=rep, features=COLS)


def test_quantreg_powell_needs_residuals_within_the_bandwidth(data, rep):
    """Powell's Hessian needs residuals within the bandwidth of zero: with (almost) none
    it is singular and refused."""
    _, df = data
    model = ssi.QuantReg(df["yq"].to_numpy(), np.ones((len(df), 1)), representation=rep,
                         features=df[COLS].to_numpy())
    plain = sm.QuantReg.fit(model, q=0.5)
    plain._results.bandwidth = 1e-12  # the IRLS residuals are at least 1e-6 from zero
    with pytest.raises(ValueError, match="Powell's kernel estimate of the Hessian"):
        model._powell_results(plain, "epa")
