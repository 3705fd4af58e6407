r"""Gaussian mixture features fitted by EM, with their influence functions and VJPs.

The first stage is the maximum-likelihood Gaussian mixture (THEORY.md §4.4), the
features are posterior responsibilities (or the paper's gated features), and the
label-permutation group ``S_K`` is fixed by a documented gauge. The class assembles
the parts: the parametrisation (:mod:`.layout`), the EM fit (:mod:`.em`), the
likelihood, score and Hessian behind the influence (:mod:`.likelihood`), the features
and their VJPs (:mod:`.features`) and the identification diagnostics
(:mod:`.diagnostics`).
"""
from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from ..._validation import as_float_matrix
from ..chunked import refuse_dask
from ...exceptions import ConvergenceWarning
from ...symmetry import (Orthogonal, PermutationContrasts, PermutationProduct, Permutations,
                         SignFlips)
from ..linearization import MEstimatorBase
from .diagnostics import MixtureDiagnostics
from .contraction import contracted_scores, prepare_contraction
from .em import best_em_start, newton_polish, to_gauge
from .features import MixtureFeatures
from .layout import Layout
from .likelihood import component_gradient, log_likelihood, mean_hessian, posterior

__all__ = ["GaussianMixture"]

COVARIANCE_TYPES = ("full", "diag", "spherical")
FEATURE_TYPES = ("responsibilities", "gated")


#: Why GaussianMixture.fit refuses dask arrays (refuse_dask)
DASK_REASON = ("its EM starts (k-means++ seeding over all rows) and EM steps keep "
               "per-row responsibilities in memory.")

