r"""Downstream deviance risk of GLM-type second stages (beyond the paper).

Second stage: ``E(y | x) = mu(eta)``, ``eta = w(x; theta)'beta (+ offset)``, an
exponential-dispersion family with variance function ``V`` and dispersion ``phi``
(:class:`~ssl_inference.GLM` with any family and link, :class:`~ssl_inference.Logit`,
:class:`~ssl_inference.Probit`, :class:`~ssl_inference.Poisson`). The risk of the
fitted pipeline is its expected unit deviance on a new draw,
``R = E[d(y_0, mu_hat(x_0))]`` (for the Gaussian family the squared error), and ``R*``
that of the population optimum ``(beta*, theta*)``. With ``alpha = m / n`` fixed and the
mean correctly specified at ``theta*`` (docs, theory page, "Downstream risk of
likelihood second stages"):

.. math::

    n (R - R^*) \to \sum_j \lambda_j \chi^2_1 + \alpha^{-1} \|L(Z)\|^2_\omega,

two independent parts:

* fine-tuning: ``(1/2) Z_f' H Z_f`` with ``Z_f ~ N(0, H^{-1} S H^{-1})``,
  ``lambda = eig(H^{-1} S) / 2``; in deviance units ``H = 2 E[omega w w']``,
  ``S = 4 E[e^2 w w']`` with the working weight ``omega = a mu'(eta)^2 / V(mu)`` and
  ``e = a (y - mu) mu'(eta) / V(mu)`` (``a`` the prior weight), so
  ``lambda = eig(E[omega w w']^{-1} E[e^2 w w'])``, all equal to ``phi`` when the
  variance function is right;
* pre-training: the least-squares ``||L(Z)||^2`` with the ``L^2`` norm and projection
  weighted by ``omega`` (:func:`~ssl_inference.risk.plugin_risk_weights` with
  ``weights=omega``).

:func:`deviance_risk_asymptotics` is the plug-in (``results.risk_asymptotics()``);
:func:`excess_deviance_risk` is the exact excess risk of a fitted pipeline for a known
data-generating process (simulations).
"""
from __future__ import annotations

import numpy as np
import statsmodels.api as sm
from scipy import linalg
from statsmodels.genmod import families
from statsmodels.regression.linear_model import RegressionModel

from .weighted_chi2 import WeightedChiSquare

__all__ = ["deviance_risk_asymptotics", "fine_tuning_weights", "excess_deviance_risk",
           "second_stage_family"]

FINE_TUNING = ("model", "robust")


def second_stage_family(model) -> families.Family | None:
    """The exponential family (with its link) of a GLM-type second stage.

    Parameters
    ----------
    model : statsmodels model
        ``GLM`` (its own family), ``Logit`` (binomial, logit link), ``Probit``
        (binomial, probit link), ``Poisson`` (Poisson, log link), or a least-squares
        model.

    Returns
    -------
    statsmodels family, or None
        None for least squares (OLS, WLS: the paper's squared-error risk).

    Raises
    ------
    NotImplementedError
        For any other model: its loss is not a unit deviance of one mean.

    Examples
    --------
    >>> import numpy as np, statsmodels.api as sm
    >>> fam = second_stage_family(sm.Probit(np.r_[0.0, 1.0], np.ones((2, 1))))
    >>> type(fam).__name__, type(fam.link).__name__
    ('Binomial', 'Probit')
    """
    if isinstance(model, RegressionModel):
        return None
    if isinstance(model, sm.GLM):
        return model.family
    if isinstance(model, sm.Probit):
        return families.Binomial(link=families.links.Probit())
    if isinstance(model, sm.Logit):
        return families.Binomial()
    if isinstance(model, sm.Poisson):
        return families.Poisson()
    raise NotImplementedError(
        f"risk_asymptotics() is available for least-squares (OLS, WLS) and GLM-type "
        f"second stages (GLM, Logit, Probit, Poisson), whose loss is the deviance of one "
        f"mean; {type(model).__name__} is neither.")


