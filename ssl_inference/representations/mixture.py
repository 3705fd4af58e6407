r"""Gaussian mixture features fitted by EM, with their influence functions and VJPs.

The first stage is the maximum-likelihood Gaussian mixture (THEORY.md §4.4), the
features are posterior responsibilities (or the paper's gated features), and the
label-permutation group ``S_K`` is fixed by a documented gauge.
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from .._validation import as_float_matrix
from ..exceptions import ConvergenceWarning, IdentificationWarning
from ..symmetry import (Orthogonal, PermutationContrasts, PermutationProduct, Permutations,
                        SignFlips)
from .base import DEFAULT_CHUNK_ROWS, Representation

__all__ = ["GaussianMixture"]

COVARIANCE_TYPES = ("full", "diag", "spherical")
FEATURE_TYPES = ("responsibilities", "gated")
#: Newton steps that polish the EM solution until the score is zero to rounding
NEWTON_STEPS = 8
#: EM starts that degenerate (a collapsed component) are replaced, at most this often
MAX_FAILED_STARTS = 10
LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class _Mixture:
    """Mixture parameters in matrix form."""

    log_weights: np.ndarray  # (K,)
    means: np.ndarray        # (K, d)
    prec_chol: np.ndarray    # (K, d, d) upper triangular U_k, Sigma_k^-1 = U_k U_k'


class _Layout:
    """The unconstrained parametrisation ``theta`` of a K-component mixture in R^d.

    ``theta = [eta_1..eta_{K-1}, mu_0, ..., mu_{K-1}, c_0, ..., c_{K-1}]`` with
    ``eta_k = log pi_k - log pi_0`` and ``c_k`` the free entries of the upper-triangular
    precision Cholesky factor ``U_k`` (``Sigma_k^-1 = U_k U_k'``), diagonal entries on
    the log scale: full = the upper triangle row by row (d(d+1)/2), diag = ``log U_jj``
    (d), spherical = ``log U_11`` (1).
    """

    def __init__(self, n_components: int, n_dims: int, covariance_type: str):
        self.K, self.d, self.covariance_type = n_components, n_dims, covariance_type
        d = n_dims
        self.n_cov = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[covariance_type]
        self.triu = np.triu_indices(d)
        self.triu_is_diag = self.triu[0] == self.triu[1]
        self.mean_start = self.K - 1
        self.cov_start = self.mean_start + self.K * d
        self.q = self.cov_start + self.K * self.n_cov

    def mean_slice(self, k: int) -> slice:
        return slice(self.mean_start + k * self.d, self.mean_start + (k + 1) * self.d)

    def cov_slice(self, k: int) -> slice:
        return slice(self.cov_start + k * self.n_cov, self.cov_start + (k + 1) * self.n_cov)

    def unpack(self, theta: np.ndarray) -> _Mixture:
        """``theta`` to (log-weights, means, precision Cholesky factors)."""
        K, d = self.K, self.d
        logits = np.concatenate([np.zeros(1), theta[:K - 1]])
        shift = logits.max()
        log_weights = logits - (shift + np.log(np.exp(logits - shift).sum()))
        means = theta[self.mean_start:self.cov_start].reshape(K, d)
        free = theta[self.cov_start:].reshape(K, self.n_cov)
        U = np.zeros((K, d, d))
        diag = np.arange(d)
        if self.covariance_type == "full":
            values = free.copy()
            values[:, self.triu_is_diag] = np.exp(values[:, self.triu_is_diag])
            U[:, self.triu[0], self.triu[1]] = values
        else:  # diag: one log-precision-sd per coordinate; spherical: one per component
            U[:, diag, diag] = np.exp(free)
        return _Mixture(log_weights, means, U)

    def pack(self, weights: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`unpack` (real parameters)."""
        logits = np.log(weights[1:]) - np.log(weights[0])
        if self.covariance_type == "full":
            free = prec_chol[:, self.triu[0], self.triu[1]].copy()
            free[:, self.triu_is_diag] = np.log(free[:, self.triu_is_diag])
        elif self.covariance_type == "diag":
            free = np.log(np.diagonal(prec_chol, axis1=1, axis2=2))
        else:
            free = np.log(prec_chol[:, :1, 0])
        return np.concatenate([logits, means.ravel(), free.ravel()])

    def project(self, G: np.ndarray, U: np.ndarray) -> np.ndarray:
        """Gradient wrt the free entries ``c_k`` from ``G = d/dU_k`` (batch, d, d)."""
        u_diag = np.diagonal(U)
        if self.covariance_type == "full":
            out = G[:, self.triu[0], self.triu[1]]
            out[:, self.triu_is_diag] *= u_diag  # chain rule of the log-diagonal
            return out
        diag = np.diagonal(G, axis1=1, axis2=2) * u_diag
        return diag if self.covariance_type == "diag" else diag.sum(axis=1, keepdims=True)

    def names(self) -> list[str]:
        names = [f"logit{k}" for k in range(1, self.K)]
        names += [f"mean{k}[{j}]" for k in range(self.K) for j in range(self.d)]
        for k in range(self.K):
            if self.covariance_type == "full":
                names += [f"log_prec_chol{k}[{a},{b}]" if a == b else f"prec_chol{k}[{a},{b}]"
                          for a, b in zip(*self.triu)]
            elif self.covariance_type == "diag":
                names += [f"log_prec_chol{k}[{j},{j}]" for j in range(self.d)]
            else:
                names.append(f"log_prec_chol{k}")
        return names


class _DegenerateStart(Exception):
    """An EM start produced a singular covariance or an empty component."""


class GaussianMixture(Representation):
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
        arr = as_float_matrix(X, "X_pre")
        m, d = arr.shape
        r = self._check_hyperparameters(m, d)
        K = self.n_components
        layout = _Layout(K, d, self.covariance_type)
        rng = np.random.default_rng(self.random_state)
        best, failures, successes = None, [], 0
        while successes < self.n_init and len(failures) < MAX_FAILED_STARTS:
            try:
                result = self._em(arr, self._initial_responsibilities(arr, rng))
            except _DegenerateStart as exc:
                failures.append(str(exc))
                continue
            successes += 1
            if best is None or result[1] > best[1]:
                best = result
        if best is None:
            raise ValueError(
                f"All {len(failures)} EM starts failed: {failures[0]} A Gaussian component "
                "needs at least d + 1 distinct rows; use fewer components, "
                "covariance_type='diag' or 'spherical', or remove duplicated rows."
            )
        mix, _, n_iter, converged = best
        if not converged:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (change of the "
                f"mean log-likelihood still >= tol={self.tol:g}); the estimate was refined "
                "by Newton steps, but it may not be a local maximum. Increase max_iter.",
                ConvergenceWarning, stacklevel=2)
        theta = layout.pack(np.exp(mix.log_weights), mix.means, mix.prec_chol)
        theta = self._newton_polish(arr, layout, theta)
        theta = self._to_gauge(layout, theta)
        hessian = _mean_hessian(layout, arr, layout.unpack(theta))

        self._record_input_names(self, X)
        self.n_features_in_ = d
        self.nobs_ = m
        self.pretrain_data_ = arr
        self._layout = layout
        self._gated_rank = r
        self._gated_mode = self.gated_symmetry if r else None
        self._gated_rotation = np.eye(r)  # coordinates R B'(x - mu_k); R = I in the gauge
        self._set_parameters(theta, hessian)
        self.llf_ = float(self._log_likelihood(arr, self._mixture))
        self.converged_ = bool(converged)
        self.n_iter_ = int(n_iter)
        self.n_failed_starts_ = len(failures)
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
        self._warn_if_unidentified()
        return self

    def _set_parameters(self, theta: np.ndarray, hessian: np.ndarray) -> None:
        layout = self._layout
        mix = layout.unpack(theta)
        self.params_ = theta
        self._mixture = mix
        self.hessian_ = hessian
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
        evals, evecs = np.linalg.eigh(-hessian)
        self._hessian_negative_definite = bool(evals[0] > 1e-10 * max(evals[-1], 1e-300))
        if self._hessian_negative_definite:
            self._hessian_inv = -(evecs / evals) @ evecs.T
        else:
            self._hessian_inv = -np.linalg.pinv(-hessian, hermitian=True)

    # ----------------------------------------------------------------- EM
    def _initial_responsibilities(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Hard assignment to k-means++ seeds refined by a few Lloyd iterations."""
        m, K = X.shape[0], self.n_components
        centers = np.empty((K, X.shape[1]))
        centers[0] = X[rng.integers(m)]
        dist2 = ((X - centers[0]) ** 2).sum(axis=1)
        for k in range(1, K):
            total = dist2.sum()
            idx = rng.choice(m, p=dist2 / total) if total > 0 else rng.integers(m)
            centers[k] = X[idx]
            dist2 = np.minimum(dist2, ((X - centers[k]) ** 2).sum(axis=1))
        sq_norms = (X ** 2).sum(axis=1, keepdims=True)
        for _ in range(10):
            labels = (sq_norms - 2.0 * X @ centers.T + (centers ** 2).sum(axis=1)).argmin(axis=1)
            new = np.array([X[labels == k].mean(axis=0) if np.any(labels == k) else centers[k]
                            for k in range(K)])
            if np.array_equal(new, centers):
                break
            centers = new
        resp = np.zeros((m, K))
        resp[np.arange(m), labels] = 1.0
        return resp

    def _m_step(self, X: np.ndarray, resp: np.ndarray) -> _Mixture:
        """Weighted ML update of weights, means and covariances (precision Cholesky)."""
        m, d = X.shape
        K = resp.shape[1]
        counts = resp.sum(axis=0)
        if np.any(counts <= 1e-8 * m):
            raise _DegenerateStart(f"component {int(np.argmin(counts))} lost all its rows.")
        means = (resp.T @ X) / counts[:, None]
        cov = np.empty((K, d, d))
        for k in range(K):  # O(m d) memory per component
            diff = X - means[k]
            cov[k] = (resp[:, k, None] * diff).T @ diff / counts[k]
        if self.covariance_type == "full":
            try:
                chol = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                worst = int(np.argmin(np.linalg.eigvalsh(cov)[:, 0]))
                raise _DegenerateStart(f"the covariance of component {worst} became "
                                       "singular.") from None
            U = np.triu(np.linalg.inv(chol).transpose(0, 2, 1))  # Sigma^-1 = U U', U = chol^-T
        else:
            var = np.diagonal(cov, axis1=1, axis2=2)                         # (K, d)
            if self.covariance_type == "spherical":
                var = np.repeat(var.mean(axis=1, keepdims=True), d, axis=1)
            if np.any(var <= 1e-300):
                raise _DegenerateStart(f"a variance of component "
                                       f"{int(np.argmin(var.min(axis=1)))} became zero.")
            U = np.zeros((K, d, d))
            U[:, np.arange(d), np.arange(d)] = 1.0 / np.sqrt(var)
        return _Mixture(np.log(counts / m), means, U)

    def _em(self, X: np.ndarray, resp: np.ndarray):
        """EM from initial responsibilities: (mixture, mean loglik, n_iter, converged)."""
        previous = -np.inf
        for n_iter in range(1, self.max_iter + 1):
            mix = self._m_step(X, resp)
            resp, loglik = _posterior(X, mix)
            current = float(loglik.mean())
            if not np.isfinite(current):
                raise _DegenerateStart("the log-likelihood became infinite.")
            if abs(current - previous) < self.tol:
                return mix, current, n_iter, True
            previous = current
        return mix, current, self.max_iter, False

    def _newton_polish(self, X: np.ndarray, layout: _Layout, theta: np.ndarray) -> np.ndarray:
        """Newton steps on the mean log-likelihood (fixed Hessian, backtracking)."""
        hessian = _mean_hessian(layout, X, layout.unpack(theta))
        try:
            np.linalg.cholesky(-hessian)
        except np.linalg.LinAlgError:
            return theta  # not at a strict local maximum: reported by _warn_if_unidentified
        loglik = self._log_likelihood(X, layout.unpack(theta))
        for _ in range(NEWTON_STEPS):
            grad = self._score_sum(X, layout, theta) / X.shape[0]
            step = np.linalg.solve(-hessian, grad)
            for t in 0.5 ** np.arange(12):
                candidate = theta + t * step
                new = self._log_likelihood(X, layout.unpack(candidate))
                if new >= loglik - 1e-12 * abs(loglik):
                    break
            else:
                return theta
            theta, loglik = candidate, new
            if np.max(np.abs(t * step)) <= 1e-13 * (1.0 + np.max(np.abs(theta))):
                break
        return theta

    def _to_gauge(self, layout: _Layout, theta: np.ndarray) -> np.ndarray:
        """Relabel the components by the gauge rule (see the class Notes)."""
        mix = layout.unpack(theta)
        order = _gauge_order(mix.means)
        return layout.pack(np.exp(mix.log_weights[order]), mix.means[order],
                           mix.prec_chol[order])

    # ----------------------------------------------------------- likelihood
    @staticmethod
    def _log_likelihood(X: np.ndarray, mix: _Mixture) -> float:
        total = 0.0
        for start in range(0, X.shape[0], DEFAULT_CHUNK_ROWS):
            total += _posterior(X[start:start + DEFAULT_CHUNK_ROWS], mix)[1].sum()
        return total

    def _score_sum(self, X: np.ndarray, layout: _Layout, theta: np.ndarray) -> np.ndarray:
        """``sum_i s(x_i; theta)`` streamed over chunks of rows."""
        mix = layout.unpack(theta)
        total = np.zeros(layout.q)
        for start in range(0, X.shape[0], DEFAULT_CHUNK_ROWS):
            chunk = X[start:start + DEFAULT_CHUNK_ROWS]
            tau = _posterior(chunk, mix)[0]
            total += _component_gradient(layout, chunk, mix, tau[:, :, None], per_row=False)[0]
        return total

    # -------------------------------------------------------------- features
    @property
    def n_features_out_(self) -> int:
        self._check_fitted()
        return int(self.symmetry_.k)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the learned features.

        ``{prefix}_h{j}`` is the j-th Helmert contrast of the responsibilities
        (``coding="contrast"``), ``{prefix}{k}`` the responsibility of component ``k``
        (``coding="full"``), and ``{prefix}{k}_c{j}`` coordinate ``j`` of the gated
        ``tau_k B'(x - mu_k)``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> X = np.vstack([rng.normal(size=(100, 2)) + c for c in ([0, 0], [5, 0], [0, 5])])
        >>> rep = ssi.GaussianMixture(3, features="gated", gated_rank=1,
        ...                           random_state=0).fit(X)
        >>> list(rep.get_feature_names_out())
        ['gmm0_c0', 'gmm1_c0', 'gmm2_c0', 'gmm_h1', 'gmm_h2']
        """
        self._check_fitted()
        p, K, r = self.feature_prefix, self.n_components, self._gated_rank
        coords = [[f"{p}{k}_c{j}" for j in range(r)] for k in range(K)]
        if self.coding == "full":
            names = [name for k in range(K) for name in coords[k] + [f"{p}{k}"]]
        else:
            names = [name for block in coords for name in block]
            names += [f"{p}_h{j}" for j in range(1, K)]
        return np.array(names, dtype=object)

    def _gated_frame(self, means: np.ndarray):
        """Eigenpairs ``(E, lambda)`` of the centred means' scatter, in the gauge; None if r = d."""
        if self._gated_rank == means.shape[1]:
            return None
        centred = means - means.mean(axis=0)
        evals, evecs = np.linalg.eigh(centred.T @ centred / means.shape[0])
        evals, evecs = evals[::-1].copy(), evecs[:, ::-1].copy()
        pivot = np.argmax(np.abs(evecs), axis=0)
        evecs *= np.sign(evecs[pivot, np.arange(evecs.shape[1])])
        return evecs, evals

    def _gauge_basis(self) -> np.ndarray:
        """The top-``r`` eigenvectors of ``M`` in the gauge (``I`` when ``r = d``)."""
        if self._frame is None:
            return np.eye(self.n_features_in_)
        return self._frame[0][:, :self._gated_rank]

    def _basis(self) -> np.ndarray:
        """The basis in use, ``B R'`` (``R`` = the coordinate part of ``act``)."""
        return self._gauge_basis() @ self._gated_rotation.T

    def _transform(self, X: np.ndarray) -> np.ndarray:
        tau = _posterior(X, self._mixture)[0]
        n, K, r = X.shape[0], self.n_components, self._gated_rank
        if r:
            coords = tau[:, :, None] * ((X[:, None, :] - self._mixture.means[None])
                                        @ self._basis())                   # (n, K, r)
        else:
            coords = np.zeros((n, K, 0))
        if self.coding == "full":
            return np.concatenate([coords, tau[:, :, None]], axis=2).reshape(n, -1)
        H = PermutationContrasts.contrast_matrix(K)
        return np.hstack([coords.reshape(n, -1), tau @ H])

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities ``tau_k(x)`` of all ``K`` components (gauge order), (n, K).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(200, 1)) * 0.5
        >>> X[:100] += 4.0
        >>> rep = ssi.GaussianMixture(2, random_state=0).fit(X)
        >>> rep.predict_proba(np.array([[0.0], [4.0]])).round(3)
        array([[1., 0.],
               [0., 1.]])
        """
        return _posterior(self._validate_rows(X, "X"), self._mixture)[0]

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
        return _posterior(self._validate_rows(X, "X"), self._mixture)[1]

    # ------------------------------------------------------------------ VJP
    def feature_vjp(self, X, C, *, per_row: bool = False) -> np.ndarray:
        r"""Vector-Jacobian product of the feature map with respect to ``theta``.

        Responsibilities: ``d tau_k = tau_k (d l_k - sum_j tau_j d l_j)``, so a cotangent
        ``c`` on ``tau`` is the weighted score ``sum_k W_k d l_k / d theta`` with weights
        ``W_k = tau_k (c_k - sum_j tau_j c_j)`` (contrast coding: ``c = H c_h``).
        Gated features add, per component, ``-tau_k B c_k`` to the mean ``mu_k``
        (``c_k`` = the cotangent of the coordinates), the cotangent
        ``t_k = c_k' B'(x - mu_k) + c_{k, tau}`` on ``tau_k``, and the path through the
        basis: with ``G = sum_k tau_k (x - mu_k) c_k'`` (d x r, taken to the gauge basis
        when :meth:`act` has re-based the coordinates) and the eigenpairs
        ``(lambda_a, e_a)`` of ``M``,
        ``Mbar = sym(sum_{a < r} sum_{b != a} e_b e_a' (e_b' G_a) / (lambda_a - lambda_b))``
        and ``d mu_k += (2 / K) Mbar (mu_k - mu_bar)``. With
        ``gated_symmetry="rotation"`` the sum runs over ``b >= r`` only (the horizontal
        derivative of ``B``; the within-span terms are a gauge direction). The per-row
        sums are formed as weighted moments, never as an n x k x q Jacobian.

        Parameters
        ----------
        X : ndarray (n, d)
        C : ndarray (n, k, r), or (n, k) with ``per_row=True``
        per_row : bool

        Returns
        -------
        ndarray (q, r), or (n, q) with ``per_row=True``

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> X = np.vstack([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 4.0])
        >>> rep = ssi.GaussianMixture(2, random_state=0).fit(X)
        >>> rep.feature_vjp(X[:5], np.ones((5, 1, 3))).shape, rep.params_.shape
        ((11, 3), (11,))
        """
        self._check_fitted()
        X = np.asarray(X, dtype=float)
        C = np.asarray(C, dtype=float)
        if per_row:
            C = C[:, :, None]
        n, _, R = C.shape
        layout, mix = self._layout, self._mixture
        K, r = layout.K, self._gated_rank
        if self.coding == "full":
            blocks = C.reshape(n, K, r + 1, R)
            C_coord, c_tau = blocks[:, :, :r], blocks[:, :, r]
        else:
            C_coord = C[:, :K * r].reshape(n, K, r, R)
            c_tau = np.einsum("kj,njR->nkR", PermutationContrasts.contrast_matrix(K),
                              C[:, K * r:])
        tau = _posterior(X, mix)[0]
        if r:
            centred_x = X[:, None, :] - mix.means[None]                     # (n, K, d)
            coords = centred_x @ self._basis()                               # (n, K, r)
            c_coord = tau[:, :, None, None] * C_coord                        # tau_k c_k
            c_tau = c_tau + np.einsum("nka,nkaR->nkR", coords, C_coord)
        W = tau[:, :, None] * (c_tau - np.einsum("nk,nkR->nR", tau, c_tau)[:, None, :])
        if per_row:
            grad = _component_gradient(layout, X, mix, W[:, :, 0], per_row=True)
        else:
            grad = _component_gradient(layout, X, mix, W, per_row=False)
        if r:
            grad[:, layout.mean_start:layout.cov_start] += self._gated_mean_terms(
                centred_x, c_coord, per_row).reshape(grad.shape[0], -1)
        return grad if per_row else grad.T

    def _gated_mean_terms(self, centred_x: np.ndarray, c_coord: np.ndarray,
                          per_row: bool) -> np.ndarray:
        """Mean cotangents of the gated coordinates: direct and through the basis B.

        The path through ``B`` is the eigenvector perturbation of ``M``: all pairs
        ``(a < r, b != a)`` in sign mode, only the horizontal pairs ``(a < r, b >= r)``
        in rotation mode (mixing inside the top-``r`` span is a gauge direction).
        """
        B = self._basis()
        if per_row:
            direct = -c_coord[..., 0] @ B.T                                 # (n, K, d)
            frame_bar = np.einsum("nkd,nka->nda", centred_x, c_coord[..., 0])
        else:
            direct = -np.einsum("da,nkaR->Rkd", B, c_coord)                 # (R, K, d)
            frame_bar = np.einsum("nkd,nkaR->Rda", centred_x, c_coord)
        if self._frame is None:
            return direct
        E, lam = self._frame
        r = self._gated_rank
        gap = lam[None, :r] - lam[:, None]                                   # [b, a]
        off = np.ones_like(gap, dtype=bool)
        if self._gated_mode == "rotation":
            off[:r] = False          # within-span mixing: vertical, dropped
        else:
            off[np.arange(r), np.arange(r)] = False
        if np.any(gap[off] == 0):
            if self._gated_mode == "rotation":
                raise ValueError(
                    f"Eigenvalues {r - 1} and {r} of the centred means' scatter are exactly "
                    "tied, so the projected subspace has no derivative; choose another "
                    "gated_rank.")
            raise ValueError(
                "Two top eigenvalues of the centred means' scatter are exactly tied, so the "
                "gated basis has no derivative; use gated_symmetry='rotation' (if the tie "
                "is inside the top r) or choose another gated_rank."
            )
        inv_gap = np.where(off, 1.0 / np.where(off, gap, 1.0), 0.0)
        # cotangent on the gauge basis B_g (the coordinates are R B_g'(x - mu_k))
        frame_bar = frame_bar @ self._gated_rotation
        coeffs = (E.T @ frame_bar) * inv_gap                                # (batch, d, r)
        mbar = E @ coeffs @ self._gauge_basis().T
        mbar = 0.5 * (mbar + mbar.transpose(0, 2, 1))
        centred_means = self._mixture.means - self._mixture.means.mean(axis=0)
        return direct + (2.0 / self.n_components) * np.einsum("bij,kj->bki", mbar,
                                                               centred_means)

    # ------------------------------------------------------------ influence
    def score(self, X) -> np.ndarray:
        """Per-row score ``s(x) = d log p(x; theta) / d theta`` at ``params_``, (n, q).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(-3, 1, 200), rng.normal(3, 1, 200)])[:, None]
        >>> rep = ssi.GaussianMixture(2, random_state=0).fit(X)
        >>> bool(np.abs(rep.score(X).mean(axis=0)).max() < 1e-10)   # zero at the MLE
        True
        """
        self._check_fitted()
        X = np.asarray(X, dtype=float)
        tau = _posterior(X, self._mixture)[0]
        return _component_gradient(self._layout, X, self._mixture, tau, per_row=True)

    def influence(self, X) -> np.ndarray:
        r"""Per-row influence ``IF(x) = -H^{-1} s(x)`` of rows ``X``, shape (n, q).

        Scaled so that ``theta_hat - theta* ~= (1/m) sum_i IF(x_i)``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(-3, 1, 200), rng.normal(3, 1, 200)])[:, None]
        >>> rep = ssi.GaussianMixture(2, random_state=0).fit(X)
        >>> se = np.sqrt((rep.influence(X) ** 2).sum(axis=0)) / rep.nobs_
        >>> round(float(se[rep.param_names_.index("mean0[0]")]), 2)
        0.07
        """
        return -self.score(X) @ self._hessian_inv.T

    def influence_contract(self, K: np.ndarray, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
                           ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``IF(X_pre[a:b]) K' = -s(X_pre[a:b]) (K H^{-1})'`` chunk by chunk."""
        self._check_fitted()
        A = np.atleast_2d(np.asarray(K, dtype=float)) @ self._hessian_inv
        X = self.pretrain_data_
        for start in range(0, X.shape[0], chunk_rows):
            stop = min(start + chunk_rows, X.shape[0])
            yield start, stop, -self.score(X[start:stop]) @ A.T

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
        if isinstance(self.symmetry_, PermutationProduct):
            perm, coords = self.symmetry_.split(g)
            Q = self.symmetry_.coordinates.rho(coords)
        else:
            perm, Q = np.asarray(g, dtype=int), None
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
        A_inv = np.linalg.inv(A)
        moved = copy.copy(self)
        moved._set_parameters(A @ self.params_, A_inv.T @ self.hessian_ @ A_inv)
        if self._frame is not None:
            # M is invariant under relabelling: keep its eigenbasis (recomputing it from
            # the permuted means could rotate a nearly tied eigenspace by rounding)
            moved._frame = self._frame
        if Q is not None:
            moved._gated_rotation = Q @ self._gated_rotation
        if self.features == "gated":
            moved.gated_basis_ = moved._basis().copy()
        return moved

    def alignment_coordinates(self) -> np.ndarray:
        """Rows that move with ``g``: the component means (K, d), permuted by the labels.

        With a :class:`~ssl_inference.symmetry.PermutationProduct` group the ``r`` rows
        of ``gated_basis_'`` follow (``(K + r, d)``), moved by the coordinate part.
        """
        self._check_fitted()
        if isinstance(self.symmetry_, PermutationProduct):
            return np.vstack([self.means_, self.gated_basis_.T])
        return self.means_

    # ------------------------------------------------------- identification
    def _warn_if_unidentified(self) -> None:
        layout, mix, m = self._layout, self._mixture, self.nobs_
        per_component = 1 + layout.d + layout.n_cov
        counts = m * self.weights_
        for k in np.flatnonzero(counts < 2 * per_component):
            warnings.warn(
                f"Component {k} of the mixture has collapsed: weight {self.weights_[k]:.3g}, "
                f"about {counts[k]:.1f} of the m={m} pre-training rows for its "
                f"{per_component} parameters. Its parameters and the standard errors that "
                "depend on them are unreliable; fit fewer components.",
                IdentificationWarning, stacklevel=3)
        for j, k, reason in self._indistinguishable_pairs():
            warnings.warn(
                f"Components {j} and {k} of the mixture are not distinguishable ({reason}): "
                "the mixture is not identified near this fit (probably too many components, "
                "one cluster split in two), so individual components and the influence "
                "functions are unreliable. Fit fewer components.",
                IdentificationWarning, stacklevel=3)
        if not self._hessian_negative_definite:
            warnings.warn(
                "The average Hessian of the mixture log-likelihood is not negative definite "
                "at the fitted parameters: EM stopped on a flat ridge or at a saddle point "
                "(usually too many components), so the first-stage influence functions are "
                "not identified. Refit with fewer components, or with a smaller tol and "
                "more starts (n_init).",
                IdentificationWarning, stacklevel=3)
        if self._frame is not None:
            self._warn_if_gated_basis_unidentified()

    def _indistinguishable_pairs(self) -> list[tuple[int, int, str]]:
        """Pairs of components whose parameters are not significantly different.

        Wald statistic of equal component parameters ``(mu_j, c_j) = (mu_k, c_k)`` with
        the sandwich covariance ``(1/m^2) sum_i IF IF'``, against the 95% quantile of
        ``chi2_{d + c}``.
        """
        layout, K = self._layout, self.n_components
        own = [np.r_[np.arange(layout.mean_slice(k).start, layout.mean_slice(k).stop),
                     np.arange(layout.cov_slice(k).start, layout.cov_slice(k).stop)]
               for k in range(K)]
        size = own[0].size
        selection = np.zeros((K * size, layout.q))
        selection[np.arange(K * size), np.concatenate(own)] = 1.0
        V = 0.0
        for _, _, B in self.influence_contract(selection):
            V = V + B.T @ B
        V = V / self.nobs_ ** 2
        threshold = stats.chi2.ppf(0.95, size)
        out = []
        for j in range(K):
            for k in range(j + 1, K):
                L = np.zeros((size, K * size))
                L[:, j * size:(j + 1) * size] = np.eye(size)
                L[:, k * size:(k + 1) * size] = -np.eye(size)
                diff = L @ (selection @ self.params_)
                wald = float(diff @ np.linalg.lstsq(L @ V @ L.T, diff, rcond=None)[0])
                if wald < threshold:
                    out.append((j, k, f"Wald statistic of equal means and covariances "
                                      f"{wald:.3g} < {threshold:.3g}, the 95% quantile of "
                                      f"chi2_{size}"))
        return out

    def _warn_if_gated_basis_unidentified(self) -> None:
        """Eigengaps of M that the gated basis needs, against 2 delta-method SEs.

        Sign mode needs every gap among the top ``r + 1`` eigenvalues; rotation mode only
        the gap at the cut-off ``r``.
        """
        E, lam = self._frame
        r, K = self._gated_rank, self.n_components
        layout = self._layout
        centred = self._mixture.means - self._mixture.means.mean(axis=0)
        pairs = np.arange(r) if self._gated_mode == "sign" else np.array([r - 1])
        # d lambda_a = (2/K) sum_k (e_a'c_k) e_a' d mu_k: gradient of each gap in theta
        grads = np.zeros((pairs.size, layout.q))
        for i, a in enumerate(pairs):
            for b_sign, b in ((1.0, a), (-1.0, a + 1)):
                g = (2.0 / K) * (centred @ E[:, b])[:, None] * E[:, b][None, :]
                grads[i, layout.mean_start:layout.cov_start] += b_sign * g.ravel()
        var = np.zeros(pairs.size)
        for _, _, B in self.influence_contract(grads):
            var += (B ** 2).sum(axis=0)
        se = np.sqrt(var) / self.nobs_
        gaps = lam[pairs] - lam[pairs + 1]
        for a, gap, s in zip(pairs.tolist(), gaps, se):
            if gap < 2.0 * s:
                where = ("inside the top-r eigenspace: the individual gated coordinates "
                         "(the columns of the basis B) are not identified and the standard "
                         "errors that depend on them are unreliable. Results invariant under "
                         "a common rotation of the coordinates (covariates, intercept, "
                         "predictions, tests of whole coordinate blocks) stay valid with "
                         "GaussianMixture(..., gated_symmetry='rotation'), which also refuses "
                         "the hypotheses that depend on the basis" if a < r - 1 else
                         "at the cut-off r: the projected subspace itself is not identified; "
                         "choose another gated_rank")
                warnings.warn(
                    f"Eigenvalues {a} and {a + 1} of the centred means' scatter are nearly "
                    f"tied ({lam[a]:.4g} vs {lam[a + 1]:.4g}; gap {gap:.3g} < 2 x its "
                    f"standard error {s:.3g}) {where}.", IdentificationWarning, stacklevel=4)


