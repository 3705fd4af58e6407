"""Independent checks of the PCA first-stage influence and of the two-stage covariance.

Oracles used here (none of them calls the package's covariance code):

* (a) the contamination derivative of a hand-written weighted PCA
  (``d theta(F_m + eps (delta_x - F_m)) / d eps`` at 0, central difference);
* (b) Anderson's (1963) Gaussian eigenvector covariance, with a Monte Carlo tolerance
  estimated from the same data;
* (c) the plain product ``influence(X_pre) @ K.T``;
* (d) the symmetry: results invariant under O(k) must not depend on the mode;
* (e) a brute-force sum over units / clusters of per-row influences
  ``a_j = (W'W)^-1 w_j e_j`` (WLS: ``(W'Omega W)^-1 w_j wt_j e_j``) and
  ``b_i = J IF(x_i) / m``, plus statsmodels itself; and J against refitting OLS.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import ssl_inference as ssi

# every problem here has clearly distinct eigenvalues; a near-tie would be a test bug
pytestmark = pytest.mark.filterwarnings("error::ssl_inference.IdentificationWarning")


def _skewed_data(rng, size, p, scales, Q, shift=None):
    """Centred-exponential (skewed, non-Gaussian) x with covariance Q diag(scales^2) Q'."""
    X = ((rng.exponential(size=(size, p)) - 1.0) * scales) @ Q.T
    return X if shift is None else X + shift


def _weighted_pca(X, w, k):
    """Hand-written weighted PCA: mean and top-k eigenvectors (rows) of the weighted cov."""
    w = w / w.sum()
    mu = w @ X
    V = X - mu
    C = (V * w[:, None]).T @ V
    evals, evecs = np.linalg.eigh(C)
    return mu, evecs[:, ::-1][:, :k].T


# --------------------------------------------------------------------------- (a)
@pytest.mark.parametrize("symmetry", ["sign", "rotation"])
def test_influence_is_contamination_derivative(symmetry):
    rng = np.random.default_rng(101)
    p, k, m = 5, 2, 400
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    scales = np.array([3.0, 2.0, 1.3, 0.8, 0.5])
    X = _skewed_data(rng, m, p, scales, Q, shift=np.arange(p, dtype=float))
    rep = ssi.PCA(k, symmetry=symmetry).fit(X)
    U = rep.components_
    # points: three pre-training rows, two new rows, one far outlier
    points = np.vstack([X[[0, 17, 250]], _skewed_data(rng, 2, p, scales, Q),
                        rep.mean_ + 8.0 * scales[0] * Q[:, 0] + 3.0 * Q[:, 3]])
    IF = rep.influence(points)
    # central difference: truncation O(eps^2 |IF|^3) (~1e-7 for the outlier at eps=1e-6),
    # rounding O(1e-16 / eps) (~5e-10)
    eps = 1e-6
    for x0, if_row in zip(points, IF):
        Xa = np.vstack([X, x0])
        thetas = []
        for e in (eps, -eps):
            w = np.append(np.full(m, (1.0 - e) / m), e)
            mu, comps = _weighted_pca(Xa, w, k)
            comps *= np.sign(np.sum(comps * U, axis=1))[:, None]  # our gauge
            thetas.append(np.concatenate([mu, comps.ravel()]))
        fd = (thetas[0] - thetas[1]) / (2 * eps)
        if symmetry == "rotation":  # keep the horizontal (out-of-subspace) part
            proj = np.eye(p) - U.T @ U
            fd = np.concatenate([fd[:p]] + [proj @ fd[p + l * p:p + (l + 1) * p]
                                            for l in range(k)])
        np.testing.assert_allclose(if_row, fd, rtol=0, atol=1e-6 * np.abs(fd).max())
    if symmetry == "rotation":  # the within-subspace part is not zero in sign mode
        IF_sign = ssi.PCA(k, symmetry="sign").fit(X).influence(points)
        assert np.abs(IF_sign - IF).max() > 1e-2 * np.abs(IF_sign).max()


