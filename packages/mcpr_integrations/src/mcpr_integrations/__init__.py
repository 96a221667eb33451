"""mcpr_integrations: where mcpr's events go (stderr, the local store, the cloud)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
