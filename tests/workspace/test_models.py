"""The model store: the repository layout, listings, the next version, atomic writes and their errors."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from aiforge.errors import InvalidInput, ModelNotFound, WorkspaceError
from aiforge.workspace import ModelStore
from aiforge.workspace.models import CONFIG_FILE, LAYOUT, MODEL_FILE, check_model_name, parse_version

BAD_NAME = "model name {!r} is not a folder name; use letters, digits, '_', '.', '-' (starting alphanumeric)"


def _version(root: Path, name: str, folder: str, model: bytes | None = b"onnx") -> Path:
    """A version folder made by hand, as a user or another tool would."""
    path = root / name / folder
    path.mkdir(parents=True)
    if model is not None:
        (path / MODEL_FILE).write_bytes(model)
    return path


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_the_layout_constants() -> None:
    assert (MODEL_FILE, CONFIG_FILE, LAYOUT) == ("model.onnx", "config.yaml", "<model>/<version>/model.onnx")


def test_paths(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    assert store.root == tmp_path
    assert store.model_dir("churn") == tmp_path / "churn"
    assert store.config_file("churn") == tmp_path / "churn" / "config.yaml"
    assert store.version_dir("churn", 3) == tmp_path / "churn" / "3"
    assert store.version_dir("churn", "3") == tmp_path / "churn" / "3"
    assert store.model_file("churn", 2) == tmp_path / "churn" / "2" / "model.onnx"
    assert _tree(tmp_path) == []  # computing paths writes nothing
    assert repr(store) == f"ModelStore({str(tmp_path)!r})"


def test_root_expands_the_home_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ModelStore("~/models").root == tmp_path / "models"
    assert ModelStore("models").root == Path("models")  # not made absolute: messages show it as given


def test_constructing_a_store_touches_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "repo")
    assert not store.root.exists()
    assert store.names() == []
    assert store.versions("churn") == []
    assert store.version_dirs("churn") == {}


def test_names_are_visible_folders_sorted(tmp_path: Path) -> None:
    for name in ("zeta", "Alpha", "mid", ".hidden", "has space"):
        (tmp_path / name).mkdir()
    (tmp_path / "file.txt").write_text("not a model")
    assert ModelStore(tmp_path).names() == ["Alpha", "has space", "mid", "zeta"]


def test_versions_are_numeric_folders_with_a_model_sorted_as_numbers(tmp_path: Path) -> None:
    for folder in ("10", "2", "1"):
        _version(tmp_path, "m", folder)
    _version(tmp_path, "m", "11", model=None)  # a version folder without its model
    _version(tmp_path, "m", "0")  # versions start at 1
    _version(tmp_path, "m", "latest")
    _version(tmp_path, "m", ".staging-12-1-abc")  # what a killed writer leaves
    (tmp_path / "m" / "13").write_text("a file, not a folder")
    store = ModelStore(tmp_path)
    assert store.versions("m") == [1, 2, 10]
    assert store.version_dirs("m") == {n: tmp_path / "m" / str(n) for n in (1, 2, 10, 11)}
    assert list(store.version_dirs("m")) == [1, 2, 10, 11]
    assert store.latest("m") == 10
    assert store.next_version("m") == 12  # above every version folder, complete or not


def test_a_padded_folder_is_the_same_version_and_the_canonical_one_wins(tmp_path: Path) -> None:
    padded = _version(tmp_path, "m", "03")
    store = ModelStore(tmp_path)
    assert store.versions("m") == [3]
    assert store.version_dir("m", 3) == padded
    assert store.model_file("m", "3") == padded / "model.onnx"
    canonical = _version(tmp_path, "m", "3")
    assert store.version_dirs("m") == {3: canonical}
    assert store.version_dir("m", 3) == canonical


def test_latest_of_a_missing_model_names_the_models_there(tmp_path: Path) -> None:
    _version(tmp_path, "b", "1")
    _version(tmp_path, "a", "2")
    (tmp_path / "empty").mkdir()
    store = ModelStore(tmp_path)
    with pytest.raises(ModelNotFound, match=f"^model 'nope' is not in the model repository {re.escape(str(tmp_path))}; "
                                            r"models there: a, b$"):
        store.latest("nope")
    with pytest.raises(ModelNotFound, match=re.escape(
        f"model 'empty' has no version in the model repository {tmp_path}; expected {tmp_path}/empty/<version>/"
        "model.onnx"
    ) + "$"):
        store.latest("empty")
    with pytest.raises(ModelNotFound, match=r"models there: none$"):
        ModelStore(tmp_path / "nowhere").latest("a")


def test_next_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "repo")
    assert store.next_version("new") == 1
    assert store.next_version("new", 4) == 4
    _version(store.root, "m", "1")
    _version(store.root, "m", "3")
    assert store.next_version("m") == 4
    assert store.next_version("m", "2") == 2
    assert store.next_version("m", np.int64(9)) == 9
    with pytest.raises(InvalidInput, match=re.escape(
        f"model 'm' already has version 3 in {store.root}; pass another version, or none to add version 4"
    ) + "$"):
        store.next_version("m", 3)


def test_next_version_in_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "repo").write_text("not a folder")
    with pytest.raises(InvalidInput, match=re.escape(
        f"model repository {tmp_path / 'repo'} is a file; pass a folder (it is created if missing)"
    ) + "$"):
        ModelStore(tmp_path / "repo").next_version("m")


@pytest.mark.parametrize("version", [0, -1, "0", "", "v1", "1.0", " 1", "1\n", "\u00b2", 1.0, True, None, [1]])
def test_bad_versions(version: object) -> None:
    with pytest.raises(InvalidInput, match=f"^version must be a positive integer such as 1; got "
                                           f"{re.escape(repr(version))}$"):
        parse_version(version)  # type: ignore[arg-type]


@pytest.mark.parametrize(("version", "number"), [(1, 1), ("1", 1), ("007", 7), (np.int32(5), 5), (10**12, 10**12)])
def test_good_versions(version: int | str, number: int) -> None:
    assert parse_version(version) == number


@pytest.mark.parametrize("name", ["", ".hidden", "..", "a/b", "-x", "_x", "a b", "a\n", "caf\u00e9/x", 3, None])
def test_bad_names_for_writing(name: object, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=f"^{re.escape(BAD_NAME.format(name))}$"):
        check_model_name(name)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=f"^{re.escape(BAD_NAME.format(name))}$"):
        ModelStore(tmp_path).write_version(name, b"x")  # type: ignore[arg-type]
    assert _tree(tmp_path) == []


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "../x", "a/b", "a\\b", "a\0b", 3])
def test_names_that_would_leave_the_repository_are_refused_when_reading(name: object, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(InvalidInput, match=f"^{re.escape(BAD_NAME.format(name))}$"):
        store.model_dir(name)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.versions(name)  # type: ignore[arg-type]


def test_reading_accepts_any_visible_folder(tmp_path: Path) -> None:
    _version(tmp_path, "has space", "1")  # a repository made by hand is read as it is
    assert ModelStore(tmp_path).versions("has space") == [1]
    assert ModelStore(tmp_path).latest("has space") == 1


def test_write_version_creates_and_numbers(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "repo")
    first = store.write_version("churn", b"first")
    assert first == tmp_path / "repo" / "churn" / "1" / "model.onnx"
    assert first.read_bytes() == b"first"
    assert store.write_version("churn", b"second").read_bytes() == b"second"
    assert store.write_version("churn", b"seventh", version="7") == store.model_file("churn", 7)
    assert store.versions("churn") == [1, 2, 7]
    assert store.latest("churn") == 7
    assert _tree(store.root) == ["churn", "churn/1", "churn/1/model.onnx", "churn/2", "churn/2/model.onnx",
                                 "churn/7", "churn/7/model.onnx"]
    with pytest.raises(InvalidInput, match=r"^model 'churn' already has version 2 in .*; pass another version, "
                                           r"or none to add version 8$"):
        store.write_version("churn", b"again", version=2)
    assert store.model_file("churn", 2).read_bytes() == b"second"  # never overwritten


def test_written_versions_have_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = ModelStore(tmp_path).write_version("m", b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by a server running as another user
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755


def test_check_sees_the_staged_file_before_it_is_visible(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    seen: list[Path] = []

    def check(path: Path) -> None:
        seen.append(path)
        assert path.read_bytes() == b"model"
        assert store.versions("m") == []  # not visible yet
        assert path.parent.parent == tmp_path / "m" and path.parent.name.startswith(".staging-1-")

    assert store.write_version("m", b"model", check=check) == tmp_path / "m" / "1" / "model.onnx"
    assert len(seen) == 1 and not seen[0].exists()


def test_a_failed_check_leaves_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "repo")

    def refuse(path: Path) -> None:
        raise InvalidInput("the model does not match")

    with pytest.raises(InvalidInput, match=r"^the model does not match$"):
        store.write_version("m", b"bad", check=refuse)
    assert not store.root.exists()  # the folders this write created are gone too

    store.write_version("m", b"good")
    with pytest.raises(InvalidInput, match=r"^the model does not match$"):
        store.write_version("m", b"bad", check=refuse)
    assert _tree(store.root) == ["m", "m/1", "m/1/model.onnx"]
    assert store.next_version("m") == 2


def test_an_interrupt_inside_the_stage_leaves_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    (tmp_path / "keep").mkdir()
    with pytest.raises(KeyboardInterrupt), store.stage("keep") as staged:
        staged.model_file.write_bytes(b"half")
        raise KeyboardInterrupt
    assert _tree(tmp_path) == ["keep"]  # an existing model folder stays, empty as it was


def test_stage_carries_every_file_of_the_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with store.stage("m", 2) as staged:
        assert (staged.name, staged.version, staged.final) == ("m", 2, tmp_path / "m" / "2")
        assert staged.model_file == staged.path / "model.onnx"
        staged.model_file.write_bytes(b"model")
        (staged.path / "metrics.json").write_text("{}")
        assert not staged.final.exists()
    assert _tree(tmp_path) == ["m", "m/2", "m/2/metrics.json", "m/2/model.onnx"]


def test_stage_without_a_model_is_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(InvalidInput, match=r"^version 1 of model 'm' was staged without its model.onnx; write it "
                                           r"to .*/m/\.staging-1-.*/model\.onnx inside the block$"), store.stage("m"):
        pass
    assert _tree(tmp_path) == []


def test_a_version_taken_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(InvalidInput, match=r"^model 'm' already has version 1 in .*; pass another version, or none "
                                           r"to add version 2$"), store.stage("m") as staged:
        staged.model_file.write_bytes(b"mine")
        store.write_version("m", b"theirs")  # another writer finishes first
    assert store.model_file("m", 1).read_bytes() == b"theirs"
    assert _tree(tmp_path) == ["m", "m/1", "m/1/model.onnx"]


def test_an_unwritable_repository_is_a_workspace_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file where a folder should be")  # fails for root too, unlike permissions
    root = tmp_path / "file" / "repo"
    with pytest.raises(WorkspaceError, match=f"^cannot write model 'm' to the model repository "
                                             f"{re.escape(str(root))}: Not a directory$"):
        ModelStore(root).write_version("m", b"x")
    assert _tree(tmp_path) == ["file"]
