"""Formula interface: ``import ssl_inference.formula.api as smf``."""
