"""First-stage representations (feature maps fitted on pre-training data)."""
from .base import Representation
from .factor import FactorModel
from .linearization import MEstimatorBase
from .mestimator import MEstimatorRepresentation
from .mixture import GaussianMixture
from .pca import PCA
from .spectral import SpectralContrastive

__all__ = ["Representation", "MEstimatorBase", "PCA", "GaussianMixture", "FactorModel",
           "MEstimatorRepresentation", "SpectralContrastive"]
