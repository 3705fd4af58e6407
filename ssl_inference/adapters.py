r"""Bring a fitted scikit-learn or statsmodels first stage: :func:`from_sklearn`,
:func:`from_statsmodels`.

An estimator of another library gives point estimates but not the influence functions
two-stage inference needs. The adapters read its estimates, rebuild the matching
ssl_inference first stage on the same ``X_pre`` and return it *with the same
features the estimator produces*: whitening, standardisation, centring, scaling and the
estimator's own signs, rotation or component labels are reproduced (the last three by
moving the fitted representation along its symmetry orbit, :meth:`act`), and checked on
``X_pre``.

The influence is a linearisation at the optimum of the first stage's objective. Where
the estimator's estimate is exactly that optimum (scikit-learn's ``PCA`` with an exact
solver, statsmodels' ``PCA``), nothing changes; where it is only close
(``IncrementalPCA``, ``FactorAnalysis`` and statsmodels' ``Factor`` stop at an
optimiser tolerance, ``GaussianMixture`` adds ``reg_covar`` to the covariances,
randomized solvers approximate), the estimate is *polished*: Newton steps from the
user's estimate (eigen-decompositions are recomputed exactly) reach the optimum, the
returned representation says so in ``adapted_from_`` and a
:class:`~ssl_inference.exceptions.PolishedEstimateWarning` gives the largest change of
the features. Estimates far from any optimum (features changing by more than 5%) are
refused rather than replaced.

==================================================  ==================================================
estimator                                           ssl_inference first stage (features)
==================================================  ==================================================
``sklearn.decomposition.PCA`` (``whiten`` too)      ``PCA(k, whiten=, feature_scale=)`` (``transform``)
``sklearn.decomposition.IncrementalPCA``            the same, polished
``sklearn.decomposition.FactorAnalysis``            ``FactorModel(k)``, polished, any rotation
                                                    (``transform``: posterior means)
``sklearn.mixture.GaussianMixture``                 ``GaussianMixture(K, coding="full")``, polished
                                                    (``predict_proba``); not ``tied``
``statsmodels.multivariate.pca.PCA``                ``PCA(k, standardize=, whiten=, feature_scale=)``
                                                    (``factors``)
``statsmodels.multivariate.factor.Factor`` (ML)     ``FactorModel(k, scores=, feature_scale=)``,
                                                    polished, orthogonal rotations of its results
                                                    (``factor_scoring``)
==================================================  ==================================================
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._validation import as_float_matrix
from .exceptions import PolishedEstimateWarning, UnsupportedEstimatorError
from .representations import PCA, FactorModel, GaussianMixture, Representation
from .symmetry import PermutationContrasts

__all__ = ["from_sklearn", "from_statsmodels", "Adaptation", "adapter_hint"]

#: Relative feature difference below which the estimator's features count as reproduced.
SAME_FEATURES = 1e-8
#: Relative feature difference above which a polished estimate is refused.
FAR_FROM_OPTIMUM = 5e-2

SKLEARN_SUPPORTED = ("sklearn.decomposition.PCA", "sklearn.decomposition.IncrementalPCA",
                     "sklearn.decomposition.FactorAnalysis", "sklearn.mixture.GaussianMixture")
STATSMODELS_SUPPORTED = ("statsmodels.multivariate.pca.PCA",
                         "statsmodels.multivariate.factor.Factor (method='ml', fitted)",
                         "its FactorResults")


@dataclass(frozen=True)
class Adaptation:
    """Where a representation made by :func:`from_sklearn` / :func:`from_statsmodels`
    came from (its ``adapted_from_`` attribute).

    Attributes
    ----------
    source : str
        The estimator's class, e.g. ``"sklearn.decomposition.PCA"``.
    features : str
        Which output of the estimator the features reproduce.
    polished : bool
        Whether the estimator's estimate was moved to the optimum the influence assumes.
    feature_difference : float
        Largest absolute difference between the representation's features and the
        estimator's on ``X_pre``, relative to the largest feature.
    note : str
        What was recomputed, in words.
    """

    source: str
    features: str
    polished: bool
    feature_difference: float
    note: str


def from_sklearn(estimator, X_pre, *, symmetry: str | None = None,
                 coding: str | None = None, feature_prefix: str | None = None
                 ) -> Representation:
    """The ssl_inference first stage of a fitted scikit-learn estimator, same features.

    Parameters
    ----------
    estimator : fitted scikit-learn estimator
        ``PCA``, ``IncrementalPCA``, ``FactorAnalysis`` or ``GaussianMixture``.
    X_pre : array_like or DataFrame (m, p)
        The rows the estimator was fitted on (checked against its fitted mean or size).
    symmetry : {"sign", "rotation"}, optional
        PCA and IncrementalPCA: ``"sign"`` (default; each component is a target) or
        ``"rotation"`` (only the subspace), see :class:`~ssl_inference.PCA`.
    coding : {"full", "contrast"}, optional
        GaussianMixture: ``"full"`` (default) reproduces ``predict_proba``;
        ``"contrast"`` gives its ``K - 1`` Helmert contrasts instead, for a second stage
        with an intercept (see :class:`~ssl_inference.GaussianMixture`).
    feature_prefix : str, optional
        Prefix of the feature names (default: the representation's own).

    Returns
    -------
    Representation
        Fitted on ``X_pre``, with ``transform(X)`` equal to the estimator's ``transform``
        (``predict_proba`` for a mixture) and ``adapted_from_`` (:class:`Adaptation`).

    Raises
    ------
    UnsupportedEstimatorError
        For other estimators (the message lists the supported ones) and for settings no
        ssl_inference first stage reproduces exactly (a ``tied`` mixture covariance,
        ``n_components`` equal to the number of features).

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> from sklearn.decomposition import PCA
    >>> X_pre = np.random.default_rng(0).normal(size=(500, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> sk = PCA(n_components=2, whiten=True).fit(X_pre)
    >>> rep = ssi.from_sklearn(sk, X_pre)
    >>> rep
    PCA(n_components=2, whiten=True, feature_scale=0.998999)
    >>> bool(np.allclose(rep.transform(X_pre), sk.transform(X_pre), rtol=0, atol=1e-10))
    True
    >>> rep.adapted_from_.polished
    False
    """
    kind = _qualified_name(estimator)
    if not kind.startswith("sklearn."):
        raise UnsupportedEstimatorError(
            f"from_sklearn takes a fitted scikit-learn estimator; got {kind}. "
            + _other_adapter(kind) + f" Supported: {', '.join(SKLEARN_SUPPORTED)}.")
    name = type(estimator).__name__
    options = {"symmetry": symmetry, "coding": coding}
    if name in ("PCA", "IncrementalPCA") and kind.startswith("sklearn.decomposition"):
        _only(options, ("symmetry",), name)
        rep, features = _sklearn_pca(estimator, X_pre, symmetry or "sign")
    elif name == "FactorAnalysis" and kind.startswith("sklearn.decomposition"):
        _only(options, (), name)
        rep, features = _sklearn_factor(estimator, X_pre)
    elif name == "GaussianMixture" and kind.startswith("sklearn.mixture"):
        _only(options, ("coding",), name)
        rep, features = _sklearn_mixture(estimator, X_pre, coding or "full")
    else:
        raise UnsupportedEstimatorError(
            f"from_sklearn cannot wrap {kind}: no ssl_inference first stage reproduces its "
            f"features and influence. Supported: {', '.join(SKLEARN_SUPPORTED)}; for "
            "another first stage see the user guide 'Bring your own first stage' "
            "(MEstimatorRepresentation).")
    return _finish(rep, features, kind, feature_prefix)


def from_statsmodels(model_or_results, X_pre, *, symmetry: str | None = None,
                     scores: str | None = None, feature_prefix: str | None = None
                     ) -> Representation:
    """The ssl_inference first stage of a fitted statsmodels PCA or Factor, same features.

    Parameters
    ----------
    model_or_results : statsmodels PCA, Factor (fitted) or FactorResults
        ``statsmodels.multivariate.pca.PCA`` (computed on construction) or an ML
        ``statsmodels.multivariate.factor.Factor`` after ``fit()`` (or the results
        ``fit()`` returned, whose orthogonal rotation is kept).
    X_pre : array_like or DataFrame (m, p)
        The rows the model was built on (checked against its ``data`` / ``endog``).
    symmetry : {"sign", "rotation"}, optional
        PCA only: see :class:`~ssl_inference.PCA` (default ``"sign"``).
    scores : {"bartlett", "regression"}, optional
        Factor only: the ``method`` of ``factor_scoring`` to reproduce (default
        ``"bartlett"``, statsmodels' default).
    feature_prefix : str, optional

    Returns
    -------
    Representation
        Its features on ``X_pre`` equal the PCA's ``factors`` or the Factor results'
        ``factor_scoring(method=scores)``; ``transform`` applies the same map to new
        rows (statsmodels' PCA cannot). ``adapted_from_`` is an :class:`Adaptation`.

    Raises
    ------
    UnsupportedEstimatorError
        For other objects and for settings without an exact counterpart: PCA with
        ``demean=False``, ``weights`` or ``gls=True``; Factor with ``method='pa'``
        (principal axes is not maximum likelihood), an oblique rotation, or built from
        a correlation matrix only.

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> from statsmodels.multivariate.pca import PCA
    >>> X_pre = np.random.default_rng(0).normal(size=(500, 4)) @ np.triu(np.ones((4, 4)))
    >>> pc = PCA(X_pre, ncomp=2)                      # standardized, normalized factors
    >>> rep = ssi.from_statsmodels(pc, X_pre)
    >>> rep
    PCA(n_components=2, standardize=True, whiten=True, feature_scale=0.0447214)
    >>> bool(np.allclose(rep.transform(X_pre), pc.factors, rtol=0, atol=1e-10))
    True
    """
    kind = _qualified_name(model_or_results)
    options = {"symmetry": symmetry, "scores": scores}
    if kind == "statsmodels.multivariate.pca.PCA":
        _only(options, ("symmetry",), "statsmodels PCA")
        rep, features = _statsmodels_pca(model_or_results, X_pre, symmetry or "sign")
    elif kind in ("statsmodels.multivariate.factor.Factor",
                  "statsmodels.multivariate.factor.FactorResults"):
        _only(options, ("scores",), "statsmodels Factor")
        rep, features = _statsmodels_factor(model_or_results, X_pre, scores or "bartlett")
    else:
        raise UnsupportedEstimatorError(
            f"from_statsmodels cannot wrap {kind}. " + _other_adapter(kind)
            + f" Supported: {', '.join(STATSMODELS_SUPPORTED)}.")
    return _finish(rep, features, kind, feature_prefix)


# --------------------------------------------------------------------------- scikit-learn
def _sklearn_pca(est, X_pre, symmetry):
    _require_fitted(est, "components_")
    arr = as_float_matrix(X_pre, "X_pre")
    m, p = arr.shape
    k = int(est.n_components_)
    _check_shape(est, arr)
    _check_rows(getattr(est, "n_samples_", getattr(est, "n_samples_seen_", m)), m,
                type(est).__name__)
    _check_mean(est.mean_, arr, type(est).__name__)
    if k >= p:
        raise UnsupportedEstimatorError(
            f"{type(est).__name__} keeps all {p} components: its features are a rotation "
            "of the raw data and carry no learned representation (ssi.PCA needs "
            "n_components < p). Refit it with fewer components.")
    exact = type(est).__name__ == "PCA" and est.svd_solver in ("full", "covariance_eigh")
    rep = PCA(k, symmetry=symmetry, whiten=bool(est.whiten),
              feature_scale=float(np.sqrt((m - 1) / m)) if est.whiten else 1.0).fit(X_pre)
    rep = _move_onto(rep, est.components_)
    note = ("all p eigenpairs recomputed from X_pre (the influence needs them; "
            f"{type(est).__name__} keeps k)")
    if not exact:
        note += "; the estimator's components approximate them, so the features are polished"
    return rep, (est.transform(X_pre), "transform", note)


def _sklearn_factor(est, X_pre):
    _require_fitted(est, "components_")
    arr = as_float_matrix(X_pre, "X_pre")
    _check_shape(est, arr)
    _check_mean(est.mean_, arr, "FactorAnalysis")
    k = est.components_.shape[0]
    rep = FactorModel(k)._fit_at(X_pre, est.components_.T, est.noise_variance_)
    rep = _move_onto(rep, est.components_)
    return rep, (est.transform(X_pre), "transform (posterior means, scores='regression')",
                 "maximum likelihood reached by Newton steps from the estimator's loadings "
                 f"and noise variances (it stops at tol={est.tol:g})")


def _sklearn_mixture(est, X_pre, coding):
    _require_fitted(est, "means_")
    if est.covariance_type == "tied":
        raise UnsupportedEstimatorError(
            "GaussianMixture(covariance_type='tied') has no ssl_inference counterpart: "
            "ssi.GaussianMixture supports 'full', 'diag' and 'spherical' covariances. "
            "Refit with one of them.")
    arr = as_float_matrix(X_pre, "X_pre")
    _check_shape(est, arr)
    K = est.n_components
    seed = est.random_state if isinstance(est.random_state, (int, np.integer)) else 0
    rep = GaussianMixture(K, covariance_type=est.covariance_type, coding=coding,
                          n_init=est.n_init, max_iter=est.max_iter, random_state=seed)
    rep._fit_at(X_pre, est.weights_, est.means_, est.precisions_cholesky_)
    rep = _move_onto(rep, est.means_)
    proba = est.predict_proba(X_pre)
    if coding == "contrast":
        proba = proba @ PermutationContrasts.contrast_matrix(K)
    return rep, (proba, "predict_proba" + (" (Helmert contrasts)" if coding == "contrast"
                                           else ""),
                 "maximum likelihood reached by Newton steps from the estimator's weights, "
                 f"means and precisions (it adds reg_covar={est.reg_covar:g} to the "
                 "covariances and stops at tol)")


# ---------------------------------------------------------------------------- statsmodels
def _statsmodels_pca(pc, X_pre, symmetry):
    arr = _same_data(pc.data, X_pre, "statsmodels PCA was computed on")
    m, p = arr.shape
    if np.any(np.asarray(pc.weights) != 1.0):
        raise UnsupportedEstimatorError(
            "statsmodels PCA with weights (or gls=True) reweights the columns; ssi.PCA "
            "has no such option. Use the unweighted PCA.")
    transformed = np.asarray(pc.transformed_data, dtype=float)
    centred = arr - arr.mean(axis=0)
    if np.allclose(transformed, centred / arr.std(axis=0), rtol=1e-10, atol=1e-12):
        standardize = True
    elif np.allclose(transformed, centred, rtol=1e-10, atol=1e-12):
        standardize = False
    else:
        raise UnsupportedEstimatorError(
            "statsmodels PCA with demean=False (components of the uncentred second "
            "moment) has no ssl_inference counterpart: ssi.PCA always centres. Use "
            "demean=True.")
    factors = np.asarray(pc.factors, dtype=float)
    k = factors.shape[1]
    if k >= p:
        raise UnsupportedEstimatorError(
            f"statsmodels PCA with ncomp={k} = p keeps all components: the factors are a "
            "rotation of the data and carry no learned representation. Pass ncomp < p.")
    normalized = np.allclose((factors ** 2).sum(axis=0), 1.0, rtol=1e-8)
    rep = PCA(k, symmetry=symmetry, standardize=standardize, whiten=normalized,
              feature_scale=1.0 / np.sqrt(m) if normalized else 1.0).fit(X_pre)
    rep = _move_onto(rep, np.asarray(pc.loadings, dtype=float).T)
    return rep, (factors, "factors", "eigen-decomposition recomputed from X_pre (all p "
                                     "eigenpairs, which the influence needs)")


def _statsmodels_factor(obj, X_pre, scores):
    from statsmodels.multivariate.factor import FactorResults

    model = obj.model if isinstance(obj, FactorResults) else obj
    if model.loadings is None:
        raise ValueError("This statsmodels Factor is not fitted: call .fit() first (and "
                         "pass the model or the results it returns).")
    results = obj if isinstance(obj, FactorResults) else FactorResults(model)
    if str(model.method).lower() != "ml":
        raise UnsupportedEstimatorError(
            f"statsmodels Factor(method={model.method!r}) is not maximum likelihood, and "
            "ssi.FactorModel's influence is that of the ML estimator. Use "
            "Factor(..., method='ml').")
    if model.endog is None:
        raise UnsupportedEstimatorError(
            "This statsmodels Factor was built from a correlation matrix only (corr=): it "
            "has no data to compute features from. Build it from the data (endog=X_pre).")
    arr = _same_data(model.endog, X_pre, "statsmodels Factor was fitted on")
    T = np.asarray(results.rotation_matrix, dtype=float)
    L0, L = np.asarray(model.loadings), np.asarray(results.loadings)
    if not (np.allclose(T.T @ T, np.eye(T.shape[0]), atol=1e-8)
            and np.allclose(L @ L.T, L0 @ L0.T, rtol=0, atol=1e-8)):
        raise UnsupportedEstimatorError(
            f"The {results.rotation_method!r} rotation is oblique: the rotated factors are "
            "correlated and are not a rotation of the ML factors by an orthogonal matrix, "
            "so ssi.FactorModel (identified up to O(k)) cannot reproduce them. Use an "
            "orthogonal rotation (varimax, quartimax, ...) or none.")
    if scores not in ("bartlett", "regression"):
        raise ValueError(f"scores must be 'bartlett' or 'regression'; got {scores!r}.")
    m = arr.shape[0]
    sd = arr.std(axis=0)
    rep = FactorModel(model.n_factor, scores=scores,
                      feature_scale=float(np.sqrt((m - 1) / m)))._fit_at(
        X_pre, sd[:, None] * np.asarray(model.loadings), sd ** 2 * np.asarray(model.uniqueness))
    rep = _move_onto(rep, L.T * sd)
    return rep, (results.factor_scoring(method=scores), f"factor_scoring(method={scores!r})",
                 "maximum likelihood reached by Newton steps from statsmodels' loadings and "
                 "uniquenesses (its optimiser stops at a gradient tolerance); features from "
                 "data standardised with divisor m - 1, as statsmodels does")


# --------------------------------------------------------------------------------- helpers
def _finish(rep: Representation, features, source: str, feature_prefix) -> Representation:
    theirs, what, note = features
    theirs = np.asarray(theirs, dtype=float)
    ours = rep.transform(rep.pretrain_data_[:, :rep.n_features_in_])
    difference = float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-300))
    polished = difference > SAME_FEATURES
    if difference > FAR_FROM_OPTIMUM:
        raise ValueError(
            f"The {source}'s estimate is far from the optimum of its objective: at the "
            f"nearest optimum (where the influence functions hold) its features change by "
            f"{difference:.2g} (relative). Refit it to convergence (a smaller tol, more "
            "iterations or starts) or fit the ssl_inference first stage directly.")
    if polished:
        warnings.warn(
            f"The {source}'s estimate is not exactly the optimum the influence functions "
            f"assume ({note}): the returned first stage is that optimum, and its features "
            f"differ from the estimator's {what} by up to {difference:.2g} (relative) on "
            "X_pre. Standard errors refer to these features; see adapted_from_.",
            PolishedEstimateWarning, stacklevel=3)
    if feature_prefix is not None:
        rep.feature_prefix = feature_prefix
    rep.adapted_from_ = Adaptation(source, what, polished, difference, note)
    return rep


def _move_onto(rep: Representation, coordinates: np.ndarray) -> Representation:
    """Move ``rep`` along its orbit onto the estimator's signs, rotation or labels."""
    g = rep.symmetry_.align(rep.alignment_coordinates(), np.asarray(coordinates, dtype=float))
    return rep.act(g)


def _qualified_name(obj) -> str:
    kind = type(obj)
    module = kind.__module__
    public = {"sklearn.decomposition._pca": "sklearn.decomposition",
              "sklearn.decomposition._incremental_pca": "sklearn.decomposition",
              "sklearn.decomposition._factor_analysis": "sklearn.decomposition",
              "sklearn.mixture._gaussian_mixture": "sklearn.mixture"}.get(module, module)
    return f"{public}.{kind.__qualname__}"


def adapter_hint(obj) -> str:
    """What to do with a foreign estimator passed where a representation is expected.

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> adapter_hint(PCA(2)).split(":")[0]
    'Wrap a fitted scikit-learn estimator with ssi.from_sklearn(estimator, X_pre)'
    """
    kind = _qualified_name(obj)
    if kind.startswith("sklearn."):
        return ("Wrap a fitted scikit-learn estimator with ssi.from_sklearn(estimator, "
                "X_pre): it returns the matching ssl_inference first stage with the same "
                f"features (supported: {', '.join(SKLEARN_SUPPORTED)}).")
    if kind.startswith("statsmodels."):
        return ("Wrap a fitted statsmodels model with ssi.from_statsmodels(model, X_pre): it "
                "returns the matching ssl_inference first stage with the same features "
                f"(supported: {', '.join(STATSMODELS_SUPPORTED)}).")
    return ("Fit an ssl_inference first stage on X_pre, or define your own (user guide: "
            "'Bring your own first stage').")


def _other_adapter(kind: str) -> str:
    if kind.startswith("sklearn."):
        return "For scikit-learn estimators use ssi.from_sklearn(estimator, X_pre)."
    if kind.startswith("statsmodels."):
        return "For statsmodels models use ssi.from_statsmodels(model, X_pre)."
    if kind.startswith("ssl_inference."):
        return "An ssl_inference representation needs no adapter: pass it directly."
    return ""


def _only(options: dict, allowed: tuple, what: str) -> None:
    given = sorted(name for name, value in options.items()
                   if value is not None and name not in allowed)
    if given:
        raise TypeError(f"{given} do not apply to {what} (options for it: "
                        f"{list(allowed) or 'none'}).")


def _require_fitted(est, attribute: str) -> None:
    if not hasattr(est, attribute):
        raise ValueError(f"This {type(est).__name__} is not fitted: call .fit(X_pre) first "
                         "(the adapter reuses its estimates).")


def _check_shape(est, arr: np.ndarray) -> None:
    if est.n_features_in_ != arr.shape[1]:
        raise ValueError(
            f"X_pre has {arr.shape[1]} columns but the {type(est).__name__} was fitted on "
            f"{est.n_features_in_}: pass the rows it was fitted on.")


def _check_rows(n_fitted: int, m: int, name: str) -> None:
    if int(n_fitted) != m:
        raise ValueError(f"The {name} was fitted on {int(n_fitted)} rows but X_pre has {m}: "
                         "pass the rows it was fitted on.")


def _same_data(data, X_pre, what: str) -> np.ndarray:
    """``X_pre`` as an array, checked to be the model's own data."""
    arr = as_float_matrix(X_pre, "X_pre")
    data = np.asarray(data, dtype=float)
    if data.shape != arr.shape or not np.allclose(data, arr, rtol=1e-12, atol=0):
        raise ValueError(
            f"X_pre ({arr.shape}) is not the data this {what} ({data.shape}): pass the "
            "same rows, in the same order.")
    return arr


def _check_mean(mean, arr: np.ndarray, name: str) -> None:
    mean = np.asarray(mean, dtype=float)
    scale = arr.std(axis=0) + 1e-300
    gap = np.abs(mean - arr.mean(axis=0)) / scale
    if gap.max() > 1e-6:
        raise ValueError(
            f"X_pre is not the data the {name} was fitted on: its column means differ from "
            f"the estimator's mean_ by up to {gap.max():.2g} standard deviations. The "
            "influence functions are computed from X_pre, so pass exactly those rows.")
