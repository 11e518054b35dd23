"""`aiforge ocr-eval` on the shipped reference set and on hand-made folders."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aiforge.cli import app

runner = CliRunner()
SPLITMERGE = Path(__file__).resolve().parents[1] / "data" / "popeval" / "dev-ic13-splitmerge"


def test_all_metrics_on_split_and_merged_words() -> None:
    result = runner.invoke(app, ["ocr-eval", str(SPLITMERGE / "gt"), str(SPLITMERGE / "pred"), "--metric", "all"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "60 images"
    assert lines[1] == (
        "PopEval  P 1.0  R 1.0  H 1.0  (popped 1440 of 1440 predicted / 1440 GT chars; splits 26, merges 34)"
    )
    assert lines[3].startswith("WEM      P 0.67175572519083")  # the cascade misjudges split and merged words


def test_json_with_per_image_counts() -> None:
    result = runner.invoke(app, ["ocr-eval", str(SPLITMERGE / "gt"), str(SPLITMERGE / "pred"), "--json", "--per-image"])
    payload = json.loads(result.stdout)
    assert payload["n_images"] == 60 and "cascade" not in payload
    assert payload["popeval"]["images"]["img_002.txt"]["merges"] == 2


def test_a_gt_file_without_predictions_is_scored_as_missed_and_said(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt" / "a.txt").write_text("0 0 10 0 10 10 0 10##::AB\n")
    (tmp_path / "gt" / "b.txt").write_text("0 0 10 0 10 10 0 10##::CD\n")
    (tmp_path / "pred" / "a.txt").write_text("0 0 10 0 10 10 0 10##::AB\n")
    result = runner.invoke(app, ["ocr-eval", str(tmp_path / "gt"), str(tmp_path / "pred")])
    assert result.exit_code == 0
    assert "Warning: " in result.stderr and "b.txt" in result.stderr
    assert "PopEval  P 1.0  R 0.5  H 0.6666666666666666" in result.stdout


def test_bad_folder_is_one_line_and_exit_1() -> None:
    result = runner.invoke(app, ["ocr-eval", "/no/such/gt", str(SPLITMERGE / "pred")])
    assert result.exit_code == 1
    assert result.stderr == "Error: OCR folder /no/such/gt does not exist or is not a folder\n"
