r"""Symmetry groups of learned representations and invariance of linear hypotheses.

A representation is identified only up to a group ``G`` acting on its parameters; the
learned features move by an orthogonal matrix, ``phi(x; g.theta) = rho(g) phi(x; theta)``
(THEORY.md §2). The second-stage coefficients then move by

.. math:: T_g = \mathrm{blockdiag}(I, \rho(g)),

identity on intercept and covariates, ``rho(g)`` on the representation block. A linear
hypothesis ``R beta = r`` has a gauge-free meaning only if its solution set is mapped to
itself by every ``T_g`` (:meth:`Group.is_invariant`).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import NamedTuple

import numpy as np

__all__ = ["Group", "CoefficientAction", "Trivial", "SignFlips", "Orthogonal", "Permutations",
           "PermutationContrasts", "PermutationProduct", "ProductElement", "align"]


@dataclass(frozen=True)
class Group:
    """A compact group acting orthogonally on ``k`` learned features.

    Subclasses define :meth:`rho`, :meth:`generators` (a finite set that, with the Lie
    algebra, determines invariance), :meth:`sample` (Haar) and :meth:`lie_algebra`.

    Attributes
    ----------
    k : int
        Number of features the group acts on.
    """

    k: int

    @property
    def name(self) -> str:
        return self.symbol

    @property
    def symbol(self) -> str:
        """Short mathematical name, e.g. ``{+-1}^3`` or ``O(3)``."""
        raise NotImplementedError

    @property
    def vertical_dim(self) -> int:
        """Dimension of the orbit through a point (0 for finite groups)."""
        return 0

    def __str__(self) -> str:
        return self.name

    # -------------------------------------------------------------- the action
    def rho(self, g) -> np.ndarray:
        """The orthogonal ``k x k`` matrix by which element ``g`` moves the features."""
        raise NotImplementedError

    def generators(self) -> list:
        """Elements whose action (with the Lie algebra) decides invariance."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator):
        """A Haar-random element."""
        raise NotImplementedError

    def lie_algebra(self) -> list[np.ndarray]:
        """Basis of the Lie algebra as ``k x k`` matrices (empty for finite groups)."""
        return []

    def identity(self):
        """The identity element."""
        raise NotImplementedError

    def align(self, A: np.ndarray, B: np.ndarray):
        """The element ``g`` minimising ``||rho(g) A - B||_F`` (rows of A move with rho)."""
        raise NotImplementedError

    def invariant_hypotheses(self, names) -> list[tuple[str, np.ndarray]]:
        """Tests with a gauge-free meaning, as (label, R) with R over the k features.

        Always the whole block jointly zero; subclasses add what their group allows.
        """
        names = list(names)
        return [(" = ".join(names) + " = 0", np.eye(self.k))]

    def coefficient_matrix(self, g, n_params: int, rep_cols) -> np.ndarray:
        """``T_g``: identity on non-representation coefficients, ``rho(g)`` on ``rep_cols``."""
        T = np.eye(n_params)
        cols = np.asarray(rep_cols)
        T[np.ix_(cols, cols)] = self.rho(g)
        return T

    def coefficient_action(self, n_params: int, rep_cols) -> "CoefficientAction":
        """The action on coefficients when the features are plain design columns.

        ``T_g`` (:meth:`coefficient_matrix`) for each generator, and ``blockdiag(0, A)``
        for each Lie-algebra direction ``A``.
        """
        cols = np.asarray(rep_cols)
        infinitesimal = []
        for A in self.lie_algebra():
            M = np.zeros((n_params, n_params))
            M[np.ix_(cols, cols)] = A
            infinitesimal.append(M)
        return CoefficientAction(
            tuple(self.coefficient_matrix(g, n_params, cols) for g in self.generators()),
            tuple(infinitesimal))

    # ------------------------------------------------------------- invariance
    def is_invariant(self, R, r=None, *, rep_cols, n_params: int | None = None,
                     tol: float = 1e-9) -> bool:
        r"""Whether ``{beta : R beta = r}`` is mapped to itself by every ``T_g``.

        See :meth:`CoefficientAction.preserves`; here the learned features are the
        plain design columns ``rep_cols``. Generators of ``O(k)`` include a reflection,
        so with the Lie algebra both components of the group are covered.

        Parameters
        ----------
        R : array_like (J, d)
        r : array_like (J,), optional
            Right-hand side (zeros by default).
        rep_cols : sequence of int
            Coefficient positions of the learned features, in feature order.
        n_params : int, optional
            ``d``; defaults to ``R.shape[1]``.

        Examples
        --------
        >>> G = SignFlips(2)
        >>> G.is_invariant([[0, 1, 0]], rep_cols=[1, 2])        # pc0 = 0
        True
        >>> G.is_invariant([[0, 1, -1]], rep_cols=[1, 2])       # pc0 = pc1
        False
        """
        R = np.atleast_2d(np.asarray(R, dtype=float))
        d = R.shape[1] if n_params is None else n_params
        return self.coefficient_action(d, rep_cols).preserves(R, r, tol=tol)


