"""Independent oracle for the generic likelihood second stages: delicatessen's stacked
M-estimator with the models' score equations written here, not taken from statsmodels.

As in ``test_oracle_glm.py`` (whose unit layout and PCA equations are reused), both
stages are ONE system of estimating equations, one column per unit: the PCA equations on
the pre-training rows, and on the labeled rows the score of

* NB2 (``mu = exp(eta)``, ``Var = mu + alpha mu^2``, ``r = 1/alpha``):
  ``(y - mu)/(1 + alpha mu) w`` and
  ``-alpha^-2 [psi(y + r) - psi(r) + log(r/(r + mu)) + (mu - y)/(r + mu)]``;
* generalized Poisson (statsmodels' ``p=1``: ``Var = mu (1 + alpha)^2``):
  ``[1 + (y - 1) mu/(mu + alpha y) - mu/(1 + alpha)] w`` and
  ``(y - 1) y/(mu + alpha y) - y/(1 + alpha) - (y - mu)/(1 + alpha)^2``;
* zero-inflated Poisson with a logit inflation ``pi = expit(v'gamma)``: for ``y = 0``
  with ``L0 = pi + (1 - pi) e^-mu``: ``pi (1 - pi)(1 - e^-mu)/L0 v`` and
  ``-(1 - pi) e^-mu mu / L0 w``; for ``y > 0``: ``-pi v`` and ``(y - mu) w``;
* multinomial logit, reference category 0: ``(1{y = e} - p_e) w`` for e = 1, 2;
* ordered logit in statsmodels' thresholds ``t_1 = c_1``, ``t_k = t_{k-1} + exp(c_k)``:
  with ``F`` the logistic cdf, ``f = F(1 - F)``, ``P = F(t_{y+1} - eta) - F(t_y - eta)``:
  ``-(f_up - f_lo)/P w``; ``(f_up - f_lo)/P`` for ``c_1``; and
  ``exp(c_2) (f_up 1{y+1 >= 2} - f_lo 1{y >= 2})/P`` for ``c_2`` (bounds at +-inf
  contribute F = 1 or 0 and f = 0);

optionally followed by predictions at new raw points ``f_r(theta) - pred_r`` on every
unit, whose sandwich variance is their two-stage delta-method variance. delicatessen
differentiates the bread exactly (``deriv_method="exact"``); the second stage is in HC0
form (no small-sample factor), so the empirical sandwich is ``res.cov_params()`` with
``cov_kwds={"second_stage": "HC0"}``.

Measured (m=300, n=150, p=5, k=2; max |diff| / sqrt(V_ii V_jj) over all parameters,
independent / overlapping samples): NB2 5e-14 / 1e-13, GP 3e-14 / 6e-14, ZIP 2e-12 /
1e-12, ZIP with inflation features 8e-13 / 1e-12, MNLogit 1e-14 / 1e-14, ordered logit
4e-7 / 1e-6, ordered probit 1e-6 / 7e-7 (statsmodels differentiates the ordered model's
log-likelihood numerically for its score and Hessian). Prediction SEs: 2e-13 (NB, GP,
ZIP), 2e-12 (MNLogit probabilities), 8e-7 (ordered probabilities); NB average marginal
effects and an MNLogit average discrete change likewise.
"""
from __future__ import annotations

import numpy as np
import pytest

import ssl_inference as ssi

from .test_oracle_delicatessen import (N_FIRST, _make_problem, _max_rel, _unit_arrays,
                                       pca_equations, pca_init)

delicatessen = pytest.importorskip("delicatessen")
from delicatessen import MEstimator  # noqa: E402
from delicatessen.utilities import (digamma, inverse_logit,  # noqa: E402
                                    standard_normal_cdf, standard_normal_pdf)

pytestmark = pytest.mark.filterwarnings("error::ssl_inference.IdentificationWarning")

K = 2


def _linear(cols, beta):
    out = 0.0
    for c, col in enumerate(cols):
        out = out + col * beta[c]
    return out


