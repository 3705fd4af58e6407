"""Independent oracle: Gaussian mixtures through the whole two-stage pipeline.

delicatessen solves ONE stacked system, one column per unit (pre-training rows, then
labeled rows that are not pre-training rows; with overlap a labeled row that is also a
pre-training row is one unit carrying both sets of equations), differentiated EXACTLY
(``deriv_method="exact"``: delicatessen's forward-mode autodiff through every equation
below, no finite differences anywhere):

* **First stage**, on the pre-training units: the per-row score of the mixture
  log-likelihood, written analytically in the tests in a parametrisation that is NOT
  the package's: logits ``eta_k = log(pi_k / pi_0)``, the means, and the PRECISIONS
  (``Lambda_k`` upper triangle for "full", ``1 / sigma_kj^2`` for "diag",
  ``1 / sigma_k^2`` for "spherical"; the package uses log-Cholesky factors). With
  ``v = x - mu_k``, ``l_k = log pi_k + (1/2) log det Lambda_k - (d/2) log 2 pi -
  (1/2) v' Lambda_k v`` and the responsibilities ``tau_k = exp(l_k) / sum_j exp(l_j)``:
  ``d/d eta_j = tau_j - pi_j``; ``d/d mu_k = tau_k Lambda_k v``;
  ``d/d Lambda_k,aa = tau_k (Lambda_k^-1 - v v')_aa / 2``, ``d/d Lambda_k,ab =
  tau_k (Lambda_k^-1 - v v')_ab`` (a < b; diag/spherical: the diagonal / its trace).
  ``det`` and the inverse by cofactors (d <= 3). The covariance of the second-stage
  coefficients does not depend on how the first stage is parametrised (delta method
  through a diffeomorphism), so it must match the package's.
* **Basis of the gated coordinates** (``features="gated"``, ``r = 2 < d = 3``),
  equations that do not involve the data (replicated on every unit; zero meat):
  sign mode (``gated_symmetry="sign"``): eigen-equations ``M b_a - lambda_a b_a`` and
  ``b_a'b_a - 1`` of the centred means' scatter ``M(theta)`` (distinct eigenvalues, the
  oracle starts at the package's signs). Rotation mode: the Grassmann chart of
  ``tests/test_oracle_pca_rotation.py`` on ``M``: ``Y(A) = B0 + B0perp A``,
  ``(B0perp - B0 A')' M Y(A) = 0``, basis ``Y (I + A'A)^{-1/2}``; a horizontal section
  of the ``O(r)`` orbit, the gauge in which the package reports rotation mode, so the
  whole coefficient block must agree here too.
* **Features and second stage**, on the labeled units: the Helmert contrasts of the
  responsibilities (``H`` written here) and, gated, ``tau_k B'(x - mu_k)`` per
  component; OLS normal equations ``w (y - w'beta)`` or the Logit score
  ``w (y - expit(w'beta))``.

The group is finite and the gauge fixed (``S_K``, ``S_K x {+-1}^r``; rotation mode:
the horizontal section), so the WHOLE coefficient block is compared, plus the
invariant functionals that a user reads: the covariate and intercept variances
(included in the block), predictions at new raw points (delicatessen's
``delta_method``, exact derivative, on the oracle covariance: the new features move
with ``theta``) and every invariant Wald test the package lists
(``res.invariant_tests()``). The package runs with ``second_stage="HC0"``
(delicatessen's sandwich has no small-sample factor).

Measured (K = 3; responsibilities: d = 2, m = 240, n = 150; gated: d = 3, r = 2,
m = 300, n = 180; overlap: 50 shared rows). Coefficient block, max |diff| /
sqrt(V_ii V_jj): 3e-15 to 2e-14 in every case but gated-rotation-full, 4.6e-12 there
(the package's EM + Newton stops with a summed score of 1e-9; both covariances are
evaluated at the package's estimate, and off the exact root a sandwich depends on the
parametrisation by terms proportional to the score). Prediction SEs (4 new raw points):
relative 1e-15 to 4e-14 (1e-12 gated-rotation-full); invariant Wald tests (1 with
responsibilities, 6 gated sign mode, 4 rotation mode): relative 7e-16 to 7e-15 (2e-12).
The oracle's root finder stays within 2e-13 (7e-11) of the package's estimate. The
first-stage block, mapped to the package's parametrisation by a central-difference
Jacobian of the test-side map (its error dominates), matches ``(1/m^2) sum IF IF'`` to
3e-10 to 4e-9. The
first stage raises the largest coefficient variance by 24-73% (OLS) and 160% (Logit).
Power, checked by mutating the package (not committed): keeping the within-span basis
terms in rotation mode moves the coefficient block by 0.14-0.85 and the invariant Wald
tests by 2-3% (predictions, being invariant, do not move); dropping the basis path
of the VJP moves the block by 0.09-0.27 and the prediction SEs by 5-30%.
The tied case (equilateral triangle of means: sign mode warns that the coordinates
are unidentified) is covered because the chart needs only the gap at ``r``.
"""
from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

