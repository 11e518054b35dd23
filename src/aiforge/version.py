"""The aiforge version: one definition, read by the package metadata (pyproject.toml) and every module that records
it (manifests, reports, servers' health), without importing the ``aiforge`` package itself."""

__version__ = "0.1.0"
