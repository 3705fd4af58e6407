"""Downstream test risk of two-stage least squares: the paper's limit theorem (THEORY.md §6).

* :class:`WeightedChiSquare`: the law ``shift + sum_j w_j chi2_1`` (Imhof).
* :class:`RiskAsymptotics`: the limit law of ``n (R - sigma^2)``, plug-in from a fitted
  OLS/WLS two-stage result (``results.risk_asymptotics()``) or built from a known law.
* :func:`conditional_risk`: the exact finite-sample risk of a fitted pipeline for a
  known data-generating process (simulations).
* Closed forms on the paper's models: :func:`spectral_diagonal_law`,
  :func:`factor_law`, and :func:`pca_gaussian_law`.
* :func:`affine_feature_map`: ``(a, B)`` of an affine fitted feature map, for
  :meth:`PopulationMoments.affine`.
"""
from .affine import affine_feature_map
from .asymptotics import RiskAsymptotics, plugin_risk_weights
from .closed_forms import factor_law, pca_gaussian_law, spectral_diagonal_law
from .conditional import PopulationMoments, RiskDecomposition, conditional_risk
from .weighted_chi2 import WeightedChiSquare

__all__ = ["WeightedChiSquare", "RiskAsymptotics", "plugin_risk_weights",
           "conditional_risk", "PopulationMoments", "RiskDecomposition",
           "spectral_diagonal_law", "factor_law", "pca_gaussian_law", "affine_feature_map"]
