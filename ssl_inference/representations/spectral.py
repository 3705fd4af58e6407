r"""Spectral contrastive pre-training (HaoChen et al. 2021; THEORY.md §4.2, paper §6.1).

Positive pairs ``(x, x+)`` (two views of one unit) and negatives ``x-``; the features
are ``phi(x; A) = A x`` with ``A`` in R^{k x d}, fitted by minimising the sample mean of

.. math:: l(A; x, x^+, x^-) = -2 \langle Ax, Ax^+\rangle + \langle Ax, Ax^-\rangle^2 .

The loss depends on ``A`` only through ``A'A``, so ``A`` is identified up to the
orthogonal group ``O(k)`` acting on the left (features move by ``rho(Q) = Q``).
"""
from __future__ import annotations

import warnings
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import optimize

from .._validation import as_float_matrix
from ..exceptions import ConvergenceWarning, IdentificationWarning
from ..symmetry import Orthogonal
from .base import DEFAULT_CHUNK_ROWS
from .chunked import refuse_dask
from .linearization import (MEstimatorBase, horizontal_inverse, rotation_tangent,
                            vertical_basis)

__all__ = ["SpectralContrastive"]


class SpectralContrastive(MEstimatorBase):
    r"""Linear features ``A x`` learned with the spectral contrastive loss.

    Parameters
    ----------
    n_components : int
        Number of features ``k``, with ``1 <= k < d``.
    negatives : {"auto", "permutation", "given"}
        Where the negatives come from. ``"permutation"``: drawn inside :meth:`fit` from
        the positive views of OTHER pairs (below); ``"given"``: passed as ``X_neg`` and
        independent of the pairs; ``"auto"``: ``"given"`` when ``fit`` receives
        ``X_neg``, else ``"permutation"``.
    random_state : int or None
        Seed of the negative draw: with an integer the fit is deterministic for equal
        data; None draws fresh negatives on every fit.
    max_iter : int
        Iterations (Newton and trust-region steps) of the refinement of the closed-form
        start.
    feature_prefix : str
        Prefix of the feature names (``sc0, sc1, ...``).

    Attributes
    ----------
    components_ : ndarray (k, d)
        ``A`` in the reported gauge (``params_ = A.ravel()``, row-major).
    generalized_eigenvalues_ : ndarray (d,)
        Eigenvalues of ``C = S^{-1/2} S_+ S^{-1/2}``, decreasing.
    negatives_ : str
        ``"permutation"`` or ``"given"``.
    negative_index_ : ndarray (m,) of int or None
        Permutation mode: the negative of pair ``i`` is ``X_pos[negative_index_[i]]``.
    pretrain_data_ : ndarray (m, 2d) or (m, 3d)
        The pre-training units in the single-array form of :meth:`fit`: pairs
        ``[x, x+]`` (permutation mode) or triples ``[x, x+, x-]`` (given mode).
    hessian_ : ndarray (q, q)
        Mean Hessian of the loss at ``A`` (``q = k d``).
    vertical_ : ndarray (q, k(k-1)/2)
        Orthonormal basis of the rotation directions ``{Omega A}``.

    Notes
    -----
    **Negatives.** With ``negatives="permutation"`` the negative of pair ``i`` is the
    positive view of pair ``sigma(i)``, where ``sigma`` is a uniformly random cyclic
    derangement drawn from ``random_state`` (a random order ``pi`` of the rows; pair
    ``pi_j`` gets the positive of pair ``pi_{j+1}``, cyclically): every pair lends its
    positive view exactly once and never to itself, so ``x-`` is independent of
    ``(x, x+)`` within each triple. The triples are then *not* independent of each
    other (pair ``u`` appears in its own triple and as the negative of another), and
    the usual i.i.d. sandwich would miss ``2 Cov(g_1(u), g_2(u))``, where ``g_1`` and
    ``g_2`` are the expected scores of a pair used as anchor and as negative. The
    influence of pre-training unit ``i`` is therefore its own share

    .. math::

        IF_i = -H_h^+ \left[ s(A; x_i, x_i^+, x_i^-) + \hat g_2(x_i^+) - \hat g_2(x_i^-)
        \right], \qquad \hat g_2(b) = 2 A (b b' M \hat S + \hat S M b b'),

    ``M = A'A``, ``\hat S = (1/m) sum x_i x_i'``. The added terms telescope (they sum to
    zero over the sample), and the ``IF_i`` are uncorrelated across units, so
    ``sum_i IF_i IF_i' / m^2`` estimates the variance of ``A_hat`` including the
    randomness of the negative draw. With ``negatives="given"`` the triples are
    treated as i.i.d. units and ``IF_i = -H_h^+ s(z_i)``; negatives that reuse positive
    views of the sample are then wrong (a warning says so).

    **Bootstrap.** :meth:`fit` also accepts one array of concatenated views, exactly
    ``pretrain_data_``. The aligned bootstrap refits a clone on resampled units: with
    given negatives on ``pretrain_data_`` with each triple's count as its weight (no
    copy of the resampled triples), in permutation mode on the copied pairs
    ``pretrain_data_[rows]``, among which it redraws the negatives. A clone of a fitted
    ``negatives="auto"`` model has the resolved mode, so the single-array layout is
    never ambiguous.

    **Fit.** Start from the population solution computed on the sample: with
    ``S = (1/m) sum x x'`` and ``S_+ = (1/2m) sum (x x+' + x+ x')``,
    ``S^{1/2} A'A S^{1/2}`` is the truncation of ``C = S^{-1/2} S_+ S^{-1/2}`` to its
    top-k (positive) eigenvalues, i.e. ``A_0 = diag(sqrt(lambda_{1..k})) W_k'`` with
    ``W = S^{-1/2} V``. Then minimise the sample loss (a quartic in ``A``) by Newton
    steps with the analytic gradient and the moment curvature (the Hessian with the
    expectations over a negative independent of its pair taken from the second moments
    ``S``, ``S_+`` and that of the negatives: no pass over the data), falling back on
    SciPy's Krylov trust-region method with the curvature of a subsample of the triples
    when these stall; the exact mean Hessian is formed once, at the end (one pass), for
    the last Newton steps and the influence. ``A`` is
    unconstrained, so the gradient is exactly zero at the optimum and the Euclidean
    Hessian is the right curvature (THEORY.md §2, curvature caution). In permutation
    mode the negatives are never copied: the loss reads the features of the positive
    views in the drawn order.

    **Gauge.** The rows of ``A`` are rotated so that ``A S A'`` (the features' second
    moment) is diagonal with decreasing entries, and each row is signed so that its
    entry of largest absolute value is positive.

    **Influence.** Per-triple score, with ``c = <Ax, Ax->``,
    ``s = -2[(Ax+) x' + (Ax) x+'] + 2c[(Ax-) x' + (Ax) x-']`` and mean Hessian
    ``H = I_k (x) mean[-2(x x+' + x+ x') + 2c(x x-' + x- x')] + 2 mean[g g']``,
    ``g = vec((Ax-) x' + (Ax) x-')``. The vertical space is ``{Omega A}`` (``Omega``
    antisymmetric), ``H_h^+`` its horizontal inverse
    (:func:`~ssl_inference.representations.linearization.horizontal_inverse`).

    Identification: a singular anchor second moment ``S`` (rank-deficient pair sample)
    and fewer than ``k`` positive generalised eigenvalues are errors; a gap
    ``lambda_k - max(lambda_{k+1}, 0)`` within two standard errors of zero gives an
    :class:`~ssl_inference.IdentificationWarning`.

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 4))
    >>> c = np.array([0.9, 0.6, 0.2, 0.1])
    >>> X_pos = c * X + np.sqrt(1 - c ** 2) * rng.normal(size=(500, 4))
    >>> rep = ssi.SpectralContrastive(n_components=2).fit(X, X_pos)
    >>> rep.transform(X[:3]).shape, rep.negatives_, str(rep.symmetry_)
    ((3, 2), 'permutation', 'rotations O(2)')
    >>> np.round(rep.generalized_eigenvalues_[:2], 1)
    array([0.9, 0.6])
    """

    gauge_convention = ("rows of A rotated so that A S A' is diagonal, decreasing; "
                        "largest-|entry| of each row positive")

    def __init__(self, n_components: int, *,
                 negatives: Literal["auto", "permutation", "given"] = "auto",
                 random_state: int | None = 0, max_iter: int = 100,
                 feature_prefix: str = "sc"):
        self.n_components = n_components
        self.negatives = negatives
        self.random_state = random_state
        self.max_iter = max_iter
        self.feature_prefix = feature_prefix

    @property
    def n_features_out_(self) -> int:
        return int(self.n_components)

    def clone(self) -> "SpectralContrastive":
        """An unfitted copy; ``negatives="auto"`` is resolved to the fitted mode.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(1)
        >>> X = rng.normal(size=(300, 3)); X_pos = [0.9, 0.5, 0.1] * X + rng.normal(size=(300, 3))
        >>> rep = ssi.SpectralContrastive(2).fit(X, X_pos)
        >>> rep.clone().negatives
        'permutation'
        """
        params = self.get_params()
        if params["negatives"] == "auto" and hasattr(self, "negatives_"):
            params["negatives"] = self.negatives_
        return type(self)(**params)

    # ------------------------------------------------------------------ fit
    def fit(self, X, X_pos=None, X_neg=None) -> "SpectralContrastive":
        """Fit ``A`` on positive pairs (and negatives).

        Parameters
        ----------
        X : array_like or DataFrame (m, d)
            Anchor views. Alternatively one array of concatenated views with
            ``X_pos=None``: pairs ``[x, x+]`` (m, 2d) with ``negatives="permutation"``,
            triples ``[x, x+, x-]`` (m, 3d) with ``negatives="given"``.
        X_pos : array_like (m, d), optional
            Positive views, row ``i`` paired with ``X[i]``.
        X_neg : array_like (m, d), optional
            Negatives, independent of the pairs; drawn inside when omitted (see Notes).

        Returns
        -------
        self

        Examples
        --------
        The single-array form (what the aligned bootstrap calls) gives the same fit:

        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(1)
        >>> X = rng.normal(size=(300, 3)); X_pos = [0.9, 0.5, 0.1] * X + rng.normal(size=(300, 3))
        >>> rep = ssi.SpectralContrastive(2).fit(X, X_pos)
        >>> rep.pretrain_data_.shape
        (300, 6)
        >>> again = ssi.SpectralContrastive(2, negatives="permutation").fit(rep.pretrain_data_)
        >>> bool(np.array_equal(again.components_, rep.components_))
        True
        """
        return self._fit_views(X, X_pos, X_neg, None)

    def _fit_weighted(self, X, weights: np.ndarray, rows=None) -> "SpectralContrastive":
        """Fit on the units of ``X`` (the single-array layout) counted ``weights`` times.

        With given negatives the units are the triples ``[x, x+, x-]`` and the loss, its
        gradient and Hessian, the start moments ``S``, ``S_+`` and the diagnostics are
        means over them: each carries ``w_i``, and ``X[rows]`` is never gathered (the
        trust-region iterations use the curvature of every ``s``-th triple with its
        weight, a strided view, so they take another path than a fit on the gathered
        triples to the same minimum, which the final exact Newton steps reach to
        rounding). With negatives drawn inside ``fit`` (``"permutation"``) a refit
        redraws them among the resampled pairs, a derangement of the resample's rows
        that no weighting of the original pairs expresses: that refit gets the gathered
        copy (:meth:`Representation._fit_weighted`).
        """
        if self.negatives != "given":
            return super()._fit_weighted(X, weights, rows)
        return self._fit_views(X, None, None, np.asarray(weights, dtype=np.float64))

    def _fit_views(self, X, X_pos, X_neg, weights: np.ndarray | None):
        """The fit on the views (units counted ``weights`` times when given)."""
        k = self.n_components
        X_, Xp, Xn, mode, units = self._parse_views(X, X_pos, X_neg)
        d = X_.shape[1]
        m = X_.shape[0] if weights is None else int(round(weights.sum()))
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k < d:
            raise ValueError(
                f"n_components must be an integer with 1 <= n_components < d = {d} (the "
                f"dimension of one view); got {k!r}."
            )
        if not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer; got {self.max_iter!r}.")
        if m <= d:
            raise ValueError(
                f"The pair sample has m = {m} rows for d = {d} raw features; the anchor "
                f"second moment S is then singular (rank <= {m} < {d}). Use more pairs than "
                "features."
            )
        sigma = None
        if mode == "permutation":  # negatives x-_i = x+_sigma(i), never copied
            sigma = _cyclic_derangement(m, np.random.default_rng(self.random_state))
        else:
            _warn_if_reused(Xp, Xn, weights)
        if units is None:  # the single-array layout of the views
            units = np.hstack([X_, Xp] if mode == "permutation" else [X_, Xp, Xn])
        elif weights is None:  # the iterations read the views often: contiguous copies
            X_, Xp = np.ascontiguousarray(X_), np.ascontiguousarray(Xp)  # of the columns
            Xn = None if Xn is None else np.ascontiguousarray(Xn)
        # (a weighted refit, a bootstrap replicate, reads the strided views: no copy)
        moments = _moments(units, d, mode, weights)
        S = moments.S
        lam, W = _generalized_eigen(S, moments.S_pos, k)
        A0 = np.sqrt(lam[:k])[:, None] * W[:, :k].T
        A, converged, grad_size, H = _minimise(A0, X_, Xp, Xn, self.max_iter, sigma,
                                               moments, weights)
        if not converged:
            warnings.warn(
                f"The refinement of the spectral contrastive loss stopped after "
                f"{self.max_iter} iterations with relative gradient {grad_size:.1e}; A may "
                "not be a minimum and its influence function assumes a zero gradient. "
                "Increase max_iter or check the data.", ConvergenceWarning, stacklevel=2)
        Q = _gauge(A, S)
        A = Q @ A
        T = np.kron(Q, np.eye(d))  # vec(Q A) = T vec(A): the invariant loss moves H to T H T'
        self.linearize(T @ H @ T.T, rotation_tangent(A))

        if isinstance(X, pd.DataFrame) and X_pos is not None:
            self._record_input_names(self, X)
        else:
            self._record_input_names(self, None)
        self.n_features_in_ = d
        self.nobs_ = m
        self.negatives_ = mode
        self.negative_index_ = sigma
        self.pretrain_data_ = units if weights is None else None  # a replicate keeps none
        self.second_moment_ = S
        self.generalized_eigenvalues_ = lam
        self.components_ = A
        self.params_ = A.ravel().copy()
        self.symmetry_ = Orthogonal(k)
        self._warn_if_unidentified(lam, W, X_, Xp, weights)
        return self

    def _parse_views(self, X, X_pos, X_neg):
        for views in (X, X_pos, X_neg):
            refuse_dask(views, "SpectralContrastive",
                        "its negatives are other rows' positive views drawn across the "
                        "whole sample, and its trust-region fit reads the views in memory.")
        if self.negatives not in ("auto", "permutation", "given"):
            raise ValueError(f"negatives must be 'auto', 'permutation' or 'given'; got "
                             f"{self.negatives!r}.")
        if X_pos is None:
            if X_neg is not None:
                raise ValueError("X_neg was given without X_pos: pass fit(X, X_pos, X_neg).")
            Z = as_float_matrix(X, "X_pre")
            views = {"permutation": 2, "given": 3}.get(self.negatives)
            if views is None:
                raise ValueError(
                    "fit(Z) with one array needs to know its layout: set negatives="
                    "'permutation' for pairs [x, x+] (m, 2d) or negatives='given' for "
                    "triples [x, x+, x-] (m, 3d); or call fit(X, X_pos[, X_neg])."
                )
            if Z.shape[1] % views or Z.shape[1] == 0:
                raise ValueError(
                    f"With negatives={self.negatives!r} a single array holds {views} views "
                    f"side by side, so its width must be a multiple of {views}; got "
                    f"{Z.shape[1]} columns."
                )
            parts = np.split(Z, views, axis=1)  # views of Z, no copies
            return (parts[0], parts[1], parts[2] if views == 3 else None, self.negatives, Z)
        mode = "given" if X_neg is not None else "permutation"
        if self.negatives != "auto" and self.negatives != mode:
            raise ValueError(
                f"negatives={self.negatives!r} but X_neg was "
                f"{'given' if X_neg is not None else 'not given'}; pass X_neg with "
                "negatives='given' (or 'auto'), omit it with 'permutation'."
            )
        X_ = as_float_matrix(X, "X")
        Xp = as_float_matrix(X_pos, "X_pos")
        Xn = None if X_neg is None else as_float_matrix(X_neg, "X_neg")
        for name, arr in (("X_pos", Xp), ("X_neg", Xn)):
            if arr is not None and arr.shape != X_.shape:
                raise ValueError(f"{name} has shape {arr.shape} but X has shape {X_.shape}: "
                                 "each row of X needs its own view.")
        return X_, Xp, Xn, mode, None

    def _warn_if_unidentified(self, lam, W, X, Xp, weights=None) -> None:
        """Warn when ``lambda_k - max(lambda_{k+1}, 0)`` is within 2 SE of zero.

        ``lambda_j = w_j' S_+ w_j`` with ``w_j' S w_j = 1`` has per-row influence
        ``(w_j'x)(w_j'x+) - lambda_j (w_j'x)^2``; the SE of the gap is the SD of the
        difference of these over the rows divided by ``sqrt(m)`` (rows counted
        ``weights`` times when given).
        """
        k = self.n_components
        m = X.shape[0] if weights is None else weights.sum()
        cols = [k - 1, k] if lam[k] > 0 else [k - 1]
        a, b = X @ W[:, cols], Xp @ W[:, cols]
        t = a * b - lam[cols] * a ** 2
        diff = t[:, 0] - t[:, 1] if len(cols) == 2 else t[:, 0]
        gap = lam[k - 1] - max(lam[k], 0.0)
        if weights is None:
            se = diff.std() / np.sqrt(m)
        else:
            centred = diff - weights @ diff / m
            se = np.sqrt(weights @ centred ** 2 / m) / np.sqrt(m)
        if gap < 2 * se:
            warnings.warn(
                f"Generalised eigenvalue {k} of the pairs ({lam[k - 1]:.4g}) is not "
                f"separated from the next one (or from 0): gap {gap:.3g} < 2 x its standard "
                f"error {se:.3g}. The {k}-dimensional contrastive subspace is not identified "
                "and two-stage standard errors are unreliable; choose n_components at a "
                "clear eigengap.", IdentificationWarning, stacklevel=3)

    # ------------------------------------------------------------------ symmetry
    def moved_params(self, g) -> tuple[np.ndarray, np.ndarray]:
        """``Q`` in O(k) moves ``A -> Q A``: ``vec(Q A) = (Q kron I_d) vec(A)`` (row-major).

        :meth:`act` then gives the copy with features ``Q A x``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(1)
        >>> X = rng.normal(size=(300, 3)); X_pos = [0.9, 0.5, 0.1] * X + rng.normal(size=(300, 3))
        >>> rep = ssi.SpectralContrastive(2).fit(X, X_pos)
        >>> Q = np.array([[0.0, 1.0], [-1.0, 0.0]])
        >>> bool(np.allclose(rep.act(Q).transform(X), rep.transform(X) @ Q.T))
        True
        """
        self._check_fitted()
        T = np.kron(self.symmetry_.rho(g), np.eye(self.n_features_in_))
        return T @ self.params_, T

    def _set_params(self, theta: np.ndarray) -> None:
        self.params_ = theta
        self.components_ = theta.reshape(self.n_components, self.n_features_in_)

    def alignment_coordinates(self) -> np.ndarray:
        """Rows that move with ``Q``: ``A`` (k, d).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(1)
        >>> X = rng.normal(size=(300, 3)); X_pos = [0.9, 0.5, 0.1] * X + rng.normal(size=(300, 3))
        >>> rep = ssi.SpectralContrastive(2).fit(X, X_pos)
        >>> moved, Q = ssi.align(rep.act(np.array([[0.0, 1.0], [1.0, 0.0]])), rep)
        >>> bool(np.allclose(moved.alignment_coordinates(), rep.alignment_coordinates()))
        True
        """
        self._check_fitted()
        return self.components_

    # ------------------------------------------------------------------ features
    def _transform(self, X: np.ndarray) -> np.ndarray:
        return X @ self.components_.T

    def feature_vjp(self, X, C, *, per_row: bool = False) -> np.ndarray:
        r"""Vector-Jacobian product of ``phi(x) = A x``: ``d phi_a / d A_bj = delta_ab x_j``.

        Hence ``sum_j (d phi_j / dA)' c_j = sum_j c_j x_j'`` (k x d, flattened row-major).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(1)
        >>> X = rng.normal(size=(300, 3)); X_pos = [0.9, 0.5, 0.1] * X + rng.normal(size=(300, 3))
        >>> rep = ssi.SpectralContrastive(2).fit(X, X_pos)
        >>> rep.feature_vjp(X[:4], np.ones((4, 2, 5))).shape
        (6, 5)
        """
        X = np.asarray(X, dtype=float)
        C = np.asarray(C, dtype=float)
        if per_row:
            return (C[:, :, None] * X[:, None, :]).reshape(len(X), -1)
        n, k, r = C.shape
        return np.einsum("nkr,nd->kdr", C, X).reshape(k * X.shape[1], r)

    # ----------------------------------------------------------------- influence
    def _units(self, X: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Triples ``[x, x+, x-]``: in permutation mode the negative of pair ``i`` is the
        positive view of pair ``negative_index_[i]``."""
        if self.negatives_ == "given":
            return np.asarray(X[start:stop], dtype=np.float64)
        d = self.n_features_in_
        out = np.empty((stop - start, 3 * d))
        out[:, :2 * d] = X[start:stop]
        out[:, 2 * d:] = X[self.negative_index_[start:stop], d:]
        return out

    _unit_layout = "triples [x, x+, x-] of views side by side"

    def _unit_width(self) -> int:
        return 3 * self.n_features_in_

    @property
    def influence_by_refit(self) -> bool:
        """Whether the influence is the derivative of a refit on duplicated units: not
        with negatives drawn inside ``fit``, whose draw changes with the sample."""
        return getattr(self, "negatives_", self.negatives) == "given"

    def estimating_function(self, U) -> np.ndarray:
        """Per-unit estimating function of triples ``[x, x+, x-]`` (n, 3d): (n, k d).

        The gradient of the loss, plus (permutation mode) the reuse correction
        ``g_2(x+) - g_2(x-)`` of the Notes: the rows are read as units of this
        pre-training sample, each negative being another unit's positive view.
        :meth:`pretrain_units` gives the sample's own triples.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> rng = np.random.default_rng(1)
        >>> X = rng.normal(size=(300, 3)); X_pos = [0.9, 0.5, 0.1] * X + rng.normal(size=(300, 3))
        >>> rep = ssi.SpectralContrastive(2).fit(X, X_pos)
        >>> Z = rep.pretrain_units()                      # triples [x, x+, x-]
        >>> bool(np.array_equal(Z[:, 6:], X_pos[rep.negative_index_]))
        True
        >>> psi = rep.estimating_function(Z)
        >>> psi.shape, bool(np.abs(psi.mean(axis=0)).max() < 1e-10)
        ((300, 6), True)
        """
        self._check_fitted()
        Z = self._validate_units(U)
        d = self.n_features_in_
        X, Xp, Xn = Z[:, :d], Z[:, d:2 * d], Z[:, 2 * d:]
        A = self.components_
        s = _row_scores(A, X, Xp, Xn)
        if self.negatives_ == "permutation":
            MS = A.T @ A @ self.second_moment_
            s += _negative_share(A, MS, Xp) - _negative_share(A, MS, Xn)
        return s.reshape(len(Z), -1)

    def _prepare_contraction(self, K: np.ndarray | None):
        r"""Fold ``Kt = -K H_h^+`` into the score formula: no (rows, k d) score arrays.

        Every term of the per-triple score is an outer product ``u v'`` of a k-vector
        ``u`` (features of a view) and a d-vector ``v`` (a view), whose contraction with
        ``Kt`` (r x k d, blocks ``Kt_r`` (k, d)) is ``u' Kt_r v``. With
        ``P = [Kt_1', ..., Kt_r']`` arranged (d, k r), ``v' P`` gives ``Kt_r v`` for all
        ``r`` at once and ``u`` contracts it: one product per view,
        ``x [A', P]`` and ``b [A', M S A', P, M S P]`` for ``b = x+, x-``
        (``M S P`` for the reuse correction ``g_2`` of permutation mode), so a chunk costs
        ``O(rows d k r)``. ``K`` None gives the plain influence (``Kt = -H_h^+``).
        """
        Kt = super()._prepare_contraction(K)
        r = Kt.shape[0]
        k, d = self.components_.shape
        A = self.components_
        P = Kt.reshape(r, k, d).transpose(2, 1, 0).reshape(d, k * r)
        if self.negatives_ == "permutation":
            MS = A.T @ A @ self.second_moment_
            views = np.hstack([A.T, MS @ A.T, P, MS @ P])
        else:
            views = np.hstack([A.T, P])
        return np.hstack([A.T, P]), views, r

    def influence_contract(self, K: np.ndarray, *, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        """Stream ``IF(U_chunk) K'`` (see :meth:`MEstimatorBase.influence_contract`),
        reading each chunk's views in place: only the negatives are gathered."""
        self._check_fitted()
        prepared = self._prepare_contraction(np.atleast_2d(np.asarray(K, dtype=float)))
        d = self.n_features_in_
        for start, stop, X in self._checked_row_chunks(chunk_rows):
            pairs = X[start:stop]
            negatives = (X[start:stop, 2 * d:] if self.negatives_ == "given"
                         else X[self.negative_index_[start:stop], d:])
            yield start, stop, self._contract_views(pairs[:, :d], pairs[:, d:2 * d],
                                                    negatives, prepared)

    def _contract_units(self, U: np.ndarray, prepared) -> np.ndarray:
        d = self.n_features_in_
        return self._contract_views(U[:, :d], U[:, d:2 * d], U[:, 2 * d:], prepared)

    def _contract_views(self, X, Xp, Xn, prepared) -> np.ndarray:
        """``IF K'`` of the triples ``(x, x+, x-)`` (three (n, d) arrays), from the
        prepared products of :meth:`_prepare_contraction`."""
        P_x, P_views, r = prepared
        k = self.n_components
        permutation = self.negatives_ == "permutation"
        # transposed (columns, rows) layout: the per-row arithmetic runs along rows
        T_x = P_x.T @ X.T
        T_p = P_views.T @ Xp.T
        T_n = P_views.T @ Xn.T
        F_x, F_p, F_n = T_x[:k], T_p[:k], T_n[:k]
        c = np.einsum("kn,kn->n", F_x, F_n)
        u_x = 2.0 * c * F_n - 2.0 * F_p
        u_p, u_n = -2.0 * F_x, 2.0 * c * F_x
        if permutation:  # the reuse correction g_2(x+) - g_2(x-)
            u_p = np.vstack([u_p + 2.0 * T_p[k:2 * k], 2.0 * F_p])
            u_n = np.vstack([u_n - 2.0 * T_n[k:2 * k], -2.0 * F_n])
        lead = 2 * k if permutation else k  # rows before the contracted ones
        n = X.shape[0]
        out = np.einsum("an,arn->rn", u_x, T_x[k:].reshape(k, r, n))
        out += np.einsum("an,arn->rn", u_p, T_p[lead:].reshape(-1, r, n))
        out += np.einsum("an,arn->rn", u_n, T_n[lead:].reshape(-1, r, n))
        return out.T

# --------------------------------------------------------------------------- helpers
def _sym(M: np.ndarray) -> np.ndarray:
    return (M + M.T) / 2


def _cyclic_derangement(m: int, rng: np.random.Generator) -> np.ndarray:
    """``sigma`` with ``sigma[pi_j] = pi_{j+1 mod m}`` for a random order ``pi``."""
    order = rng.permutation(m)
    sigma = np.empty(m, dtype=np.int64)
    sigma[order] = np.roll(order, -1)
    return sigma


def _warn_if_reused(Xp: np.ndarray, Xn: np.ndarray, weights=None) -> None:
    """Warn when most negatives are positive views of other pairs (of the triples with
    a positive weight, counted ``weights`` times, when given)."""
    present = np.arange(len(Xp)) if weights is None else np.flatnonzero(weights > 0)
    rows = {Xp[i].tobytes(): i for i in present}
    found = np.array([rows.get(Xn[i].tobytes(), -1) for i in present], dtype=np.intp)
    hit = (found >= 0) & (found != present)
    reused = int(hit.sum() if weights is None else weights[present] @ hit)
    total = len(Xn) if weights is None else int(round(weights.sum()))
    if reused > total // 2:
        warnings.warn(
            f"{reused} of {total} negatives are positive views of other pairs. The triples "
            "are then dependent and the i.i.d. sandwich of negatives='given' is wrong; call "
            "fit(X, X_pos) instead and let the estimator draw the negatives (its influence "
            "accounts for the reuse).", UserWarning, stacklevel=3)


def _generalized_eigen(S: np.ndarray, S_pos: np.ndarray, k: int):
    """Eigenpairs of ``C = S^{-1/2} S_+ S^{-1/2}``: (lambda decreasing, W = S^{-1/2} V)."""
    s, E = np.linalg.eigh(S)
    if s[0] <= 1e-10 * s[-1]:
        raise ValueError(
            f"The anchor views X are rank-deficient (second-moment eigenvalues "
            f"{s[-1]:.3g} ... {s[0]:.3g}): some linear combination of the raw features is "
            "(almost) always zero, so A x is not identified along it. Drop redundant or "
            "constant-zero columns (or use PCA first)."
        )
    root_inv = (E / np.sqrt(s)) @ E.T
    lam, V = np.linalg.eigh(root_inv @ S_pos @ root_inv)
    lam, V = lam[::-1], V[:, ::-1]
    if lam[k - 1] <= 1e-10 * np.abs(lam).max():
        raise ValueError(
            f"Only {int(np.sum(lam > 1e-10 * np.abs(lam).max()))} generalised eigenvalues of "
            f"the pairs are positive (lambda = {np.round(lam, 4).tolist()}), but "
            f"n_components={k}: the positive views share fewer than {k} directions with the "
            "anchors (rank-deficient pair sample), and the loss is minimised by a matrix of "
            "lower rank. Choose fewer components."
        )
    return lam, root_inv @ V


def _negatives(Xp, Xn, sigma, rows=slice(None)) -> np.ndarray:
    """Rows ``rows`` of the negatives: ``X_pos[sigma]`` (permutation mode, gathered only
    for these rows) or the given ``Xn``."""
    if sigma is None:
        return Xn[rows]
    # np.take is the faster gather, but copies a non-contiguous array whole first
    return np.take(Xp, sigma[rows], axis=0) if Xp.flags.c_contiguous else Xp[sigma[rows]]


def _inverse_permutation(sigma) -> np.ndarray:
    """``sigma^{-1}``: ``W[sigma^{-1}]`` moves the rows of ``W`` to ``sigma``
    (``out[sigma[i]] = W[i]``) as a gather."""
    inverse = np.empty_like(sigma)
    inverse[sigma] = np.arange(len(sigma))
    return inverse


class _Moments(NamedTuple):
    """Second moments of the views (one product over the pairs): ``S = mean x x'``,
    ``S_pos = sym mean x x+'``, ``T = mean x- x-'`` (the negatives: the positive views
    in permutation mode) and ``pair_max = max |mean x x+'|`` (the gradient's scale)."""
    S: np.ndarray
    S_pos: np.ndarray
    T: np.ndarray
    pair_max: float


def _moments(units: np.ndarray, d: int, mode: str, weights=None) -> _Moments:
    """:class:`_Moments` of the single-array views ``units`` ([x, x+] or [x, x+, x-]),
    each unit counted ``weights`` times when given (given negatives)."""
    m = units.shape[0] if weights is None else weights.sum()
    root = None if weights is None else np.sqrt(weights)[:, None]
    pairs = units[:, :2 * d] if root is None else units[:, :2 * d] * root  # not a gather
    P = pairs.T @ pairs / m
    if mode == "permutation":
        T = P[d:, d:]
    else:
        negatives = units[:, 2 * d:] if root is None else units[:, 2 * d:] * root
        T = negatives.T @ negatives / m
    return _Moments(P[:d, :d], _sym(P[:d, d:]), T, float(np.abs(P[:d, d:]).max()))


def _views_terms(A, X, Xp, Xn, sigma=None):
    """Features of the three views and ``c = <Ax, Ax->``; with ``sigma`` (permutation
    mode) the negatives' features are ``(X_pos A')[sigma]``, no copy of the views."""
    Fx, Fp = X @ A.T, Xp @ A.T
    Fn = np.take(Fp, sigma, axis=0) if sigma is not None else Xn @ A.T
    return Fx, Fp, Fn, np.einsum("nk,nk->n", Fx, Fn)


def _loss(A, X, Xp, Xn, sigma=None, terms=None, weights=None) -> float:
    """Mean loss (weighted mean with unit ``weights``); ``terms`` are
    :func:`_views_terms` at ``A`` when known."""
    Fx, Fp, _, c = _views_terms(A, X, Xp, Xn, sigma) if terms is None else terms
    per_unit = -2.0 * np.einsum("nk,nk->n", Fx, Fp) + c ** 2
    if weights is None:
        return float(np.mean(per_unit))
    return float(weights @ per_unit / weights.sum())


def _mean_gradient(A, X, Xp, Xn, sigma=None, inverse=None, weights=None) -> np.ndarray:
    """Mean gradient (k, d) (:func:`_terms_and_gradient`)."""
    return _terms_and_gradient(A, X, Xp, Xn, sigma, inverse, weights)[1]


#: Rows per block of :func:`_terms_and_gradient` (blocks that stay in cache).
GRADIENT_CHUNK_ROWS = 2048


def _terms_and_gradient(A, X, Xp, Xn, sigma=None, inverse=None, weights=None):
    """:func:`_views_terms` and the mean gradient (k, d) at ``A``, reading ``X`` once.

    The gradient is the mean of the per-triple score of :func:`_row_scores`,
    ``(2/m) [U'X + V'X_pos + W'X_neg]`` with ``U = c Ax- - Ax+``, ``V = -Ax``,
    ``W = c Ax``. Over blocks of ``GRADIENT_CHUNK_ROWS`` rows (they stay in cache) the
    features ``Ax`` of a block are formed and its ``U'X`` taken at once; in permutation
    mode ``W'X_neg`` is a product with ``X_pos``, each row of ``W`` moved to the row
    ``sigma(i)`` that holds its negative (``inverse`` is ``sigma^{-1}``
    (:func:`_inverse_permutation`) when known), and joins ``V'X_pos`` in a second pass.
    With ``weights`` (given negatives) triple ``i`` counts ``w_i`` times: the rows of
    ``U``, ``V``, ``W`` are multiplied by ``w_i`` and ``m = sum_i w_i``.
    """
    n = X.shape[0]
    m = n if weights is None else weights.sum()
    Fp = Xp @ A.T
    Fn = np.take(Fp, sigma, axis=0) if sigma is not None else Xn @ A.T
    Fx = np.empty_like(Fp)
    c = np.empty(n, dtype=Fp.dtype)
    G = np.zeros(A.shape, dtype=Fp.dtype)
    for start in range(0, n, GRADIENT_CHUNK_ROWS):
        rows = slice(start, start + GRADIENT_CHUNK_ROWS)
        x = X[rows]
        fx = Fx[rows] = x @ A.T
        fn = Fn[rows]
        cb = c[rows] = np.einsum("nk,nk->n", fx, fn)
        U = cb[:, None] * fn - Fp[rows]
        if weights is None:
            G += U.T @ x
        else:
            w = weights[rows][:, None]
            G += (w * U).T @ x
            fx = w * fx  # V and W rows weighted (Fx itself stays the features)
        if sigma is None:
            G += (cb[:, None] * fx).T @ Xn[rows] - fx.T @ Xp[rows]
    if sigma is not None:
        W = c[:, None] * Fx
        if inverse is None:
            inverse = _inverse_permutation(sigma)
        for start in range(0, n, GRADIENT_CHUNK_ROWS):
            rows = slice(start, start + GRADIENT_CHUNK_ROWS)
            G += (np.take(W, inverse[rows], axis=0) - Fx[rows]).T @ Xp[rows]
    return (Fx, Fp, Fn, c), 2.0 * G / m


def _row_scores(A, X, Xp, Xn) -> np.ndarray:
    """Per-triple score ``-2[(Ax+)x' + (Ax)x+'] + 2c[(Ax-)x' + (Ax)x-']`` (n, k, d)."""
    Fx, Fp, Fn, c = _views_terms(A, X, Xp, Xn)
    return (-2.0 * (Fp[:, :, None] * X[:, None, :] + Fx[:, :, None] * Xp[:, None, :])
            + 2.0 * c[:, None, None] * (Fn[:, :, None] * X[:, None, :]
                                        + Fx[:, :, None] * Xn[:, None, :]))


def _negative_share(A, MS, B) -> np.ndarray:
    """``g_2(b) = 2 A (b b' M S + S M b b')`` per row of ``B`` (n, k, d), ``MS = M S``."""
    BMS = B @ MS                      # rows b' M S
    return 2.0 * ((B @ A.T)[:, :, None] * BMS[:, None, :]
                  + (BMS @ A.T)[:, :, None] * B[:, None, :])


#: Rows per chunk of the exact Hessian (its (rows, k d) array of ``g`` stays in cache).
HESSIAN_CHUNK_ROWS = 1024


def _mean_hessian(A, X, Xp, Xn, sigma=None, S_pos=None, terms=None,
                  weights=None) -> np.ndarray:
    r"""``I_k (x) (-4 S_+ + 2 mean[c (x x-' + x- x')]) + 2 mean[g g']``.

    ``S_+ = sym mean x x+'``, ``g = vec((A x-) x' + (A x) x-')``; ``S_pos`` is ``S_+``
    of these rows and ``terms`` are :func:`_views_terms` at ``A`` when known (else more
    products). One pass in chunks: per chunk the (rows, k d) array ``g``, built as the
    per-row products ``[A x-, A x] [x, x-]'`` (k x 2 times 2 x d), its Gram ``g'g`` (a
    symmetric rank-k update) and ``(c x)' x-`` (rows d^2). With ``weights`` (given
    negatives) the means count triple ``i`` ``w_i`` times (``sqrt(w_i) g_i`` in the
    Gram).
    """
    k, d = A.shape
    n_rows, q = X.shape[0], k * d
    m = n_rows if weights is None else weights.sum()
    outer = np.zeros((q, q))
    cross = np.zeros((d, d))
    pairs = np.zeros((d, d)) if S_pos is None else None
    rows_max = min(HESSIAN_CHUNK_ROWS, n_rows)
    g, F, Y = np.empty((rows_max, k, d)), np.empty((rows_max, k, 2)), np.empty((rows_max, 2, d))
    for start in range(0, n_rows, HESSIAN_CHUNK_ROWS):
        rows = slice(start, start + HESSIAN_CHUNK_ROWS)
        x, xn = X[rows], _negatives(Xp, Xn, sigma, rows)
        n = x.shape[0]
        if terms is None:
            Fx, Fn = x @ A.T, xn @ A.T
            c = np.einsum("nk,nk->n", Fx, Fn)
        else:
            Fx, Fn, c = terms[0][rows], terms[2][rows], terms[3][rows]
        F[:n, :, 0], F[:n, :, 1] = Fn, Fx
        Y[:n, 0], Y[:n, 1] = x, xn
        flat = np.matmul(F[:n], Y[:n], out=g[:n]).reshape(n, q)
        if weights is not None:  # the chunk's triples, each counted w times
            w = weights[rows]
            flat *= np.sqrt(w)[:, None]
            c = c * w
            if pairs is not None:
                pairs += (x * w[:, None]).T @ Xp[rows]
        elif pairs is not None:
            pairs += x.T @ Xp[rows]
        outer += flat.T @ flat
        cross += (x * c[:, None]).T @ xn
    if S_pos is None:
        S_pos = _sym(pairs) / m
    block = 2.0 * (cross + cross.T) / m - 4.0 * S_pos
    outer *= 2.0 / m
    for a in range(k):  # I_k (x) block, without np.kron's overhead
        outer[a * d:(a + 1) * d, a * d:(a + 1) * d] += block
    return outer


def _moment_hessian(A: np.ndarray, moments: _Moments) -> np.ndarray:
    r"""The mean Hessian with the expectations over a negative independent of its pair
    replaced by the sample moments (no pass over the data):

    .. math::

        I_k \otimes (-4 S_+ + 2(S M T + T M S)) + 2[(A T A') \otimes S
        + (A S A') \otimes T + N + N'], \qquad N_{(a,j),(b,l)} = (AT)_{al} (AS)_{bj},

    ``M = A'A``, ``S`` and ``T`` the second moments of the anchors and the negatives.
    It is the Hessian of ``-2 tr(A S_+ A') + tr(M T M S)`` (the loss with
    ``mean c^2`` replaced by its expectation given the moments), and differs from the
    sample Hessian by the sampling error of the fourth moments: curvature for the
    Newton steps of :func:`_minimise`, never for the influence.
    """
    k, d = A.shape
    S, S_pos, T, _ = moments
    M = A.T @ A
    U, V = A @ T, A @ S
    SMT = S @ M @ T
    N = np.einsum("al,bj->ajbl", U, V).reshape(k * d, k * d)
    H = 2.0 * (np.kron(A @ U.T, S) + np.kron(A @ V.T, T) + N + N.T)
    block = 2.0 * (SMT + SMT.T) - 4.0 * S_pos
    for a in range(k):
        H[a * d:(a + 1) * d, a * d:(a + 1) * d] += block
    return H


#: Rows of the subsample whose Hessian the trust-region iterations use: at least this
#: many per parameter (and at least a twentieth of the pairs).
SUBSAMPLE_ROWS_PER_PARAMETER = 200
#: Trust-region iterations between refreshes of the subsample's curvature.
RESTART_ITERATIONS = 10


def _minimise(A0, X, Xp, Xn, max_iter: int, sigma, moments: _Moments, weights=None):
    """Minimise the sample loss from ``A0``; returns (A, converged, relative gradient,
    mean Hessian).

    The gradient is analytic and full (``O(m k d)``, the negatives' features gathered,
    never the negatives); its scale is ``4 |A0| max|mean x x+'|``. First Newton steps
    in the horizontal space with the moment curvature of :func:`_moment_hessian`,
    rebuilt at every point from the d x d moments (no pass over the data), while the
    relative gradient falls at least twofold per step, down to 1e-10 (the curvature's
    error, the sampling error of fourth moments, sets the linear rate). When these do
    not get there (few pairs, or negatives dependent on their pairs), SciPy's Krylov
    trust-region method with the curvature of a subsample (every ``s``-th triple,
    ``SUBSAMPLE_ROWS_PER_PARAMETER`` per parameter, at least 1 in 20, refreshed every
    ``RESTART_ITERATIONS`` iterations) takes over until the relative gradient is 1e-8
    or a block of iterations shrinks it less than tenfold, then Newton steps with the
    subsample's curvature to 1e-10, and SciPy's exact trust-region method with the full
    Hessian when these do not get there either. All steps count against ``max_iter``.
    Finally the exact Hessian, formed once (:func:`_mean_hessian`), takes Newton steps
    to rounding (Newton steps do not need the loss to decrease measurably, which it
    cannot once the gradient is near rounding). The Hessian returned is that exact one,
    taken before the last steps: they move ``A`` by about the relative gradient
    (1e-10), so it is the Hessian at the returned ``A`` to that accuracy.

    ``weights`` (given negatives only): triple ``i`` counted ``w_i`` times in the loss,
    gradient and Hessians (``moments`` are the weighted ones); the subsample is every
    ``s``-th triple with its weight (strided views, no gather).
    """
    k, d = A0.shape
    m = X.shape[0]
    scale = 4.0 * np.linalg.norm(A0) * moments.pair_max
    inverse = None if sigma is None else _inverse_permutation(sigma)
    cache: dict = {}

    def evaluate(a):  # the views' terms and the gradient at a, once per point
        key = a.tobytes()
        if cache.get("key") != key:
            terms, grad = _terms_and_gradient(a.reshape(k, d), X, Xp, Xn, sigma, inverse,
                                              weights)
            cache.update(key=key, terms=terms, grad=grad.ravel())
        return cache

    def fun(a):
        return _loss(a.reshape(k, d), X, Xp, Xn, sigma, evaluate(a)["terms"], weights)

    def jac(a):
        return evaluate(a)["grad"]

    a, grad, used = _moment_newton(A0.ravel(), jac(A0.ravel()), jac, moments, (k, d),
                                   1e-10 * scale, max_iter)
    if np.abs(grad).max() > 1e-10 * scale:  # not there: subsample trust region
        step = max(1, min(m // (SUBSAMPLE_ROWS_PER_PARAMETER * A0.size), 20))
        if weights is None:
            rows = np.arange(0, m, step)
            sub = (X[rows], Xp[rows], _negatives(Xp, Xn, sigma, rows))
            sub_weights = None
        else:  # strided views with their weights: no gather
            sub, sub_weights = (X[::step], Xp[::step], Xn[::step]), weights[::step]
        size = np.inf
        while used < max_iter:  # the curvature is refreshed every RESTART_ITERATIONS
            H_sub = _mean_hessian(a.reshape(k, d), *sub, weights=sub_weights)
            result = optimize.minimize(
                fun, a, jac=jac, hessp=lambda _, v, H=H_sub: H @ v, method="trust-krylov",
                options={"gtol": 1e-8 * scale, "maxiter": min(RESTART_ITERATIONS,
                                                              max_iter - used)})
            a, used = result.x, used + result.nit
            previous, size = size, np.abs(jac(a)).max()
            if result.success or size > 0.1 * previous:  # converged, or slow: Newton
                break                                   # steps need no loss decrease
        grad = jac(a)
        a, grad = _newton_steps(a, grad, jac,
                                _mean_hessian(a.reshape(k, d), *sub, weights=sub_weights),
                                (k, d), 1e-10 * scale, max_steps=20)  # cheap: to 1e-10
    if np.abs(grad).max() > 1e-10 * scale:  # not there (a hard start): exact curvature
        result = optimize.minimize(
            fun, a, jac=jac, hess=lambda a: _mean_hessian(a.reshape(k, d), X, Xp, Xn, sigma,
                                                          weights=weights),
            method="trust-exact", options={"gtol": 1e-8 * scale,
                                           "maxiter": max(max_iter - used, 1)})
        a, grad = result.x, jac(result.x)
    H = _mean_hessian(a.reshape(k, d), X, Xp, Xn, sigma, moments.S_pos, evaluate(a)["terms"],
                      weights)
    a, grad = _newton_steps(a, grad, jac, H, (k, d), 1e-14 * scale)  # exact: to rounding
    grad_size = float(np.abs(grad).max() / scale)
    return a.reshape(k, d), grad_size < 1e-10, grad_size, H


def _moment_newton(a, grad, jac, moments: _Moments, shape, tol: float, max_steps: int):
    """Steps ``a <- a - step`` with ``step`` the horizontal Newton step of the moment
    curvature at ``a`` (:func:`_moment_hessian`, :func:`_horizontal_step`), taken while
    the gradient's largest entry is above ``tol``, the step descends and the gradient
    falls at least twofold; returns (a, gradient at a, steps taken)."""
    for steps in range(max_steps):
        size = np.abs(grad).max()
        if size <= tol:
            return a, grad, steps
        A = a.reshape(shape)
        try:
            step = _horizontal_step(_moment_hessian(A, moments), A, grad)
        except np.linalg.LinAlgError:
            return a, grad, steps
        if not step @ grad > 0:  # not a descent direction: the curvature is off
            return a, grad, steps
        new_grad = jac(a - step)
        if not np.abs(new_grad).max() <= 0.5 * size:
            return a, grad, steps
        a, grad = a - step, new_grad
    return a, grad, max_steps


def _horizontal_step(H, A, grad) -> np.ndarray:
    """The step solving ``Pi H Pi step = Pi grad`` on the horizontal space at ``A``
    (``Pi`` the projection off the rotation directions ``{Omega A}``, basis ``V``):
    ``(Pi H Pi + V V') step = Pi grad``."""
    V = vertical_basis(H.shape[0], rotation_tangent(A))
    VV = V @ V.T
    P = np.eye(H.shape[0]) - VV
    return np.linalg.solve(P @ H @ P + VV, P @ grad)


def _newton_steps(a, grad, jac, H, shape, tol: float, max_steps: int = 5):
    """Steps ``a <- a - H_h^+ grad`` (``H_h^+`` the horizontal inverse of ``H``, taken at
    the first point) while the gradient's largest entry is above ``tol`` and decreases;
    ``shape`` is the shape (k, d) of ``A``."""
    H_inv = None
    for _ in range(max_steps):
        if np.abs(grad).max() <= tol:
            break
        if H_inv is None:
            H_inv = horizontal_inverse(H, rotation_tangent(a.reshape(shape)), rtol=1e-12)[0]
        step = H_inv @ grad
        new_grad = jac(a - step)
        if np.abs(new_grad).max() >= np.abs(grad).max():
            break
        a, grad = a - step, new_grad
    return a, grad


def _gauge(A: np.ndarray, S: np.ndarray) -> np.ndarray:
    """The orthogonal ``Q`` (k, k) that puts ``Q A`` in the gauge: ``Q A S A' Q'``
    diagonal decreasing, each row's largest-|entry| positive."""
    _, R = np.linalg.eigh(A @ S @ A.T)
    Q = R[:, ::-1].T
    B = Q @ A
    pivot = np.argmax(np.abs(B), axis=1)
    return np.sign(B[np.arange(B.shape[0]), pivot])[:, None] * Q
