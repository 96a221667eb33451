"""mcpr_cli: the `mcpr` command, an MCP-aware reverse proxy."""

__version__ = "0.1.0"

__all__ = ["__version__"]
