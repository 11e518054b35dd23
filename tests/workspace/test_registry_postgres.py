"""The registry and the run records on a real PostgreSQL server (``AIFORGE_CATALOG=postgresql://...``).

Each test gets a fresh database with a random name, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiforge.errors import ModelNotFound, WorkspaceError
from aiforge.workspace import Registry, RunStore

pytestmark = pytest.mark.postgres

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


@pytest.fixture
def catalog() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"aiforge_registry_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def onnx(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"onnx bytes")
    return path


def test_register_get_and_aliases(tmp_path: Path, catalog: str, onnx: Path) -> None:
    registry = Registry(tmp_path / "home", catalog=catalog)
    registry.register("digits", onnx, run_id="train-1", lineage={"data": ["digits@v1"]}, metrics={"accuracy": 0.9})
    registry.register("digits", onnx, metrics={"accuracy": 0.95}, aliases=["candidate"])
    registry.set_alias("digits", "production", 1)
    registry.set_alias("digits", "production", 2)
    assert registry.get("digits@production").metrics == {"accuracy": 0.95}
    assert registry.get("digits@v1").lineage == {"data": ["digits@v1"]}
    assert registry.aliases("digits") == {"candidate": 2, "production": 2}
    assert [(h["alias"], h["version"], h["previous"]) for h in registry.alias_history("digits")] == [
        ("candidate", 2, None), ("production", 1, None), ("production", 2, 1)
    ]
    assert not (tmp_path / "home" / "catalog.sqlite").exists()  # the rows went to PostgreSQL
    with pytest.raises(ModelNotFound, match=r"^model 'digits' has no alias 'stable'; its versions: v1, v2"):
        registry.get("digits@stable")


def test_aiforge_catalog_selects_postgres(tmp_path: Path, catalog: str, onnx: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIFORGE_CATALOG", catalog)
    Registry(tmp_path / "a").register("digits", onnx)
    import psycopg

    with psycopg.connect(catalog) as conn:
        rows = conn.execute("SELECT name, version, path FROM models").fetchall()
    assert rows == [("digits", 1, "digits/1/model.onnx")]


def test_a_failed_registration_leaves_nothing(tmp_path: Path, catalog: str, onnx: Path) -> None:
    registry = Registry(tmp_path / "home", catalog=catalog)
    with pytest.raises(Exception, match="is not a file"):
        registry.register("digits", onnx, extra_files={"card.json": tmp_path / "missing"}, aliases=["production"])
    assert registry.names() == []
    assert not (tmp_path / "home" / "models" / "digits").exists()
    assert registry.register("digits", onnx).version == 1


def test_runs_on_postgres(tmp_path: Path, catalog: str) -> None:
    runs = RunStore(tmp_path / "home", catalog=catalog)
    first = runs.start("train", "digits", {"entrypoint": "train.py"})
    second = runs.start("train", "churn", {})
    runs.finish(first.id, "failed", exit_code=1, error="ValueError: boom")
    assert [r.id for r in runs.list()] == [second.id, first.id]
    assert runs.get(first.id).status == "failed"
    assert [r.name for r in runs.list(name="digits")] == ["digits"]


def test_a_wrong_password_is_never_shown(tmp_path: Path, catalog: str) -> None:
    url = catalog.replace("postgres@", "nobody:s3cret-PW@")
    with pytest.raises(WorkspaceError) as info:
        Registry(tmp_path, catalog=url).names()
    assert "s3cret" not in str(info.value)
    assert str(info.value).startswith(f"catalog {url.replace('s3cret-PW', '***')} failed: ")


def test_concurrent_registrations_on_postgres(tmp_path: Path, catalog: str, onnx: Path) -> None:
    from test_registry import check_concurrent_registrations

    check_concurrent_registrations(tmp_path / "home", catalog, onnx)
