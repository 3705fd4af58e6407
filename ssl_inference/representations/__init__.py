"""First-stage representations (feature maps fitted on pre-training data)."""
from .base import Representation
from .pca import PCA

__all__ = ["Representation", "PCA"]
