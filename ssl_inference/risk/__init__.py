"""Downstream test risk of two-stage least squares: the paper's limit theorem (THEORY.md §6).

* :class:`WeightedChiSquare`: the law ``shift + sum_j w_j chi2_1`` (Imhof).
* :class:`RiskAsymptotics`: the limit law of ``n (R - sigma^2)``, plug-in from a fitted
  OLS/WLS two-stage result (``results.risk_asymptotics()``) or built from a known law.
* GLM-type second stages (GLM, Logit, Probit, Poisson; beyond the paper): the same
  object for the deviance risk, ``n (R - R*)``, by :func:`deviance_risk_asymptotics`,
  with the sandwich :func:`fine_tuning_weights`; :func:`excess_deviance_risk` is the
  exact excess risk of a fitted mean for a known truth (simulations).
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
from .deviance import (deviance_risk_asymptotics, excess_deviance_risk, fine_tuning_weights,
                       second_stage_family)
from .weighted_chi2 import WeightedChiSquare

__all__ = ["WeightedChiSquare", "RiskAsymptotics", "plugin_risk_weights",
           "conditional_risk", "PopulationMoments", "RiskDecomposition",
           "spectral_diagonal_law", "factor_law", "pca_gaussian_law", "affine_feature_map",
           "deviance_risk_asymptotics", "fine_tuning_weights", "excess_deviance_risk",
           "second_stage_family"]