import ssl_inference as ssi
from ssl_inference.exceptions import IdentificationWarning
from ssl_inference.invariance import invariant_hypotheses

from .test_mixture import _quiet_fit, _theta_from_moments, _three_clusters
from .test_mixture_gated_symmetry import _clusters3
from .test_oracle_delicatessen import _max_rel
from .test_oracle_pca_rotation import _complement, _inv_sqrt_2x2

delicatessen = pytest.importorskip("delicatessen")
from delicatessen import MEstimator  # noqa: E402
from delicatessen.sandwich import compute_sandwich, delta_method  # noqa: E402

K = 3
N_OVERLAP = 50
LOG_2PI = float(np.log(2.0 * np.pi))


# --------------------------------------------------------------- small-matrix algebra
def _det(A):
    """Determinant of a small list-of-lists matrix by cofactor expansion."""
    if len(A) == 1:
        return A[0][0]
    total = 0.0
    for j in range(len(A)):
        minor = [row[:j] + row[j + 1:] for row in A[1:]]
        total = total + (-1) ** j * A[0][j] * _det(minor)
    return total


def _inverse(A):
    """Inverse of a small list-of-lists matrix by the adjugate; returns (inverse, det)."""
    d = len(A)
    det = _det(A)
    if d == 1:
        return [[1.0 / det]], det
    inv = [[None] * d for _ in range(d)]
    for a in range(d):
        for b in range(d):
            minor = [row[:b] + row[b + 1:] for i, row in enumerate(A) if i != a]
            inv[b][a] = (-1) ** (a + b) * _det(minor) / det
    return inv, det


def _helmert(K):
    """Orthonormal Helmert contrasts (K, K - 1): column j has j ones, then -j, then 0."""
    H = np.zeros((K, K - 1))
    for j in range(1, K):
        H[:j, j - 1] = 1.0
        H[j, j - 1] = -float(j)
        H[:, j - 1] /= np.sqrt(j * (j + 1.0))
    return H


