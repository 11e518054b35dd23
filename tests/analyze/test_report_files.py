"""Where ANALYZE writes: a path the user names is written to (through symlinks, into FIFOs, '-' is stdout)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aiforge import InvalidInput, analyze
from aiforge.analyze.stage import AnalyzeSpec
from aiforge.cli import app

TABLE = pa.table({"x": [1, 2, 3, 4], "y": ["a", "b", "a", "b"]})


def test_save_writes_through_a_symlink(tmp_path: Path, workspace) -> None:
    target = tmp_path / "keep" / "stats.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    report = analyze(TABLE)
    _, json_path = report.save(json=link, workspace=workspace)
    assert json_path == link
    assert link.is_symlink()
    assert json.loads(target.read_text()) == report.to_dict()
    assert [r["json"] for r in workspace.list_reports()] == [str(link)]


def test_save_writes_into_a_fifo(tmp_path: Path, workspace) -> None:
    fifo = tmp_path / "stats.pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    report = analyze(TABLE)
    try:
        report.save(json=fifo, workspace=workspace)
        chunks = []
        while True:
            try:
                chunk = os.read(reader, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(b"".join(chunks)) == report.to_dict()


def test_save_json_to_stdout_with_dash(tmp_path: Path, workspace, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    report = analyze(TABLE)
    html_path, json_path = report.save(html=tmp_path / "r.html", json="-", workspace=workspace)
    assert json_path == Path("-")
    assert json.loads(capsys.readouterr().out) == report.to_dict()
    assert not (tmp_path / "-").exists()
    # only the file is recorded in the catalog; stdout is not a place a report can be found again
    assert [(r["html"], r["json"]) for r in workspace.list_reports()] == [(str(html_path), None)]
    report.save(json="-", workspace=workspace)
    assert len(workspace.list_reports()) == 1


def test_save_refuses_both_files_on_stdout(workspace) -> None:
    with pytest.raises(InvalidInput, match=r"^the HTML report and the JSON statistics cannot both go to stdout"):
        analyze(TABLE).save(html="-", json="-", workspace=workspace)


def test_save_into_a_folder_is_a_clear_error(tmp_path: Path, workspace) -> None:
    from aiforge.errors import WorkspaceError

    with pytest.raises(WorkspaceError, match=r"^cannot write the report to .*: \[Errno 21\] Is a directory"):
        analyze(TABLE).save(html=tmp_path, workspace=workspace)


def test_the_spec_keeps_dash_as_the_output(tmp_path: Path) -> None:
    spec = AnalyzeSpec.model_validate({"target": "t", "out": "-", "json_out": "-"})
    assert os.fspath(spec.out) == "-" and os.fspath(spec.json_out) == "-"


def test_cli_json_dash_prints_only_json_on_stdout(tmp_path: Path, workspace) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(TABLE, path)
    result = CliRunner().invoke(app, ["analyze", str(path), "--json", "-"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["rows"] == {"value": 4, "exact": True}
    assert result.stderr.startswith("d.parquet: 4 rows x 2 columns; statistics from every row (exact)\n")
    assert "Stats:  stdout" in result.stderr
    assert not (tmp_path / "-").exists() and not Path("-").exists()
    assert workspace.list_reports() == []


def test_cli_out_through_a_symlink(tmp_path: Path, workspace) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(TABLE, path)
    target = tmp_path / "site" / "index.html"
    target.parent.mkdir()
    link = tmp_path / "report.html"
    link.symlink_to(target)
    result = CliRunner().invoke(app, ["analyze", str(path), "--out", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and target.read_text().startswith("<!DOCTYPE html>")
    assert f"Report: {link}" in result.stdout
