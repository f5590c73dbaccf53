"""The package version, single-sourced for packaging and provenance."""

__version__ = "0.1.0"