# --------------------------------------------------------- first stage: the mixture
class MixtureOracle:
    """The test-side mixture in the (logits, means, precisions) parametrisation.

    Works on floats and on delicatessen's autodiff pairs alike (elementwise numpy
    operations, list-of-lists small matrices)."""

    def __init__(self, K, d, cov_type):
        self.K, self.d, self.cov_type = K, d, cov_type
        self.n_cov = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[cov_type]
        self.triu = list(zip(*np.triu_indices(d)))
        self.q = (K - 1) + K * d + K * self.n_cov

    def init(self, rep):
        """Oracle parameters at the package's estimate (from its moments only)."""
        w, mu = rep.weights_, rep.means_
        cov = rep.covariances_
        free = []
        for k in range(self.K):
            if self.cov_type == "full":
                prec = np.linalg.inv(cov[k])
                free.append([prec[a, b] for a, b in self.triu])
            else:
                free.append(1.0 / np.atleast_1d(cov[k]))
        return np.concatenate([np.log(w[1:] / w[0]), mu.ravel(), np.concatenate(free)])

    def unpack(self, first):
        K, d = self.K, self.d
        logits = [0.0] + list(first[:K - 1])
        means = np.asarray(first[K - 1:K - 1 + K * d]).reshape(K, d)
        free = np.asarray(first[K - 1 + K * d:]).reshape(K, self.n_cov)
        precisions = []
        for k in range(K):
            P = [[0.0] * d for _ in range(d)]
            if self.cov_type == "full":
                for t, (a, b) in enumerate(self.triu):
                    P[a][b] = P[b][a] = free[k, t]
            else:
                for a in range(d):
                    P[a][a] = free[k, a if self.cov_type == "diag" else 0]
            precisions.append(P)
        return logits, means, free, precisions

    def log_joint(self, first, X):
        """``l_k(x)`` (n, K) and the pieces of the score."""
        K, d = self.K, self.d
        logits, means, free, precisions = self.unpack(first)
        norm = np.log(sum(np.exp(e) for e in logits))
        cols, pieces = [], []
        for k in range(K):
            V = X - means[k]
            P = precisions[k]
            inv, det = _inverse(P)
            PV = [sum(P[a][b] * V[:, b] for b in range(d)) for a in range(d)]
            quad = sum(V[:, a] * PV[a] for a in range(d))
            cols.append(logits[k] - norm + 0.5 * np.log(det) - 0.5 * d * LOG_2PI - 0.5 * quad)
            pieces.append((V, PV, inv))
        return np.column_stack(cols), pieces, logits, norm

    def responsibilities(self, first, X):
        lj = self.log_joint(first, X)[0]
        e = np.exp(lj)
        return e / e.sum(axis=1)[:, None]

    def scores(self, first, X):
        """Per-row score rows (q lists of (n,) arrays)."""
        K, d = self.K, self.d
        lj, pieces, logits, norm = self.log_joint(first, X)
        e = np.exp(lj)
        tau = e / e.sum(axis=1)[:, None]
        rows = [tau[:, j] - np.exp(logits[j] - norm) for j in range(1, K)]
        for k in range(K):
            rows += [tau[:, k] * pieces[k][1][a] for a in range(d)]
        for k in range(K):
            V, _, inv = pieces[k]
            if self.cov_type == "full":
                for a, b in self.triu:
                    g = inv[a][b] - V[:, a] * V[:, b]
                    rows.append(tau[:, k] * (0.5 * g if a == b else g))
            elif self.cov_type == "diag":
                rows += [tau[:, k] * 0.5 * (inv[a][a] - V[:, a] ** 2) for a in range(d)]
            else:
                rows.append(tau[:, k] * 0.5 * (sum(inv[a][a] - V[:, a] ** 2
                                                   for a in range(d))))
        return rows, tau


# ------------------------------------------------------------ the gated basis B(theta)
class Basis:
    """Parameters and equations of the gated basis (none for responsibilities)."""

    def __init__(self, mix: MixtureOracle, mode: str | None, r: int = 2):
        self.mix, self.mode, self.r = mix, mode, r
        d = mix.d
        self.n = {None: 0, "sign": r * (d + 1), "rotation": (d - r) * r}[mode]

    def scatter(self, first):
        means = self.mix.unpack(first)[1]
        centred = means - means.sum(axis=0) / self.mix.K
        return centred.T @ centred / self.mix.K

    def init(self, rep, first):
        if self.mode is None:
            return np.zeros(0)
        B0 = rep.gated_basis_
        if self.mode == "rotation":
            self.B0, self.B0perp = B0, _complement(B0)
            return np.zeros(self.n)
        M = self.scatter(first)
        return np.concatenate([np.r_[B0[:, a], B0[:, a] @ M @ B0[:, a]]
                               for a in range(self.r)])

    def equations(self, first, par):
        """Equations (no data), and the basis (d, r)."""
        d, r = self.mix.d, self.r
        M = self.scatter(first)
        if self.mode == "sign":
            eqs, cols = [], []
            for a in range(r):
                b, lam = np.asarray(par[a * (d + 1):a * (d + 1) + d]), par[a * (d + 1) + d]
                eqs += list(M @ b - lam * b) + [b @ b - 1.0]
                cols.append(b)
            return eqs, np.column_stack(cols)
        A = np.asarray(par).reshape(d - r, r)
        Y = self.B0 + self.B0perp @ A
        Yperp = self.B0perp - self.B0 @ A.T
        eqs = list((Yperp.T @ M @ Y).ravel())
        return eqs, Y @ np.array(_inv_sqrt_2x2(np.eye(r) + A.T @ A))


def _features(mix, first, B, X):
    """Contrast-coded features: gated coordinate blocks (if B) then ``H' tau``."""
    tau = mix.responsibilities(first, X)
    feats = []
    if B is not None:
        means = mix.unpack(first)[1]
        for k in range(mix.K):
            coords = (X - means[k]) @ B
            feats += [tau[:, k] * coords[:, a] for a in range(B.shape[1])]
    H = _helmert(mix.K)
    feats += [tau @ H[:, j] for j in range(mix.K - 1)]
    return np.column_stack(feats)


