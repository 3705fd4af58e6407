"""ssl_inference.testing.check_representation (issue 14): every built-in first stage passes
it, and deliberately broken first stages are caught with a message that says what is
wrong.

The checks compare each first stage with independent computations (refits on X_pre with
one unit duplicated or removed, central differences of the features, the group action),
so a pass here is the same evidence for every first stage, built-in or user-defined.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import ssl_inference as ssi
from ssl_inference.exceptions import RepresentationCheckError
from ssl_inference.symmetry import Orthogonal, SignFlips
from ssl_inference.testing import ConformanceReport, check_representation

P = 5


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_t(6, size=(300, P)) * [3.0, 2.2, 1.5, 1.0, 0.6] + 0.5
    loadings = np.array([[1.0, 0.8, 0.6, 0.0, 0.4], [0.0, 0.3, -0.5, 1.0, 0.7]])
    F = rng.normal(size=(400, 2)) @ loadings + 0.6 * rng.standard_t(8, size=(400, P))
    A = rng.normal(size=(300, 4))
    c = np.array([0.9, 0.6, 0.2, 0.1])
    A_pos = c * A + np.sqrt(1 - c ** 2) * rng.normal(size=(300, 4))
    A_neg = rng.normal(size=(300, 4))
    M = np.vstack([rng.normal(size=(150, 2)) + [4, 0], rng.normal(size=(150, 2)) - [4, 0],
                   rng.normal(size=(100, 2)) + [0, 4]])
    return {"X": X, "F": F, "pairs": np.hstack([A, A_pos]),
            "triples": np.hstack([A, A_pos, A_neg]), "M": M,
            "Z": (X - X.mean(axis=0)) * [1.0, 1.0, 0.4, 0.3, 0.2]}


DATA = _data()


# ---------------------------------------------- user first stages (module level: pickle)
def _location_loss(X, t):
    return ((X - t) ** 2).sum(axis=1)


def _location_features(X, t):
    return X - t


def _reconstruction_loss(X, t):
    """||x - U U'x||^2 for centred x: minimised by the top-2 principal subspace."""
    U = t.reshape(P, 2)
    R = X - (X @ U) @ U.T
    return (R * R).sum(axis=1)


def _subspace_features(X, t):
    return X @ t.reshape(P, 2)


def _rotate(t, g):
    return (t.reshape(P, 2) @ np.asarray(g).T).ravel()


def _subspace_start():
    return ssi.PCA(2, symmetry="rotation").fit(DATA["Z"]).components_.T.ravel()


BUILT_IN = {
    "pca-sign": (lambda: ssi.PCA(2), "X", {"influence_is_horizontal"}),
    "pca-rotation": (lambda: ssi.PCA(2, symmetry="rotation"), "X", set()),
    "factor": (lambda: ssi.FactorModel(2), "F", set()),
    "ppca-bartlett": (lambda: ssi.FactorModel(2, noise="isotropic", scores="bartlett"),
                      "F", set()),
    "spectral-given": (lambda: ssi.SpectralContrastive(2, negatives="given"), "triples",
                       set()),
    "spectral-permutation": (lambda: ssi.SpectralContrastive(2, negatives="permutation"),
                             "pairs", {"influence_matches_refits"}),
    "mixture": (lambda: ssi.GaussianMixture(3, random_state=0), "M",
                {"influence_is_horizontal"}),
    "mixture-diag-full": (lambda: ssi.GaussianMixture(3, covariance_type="diag",
                                                      coding="full", random_state=0),
                          "M", {"influence_is_horizontal"}),
    "mixture-gated-sign": (lambda: ssi.GaussianMixture(
        3, covariance_type="spherical", features="gated", gated_rank=1, random_state=0),
        "M", {"influence_is_horizontal"}),
    "mixture-gated-rotation": (lambda: ssi.GaussianMixture(
        3, covariance_type="full", features="gated", gated_symmetry="rotation",
        random_state=0), "M", {"influence_is_horizontal"}),
    "m-estimator-location": (lambda: ssi.MEstimatorRepresentation(
        loss=_location_loss, transform=_location_features, params=np.zeros(P),
        optimize=True), "X", {"influence_is_horizontal"}),
    "m-estimator-subspace": (lambda: ssi.MEstimatorRepresentation(
        loss=_reconstruction_loss, transform=_subspace_features, params=_subspace_start(),
        symmetry=Orthogonal(2), act=_rotate, optimize=True), "Z", set()),
}


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_every_built_in_first_stage_passes(name):
    make, data, skipped = BUILT_IN[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ssi.IdentificationWarning)
        report = check_representation(make(), DATA[data])
    assert set(report.skipped) == skipped
    assert len(report.passed) == len(report.results) - len(skipped) >= 12
    # the numeric checks say how close they came
    results = {r.name: r for r in report.results}
    assert "allowed" in results["feature_vjp_matches_finite_differences"].message


# --------------------------------------------------------------- broken first stages
class WrongSignInfluence(ssi.FactorModel):
    """IF = +H^+ psi: influence and its stream both flipped (consistent, but wrong)."""

    def _contract_units(self, U, prepared):
        return -super()._contract_units(U, prepared)


class DoubledVJP(ssi.PCA):
    def feature_vjp(self, X, C, *, per_row=False):
        return 2.0 * super().feature_vjp(X, C, per_row=per_row)


class SignInvariantFeatures(ssi.PCA):
    """|U'(x - mu)|: invariant instead of equivariant under sign flips."""

    def _transform(self, X):
        return np.abs(super()._transform(X))


