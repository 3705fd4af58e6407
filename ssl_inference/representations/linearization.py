r"""Linearisation of an M-estimator first stage at its fit (THEORY.md §2-3).

A first stage whose ``theta_hat`` solves ``sum_i psi(u_i; theta) = 0`` over the
pre-training units has the influence

.. math:: IF(u) = -H_h^+ \psi(u; \hat\theta), \qquad
          H = \frac1m \sum_i \frac{\partial \psi(u_i; \hat\theta)}{\partial \theta'},

where ``H_h^+`` is the inverse of ``H`` on the horizontal space (the orthogonal
complement of the tangent of the symmetry orbit, along which ``H`` is singular). This
module computes ``H_h^+`` once (:func:`horizontal_inverse`) and derives everything
else from it in :class:`MEstimatorBase`: the influence, its streamed contraction
``IF(U_chunk) K' = -psi(U_chunk) (K H_h^+)'`` (``K`` is contracted with ``H_h^+``
first, an ``r x q`` product, then one chunk product with the per-unit estimating
function), the clustered sums, and the transport of all of it by the group action.
"""
from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Iterator

import numpy as np

from ..symmetry import Orthogonal, Trivial
from .base import DEFAULT_CHUNK_ROWS, Representation
from .chunked import shippable

__all__ = ["MEstimatorBase", "horizontal_inverse", "horizontal_basis", "vertical_basis",
           "equilibration", "rotation_tangent"]

#: Singular values below this fraction of the largest count as zero in a span.
SPAN_RTOL = 1e-10


def vertical_basis(q: int, vertical: np.ndarray | None) -> np.ndarray:
    """Orthonormal basis (q, r) of ``span(vertical)`` (r = its numerical rank).

    Examples
    --------
    >>> vertical_basis(3, np.array([[2.0, 4.0], [0.0, 0.0], [0.0, 0.0]])).shape  # rank 1
    (3, 1)
    """
    if vertical is None or np.size(vertical) == 0:
        return np.zeros((q, 0))
    U, s, _ = np.linalg.svd(np.asarray(vertical, dtype=float).reshape(q, -1),
                            full_matrices=False)
    return U[:, s > SPAN_RTOL * max(s[0], np.finfo(float).tiny)]


def horizontal_basis(q: int, vertical: np.ndarray | None) -> np.ndarray:
    """Orthonormal basis (q, q - r) of the orthogonal complement of ``span(vertical)``.

    Examples
    --------
    >>> horizontal_basis(3, np.array([[1.0], [1.0], [0.0]])).shape
    (3, 2)
    """
    if vertical is None or np.size(vertical) == 0:
        return np.eye(q)
    U, s, _ = np.linalg.svd(np.asarray(vertical, dtype=float).reshape(q, -1))
    rank = int(np.sum(s > SPAN_RTOL * max(s[0], np.finfo(float).tiny)))
    return U[:, rank:]


