"""The shape of the house: what `make lint` (import-linter) does not check by itself.

import-linter holds the layers, private modules and cycles (pyproject.toml); these tests add private *names*
and what ``import aiforge.engines`` loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import aiforge

PACKAGE = Path(aiforge.__file__).parent
STAGES = ("dump", "analyze", "clean", "batch", "nlp", "serve", "evaluate")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _private_imports() -> list[str]:
    """Every ``from aiforge.x import _name`` of a private function/class made outside the package ``aiforge.x``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("aiforge"):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and not _is_module(f"{node.module}.{alias.name}"):
                    owner = node.module or ""
                    if not (package == owner or package.startswith(owner + ".")):
                        found.append(f"{importer}: from {owner} import {alias.name}")
    return found


def test_no_module_imports_a_private_name_of_another_package() -> None:
    assert _private_imports() == []


def test_the_check_finds_a_private_import() -> None:
    # the checker itself must be able to fail: a module of aiforge.nlp taking a private function of aiforge.batch
    probe = PACKAGE / "nlp" / "_layout_probe.py"
    probe.write_text("from aiforge.batch._plan import quote as _q\nfrom aiforge.batch.transform import _HANGUL\n")
    try:
        assert _private_imports() == ["aiforge.nlp._layout_probe: from aiforge.batch.transform import _HANGUL"]
    finally:
        probe.unlink()


def test_engines_import_no_stage() -> None:
    code = (
        "import sys, aiforge.engines, aiforge.engines.local, aiforge.engines.spark, aiforge.engines.sources; "
        f"print(sorted(m for m in sys.modules if m.split('.')[:2] in [['aiforge', s] for s in {STAGES!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"


def test_every_stage_has_its_folder() -> None:
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
    assert not (PACKAGE / "features").exists() and not (PACKAGE / "labels").exists()