class ActForgetsTheInfluence(ssi.FactorModel):
    """act moves the loadings but leaves the linearisation where it was."""

    def act(self, g):
        moved = self.with_params(self.moved_params(g)[0])
        return moved


class VerticalInfluence(ssi.PCA):
    """Rotation mode with the within-subspace (vertical) influence terms kept."""

    def _gap_weights(self):
        lam, k = self.eigenvalues_, self.n_components
        w = np.zeros((k, lam.size))
        for l in range(k):
            j = np.array([j for j in range(lam.size) if j != l])
            w[l, j] = 1.0 / (lam[l] - lam[j])
        return w


class CachedFeatures(ssi.MEstimatorRepresentation):
    """Features read a copy of theta taken in fit, so with_params cannot move them."""

    def fit(self, X, y=None):
        super().fit(X)
        self._frozen = self.params_.copy()
        return self

    def _transform(self, X):
        return np.asarray(self.feature_map(X, self._frozen))


@pytest.mark.parametrize("make, data, check, message", [
    (lambda: WrongSignInfluence(2), "F", "influence_matches_refits",
     r"differs from the contamination derivative .* \(it has the wrong sign\)"),
    (lambda: DoubledVJP(2), "X", "feature_vjp_matches_finite_differences",
     "differs from central differences of the features"),
    (lambda: SignInvariantFeatures(2), "X", "act_moves_features_by_rho",
     r"must be equivariant, phi\(x; g.theta\) = rho\(g\) phi"),
    (lambda: ActForgetsTheInfluence(2), "F", "act_moves_influence_and_vjp",
     "act must move the influence"),
    (lambda: VerticalInfluence(2, symmetry="rotation"), "X", "influence_is_horizontal",
     r"has a component along the orbit of O\(2\)"),
    (lambda: CachedFeatures(loss=_location_loss, transform=_location_features,
                            params=np.zeros(P), optimize=True), "X",
     "feature_vjp_matches_finite_differences",
     "with_params.theta. leaves the features unchanged: override _set_params"),
    (lambda: ssi.MEstimatorRepresentation(
        loss=lambda X, t: ((X - t) ** 2).sum(axis=1), transform=_location_features,
        params=np.zeros(P), optimize=True), "X", "pickle_round_trip",
     "pickling failed .*Use module-level functions rather than lambdas"),
    (lambda: ssi.MEstimatorRepresentation(
        loss=_location_loss, transform=_location_features,
        params=DATA["X"].mean(axis=0)), "X", "influence_matches_refits",
     r"clone\(\).fit must refit on new rows"),
])
def test_broken_first_stages_are_caught(make, data, check, message):
    report = check_representation(make(), DATA[data], raise_on_failure=False)
    assert check in report.failed, str(report)
    failure = {r.name: r.message for r in report.results}[check]
    assert re.search(message, failure), failure


def test_failures_raise_one_error_that_lists_them():
    with pytest.raises(RepresentationCheckError) as info:
        check_representation(DoubledVJP(2), DATA["X"])
    text = str(info.value)
    assert text.startswith("DoubledVJP failed 1 of 13 conformance checks:")
    assert "* feature_vjp_matches_finite_differences: the Jacobian-vector product" in text
    assert isinstance(info.value, AssertionError)
    assert isinstance(info.value.report, ConformanceReport)
    assert info.value.report.failed == ["feature_vjp_matches_finite_differences"]


def test_report_skip_and_bad_arguments():
    report = check_representation(ssi.PCA(2), DATA["X"],
                                  skip=["influence_matches_refits", "pickle_round_trip"])
    assert {"influence_matches_refits", "pickle_round_trip"} <= set(report.skipped)
    text = str(report)
    assert text.startswith("Conformance of PCA: 11 passed, 0 failed, 3 skipped")
    assert "[skipped] pickle_round_trip: skipped by the caller" in text
    with pytest.raises(ValueError, match="Unknown check names in skip: .'no_such_check'."):
        check_representation(ssi.PCA(2), DATA["X"], skip=["no_such_check"])
    with pytest.raises(TypeError, match="takes an ssl_inference Representation.*"
                                        "sklearn.decomposition._pca.PCA"):
        check_representation(pytest.importorskip("sklearn.decomposition").PCA(2), DATA["X"])


def test_a_fit_that_fails_is_reported_and_the_rest_skipped():
    report = check_representation(ssi.PCA(7), DATA["X"], raise_on_failure=False)
    assert report.failed == ["fit_sets_the_protocol_attributes"]
    first = report.results[0].message
    assert first.startswith("clone().fit(X_pre) raised ValueError: n_components must be")
    assert all(r.message.startswith("not run: clone().fit(X_pre) failed")
               for r in report.results[1:])


def test_sign_flip_m_estimator_with_analytic_derivatives_passes():
    """A scale parameter identified up to sign (t -> -t), features t x."""
    X = np.random.default_rng(3).normal(size=(200, 1)) * 2.0 + 1.0
    rep = ssi.MEstimatorRepresentation(
        loss=_square_loss, estimating_function=_square_psi, transform=_scaled,
        params=[1.0], symmetry=SignFlips(1), act=_flip, optimize=True,
        alignment=np.ones((1, 1)))
    report = check_representation(rep, X)
    assert "act_moves_features_by_rho" in report.passed


def _square_loss(X, t):
    return (X[:, 0] ** 2 - t[0] ** 2) ** 2


def _square_psi(X, t):
    return (-4.0 * t[0] * (X[:, 0] ** 2 - t[0] ** 2))[:, None]


def _scaled(X, t):
    return t[0] * X


def _flip(t, g):
    return np.asarray(t) * g