# ----------------------------------------------------------- score equations
def nb2_equations(beta, W, Y, wt, extra):
    *b, alpha = beta
    mu = np.exp(_linear(W, b))
    rows = [wt * (Y - mu) / (1 + alpha * mu) * col for col in W]
    r = 1 / alpha
    d_r = digamma(Y + r) - digamma(r) + np.log(r / (r + mu)) + (mu - Y) / (r + mu)
    rows.append(wt * d_r * (-1 / alpha ** 2))
    return rows


def gp_equations(beta, W, Y, wt, extra):
    *b, alpha = beta
    mu = np.exp(_linear(W, b))
    a2 = mu + alpha * Y
    d_eta = 1 + (Y - 1) * mu / a2 - mu / (1 + alpha)
    rows = [wt * d_eta * col for col in W]
    rows.append(wt * ((Y - 1) * Y / a2 - Y / (1 + alpha) - (Y - mu) / (1 + alpha) ** 2))
    return rows


def zip_equations(beta, W, Y, wt, extra):
    V = extra["inflation"](W)
    gamma, b = beta[:len(V)], beta[len(V):]
    pi = inverse_logit(_linear(V, gamma))
    mu = np.exp(_linear(W, b))
    zero = (Y == 0).astype(float)
    e = np.exp(-mu)
    L0 = pi + (1 - pi) * e
    d_gamma = zero * pi * (1 - pi) * (1 - e) / L0 - (1 - zero) * pi
    d_eta = -zero * (1 - pi) * e * mu / L0 + (1 - zero) * (Y - mu)
    return [wt * d_gamma * col for col in V] + [wt * d_eta * col for col in W]


def mnlogit_equations(beta, W, Y, wt, extra):
    d = len(W)
    etas = [_linear(W, beta[e * d:(e + 1) * d]) for e in range(2)]
    denom = 1 + np.exp(etas[0]) + np.exp(etas[1])
    rows = []
    for e in range(2):
        resid = (Y == e + 1).astype(float) - np.exp(etas[e]) / denom
        rows += [wt * resid * col for col in W]
    return rows


def _ordered_equations(cdf, pdf):
    """Score of an ordered model with latent-error cdf ``F`` and density ``f``."""

    def equations(beta, W, Y, wt, extra):
        b, c1, c2 = beta[:len(W)], beta[len(W)], beta[len(W) + 1]
        eta = _linear(W, b)
        t1, t2 = c1, c1 + np.exp(c2)
        has_lo, has_up = (Y >= 1).astype(float), (Y <= 1).astype(float)
        lo = (Y == 1) * t1 + (Y == 2) * t2 - eta
        up = (Y == 0) * t1 + (Y == 1) * t2 - eta
        f_lo, f_up = has_lo * pdf(lo), has_up * pdf(up)
        prob = has_up * cdf(up) + (1 - has_up) - has_lo * cdf(lo)
        rows = [wt * -(f_up - f_lo) / prob * col for col in W]
        rows.append(wt * (f_up - f_lo) / prob)
        rows.append(wt * np.exp(c2) * (f_up * (Y == 1) - f_lo * (Y == 2)) / prob)
        return rows

    return equations


def _logistic_pdf(x):
    F = inverse_logit(x)
    return F * (1 - F)


# ----------------------------------------------------------- the problems
def _outcome(kind, X_lab, exog, rng):
    z, x0, x1 = exog[:, 1], X_lab[:, 0], X_lab[:, 1]
    eta = 0.3 + 0.3 * z + 0.2 * x0 - 0.15 * x1
    if kind in ("nb", "gp"):
        return rng.negative_binomial(2, 2 / (2 + np.exp(eta))).astype(float)
    if kind.startswith("zip"):
        zero = rng.random(len(z)) < 1 / (1 + np.exp(0.8 - 0.4 * x1))
        return np.where(zero, 0, rng.poisson(np.exp(eta))).astype(float)
    if kind == "mnlogit":
        etas = np.column_stack([np.zeros_like(z), 0.3 + 0.4 * z + 0.3 * x0,
                                -0.2 + 0.2 * z - 0.3 * x1])
        prob = np.exp(etas) / np.exp(etas).sum(1, keepdims=True)
        return (rng.random((len(z), 1)) > prob.cumsum(1)).sum(1).astype(float)
    latent = 0.5 * z + 0.4 * x0 - 0.2 * x1 + rng.logistic(size=len(z))
    return np.digitize(latent, [-0.8, 0.9]).astype(float)


