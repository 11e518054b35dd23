"""`aiforge train` from the command line: the plan, the run, the registered model, and errors in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from aiforge.cli import app
from conftest import job

runner = CliRunner()


def _spec(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_train_prints_the_run_and_the_model_to_serve(train_ws, code: Path, tmp_path: Path) -> None:
    spec = job(code) | {"code": "trainer"}  # relative to the YAML's folder
    result = runner.invoke(app, ["train", str(_spec(tmp_path, spec))])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "registered digits@v1" in result.output
    assert "serve it: aiforge serve up digits@v1" in result.output

    listed = runner.invoke(app, ["runs", "list", "--json"])
    runs = json.loads(listed.output)
    assert [run["status"] for run in runs] == ["succeeded"]
    shown = runner.invoke(app, ["models", "show", "digits@v1", "--json"])
    assert json.loads(shown.output)["lineage"]["run"] == runs[0]["id"]


def test_plan_calibrates_and_prints_the_choice_without_running(train_ws, code: Path, tmp_path: Path) -> None:
    spec = job(code) | {"deadline": "1h", "resources": {"cpus": 1}}
    result = runner.invoke(app, ["train", str(_spec(tmp_path, spec)), "--plan", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    plan = summary["plan"]
    assert summary["status"] == "planned" and summary["run"] is None
    assert [row["cpus"] for row in plan["candidates"]] == [0.25, 0.5, 0.75, 1.0]
    assert plan["cpus"] == 0.25  # an hour is plenty for a job of seconds: the fewest CPUs
    assert plan["budget_s"] < 3600 and len(plan["samples"]) == 3
    assert runner.invoke(app, ["runs", "list", "--json"]).output.strip() == "[]"


def test_a_deadline_no_quota_meets_is_refused_with_the_fix(train_ws, code: Path, tmp_path: Path) -> None:
    spec = job(code) | {"deadline": "90s", "reserve": "89.5s", "resources": {"cpus": 1}}
    result = runner.invoke(app, ["train", str(_spec(tmp_path, spec))])
    assert result.exit_code == 1
    # calibration alone eats the half second left, or no quota fits what is left
    assert re.search(r"^Error: (calibrating took .* no time is left|no CPU quota up to 1 fits)", result.output)
    assert re.search(r"give a (later deadline|deadline at least)", result.output)
    assert runner.invoke(app, ["runs", "list", "--json"]).output.strip() == "[]"


def test_failures_are_one_error_with_the_users_traceback(train_ws, code: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(_spec(tmp_path, job(code, "train.py:fail")))])
    assert result.exit_code == 1
    assert "Error: training job 'digits' failed" in result.output
    assert "ValueError: bad training data" in result.output and "full log: aiforge runs logs train-" in result.output
    missing = runner.invoke(app, ["train", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "cannot read train spec" in missing.output
