"""Symmetry groups of learned representations.

A representation is identified only up to a group ``G`` acting on its parameters; the
features move by an orthogonal matrix ``rho(g)`` (THEORY.md §2). This module names the
groups; the invariant-inference machinery builds on them.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Group", "SignFlips", "Orthogonal"]


@dataclass(frozen=True)
class Group:
    """A symmetry group acting on ``k`` learned features.

    Attributes
    ----------
    k : int
        Number of features the group acts on.
    """

    k: int

    name = "group"

    @property
    def vertical_dim(self) -> int:
        """Dimension of the orbit through a point (0 for finite groups)."""
        return 0

    @property
    def symbol(self) -> str:
        """Short mathematical name, e.g. ``{+-1}^3`` or ``O(3)``."""
        return self.name

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class SignFlips(Group):
    """The group ``{+1, -1}^k``: each feature may change sign, ``rho(g) = diag(g)``.

    Examples
    --------
    >>> str(SignFlips(3))
    'sign flips {+-1}^3'
    """

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"sign flips {self.symbol}"

    @property
    def symbol(self) -> str:
        return f"{{+-1}}^{self.k}"


@dataclass(frozen=True)
class Orthogonal(Group):
    """The orthogonal group ``O(k)``: features rotate, ``rho(Q) = Q``.

    Its orbits have dimension ``k (k - 1) / 2``, the dimension of the Lie algebra of
    antisymmetric ``k x k`` matrices.

    Examples
    --------
    >>> Orthogonal(3).vertical_dim
    3
    """

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"O({self.k})"

    @property
    def vertical_dim(self) -> int:
        return self.k * (self.k - 1) // 2