#: kind -> (model factory (y, exog, **two-stage kwargs), oracle equations, uses a constant,
#:          fit options)
MODELS = {
    "nb": (lambda y, Z, **kw: ssi.NegativeBinomial(y, Z, **kw), nb2_equations, True,
           {"method": "newton", "maxiter": 100}),
    "gp": (lambda y, Z, **kw: ssi.GeneralizedPoisson(y, Z, **kw), gp_equations, True,
           {"method": "newton", "maxiter": 100}),
    "zip": (lambda y, Z, **kw: ssi.ZeroInflatedPoisson(y, Z, **kw), zip_equations, True,
            {"method": "newton", "maxiter": 100}),
    "zip-inflation-features": (
        lambda y, Z, **kw: ssi.ZeroInflatedPoisson(y, Z, inflation_features=True, **kw),
        zip_equations, True, {"method": "newton", "maxiter": 100}),
    "mnlogit": (lambda y, Z, **kw: ssi.MNLogit(y, Z, **kw), mnlogit_equations, True,
                {"method": "newton", "maxiter": 100}),
    "ordered-logit": (lambda y, Z, **kw: ssi.OrderedModel(y, Z, distr="logit", **kw),
                      _ordered_equations(inverse_logit, _logistic_pdf), False,
                      {"method": "bfgs", "maxiter": 2000, "gtol": 1e-9}),
    "ordered-probit": (lambda y, Z, **kw: ssi.OrderedModel(y, Z, distr="probit", **kw),
                       _ordered_equations(standard_normal_cdf, standard_normal_pdf), False,
                       {"method": "bfgs", "maxiter": 2000, "gtol": 1e-9}),
}
#: relative agreement of the covariances (correlation scale), with a margin over the
#: measured; statsmodels' OrderedModel differentiates its log-likelihood numerically
#: (score and Hessian), which limits the agreement there
TOLERANCES = {"ordered-logit": 3e-6, "ordered-probit": 3e-6}


def _inflation(kind, n_cov):
    """The inflation design of the oracle's ZIP as a function of the count design."""
    if kind == "zip-inflation-features":
        return lambda W: [W[0]] + list(W[n_cov:])  # constant and the features
    return lambda W: [W[0] * 0 + 1.0]


def _setup(kind: str, overlap: bool, seed: int):
    X_pre, X_lab, _, exog, _, pidx = _make_problem(seed, overlap=overlap, weighted=False)
    rng = np.random.default_rng(seed + 1)
    y = _outcome(kind, X_lab, exog, rng)
    factory, _, constant, fit_kwargs = MODELS[kind]
    Z = exog if constant else exog[:, 1:]
    rep = ssi.PCA(K, symmetry="sign").fit(X_pre)
    res = factory(y, Z, representation=rep, features=X_lab, pretrain_index=pidx).fit(
        disp=0, cov_kwds={"second_stage": "HC0"}, **fit_kwargs)
    units = _unit_arrays(X_pre, X_lab, y, Z, None, pidx)
    return rep, res, units