@dataclass(frozen=True)
class CoefficientAction:
    r"""How a symmetry group moves the second-stage coefficients.

    A group element moves the learned features, hence the design (``W -> W T_g``), and
    the fitted regression function stays the same when the coefficients move by
    ``M_g = T_g^{-1}``. ``finite`` holds ``M_g`` for the group's generators,
    ``infinitesimal`` the derivatives ``N_A = d M_{exp(tA)} / dt`` at ``t = 0`` for a
    basis of its Lie algebra (empty for finite groups); together they determine the
    action of the whole group.

    Attributes
    ----------
    finite : tuple of ndarray (d, d)
    infinitesimal : tuple of ndarray (d, d)
    """

    finite: tuple
    infinitesimal: tuple = ()

    def preserves(self, R, r=None, *, tol: float = 1e-9) -> bool:
        r"""Whether ``{beta : R beta = r}`` is mapped to itself by the group.

        For each generator ``M``: ``rowspace(R M) = rowspace(R)`` and ``R M beta_0 = r``
        at the particular solution ``beta_0 = R^+ r``; for each Lie-algebra direction
        ``N``: ``rowspace(R N) ⊆ rowspace(R)`` and ``R N beta_0 = 0``.

        Examples
        --------
        >>> flip = CoefficientAction((np.diag([1.0, -1.0]),))
        >>> flip.preserves([[0, 1]]), flip.preserves([[0, 1]], [0.5])
        (True, False)
        """
        R = np.atleast_2d(np.asarray(R, dtype=float))
        r = np.zeros(R.shape[0]) if r is None else np.asarray(r, dtype=float).ravel()
        # scale each row to unit max-norm (tiny coefficients would overflow the pseudo-
        # inverse); rows without coefficients constrain nothing and are dropped
        scale = np.abs(R).max(axis=1)
        R, r = R[scale > 0] / scale[scale > 0, None], r[scale > 0] / scale[scale > 0]
        beta0 = np.linalg.pinv(R) @ r
        rank = np.linalg.matrix_rank(R, tol=tol * max(1.0, np.abs(R).max()))

        def preserves(M, affine_shift):
            RM = R @ M
            stacked = np.vstack([R, RM])
            same_space = np.linalg.matrix_rank(stacked,
                                               tol=tol * max(1.0, np.abs(stacked).max())) == rank
            return same_space and np.allclose(RM @ beta0, affine_shift, atol=tol * (
                1.0 + np.abs(r).max(initial=0.0)))

        return (all(preserves(M, r) for M in self.finite)
                and all(preserves(N, np.zeros_like(r)) for N in self.infinitesimal))


@dataclass(frozen=True)
class Trivial(Group):
    """No symmetry: every hypothesis is invariant.

    >>> Trivial(2).is_invariant([[0, 1, -1]], rep_cols=[1, 2])
    True
    """

    @property
    def symbol(self) -> str:
        return "trivial"

    def rho(self, g) -> np.ndarray:
        return np.eye(self.k)

    def generators(self) -> list:
        return []

    def sample(self, rng):
        return None

    def identity(self):
        return None

    def align(self, A, B):
        return None

    def invariant_hypotheses(self, names) -> list[tuple[str, np.ndarray]]:
        return super().invariant_hypotheses(names) + _per_feature(names)


