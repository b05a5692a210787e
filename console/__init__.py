"""aml-console: the on-call console for machine-learning models under attack."""

__version__ = "0.1.0"

__all__ = ["__version__"]