class GaussianMixture(MixtureFeatures, MixtureDiagnostics, MEstimatorBase):
    r"""Gaussian mixture features learned on a pre-training sample, for two-stage inference.

    The first stage is the maximum-likelihood ``K``-component Gaussian mixture

    .. math::

        p(x; \theta) = \sum_{k=0}^{K-1} \pi_k\, N(x; \mu_k, \Sigma_k),

    fitted by EM (k-means++ starts, the best of ``n_init``) and polished by Newton steps
    until the score is zero to rounding. The labels are fixed by a gauge (Notes); the
    label-permutation group ``S_K`` (times the sign flips or rotations of the gated
    coordinates, with ``features="gated"``) is reported as ``symmetry_``.

    Parameters
    ----------
    n_components : int
        Number of components ``K``, ``1 <= K <= m``.
    covariance_type : {"full", "diag", "spherical"}
        Component covariances: unrestricted, diagonal, or ``sigma_k^2 I``.
    features : {"responsibilities", "gated"}
        ``"responsibilities"``: posterior probabilities ``tau_k(x) = P(k | x)``.
        ``"gated"``: the paper's gated features ``(tau_k(x) B'(x - mu_k), tau_k(x))``
        for each component (Notes).
    coding : {"contrast", "full"}
        The ``K`` responsibilities sum to one, so next to an intercept they are
        collinear. ``"contrast"`` (default, for a second stage with an intercept) reports
        their ``K - 1`` orthonormal Helmert contrasts ``H' tau``; the intercept is then
        the unweighted mean of the ``K`` component levels. ``"full"`` keeps all ``K``:
        use it only in a second stage *without* an intercept (``"y ~ z - 1"``); its
        coefficients are the component levels. See Notes for why no component is
        dropped as a reference.
    gated_rank : int, optional
        ``r``, the dimension of the projection in the gated features,
        ``1 <= r <= min(K - 1, d)``; default ``min(K - 1, d)``. Only with
        ``features="gated"``.
    gated_symmetry : {"sign", "rotation"}
        How the basis ``B`` of the gated coordinates is identified (only with
        ``features="gated"``; ``"rotation"`` with responsibilities raises).
        ``"sign"``: ``B`` is the top-``r`` eigenvectors of the centred means' scatter
        ``M``, each identified up to sign (needs distinct top-``r`` eigenvalues); the
        group is ``S_K x {+-1}^r``. ``"rotation"``: only the span of ``B`` is the
        target (needs only a gap between eigenvalues ``r`` and ``r + 1``, e.g. the
        paper's design, whose centred means have ``K - 1`` equal scatter eigenvalues);
        the group is ``S_K x O(r)`` and only the horizontal (out-of-span) derivative of
        ``B`` is kept. Covariate and intercept coefficients, predictions, their
        standard errors and the test that the levels are equal agree between the
        modes; tests of the coordinate blocks differ in finite samples (sign mode adds
        the variance of the within-span mixing of ``B``, a term proportional to the
        coordinate coefficients; it vanishes under their null). See Notes.
    n_init : int
        Number of EM starts; the start with the largest log-likelihood is kept. A start
        whose EM degenerates (a component collapses onto fewer than ``d + 1`` distinct
        rows) is replaced by a fresh one, at most 10 times in all.
    max_iter : int
        Maximum EM iterations per start.
    tol : float
        EM stops when the mean log-likelihood per row changes by less than ``tol``;
        Newton steps then solve the score equations to rounding, so ``tol`` only
        needs to bring EM into the basin of the maximum.
    random_state : int, numpy Generator or None
        Seed of the k-means++ starts.
    feature_prefix : str
        Prefix of the feature names (``"gmm"`` gives ``gmm_h1, gmm_h2, ...`` for the
        contrasts, ``gmm0, gmm1, ...`` for ``coding="full"``).

    Attributes
    ----------
    weights_ : ndarray (K,)
    means_ : ndarray (K, d)
    covariances_ : ndarray
        ``(K, d, d)`` full, ``(K, d)`` diag, ``(K,)`` spherical (scikit-learn's shapes).
    precisions_cholesky_ : ndarray
        ``U_k`` with ``Sigma_k^{-1} = U_k U_k'`` (upper triangular, as scikit-learn),
        same shape convention as ``covariances_``.
    params_ : ndarray (q,)
        ``theta_hat`` in the parametrisation of the Notes, in the gauge.
    param_names_ : list of str
    hessian_ : ndarray (q, q)
        Average Hessian ``H = (1/m) sum_i d^2 log p(x_i) / d theta d theta'``.
    llf_ : float
        Log-likelihood of ``X_pre`` at ``params_``.
    converged_ : bool
        Whether EM met ``tol`` (for the kept start) within ``max_iter``.
    n_iter_ : int
        EM iterations of the kept start.
    n_failed_starts_ : int
        EM starts that degenerated and were replaced.
    gated_basis_ : ndarray (d, r)
        ``B``, with ``features="gated"`` (``B Q'`` after :meth:`act` with coordinate
        part ``Q``).
    symmetry_ : PermutationContrasts, Permutations or PermutationProduct
        The group with its action on the features. Responsibilities:
        ``PermutationContrasts(K)`` for ``coding="contrast"``, ``Permutations(K)`` for
        ``coding="full"``. Gated features: ``PermutationProduct(K, SignFlips(r))``
        (``gated_symmetry="sign"``) or ``PermutationProduct(K, Orthogonal(r))``
        (``"rotation"``), with ``contrasts=(coding == "contrast")``; if ``r = d`` in
        sign mode (``B = I``, not estimated) ``PermutationContrasts(K, r)`` or
        ``Permutations(K, r + 1)``.

    Notes
    -----
    **Parametrisation** (unconstrained, q = (K - 1) + K d + K c):
    ``eta_k = log(pi_k / pi_0)`` (k = 1..K-1); the means ``mu_k``; and the free entries of
    the upper-triangular precision Cholesky factor ``U_k`` (``Sigma_k^{-1} = U_k U_k'``)
    with the diagonal on the log scale: c = d(d+1)/2 (full, upper triangle row by row),
    d (diag: ``log U_jj = -log sigma_kj``) or 1 (spherical: ``-log sigma_k``). With
    ``v = x - mu_k``, ``w = U_k' v`` and ``l_k = log pi_k + log N(x; mu_k, Sigma_k)``:

    .. math::

        l_k = \log\pi_k + \sum_j \log U_{k,jj} - \tfrac{d}{2}\log 2\pi - \tfrac12 \|w\|^2,
        \qquad \frac{\partial l_k}{\partial \eta_j} = 1\{j = k\} - \pi_j,

    .. math::

        \frac{\partial l_k}{\partial \mu_k} = U_k U_k' v, \qquad
        \frac{\partial l_k}{\partial U_{k,ab}} = \frac{1\{a = b\}}{U_{k,aa}} - v_a w_b .

    The per-row score is ``s(x) = sum_k tau_k(x) d l_k / d theta`` with the
    responsibilities ``tau_k = exp(l_k) / sum_j exp(l_j)``.

    **Influence** (sandwich form, valid for non-Gaussian x): ``IF(x) = -H^{-1} s(x)``,
    ``H`` the average Hessian of ``log p``, computed analytically and streamed in chunks
    of rows:

    .. math::

        H = \frac1m \sum_i \Big[\sum_k \tau_k (\nabla^2 l_k + g_k g_k') - s s'\Big],
        \qquad g_k = \nabla l_k,

    where the ``tau``-weighted ``nabla^2 l_k`` needs only the weighted moments
    ``N_k, S1_k = sum tau v, S2_k = sum tau v v'`` (``d^2 l / d mu^2 = -U U'``,
    ``d^2 l / d mu_c d U_ab = 1{a=c} w_b + v_a U_cb``,
    ``d^2 l / d U_ab d U_ce = -1{a=b=c=e} / U_aa^2 - v_a v_c 1{b=e}``, plus the chain
    rule of the log-diagonal) and the logit block is ``-(diag pi - pi pi')``. The group
    ``S_K`` is finite, so there is no vertical direction: the influence is the ordinary
    one in the gauge.

    **Gauge**: the components are ordered by ``a' mu_k``, where ``a`` is the leading
    eigenvector of the centred means' scatter ``M = (1/K) sum_k (mu_k - mu_bar)
    (mu_k - mu_bar)'``, signed so that its entry of largest absolute value is positive
    (PCA's convention); exact ties are broken lexicographically by the means. The rule
    depends only on the set of fitted components, so it does not depend on the EM start
    or on the order of the rows. It is stable when the projections ``a' mu_k`` are well
    separated; if they nearly tie (or ``M`` has a nearly tied top eigenvalue) labels
    may switch between samples, which leaves invariant results unaffected.

    **Features and the group.** Relabelling permutes the responsibilities,
    ``tau(x; g.theta) = P_g tau(x; theta)``. With ``coding="full"`` the features are
    ``tau`` itself and ``symmetry_ = Permutations(K)``. With ``coding="contrast"`` they
    are ``H' tau`` (``H`` = :meth:`PermutationContrasts.contrast_matrix`, orthonormal
    columns orthogonal to the ones vector); since ``1' tau = 1``,
    ``H' P_g tau = (H' P_g H) H' tau``, an orthogonal linear action that leaves the
    intercept alone (``symmetry_ = PermutationContrasts(K)``). Dropping a reference
    component (treatment coding) was rejected: relabelling then changes the reference,
    so the group acts on intercept and features jointly and affinely; the intercept
    (the reference component's level) would be gauge-dependent while looking like an
    ordinary coefficient, and the package's invariance checks (which move only the
    feature block, ``T_g = blockdiag(I, rho(g))``) could not see it. The fitted values,
    covariate coefficients and predictions are the same in every coding.
    Gauge-free (invariant) hypotheses: anything on covariates and the intercept
    (contrast coding), predictions, and the joint test that all feature coefficients
    are zero ("the components have equal levels"; with ``coding="full"``: all
    coefficients equal). Individual contrast coefficients are gauge-dependent. With
    gated features the group also moves the coordinates (next paragraph).

    **Gated features** (paper §6.3): ``P`` is the projector onto the top-``r``
    eigenspace of ``M``. To keep the design full rank, ``P(x - mu_k)`` is reported in
    the coordinates ``B'(x - mu_k)``, ``B`` = the top-``r`` eigenvectors of ``M``
    (ordered by decreasing eigenvalue, largest ``|entry|`` positive; ``B = I`` when
    ``r = d``). Block ``k`` is ``(tau_k B'(x - mu_k), tau_k)`` with ``coding="full"``;
    with ``coding="contrast"`` the features are the ``K`` coordinate blocks
    ``tau_k B'(x - mu_k)`` followed by ``H' tau``. ``M`` is invariant under
    relabelling, so the blocks permute. ``B`` is a convention on top of ``P``: its
    column signs are arbitrary, and within a tied eigenspace so is the basis itself.
    Any ``B Q'`` (``Q`` orthogonal ``r x r``) reports the same ``P`` and moves the
    coordinates of every block by the same ``Q``, so the group acting on the features
    is the direct product (:class:`~ssl_inference.symmetry.PermutationProduct`)

    .. math::

        \rho(P_g, Q) = \mathrm{blockdiag}(P_g \otimes Q,\; H' P_g H)
        \quad\text{(contrast coding)}, \qquad
        \rho(P_g, Q) = P_g \otimes \mathrm{blockdiag}(Q, 1) \quad\text{(full coding)},

    with ``Q`` in ``{+-1}^r`` (``gated_symmetry="sign"``) or ``O(r)``
    (``"rotation"``). ``B`` depends on ``theta`` through the means, and its
    derivative is part of the VJP: the eigenvector perturbation
    ``dB_a = sum_b e_b (e_b' dM e_a) / (lambda_a - lambda_b)`` over all ``b != a``
    in sign mode, which needs distinct top-``r`` eigenvalues of ``M`` (near ties are
    reported with an ``IdentificationWarning`` that points to rotation mode); over
    ``b >= r`` only in rotation mode: the within-span terms move the features along
    the ``O(r)`` orbit (a gauge direction), exactly as PCA's rotation mode keeps only
    the horizontal influence. Rotation mode therefore needs only a gap between
    eigenvalues ``r`` and ``r + 1`` (also checked, with a warning). Its invariant
    hypotheses: anything on covariates and the intercept, predictions, the whole
    feature block, all gated coordinates jointly, the levels (contrasts) jointly and
    "equal coordinate effects of the K components"; sign mode adds each coordinate
    across all components (``gmm0_c0 = ... = gmm{K-1}_c0 = 0``) and its sums. A single
    block's coordinate (``gmm0_c0 = 0``) is never invariant.

    ``IdentificationWarning`` is issued when a component has fewer than two rows per
    parameter (``m pi_k < 2 (1 + d + c)``: a collapsing weight), when two components
    are not distinguishable (the Wald test of equal means and covariances does not
    reject at 5%), or when ``H`` is not negative definite (EM stopped off a strict
    maximum). They catch degenerate fits, not every over-fitted ``K``: a cluster split
    in two often looks regular at the sample maximum (slow EM convergence is a hint);
    choose ``K`` by BIC or a likelihood-ratio comparison.
    ``ConvergenceWarning`` is issued when EM reaches ``max_iter``.

    Examples
    --------
    >>> import numpy as np
    >>> import ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> X_pre = np.vstack([rng.normal(size=(150, 2)) + [4.0, 0.0],
    ...                    rng.normal(size=(150, 2)) - [4.0, 0.0]])
    >>> rep = ssi.GaussianMixture(2, random_state=0).fit(X_pre)
    >>> np.round(rep.means_[:, 0])          # gauge: ordered along the axis of the means
    array([-4.,  4.])
    >>> list(rep.get_feature_names_out())   # contrast of the two responsibilities
    ['gmm_h1']
    >>> rep.transform(np.array([[4.0, 0.0]])).round(3)   # (tau_0 - tau_1) / sqrt(2)
    array([[-0.707]])
    >>> rep.symmetry_.symbol
    'S_2'

    Gated features of three components whose centred means have two equal scatter
    eigenvalues: only the span of ``B`` is identified, so use rotation mode.

    >>> X3 = np.vstack([rng.normal(size=(200, 3)) + c for c in 4.0 * np.eye(3)])
    >>> gated = ssi.GaussianMixture(3, covariance_type="spherical", features="gated",
    ...                             gated_symmetry="rotation", random_state=0).fit(X3)
    >>> gated.symmetry_.symbol
    'S_3 x O(2)'
    >>> list(gated.get_feature_names_out())[:4]
    ['gmm0_c0', 'gmm0_c1', 'gmm1_c0', 'gmm1_c1']
    """

    gauge_convention = ("components ordered by their mean's coordinate on the leading "
                        "principal axis of the centred means (axis signed so its "
                        "largest-|entry| is positive); exact ties broken "
                        "lexicographically by the means")

    def __init__(self, n_components: int, *,
                 covariance_type: Literal["full", "diag", "spherical"] = "full",
                 features: Literal["responsibilities", "gated"] = "responsibilities",
                 coding: Literal["contrast", "full"] = "contrast",
                 gated_rank: int | None = None,
                 gated_symmetry: Literal["sign", "rotation"] = "sign", n_init: int = 5,
                 max_iter: int = 1000, tol: float = 1e-6, random_state=None,
                 feature_prefix: str = "gmm"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.features = features
        self.coding = coding
        self.gated_rank = gated_rank
        self.gated_symmetry = gated_symmetry
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.feature_prefix = feature_prefix

    # ------------------------------------------------------------ validation
    @staticmethod
    def _is_int(value) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    def _check_hyperparameters(self, m: int, d: int) -> int:
        """Validate the options against X_pre (m, d); return the gated rank r (or 0)."""
        K = self.n_components
        if not self._is_int(K) or not 1 <= K <= m:
            raise ValueError(
                f"n_components must be an integer with 1 <= n_components <= m = {m} (the "
                f"number of pre-training rows); got {K!r}."
            )
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}; got "
                             f"{self.covariance_type!r}.")
        if self.features not in FEATURE_TYPES:
            raise ValueError(
                f"features must be 'responsibilities' (posterior probabilities) or 'gated' "
                f"(the paper's gated features); got {self.features!r}."
            )
        if self.coding not in ("contrast", "full"):
            raise ValueError(
                f"coding must be 'contrast' (K - 1 contrasts of the responsibilities, for a "
                f"second stage with an intercept) or 'full' (all K, without an intercept); "
                f"got {self.coding!r}."
            )
        for name, low in (("n_init", 1), ("max_iter", 1)):
            value = getattr(self, name)
            if not self._is_int(value) or value < low:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if not (isinstance(self.tol, (int, float, np.floating)) and self.tol > 0):
            raise ValueError(f"tol must be a positive number; got {self.tol!r}.")
        if self.gated_symmetry not in ("sign", "rotation"):
            raise ValueError(
                f"gated_symmetry must be 'sign' (the gated basis B is identified up to the "
                f"signs of its columns) or 'rotation' (only the span of B is identified); "
                f"got {self.gated_symmetry!r}."
            )
        if self.features == "responsibilities":
            if self.gated_rank is not None:
                raise ValueError("gated_rank applies to features='gated' only.")
            if self.gated_symmetry != "sign":
                raise ValueError(
                    "gated_symmetry applies to features='gated' only (it says how the basis "
                    "of the gated coordinates is identified); responsibilities have no "
                    "coordinates to rotate. Remove gated_symmetry or use features='gated'."
                )
            if K == 1 and self.coding == "contrast":
                raise ValueError(
                    "With n_components=1 the only responsibility is identically 1 and has "
                    "no contrasts: there are no features; use n_components >= 2."
                )
            return 0
        if K < 2:
            raise ValueError("features='gated' needs n_components >= 2 (the projector is "
                             "built from the spread of the component means).")
        r = min(K - 1, d) if self.gated_rank is None else self.gated_rank
        if not self._is_int(r) or not 1 <= r <= min(K - 1, d):
            raise ValueError(
                f"gated_rank must be an integer with 1 <= gated_rank <= min(n_components - 1, "
                f"d) = {min(K - 1, d)} (the centred means span at most K - 1 dimensions); "
                f"got {r!r}."
            )
        return int(r)

    # ------------------------------------------------------------------- fit
    def fit(self, X, y=None) -> "GaussianMixture":
        """Fit the mixture on the pre-training rows ``X`` (m, d) and return ``self``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(1)
        >>> X = np.concatenate([rng.normal(-3, 1, 200), rng.normal(3, 1, 100)])[:, None]
        >>> rep = ssi.GaussianMixture(2, covariance_type="spherical", random_state=0).fit(X)
        >>> rep.weights_.round(2)
        array([0.67, 0.33])
        """
        return self._fit_em(X, None)

    def _fit_weighted(self, X, weights: np.ndarray, rows=None) -> "GaussianMixture":
        """Fit on the rows of ``X`` counted ``weights`` times: weighted EM (each M-step
        sum carries ``w_i tau_ik``), k-means++ starts drawn from the sample with the rows
        repeated in place (so the same random numbers pick the same rows as a fit on
        ``X[np.repeat(arange(m), weights)]``), weighted Newton polish, Hessian and
        diagnostics; ``X[rows]`` is never gathered."""
        return self._fit_em(X, np.asarray(weights, dtype=np.float64))

    def _fit_em(self, X, weights: np.ndarray | None) -> "GaussianMixture":
        """EM from the best of ``n_init`` starts, rows counted ``weights`` times."""
        refuse_dask(X, "GaussianMixture", DASK_REASON)
        arr = as_float_matrix(X, "X_pre")
        d = arr.shape[1]
        m = arr.shape[0] if weights is None else int(round(weights.sum()))
        r = self._check_hyperparameters(m, d)
        layout = Layout(self.n_components, d, self.covariance_type)
        mix, n_iter, converged, failures = best_em_start(
            arr, self.n_components, self.covariance_type, n_init=self.n_init,
            max_iter=self.max_iter, tol=self.tol,
            rng=np.random.default_rng(self.random_state), weights=weights)
        if not converged:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (change of the "
                f"mean log-likelihood still >= tol={self.tol:g}); the estimate was refined "
                "by Newton steps, but it may not be a local maximum. Increase max_iter.",
                ConvergenceWarning, stacklevel=2)
        theta = layout.pack(np.exp(mix.log_weights), mix.means, mix.prec_chol)
        self._set_fit(X, arr, layout, r, theta, weights)
        self.converged_ = bool(converged)
        self.n_iter_ = int(n_iter)
        self.n_failed_starts_ = len(failures)
        try:
            self._warn_if_unidentified()
        finally:
            self._fit_rows = None  # held for the diagnostics of a weighted fit only
        return self

    def _fit_at(self, X, weights, means, precisions_cholesky) -> "GaussianMixture":
        """Fit from a given estimate instead of EM: Newton steps polish it to the maximum
        of the likelihood, then the gauge and the linearisation as in :meth:`fit`.

        ``precisions_cholesky`` in scikit-learn's shapes (``(K, d, d)`` upper triangular,
        ``(K, d)`` or ``(K,)``); the adapter :func:`~ssl_inference.from_sklearn` uses it.
        """
        refuse_dask(X, "GaussianMixture", DASK_REASON)
        arr = as_float_matrix(X, "X_pre")
        m, d = arr.shape
        r = self._check_hyperparameters(m, d)
        K = self.n_components
        layout = Layout(K, d, self.covariance_type)
        U = np.asarray(precisions_cholesky, dtype=float)
        if self.covariance_type != "full":
            U = np.broadcast_to(U.reshape(K, -1), (K, d))[:, :, None] * np.eye(d)
        theta = layout.pack(np.asarray(weights, dtype=float), np.asarray(means, dtype=float), U)
        self._set_fit(X, arr, layout, r, theta)
        self.converged_, self.n_iter_, self.n_failed_starts_ = True, 0, 0
        self._warn_if_unidentified()
        return self

    def _set_fit(self, X, arr: np.ndarray, layout: Layout, r: int, theta: np.ndarray,
                 weights: np.ndarray | None = None) -> None:
        """Polish ``theta`` to the maximum (Newton), fix the gauge and linearise there
        (rows counted ``weights`` times when given: a replicate, which keeps no
        pre-training data, only ``_fit_rows`` for the diagnostics)."""
        K = self.n_components
        theta = to_gauge(layout, newton_polish(arr, layout, theta, weights))
        self._record_input_names(self, X)
        self.n_features_in_ = arr.shape[1]
        self.nobs_ = arr.shape[0] if weights is None else int(round(weights.sum()))
        self.pretrain_data_ = arr if weights is None else None
        self._fit_rows = None if weights is None else (arr, weights)
        self._layout = layout
        self._gated_rank = r
        self._gated_mode = self.gated_symmetry if r else None
        self._gated_rotation = np.eye(r)  # coordinates R B'(x - mu_k); R = I in the gauge
        self._set_params(theta)
        self.linearize(mean_hessian(layout, arr, self._mixture, weights=weights),
                       singular="pinv")
        self.llf_ = float(log_likelihood(arr, self._mixture, weights))
        self.param_names_ = layout.names()
        if r and (self._frame is not None or self._gated_mode == "rotation"):
            coordinates = SignFlips(r) if self._gated_mode == "sign" else Orthogonal(r)
            self.symmetry_ = PermutationProduct(K, coordinates,
                                                contrasts=self.coding == "contrast")
        else:  # responsibilities, or r = d in sign mode (B = I is not estimated)
            self.symmetry_ = (Permutations(K, r + 1) if self.coding == "full"
                              else PermutationContrasts(K, r))
        self.gauge_convention = type(self).gauge_convention + (
            "; gated basis B: the top-r eigenvectors of the centred means' scatter by "
            "decreasing eigenvalue, each signed so that its largest-|entry| is positive"
            if isinstance(self.symmetry_, PermutationProduct) else "")

    def _set_params(self, theta: np.ndarray) -> None:
        mix = self._layout.unpack(theta)
        self.params_ = theta
        self._mixture = mix
        self.weights_ = np.exp(mix.log_weights)
        self.means_ = mix.means.copy()
        U = mix.prec_chol
        cov = np.linalg.inv(U @ U.transpose(0, 2, 1))
        if self.covariance_type == "full":
            self.covariances_, self.precisions_cholesky_ = cov, U.copy()
        elif self.covariance_type == "diag":
            self.covariances_ = np.diagonal(cov, axis1=1, axis2=2).copy()
            self.precisions_cholesky_ = np.diagonal(U, axis1=1, axis2=2).copy()
        else:
            self.covariances_, self.precisions_cholesky_ = cov[:, 0, 0].copy(), U[:, 0, 0].copy()
        self._frame = self._gated_frame(mix.means) if self.features == "gated" else None
        if self.features == "gated":
            self.gated_basis_ = self._basis().copy()
        elif hasattr(self, "gated_basis_"):  # left over from an earlier gated fit
            del self.gated_basis_

    # ----------------------------------------------------------- likelihood
    def estimating_function(self, U) -> np.ndarray:
        """Per-row score ``s(x) = d log p(x; theta) / d theta`` at ``params_``, (n, q).

        The estimating function of the ML fit: ``IF(x) = -H^{-1} s(x)``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(-3, 1, 200), rng.normal(3, 1, 200)])[:, None]
        >>> rep = ssi.GaussianMixture(2, random_state=0).fit(X)
        >>> bool(np.abs(rep.estimating_function(X).mean(axis=0)).max() < 1e-10)  # the MLE
        True
        """
        self._check_fitted()
        X = self._validate_units(U)
        tau = posterior(X, self._mixture)[0]
        return component_gradient(self._layout, X, self._mixture, tau, per_row=True)

    def _prepare_contraction(self, K: np.ndarray | None):
        """Fold ``-K H_h^+`` into the score formula (:mod:`.contraction`): chunks cost
        ``O(rows K d^2 r)`` (full covariances; ``O(rows K d (d + r))`` otherwise)
        without the (rows, q) scores."""
        return prepare_contraction(self._layout, self._mixture,
                                   super()._prepare_contraction(K))

    def _contract_units(self, U: np.ndarray, prepared) -> np.ndarray:
        return contracted_scores(self._layout, self._mixture, U, prepared)

    def score_samples(self, X) -> np.ndarray:
        """Log-density ``log p(x; theta_hat)`` of each row, (n,).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(-2, 1, 300), rng.normal(2, 1, 300)])[:, None]
        >>> rep = ssi.GaussianMixture(2, random_state=0).fit(X)
        >>> bool(np.isclose(rep.score_samples(X).sum(), rep.llf_))
        True
        """
        return posterior(self._validate_rows(X, "X"), self._mixture)[1]

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of the rows ``X`` (scikit-learn's ``score``).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(-2, 1, 300), rng.normal(2, 1, 300)])[:, None]
        >>> rep = ssi.GaussianMixture(2, random_state=0).fit(X)
        >>> bool(np.isclose(rep.score(X) * 600, rep.llf_))
        True
        """
        return float(np.mean(self.score_samples(X)))

    # ------------------------------------------------------------- symmetry
    def act(self, g) -> "GaussianMixture":
        """A copy moved by ``g``: relabelled, and with gated features re-based.

        ``g`` is a permutation (new component ``i`` is old component ``g[i]``) or, when
        ``symmetry_`` is a :class:`~ssl_inference.symmetry.PermutationProduct`, a pair
        ``(labels, Q)`` with ``Q`` a sign vector or an orthogonal ``r x r`` matrix.
        ``theta`` moves by the linear map ``A`` of the relabelling (logits
        ``eta'_i = eta_{g[i]} - eta_{g[0]}``, mean and covariance blocks permuted), so
        the Hessian becomes ``A^-T H A^-1`` and influences ``A IF``. ``Q`` does not move
        ``theta`` (the basis ``B`` is a function of the means, not a parameter): it
        re-bases the gated coordinates of every block, ``gated_basis_`` becomes
        ``B Q'`` and the coordinates ``Q B'(x - mu_k)``. The features move by
        ``symmetry_.rho(g)``. The copy is not in the documented gauge unless ``g`` is
        the identity.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> X = np.vstack([rng.normal(size=(100, 2)) + c for c in ([0, 0], [5, 0], [0, 5])])
        >>> rep = ssi.GaussianMixture(3, coding="full", random_state=0).fit(X)
        >>> moved = rep.act(np.array([2, 0, 1]))
        >>> bool(np.allclose(moved.transform(X), rep.transform(X)[:, [2, 0, 1]]))
        True
        >>> gated = ssi.GaussianMixture(3, features="gated", gated_rank=1,
        ...                             random_state=0).fit(X)
        >>> gated.symmetry_.symbol
        'S_3 x {+-1}^1'
        >>> g = (np.array([2, 0, 1]), np.array([-1.0]))    # relabel and flip B
        >>> bool(np.allclose(gated.act(g).transform(X),
        ...                  gated.transform(X) @ gated.symmetry_.rho(g).T))
        True
        """
        self._check_fitted()
        moved = super().act(g)
        if self._frame is not None:
            # M is invariant under relabelling: keep its eigenbasis (recomputing it from
            # the permuted means could rotate a nearly tied eigenspace by rounding)
            moved._frame = self._frame
        if isinstance(self.symmetry_, PermutationProduct):
            _, coords = self.symmetry_.split(g)
            moved._gated_rotation = self.symmetry_.coordinates.rho(coords) @ self._gated_rotation
        if self.features == "gated":
            moved.gated_basis_ = moved._basis().copy()
        return moved

    def moved_params(self, g) -> tuple[np.ndarray, np.ndarray]:
        """``(A theta, A)``: the linear map ``A`` of the relabelling part of ``g``.

        Logits ``eta'_i = eta_{g[i]} - eta_{g[0]}``; mean and covariance blocks permuted.
        """
        self._check_fitted()
        if isinstance(self.symmetry_, PermutationProduct):
            perm = self.symmetry_.split(g)[0]
        else:
            perm = np.asarray(g, dtype=int)
        layout = self._layout
        K, d, c = layout.K, layout.d, layout.n_cov
        A = np.zeros((layout.q, layout.q))
        for i in range(1, K):  # eta_0 = 0 is not a parameter
            if perm[i] > 0:
                A[i - 1, perm[i] - 1] += 1.0
            if perm[0] > 0:
                A[i - 1, perm[0] - 1] -= 1.0
        for i, old in enumerate(perm):
            A[layout.mean_slice(i), layout.mean_slice(old)] = np.eye(d)
            A[layout.cov_slice(i), layout.cov_slice(old)] = np.eye(c)
        return A @ self.params_, A

    def alignment_coordinates(self) -> np.ndarray:
        """Rows that move with ``g``: the component means (K, d), permuted by the labels.

        With a :class:`~ssl_inference.symmetry.PermutationProduct` group the ``r`` rows
        of ``gated_basis_'`` follow (``(K + r, d)``), moved by the coordinate part.
        """
        self._check_fitted()
        if isinstance(self.symmetry_, PermutationProduct):
            return np.vstack([self.means_, self.gated_basis_.T])
        return self.means_
