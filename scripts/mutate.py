"""Single-token mutation testing with the standard library only.

Copies ``src/`` to a temporary folder, applies one mutation at a time to one module there (operator swaps,
comparison flips, constant changes, ``and``/``or`` swaps, dropped ``not``), and runs the given tests with that copy
first on ``PYTHONPATH``, so the working tree is never touched and other test runs are not disturbed. A mutant is
killed when the tests fail (or time out), and survives when they pass.

    .venv/bin/python scripts/mutate.py src/aiforge/serve/sizing/load.py --only _Run.result \
        -- tests/serve/test_load_summary.py tests/serve/test_load.py

``--only`` limits the mutations to the named functions or classes (dotted, ``Class.method``); repeat it for more.
Mutated source is printed for each survivor (line number and the changed line) so it can be killed or explained.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
                ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
_CMP_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
              ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


def _constant_mutants(value: object) -> list[object]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1] if value else [1]
    if isinstance(value, float):
        return [value + 1.0, value / 2.0] if value else [1.0]
    if isinstance(value, str) and value and not value.isspace():
        return ["XX" + value + "XX"]
    return []


def _sites(tree: ast.AST, spans: list[tuple[int, int]] | None) -> list[tuple[int, str, object]]:
    """Every (node index, kind, replacement) in walk order, inside ``spans`` when given."""
    out: list[tuple[int, str, object]] = []
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for index, node in enumerate(ast.walk(tree)):
        line = getattr(node, "lineno", None)
        if spans is not None and (line is None or not any(a <= line <= b for a, b in spans)):
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINOP_SWAPS:
            out.append((index, "op", _BINOP_SWAPS[type(node.op)]))
        elif isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                if type(op) in _CMP_SWAPS:
                    out.append((index, "cmp", (position, _CMP_SWAPS[type(op)])))
        elif isinstance(node, ast.BoolOp):
            out.append((index, "bool", ast.Or if isinstance(node.op, ast.And) else ast.And))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            out.append((index, "unary", None))
        elif isinstance(node, ast.Constant) and id(node) not in docstrings and not isinstance(node.value, bytes):
            for value in _constant_mutants(node.value):
                out.append((index, "const", value))
    return out


class _Apply(ast.NodeTransformer):
    def __init__(self, target: int, kind: str, replacement: object, order: dict[int, int]):
        self.target, self.kind, self.replacement, self.order = target, kind, replacement, order

    def visit(self, node: ast.AST) -> ast.AST:
        if self.order.get(id(node)) != self.target:
            return self.generic_visit(node)
        if self.kind == "op":
            node.op = self.replacement()  # type: ignore[attr-defined,operator]
        elif self.kind == "cmp":
            position, op = self.replacement  # type: ignore[misc]
            node.ops[position] = op()  # type: ignore[attr-defined]
        elif self.kind == "bool":
            node.op = self.replacement()  # type: ignore[attr-defined,operator]
        elif self.kind == "unary":
            return node.operand  # type: ignore[attr-defined,no-any-return]
        elif self.kind == "const":
            node.value = self.replacement  # type: ignore[attr-defined]
        return node


def _spans(tree: ast.Module, names: list[str]) -> list[tuple[int, int]]:
    spans = []
    for name in names:
        scope: list[ast.stmt] = tree.body
        found: ast.AST | None = None
        for part in name.split("."):
            found = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                          and n.name == part), None)
            if found is None:
                raise SystemExit(f"no {name} in the module")
            scope = found.body  # type: ignore[attr-defined]
        spans.append((found.lineno, found.end_lineno))  # type: ignore[union-attr]
    return spans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module", help="path of the module under src/ to mutate")
    parser.add_argument("--only", action="append", default=[], help="function or Class.method to mutate")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per test run (a timeout kills)")
    parser.add_argument("tests", nargs="+", help="pytest arguments, after --")
    args = parser.parse_args()

    root = Path.cwd()
    module = Path(args.module)
    source = (root / module).read_text()
    tree = ast.parse(source)
    sites = _sites(tree, _spans(tree, args.only) if args.only else None)
    original_lines = ast.unparse(tree).splitlines()
    pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
              "-W", "ignore", *args.tests]
    killed, survivors = 0, []
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        shutil.copytree(root / "src", Path(tmp) / "src")
        target = Path(tmp) / module
        env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "src")}
        check = subprocess.run([sys.executable, "-c", "import aiforge; print(aiforge.__file__)"], env=env,
                               capture_output=True, text=True)
        if not check.stdout.startswith(tmp):
            raise SystemExit(f"the copy is not imported first: {check.stdout or check.stderr}")
        baseline = subprocess.run(pytest, env=env, capture_output=True, text=True, timeout=args.timeout)
        if baseline.returncode != 0:
            raise SystemExit("the tests fail before any mutation:\n" + baseline.stdout[-3000:])
        for number, (index, kind, replacement) in enumerate(sites, 1):
            mutated = copy.deepcopy(tree)
            order = {id(node): i for i, node in enumerate(ast.walk(mutated))}
            _Apply(index, kind, replacement, order).visit(mutated)
            text = ast.unparse(ast.fix_missing_locations(mutated))
            target.write_text(text)
            for cached in target.parent.glob(f"__pycache__/{target.stem}.*"):
                cached.unlink()
            try:
                run = subprocess.run(pytest, env=env, capture_output=True, text=True, timeout=args.timeout)
                survived = run.returncode == 0
            except subprocess.TimeoutExpired:
                survived = False
            changed = [f"{i + 1}: {line.strip()}" for i, (line, before) in
                       enumerate(zip(text.splitlines(), original_lines, strict=False)) if line != before]
            print(f"[{number}/{len(sites)}] {'SURVIVED' if survived else 'killed'} {kind} -> "
                  f"{getattr(replacement, '__name__', replacement)!r}  {' | '.join(changed)[:200]}", flush=True)
            if survived:
                survivors.append(changed)
            else:
                killed += 1
    total = len(sites)
    print(f"\n{module}: {total} mutants, {killed} killed, {len(survivors)} survived, "
          f"score {100.0 * killed / total if total else 100.0:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
