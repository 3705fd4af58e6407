r"""Where the learned features sit in a second stage's parameter vector.

A second stage has one or several linear indices ("equations"), each the product of a
design that contains the learned features and a block of the flat parameter vector
``beta`` (P entries):

* one equation on ``exog`` (OLS, GLM, Logit, negative binomial, ordered models), with
  possibly extra parameters that multiply no design column (``alpha``, thresholds);
* one equation per non-reference outcome category (MNLogit: block ``e`` holds the
  coefficients of category ``e + 1`` on the common design);
* a count and an inflation equation on two designs (zero-inflated models).

The symmetry group moves each equation's coefficients by its design's action
``M_g`` (:meth:`~ssl_inference.design.FeatureDesign.coefficient_action`) and leaves the
other parameters alone, so the action on ``beta`` is block diagonal:

.. math:: \mathcal{M}_g = I_P + \sum_e E_e (M^{(e)}_g - I) E_e',

``E_e`` the columns of ``I_P`` at equation e's positions (likewise for the Lie algebra,
``sum_e E_e N^{(e)}_A E_e'``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .design import FeatureDesign
from .symmetry import CoefficientAction

__all__ = ["Equation", "lift_action"]


@dataclass(frozen=True)
class Equation:
    """One linear index ``w_j' beta[positions]`` of the second stage.

    Attributes
    ----------
    label : str
        ``""`` for the only equation of a model, else e.g. ``"y=1"`` or ``"inflate"``.
    positions : ndarray of int (d,)
        Positions in the flat parameter vector of the coefficients of the design's
        columns, in column order.
    design : FeatureDesign
        The design as a function of the learned features.

    Examples
    --------
    >>> from ssl_inference.design import AppendedFeatures
    >>> eq = Equation("y=2", np.arange(3, 6), AppendedFeatures(n_base=1, n_features=2))
    >>> eq.feature_params, eq.plain_params
    (array([4, 5]), array([4, 5]))
    """

    label: str
    positions: np.ndarray
    design: FeatureDesign

    @property
    def feature_params(self) -> np.ndarray:
        """Parameter positions of the columns that depend on the features."""
        return np.asarray(self.positions)[self.design.feature_cols]

    @property
    def plain_params(self) -> np.ndarray:
        """For each feature the parameter position of its plain column, or -1."""
        plain = self.design.plain_cols
        return np.where(plain >= 0, np.asarray(self.positions)[np.maximum(plain, 0)], -1)


def lift_action(equations: Sequence[Equation],
                actions: Sequence[CoefficientAction | None],
                n_params: int) -> CoefficientAction | None:
    """The group's action on the flat parameter vector from each equation's action.

    None when some equation's design is gauge-dependent (its action is None).

    Examples
    --------
    >>> from ssl_inference.design import AppendedFeatures
    >>> des = AppendedFeatures(n_base=1, n_features=1)
    >>> flip = CoefficientAction((np.diag([1.0, -1.0]),))
    >>> eqs = [Equation("a", np.array([0, 1]), des), Equation("b", np.array([2, 3]), des)]
    >>> np.diag(lift_action(eqs, [flip, flip], 5).finite[0])
    array([ 1., -1.,  1., -1.,  1.])
    """
    if any(action is None for action in actions):
        return None
    n_finite = {len(a.finite) for a in actions}
    n_infinitesimal = {len(a.infinitesimal) for a in actions}
    if len(n_finite) != 1 or len(n_infinitesimal) != 1:
        raise ValueError("The equations' actions come from different groups.")

    def embed(blocks, base):
        out = base.copy()
        for eq, block in zip(equations, blocks):
            pos = np.asarray(eq.positions)
            out[np.ix_(pos, pos)] = block
        return out

    finite = tuple(embed([a.finite[i] for a in actions], np.eye(n_params))
                   for i in range(n_finite.pop()))
    infinitesimal = tuple(embed([a.infinitesimal[i] for a in actions],
                                np.zeros((n_params, n_params)))
                          for i in range(n_infinitesimal.pop()))
    return CoefficientAction(finite, infinitesimal)