# --------------------------------------------------------------------------- helpers
def _log_joint(X: np.ndarray, mix: _Mixture) -> np.ndarray:
    """``l_k(x) = log pi_k + log N(x; mu_k, Sigma_k)`` for all rows and components."""
    K, d = mix.means.shape
    log_det = np.log(np.diagonal(mix.prec_chol, axis1=1, axis2=2)).sum(axis=1)
    out = np.empty((X.shape[0], K))
    for k in range(K):  # O(n d) memory per component
        w = (X - mix.means[k]) @ mix.prec_chol[k]
        out[:, k] = -0.5 * (w * w).sum(axis=1)
    return out + (mix.log_weights + log_det - 0.5 * d * LOG_2PI)


def _posterior(X: np.ndarray, mix: _Mixture) -> tuple[np.ndarray, np.ndarray]:
    """Responsibilities (n, K) and per-row log-density (n,)."""
    joint = _log_joint(X, mix)
    shift = joint.max(axis=1, keepdims=True)
    e = np.exp(joint - shift)
    total = e.sum(axis=1, keepdims=True)
    return e / total, (shift + np.log(total))[:, 0]


def _component_gradient(layout: _Layout, X: np.ndarray, mix: _Mixture, W: np.ndarray, *,
                        per_row: bool) -> np.ndarray:
    r"""``sum_k W_k d l_k / d theta`` from weighted moments of ``v = x - mu_k``.

    With ``N_k = W_k``, ``S1_k = W_k v``, ``S2_k = W_k v v'`` (summed over the rows
    unless ``per_row``): logits ``N_{1:} - (sum_k N_k) pi_{1:}``, means
    ``U_k U_k' S1_k``, and ``d/dU_k = N_k diag(1/U_k,jj) - S2_k U_k`` projected on the
    free entries.

    ``W`` is (n, K) with ``per_row`` (returns (n, q)) or (n, K, R) (returns (R, q)).
    """
    K, d = layout.K, layout.d
    n = X.shape[0]
    if per_row:
        counts = W
    else:
        R = W.shape[2]
        counts = W.sum(axis=0).T                                              # (R, K)
    out = np.empty((counts.shape[0], layout.q))
    pi = np.exp(mix.log_weights)
    out[:, :K - 1] = counts[:, 1:] - counts.sum(axis=1, keepdims=True) * pi[1:]
    diag = np.arange(d)
    for k in range(K):
        U = mix.prec_chol[k]
        V = X - mix.means[k]
        if per_row:
            S1 = W[:, k, None] * V
            S2U = S1[:, :, None] * (V @ U)[:, None, :]
        else:
            Wk = W[:, k, :]
            S1 = Wk.T @ V
            S2 = ((V[:, None, :] * Wk[:, :, None]).reshape(n, R * d).T @ V).reshape(R, d, d)
            S2U = S2 @ U
        out[:, layout.mean_slice(k)] = S1 @ (U @ U.T)
        G = -S2U
        G[:, diag, diag] += counts[:, k, None] / np.diagonal(U)
        out[:, layout.cov_slice(k)] = layout.project(G, U)
    return out