# ---------------------------------------------------------------- stacked system
class Stacked:
    """``theta = [first stage (q), basis (nb), beta (p)]`` on the units of both samples."""

    def __init__(self, rep, X_pre, X_lab, exog, y, pretrain_index, model, mode):
        d = X_pre.shape[1]
        self.mix = MixtureOracle(rep.n_components, d, rep.covariance_type)
        self.basis = Basis(self.mix, mode)
        self.m, n = X_pre.shape[0], X_lab.shape[0]
        pidx = np.full(n, -1) if pretrain_index is None else np.asarray(pretrain_index)
        lab_only = np.flatnonzero(pidx < 0)
        self.n_units = self.m + lab_only.size
        self.unit_of_lab = np.where(pidx >= 0, pidx, 0)
        self.unit_of_lab[lab_only] = self.m + np.arange(lab_only.size)
        self.X_pre, self.X_lab, self.exog, self.y = X_pre, X_lab, exog, y
        self.model = model

    def _split(self, theta):
        q, nb = self.mix.q, self.basis.n
        return theta[:q], theta[q:q + nb], theta[q + nb:]

    def basis_at(self, theta):
        first, par, _ = self._split(theta)
        if self.basis.mode is None:
            return [], None
        return self.basis.equations(first, par)

    def design(self, theta, exog, X):
        first, _, _ = self._split(theta)
        return np.hstack([exog, _features(self.mix, first, self.basis_at(theta)[1], X)])

    def psi(self, theta):
        theta = np.asarray(theta)
        first, _, beta = self._split(theta)
        pad = np.zeros(self.n_units - self.m)
        score_rows, _ = self.mix.scores(first, self.X_pre)
        rows = [np.concatenate([s, pad]) for s in score_rows]
        ones = np.ones(self.n_units)
        rows += [e * ones for e in self.basis_at(theta)[0]]
        W = self.design(theta, self.exog, self.X_lab)
        eta = W @ beta
        resid = self.y - (eta if self.model == "ols" else 1.0 / (1.0 + np.exp(-eta)))
        for c in range(W.shape[1]):
            vals = W[:, c] * resid
            row = np.zeros(self.n_units, dtype=vals.dtype)
            row[self.unit_of_lab] = vals
            rows.append(row)
        return np.vstack(rows)

    def estimate(self, rep, params):
        """The oracle's root (started at the package's estimate) and its empirical
        sandwich AT the package's estimate (so that the comparison of the covariances
        does not mix in the root finder's tolerance)."""
        first = self.mix.init(rep)
        init = np.concatenate([first, self.basis.init(rep, first), np.asarray(params)])
        est = MEstimator(self.psi, init=init)
        est.estimate(deriv_method="exact")
        V = compute_sandwich(self.psi, init, deriv_method="exact") / self.n_units
        return est.theta, init, V


