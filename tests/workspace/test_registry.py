"""The model registry on SQLite: versions, lineage, aliases and their history, concurrent registrations, failures."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aiforge.errors import InvalidInput, ModelNotFound, NotFound, WorkspaceError
from aiforge.workspace import CatalogDB, Registry, Workspace
from aiforge.workspace.db import Cursor, catalog_url, mask_url
from aiforge.workspace.registry import check_alias, parse_model_ref


@pytest.fixture(autouse=True)
def _no_catalog_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIFORGE_CATALOG", raising=False)


@pytest.fixture
def onnx(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not really onnx")  # register does not inspect the bytes
    return path


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


# -- references -----------------------------------------------------------------------------------------------------


def test_parse_model_ref() -> None:
    assert parse_model_ref("digits") == ("digits", None)
    assert parse_model_ref("digits@v3") == ("digits", "v3")
    assert parse_model_ref("digits@3") == ("digits", "3")
    assert parse_model_ref(" digits@production ") == ("digits", "production")
    with pytest.raises(InvalidInput, match=r"^model reference 'digits@' ends with '@'; use NAME, NAME@vN"):
        parse_model_ref("digits@")
    with pytest.raises(InvalidInput, match=r"^model name 'a/b' is not a folder name"):
        parse_model_ref("a/b@v1")


@pytest.mark.parametrize("alias", ["v3", "3", "", "has space", "a.b", "x" * 65, "prod@1"])
def test_bad_alias_names(alias: str) -> None:
    with pytest.raises(InvalidInput, match=r"is not an alias name; use letters, digits, '_' or '-'"):
        check_alias(alias)


@pytest.mark.parametrize("alias", ["production", "candidate", "v3x", "blue-green_2", "vx"])
def test_good_alias_names(alias: str) -> None:
    assert check_alias(alias) == alias


# -- register and get -----------------------------------------------------------------------------------------------


def test_register_then_get_by_every_kind_of_reference(workspace: Workspace, onnx: Path, tmp_path: Path) -> None:
    card = tmp_path / "card.json"
    card.write_text('{"classes": 10}')
    registry = Registry(workspace)
    first = registry.register("digits", onnx, run_id="train-1", lineage={"code_hash": "ab", "data": ["d@v1"]},
                              metrics={"accuracy": 0.9}, extra_files={"model.json": card})
    second = registry.register("digits", onnx, metrics={"accuracy": 0.95}, aliases=["production"])
    assert (first.ref, second.ref) == ("digits@v1", "digits@v2")
    assert first.path == workspace.home / "models" / "digits" / "1" / "model.onnx"
    assert first.path.read_bytes() == b"not really onnx"
    assert (first.path.parent / "model.json").read_text() == '{"classes": 10}'
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first.created)
    assert (first.run_id, first.lineage, first.metrics, first.aliases) == (
        "train-1", {"code_hash": "ab", "data": ["d@v1"]}, {"accuracy": 0.9}, ()
    )
    assert registry.get("digits") == second
    assert registry.get("digits@v1") == first
    assert registry.get("digits@1") == first
    assert registry.get("digits@production").version == 2
    assert registry.get("digits@production").aliases == ("production",)
    assert registry.names() == ["digits"]
    assert [v.version for v in registry.versions("digits")] == [1, 2]
    assert first.summary() == {
        "ref": "digits@v1", "name": "digits", "version": 1, "path": str(first.path), "created": first.created,
        "run_id": "train-1", "aliases": [], "lineage": {"code_hash": "ab", "data": ["d@v1"]},
        "metrics": {"accuracy": 0.9},
    }
    # the rows sit in the workspace's SQLite catalog beside the snapshot tables, which still work
    assert workspace.list_snapshots() == []
    with sqlite3.connect(workspace.home / "catalog.sqlite") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"snapshots", "reports", "models", "model_aliases", "model_alias_history", "runs"} <= tables


def test_get_names_what_exists(workspace: Workspace, onnx: Path) -> None:
    registry = Registry(workspace)
    with pytest.raises(ModelNotFound, match=r"^model 'digits' is not in the registry of workspace .*; models there: "
                                            r"none \(register one with `aiforge train` or Registry.register\)$"):
        registry.get("digits")
    registry.register("digits", onnx, aliases=["candidate"])
    registry.register("churn", onnx)
    with pytest.raises(ModelNotFound, match=r"^model 'iris' is not in the registry .*; models there: churn, digits$"):
        registry.get("iris@production")
    with pytest.raises(ModelNotFound, match=r"^model 'digits' has no version 'v7'; its versions: v1; its aliases: "
                                            r"candidate -> v1$"):
        registry.get("digits@v7")
    with pytest.raises(ModelNotFound, match=r"^model 'digits' has no alias 'production'; its versions: v1; its "
                                            r"aliases: candidate -> v1$"):
        registry.get("digits@production")


def test_bad_input_to_register(workspace: Workspace, onnx: Path, tmp_path: Path) -> None:
    registry = Registry(workspace)
    with pytest.raises(InvalidInput, match=r"^model name 'a b' is not a folder name"):
        registry.register("a b", onnx)
    with pytest.raises(InvalidInput, match=r"^model file .*missing.onnx does not exist; pass the exported model.onnx"):
        registry.register("digits", tmp_path / "missing.onnx")
    with pytest.raises(InvalidInput, match=r"^extra file name '../x' must be a plain file name"):
        registry.register("digits", onnx, extra_files={"../x": onnx})
    with pytest.raises(InvalidInput, match=r"^extra file name 'model.onnx' must be a plain file name"):
        registry.register("digits", onnx, extra_files={"model.onnx": onnx})
    with pytest.raises(InvalidInput, match=r"^metrics must be JSON"):
        registry.register("digits", onnx, metrics={"model": object()})
    with pytest.raises(InvalidInput, match=r"^alias 'v2' is not an alias name"):
        registry.register("digits", onnx, aliases=["v2"])
    assert registry.names() == []
    assert _tree(workspace.home / "models") == []


def test_a_failed_registration_leaves_nothing(workspace: Workspace, onnx: Path, tmp_path: Path) -> None:
    registry = Registry(workspace)
    registry.register("digits", onnx)
    before = _tree(workspace.home / "models")
    with pytest.raises(InvalidInput, match=r"^extra file 'card.json' of 'digits': .*gone.json is not a file"):
        registry.register("digits", onnx, extra_files={"card.json": tmp_path / "gone.json"}, aliases=["production"])
    assert _tree(workspace.home / "models") == before  # no version 2, no staging folder
    assert _tree(workspace.home / ".tmp") == []  # nor the upload folder
    assert [v.version for v in registry.versions("digits")] == [1]
    assert registry.aliases("digits") == {}  # the alias of the failed version was rolled back with its row
    assert registry.alias_history("digits") == []
    assert registry.register("digits", onnx).version == 2  # the number was not burnt


def test_a_failed_commit_removes_the_renamed_folder(workspace: Workspace, onnx: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(workspace)
    registry.register("digits", onnx)
    real = registry.db.transaction

    @contextlib.contextmanager
    def failing_commit(write: bool = False) -> Iterator[Cursor]:
        with real(write) as cur:
            yield cur
            if write:  # the files are renamed into place; the commit fails (disk full, connection lost)
                raise WorkspaceError("catalog failed: database or disk is full")

    monkeypatch.setattr(registry.db, "transaction", failing_commit)
    with pytest.raises(WorkspaceError, match=r"^catalog failed: database or disk is full$"):
        registry.register("digits", onnx, aliases=["production"])
    monkeypatch.undo()
    assert _tree(workspace.home / "models") == ["digits", "digits/1", "digits/1/model.onnx"]
    assert [v.version for v in registry.versions("digits")] == [1]
    assert registry.aliases("digits") == {}


def test_versions_written_straight_into_the_repository_are_listed(workspace: Workspace, onnx: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from aiforge.serve import export_sklearn

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    registry = Registry(workspace)
    registry.register("iris", onnx, metrics={"f1": 0.5})
    path = export_sklearn(LogisticRegression().fit(x, y), registry.store.root, n_features=3, name="iris")
    assert path == registry.store.root / "iris" / "2" / "model.onnx"
    export_sklearn(LogisticRegression().fit(x, y), registry.store.root, n_features=3, name="plain")
    assert registry.names() == ["iris", "plain"]
    listed = registry.versions("iris")
    assert [(v.version, v.metrics, v.lineage, v.run_id) for v in listed] == [
        (1, {"f1": 0.5}, {}, None), (2, {}, {}, None)
    ]
    assert registry.get("plain@v1").path == registry.store.root / "plain" / "1" / "model.onnx"
    assert registry.get("iris") == listed[1]
    assert registry.register("iris", onnx).version == 3  # the next number counts the folder on disk
    assert registry.set_alias("plain", "production", 1).aliases == ("production",)


def test_a_row_whose_folder_was_removed_is_not_listed(workspace: Workspace, onnx: Path) -> None:
    import shutil

    registry = Registry(workspace)
    registry.register("digits", onnx)
    registry.register("digits", onnx)
    shutil.rmtree(registry.store.root / "digits" / "2")
    assert [v.version for v in registry.versions("digits")] == [1]
    with pytest.raises(ModelNotFound, match=r"^model 'digits' has no version 'v2'; its versions: v1"):
        registry.get("digits@v2")
    assert registry.register("digits", onnx).version == 3  # the number of the removed version is never reused


# -- aliases --------------------------------------------------------------------------------------------------------


def test_alias_moves_and_history(workspace: Workspace, onnx: Path) -> None:
    registry = Registry(workspace)
    for _ in range(3):
        registry.register("digits", onnx)
    assert registry.set_alias("digits", "production", 1).ref == "digits@v1"
    assert registry.set_alias("digits", "candidate", "v3").aliases == ("candidate",)
    moved = registry.set_alias("digits", "production", "2")
    assert (moved.version, moved.aliases) == (2, ("production",))
    assert registry.aliases("digits") == {"candidate": 3, "production": 2}
    assert registry.get("digits@production").version == 2
    assert registry.get("digits@v1").aliases == ()
    registry.remove_alias("digits", "candidate")
    assert registry.aliases("digits") == {"production": 2}
    history = registry.alias_history("digits")
    assert [(h["alias"], h["version"], h["previous"]) for h in history] == [
        ("production", 1, None), ("candidate", 3, None), ("production", 2, 1), ("candidate", None, 3)
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", h["at"]) for h in history)
    assert [h["version"] for h in registry.alias_history("digits", "production")] == [1, 2]


def test_alias_errors(workspace: Workspace, onnx: Path) -> None:
    registry = Registry(workspace)
    registry.register("digits", onnx, aliases=["production"])
    with pytest.raises(ModelNotFound, match=r"^model 'digits' has no version 'v5'; its versions: v1; its aliases: "
                                            r"production -> v1$"):
        registry.set_alias("digits", "production", 5)
    with pytest.raises(InvalidInput, match=r"^version must be a positive integer such as 3 or 'v3'; got 'three'$"):
        registry.set_alias("digits", "production", "three")
    with pytest.raises(NotFound, match=r"^model 'digits' has no alias 'candidate'; its aliases: production -> v1$"):
        registry.remove_alias("digits", "candidate")
    assert registry.aliases("digits") == {"production": 1}
    assert len(registry.alias_history("digits")) == 1


def test_a_failed_alias_move_changes_nothing(workspace: Workspace, onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(workspace)
    registry.register("digits", onnx, aliases=["production"])
    registry.register("digits", onnx)

    def broken(*args: object) -> None:
        raise RuntimeError("disk gone while writing the history")

    monkeypatch.setattr(registry, "_history", broken)  # the alias row is replaced first, then the history fails
    with pytest.raises(RuntimeError, match="disk gone"):
        registry.set_alias("digits", "production", 2)
    assert registry.aliases("digits") == {"production": 1}


# -- the catalog database -------------------------------------------------------------------------------------------


def test_catalog_url_and_masking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert catalog_url(tmp_path) == f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    monkeypatch.setenv("AIFORGE_CATALOG", "postgresql://ana@db/registry")
    assert catalog_url(tmp_path) == "postgresql://ana@db/registry"
    assert catalog_url(tmp_path, "sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    assert mask_url("postgresql://ana:s3cret@db:5432/reg") == "postgresql://ana:***@db:5432/reg"
    with pytest.raises(InvalidInput, match=r"^catalog 'mysql://ana:\*\*\*@db/x' is not a catalog URL; use sqlite:///"):
        CatalogDB("mysql://ana:s3cret@db/x")


def test_registry_follows_aiforge_catalog(tmp_path: Path, onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "shared" / "team.sqlite"
    monkeypatch.setenv("AIFORGE_CATALOG", f"sqlite:///{elsewhere}")
    Registry(tmp_path / "home").register("digits", onnx)
    assert elsewhere.is_file()
    assert not (tmp_path / "home" / "catalog.sqlite").exists()
    with sqlite3.connect(elsewhere) as conn:
        assert conn.execute("SELECT name, version FROM models").fetchall() == [("digits", 1)]


def test_an_unreachable_postgres_catalog_hides_the_password(tmp_path: Path, onnx: Path) -> None:
    registry = Registry(tmp_path, catalog="postgresql://postgres:s3cret-PW@127.0.0.1:1/test")
    with pytest.raises(WorkspaceError) as info:
        registry.versions("digits")
    assert str(info.value).startswith("catalog postgresql://postgres:***@127.0.0.1:1/test failed: ")
    assert "s3cret" not in str(info.value)


# -- concurrency ----------------------------------------------------------------------------------------------------


def register_many(home: str, catalog: str | None, model: str, count: int, start: object, errors: object) -> None:
    """One writer process: ``count`` registrations of ``model`` (its id in the lineage, to check afterwards)."""
    os.environ.pop("AIFORGE_CATALOG", None)
    try:
        registry = Registry(home, catalog=catalog)
        start.wait(30)  # type: ignore[attr-defined]
        for i in range(count):
            registry.register("shared", Path(model), lineage={"writer": os.getpid(), "i": i})
    except BaseException as exc:  # reported to the parent, which fails the test with it
        errors.put(repr(exc))  # type: ignore[attr-defined]
        raise


def check_concurrent_registrations(home: Path, catalog: str | None, model: Path, processes: int = 4,
                                   each: int = 5) -> None:
    """``processes`` writers register ``each`` versions at once: exactly 1..N, no duplicate, rows and folders agree."""
    context = multiprocessing.get_context("fork")
    start, errors = context.Event(), context.Queue()
    workers = [context.Process(target=register_many, args=(str(home), catalog, str(model), each, start, errors))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(120)
    failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert failures == [] and [w.exitcode for w in workers] == [0] * processes
    registry = Registry(home, catalog=catalog)
    total = processes * each
    versions = registry.versions("shared")
    assert [v.version for v in versions] == list(range(1, total + 1))
    assert all(v.path.read_bytes() == model.read_bytes() for v in versions)
    folders = sorted(int(p.name) for p in (registry.store.root / "shared").iterdir())
    assert folders == list(range(1, total + 1))  # no staging folder left, no folder without its row
    writers = {(v.lineage["writer"], v.lineage["i"]) for v in versions}
    assert len(writers) == total  # every registration has its own version: none lost, none overwritten
    with registry.db.transaction() as cur:
        rows = cur.execute("SELECT version FROM models WHERE name = ? ORDER BY version", ("shared",)).fetchall()
    assert [row[0] for row in rows] == list(range(1, total + 1))


def test_concurrent_registrations_on_sqlite(tmp_path: Path, onnx: Path) -> None:
    check_concurrent_registrations(tmp_path / "home", None, onnx)


def test_an_alias_whose_version_folder_was_removed(workspace: Workspace, onnx: Path) -> None:
    import shutil

    registry = Registry(workspace)
    registry.register("digits", onnx)
    registry.register("digits", onnx, aliases=["production"])
    shutil.rmtree(registry.store.root / "digits" / "2")
    with pytest.raises(ModelNotFound, match=r"^alias 'production' of model 'digits' points at v2, which is no longer "
                                            r"in the model repository .*; move it with `aiforge models alias "
                                            r"digits@vN production`$"):
        registry.get("digits@production")
