"""Stages that turn warehouse data into features: DUMP (snapshots) and ANALYZE (data reports)."""
