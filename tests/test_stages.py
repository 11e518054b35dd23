"""The stage contract: one registry that the CLI and the JSON Schemas are generated from."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
import typer.main
from typer.testing import CliRunner

import aiforge
from aiforge import stages
from aiforge.cli import app
from aiforge.errors import InvalidInput
from aiforge.stages import Stage, StageSpec

runner = CliRunner()


def test_the_stages_in_the_order_of_the_flow() -> None:
    assert stages.names() == ["dump", "analyze", "clean", "batch", "train", "evaluate"]
    for name in stages.names():
        stage = stages.get(name)
        assert stage.name == name and issubclass(stage.spec, StageSpec)
        assert stage.summary.endswith(".") and stage.example.startswith("aiforge ")


@pytest.mark.parametrize("name", ["dump", "analyze", "clean", "batch", "train", "evaluate"])
def test_every_stage_has_a_json_schema_and_a_generated_command(name: str) -> None:
    stage = stages.get(name)
    schema = stage.json_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert list(schema["properties"]) == list(stage.spec.model_fields)
    assert schema["description"].startswith(stage.summary)
    group = typer.main.get_command(app)
    command = group.get_command(typer.Context(group), stage.command)  # type: ignore[attr-defined]
    # every spec field is a parameter of the command, in the spec's order; --json is the only extra
    assert [p.name for p in command.params if p.name != "as_json"] == list(stage.spec.model_fields)


def test_the_engine_choice_of_a_spec_is_the_engines_there_are() -> None:
    import typing

    from aiforge.engines import ENGINES

    assert typing.get_args(stages.EngineChoice) == tuple(ENGINES)


def test_parse_names_the_stage_and_the_key() -> None:
    dump = stages.get("dump")
    with pytest.raises(InvalidInput, match=r"^dump spec: name: Field required$"):
        dump.parse({"source": "x.parquet"})
    with pytest.raises(InvalidInput, match=r"^dump spec: engine: Input should be 'local' or 'spark'; got 'dask'$"):
        dump.parse({"source": "x.parquet", "name": "x", "engine": "dask"})
    with pytest.raises(InvalidInput, match=r"^dump spec: colour: unknown key$"):
        dump.parse({"source": "x.parquet", "name": "x", "colour": "red"})
    with pytest.raises(InvalidInput, match=r"^clean spec: n_jobs: Input should be greater than or equal to 1; got 0"):
        stages.get("clean").parse({"snapshot": "s", "label": "y", "n_jobs": 0})
    with pytest.raises(InvalidInput, match=r"^dump spec must be a mapping of its fields; got list$"):
        dump.parse(["x"])  # type: ignore[arg-type]
    spec = dump.parse({"source": "x.parquet", "name": "x"})
    assert dump.parse(spec) is spec


def test_unknown_and_duplicate_stages_are_refused() -> None:
    known = "dump, analyze, clean, batch, train, evaluate"
    with pytest.raises(InvalidInput, match=rf"^unknown stage 'deploy'; known stages: {known}$"):
        stages.get("deploy")
    with pytest.raises(InvalidInput, match=r"^a stage named 'dump' is already registered$"):
        stages.register(Stage(name="dump", spec=StageSpec, run=lambda spec, **kw: None, summary="x."))


def test_a_registered_stage_is_listed_and_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    class EchoSpec(StageSpec):
        text: str

    echo = Stage(name="echo", spec=EchoSpec, run=lambda spec, **kw: spec.text.upper(), summary="Echo.")
    monkeypatch.setattr(stages, "_registered", {})
    assert stages.register(echo) is echo
    assert stages.names()[-1] == "echo" and stages.get("echo") is echo
    assert echo({"text": "hi"}) == "HI"


def _parquet(tmp_path: Path) -> Path:
    path = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "amount": [1.5, -2.0, 3.0]}), path)
    return path


def test_running_a_stage_spec_equals_calling_its_function(workspace: aiforge.Workspace, tmp_path: Path) -> None:
    source = str(_parquet(tmp_path))
    by_stage = stages.get("dump")({"source": source, "name": "a"}, workspace=workspace)
    by_function = aiforge.dump(source, name="b", workspace=workspace)
    assert (by_stage.ref, by_function.ref) == ("a@v1", "b@v1")
    assert by_stage.manifest["content_hash"] == by_function.manifest["content_hash"]
    assert by_stage.manifest["engine"] == "local" and by_stage.manifest["master"] is None


def test_a_stage_package_calls_its_function() -> None:
    import inspect

    import aiforge.dump

    assert callable(aiforge.dump) and aiforge.dump.dump is aiforge.dump.__wrapped__
    assert list(inspect.signature(aiforge.dump).parameters)[:2] == ["source", "name"]
    with pytest.raises(InvalidInput, match="unknown engine 'dask'"):
        aiforge.dump("x.parquet", name="x", engine="dask")


def test_cli_lists_stages_and_prints_a_schema() -> None:
    result = runner.invoke(app, ["stages", "list", "--json"])
    assert result.exit_code == 0
    assert [row["command"] for row in json.loads(result.output)] == ["dump", "analyze", "clean", "batch", "train",
                                                                   "ocr-eval"]
    result = runner.invoke(app, ["stages", "schema", "batch"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["required"] == ["spec"] and schema["properties"]["engine"]["enum"] == ["local", "spark"]
    result = runner.invoke(app, ["stages", "schema", "nope"])
    assert result.exit_code == 1
    assert "Error: unknown stage 'nope'; known stages: dump, analyze, clean, batch, train, evaluate" in result.output


def test_generated_command_turns_options_into_the_spec(workspace: aiforge.Workspace, tmp_path: Path) -> None:
    source = str(_parquet(tmp_path))
    query = "SELECT * FROM source WHERE amount > 0"
    result = runner.invoke(app, ["dump", source, "-n", "orders", "-q", query, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["ref"] == "orders@v1" and summary["rows"] == 2
    result = runner.invoke(app, ["dump", source, "-n", "orders", "--engine", "dask"])
    assert result.exit_code == 2 and "'dask' is not one of 'local', 'spark'" in result.output


def _labelled(tmp_path: Path) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=80), rng.normal(size=80)
    path = tmp_path / "labelled.parquet"
    pq.write_table(pa.table({"id": np.arange(80), "x1": x1, "x2": x2, "y": (x1 + x2 > 0).astype("int64")}), path)
    return path


def test_generated_batch_and_clean_commands_run(workspace: aiforge.Workspace, tmp_path: Path) -> None:
    assert runner.invoke(app, ["dump", str(_labelled(tmp_path)), "-n", "rows"]).exit_code == 0
    spec = tmp_path / "features.yaml"
    spec.write_text(
        "input: rows@v1\nid: id\nlabel: y\noutput: rows_features\n"
        "features:\n  - numeric: {column: x1}\n  - numeric: {column: x2}\n"
    )
    result = runner.invoke(app, ["batch", str(spec), "--sample", "50", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["ref"] == "rows_features@v1" and summary["rows"] == 50
    assert workspace.get_snapshot("rows_features").manifest["engine"] == "local"

    result = runner.invoke(app, ["clean", "rows", "-l", "y", "-f", "x1, x2", "--method", "vote", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["output"] == "rows_clean@v1" and report["rows"] == 80 and report["method"] == "vote"

    result = runner.invoke(app, ["batch", str(spec), "--master", "local[2]"])
    assert result.exit_code == 2  # a usage error
    assert "Error: --master 'local[2]' only applies to --engine spark" in result.output