@dataclass(frozen=True)
class SignFlips(Group):
    """The group ``{+1, -1}^k``: each feature may change sign, ``rho(g) = diag(g)``.

    Examples
    --------
    >>> str(SignFlips(3))
    'sign flips {+-1}^3'
    >>> SignFlips(2).rho(np.array([1, -1]))
    array([[ 1.,  0.],
           [ 0., -1.]])
    """

    @property
    def name(self) -> str:
        return f"sign flips {self.symbol}"

    @property
    def symbol(self) -> str:
        return f"{{+-1}}^{self.k}"

    def rho(self, g) -> np.ndarray:
        return np.diag(np.asarray(g, dtype=float))

    def generators(self) -> list:
        return [np.where(np.arange(self.k) == i, -1.0, 1.0) for i in range(self.k)]

    def sample(self, rng):
        return rng.choice([-1.0, 1.0], size=self.k)

    def identity(self):
        return np.ones(self.k)

    def align(self, A, B):
        """Sign matching: ``g_i = sign(<A_i, B_i>)`` (+1 on ties)."""
        return np.where(np.einsum("ij,ij->i", np.asarray(A), np.asarray(B)) < 0, -1.0, 1.0)

    def invariant_hypotheses(self, names) -> list[tuple[str, np.ndarray]]:
        """The joint block, and each component alone (a sign flip keeps ``beta_i = 0``)."""
        return super().invariant_hypotheses(names) + _per_feature(names)


@dataclass(frozen=True)
class Orthogonal(Group):
    """The orthogonal group ``O(k)``: features rotate, ``rho(Q) = Q``.

    Its orbits have dimension ``k (k - 1) / 2``, the dimension of the Lie algebra of
    antisymmetric ``k x k`` matrices.

    Examples
    --------
    >>> Orthogonal(3).vertical_dim
    3
    >>> Q = Orthogonal(3).sample(np.random.default_rng(0))
    >>> bool(np.allclose(Q.T @ Q, np.eye(3)))
    True
    """

    @property
    def name(self) -> str:
        return f"rotations {self.symbol}"

    @property
    def symbol(self) -> str:
        return f"O({self.k})"

    @property
    def vertical_dim(self) -> int:
        return self.k * (self.k - 1) // 2

    def rho(self, g) -> np.ndarray:
        return np.asarray(g, dtype=float)

    def generators(self) -> list:
        reflection = np.eye(self.k)
        reflection[0, 0] = -1.0
        return [reflection]

    def sample(self, rng):
        """Haar draw: QR of a Gaussian matrix with the signs of R's diagonal fixed."""
        Q, Rm = np.linalg.qr(rng.normal(size=(self.k, self.k)))
        return Q * np.sign(np.diag(Rm))

    def identity(self):
        return np.eye(self.k)

    def align(self, A, B):
        """Orthogonal Procrustes: with ``B A' = U S V'``, ``Q = U V'``."""
        U, _, Vt = np.linalg.svd(np.asarray(B) @ np.asarray(A).T)
        return U @ Vt

    def lie_algebra(self) -> list[np.ndarray]:
        basis = []
        for i, j in combinations(range(self.k), 2):
            A = np.zeros((self.k, self.k))
            A[i, j], A[j, i] = 1.0, -1.0
            basis.append(A)
        return basis


