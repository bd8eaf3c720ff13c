"""The package version (one place: the package, the CLI and results read it)."""

__version__ = "0.1.0"
