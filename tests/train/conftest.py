"""Fixtures for TRAIN: a workspace holding a small digits feature snapshot, and a folder of training code."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TRAINER = '''
"""Training functions the tests run as jobs."""
import os
import time

import numpy as np
from sklearn.linear_model import LogisticRegression


def fit(ctx):
    X, y = ctx.data["features"].numpy("train")
    model = LogisticRegression(max_iter=200, C=ctx.params.get("C", 1.0))
    for step in range(3):
        ctx.progress(step, 3)
    model.fit(X, y)
    ctx.log_metric("train_accuracy", model.score(X, y))
    ctx.log_metric("rows", len(X))
    (ctx.artifacts / "classes.txt").write_text(",".join(map(str, model.classes_)))
    return model


def fail(ctx):
    X, _ = ctx.data["features"].numpy("train")
    return helper_that_raises(len(X))


def helper_that_raises(rows):
    raise ValueError(f"bad training data: {rows} rows")


def hog(ctx):
    blocks = []
    for _ in range(200):
        blocks.append(np.ones(16 * 1024 * 1024 // 8))  # 16 MiB each, touched
    return None


def quota(ctx):
    """Report the CPU quota and the thread variables the job really got, then train."""
    own = [line.split(":", 2) for line in open("/proc/self/cgroup").read().splitlines()]
    cpu = next(path for _, controllers, path in own if "cpu" in controllers.split(","))
    ctx.log_metric("cfs_quota_us", float(open(f"/sys/fs/cgroup/cpu{cpu}/cpu.cfs_quota_us").read()))
    ctx.log_metric("omp_threads", float(os.environ["OMP_NUM_THREADS"]))
    ctx.log_metric("cores", float(len(os.sched_getaffinity(0))))
    return fit(ctx)


def slow(ctx):
    time.sleep(60)
'''

SCRIPT = '''
import aiforge.train
from sklearn.tree import DecisionTreeClassifier

ctx = aiforge.train.current()
X, y = ctx.data["features"].numpy("train")
ctx.save_model(DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y))
'''


@pytest.fixture(scope="session")
def digits_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with ``digits`` (300 rows, 64 pixels) and its feature snapshot ``digits_features``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_digits

    import aiforge

    home = tmp_path_factory.mktemp("train-home")
    digits = load_digits()
    columns = {f"p{i}": digits.data[:300, i].astype("float64") for i in range(64)}
    table = pa.table({"id": list(range(300)), **columns, "label": digits.target[:300].astype("int64")})
    source = home / "digits.parquet"
    pq.write_table(table, source)
    ws = aiforge.Workspace(home / "ws")
    snapshot = aiforge.dump(str(source), name="digits", workspace=ws)
    spec = {
        "input": snapshot.ref, "output": "digits_features", "id": "id", "label": "label",
        "split": {"train": 0.8, "valid": 0.1, "test": 0.1, "seed": 0},
        "features": [{"numeric": {"columns": "p*", "scale": "standardize"}}],
    }
    aiforge.batch(spec, workspace=ws)
    return ws.home


@pytest.fixture
def train_ws(digits_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the digits workspace for one test (runs and models do not leak between tests)."""
    import shutil

    from aiforge.workspace import Workspace

    home = tmp_path / "ws"
    shutil.copytree(digits_home, home)
    monkeypatch.setenv("AIFORGE_HOME", str(home))
    monkeypatch.delenv("AIFORGE_CATALOG", raising=False)
    return Workspace(home)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "trainer"
    folder.mkdir()
    (folder / "train.py").write_text(textwrap.dedent(TRAINER), encoding="utf-8")
    (folder / "script.py").write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    return folder


def job(code: Path, entrypoint: str = "train.py:fit", **extra: object) -> dict:
    """A job spec mapping for the trainer folder."""
    return {"name": "digits", "code": str(code), "entrypoint": entrypoint, "data": {"features": "digits_features"},
            **extra}