@dataclass(frozen=True)
class Permutations(Group):
    """Label permutations ``S_K`` of ``K`` blocks of ``block_size`` features each.

    ``rho(g)`` permutes whole blocks: block ``i`` of the new features is block
    ``g[i]`` of the old ones. ``k = K * block_size``.

    Parameters
    ----------
    n_blocks : int
        ``K``, the number of components whose labels are arbitrary.
    block_size : int
        Features per component.

    Examples
    --------
    >>> G = Permutations(3)
    >>> G.is_invariant([[1, -1, 0], [0, 1, -1]], rep_cols=[0, 1, 2])   # all equal
    True
    >>> G.is_invariant([[1, 0, 0]], rep_cols=[0, 1, 2])                 # first = 0
    False
    """

    k: int = 0
    n_blocks: int = 1
    block_size: int = 1

    def __init__(self, n_blocks: int, block_size: int = 1):
        object.__setattr__(self, "n_blocks", int(n_blocks))
        object.__setattr__(self, "block_size", int(block_size))
        object.__setattr__(self, "k", int(n_blocks) * int(block_size))

    @property
    def name(self) -> str:
        return f"label permutations {self.symbol}"

    @property
    def symbol(self) -> str:
        return f"S_{self.n_blocks}"

    def rho(self, g) -> np.ndarray:
        perm = np.asarray(g, dtype=int)
        P = np.zeros((self.n_blocks, self.n_blocks))
        P[np.arange(self.n_blocks), perm] = 1.0
        return np.kron(P, np.eye(self.block_size))

    def generators(self) -> list:
        if self.n_blocks < 2:
            return []
        swap = np.arange(self.n_blocks)
        swap[[0, 1]] = [1, 0]
        cycle = np.roll(np.arange(self.n_blocks), -1)
        return [swap, cycle]

    def sample(self, rng):
        return rng.permutation(self.n_blocks)

    def identity(self):
        return np.arange(self.n_blocks)

    def align(self, A, B):
        """Hungarian matching of blocks: new block i is old block ``g[i]``.

        ``A`` and ``B`` have one row per block (or ``block_size`` rows per block).
        """
        from scipy.optimize import linear_sum_assignment

        A = np.asarray(A, dtype=float).reshape(self.n_blocks, -1)
        B = np.asarray(B, dtype=float).reshape(self.n_blocks, -1)
        cost = ((B[:, None, :] - A[None, :, :]) ** 2).sum(axis=2)
        rows, cols = linear_sum_assignment(cost)
        g = np.empty(self.n_blocks, dtype=int)
        g[rows] = cols
        return g

    def invariant_hypotheses(self, names) -> list[tuple[str, np.ndarray]]:
        """The joint block, and "all components have equal effects"."""
        out = super().invariant_hypotheses(names)
        if self.n_blocks < 2:
            return out
        names = list(names)
        b = self.block_size
        D = np.zeros(((self.n_blocks - 1) * b, self.k))
        for i in range(self.n_blocks - 1):
            for f in range(b):
                D[i * b + f, i * b + f], D[i * b + f, (i + 1) * b + f] = 1.0, -1.0
        label = (" = ".join(names[::b]) if b == 1
                 else f"equal effects of the {self.n_blocks} components")
        return out + [(label, D)]