# --------------------------------------------------------------------------- (b)
def test_anderson_1963_gaussian_eigenvector_covariance():
    rng = np.random.default_rng(2024)
    p, k, m = 4, 2, 200_000
    lam = np.array([4.0, 2.0, 1.0, 0.5])
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    X = (rng.normal(size=(m, p)) * np.sqrt(lam)) @ Q.T + np.array([1.0, -2.0, 0.0, 3.0])
    rep = ssi.PCA(k, symmetry="sign").fit(X)
    IF = rep.influence(X)
    lam_hat, E = rep.eigenvalues_, rep.eigenvectors_

    # mean block: (1/m) sum IF_mu IF_mu' is the (1/m) sample covariance exactly
    S = np.cov(X.T, bias=True)
    np.testing.assert_allclose(IF[:, :p].T @ IF[:, :p] / m, S, rtol=1e-10, atol=1e-12)

    for l in range(k):
        F = IF[:, p + l * p:p + (l + 1) * p]
        emp = F.T @ F / m
        anderson = sum(lam_hat[l] * lam_hat[j] / (lam_hat[l] - lam_hat[j]) ** 2
                       * np.outer(E[:, j], E[:, j]) for j in range(p) if j != l)
        # Monte Carlo tolerance: each entry of ``emp`` is a mean of m iid products
        # F_a F_b, whose standard error se_ab = sd(F_a F_b) / sqrt(m) we estimate from
        # the same rows (relative size ~ sqrt(8/m) = 0.6% on the diagonal, since
        # E[s_j^2 s_l^2] has sd sqrt(8) lambda_j lambda_l under Gaussian scores).
        # Plugging in the sample eigenpairs makes the only discrepancy the sampling
        # error of the empirical fourth moments, so |emp - anderson| <= 5 se_ab
        # (32 entries: family-wise false-alarm probability < 2e-5).
        se = np.sqrt(((F[:, :, None] * F[:, None, :]) ** 2).mean(0) - emp ** 2) / np.sqrt(m)
        assert np.all(np.abs(emp - anderson) <= 5 * se + 1e-12 * np.abs(anderson).max())
        # the tolerance is tight enough to tell Anderson from a wrong gap power
        wrong = sum(lam_hat[l] * lam_hat[j] / abs(lam_hat[l] - lam_hat[j])
                    * np.outer(E[:, j], E[:, j]) for j in range(p) if j != l)
        assert np.any(np.abs(emp - wrong) > 5 * se)
        # and against the population truth (plug-in error O(m^-1/2) as well): 3%
        true = sum(lam[l] * lam[j] / (lam[l] - lam[j]) ** 2 * np.outer(Q[:, j], Q[:, j])
                   for j in range(p) if j != l)
        assert np.abs(emp - true).max() < 0.03 * np.abs(true).max()


def test_sandwich_tracks_fourth_moments_elliptical_x():
    """The first-stage term is a sandwich, not Anderson's Gaussian formula.

    For elliptical x = r g (g Gaussian, r independent with E r^2 = 1) the scores satisfy
    E[s_j^2 s_l^2] = E[r^4] lambda_j lambda_l, so the eigenvector covariance is
    E[r^4] times Anderson's. With r^2 in {0.5, 1.5} (prob. 1/2 each), E[r^4] = 1.25.
    """
    rng = np.random.default_rng(77)
    p, k, m = 4, 2, 200_000
    lam = np.array([4.0, 2.0, 1.0, 0.5])
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    r = np.sqrt(rng.choice([0.5, 1.5], size=m))
    X = (r[:, None] * rng.normal(size=(m, p)) * np.sqrt(lam)) @ Q.T
    rep = ssi.PCA(k, symmetry="sign").fit(X)
    IF = rep.influence(X)
    lam_hat, E = rep.eigenvalues_, rep.eigenvectors_
    for l in range(k):
        F = IF[:, p + l * p:p + (l + 1) * p]
        emp = F.T @ F / m
        anderson = sum(lam_hat[l] * lam_hat[j] / (lam_hat[l] - lam_hat[j]) ** 2
                       * np.outer(E[:, j], E[:, j]) for j in range(p) if j != l)
        # same Monte Carlo tolerance as in the Gaussian test (5 estimated SEs)
        se = np.sqrt(((F[:, :, None] * F[:, None, :]) ** 2).mean(0) - emp ** 2) / np.sqrt(m)
        assert np.all(np.abs(emp - 1.25 * anderson) <= 5 * se)
        assert np.any(np.abs(emp - anderson) > 5 * se)


