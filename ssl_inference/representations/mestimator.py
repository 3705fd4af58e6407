r"""A user-defined first stage: any M-estimator with a feature map (THEORY.md §4.5).

The user supplies the per-row loss ``l(x; theta)`` and/or the estimating function
``psi(x; theta)``, the feature map ``phi(x; theta)``, the fitted ``theta_hat`` and the
symmetry group; :class:`~ssl_inference.representations.linearization.MEstimatorBase`
supplies everything second-stage inference needs from them (the horizontal influence
``IF(x) = -H_h^+ psi(x)``, its streamed contraction, the group action); this module adds
the numerical derivatives (:mod:`~ssl_inference.representations.numdiff`: complex step
when the user's functions allow it, checked on the data, else central differences,
unless analytic ones are given) and the checks that ``theta_hat`` is a root and that the
declared symmetry leaves the loss invariant.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy import linalg, optimize

from ..exceptions import IdentificationWarning
from ..symmetry import Group, Trivial
from .chunked import DEFAULT_CHUNK_ROWS, as_pretrain_array, is_lazy, reduce_rows
from .linearization import MEstimatorBase, vertical_basis
from .numdiff import CENTRAL_STEP, NESTED_STEP, complex_step_works, jacobian

__all__ = ["MEstimatorRepresentation"]

#: Numbers per feature-Jacobian block (rows x k x q) in ``feature_vjp``: ~16 MB.
JACOBIAN_BLOCK = 2 ** 21
#: Rows used to decide whether the user's functions are complex-step safe.
PROBE_ROWS = 64
#: |mean psi_j| / SE(mean psi_j) above this: ``theta_hat`` is not a root on the data.
STATIONARITY_Z = 0.05


class MEstimatorRepresentation(MEstimatorBase):
    r"""A first stage defined by the user's loss (or estimating function) and feature map.

    ``theta_hat`` minimises ``(1/m) sum_i l(x_i; theta)`` (or solves
    ``sum_i psi(x_i; theta) = 0``); the features are ``phi(x; theta_hat)``. The group
    ``G`` (``symmetry``) leaves the loss invariant and moves the features by
    ``rho(g)``: ``phi(x; g.theta) = rho(g) phi(x; theta)`` (THEORY.md §2).

    Parameters
    ----------
    loss : callable ``(X, theta) -> (n,)``, optional
        Per-row loss, vectorised over the rows of ``X``. At least one of ``loss`` and
        ``estimating_function`` is given.
    estimating_function : callable ``(X, theta) -> (n, q)``, optional
        Per-row estimating function ``psi(x; theta)``: ``theta_hat`` solves
        ``sum_i psi(x_i; theta) = 0``. Together with ``loss`` it is the loss's analytic
        gradient (else that is differentiated numerically). Stored as ``psi_map``
        (:meth:`estimating_function` is the method that evaluates it at ``theta_hat``).
    transform : callable ``(X, theta) -> (n, k)``
        The feature map. Stored as ``feature_map`` (``transform`` is the method that
        applies it at ``theta_hat``).
    params : array_like (q,)
        ``theta_hat`` as fitted by the user, or the starting point when ``optimize``.
    symmetry : Group, optional
        How the features move (an :mod:`ssl_inference.symmetry` group acting on the k
        features); default :class:`~ssl_inference.symmetry.Trivial`.
    vertical : callable ``theta -> (q, r)``, optional
        Vertical directions at ``theta`` (tangent of the orbit). Default: derived from
        ``act`` and the group's Lie algebra (``d/dt act(theta, exp(t Omega))`` at 0) for
        continuous groups, none for finite groups.
    act : callable ``(theta, g) -> theta``, optional
        The group action on the parameters; needed by :meth:`act`, alignment and the
        aligned bootstrap.
    hessian : callable ``(X, theta) -> (q, q)``, optional
        Analytic MEAN over the rows of ``X`` of ``d psi(x; theta) / d theta'``.
    feature_jacobian : callable ``(X, theta) -> (n, k, q)``, optional
        Analytic ``d phi(x; theta) / d theta'`` per row.
    optimize : bool or callable ``(X, params) -> theta``
        False: ``params`` is ``theta_hat`` (it must be a root of the mean estimating
        function on the data passed to :meth:`fit`). True: minimise the mean loss with
        SciPy (BFGS, or a least-squares root of the mean estimating function) starting
        at ``params``. A callable is the user's own fitting routine. Refitting (the
        aligned bootstrap) needs True or a callable.
    alignment : callable ``theta -> (k, c)`` or array_like (r, p), optional
        Rows that move with ``rho(g)`` (used by :func:`ssl_inference.align`): a callable
        returning them, or raw reference rows whose features are used. Default: the
        features of the origin and of the points ``+-e_j``, ``phi([0; I_p; -I_p]; theta)'``
        (their Gram matrix ``sum_j (x_j - mu)(x_j - mu)'`` is at least ``2 I`` for an
        affine map, so matching is well conditioned).
    n_features_in : int, optional
        Number of raw columns the feature map takes, when it differs from the width of
        the pre-training rows (e.g. paired views stored side by side).
    numdiff : {"auto", "complex", "central"}
        Numerical derivatives: ``"auto"`` uses the complex step for each function that
        passes :func:`complex_step_works` on the data and central differences otherwise.
    feature_prefix : str

    Attributes
    ----------
    params_ : ndarray (q,)
    hessian_ : ndarray (q, q)
        Mean ``d psi / d theta'`` at ``theta_hat``.
    vertical_ : ndarray (q, r)
        Orthonormal basis of the vertical space at ``theta_hat``.
    derivatives_ : dict
        How the estimating function, Hessian and feature Jacobian are obtained.

    Notes
    -----
    Horizontal influence (THEORY.md §2, §4.5), with ``H = (1/m) sum_i d psi(x_i) /
    d theta'`` and ``H_h^+`` its inverse on the horizontal space
    (:func:`~ssl_inference.representations.linearization.horizontal_inverse`; for an
    invariant loss ``N (N'HN)^{-1} N'``, ``N`` an orthonormal basis of the complement
    of the vertical space):

    .. math:: IF(x) = -H_h^+ \psi(x; \hat\theta) .

    :meth:`fit` checks that
    ``theta_hat`` is a root (``|mean psi_j| <= 0.05 SE``), that the per-row scores of a
    loss have no vertical component and that ``H V = 0`` (else the declared symmetry
    does not leave the loss invariant), and that ``H`` is non-singular on the
    horizontal space (else ``theta`` is not identified beyond the symmetry).

    Precision: complex-step derivatives are exact to rounding; a Hessian from a loss
    alone is a central difference of the complex-step gradient (relative error
    ~1e-10); without complex-step safety the nested central differences give ~1e-6.

    Examples
    --------
    Least squares on a location parameter, features ``x - theta``:

    >>> import numpy as np, ssl_inference as ssi
    >>> X = np.random.default_rng(0).normal(size=(200, 2)) + [1.0, -1.0]
    >>> rep = ssi.MEstimatorRepresentation(
    ...     loss=lambda X, t: ((X - t) ** 2).sum(axis=1),
    ...     transform=lambda X, t: X - t, params=X.mean(axis=0))
    >>> rep = rep.fit(X)
    >>> rep.derivatives_["estimating_function"]
    'complex step'
    >>> bool(np.allclose(rep.influence(X[:3]), X[:3] - X.mean(axis=0)))
    True
    """

    gauge_convention = ("theta_hat as supplied (params), or the optimiser's solution "
                        "started from params; no further normalisation")

    def __init__(self, *, loss: Callable | None = None,
                 estimating_function: Callable | None = None,
                 transform: Callable | None = None, params=None,
                 symmetry: Group | None = None, vertical: Callable | None = None,
                 act: Callable | None = None,
                 hessian: Callable | None = None, feature_jacobian: Callable | None = None,
                 optimize: bool | Callable = False, alignment=None,
                 n_features_in: int | None = None,
                 numdiff: Literal["auto", "complex", "central"] = "auto",
                 feature_prefix: str = "f"):
        self.loss = loss
        self.psi_map = estimating_function
        self.feature_map = transform
        self.params = params
        self.symmetry = symmetry
        self.vertical = vertical
        self.act_on_params = act
        self.hessian = hessian
        self.feature_jacobian = feature_jacobian
        self.optimize = optimize
        self.alignment = alignment
        self.n_features_in = n_features_in
        self.numdiff = numdiff
        self.feature_prefix = feature_prefix

    def get_params(self) -> dict:
        """Hyper-parameters as passed to ``__init__`` (``estimating_function``,
        ``transform`` and ``act`` included).

        Examples
        --------
        >>> import ssl_inference as ssi
        >>> f = lambda X, t: X - t
        >>> rep = ssi.MEstimatorRepresentation(estimating_function=f, transform=f, params=[0.0])
        >>> rep.get_params()["transform"] is f
        True
        """
        out = {name: getattr(self, name) for name in (
            "loss", "params", "symmetry", "vertical", "hessian", "feature_jacobian",
            "optimize", "alignment", "n_features_in", "numdiff", "feature_prefix")}
        out["estimating_function"] = self.psi_map
        out["transform"] = self.feature_map
        out["act"] = self.act_on_params
        return out

    @property
    def n_features_out_(self) -> int:
        self._check_fitted()
        return self._k

    # ------------------------------------------------------------------- fit
    def fit(self, X, y=None) -> "MEstimatorRepresentation":
        """Evaluate (or optimise) ``theta_hat`` on the pre-training rows and linearise.

        Parameters
        ----------
        X : array_like (m, p_pre)
            Pre-training rows, passed as they are to ``loss`` / ``estimating_function``.

        Returns
        -------
        self

        Examples
        --------
        A scale parameter fitted inside ``fit`` (``optimize=True``), features ``x / t``:

        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(500, 1)) * 2.0
        >>> rep = ssi.MEstimatorRepresentation(
        ...     loss=lambda X, t: (X[:, 0] ** 2 - t[0] ** 2) ** 2,
        ...     transform=lambda X, t: X / t[0], params=[1.0], optimize=True).fit(X)
        >>> bool(np.isclose(rep.params_[0] ** 2, np.mean(X ** 2)))
        True
        """
        return self._fit_rows(X, None)

    def _fit_weighted(self, X, weights: np.ndarray, rows=None) -> "MEstimatorRepresentation":
        """Fit on the rows of ``X`` counted ``weights`` times.

        The objective is a sum over rows (``loss``, ``estimating_function`` and
        ``hessian`` are per-row terms and their mean), so every pass of :meth:`fit`
        carries the weights: ``sum_i w_i psi(x_i)`` for the optimiser and the
        stationarity check, ``sum_i w_i d psi(x_i)/d theta'`` for the Hessian (a
        user ``hessian``, a mean over the rows it is given, is called on the rows of
        each chunk that share a weight), and the probe rows (derivative checks) are
        the first rows of the resample. ``X[rows]`` is never gathered. A user
        ``optimize`` callable takes rows, not weights: it gets the gathered copy
        (:meth:`Representation._fit_weighted`)."""
        if callable(self.optimize):
            return super()._fit_weighted(X, weights, rows)
        return self._fit_rows(X, np.asarray(weights, dtype=np.float64))

    def _fit_rows(self, X, weights: np.ndarray | None) -> "MEstimatorRepresentation":
        """The fit on the rows of ``X`` (counted ``weights`` times when given)."""
        self._check_hyperparameters()
        arr = as_pretrain_array(X, "X_pre")  # numpy, memmap or dask: passes are chunked
        width = arr.shape[1]
        m = arr.shape[0] if weights is None else int(round(weights.sum()))
        if m < 2:
            raise ValueError(f"X_pre needs at least 2 rows; got {m}.")
        p = width if self.n_features_in is None else int(self.n_features_in)
        theta = self._initial_theta(arr)
        probe = _leading_rows(arr, weights, PROBE_ROWS)
        derivatives = self._choose_derivatives(probe, theta)
        phi = self._evaluate_features(probe[:, :p], theta)
        k = phi.shape[1]
        group = Trivial(k) if self.symmetry is None else self.symmetry
        if not isinstance(group, Group) or group.k != k:
            raise ValueError(
                f"symmetry must be an ssl_inference.symmetry Group acting on the k = {k} "
                f"features (e.g. Orthogonal({k}), SignFlips({k})); got {group!r}."
            )
        derivatives["features"] = self._choose_feature_derivative(probe[:, :p], theta)
        solver_note = None
        if self.optimize is not False:
            theta, solver_note = self._optimise(arr, theta, weights)
        self._check_stationary(*self._psi_moments(arr, theta, weights), m, solver_note)
        V = vertical_basis(theta.size, self._vertical_directions(theta, group))
        H = self._hessian_at(arr, theta, weights)
        self._check_vertical(_leading_rows(arr, weights, DEFAULT_CHUNK_ROWS), theta, H, V)
        rtol = 1e-6 if "central differences of central" in derivatives["hessian"] else 1e-10
        rcond = self.linearize(H, V, rtol=rtol)
        if rcond < 1e-6:
            warnings.warn(
                f"The first-stage Hessian is nearly singular on the horizontal space "
                f"(reciprocal condition {rcond:.1e}): theta is weakly identified and the "
                "two-stage standard errors may be unreliable.",
                IdentificationWarning, stacklevel=2)
        self._record_input_names(self, X if self.n_features_in is None else None)
        self.n_features_in_ = p
        self.nobs_ = m
        self.params_ = theta
        self.symmetry_ = group
        self.derivatives_ = derivatives
        self.pretrain_data_ = arr if weights is None else None  # a replicate keeps none
        self._k = k
        return self

    def _check_hyperparameters(self) -> None:
        if self.loss is None and self.psi_map is None:
            raise ValueError(
                "Give loss= (per-row loss, (X, theta) -> (n,)), estimating_function= "
                "(per-row psi, (X, theta) -> (n, q)), or both (then estimating_function "
                "is the analytic gradient of the loss)."
            )
        if not callable(self.feature_map):
            raise TypeError("transform= must be a callable (X, theta) -> (n, k) feature map; "
                            f"got {self.feature_map!r}.")
        if self.numdiff not in ("auto", "complex", "central"):
            raise ValueError(f"numdiff must be 'auto', 'complex' or 'central'; got "
                             f"{self.numdiff!r}.")
        if not (self.optimize is False or self.optimize is True or callable(self.optimize)):
            raise TypeError("optimize must be False, True or a callable (X, params) -> theta.")
        for name, label in (("loss", "loss"), ("psi_map", "estimating_function"),
                            ("vertical", "vertical"), ("act_on_params", "act"),
                            ("hessian", "hessian"), ("feature_jacobian", "feature_jacobian")):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{label}= must be a callable; got {type(value).__name__}.")

    def _initial_theta(self, X: np.ndarray) -> np.ndarray:
        if self.params is None:
            raise ValueError("params= (theta_hat, or the starting point with optimize=True) "
                             "is required.")
        theta = np.asarray(self.params, dtype=float)
        if theta.ndim != 1 or theta.size == 0 or not np.all(np.isfinite(theta)):
            raise ValueError(f"params must be a finite 1-D array (theta); got shape "
                             f"{theta.shape}.")
        return theta.copy()

    # ------------------------------------------------------------- derivatives
    def _choose(self, f: Callable, theta: np.ndarray, what: str) -> str:
        """'complex' or 'central' for differentiating ``f`` at ``theta``."""
        if self.numdiff == "central":
            return "central"
        works = complex_step_works(f, theta)
        if self.numdiff == "complex" and not works:
            raise ValueError(
                f"numdiff='complex' but the {what} is not complex-step safe (it fails on "
                "complex theta, drops the imaginary part, or uses abs/conj/max); write it "
                "with analytic operations only or use numdiff='auto'."
            )
        return "complex" if works else "central"

    def _choose_derivatives(self, probe: np.ndarray, theta: np.ndarray) -> dict:
        """Decide, on the probe rows, how psi and the Hessian are differentiated; store
        the choice in ``_numdiff`` (plain strings and numbers, so that the fitted object
        pickles) and describe it for ``derivatives_``."""
        numdiff, how = {}, {}
        if self.psi_map is not None:
            how["estimating_function"] = ("given" if self.loss is None
                                          else "analytic gradient of the loss")
        else:
            numdiff["loss"] = self._choose(lambda t: self.loss(probe, t), theta, "loss")
            how["estimating_function"] = ("complex step" if numdiff["loss"] == "complex"
                                          else "central differences")
        self._numdiff = numdiff
        out = self._psi_at(probe, theta)
        if out.shape != (probe.shape[0], theta.size):
            raise ValueError(
                f"The estimating function must return an array (n, q) = "
                f"({probe.shape[0]}, {theta.size}) for n rows and q = len(params); got "
                f"shape {out.shape}."
            )
        if self.hessian is not None:
            how["hessian"] = "analytic"
        elif self.psi_map is not None:
            method = self._choose(lambda t: self._psi_at(probe, t).sum(axis=0), theta,
                                  "estimating function")
            numdiff["hessian"] = (method, CENTRAL_STEP)
            how["hessian"] = "complex step" if method == "complex" else "central differences"
        else:
            inner = numdiff["loss"]
            numdiff["hessian"] = ("central", CENTRAL_STEP if inner == "complex" else NESTED_STEP)
            how["hessian"] = ("central differences of a complex-step gradient"
                              if inner == "complex"
                              else "central differences of central differences")
        return how

    def _choose_feature_derivative(self, probe: np.ndarray, theta: np.ndarray) -> str:
        """How the feature Jacobian is obtained (stored in ``_numdiff``), in words."""
        if self.feature_jacobian is not None:
            return "analytic"
        self._numdiff["features"] = self._choose(lambda t: self.feature_map(probe, t),
                                                 theta, "feature map")
        return ("complex step" if self._numdiff["features"] == "complex"
                else "central differences")

    def _psi_at(self, X: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Per-row psi at any ``theta``: the user's, or the loss's numerical gradient."""
        if self.psi_map is not None:
            return np.asarray(self.psi_map(X, theta))
        return jacobian(lambda s: self.loss(X, s), theta, self._numdiff["loss"])

    def _hessian_at(self, X: np.ndarray, theta: np.ndarray,
                    weights: np.ndarray | None = None) -> np.ndarray:
        """Mean ``d psi / d theta'`` over the rows of ``X`` (counted ``weights`` times),
        streamed in chunks."""
        if weights is not None:
            return self._weighted_hessian_at(X, theta, weights)
        if self.hessian is not None:
            if not is_lazy(X):
                return np.asarray(self.hessian(X, theta), dtype=float)
            # the user's mean Hessian of each chunk, weighted by its rows
            return reduce_rows(X, lambda chunk, lo, hi: (hi - lo) * np.asarray(
                self.hessian(chunk, theta), dtype=float)) / X.shape[0]
        method, step = self._numdiff["hessian"]

        def chunk_sum(chunk, start, stop):
            return jacobian(lambda s: self._psi_at(chunk, s).sum(axis=0), theta, method, step)
        return reduce_rows(X, chunk_sum) / X.shape[0]

    def _weighted_hessian_at(self, X, theta: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``(1/sum w) sum_i w_i d psi(x_i) / d theta'``: a user ``hessian`` (a mean over
        the rows it is given) on each chunk's rows of equal weight ``c``, times ``c``
        and their number; otherwise the derivative of ``sum_i w_i psi(x_i)``."""
        if self.hessian is not None:
            def chunk_sum(chunk, lo, hi, w):
                total = 0.0
                for c in np.unique(w[w > 0]):
                    rows = chunk[w == c]
                    total = total + c * rows.shape[0] * np.asarray(
                        self.hessian(rows, theta), dtype=float)
                return total + np.zeros((theta.size, theta.size))
        else:
            method, step = self._numdiff["hessian"]

            def chunk_sum(chunk, lo, hi, w):
                return jacobian(lambda s: w @ self._psi_at(chunk, s), theta, method, step)
        return reduce_rows(X, chunk_sum, aligned=(weights,)) / weights.sum()

    def _feature_jacobian_at(self, X: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """``d phi(x; theta) / d theta'`` per row (n, k, q)."""
        if self.feature_jacobian is not None:
            return np.asarray(self.feature_jacobian(X, theta), dtype=float)
        return jacobian(lambda s: self.feature_map(X, s), theta, self._numdiff["features"])

    def _evaluate_features(self, X: np.ndarray, theta: np.ndarray) -> np.ndarray:
        phi = np.asarray(self.feature_map(X, theta))
        if phi.ndim != 2 or phi.shape[0] != X.shape[0] or phi.shape[1] < 1:
            raise ValueError(
                f"transform must return an array (n, k) with one row per input row; got "
                f"shape {phi.shape} for {X.shape[0]} rows."
            )
        if np.iscomplexobj(phi) or not np.all(np.isfinite(phi)):
            raise ValueError("transform returned complex or non-finite features at params.")
        return phi

    # ------------------------------------------------------------ fit checks
    def _psi_moments(self, X: np.ndarray, theta: np.ndarray,
                     weights: np.ndarray | None = None):
        def chunk_sums(chunk, start, stop, *w):
            psi = self._psi_at(chunk, theta)
            bad = np.array([np.count_nonzero(~np.isfinite(chunk))])
            if w:
                return w[0] @ psi, w[0] @ psi ** 2, bad
            return psi.sum(axis=0), (psi ** 2).sum(axis=0), bad
        total, total_sq, bad = reduce_rows(X, chunk_sums, aligned=_aligned(weights))
        if bad[0]:
            raise ValueError(
                f"X_pre contains NaN or infinite values ({int(bad[0])} entries). Remove or "
                "impute these rows before fitting the first stage.")
        m = X.shape[0] if weights is None else weights.sum()
        mean = total / m
        rms = np.sqrt(total_sq / m)
        sd = np.sqrt(np.maximum(total_sq / m - mean ** 2, 0.0))
        return mean, sd, rms

    @staticmethod
    def _check_stationary(mean, sd, rms, m, solver_note: str | None) -> None:
        se = sd / np.sqrt(m) + 1e-10 * rms.max(initial=0.0) + np.finfo(float).tiny
        z = np.abs(mean) / se
        if z.max() > STATIONARITY_Z:
            j = int(np.argmax(z))
            what = ("params is" if solver_note is None
                    else f"the optimiser's solution ({solver_note}) is")
            raise ValueError(
                f"{what} not a root of the mean estimating function on these rows: "
                f"|mean psi_{j}| = {abs(mean[j]):.3g} is {z[j]:.3g} standard errors from 0 "
                f"(allowed: {STATIONARITY_Z}). The influence function is a linearisation at "
                "the fitted theta, so it would be wrong here. Pass the fitted theta_hat for "
                "exactly these rows, or optimize=True (or your own fitting callable) to fit "
                "it inside fit(), which is also what refitting (the bootstrap) needs."
            )

    def _vertical_directions(self, theta: np.ndarray, group: Group) -> np.ndarray | None:
        if self.vertical is not None:
            V = np.asarray(self.vertical(theta), dtype=float)
            if V.ndim == 1:
                V = V[:, None]
            if V.ndim != 2 or V.shape[0] != theta.size:
                raise ValueError(f"vertical(theta) must return an array (q, r) with q = "
                                 f"{theta.size}; got shape {V.shape}.")
            return V
        basis = group.lie_algebra()
        if not basis:
            return None
        if self.act_on_params is None:
            raise ValueError(
                f"The symmetry {group.name} has {group.vertical_dim}-dimensional orbits; "
                "give vertical= (theta -> q x r tangent directions of the orbit) or act= "
                "(theta, g) -> theta, from which they are derived."
            )
        h = 1e-5
        cols = []
        for Omega in basis:
            up = np.asarray(self.act_on_params(theta, linalg.expm(h * Omega)), dtype=float)
            down = np.asarray(self.act_on_params(theta, linalg.expm(-h * Omega)), dtype=float)
            cols.append((up - down) / (2 * h))
        return np.column_stack(cols)

    def _check_vertical(self, X, theta, H, V) -> None:
        """The declared vertical space must be a null space of the loss."""
        if V.shape[1] == 0:
            return
        HV = np.linalg.norm(H @ V) / max(np.linalg.norm(H), np.finfo(float).tiny)
        if HV > 1e-3:
            raise ValueError(
                f"The declared vertical directions are not flat directions of the "
                f"pre-training objective (|H V| / |H| = {HV:.2e}): the loss is not invariant "
                "under the declared symmetry at theta_hat. Check symmetry=, vertical= / act=."
            )
        if self.loss is not None:
            psi = self._psi_at(np.asarray(X[:DEFAULT_CHUNK_ROWS], dtype=float), theta)
            share = np.linalg.norm(psi @ V) / max(np.linalg.norm(psi), np.finfo(float).tiny)
            if share > 1e-5:
                raise ValueError(
                    f"The per-row scores have a vertical component (relative size "
                    f"{share:.1e}), so the per-row loss is not invariant under the declared "
                    "symmetry. Check symmetry=, vertical= / act=."
                )

    def _optimise(self, X: np.ndarray, theta0: np.ndarray,
                  weights: np.ndarray | None = None) -> tuple[np.ndarray, str]:
        """Fit theta on ``X`` (rows counted ``weights`` times) from ``params``; returns it
        with a note on the solver."""
        if callable(self.optimize):
            theta = np.asarray(self.optimize(X, theta0.copy()), dtype=float)
            if theta.shape != theta0.shape or not np.all(np.isfinite(theta)):
                raise ValueError(f"optimize(X, params) must return a finite array of shape "
                                 f"{theta0.shape}; got {theta.shape}.")
            return theta, "user's optimize callable"
        m = X.shape[0] if weights is None else weights.sum()
        aligned = _aligned(weights)

        def mean_psi(t):
            return reduce_rows(X, lambda chunk, lo, hi, *w: _row_sum(
                self._psi_at(chunk, t), w), aligned=aligned) / m

        if self.loss is not None:
            def mean_loss(t):
                return float(reduce_rows(X, lambda chunk, lo, hi, *w: np.atleast_1d(_row_sum(
                    np.asarray(self.loss(chunk, t)), w)), aligned=aligned)[0]) / m
            result = optimize.minimize(mean_loss, theta0, jac=mean_psi, method="BFGS",
                                       options={"gtol": 1e-10, "maxiter": 2000})
            note = f"scipy BFGS: {result.message}"
        else:
            result = optimize.root(mean_psi, theta0, method="lm",
                                   options={"xtol": 1e-14, "ftol": 1e-14})
            note = f"scipy root (lm): {result.message}"
        return np.asarray(result.x, dtype=float), note

    # ------------------------------------------------------------------ symmetry
    def moved_params(self, g) -> tuple[np.ndarray, np.ndarray]:
        r"""``(act(theta_hat, g), D)`` with ``D = d act(theta, g) / d theta``.

        ``D`` by complex step, else central differences; :meth:`act` moves the
        linearisation with it (``IF -> D IF``) and the features become ``rho(g) phi``.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> from ssl_inference.symmetry import SignFlips
        >>> X = np.random.default_rng(0).normal(size=(100, 1)) + 2.0
        >>> rep = ssi.MEstimatorRepresentation(
        ...     loss=lambda X, t: (X[:, 0] - t[0] ** 2) ** 2,
        ...     transform=lambda X, t: t[0] * X, params=[np.sqrt(X.mean())],
        ...     symmetry=SignFlips(1), act=lambda t, g: t * g).fit(X)
        >>> moved = rep.act(np.array([-1.0]))
        >>> bool(np.allclose(moved.transform(X), -rep.transform(X)))
        True
        """
        self._check_fitted()
        if isinstance(self.symmetry_, Trivial) or g is None:
            return self.params_.copy(), np.eye(self.params_.size)
        if self.act_on_params is None:
            raise NotImplementedError(
                "This MEstimatorRepresentation has no act= (theta, g) -> theta, so it cannot "
                "be moved along its symmetry orbit; alignment and the aligned bootstrap need "
                "it. Pass act= when constructing it."
            )
        theta = self.params_

        def moved(t):
            return np.asarray(self.act_on_params(t, g))
        D = jacobian(moved, theta, "complex" if complex_step_works(moved, theta) else "central")
        return np.asarray(self.act_on_params(theta, g), dtype=float), D

    def alignment_coordinates(self) -> np.ndarray:
        """Rows that move with ``rho(g)`` (k, c): see the ``alignment`` parameter.

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(100, 2))
        >>> rep = ssi.MEstimatorRepresentation(
        ...     estimating_function=lambda X, t: X - t, transform=lambda X, t: X - t,
        ...     params=X.mean(axis=0)).fit(X)
        >>> rep.alignment_coordinates().shape        # features of 0, +-e_1, +-e_2
        (2, 5)
        """
        self._check_fitted()
        if callable(self.alignment):
            return np.asarray(self.alignment(self.params_), dtype=float)
        if self.alignment is not None:
            return self._transform(self._validate_rows(self.alignment, "alignment")).T
        p = self.n_features_in_
        return self._transform(np.vstack([np.zeros(p), np.eye(p), -np.eye(p)])).T

    # ------------------------------------------------------------------ features
    def _transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.feature_map(X, self.params_), dtype=float)

    def feature_vjp(self, X, C, *, per_row: bool = False) -> np.ndarray:
        r"""Vector-Jacobian product ``sum_j (d phi(x_j) / d theta)' c_j``.

        The per-row Jacobians ``(rows, k, q)`` come from ``feature_jacobian`` or the
        complex step / central differences of ``transform`` and are formed for blocks of
        rows only (memory ``O(block k q)``, about 16 MB).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(50, 2))
        >>> rep = ssi.MEstimatorRepresentation(
        ...     loss=lambda X, t: ((X - t) ** 2).sum(axis=1),
        ...     transform=lambda X, t: X - t, params=X.mean(axis=0)).fit(X)
        >>> rep.feature_vjp(X[:5], np.ones((5, 2, 1)))[:, 0]      # d(x - t)/dt = -I
        array([-5., -5.])
        """
        self._check_fitted()
        X = np.asarray(X, dtype=float)
        C = np.asarray(C, dtype=float)
        q, k = self.params_.size, self._k
        block = max(1, JACOBIAN_BLOCK // (k * q))
        out = np.zeros((X.shape[0], q)) if per_row else np.zeros((q, C.shape[-1]))
        for start in range(0, X.shape[0], block):
            rows = slice(start, start + block)
            J = self._feature_jacobian_at(X[rows], self.params_)
            if per_row:
                out[rows] = np.einsum("nkq,nk->nq", J, C[rows])
            else:
                out += np.einsum("nkq,nkr->qr", J, C[rows])
        return out

    # ----------------------------------------------------------------- influence
    def estimating_function(self, U) -> np.ndarray:
        """The user's ``psi(x; theta_hat)`` (or the loss's gradient) per pre-training row (n, q).

        Examples
        --------
        >>> import numpy as np, ssl_inference as ssi
        >>> X = np.random.default_rng(0).normal(size=(100, 2))
        >>> rep = ssi.MEstimatorRepresentation(
        ...     estimating_function=lambda X, t: X - t,
        ...     transform=lambda X, t: X - t, params=X.mean(axis=0)).fit(X)
        >>> bool(np.allclose(rep.influence(X), X - X.mean(axis=0)))   # -H^-1 psi, H = -I
        True
        """
        self._check_fitted()
        return self._psi_at(np.asarray(U, dtype=float), self.params_)


def _aligned(weights: np.ndarray | None) -> tuple:
    """The row-aligned arrays of a (weighted) reduction."""
    return () if weights is None else (weights,)


def _row_sum(values: np.ndarray, weights: tuple) -> np.ndarray:
    """``sum_i v_i`` over a chunk's rows, or ``sum_i w_i v_i`` with ``weights = (w,)``."""
    return values.sum(axis=0) if not weights else weights[0] @ values


def _leading_rows(X, weights: np.ndarray | None, count: int) -> np.ndarray:
    """The first ``count`` rows of the sample (each row of ``X`` repeated ``weights``
    times when given), read from a leading slice of ``X``: no gather of ``X[rows]``."""
    if weights is None:
        return np.asarray(X[:count], dtype=float)
    stop = int(np.searchsorted(np.cumsum(weights), count)) + 1
    head = np.asarray(X[:stop], dtype=float)
    return np.repeat(head, weights[:stop].astype(np.intp), axis=0)[:count]