def _mean_hessian(layout: _Layout, X: np.ndarray, mix: _Mixture,
                  chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """``(1/m) sum_i d^2 log p(x_i) / d theta d theta'`` (formula in the class Notes)."""
    K, d, q = layout.K, layout.d, layout.q
    m = X.shape[0]
    pi = np.exp(mix.log_weights)
    H = np.zeros((q, q))
    H[:K - 1, :K - 1] = -m * (np.diag(pi[1:]) - np.outer(pi[1:], pi[1:]))
    counts, S1, S2 = np.zeros(K), np.zeros((K, d)), np.zeros((K, d, d))
    onehot = np.eye(K)
    for start in range(0, m, chunk_rows):
        chunk = X[start:start + chunk_rows]
        tau = _posterior(chunk, mix)[0]
        score = np.zeros((chunk.shape[0], q))
        for k in range(K):
            G = _component_gradient(layout, chunk, mix,
                                    np.broadcast_to(onehot[k], tau.shape), per_row=True)
            weighted = tau[:, k, None] * G
            H += weighted.T @ G                                   # tau_k g_k g_k'
            score += weighted
            V = chunk - mix.means[k]
            counts[k] += tau[:, k].sum()
            S1[k] += tau[:, k] @ V
            S2[k] += (V * tau[:, k, None]).T @ V
        H -= score.T @ score                                      # - s s'
    unit = np.eye(d * d).reshape(d * d, d, d)
    for k in range(K):
        U = mix.prec_chol[k]
        T = layout.project(unit, U).T                             # dU / dc (n_cov, d^2)
        mean, cov = layout.mean_slice(k), layout.cov_slice(k)
        cross = np.kron(np.eye(d), (U.T @ S1[k])[None, :]) + np.kron(S1[k][None, :], U)
        H_U = (-np.kron(S2[k], np.eye(d))
               - counts[k] * np.diag((np.eye(d) / np.diagonal(U) ** 2).ravel()))
        first = counts[k] / np.diagonal(U) - np.diagonal(S2[k] @ U)  # sum tau dl/dU_aa
        H[mean, mean] -= counts[k] * (U @ U.T)
        H[mean, cov] += cross @ T.T
        H[cov, mean] += T @ cross.T
        H[cov, cov] += T @ H_U @ T.T + np.diag(layout.project(np.diag(first)[None], U)[0])
    return (H + H.T) / (2.0 * m)


def _gauge_order(means: np.ndarray) -> np.ndarray:
    """Order of the components under the gauge rule (leading axis of the centred means)."""
    K = means.shape[0]
    centred = means - means.mean(axis=0)
    evals, evecs = np.linalg.eigh(centred.T @ centred / K)
    axis = evecs[:, -1]
    axis = axis * np.sign(axis[np.argmax(np.abs(axis))])
    keys = tuple(means[:, j] for j in reversed(range(means.shape[1]))) + (means @ axis,)
    return np.lexsort(keys)
