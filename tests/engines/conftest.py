"""One Spark session for the whole test run: starting one costs ~10 s on these machines."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """The process's SparkSession (local[*]), with its warehouse and metastore in a temporary folder."""
    pytest.importorskip("pyspark")
    from aiforge.engines.spark import get_session

    session = get_session(home=tmp_path_factory.mktemp("spark-home"))
    yield session
    session.stop()