# --------------------------------------------------------------------------- (c)
@pytest.mark.parametrize("symmetry", ["sign", "rotation"])
@pytest.mark.parametrize("chunk_rows", [1, 37, 1000, 8192])
def test_influence_contract_equals_dense_product(symmetry, chunk_rows):
    rng = np.random.default_rng(5)
    p, k, m = 6, 3, 1000
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    X = _skewed_data(rng, m, p, np.array([4.0, 3.0, 2.0, 1.0, 0.6, 0.3]), Q, shift=2.0)
    rep = ssi.PCA(k, symmetry=symmetry).fit(X)
    K = rng.normal(size=(4, p + k * p))
    dense = rep.influence(X) @ K.T
    got = np.full_like(dense, np.nan)
    expected_start = 0
    for start, stop, B in rep.influence_contract(K, chunk_rows=chunk_rows):
        assert start == expected_start and stop - start <= chunk_rows
        assert B.shape == (stop - start, K.shape[0])
        got[start:stop] = B
        expected_start = stop
    assert expected_start == m
    np.testing.assert_allclose(got, dense, rtol=0, atol=1e-11 * np.abs(dense).max())


# --------------------------------------------------------------------------- (d)
def _pipeline_data(seed, *, p=6, k=3, m=2000, n=300, overlap=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    scales = 3.0 * 0.6 ** np.arange(p)  # clear eigengaps
    X_pre = _skewed_data(rng, m, p, scales, Q, shift=np.linspace(-1, 1, p))
    X_lab = _skewed_data(rng, n, p, scales, Q, shift=np.linspace(-1, 1, p))
    pidx = None
    if overlap:
        pidx = np.full(n, -1)
        pidx[:overlap] = rng.choice(m, size=overlap, replace=False)
        X_lab[:overlap] = X_pre[pidx[:overlap]]
    Z = rng.normal(size=(n, 2))
    y = (1.0 + Z @ [0.5, -1.0] + X_lab @ Q[:, 0] - 0.7 * X_lab @ Q[:, 1]
         + 0.3 * (X_lab @ Q[:, 2]) ** 2 + (1 + 0.3 * np.abs(Z[:, 0])) * rng.normal(size=n))
    X_new = _skewed_data(rng, 7, p, scales, Q, shift=np.linspace(-1, 1, p))
    Z_new = sm.add_constant(rng.normal(size=(7, 2)), has_constant="add")
    return X_pre, X_lab, y, sm.add_constant(Z), pidx, X_new, Z_new


@pytest.mark.parametrize("second_stage", ["nonrobust", "HC0", "HC3"])
@pytest.mark.parametrize("overlap", [0, 120])
def test_rotation_mode_invariant_results_equal_sign_mode(second_stage, overlap):
    X_pre, X_lab, y, exog, pidx, X_new, Z_new = _pipeline_data(11, m=600, overlap=overlap)
    fits = {}
    for mode in ("sign", "rotation"):
        rep = ssi.PCA(3, symmetry=mode).fit(X_pre)
        fits[mode] = ssi.OLS(y, exog, representation=rep, features=X_lab,
                             pretrain_index=pidx).fit(cov_kwds={"second_stage": second_stage})
    s, r = fits["sign"], fits["rotation"]
    np.testing.assert_array_equal(np.asarray(s.params), np.asarray(r.params))
    bse_s, bse_r = np.asarray(s.bse), np.asarray(r.bse)
    # intercept and covariates: invariant
    np.testing.assert_allclose(bse_r[:3], bse_s[:3], rtol=1e-8)
    # predictions on new raw data: invariant
    pred_s = s.get_prediction(Z_new, features=X_new)
    pred_r = r.get_prediction(Z_new, features=X_new)
    np.testing.assert_allclose(pred_r.predicted_mean, pred_s.predicted_mean, rtol=1e-12)
    np.testing.assert_allclose(pred_r.se_mean, pred_s.se_mean, rtol=1e-8)
    # ... and the predictions' first-stage part is not negligible (else trivially equal)
    w_new = np.column_stack([Z_new, s.model.representation.transform(X_new)])
    pred_naive = np.sqrt(np.einsum("ij,jk,ik->i", w_new, np.asarray(s.cov_params_naive()),
                                   w_new))
    assert np.max(np.abs(pred_s.se_mean / pred_naive - 1)) > 1e-3
    # individual pc coefficients: not invariant, the SEs differ
    assert np.min(np.abs(bse_r[3:] / bse_s[3:] - 1)) > 1e-4
    assert np.max(np.abs(bse_r[3:] / bse_s[3:] - 1)) > 1e-2


# --------------------------------------------------------------------------- (e)
def _brute_force(res, X_pre, pidx, groups, pre_groups, L_beta=None, L_theta=None,
                 second_stage="HC0"):
    """Two-stage covariance of f = L_beta beta + L_theta theta from per-row influences.

    Labeled unit j: a_j = (W' Omega W)^-1 w_j wt_j e_j (its share of beta_hat - beta*); pre-training
    unit i: K IF(x_i) / m with K = L_beta J + L_theta. Influences are summed within
    clusters (labels shared across the samples = the same cluster) before outer
    products; the second-stage block is replaced by statsmodels' own covariance (which
    carries statsmodels' small-sample factor). Documented small-sample factors
    (ssl_inference.covariance): for a corrected second stage (not HC0) the pre-training
    block gets G_pre / (G_pre - 1) (G_pre clusters, or m rows) and the cross block the
    square root of that times the labeled factor (CRV1: G/(G-1) (n-1)/(n-d)).
    """
    W = np.asarray(res.model.exog)
    e = np.asarray(res.resid)  # y - W beta (unwhitened, also for WLS)
    wt = np.broadcast_to(np.asarray(res.model.weights, dtype=float), e.shape)
    A = (W * (wt * e)[:, None]) @ np.linalg.inv(W.T @ (W * wt[:, None]))
    rep = res.model.representation
    m = rep.nobs_
    d = W.shape[1]
    L_beta = np.eye(d) if L_beta is None else L_beta
    Kmat = L_beta @ res.first_stage_jacobian
    if L_theta is not None:
        Kmat = Kmat + L_theta
    B = rep.influence(X_pre) @ Kmat.T / m
    A = A @ L_beta.T
    n = W.shape[0]
    lab_units = np.arange(n) + m if groups is None else np.asarray(groups)
    if pidx is not None and groups is None:
        lab_units = np.where(pidx >= 0, pidx, m + np.arange(n))
    pre_units = np.arange(m) if pre_groups is None else np.asarray(pre_groups)
    # per-cluster sums over the union of labels (a DataFrame groupby keyed on the label)
    A_sum = pd.DataFrame(A).groupby(pd.Series(lab_units.astype(object))).sum()
    B_sum = pd.DataFrame(B).groupby(pd.Series(pre_units.astype(object))).sum()
    labels = A_sum.index.union(B_sum.index)
    A_sum = A_sum.reindex(labels, fill_value=0.0).to_numpy()
    B_sum = B_sum.reindex(labels, fill_value=0.0).to_numpy()
    pre = B_sum.T @ B_sum
    # units (rows under overlap, clusters whose label is in both arrays) with rows in
    # both samples carry a cross term; labeled rows as units never share a label with X_pre
    cross = A_sum.T @ B_sum + B_sum.T @ A_sum
    c_pre = c_lab = 1.0
    if second_stage != "HC0":
        g_pre = len(np.unique(pre_units))
        c_pre = g_pre / (g_pre - 1)
    if second_stage == "cluster":
        g_lab = len(np.unique(np.asarray(groups)))
        c_lab = g_lab / (g_lab - 1) * (n - 1) / (n - d)
    cov2 = L_beta @ np.asarray(res.cov_params_naive()) @ L_beta.T
    return cov2 + c_pre * pre + np.sqrt(c_pre * c_lab) * cross, A


def _cluster_labels(rng, m, n, pidx):
    pre_groups = rng.integers(0, 40, size=m)  # 40 pre-training clusters
    groups = rng.integers(30, 60, size=n)     # 30..39 shared, 40..59 labeled only
    if pidx is not None:
        ov = pidx >= 0
        groups[ov] = pre_groups[pidx[ov]]     # an overlapping row keeps its cluster
    return groups, pre_groups


CLUSTER_CASES = {
    "pre-clusters": dict(overlap=0, second_stage="HC0", lab_groups=False, pre_groups=True),
    "overlap-rows": dict(overlap=150, second_stage="HC0", lab_groups=False, pre_groups=False),
    "overlap-clusters": dict(overlap=150, second_stage="cluster", lab_groups=True,
                             pre_groups=True),
    "overlap-clusters-wls": dict(overlap=150, second_stage="cluster", lab_groups=True,
                                 pre_groups=True, weighted=True),
    "overlap-clusters-str": dict(overlap=150, second_stage="cluster", lab_groups=True,
                                 pre_groups=True, strings=True),
    "shared-clusters-no-overlap": dict(overlap=0, second_stage="cluster", lab_groups=True,
                                       pre_groups=True),
}


@pytest.mark.parametrize("case", list(CLUSTER_CASES))
def test_clustered_overlapping_covariance_brute_force(case):
    cfg = CLUSTER_CASES[case]
    rng = np.random.default_rng(99)
    X_pre, X_lab, y, exog, pidx, X_new, Z_new = _pipeline_data(
        21, p=5, k=2, m=600, n=250, overlap=cfg["overlap"])
    groups, pre_groups = _cluster_labels(rng, X_pre.shape[0], X_lab.shape[0], pidx)
    if cfg.get("strings"):  # labels as strings (factorised, not used as positions)
        groups, pre_groups = np.char.add("c", groups.astype(str)), np.char.add(
            "c", pre_groups.astype(str))
    groups = groups if cfg["lab_groups"] else None
    pre_groups = pre_groups if cfg["pre_groups"] else None
    weights = rng.uniform(0.5, 2.0, size=len(y)) if cfg.get("weighted") else None
    rep = ssi.PCA(2).fit(X_pre)
    cov_kwds = {"second_stage": cfg["second_stage"]}
    if groups is not None:
        cov_kwds["groups"] = groups
    if pre_groups is not None:
        cov_kwds["pretrain_groups"] = pre_groups
    if weights is None:
        model = ssi.OLS(y, exog, representation=rep, features=X_lab, pretrain_index=pidx)
    else:
        model = ssi.WLS(y, exog, weights=weights, representation=rep, features=X_lab,
                        pretrain_index=pidx)
    res = model.fit(cov_kwds=cov_kwds)

    # second stage: the package's naive covariance is statsmodels' own
    W = np.asarray(res.model.exog)
    sm_kw = {"cov_type": cfg["second_stage"]}
    if groups is not None:
        sm_kw["cov_kwds"] = {"groups": groups}
    sm_res = (sm.OLS(y, W) if weights is None else sm.WLS(y, W, weights=weights)).fit(**sm_kw)
    np.testing.assert_allclose(np.asarray(res.cov_params_naive()), sm_res.cov_params(),
                               rtol=1e-12, atol=0)

    expected, A = _brute_force(res, X_pre, pidx, groups, pre_groups,
                               second_stage=cfg["second_stage"])
    # our a_j reproduce statsmodels' clustered second stage (CRV1 factor)
    if groups is not None:
        n, d = W.shape
        G = np.unique(groups).size
        sums = np.vstack([A[groups == g].sum(0) for g in np.unique(groups)])
        np.testing.assert_allclose(G / (G - 1) * (n - 1) / (n - d) * sums.T @ sums,
                                   sm_res.cov_params(), rtol=1e-10)
    V = np.asarray(res.cov_params())
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    assert np.max(np.abs(V - expected) / scale) < 1e-10
    # the first-stage + cross part alone (it is the small part), relative to its size
    naive = np.asarray(res.cov_params_naive())
    D_pkg, D_bf = V - naive, expected - naive
    assert np.max(np.abs(D_pkg - D_bf)) < 1e-9 * np.max(np.abs(D_bf))
    # not vacuous: the first stage (and the cross term, with overlap) matter here
    dec = res.variance_decomposition()
    assert dec["pretraining_share"].max() > 0.01
    if pidx is not None or case == "shared-clusters-no-overlap":
        assert np.max(np.abs(dec["overlap"] / dec["total"])) > 1e-3

    # predictions: same brute force with L_beta = w0', L_theta = beta_rep' dphi(x0)/dtheta
    beta = np.asarray(res.params)
    U, mu = rep.components_, rep.mean_
    w0 = np.column_stack([Z_new, rep.transform(X_new)])
    beta_rep = beta[-2:]
    L_theta = np.column_stack([np.tile(-(beta_rep @ U), (len(X_new), 1))]
                              + [b * (X_new - mu) for b in beta_rep])
    var_pred = [
        _brute_force(res, X_pre, pidx, groups, pre_groups, w0[[i]], L_theta[[i]],
                     second_stage=cfg["second_stage"])[0][0, 0]
        for i in range(len(X_new))]
    se = res.get_prediction(Z_new, features=X_new).se_mean
    np.testing.assert_allclose(se, np.sqrt(var_pred), rtol=1e-10)


@pytest.mark.parametrize("clustered", [False, True], ids=["rows", "clusters"])
def test_overlap_across_streamed_chunks_brute_force(clustered):
    """m > 2 chunks of 8192: overlap rows at chunk edges still get their cross term."""
    m, n = 17_000, 400
    X_pre, X_lab, y, exog, pidx, _, _ = _pipeline_data(5, p=5, k=2, m=m, n=n, overlap=300)
    rng = np.random.default_rng(3)
    edges = [0, 8191, 8192, 16383, 16384, m - 1]
    pidx[:300] = np.concatenate([edges, rng.choice(np.setdiff1d(np.arange(m), edges),
                                                   300 - len(edges), replace=False)])
    X_lab[:300] = X_pre[pidx[:300]]
    groups = pre_groups = None
    cov_kwds = {"second_stage": "HC0"}
    if clustered:
        groups, pre_groups = _cluster_labels(rng, m, n, pidx)
        cov_kwds = {"second_stage": "cluster", "groups": groups,
                    "pretrain_groups": pre_groups}
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.OLS(y, exog, representation=rep, features=X_lab,
                  pretrain_index=pidx).fit(cov_kwds=cov_kwds)
    expected, _ = _brute_force(res, X_pre, pidx, groups, pre_groups,
                               second_stage=cov_kwds["second_stage"])
    naive = np.asarray(res.cov_params_naive())
    D_pkg, D_bf = np.asarray(res.cov_params()) - naive, expected - naive
    assert np.max(np.abs(D_pkg - D_bf)) < 1e-9 * np.max(np.abs(D_bf))
    assert np.max(np.abs(res.variance_decomposition()["overlap"])) > 0


def test_first_stage_jacobian_finite_difference():
    """J = d beta_hat / d theta: refit OLS on features U'(x - mu) at perturbed theta."""
    X_pre, X_lab, y, exog, _, _, _ = _pipeline_data(3, p=5, k=2, m=500, n=200)
    rep = ssi.PCA(2).fit(X_pre)
    res = ssi.OLS(y, exog, representation=rep, features=X_lab).fit()
    p, k = 5, 2

    def beta_at(theta):
        mu, U = theta[:p], theta[p:].reshape(k, p)
        W = np.column_stack([exog, (X_lab - mu) @ U.T])
        return np.linalg.lstsq(W, y, rcond=None)[0]

    theta0 = rep.params_
    h = 1e-5
    fd = np.column_stack([(beta_at(theta0 + h * e) - beta_at(theta0 - h * e)) / (2 * h)
                          for e in np.eye(theta0.size)])
    J = res.first_stage_jacobian
    np.testing.assert_allclose(J, fd, rtol=0, atol=1e-7 * np.abs(fd).max())


# ------------------------------------------------------------- reduction / scaling
@pytest.mark.parametrize("second_stage", ["nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster"])
def test_fine_tuning_part_is_statsmodels(second_stage):
    X_pre, X_lab, y, exog, _, _, _ = _pipeline_data(8, p=5, k=2, m=800, n=250)
    rep = ssi.PCA(2).fit(X_pre)
    cov_kwds = {"second_stage": second_stage}
    sm_kw = {"cov_type": second_stage}
    if second_stage == "cluster":
        groups = np.random.default_rng(0).integers(0, 25, size=len(y))
        cov_kwds["groups"] = groups
        sm_kw["cov_kwds"] = {"groups": groups}
    res = ssi.OLS(y, exog, representation=rep, features=X_lab).fit(cov_kwds=cov_kwds)
    W = np.column_stack([exog, rep.transform(X_lab)])
    plain = sm.OLS(y, W).fit(**sm_kw)
    dec = res.variance_decomposition()
    np.testing.assert_allclose(dec["fine_tuning"].to_numpy(), np.diag(plain.cov_params()),
                               rtol=1e-10, atol=0)
    np.testing.assert_allclose(np.asarray(res.params), plain.params, rtol=1e-10)
    assert (dec["pretraining"] > 0).all()
    # total = statsmodels' variance + the first-stage term from the per-row influence
    # (not the streamed contraction the package uses), times m / (m - 1) unless the
    # second stage is uncorrected (HC0)
    m = len(X_pre)
    B = rep.influence(X_pre) @ res.first_stage_jacobian.T / m
    c_pre = 1.0 if second_stage == "HC0" else m / (m - 1)
    np.testing.assert_allclose(res.bse ** 2, plain.bse ** 2 + c_pre * (B ** 2).sum(0),
                               rtol=1e-8)


@pytest.mark.parametrize("reps", [2, 5])
def test_pretraining_part_scales_like_one_over_m(reps):
    X_pre, X_lab, y, exog, _, _, _ = _pipeline_data(9, p=5, k=2, m=500, n=200)
    pre_groups = np.random.default_rng(1).integers(0, 30, size=len(X_pre))
    out = {}
    for r in (1, reps):
        rep = ssi.PCA(2).fit(np.tile(X_pre, (r, 1)))
        model = ssi.OLS(y, exog, representation=rep, features=X_lab)
        out[r] = (model.fit(cov_kwds={"second_stage": "HC1"}).variance_decomposition(),
                  model.fit(cov_kwds={"second_stage": "HC1",
                                      "pretrain_groups": np.tile(pre_groups, r)}
                            ).variance_decomposition())
    (base, base_cl), (dup, dup_cl) = out[1], out[reps]
    np.testing.assert_allclose(dup["fine_tuning"], base["fine_tuning"], rtol=1e-10)
    # duplicated rows have identical influence: sum of reps*m terms over (reps*m)^2
    # (HC1: rows carry the small-sample factor m / (m - 1) of their count)
    m = len(X_pre)
    factor = (reps * m / (reps * m - 1)) / (m / (m - 1))
    np.testing.assert_allclose(dup["pretraining"], base["pretraining"] / reps * factor,
                               rtol=1e-10)
    # ... but copies inside the same cluster carry no new information
    np.testing.assert_allclose(dup_cl["pretraining"], base_cl["pretraining"], rtol=1e-10)
    assert np.max(np.abs(base_cl["pretraining"] / base["pretraining"] - 1)) > 1e-2
