"""The docs a user reads first must match the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():  # scripts/ is not a package; load the generator by path
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current() -> None:
    expected = _generator().render()
    actual = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is stale: run `make docs`"


def test_readme_gives_the_two_commands_and_links_the_reference() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    assert "docs/cli.md" in readme


def test_makefile_has_the_documented_targets() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("setup", "demo", "test", "bench", "lint", "docs"):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_every_test_named_in_the_reliability_promises_exists() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len(named) >= 20
    for path, name in named:
        source = (ROOT / path).read_text(encoding="utf-8")  # a missing file fails here
        assert not name or f"def {name}(" in source, f"{path}::{name} is named in docs/reliability.md but not defined"
    for name in re.findall(r"`(test_\w+)`", text):
        assert any(f"def {name}(" in p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py")), name