# ------------------------------------------------------------------------- problems
def _responsibility_data(rng, m, n):
    """Three overlapping 2-D clusters (one skewed); y not linear in the features."""
    X_pre = _three_clusters(rng, (m // 3, m // 3, m - 2 * (m // 3)), scale=0.5)
    X_lab = _three_clusters(rng, (n // 3, n // 3, n - 2 * (n // 3)), scale=0.5)
    X_lab = X_lab[rng.permutation(n)]
    z = 0.6 * X_lab[:, 0] + rng.normal(size=n)
    signal = 1.0 + 0.5 * z + 1.2 * np.tanh(X_lab[:, 1] - 1.0) + 0.3 * X_lab[:, 0]
    return X_pre, X_lab, z, signal


def _gated_data(rng, m, n):
    """Three 3-D clusters (one skewed): r = 2 < d = 3, so the basis is estimated."""
    X_pre = _clusters3(rng, (m // 3, m // 3, m - 2 * (m // 3)), scale=0.6)
    X_lab = _clusters3(rng, (n // 3, n // 3, n - 2 * (n // 3)), scale=0.6)
    X_lab = X_lab[rng.permutation(n)]
    z = 0.5 * X_lab[:, 0] - 0.3 * X_lab[:, 2] + rng.normal(size=n)
    signal = 1.0 + 0.5 * z + 0.8 * np.tanh(X_lab[:, 1]) + 0.4 * X_lab[:, 0]
    return X_pre, X_lab, z, signal


# equilateral triangle of means in a tilted plane of R^3: the scatter M of the centred
# means has two (nearly, in a sample) tied top eigenvalues, so only the span is identified
_TILT = np.linalg.qr(np.array([[1.0, 0.3, 0.2], [0.2, 1.0, -0.4], [0.1, 0.5, 1.0]]))[0]
TRIANGLE = 2.5 * np.array([[1.0, 0.0, 0.0], [-0.5, np.sqrt(0.75), 0.0],
                           [-0.5, -np.sqrt(0.75), 0.0]]) @ _TILT.T


def _tied_data(rng, m, n):
    """Three spherical-ish 3-D clusters (one skewed) on an equilateral triangle."""
    def draw(size):
        lab = np.arange(size) % 3
        noise = np.where(lab[:, None] == 2, rng.exponential(size=(size, 3)) - 1.0,
                         rng.normal(size=(size, 3)))
        return TRIANGLE[lab] + noise

    X_pre, X_lab = draw(m), draw(n)
    X_lab = X_lab[rng.permutation(n)]
    z = 0.5 * X_lab[:, 0] + rng.normal(size=n)
    signal = 1.0 + 0.5 * z + 0.8 * np.tanh(X_lab[:, 1]) + 0.4 * X_lab[:, 2]
    return X_pre, X_lab, z, signal


# name: (features, gated_symmetry, covariance_type, second stage, overlap)
CASES = {
    "resp-diag": ("responsibilities", None, "diag", "ols", False),
    "resp-spherical-overlap": ("responsibilities", None, "spherical", "ols", True),
    "resp-full": ("responsibilities", None, "full", "ols", False),
    "gated-sign-spherical": ("gated", "sign", "spherical", "ols", False),
    "gated-sign-diag-overlap": ("gated", "sign", "diag", "ols", True),
    "gated-rotation-full": ("gated", "rotation", "full", "ols", False),
    "gated-rotation-spherical-overlap": ("gated", "rotation", "spherical", "ols", True),
    "gated-rotation-diag-logit": ("gated", "rotation", "diag", "logit", False),
    "gated-rotation-tied": ("gated", "rotation", "spherical", "ols", False),
}
DATA = {"resp": _responsibility_data, "gated": _gated_data}
SEED = 7


def _draw(name):
    """``X_pre, X_lab, z, signal`` of a case (m = 240, n = 150 for responsibilities,
    m = 300, n = 180 for gated features), and the generator for the rest."""
    rng = np.random.default_rng(SEED)
    m, n = (240, 150) if CASES[name][0] == "responsibilities" else (300, 180)
    data = _tied_data if name.endswith("tied") else DATA[name.split("-")[0]]
    return data(rng, m, n), rng


def _setup(name):
    """Package fit (second stage HC0) and the oracle's stacked system of one case."""
    features, mode, cov_type, model, overlap = CASES[name]
    (X_pre, X_lab, z, signal), rng = _draw(name)
    m, n = len(X_pre), len(X_lab)
    pretrain_index = None
    if overlap:
        pretrain_index = np.full(n, -1)
        pretrain_index[:N_OVERLAP] = rng.choice(m, size=N_OVERLAP, replace=False)
        X_lab[:N_OVERLAP] = X_pre[pretrain_index[:N_OVERLAP]]
        z[:N_OVERLAP] = 0.6 * X_lab[:N_OVERLAP, 0] + rng.normal(size=N_OVERLAP)
    if model == "ols":
        y = signal + (1.0 + 0.3 * np.abs(z)) * rng.normal(size=n)
    else:
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(signal - 1.5)))).astype(float)
    kwargs = {"gated_symmetry": mode} if mode else {}
    rep = _quiet_fit(ssi.GaussianMixture(K, covariance_type=cov_type, features=features,
                                         random_state=0, **kwargs), X_pre)
    exog = sm.add_constant(z)
    Model = ssi.OLS if model == "ols" else ssi.Logit
    fit_kwargs = {"cov_kwds": {"second_stage": "HC0"}}
    if model == "logit":
        fit_kwargs["disp"] = 0
    res = Model(y, exog, representation=rep, features=X_lab,
                pretrain_index=pretrain_index).fit(**fit_kwargs)
    stacked = Stacked(rep, X_pre, X_lab, exog, y, pretrain_index, model, mode)
    return rep, res, stacked


def _new_points(d):
    rng = np.random.default_rng(99)
    X_new = rng.normal(size=(4, d)) * 1.5
    exog_new = sm.add_constant(np.array([0.5, -1.0, 2.0, 0.0]), has_constant="add")
    return exog_new, X_new


def _to_package(mix, first):
    """Oracle first-stage parameters -> the package's documented parametrisation
    (``tests.test_mixture._theta_from_moments``)."""
    logits, means, _, precisions = mix.unpack(first)
    weights = np.exp(np.asarray(logits, dtype=float))
    covs = np.array([np.linalg.inv(np.array(P, dtype=float)) for P in precisions])
    return _theta_from_moments(weights / weights.sum(), means.astype(float), covs,
                               mix.cov_type)


def _jacobian_to_package(mix, first, h=1e-6):
    """``d theta_package / d theta_oracle`` by central differences (q x q)."""
    return np.column_stack([(_to_package(mix, first + h * e) - _to_package(mix, first - h * e))
                            / (2 * h) for e in np.eye(first.size)])


def _compare(name):
    """All measured differences of one case (also used to write the docstring)."""
    rep, res, stacked = _setup(name)
    root, init, V = stacked.estimate(rep, res.params)
    p = len(np.asarray(res.params))
    V_pkg = np.asarray(res.cov_params())
    V_beta = V[-p:, -p:]
    out = {"root": float(np.max(np.abs(root - init) / np.maximum(np.abs(init), 1.0))),
           "beta": _max_rel(V_beta, V_pkg)}
    # predictions at new raw points (linear predictor for the Logit)
    exog_new, X_new = _new_points(stacked.X_pre.shape[1])
    pred = res.get_prediction(exog_new, features=X_new,
                              **({} if stacked.model == "ols" else {"which": "linear"}))
    mean = pred.predicted_mean if stacked.model == "ols" else pred.predicted
    se = pred.se_mean if stacked.model == "ols" else pred.se

    def g(theta):
        return stacked.design(np.asarray(theta), exog_new, X_new) @ np.asarray(theta)[-p:]

    out["pred_mean"] = float(np.max(np.abs(g(init) - mean) / np.abs(mean)))
    V_pred = delta_method(init, g, V, deriv_method="exact")
    out["pred_se"] = float(np.max(np.abs(np.sqrt(np.diag(V_pred)) / se - 1)))
    # every invariant Wald test the package lists
    table = res.invariant_tests()
    b = np.asarray(res.params)
    worst = 0.0
    for (label, R), (_, row) in zip(invariant_hypotheses(res.model), table.iterrows()):
        stat = (R @ b) @ np.linalg.solve(R @ V_beta @ R.T, R @ b)
        if row["distribution"] == "F":
            stat /= R.shape[0]
        worst = max(worst, abs(row["statistic"] / stat - 1))
    out["wald"] = worst
    out["n_tests"] = len(table)
    ratio = np.diag(V_pkg) / np.diag(np.asarray(res.cov_params_naive()))
    out["first_stage"] = float(np.max(ratio) - 1)
    # first-stage block, mapped to the package's parametrisation: J V J' = (1/m^2) IF'IF
    q = stacked.mix.q
    J = _jacobian_to_package(stacked.mix, init[:q])
    IF = rep.influence(stacked.X_pre)
    out["first_block"] = _max_rel(J @ V[:q, :q] @ J.T, IF.T @ IF / stacked.m ** 2)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_pipeline_matches_stacked_oracle(name):
    got = _compare(name)
    # the oracle's root is the package's estimate (score, basis and normal equations)
    assert got["root"] < 1e-7
    assert got["beta"] < 1e-9
    assert got["pred_mean"] < 1e-10
    assert got["pred_se"] < 1e-9
    assert got["n_tests"] >= 1 and got["wald"] < 1e-9
    # the first-stage influence itself (through a finite-difference reparametrisation)
    assert got["first_block"] < 1e-7
    # not vacuous: the first stage is a visible part of some coefficient's variance
    assert got["first_stage"] > 0.02


def test_tied_case_is_what_sign_mode_cannot_identify():
    """In the tied case (fitted warning-free in rotation mode above) the individual
    gated coordinates are not identified: sign mode warns."""
    X_pre = _draw("gated-rotation-tied")[0][0]
    with pytest.warns(IdentificationWarning, match="nearly tied.*inside the top-r"):
        ssi.GaussianMixture(K, covariance_type="spherical", features="gated",
                            random_state=0).fit(X_pre)
