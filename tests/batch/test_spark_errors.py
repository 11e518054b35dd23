"""A Spark failure is one ``Error:`` line on the terminal; the JVM's stack trace goes to the workspace's log (issue 12).

The commands run as real CLI processes with a real local Spark: what a user sees is the process's stderr, where the
JVM's log4j and PySpark's own loggers used to print about a hundred lines of Java stack trace before the error.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from aiforge import dump
from aiforge.batch import batch

pytestmark = pytest.mark.spark

N = 120
AMOUNTS = [f"{(i * 37 % 10495) / 100 - 5:.2f}" for i in range(N)]
SPEC = {
    "input": "orders",
    "output": "orders_features",
    "id": "order_id",
    "label": "returned",
    "drop": [{"where": "amount < 0"}],
    "features": [{"categorical": {"column": "amount", "top_k": 3}}],
}
JAVA_TRACE = re.compile(r"^\s*at (?:org\.apache|java\.|scala\.)", re.M)


@pytest.fixture
def text_orders(workspace, tmp_path: Path) -> Path:
    """A snapshot where ``amount`` is text, as PostgreSQL NUMERIC was dumped before; returns the workspace home."""
    path = tmp_path / "orders.parquet"
    table = pa.table({"order_id": range(N), "amount": pa.array(AMOUNTS, pa.string()),
                      "returned": [i % 3 == 0 for i in range(N)]})  # fmt: skip
    pq.write_table(table, path)
    dump(path, name="orders", workspace=workspace)
    return workspace.home


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIFORGE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "aiforge", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)  # fmt: skip


def _one_error_line(stderr: str) -> str:
    assert not JAVA_TRACE.search(stderr), stderr
    assert "Traceback" not in stderr and '"level": "ERROR"' not in stderr, stderr
    assert "WARNING: Using incubator modules" not in stderr, stderr  # the JVM launcher's own line goes to the log
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def test_text_compared_with_a_number_is_one_line_with_the_cast(text_orders: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    proc = _cli(text_orders, "batch", str(spec), "--engine", "spark")
    assert proc.returncode == 1
    line = _one_error_line(proc.stderr)
    assert line.startswith("Error: drop[0].where: cannot evaluate 'amount < 0' on the snapshot: [CAST_INVALID_INPUT] ")
    assert "column 'amount' holds text (type string), not numbers" in line
    assert "for example 'CAST(amount AS DOUBLE) < 0'" in line
    log = re.search(r"Spark's full error is in (\S+\.log)\)", line)
    assert log is not None, line
    # the trace the terminal was spared is in the log, under the workspace
    path = Path(log[1])
    assert path.parent == text_orders / "logs"
    assert JAVA_TRACE.search(path.read_text())


def test_a_query_spark_refuses_is_one_line_and_the_query(workspace, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), path)
    proc = _cli(workspace.home, "dump", str(path), "--engine", "spark", "-q", "SELECT nope FROM source", "-n", "t")
    assert proc.returncode == 1
    line = _one_error_line(proc.stderr)
    assert "[UNRESOLVED_COLUMN" in line and "`nope`" in line
    assert "  query: SELECT nope FROM source" in proc.stderr.splitlines()
    assert workspace.list_snapshots() == []


def test_the_suggested_cast_runs_on_spark_as_on_the_local_engine(text_orders: Path, workspace, spark) -> None:
    spec = {**SPEC, "drop": [{"where": "CAST(amount AS DOUBLE) < 0"}]}
    local = batch(spec, workspace=workspace)
    on_spark = batch(spec, workspace=workspace, engine="spark")
    negative = sum(1 for a in AMOUNTS if float(a) < 0)
    assert [d["rows"] for d in on_spark.dropped] == [d["rows"] for d in local.dropped] == [negative]
    assert negative > 0
