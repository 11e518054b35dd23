"""Execution engines: ``local`` (DuckDB + Arrow, in-process) and ``spark`` (PySpark)."""
