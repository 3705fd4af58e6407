"""t, p and intervals of gauge-dependent coefficients are NaN, with one warning (issue 11).

A single coefficient whose zero-test the representation's symmetry group does not
preserve (one principal component under rotations, one factor, one mixture component)
has no gauge-free meaning: ``tvalues``, ``pvalues`` and ``conf_int`` return NaN there and
say why once per result; the other entries are statsmodels' numbers computed from the
two-stage covariance.
"""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from scipy import stats

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.exceptions import GaugeDependentWarning

from .conftest import make_problem


@pytest.fixture(scope="module")
def data():
    return make_problem(seed=2, m=500, n=200)


def _fit(rep, data, formula="y ~ z + treat", **kw):
    X_pre, df, cols = data
    return smf.ols(formula, df, representation=rep.fit(X_pre), features=cols).fit(**kw)


def _outputs(res) -> dict:
    """Every accessor that reports single-coefficient inference, as arrays (d, ...)."""
    return {"tvalues": np.asarray(res.tvalues), "pvalues": np.asarray(res.pvalues),
            "conf_int": np.asarray(res.conf_int())}


def _check_nan_exactly_at(res, names):
    """NaN at ``names``, and statsmodels' formulas from params and bse everywhere else."""
    exog = list(res.model.exog_names)
    nan_rows = [exog.index(n) for n in names]
    keep = np.setdiff1d(np.arange(len(exog)), nan_rows)
    with pytest.warns(GaugeDependentWarning) as record:
        out = _outputs(res)
    assert len(record) == 1
    for key, values in out.items():
        assert np.isnan(values[nan_rows]).all(), key
        assert np.isfinite(values[keep]).all(), key
    params, bse = np.asarray(res.params)[keep], np.asarray(res.bse)[keep]
    assert np.isfinite(np.asarray(res.bse)).all()          # bse is reported for every row
    q = stats.norm.ppf(0.975)
    np.testing.assert_allclose(out["pvalues"][keep], 2 * stats.norm.sf(np.abs(params / bse)),
                               rtol=1e-10)
    np.testing.assert_allclose(out["conf_int"][keep],
                               np.c_[params - q * bse, params + q * bse], rtol=1e-10)
    return record[0]


def test_pca_rotation_nan_for_components_only(data):
    res = _fit(ssi.PCA(3, symmetry="rotation"), data)
    warning = _check_nan_exactly_at(res, ["pc0", "pc1", "pc2"])
    message = str(warning.message)
    assert "pc0, pc1, pc2 are NaN" in message and "rotations O(3)" in message
    assert "res.invariant_tests()" in message
    assert warning.filename == __file__            # points at the user's line


def test_factor_model_nan_for_factors(data):
    res = _fit(ssi.FactorModel(2), data)
    _check_nan_exactly_at(res, ["f0", "f1"])


def test_mixture_permutations_nan_for_components():
    rng = np.random.default_rng(0)
    centres = np.array([[-4.0, 0.0], [0.5, 2.5], [4.5, -0.5]])
    X_pre = np.vstack([rng.normal(size=(150, 2)) + c for c in centres])
    X = np.vstack([rng.normal(size=(100, 2)) + c for c in centres])
    y = X[:, 0] + rng.normal(size=300)
    rep = ssi.GaussianMixture(3, random_state=0).fit(X_pre)
    res = ssi.OLS(y, np.ones((300, 1)), representation=rep, features=X).fit()
    names = list(rep.get_feature_names_out())
    assert res.model.exog_names[1:] == names
    out = _check_nan_exactly_at(res, names)
    assert "permutations" in str(out.message).lower()
    assert isinstance(res.pvalues, np.ndarray)             # array models stay arrays


def test_sign_flips_and_interactions_keep_every_number(data):
    """Under sign flips ``pc0 = 0`` and ``z:pc0 = 0`` are invariant: nothing is NaN."""
    res = _fit(ssi.PCA(2), data, "y ~ z * pc0 + pc1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", GaugeDependentWarning)
        out = _outputs(res)
        res.summary()
    for key, values in out.items():
        assert np.isfinite(values).all(), key


def test_one_warning_per_result_and_summary_explains_without_warning(data):
    rep = ssi.PCA(3, symmetry="rotation")
    res = _fit(rep, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GaugeDependentWarning)
        text = res.summary().as_text()
        frame = res.summary2().tables[1]
    assert text.count("--") >= 12 and "pc0*" in text
    assert (frame.loc[["pc0*", "pc1*", "pc2*"], ["z", "P>|z|", "[0.025", "0.975]"]]
            == "--").all().all()
    with pytest.warns(GaugeDependentWarning) as record:
        for _ in range(3):
            _outputs(res)
    assert len(record) == 1
    with pytest.warns(GaugeDependentWarning):      # another result warns again
        _fit(rep, data).pvalues


def test_pickled_result_keeps_nan(data):
    res = _fit(ssi.PCA(3, symmetry="rotation"), data)
    with pytest.warns(GaugeDependentWarning):
        before = np.asarray(res.pvalues)
    again = pickle.loads(pickle.dumps(res))
    with warnings.catch_warnings():
        warnings.simplefilter("error", GaugeDependentWarning)   # it has warned already
        np.testing.assert_array_equal(np.asarray(again.pvalues), before)


def test_bootstrap_percentile_intervals_nan(data):
    res = _fit(ssi.PCA(2, symmetry="rotation"), data, cov_type="bootstrap",
               cov_kwds={"reps": 20, "seed": 0})
    with pytest.warns(GaugeDependentWarning):
        ci = np.asarray(res.conf_int(method="percentile"))
    assert np.isnan(ci[3:]).all() and np.isfinite(ci[:3]).all()
    q = np.quantile(res.bootstrap_params[:, :3], [0.025, 0.975], axis=0).T
    np.testing.assert_allclose(ci[:3], q, rtol=1e-12)