def _oracle(kind, rep, res, units, predictions=None):
    """Stacked estimation started at our estimates; returns (estimator, init).

    ``predictions``: ``(Z0, X0, function(beta, W0_cols) -> list of values)``.
    """
    Xf, is_pre, Xl, Z, Y, wt = units
    equations = MODELS[kind][1]
    n_cov = Z.shape[1]
    extra = {"inflation": _inflation(kind, n_cov)}
    n_params = np.asarray(res.params).size

    def psi(theta):
        theta = np.asarray(theta)
        rows, feats = pca_equations(theta, Xf, is_pre, Xl)
        beta = theta[N_FIRST:N_FIRST + n_params]
        W = [Z[:, c] for c in range(n_cov)] + feats
        rows += list(equations(beta, W, Y, wt, extra))
        if predictions is not None:
            Z0, X0, function = predictions
            _, feats0 = pca_equations(theta, X0, np.zeros(len(X0)), X0)
            values = function(beta, [Z0[:, c] for c in range(n_cov)] + feats0)
            ones = np.ones(Xf.shape[0])
            rows += [(values[r] - theta[N_FIRST + n_params + r]) * ones
                     for r in range(len(values))]
        return np.vstack(rows)

    init = pca_init(rep) + list(np.asarray(res.params).ravel(order="F"))
    if predictions is not None:
        init += list(predictions[3])
        predictions = predictions[:3]
    est = MEstimator(psi, init=np.array(init))
    est.estimate(deriv_method="exact")
    return est, np.array(init)


CASES = [(kind, overlap) for kind in MODELS for overlap in (False, True)]


@pytest.mark.parametrize("kind, overlap", CASES,
                         ids=[f"{k}-{'overlap' if o else 'independent'}" for k, o in CASES])
def test_two_stage_cov_matches_stacked_oracle(kind, overlap):
    rep, res, units = _setup(kind, overlap, seed=20247 if overlap else 20251)
    est, init = _oracle(kind, rep, res, units)
    P = init.size - N_FIRST
    # the root finder stays at our estimates: the scores written here are the model's
    np.testing.assert_allclose(est.theta, init, rtol=0, atol=1e-7)
    V_pkg = np.asarray(res.cov_params())
    V_oracle = est.variance[N_FIRST:, N_FIRST:]
    assert _max_rel(V_oracle, V_pkg) < TOLERANCES.get(kind, 1e-8)
    # not vacuous: the first stage (and the overlap cross term) move the covariance by
    # far more than the tolerance
    naive = np.asarray(res.cov_params_naive())
    assert np.max(np.abs(np.diag(V_pkg) / np.diag(naive) - 1)) > 1e-3
    if overlap:
        dec = res.variance_decomposition()
        assert np.max(np.abs(dec["overlap"] / dec["total"])) > 1e-3
    assert P == len(res.model.param_names)


# ----------------------------------------------------------- predictions
def _mean_count(beta, W0):
    return list(np.exp(_linear(W0, beta[:len(W0)])))


def _mean_zip(beta, W0):
    V0 = _inflation("zip-inflation-features", len(W0) - K)(W0)
    gamma, b = beta[:len(V0)], beta[len(V0):]
    return list((1 - inverse_logit(_linear(V0, gamma))) * np.exp(_linear(W0, b)))


def _prob_mnlogit(beta, W0):
    d = len(W0)
    e1, e2 = (np.exp(_linear(W0, beta[e * d:(e + 1) * d])) for e in range(2))
    denom = 1 + e1 + e2
    return [v for r in range(len(W0[0])) for v in (1 / denom[r], e1[r] / denom[r],
                                                   e2[r] / denom[r])]


def _prob_ordered_logit(beta, W0):
    b, c1, c2 = beta[:len(W0)], beta[len(W0)], beta[len(W0) + 1]
    eta = _linear(W0, b)
    F1, F2 = inverse_logit(c1 - eta), inverse_logit(c1 + np.exp(c2) - eta)
    return [v for r in range(len(eta)) for v in (F1[r], F2[r] - F1[r], 1 - F2[r])]


#: kind -> (which, oracle prediction function)
PREDICTIONS = {"nb": ("mean", _mean_count), "gp": ("mean", _mean_count),
               "zip-inflation-features": ("mean", _mean_zip),
               "mnlogit": ("mean", _prob_mnlogit),
               "ordered-logit": ("prob", _prob_ordered_logit)}


