"""The package version, read by the build backend and stamped into generated modules."""

__version__ = "0.1.0"