def horizontal_inverse(hessian: np.ndarray, vertical: np.ndarray | None = None, *,
                       rtol: float = 1e-10, singular: str = "raise"
                       ) -> tuple[np.ndarray, float]:
    r"""Generalised inverse of a first-stage Hessian on the horizontal space.

    With ``V`` an orthonormal basis of the vertical directions (the tangent of the
    symmetry orbit), ``Pi = I - V V'`` and ``N`` an orthonormal basis of the horizontal
    space, returns

    .. math:: H_h^+ = \Pi\, S N_s (S H S N_s)^+ S\, \Pi ,

    where ``S`` is the symmetric equilibration of :func:`equilibration` (so that
    parameters in different units do not look singular: rescaling ``theta`` leaves the
    scaled problem unchanged) and ``N_s`` spans the complement of ``S^{-1} V``. For
    the Hessian of an invariant loss (``H`` symmetric, ``H V = 0``) this is
    ``N (N'HN)^{-1} N'``, the Moore-Penrose inverse of ``H`` with the vertical null
    space removed explicitly; for a non-symmetric Jacobian of estimating equations
    without symmetry it is ``H^{-1}``. ``IF = -H_h^+ psi`` is then horizontal and
    solves the linearised estimating equations ``mean psi + H delta = 0``.

    Parameters
    ----------
    hessian : ndarray (q, q)
        Mean derivative ``(1/m) sum_i d psi(u_i; theta) / d theta'`` at ``theta_hat``.
    vertical : ndarray (q, r), optional
        Vertical directions (need not be orthonormal; their span is used).
    rtol : float
        The scaled ``H`` restricted to the horizontal space counts as singular when its
        smallest singular value is below ``rtol`` times its largest.
    singular : {"raise", "pinv"}
        What to do then: raise the identification error below, or return the
        pseudo-inverse (singular values below ``rtol`` dropped) for a caller that warns
        itself.

    Returns
    -------
    inverse : ndarray (q, q)
    reciprocal_condition : float
        Smallest over largest singular value of the scaled ``H`` on the horizontal space.

    Raises
    ------
    ValueError
        When it is singular and ``singular="raise"``: the first stage is not identified
        beyond the declared symmetry.

    Examples
    --------
    >>> H = np.diag([2.0, 4.0, 0.0])                 # flat along the third axis
    >>> Hinv, rcond = horizontal_inverse(H, np.array([[0.0], [0.0], [1.0]]))
    >>> np.round(Hinv, 3)
    array([[0.5 , 0.  , 0.  ],
           [0.  , 0.25, 0.  ],
           [0.  , 0.  , 0.  ]])
    >>> round(float(rcond), 12)              # scaled: both directions equally curved
    1.0
    """
    if singular not in ("raise", "pinv"):
        raise ValueError(f"singular must be 'raise' or 'pinv'; got {singular!r}.")
    H = np.asarray(hessian, dtype=float)
    q = H.shape[0]
    V = vertical_basis(q, vertical)
    s = equilibration(H)
    N = horizontal_basis(q, V / s[:, None])
    HN = (H * np.outer(s, s)) @ N
    sv = np.linalg.svd(HN, compute_uv=False)
    rcond = float(sv[-1] / sv[0]) if sv.size and sv[0] > 0 else (1.0 if not sv.size else 0.0)
    if N.shape[1] and rcond < rtol and singular == "raise":
        raise ValueError(
            f"The first-stage Hessian restricted to the horizontal space is singular "
            f"(smallest/largest singular value {rcond:.2e}, {N.shape[1]} horizontal "
            f"directions): the pre-training loss is flat along a direction that the "
            f"declared symmetry does not explain, so theta is not identified and has no "
            f"influence function. Declare the missing symmetry (vertical directions), "
            f"fix the redundant parameters, or use fewer features."
        )
    inverse = s[:, None] * (N @ np.linalg.pinv(HN, rcond=rtol)) * s[None, :]
    if V.shape[1]:
        Pi = np.eye(q) - V @ V.T
        inverse = Pi @ inverse @ Pi
    return inverse, rcond


def equilibration(H: np.ndarray, *, tol: float = 1e-6, max_iter: int = 100) -> np.ndarray:
    r"""Symmetric diagonal scaling ``s`` with every row and column of ``S |H| S`` of
    maximum 1 (Ruiz's iteration ``s <- s / sqrt(max(row max, column max))``).

    The fixed point moves with the parameters' units: for ``H' = D H D`` it is
    ``D^{-1} s``, so ``S H S`` (and its condition) does not depend on them. Rows and
    columns that are exactly zero keep ``s = 1``.

    Examples
    --------
    >>> H = np.array([[4e6, 2e3], [2e3, 9.0]])
    >>> s = equilibration(H)
    >>> np.round(np.abs(H) * np.outer(s, s), 4)
    array([[1.    , 0.3333],
           [0.3333, 1.    ]])
    """
    A = np.abs(np.asarray(H, dtype=float))
    s = np.ones(A.shape[0])
    for _ in range(max_iter):
        B = A * np.outer(s, s)
        r = np.maximum(B.max(axis=0, initial=0.0), B.max(axis=1, initial=0.0))
        r = np.where(r > 0, r, 1.0)
        s = s / np.sqrt(r)
        if np.abs(r - 1.0).max(initial=0.0) <= tol:
            break
    return s


def rotation_tangent(block: np.ndarray, *, lead: int = 0, trail: int = 0) -> np.ndarray:
    r"""Tangent of the orbit ``M -> Q M`` (``Q`` in ``O(k)``) of a row-major block.

    For ``theta = [a (lead), vec(M) (k x c, row-major), b (trail)]`` whose block ``M``
    is moved by ``Q M``, the columns ``(0, vec(Omega M), 0)`` for ``Omega`` in the basis
    of antisymmetric ``k x k`` matrices (``k(k-1)/2`` of them; dependent ones when
    rows of ``M`` vanish).

    Examples
    --------
    >>> rotation_tangent(np.eye(2), lead=1).ravel()     # Omega = [[0, 1], [-1, 0]]
    array([ 0.,  0.,  1., -1.,  0.])
    """
    M = np.asarray(block, dtype=float)
    k = M.shape[0]
    cols = []
    for Omega in Orthogonal(k).lie_algebra() if k > 1 else []:
        v = np.zeros(lead + M.size + trail)
        v[lead:lead + M.size] = (Omega @ M).ravel()
        cols.append(v)
    return np.column_stack(cols) if cols else np.zeros((lead + M.size + trail, 0))