def _prior_weights(model) -> np.ndarray:
    """Prior weights ``a`` of the deviance: GLM ``var_weights`` (times ``n_trials``);
    refuses frequency weights."""
    n = np.asarray(model.endog).shape[0]
    if not isinstance(model, sm.GLM):
        return np.ones(n)
    if np.any(np.asarray(model.freq_weights) != 1):
        raise NotImplementedError(
            "risk_asymptotics() does not support GLM freq_weights: the number of labeled "
            "units n would be their sum, not the number of rows. Repeat the rows "
            "(np.repeat) instead, or use var_weights if the weights are precisions.")
    return np.broadcast_to(np.asarray(model.var_weights, dtype=float)
                           * np.asarray(getattr(model, "n_trials", 1.0), dtype=float), (n,))


def _working_quantities(family, endog, linear_predictor, prior_weights):
    """``(omega, e)``: working weights ``a mu'^2 / V`` and score factors
    ``a (y - mu) mu' / V`` at the linear predictor."""
    eta = np.asarray(linear_predictor, dtype=float)
    mu = family.link.inverse(eta)
    slope = family.link.inverse_deriv(eta)
    variance = family.variance(mu)
    a = np.asarray(prior_weights, dtype=float)
    return a * slope ** 2 / variance, a * (np.asarray(endog, dtype=float) - mu) * slope / variance


def fine_tuning_weights(design, endog, linear_predictor, family: families.Family, *,
                        prior_weights=None) -> np.ndarray:
    r"""Sandwich weights ``lambda`` of the fine-tuning part ``sum_j lambda_j chi2_1``.

    The limit of ``n`` times the excess deviance risk due to ``beta_hat`` is
    ``(1/2) Z'HZ``, ``Z ~ N(0, H^{-1} S H^{-1})``: a weighted chi-square with weights
    ``eig(H^{-1} S) / 2``. In deviance units (row loss ``d(y, mu(w'beta))``)
    ``H = 2 E[omega w w']`` and ``S = 4 E[e^2 w w']``, so

    .. math::

        \lambda = \operatorname{eig}(\hat A^{-1} \hat B), \qquad
        \hat A = \frac1n \sum_j \omega_j w_j w_j', \quad
        \hat B = \frac1n \sum_j e_j^2 w_j w_j',

    with ``omega_j = a_j mu'(eta_j)^2 / V(mu_j)`` (the IRLS working weights) and
    ``e_j = a_j (y_j - mu_j) mu'(eta_j) / V(mu_j)`` (the score factors, without the
    dispersion), computed in an orthonormal basis of the design's column space (a
    rank-deficient design has ``rank`` weights). Under a correct variance function
    ``E[e^2 | x] = phi omega`` and every weight tends to the dispersion ``phi``; the
    model-based law uses ``phi_hat`` directly.

    Parameters
    ----------
    design : ndarray (n, d)
        Second-stage design ``W`` at ``theta_hat``.
    endog : array_like (n,)
        Outcomes (binomial: proportions).
    linear_predictor : array_like (n,)
        ``eta_hat`` (offset included).
    family : statsmodels family
        Family with link (:func:`second_stage_family`).
    prior_weights : array_like (n,), optional
        ``a_j`` (GLM ``var_weights``); default 1.

    Returns
    -------
    ndarray
        ``lambda``, decreasing.

    Examples
    --------
    Gaussian family, identity link: ``lambda = eig((W'W)^{-1} W' diag(r^2) W)``, the
    HC0 sandwich in the metric of ``W'W``.

    >>> import numpy as np
    >>> from statsmodels.genmod import families
    >>> W = np.column_stack([np.ones(4), [0.0, 1.0, 2.0, 3.0]])
    >>> y, eta = np.array([0.1, 0.9, 2.2, 2.8]), np.array([0.0, 1.0, 2.0, 3.0])
    >>> lam = fine_tuning_weights(W, y, eta, families.Gaussian())
    >>> direct = np.linalg.eigvals(np.linalg.solve(W.T @ W, W.T @ (((y - eta) ** 2)[:, None] * W)))
    >>> bool(np.allclose(lam, np.sort(direct.real)[::-1]))
    True
    """
    W = np.asarray(design, dtype=float)
    n = W.shape[0]
    a = np.ones(n) if prior_weights is None else np.broadcast_to(
        np.asarray(prior_weights, dtype=float), (n,))
    omega, e = _working_quantities(family, endog, linear_predictor, a)
    Q, R, _ = linalg.qr(W, mode="economic", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > max(W.shape) * np.finfo(float).eps * diag.max())) if diag.size else 0
    basis = Q[:, :rank]
    A = basis.T @ (omega[:, None] * basis)
    B = basis.T @ ((e * e)[:, None] * basis)
    try:
        lam = linalg.eigh(0.5 * (B + B.T), 0.5 * (A + A.T), eigvals_only=True)
    except linalg.LinAlgError:
        raise ValueError(
            "The working weights mu'(eta)^2 / V(mu) vanish on part of the design's span "
            "(fitted means at the boundary, e.g. perfect separation in a binary model): "
            "the second-stage information is singular and the fine-tuning law is not "
            "defined.") from None
    return np.clip(lam[::-1], 0.0, None)


