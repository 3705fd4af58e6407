"""What a newcomer reads: error messages that fit the situation, and a tidy summary2."""
from __future__ import annotations

import re

import numpy as np
import pytest

import ssl_inference as ssi

SCALES = np.array([3.0, 2.0, 1.0, 0.5])


def test_nan_in_x_pre_advice_fits_a_first_stage():
    X = np.random.default_rng(0).normal(size=(50, 4))
    X[3, 1] = np.nan
    with pytest.raises(ValueError) as info:
        ssi.PCA(2).fit(X)
    message = str(info.value)
    assert "X_pre contains NaN or infinite values in 1 row(s) (first: [3])" in message
    assert "no missing='drop'" in message and "np.isfinite(X_pre)" in message


def test_nan_in_labeled_features_suggests_missing_drop():
    rng = np.random.default_rng(0)
    rep = ssi.PCA(2).fit(rng.normal(size=(50, 4)) * SCALES)
    X = rng.normal(size=(20, 4))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="pass missing='drop' to the model"):
        ssi.OLS(np.ones(20), np.ones((20, 1)), representation=rep, features=X)


@pytest.mark.parametrize("k, extra", [(0, False), (4, True)])
def test_n_components_message_mentions_k_equal_p_only_then(k, extra):
    X = np.random.default_rng(0).normal(size=(50, 4))
    with pytest.raises(ValueError) as info:
        ssi.PCA(k).fit(X)
    assert f"1 <= n_components < p = 4 (the number of raw features); got {k}." in str(info.value)
    assert ("rotation of the raw data" in str(info.value)) is extra


def test_foreign_estimator_is_named_with_its_module():
    sklearn = pytest.importorskip("sklearn.decomposition")
    est = sklearn.PCA(2).fit(np.random.default_rng(0).normal(size=(50, 4)))
    with pytest.raises(TypeError, match=r"got sklearn\.decomposition\._pca\.PCA\. Estimators"
                                        r".*Wrap a fitted scikit-learn estimator with "
                                        r"ssi\.from_sklearn\(estimator, X_pre\)"):
        ssi.OLS(np.ones(5), np.ones((5, 1)), representation=est, features=np.ones((5, 4)))
    from statsmodels.multivariate.pca import PCA
    with pytest.raises(TypeError, match=r"got statsmodels\.multivariate\.pca\.PCA\..*"
                                        r"ssi\.from_statsmodels\(model, X_pre\)"):
        ssi.OLS(np.ones(5), np.ones((5, 1)), features=np.ones((5, 4)),
                representation=PCA(np.random.default_rng(0).normal(size=(50, 4)), ncomp=2))


def test_summary2_rules_share_one_width_and_notes_are_numbered():
    rng = np.random.default_rng(0)
    rep = ssi.PCA(2).fit(rng.normal(size=(50, 4)) * SCALES)
    X = rng.normal(size=(60, 4))
    res = ssi.OLS(X[:, 0] + rng.normal(size=60), np.ones((60, 1)), representation=rep,
                  features=X).fit()
    text = str(res.summary2())
    rules = {len(line) for line in text.splitlines() if line and set(line) <= {"=", "-"}}
    assert len(rules) == 1
    notes = text[text.index("Notes:"):]
    numbers = [int(n) for n in re.findall(r"^\[(\d+)\]", notes, flags=re.M)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 2
    assert "First-stage gauge (PCA)" in notes