class MEstimatorBase(Representation):
    r"""Base of first stages that are M-estimators: influence from the estimating function.

    A subclass supplies the per-unit estimating function, the mean Hessian and the
    vertical directions; this class derives, once for all first stages, the
    horizontal inverse ``H_h^+`` (:func:`horizontal_inverse`), the influence
    ``IF(u) = -H_h^+ psi(u)``, its streamed contraction (:meth:`influence_contract`),
    the clustered sums (:meth:`~Representation.influence_sums`) and the group action
    on all of them (:meth:`act`).

    What a subclass implements:

    * ``fit(X_pre)``: set ``params_``, ``nobs_``, ``symmetry_``, ``n_features_in_`` and
      ``pretrain_data_``, then call :meth:`linearize` with the mean Hessian and the
      vertical directions at ``params_``;
    * :meth:`estimating_function` ``psi(u; theta_hat)`` per pre-training unit (the
      gradient of the per-unit loss or log-likelihood, in the ``params_`` layout; its
      mean over the pre-training units is zero at ``theta_hat``);
    * ``_transform`` and ``feature_vjp`` (the features and their derivative);
    * for a non-trivial group: :meth:`moved_params` (how ``g`` moves ``theta``) and
      :meth:`alignment_coordinates`;
    * ``_set_params`` when the features read quantities unpacked from ``params_``.

    A closed form that is faster than the generic path stays behind the same
    interface by overriding the contraction hooks ``_prepare_contraction`` (fold
    ``K H_h^+`` into an operator once) and ``_contract_units`` (apply it to a chunk of
    units), as :class:`~ssl_inference.PCA` does.

    Attributes
    ----------
    hessian_ : ndarray (q, q)
        Mean ``d psi / d theta'`` at ``theta_hat``.
    vertical_ : ndarray (q, r)
        Orthonormal basis of the vertical space (tangent of the orbit) at ``theta_hat``.

    Examples
    --------
    The mean of the rows, with the features ``x - theta``:

    >>> import numpy as np
    >>> from ssl_inference.representations import MEstimatorBase
    >>> from ssl_inference.symmetry import Trivial
    >>> class Centred(MEstimatorBase):
    ...     gauge_convention = "none (no symmetry)"
    ...     n_features_out_ = 2
    ...     def fit(self, X, y=None):
    ...         X = np.asarray(X, dtype=float)
    ...         self.params_, self.nobs_, self.n_features_in_ = X.mean(0), *X.shape
    ...         self.symmetry_, self.pretrain_data_ = Trivial(2), X
    ...         self.linearize(-np.eye(2))              # d psi / d theta'
    ...         return self
    ...     def estimating_function(self, U):
    ...         return np.asarray(U) - self.params_
    ...     def _transform(self, X):
    ...         return X - self.params_
    ...     def feature_vjp(self, X, C, *, per_row=False):
    ...         return -np.asarray(C) if per_row else -np.asarray(C).sum(axis=0)
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> rep = Centred().fit(X)
    >>> bool(np.allclose(rep.influence(X), X - X.mean(0)))
    True
    """

    hessian_: np.ndarray
    vertical_: np.ndarray

    @abstractmethod
    def estimating_function(self, U) -> np.ndarray:
        """Per-unit estimating function ``psi(u; theta_hat)``, shape (n, q).

        ``U`` holds pre-training units laid out as :meth:`pretrain_units` returns them;
        the columns follow the ``params_`` layout. Its mean over the pre-training
        units is zero at ``theta_hat``.
        """

    def linearize(self, hessian: np.ndarray, vertical: np.ndarray | None = None, *,
                  rtol: float = 1e-10, singular: str = "raise") -> float:
        """Store the linearisation at ``params_``: ``hessian_``, ``vertical_``, ``H_h^+``.

        Called by ``fit``; nothing is stored when it raises.

        Parameters
        ----------
        hessian : ndarray (q, q)
            Mean ``d psi / d theta'`` over the pre-training units at ``params_``.
        vertical : ndarray (q, r), optional
            Vertical directions (tangent of the orbit; any spanning set).
        rtol, singular
            See :func:`horizontal_inverse`.

        Returns
        -------
        float
            The reciprocal condition of the scaled horizontal Hessian.
        """
        H = np.asarray(hessian, dtype=float)
        q = H.shape[0]
        if H.shape != (q, q):
            raise ValueError(f"The Hessian must be a square (q, q) array; got {H.shape}.")
        V = vertical_basis(q, vertical)
        self._horizontal_inverse, rcond = horizontal_inverse(H, V, rtol=rtol,
                                                             singular=singular)
        self.hessian_, self.vertical_ = H, V
        return rcond

    # ------------------------------------------------------------------ influence
    def influence(self, U) -> np.ndarray:
        """Horizontal influence ``IF(u) = -H_h^+ psi(u; theta_hat)`` of units ``U`` (n, q).

        ``U`` holds pre-training units laid out as :meth:`pretrain_units` returns them.
        """
        self._check_fitted()
        return self._contract_units(self._validate_units(U), self._prepare_contraction(None))

    def influence_contract(
        self, K: np.ndarray, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``IF(U_chunk) K' = -psi(U_chunk) (K H_h^+)'`` over the pre-training units.

        ``K H_h^+`` (r x q) is formed once; each chunk then costs one product with the
        per-unit estimating function: ``O(m q r)`` in all, memory ``O(chunk_rows q)``.
        See :meth:`Representation.influence_contract` for the parameters.
        """
        self._check_fitted()
        prepared = self._prepare_contraction(np.atleast_2d(np.asarray(K, dtype=float)))
        rows = self._contraction_chunk_rows(chunk_rows, prepared)
        for start, stop, U in self._unit_chunks(rows):
            yield start, stop, self._contract_units(U, prepared)

    def _contractor(self, K: np.ndarray, chunk_rows: int):
        """``IF(U) K' = -psi(U) (K H_h^+)'`` per chunk, ``K H_h^+`` folded once (the
        function the workers of a dask reduction run) and the units per chunk."""
        prepared = self._prepare_contraction(K)
        rep = shippable(self)
        return (functools.partial(_contract, rep, prepared=prepared),
                self._contraction_chunk_rows(chunk_rows, prepared))

    def _prepare_contraction(self, K: np.ndarray | None):
        """``-K H_h^+`` (r, q), or ``-H_h^+`` when ``K`` is None (the plain influence)."""
        return -(self._horizontal_inverse if K is None else K @ self._horizontal_inverse)

    def _contract_units(self, U: np.ndarray, prepared) -> np.ndarray:
        """``IF(U) K'`` for a chunk of units, from the prepared ``-K H_h^+``."""
        return self.estimating_function(U) @ prepared.T

    def _contraction_chunk_rows(self, chunk_rows: int, prepared) -> int:
        """Units per streamed chunk (a closed form may prefer shorter chunks)."""
        return chunk_rows

    # ------------------------------------------------------------------ symmetry
    def moved_params(self, g) -> tuple[np.ndarray, np.ndarray]:
        """``(g . theta_hat, T)`` with ``T = d(g . theta) / d theta`` at ``theta_hat``.

        The default serves the trivial group; subclasses with a symmetry override it.
        """
        self._check_fitted()
        if isinstance(self.symmetry_, Trivial):
            return self.params_.copy(), np.eye(self.params_.size)
        raise NotImplementedError(
            f"{type(self).__name__} does not say how its symmetry group "
            f"{self.symmetry_.symbol} moves theta: implement moved_params(g) -> "
            "(theta_moved, T) with T = d(g.theta)/d theta. act(g), alignment and the "
            "aligned bootstrap need it.")

    def act(self, g) -> "MEstimatorBase":
        r"""A copy moved by group element ``g``: ``theta -> g . theta``, features ``rho(g) phi``.

        With ``T = d(g . theta)/d theta`` (:meth:`moved_params`), the loss is invariant,
        so ``psi(g . theta) = T^{-T} psi(theta)``, ``H -> T^{-T} H T^{-1}``,
        ``H_h^+ -> T H_h^+ T'`` and ``IF -> T IF``; the vertical space moves by ``T``.
        The copy is not in the documented gauge unless ``g`` is the identity.
        """
        self._check_fitted()
        theta, T = self.moved_params(g)
        moved = self.with_params(theta)
        T = np.asarray(T, dtype=float)
        T_inv = np.linalg.inv(T)
        moved.hessian_ = T_inv.T @ self.hessian_ @ T_inv
        moved.vertical_ = vertical_basis(theta.size, T @ self.vertical_)
        moved._horizontal_inverse = T @ self._horizontal_inverse @ T.T
        return moved

    def alignment_coordinates(self) -> np.ndarray:
        """Rows that move with ``rho(g)``; none for the trivial group (k, 0)."""
        self._check_fitted()
        if isinstance(self.symmetry_, Trivial):
            return np.zeros((self.symmetry_.k, 0))
        raise NotImplementedError(
            f"{type(self).__name__} does not implement alignment_coordinates(): the rows "
            f"that {self.symmetry_.symbol} moves, which alignment and the aligned "
            "bootstrap match.")


def _contract(rep: MEstimatorBase, U: np.ndarray, prepared) -> np.ndarray:
    return rep._contract_units(U, prepared)