def excess_deviance_risk(family: families.Family, mean_true, mean_fitted, *,
                         weights=None) -> float:
    r"""Exact excess deviance risk ``R - R*`` of a fitted mean, for a known truth.

    For an exponential-dispersion family the unit deviance is
    ``d(y, mu) = 2 [y theta(y) - b(theta(y)) - y theta(mu) + b(theta(mu))]``
    (``theta`` the canonical parameter); ``d(y, mu_hat) - d(y, mu*)`` is linear in
    ``y``, so its conditional expectation given ``x`` needs only ``E(y | x) = mu*(x)``:

    .. math::

        E[d(y, \hat\mu(x)) - d(y, \mu^*(x)) \mid x] = d(\mu^*(x), \hat\mu(x)),

    the unit deviance evaluated at ``y = mu*`` (for binomial and Poisson twice the
    Kullback-Leibler divergence; for the Gaussian family ``(mu* - mu_hat)^2``). The
    excess risk is its average over the input law, here over given points (a large
    fixed sample shared across replications, or quadrature nodes) with ``weights``.
    It is exact for any outcome law with mean ``mu*`` (no test-label noise).

    Parameters
    ----------
    family : statsmodels family
    mean_true : array_like (N,)
        ``mu*(x_i)``.
    mean_fitted : array_like (N,)
        ``mu_hat(x_i)`` of the fitted pipeline.
    weights : array_like (N,), optional
        Quadrature weights (normalised here); default equal weights. For a GLM with
        ``var_weights``, multiply them in: the risk is then ``E[a d(y, mu_hat)]``.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from statsmodels.genmod import families
    >>> p, q = np.array([0.2, 0.5]), np.array([0.25, 0.4])
    >>> kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    >>> bool(np.isclose(excess_deviance_risk(families.Binomial(), p, q), 2 * kl.mean()))
    True
    """
    mu_star = np.asarray(mean_true, dtype=float).ravel()
    mu_hat = np.asarray(mean_fitted, dtype=float).ravel()
    if mu_star.shape != mu_hat.shape:
        raise ValueError(f"mean_true and mean_fitted must have the same length; got "
                         f"{mu_star.size} and {mu_hat.size}.")
    w = np.ones_like(mu_star) if weights is None else np.broadcast_to(
        np.asarray(weights, dtype=float), mu_star.shape)
    if np.any(w < 0) or not w.sum() > 0:
        raise ValueError("weights must be non-negative with a positive sum.")
    unit = family.resid_dev(mu_star, mu_hat) ** 2  # resid_dev = sign * sqrt(unit deviance)
    return float(w @ unit / w.sum())


