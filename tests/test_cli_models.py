"""`aiforge models` and `aiforge runs`, and `serve up NAME@ALIAS` resolving through the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aiforge.cli import app
from aiforge.workspace import Registry, RunStore, Workspace

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_catalog_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIFORGE_CATALOG", raising=False)


@pytest.fixture
def registry(workspace: Workspace, tmp_path: Path) -> Registry:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    registry = Registry(workspace)
    registry.register("digits", model, run_id="train-20261202-004512-3f9a", lineage={"code_hash": "ab12"},
                      metrics={"accuracy": 0.9})
    registry.register("digits", model, metrics={"accuracy": 0.95}, aliases=["candidate"])
    return registry


def test_every_new_command_has_an_example() -> None:
    for command in (["models", "list"], ["models", "show"], ["models", "alias"], ["runs", "list"], ["runs", "show"],
                    ["runs", "logs"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert f"Example: aiforge {' '.join(command)}" in result.output


def test_models_list(registry: Registry) -> None:
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["model", "created", "aliases", "run", "metrics"]
    assert lines[1].split()[0::2] == ["digits@v1", "train-20261202-004512-3f9a"]
    assert lines[1].split()[-1] == "accuracy=0.9"
    assert lines[2].split()[0] == "digits@v2" and "candidate" in lines[2].split()
    listed = json.loads(runner.invoke(app, ["models", "list", "--json"]).output)
    assert [(v["ref"], v["aliases"], v["metrics"]) for v in listed] == [
        ("digits@v1", [], {"accuracy": 0.9}), ("digits@v2", ["candidate"], {"accuracy": 0.95})
    ]
    other = runner.invoke(app, ["models", "list", "--name", "iris"])
    assert (other.exit_code, other.output) == (0, "No model named 'iris'; the registry has: digits.\n")


def test_models_list_empty(workspace: Workspace) -> None:
    result = runner.invoke(app, ["models", "list"])
    assert (result.exit_code, result.output) == (0, "No models yet; register one with `aiforge train`.\n")


def test_models_show(registry: Registry) -> None:
    result = runner.invoke(app, ["models", "show", "digits@v1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"digits@v1  ({registry.store.root / 'digits' / '1' / 'model.onnx'})"
    assert lines[2:] == ["  aliases   -", "  run       train-20261202-004512-3f9a", "  metrics:",
                         "    accuracy          0.9", "  lineage:", "    code_hash         ab12"]
    shown = json.loads(runner.invoke(app, ["models", "show", "digits@candidate", "--json"]).output)
    assert (shown["ref"], shown["aliases"], shown["lineage"]) == ("digits@v2", ["candidate"], {})
    missing = runner.invoke(app, ["models", "show", "digits@production"])
    assert missing.exit_code == 1
    assert missing.output.startswith("Error: model 'digits' has no alias 'production'; its versions: v1, v2")


def test_models_alias_moves_and_removes(registry: Registry) -> None:
    result = runner.invoke(app, ["models", "alias", "digits@v1", "production"])
    assert (result.exit_code, result.output) == (0, "digits@production -> digits@v1\n")
    result = runner.invoke(app, ["models", "alias", "digits@v2", "production"])
    assert (result.exit_code, result.output) == (0, "digits@production -> digits@v2 (was v1)\n")
    assert registry.aliases("digits") == {"candidate": 2, "production": 2}
    result = runner.invoke(app, ["models", "alias", "digits", "candidate", "--rm"])
    assert (result.exit_code, result.output) == (0, "Removed digits@candidate (was v2)\n")
    assert registry.aliases("digits") == {"production": 2}
    assert [h["version"] for h in registry.alias_history("digits", "production")] == [1, 2]


def test_models_alias_errors(registry: Registry) -> None:
    result = runner.invoke(app, ["models", "alias", "digits", "production"])
    assert result.exit_code == 2
    assert "name the version, for example 'digits@v1'" in result.output
    result = runner.invoke(app, ["models", "alias", "digits@v9", "production"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: model 'digits' has no version 'v9'; its versions: v1, v2")
    result = runner.invoke(app, ["models", "alias", "digits@v1", "v2"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: alias 'v2' is not an alias name")
    result = runner.invoke(app, ["models", "alias", "digits", "stable", "--rm"])
    assert (result.exit_code, result.output) == (1, "Error: model 'digits' has no alias 'stable'; its aliases: "
                                                    "candidate -> v2\n")


def test_runs_list_show_logs(workspace: Workspace) -> None:
    runs = RunStore(workspace)
    ok = runs.start("train", "digits", {"entrypoint": "train.py"}, code_hash="ab12")
    runs.finish(ok.id, "succeeded", exit_code=0, metrics={"accuracy": 0.97}, model="digits@v1")
    bad = runs.start("train", "churn", {})
    bad.log_path.write_text("Traceback (most recent call last):\nValueError: boom\n")
    runs.finish(bad.id, "failed", exit_code=1, error="ValueError: boom")
    runs.start("pipeline", "nightly", {})

    result = runner.invoke(app, ["runs", "list", "--kind", "train"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert rows[0] == ["run", "name", "status", "started", "ended", "model", "metrics"]
    assert [row[:3] for row in rows[1:]] == [[bad.id, "churn", "failed"], [ok.id, "digits", "succeeded"]]
    assert rows[2][-2:] == ["digits@v1", "accuracy=0.97"]
    listed = json.loads(runner.invoke(app, ["runs", "list", "-n", "1", "--json"]).output)
    assert [(r["kind"], r["name"], r["status"]) for r in listed] == [("pipeline", "nightly", "running")]

    shown = runner.invoke(app, ["runs", "show", bad.id[:-1]])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[0] == f"{bad.id}  train 'churn'  failed"
    assert "  exit code   1" in shown.output.splitlines()
    assert "  error       ValueError: boom" in shown.output.splitlines()
    as_json = json.loads(runner.invoke(app, ["runs", "show", ok.id, "--json"]).output)
    assert (as_json["info"]["code_hash"], as_json["spec"]) == ("ab12", {"entrypoint": "train.py"})

    logs = runner.invoke(app, ["runs", "logs", bad.id])
    assert (logs.exit_code, logs.output) == (0, "Traceback (most recent call last):\nValueError: boom\n")
    followed = runner.invoke(app, ["runs", "logs", bad.id, "--follow"])  # a finished run: prints and returns
    assert followed.output == logs.output
    none = runner.invoke(app, ["runs", "logs", ok.id])
    assert none.exit_code == 0 and "has no log yet" in none.output
    missing = runner.invoke(app, ["runs", "show", "train-1999"])
    assert missing.exit_code == 1 and missing.output.startswith("Error: run 'train-1999' not found in workspace")


def test_runs_list_empty(workspace: Workspace) -> None:
    result = runner.invoke(app, ["runs", "list"])
    assert (result.exit_code, result.output) == (0, "No runs yet; start one with `aiforge train`.\n")


# -- serve up NAME@ALIAS --------------------------------------------------------------------------------------------


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import aiforge.serve.deploy.supervise as module

    seen: list[Any] = []
    monkeypatch.setattr(module, "supervise", lambda settings, **kwargs: seen.append(settings))
    return seen


def test_serve_up_resolves_an_alias_through_the_registry(registry: Registry, captured: list[Any]) -> None:
    registry.set_alias("digits", "production", 1)
    result = runner.invoke(app, ["serve", "up", "digits@production"])
    assert result.exit_code == 0, result.output
    [settings] = captured
    assert (settings.model, settings.model_repo, settings.version) == ("digits", registry.store.root, "1")
    assert f"digits@production is digits@v1 ({registry.store.root / 'digits' / '1' / 'model.onnx'})" in result.output
    result = runner.invoke(app, ["serve", "up", "digits@v2"])
    assert (captured[1].model, captured[1].version) == ("digits", "2")


def test_serve_up_with_an_explicit_repository(registry: Registry, captured: list[Any]) -> None:
    result = runner.invoke(app, ["serve", "up", "digits@v2", "--model-repo", str(registry.store.root)])
    assert result.exit_code == 0, result.output
    assert (captured[0].model, captured[0].version) == ("digits", "2")
    result = runner.invoke(app, ["serve", "up", "digits@candidate", "--model-repo", str(registry.store.root)])
    assert result.exit_code == 2
    assert "aliases such as 'candidate' live in the workspace's registry; drop --model-repo" in result.output
    result = runner.invoke(app, ["serve", "up", "digits@v1", "--version", "2"])
    assert result.exit_code == 2 and "'digits@v1' names its version already; drop --version" in result.output


def test_serve_up_with_an_unknown_alias(registry: Registry, captured: list[Any]) -> None:
    result = runner.invoke(app, ["serve", "up", "digits@production"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: model 'digits' has no alias 'production'; its versions: v1, v2; its "
                                    "aliases: candidate -> v2")
    assert captured == []


def test_serve_export_resolves_an_alias(registry: Registry, tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "export", "digits@candidate", "--k8s", "--out", str(tmp_path / "deploy")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "deploy" / "digits-k8s.yaml").read_text()
    # the APS calls the aliased version
    assert "- --model\n        - digits\n        - --version\n        - '2'\n" in text


def test_runs_logs_follow_prints_until_the_run_ends(workspace: Workspace) -> None:
    import threading

    runs = RunStore(workspace)
    run = runs.start("train", "digits", {})
    run.log_path.write_text("epoch 1\n")

    def finish_later() -> None:
        threading.Event().wait(0.8)  # the command is following by then (it polls every 0.5 s)
        with run.log_path.open("a") as log:
            log.write("epoch 2\ndone\n")
        runs.finish(run.id, "succeeded", exit_code=0)

    writer = threading.Thread(target=finish_later)
    writer.start()
    result = runner.invoke(app, ["runs", "logs", run.id, "--follow"])
    writer.join()
    assert (result.exit_code, result.output) == (0, "epoch 1\nepoch 2\ndone\n")
