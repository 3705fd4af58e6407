"""Every first stage works with every second stage: fit, prediction, invariant tests,
aligned bootstrap (issue 4, part 4; issue 5)."""
from __future__ import annotations

import warnings
import zlib

import numpy as np
import pandas as pd
import pytest

import ssl_inference as ssi
import ssl_inference.formula.api as smf
from ssl_inference.exceptions import IdentificationWarning
from ssl_inference.invariance import invariant_hypotheses

D = 4
SCALES = np.array([2.0, 1.5, 0.7, 0.4])


def _first_stages(rng):
    X = rng.normal(size=(600, D)) * SCALES
    keep = np.array([0.9, 0.6, 0.25, 0.1])          # distinct generalised eigenvalues
    X_pos = keep * X + np.sqrt(1 - keep ** 2) * rng.normal(size=X.shape) * SCALES
    centers = np.array([[-2.5, 0, 0, 0], [2.5, 0, 0, 0], [0, 2.5, 0, 0.0]])
    X_mix = centers[rng.integers(0, 3, size=600)] + rng.normal(size=(600, D)) * 0.6
    return {
        "pca-sign": (ssi.PCA(2), X, None),
        "pca-rotation": (ssi.PCA(2, symmetry="rotation"), X, None),
        "factor": (ssi.FactorModel(2, noise="isotropic"), X, None),
        "spectral": (ssi.SpectralContrastive(2), X, X_pos),
        "mixture": (ssi.GaussianMixture(3, covariance_type="spherical", n_init=2,
                                        random_state=0), X_mix, None),
        # a user-defined first stage: location by least squares, features = centred x0, x1
        "mestimator": (ssi.MEstimatorRepresentation(
            loss=lambda X, t: ((X - t) ** 2).sum(axis=1),
            transform=lambda X, t: (X - t)[:, :2], params=X.mean(axis=0), optimize=True),
            X, None),
    }


SECOND_STAGES = {
    "ols": (smf.ols, {}),
    "wls": (smf.wls, {"weights": np.linspace(0.5, 1.5, 300)}),
    "logit": (smf.logit, {}),
    "poisson": (smf.poisson, {}),
    "glm-gamma": (smf.glm, {"family": __import__("statsmodels.api").api.families.Gamma(
        __import__("statsmodels.api").api.families.links.Log())}),
}


def _labeled(rng, rep_name, X_source):
    idx = rng.integers(0, len(X_source), size=300)
    X = X_source[idx] + 0.05 * rng.normal(size=(300, D))
    z = rng.normal(size=300)
    eta = 0.3 + 0.4 * z + 0.3 * X[:, 0] - 0.2 * X[:, 1]
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(D)])
    df["z"] = z
    df["y_ols"] = eta + rng.normal(size=300) * 0.5
    df["y_logit"] = (rng.uniform(size=300) < 1 / (1 + np.exp(-eta))).astype(float)
    df["y_poisson"] = rng.poisson(np.exp(eta))
    df["y_glm-gamma"] = rng.gamma(4.0, np.exp(eta) / 4.0)
    df["y_wls"] = df["y_ols"]
    return df


@pytest.mark.parametrize("second", list(SECOND_STAGES))
@pytest.mark.parametrize("first", ["pca-sign", "pca-rotation", "factor", "spectral",
                                   "mixture", "mestimator"])
def test_pipeline(first, second):
    rng = np.random.default_rng(zlib.crc32(f"{first}/{second}".encode()))
    rep, X_pre, X_pos = _first_stages(rng)[first]
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentificationWarning)
        rep.fit(X_pre) if X_pos is None else rep.fit(X_pre, X_pos)
    df = _labeled(rng, first, X_pre)
    factory, extra = SECOND_STAGES[second]
    cols = [f"x{i}" for i in range(D)]
    model = factory(f"Q('y_{second}') ~ z", df, representation=rep, features=cols, **extra)
    fit_kw = {"disp": 0} if second in ("logit", "poisson") else {}
    res = model.fit(**fit_kw)
    assert res.cov_type == "two-stage"
    decomposition = res.variance_decomposition()
    assert (decomposition["pretraining"] >= -1e-15).all()
    assert decomposition["pretraining"].max() > 0
    # two-stage variance = statsmodels' second-stage variance + first-stage term, the
    # latter from the per-row influence IF(x_i) directly (not the streamed contraction),
    # with the small-sample factor m / (m - 1) of a corrected (here nonrobust) second stage
    units = rep.pretrain_units()          # rows of X_pre; [x, x+, x-] for the spectral
    m = rep.nobs_
    B = rep.influence(units) @ res.first_stage_jacobian.T / m
    np.testing.assert_allclose(res.bse ** 2, res.bse_naive ** 2 + m / (m - 1) * (B ** 2).sum(0),
                               rtol=1e-8)
    # every invariant test is the Wald statistic of its hypothesis with the two-stage V
    V, b = np.asarray(res.cov_params()), np.asarray(res.params)
    hypotheses = invariant_hypotheses(res.model)
    assert len(hypotheses) >= 1
    for (label, R), row in zip(hypotheses, res.invariant_tests().itertuples()):
        Rb = R @ b
        wald = Rb @ np.linalg.solve(R @ V @ R.T, Rb) / (len(R) if row.distribution == "F" else 1)
        assert row.statistic == pytest.approx(wald, rel=1e-8), label
    boot = model.fit(cov_type="bootstrap", cov_kwds={"reps": 40, "seed": 0}, **fit_kw)
    ratio = boot.bse["z"] / res.bse["z"]
    assert 0.5 < ratio < 2.0, ratio
    # prediction SEs (five rows passed as new data): analytic vs the aligned bootstrap
    # (40 replicates: ~11% relative error)
    se, se_boot = (_prediction_se(r.get_prediction(df.iloc[:5])) for r in (res, boot))
    assert np.all(se > 0) and np.all((0.5 < se_boot / se) & (se_boot / se < 2.0)), (
        se_boot / se)
    assert "First stage:" in str(res.summary())


def _prediction_se(pred) -> np.ndarray:
    """SE of the predicted mean (linear models: ``se_mean``; GLM and discrete: ``se``)."""
    return np.asarray(pred.se_mean if hasattr(pred, "se_mean") else pred.se)