def deviance_risk_asymptotics(results, *, fine_tuning: str = "model",
                              average_label_noise: bool = False):
    r"""Plug-in limit law of the deviance risk of a GLM-type two-stage fit.

    ``n (R - R*) -> sum_j lambda_j chi2_1 + alpha^{-1} sum_j kappa_j chi2_1``
    (independent parts; docs, theory page):

    * ``kappa`` by :func:`~ssl_inference.risk.plugin_risk_weights` with
      ``weights = omega_hat`` (the working weights ``a mu'(eta_hat)^2 / V(mu_hat)`` at
      the fitted linear predictor): the residualised directional derivatives of the
      fitted linear predictor in the ``omega``-weighted norm, and the first-stage
      influences;
    * ``lambda``: ``fine_tuning="model"``: ``d_eff`` copies of the dispersion
      ``phi_hat`` (statsmodels' ``scale``: 1 for binomial and Poisson, Pearson's
      estimate for the other GLM families), right when the variance function is;
      ``"robust"``: the sandwich :func:`fine_tuning_weights`, right when only the
      mean is.

    ``R`` is the expected deviance of the fitted pipeline on a new draw (random
    through both samples, labels included). ``average_label_noise=True`` describes
    instead its average over the labels given all inputs (the paper's convention for
    least squares): the fine-tuning part is then the point mass at its mean
    (``phi_hat d_eff`` for ``"model"``), and a Gaussian GLM with identity link gives
    the least-squares law of the same fit.

    Parameters
    ----------
    results : two-stage GLM, Logit, Probit or Poisson results
    fine_tuning : {"model", "robust"}
        Estimate of the fine-tuning weights.
    average_label_noise : bool
        Average the risk over the label noise given the inputs.

    Returns
    -------
    RiskAsymptotics
        With ``loss`` e.g. ``"Binomial deviance"``, ``sigma2 = phi_hat``,
        ``fine_tuning_law`` and ``d_base`` (covariates + raw inputs for feature maps
        affine in the raw inputs; the baseline is the same GLM on them).

    Raises
    ------
    ValueError
        For an unknown ``fine_tuning``.
    NotImplementedError
        For GLM ``freq_weights``.

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> scales = np.array([3.0, 2.0, 1.0, 0.5])
    >>> rep = ssi.PCA(2).fit(rng.normal(size=(1000, 4)) * scales)
    >>> X = rng.normal(size=(800, 4)) * scales
    >>> y = (rng.random(800) < 1 / (1 + np.exp(-0.4 * X[:, 0]))).astype(float)
    >>> res = ssi.Logit(y, np.ones((800, 1)), representation=rep, features=X).fit(disp=0)
    >>> ra = deviance_risk_asymptotics(res)
    >>> ra.loss, ra.fine_tuning_law.weights      # binomial: chi2 with d_eff = 3 df
    ('Binomial deviance', array([1., 1., 1.]))
    >>> robust = deviance_risk_asymptotics(res, fine_tuning="robust")
    >>> bool(np.all(np.abs(robust.fine_tuning_law.weights - 1) < 0.25))
    True
    """
    from .asymptotics import RiskAsymptotics, _plugin_pretraining

    res = getattr(results, "_results", results)
    if fine_tuning not in FINE_TUNING:
        raise ValueError(f"fine_tuning must be one of {FINE_TUNING}; got {fine_tuning!r}.")
    if not isinstance(average_label_noise, (bool, np.bool_)):
        raise TypeError(f"average_label_noise must be True or False; got "
                        f"{average_label_noise!r}.")
    model = res.model
    family = second_stage_family(model)
    if family is None:
        raise ValueError("deviance_risk_asymptotics needs a GLM-type second stage; for "
                         "OLS/WLS use results.risk_asymptotics() (squared-error risk).")
    prior = _prior_weights(model)
    design = np.asarray(model.exog, dtype=float)
    params = np.asarray(res.params)
    eta = np.asarray(model.predict(params, which="linear"), dtype=float)
    omega, _ = _working_quantities(family, model.endog, eta, prior)
    kappa, d_eff, d_base = _plugin_pretraining(
        res, None if np.all(omega == 1.0) else omega)
    phi = float(res.scale)
    if fine_tuning == "model":
        fine_law = (None if average_label_noise
                    else WeightedChiSquare(np.full(d_eff, phi)))
    else:
        lam = fine_tuning_weights(design, model.endog, eta, family, prior_weights=prior)
        fine_law = (WeightedChiSquare(np.zeros(0), shift=float(lam.sum()))
                    if average_label_noise else WeightedChiSquare(lam))
    return RiskAsymptotics(WeightedChiSquare(kappa), sigma2=phi, d_eff=d_eff,
                           nobs=design.shape[0],
                           nobs_pretrain=model.representation.nobs_, d_base=d_base,
                           fine_tuning_law=fine_law,
                           loss=f"{type(family).__name__} deviance")