@dataclass(frozen=True)
class PermutationContrasts(Permutations):
    r"""Label permutations ``S_K`` acting on ``K`` blocks and on ``K - 1`` contrasts.

    The features are ``[b_0, ..., b_{K-1}, H' t]``: ``K`` blocks of ``block_size``
    features that permute with the labels (as in :class:`Permutations`; ``block_size``
    may be 0), then the orthonormal Helmert contrasts ``H' t`` of ``K`` per-component
    quantities ``t`` that sum to one (mixture responsibilities). ``H``
    (:meth:`contrast_matrix`) has orthonormal columns orthogonal to the ones vector, so
    ``H' P_g t = (H' P_g H) H' t`` and

    .. math:: \rho(g) = \mathrm{blockdiag}(P_g \otimes I_b,\; H' P_g H)

    is orthogonal. Unlike dropping a reference component (whose relabelling moves the
    intercept), the contrasts leave an intercept invariant: it is the unweighted mean
    of the ``K`` component levels. ``k = K * block_size + K - 1``.

    Examples
    --------
    >>> G = PermutationContrasts(3)
    >>> G.k, G.symbol
    (2, 'S_3')
    >>> R = G.rho(np.array([1, 0, 2]))
    >>> bool(np.allclose(R @ R.T, np.eye(2)))
    True
    >>> G.is_invariant([[1, 0, 0]], rep_cols=[1, 2])          # intercept = 0
    True
    >>> G.is_invariant([[0, 1, 0]], rep_cols=[1, 2])          # one contrast = 0
    False
    """

    def __init__(self, n_blocks: int, block_size: int = 0):
        object.__setattr__(self, "n_blocks", int(n_blocks))
        object.__setattr__(self, "block_size", int(block_size))
        object.__setattr__(self, "k", int(n_blocks) * (int(block_size) + 1) - 1)

    @staticmethod
    def contrast_matrix(n_blocks: int) -> np.ndarray:
        """Orthonormal Helmert contrasts ``H`` (K, K - 1).

        Column ``j`` is ``(1, ..., 1, -(j + 1), 0, ..., 0) / sqrt((j + 1)(j + 2))`` with
        ``j + 1`` leading ones.

        Examples
        --------
        >>> PermutationContrasts.contrast_matrix(3).round(3)
        array([[ 0.707,  0.408],
               [-0.707,  0.408],
               [ 0.   , -0.816]])
        """
        H = np.zeros((n_blocks, n_blocks - 1))
        for j in range(n_blocks - 1):
            H[:j + 1, j] = 1.0
            H[j + 1, j] = -(j + 1.0)
            H[:, j] /= np.sqrt((j + 1.0) * (j + 2.0))
        return H

    def rho(self, g) -> np.ndarray:
        K, b = self.n_blocks, self.block_size
        P = np.zeros((K, K))
        P[np.arange(K), np.asarray(g, dtype=int)] = 1.0
        H = self.contrast_matrix(K)
        out = np.zeros((self.k, self.k))
        out[:K * b, :K * b] = np.kron(P, np.eye(b))
        out[K * b:, K * b:] = H.T @ P @ H
        return out

    def invariant_hypotheses(self, names) -> list[tuple[str, np.ndarray]]:
        """The whole block; with blocks, also "equal levels" and "equal block effects"."""
        out = Group.invariant_hypotheses(self, names)
        K, b = self.n_blocks, self.block_size
        if K < 2 or b == 0:
            return out
        names = list(names)
        levels = np.zeros((K - 1, self.k))
        levels[:, K * b:] = np.eye(K - 1)
        D = np.zeros(((K - 1) * b, self.k))
        for i in range(K - 1):
            for f in range(b):
                D[i * b + f, i * b + f], D[i * b + f, (i + 1) * b + f] = 1.0, -1.0
        return out + [(" = ".join(names[K * b:]) + " = 0", levels),
                      (f"equal block effects of the {K} components", D)]

class ProductElement(NamedTuple):
    """An element ``(labels, coordinates)`` of a :class:`PermutationProduct`.

    ``labels`` is a permutation of ``range(K)`` (new block ``i`` is old block
    ``labels[i]``); ``coordinates`` an element of the coordinate group (a sign vector of
    length ``r`` for :class:`SignFlips`, an orthogonal ``r x r`` matrix for
    :class:`Orthogonal`).
    """

    labels: np.ndarray
    coordinates: np.ndarray


