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
        "PopEval  P 1.0000  R 1.0000  H 1.0000  (popped 1440 of 1440 predicted / 1440 GT chars; splits 26, merges 34)"
    )
    assert lines[3].startswith("WEM      P 0.6718  R ")  # the cascade misjudges split and merged words


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
    assert "PopEval  P 1.0000  R 0.5000  H 0.6667" in result.stdout  # four decimals; --json has them all


def test_bad_folder_is_one_line_and_exit_1() -> None:
    result = runner.invoke(app, ["ocr-eval", "/no/such/gt", str(SPLITMERGE / "pred")])
    assert result.exit_code == 1
    assert result.stderr == "Error: OCR folder /no/such/gt does not exist or is not a folder\n"


def test_help_shows_the_documented_choices() -> None:
    result = runner.invoke(app, ["ocr-eval", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--format <auto|reference|ic13|ic15|polygon>" in result.stdout
    assert "--normalize <NFC|NFKC>" in result.stdout
    assert "--mode <reference|paper>" in result.stdout


def test_the_documented_format_names_work_and_others_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "a.txt").write_text("0,0,10,0,10,10,0,10,Hi, there\n")
    gt = str(tmp_path / "gt")
    result = runner.invoke(app, ["ocr-eval", gt, gt, "--format", "ic15", "--normalize", "NFKC", "--mode", "paper"])
    assert result.exit_code == 0, result.output
    assert "PopEval  P 1.0000  R 1.0000  H 1.0000  (popped 9 of 9 predicted / 9 GT chars" in result.stdout
    for option, value, choices in (("--format", "icdar2015", "'auto', 'reference', 'ic13', 'ic15', 'polygon'"),
                                   ("--normalize", "NFD", "'NFC', 'NFKC'"), ("--mode", "fast", "'reference', 'paper'")):
        result = runner.invoke(app, ["ocr-eval", gt, gt, option, value])
        assert result.exit_code == 2, (option, result.output)
        assert f"'{value}' is not one of {choices}" in result.output


def test_empty_folders_are_an_error_not_a_perfect_score(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt" / "a.gt").write_text("0 0 10 0 10 10 0 10##::AB\n")
    result = runner.invoke(app, ["ocr-eval", str(tmp_path / "gt"), str(tmp_path / "pred")])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        f"Error: no image to evaluate: the GT folder {tmp_path / 'gt'} holds no *.txt file (found 1 other entry: "
        f"a.gt) and the prediction folder {tmp_path / 'pred'} holds no *.txt file (it is empty); put one *.txt file "
        "per image in each folder, paired by file name\n"
    )


def test_a_nan_coordinate_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt" / "a.txt").write_text("0,0,10,0,10,10,0,10,AB\n")
    (tmp_path / "pred" / "a.txt").write_text("0,0,10,0,10,10,0,10,AB\n0,0,nan,0,10,10,0,10,CD\n")
    result = runner.invoke(app, ["ocr-eval", str(tmp_path / "gt"), str(tmp_path / "pred")])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"Error: {tmp_path / 'pred' / 'a.txt'}:2: expected a finite number, got 'nan'\n"