@pytest.mark.parametrize("kind", list(PREDICTIONS))
def test_prediction_se_matches_stacked_oracle(kind):
    """Prediction SEs at new raw points: the new features move with the first stage."""
    rep, res, units = _setup(kind, overlap=True, seed=977)
    rng = np.random.default_rng(12)
    X0 = units[0][:3] + rng.normal(scale=2.0, size=(3, units[0].shape[1]))
    Z0 = np.column_stack([np.ones(3), [-1.0, 0.5, 2.0]])
    if not MODELS[kind][2]:
        Z0 = Z0[:, 1:]
    which, function = PREDICTIONS[kind]
    pred = res.get_prediction(Z0, features=X0, which=which)
    predicted = np.asarray(pred.predicted).ravel()
    est, _ = _oracle(kind, rep, res, units, predictions=(Z0, X0, function, predicted))
    np.testing.assert_allclose(est.theta[-predicted.size:], predicted, rtol=1e-8)
    se_oracle = np.sqrt(np.diag(est.variance)[-predicted.size:])
    se = np.asarray(pred.se).ravel()
    np.testing.assert_allclose(se, se_oracle, rtol=10 * TOLERANCES.get(kind, 1e-8))
    # the plug-in grad_beta' Cov grad_beta with the new features held fixed is wrong
    W0 = [Z0[:, c] for c in range(Z0.shape[1])] + list(rep.transform(X0).T)
    beta = np.asarray(res.params).ravel(order="F")
    grad = np.column_stack([(np.array(function(beta + h, W0)) - np.array(function(beta - h, W0)))
                            / 2e-6 for h in 1e-6 * np.eye(beta.size)])
    plug_in = np.sqrt(np.einsum("ij,jk,ik->i", grad, np.asarray(res.cov_params()), grad))
    assert np.max(np.abs(plug_in / se - 1)) > 1e-2


def test_margins_match_stacked_oracle():
    """NB2 average marginal effects (statsmodels' ``get_margeff()``, reused from
    :mod:`ssl_inference.margins`): ``M_c = mean_j exp(w_j'b) b_c`` over the labeled rows,
    whose features move with the first stage; ``alpha`` does not enter."""
    rep, res, units = _setup("nb", overlap=True, seed=977)
    me = res.get_margeff()
    Z = np.asarray(res.model.exog)[:, :2]
    X_lab = res.model.features

    def margins(beta, W):
        mean = np.exp(_linear(W, beta[:len(W)]))
        return [np.mean(mean) * beta[c] for c in (1, 2, 3)]

    est, _ = _oracle("nb", rep, res, units,
                     predictions=(Z, X_lab, margins, np.asarray(me.margeff)))
    np.testing.assert_allclose(est.theta[-3:], me.margeff, rtol=1e-8)
    np.testing.assert_allclose(me.margeff_se, np.sqrt(np.diag(est.variance)[-3:]), rtol=1e-7)
    assert np.max(me.margeff_se / me.margeff_se_naive - 1) > 1e-2


def test_average_discrete_change_matches_stacked_oracle():
    """The margins route for MNLogit: ``get_prediction(stacked, average=True,
    agg_weights=2 [1, ..., -1, ...])`` is the average change of P(y = 2) when z moves by
    one, with its two-stage SE."""
    rep, res, units = _setup("mnlogit", overlap=True, seed=977)
    rng = np.random.default_rng(5)
    X0 = units[0][:3] + rng.normal(scale=2.0, size=(3, units[0].shape[1]))
    Z0 = np.column_stack([np.ones(3), [-1.0, 0.5, 2.0]])
    stacked = np.vstack([Z0 + [0.0, 1.0], Z0])
    weights = 2.0 * np.r_[np.ones(3), -np.ones(3)]
    pred = res.get_prediction(stacked, features=np.vstack([X0, X0]), average=True,
                              agg_weights=weights)
    change = np.asarray(pred.predicted)[2]

    def average_change(beta, W0):
        probs = _prob_mnlogit(beta, W0)
        return [np.mean([w * probs[3 * r + 2] for r, w in enumerate(weights)])]

    est, _ = _oracle("mnlogit", rep, res, units,
                     predictions=(stacked, np.vstack([X0, X0]), average_change, [change]))
    np.testing.assert_allclose(est.theta[-1], change, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(pred.se)[2], np.sqrt(est.variance[-1, -1]),
                               rtol=1e-7)