@dataclass(frozen=True)
class PermutationProduct(Group):
    r"""Label permutations times a group acting on the coordinates of every block.

    The features are ``K`` blocks of ``r`` coordinates (the gated features
    ``tau_k B'(x - mu_k)`` of :class:`ssl_inference.GaussianMixture`) plus ``K``
    per-component levels (the responsibilities). An element ``g = (P, Q)`` relabels the
    blocks by the permutation ``P`` and moves the coordinates of *every* block by the
    same ``Q`` of the coordinate group (:class:`SignFlips` ``{+-1}^r`` when ``B`` is
    signed by a convention, :class:`Orthogonal` ``O(r)`` when only its span is
    identified); the levels only permute. With ``contrasts=True`` the features are
    ``[c_0, ..., c_{K-1}, H' t]`` (the levels as Helmert contrasts,
    :meth:`PermutationContrasts.contrast_matrix`) and

    .. math:: \rho(P, Q) = \mathrm{blockdiag}(P \otimes Q,\; H' P H);

    with ``contrasts=False`` each block is ``(c_k, t_k)`` and
    ``rho(P, Q) = P (x) blockdiag(Q, 1)``. ``k = K r + K - 1`` or ``K (r + 1)``. The
    two factors commute, so the group is the direct product ``S_K x G_coord``.

    Elements are :class:`ProductElement` ``(labels, coordinates)`` (a plain 2-tuple
    works too); a bare permutation means "relabel, leave the coordinates alone".

    Parameters
    ----------
    n_blocks : int
        ``K``, the number of components whose labels are arbitrary.
    coordinates : SignFlips or Orthogonal
        The group acting on the ``r = coordinates.k`` coordinates of each block.
    contrasts : bool
        Whether the levels are reported as ``K - 1`` trailing contrasts (True) or as
        the last feature of each block (False).

    Examples
    --------
    >>> G = PermutationProduct(4, Orthogonal(3))
    >>> G.k, G.symbol, G.vertical_dim
    (15, 'S_4 x O(3)', 3)
    >>> rep_cols = list(range(1, 16))                 # after an intercept
    >>> R = np.zeros((1, 16)); R[0, [1, 4, 7, 10]] = 1.0
    >>> G.is_invariant(R, rep_cols=rep_cols)          # gmm0_c0 + ... + gmm3_c0 = 0
    False
    >>> PermutationProduct(4, SignFlips(3)).is_invariant(R, rep_cols=rep_cols)
    True
    >>> PermutationProduct(4, SignFlips(3)).is_invariant(R, [1.0], rep_cols=rep_cols)
    False
    """

    k: int = 0
    n_blocks: int = 1
    coordinates: Group = None
    contrasts: bool = True

    def __init__(self, n_blocks: int, coordinates: Group, contrasts: bool = True):
        if not isinstance(coordinates, (SignFlips, Orthogonal)):
            raise TypeError("coordinates must be a SignFlips or an Orthogonal group; got "
                            f"{coordinates!r}.")
        K, r = int(n_blocks), int(coordinates.k)
        object.__setattr__(self, "n_blocks", K)
        object.__setattr__(self, "coordinates", coordinates)
        object.__setattr__(self, "contrasts", bool(contrasts))
        object.__setattr__(self, "k", K * r + K - 1 if contrasts else K * (r + 1))

    @property
    def name(self) -> str:
        kind = "sign flips" if isinstance(self.coordinates, SignFlips) else "rotations"
        return f"label permutations x coordinate {kind} {self.symbol}"

    @property
    def symbol(self) -> str:
        return f"S_{self.n_blocks} x {self.coordinates.symbol}"

    @property
    def vertical_dim(self) -> int:
        return self.coordinates.vertical_dim

    # ---------------------------------------------------------------- layout
    def coordinate_index(self, block: int, j: int) -> int:
        """Feature position of coordinate ``j`` of block ``block``."""
        r = self.coordinates.k
        return block * r + j if self.contrasts else block * (r + 1) + j

    def level_index(self) -> np.ndarray:
        """Feature positions of the levels: the ``K - 1`` contrasts, or the ``K`` levels."""
        K, r = self.n_blocks, self.coordinates.k
        if self.contrasts:
            return np.arange(K * r, self.k)
        return np.arange(K) * (r + 1) + r

    def split(self, g) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, coordinates)`` of an element, a 2-tuple or a bare permutation."""
        K = self.n_blocks
        if isinstance(g, (tuple, list)) and len(g) == 2 and np.ndim(g[0]) == 1:
            labels, coords = np.asarray(g[0]), np.asarray(g[1], dtype=float)
        else:
            labels, coords = np.asarray(g), self.coordinates.identity()
        if labels.shape != (K,) or not np.array_equal(np.sort(labels), np.arange(K)):
            raise ValueError(
                f"An element of {self.symbol} is (labels, coordinates) with labels a "
                f"permutation of range({K}) (or a bare permutation); got {g!r}.")
        return labels.astype(int), coords

    # -------------------------------------------------------------- the action
    def _embed(self, P: np.ndarray, Q: np.ndarray, levels: np.ndarray) -> np.ndarray:
        K, r = self.n_blocks, self.coordinates.k
        if not self.contrasts:
            block = np.zeros((r + 1, r + 1))
            block[:r, :r], block[r, r] = Q, levels
            return np.kron(P, block)
        out = np.zeros((self.k, self.k))
        out[:K * r, :K * r] = np.kron(P, Q)
        out[K * r:, K * r:] = levels
        return out

    def rho(self, g) -> np.ndarray:
        labels, coords = self.split(g)
        K = self.n_blocks
        P = np.zeros((K, K))
        P[np.arange(K), labels] = 1.0
        if self.contrasts:
            H = PermutationContrasts.contrast_matrix(K)
            levels = H.T @ P @ H
        else:
            levels = np.array(1.0)
        return self._embed(P, self.coordinates.rho(coords), levels)

    def generators(self) -> list:
        K = self.n_blocks
        identity_coords = self.coordinates.identity()
        out = [ProductElement(p, identity_coords)
               for p in Permutations(K).generators()]
        return out + [ProductElement(np.arange(K), h) for h in self.coordinates.generators()]

    def sample(self, rng):
        return ProductElement(rng.permutation(self.n_blocks), self.coordinates.sample(rng))

    def identity(self):
        return ProductElement(np.arange(self.n_blocks), self.coordinates.identity())

    def lie_algebra(self) -> list[np.ndarray]:
        """The coordinate group's algebra, acting on every block at once."""
        K = self.n_blocks
        levels = (np.zeros((K - 1, K - 1)) if self.contrasts else np.array(0.0))
        return [self._embed(np.eye(K), A, levels) for A in self.coordinates.lie_algebra()]

    def align(self, A, B):
        """Hungarian matching of the labels, then sign matching or Procrustes.

        ``A`` and ``B`` have ``K + r`` rows: ``K`` rows that the labels permute (the
        component means), then ``r`` rows that the coordinate group moves (the basis,
        ``B'``). Returns a :class:`ProductElement`.
        """
        A, B = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
        K = self.n_blocks
        labels = Permutations(K).align(A[:K], B[:K])
        return ProductElement(labels, self.coordinates.align(A[K:], B[K:]))

    def invariant_hypotheses(self, names) -> list[tuple[str, np.ndarray]]:
        """The whole block; all coordinates; the levels; equal coordinate effects; with
        sign flips also each coordinate across all components."""
        out = super().invariant_hypotheses(names)
        names = list(names)
        K, r = self.n_blocks, self.coordinates.k
        coord = np.array([[self.coordinate_index(b, j) for j in range(r)]
                          for b in range(K)])                                # (K, r)
        levels = self.level_index()
        eye = np.eye(self.k)
        out.append((" = ".join(names[i] for i in coord.ravel()) + " = 0",
                    eye[coord.ravel()]))
        if self.contrasts:
            out.append((" = ".join(names[i] for i in levels) + " = 0", eye[levels]))
        else:
            out.append((" = ".join(names[i] for i in levels),
                        eye[levels[:-1]] - eye[levels[1:]]))
        if K > 1:
            D = np.vstack([eye[coord[b]] - eye[coord[b + 1]] for b in range(K - 1)])
            out.append((f"equal coordinate effects of the {K} components", D))
        if isinstance(self.coordinates, SignFlips) and r > 1:
            out += [(" = ".join(names[i] for i in coord[:, j]) + " = 0", eye[coord[:, j]])
                     for j in range(r)]
        return out


def _per_feature(names) -> list[tuple[str, np.ndarray]]:
    k = len(list(names))
    return [(f"{name} = 0", np.eye(k)[[i]]) for i, name in enumerate(names)]


def align(representation, reference):
    """Move a fitted representation onto a reference's gauge.

    Finds the group element ``g`` whose action brings ``representation`` closest to
    ``reference`` (sign matching for sign flips, orthogonal Procrustes for ``O(k)``,
    Hungarian matching for label permutations) and returns ``(representation.act(g), g)``.

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> X = np.random.default_rng(0).normal(size=(400, 4)) * [3.0, 2.0, 1.0, 0.5]
    >>> rep = ssi.PCA(2, symmetry="rotation").fit(X)
    >>> _, Q = ssi.align(rep, rep)
    >>> bool(np.allclose(Q, np.eye(2)))
    True
    """
    if representation.symmetry_ != reference.symmetry_:
        raise ValueError(
            f"Cannot align: the representations have different symmetry groups "
            f"({representation.symmetry_} vs {reference.symmetry_})."
        )
    g = representation.symmetry_.align(representation.alignment_coordinates(),
                                       reference.alignment_coordinates())
    return representation.act(g), g
