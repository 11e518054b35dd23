"""examples/quickstart.ipynb runs top to bottom on a real Jupyter kernel of this virtualenv's Python, and what a user
sees there is the HTML summaries and notebook progress bars: no error, nothing on stderr, no terminal escape code."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from aiforge.workspace import Workspace

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"
KERNEL = "aiforge-test-venv"


def _kernel(tmp_path: Path) -> AsyncKernelManager:
    """A kernel manager for a kernelspec in a temporary folder that starts this very interpreter, so neither a
    kernel installed for the user nor the first ``python`` on PATH can stand in for it."""
    folder = tmp_path / "kernels" / KERNEL
    folder.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "aiforge test", "language": "python"}
    (folder / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
    assert specs.get_kernel_spec(KERNEL).argv[0] == sys.executable
    return AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def _html(cell: Any) -> str:
    return "".join(out.get("data", {}).get("text/html", "") for out in cell.outputs)


def test_the_notebook_is_saved_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert len(code) >= 6
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.timeout(180)
def test_quickstart_runs_on_a_kernel_of_this_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("AIFORGE_HOME", str(home))  # the kernel inherits this process's environment
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # no user profile or startup file
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # connection files stay here
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)\nprint(sys.prefix)"))
    NotebookClient(nb, km=_kernel(tmp_path), timeout=120, resources={"metadata": {"path": str(work)}}).execute()

    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for cell in cells:
        for out in cell.outputs:
            assert out.output_type != "error", f"{cell.source}\n{out.get('ename')}: {out.get('evalue')}"
            assert not (out.output_type == "stream" and out.name == "stderr"), f"{cell.source}\n{out.text}"
            assert "\x1b[" not in json.dumps(out, ensure_ascii=False), cell.source
    assert cells[-1].outputs[0].text == f"{sys.executable}\n{sys.prefix}\n"

    by_call = {name: next(cell for cell in cells if f"aiforge.{name}(" in cell.source)
               for name in ("dump", "analyze", "batch", "clean")}
    assert '<div class="t">Snapshot orders@v1</div>' in _html(by_call["dump"])
    assert "<iframe srcdoc=" in _html(by_call["analyze"])
    assert '<div class="t">Feature snapshot orders_features@v1</div>' in _html(by_call["batch"])
    assert '<div class="t">CLEAN orders@v1 → orders_clean@v1</div>' in _html(by_call["clean"])
    assert '<div class="t">Snapshot orders_clean@v1</div>' in _html(cells[-2])
    for name, cell in by_call.items():  # progress=True drew a notebook bar, left at its final state
        bars = [out for out in cell.outputs if 'class="aiforge-progress"' in out.get("data", {}).get("text/html", "")]
        assert bars and all(bar.data["text/plain"].endswith(", done)") for bar in bars), name
    printed = "".join(out.get("text", "") for out in cells[-2].outputs)
    match = re.search(r"(\d+) of the (\d+) labels changed were among the 100 made wrong", printed)
    assert match and 0 < int(match[1]) <= int(match[2])
    assert sorted(s.ref for s in Workspace(home).list_snapshots()) == [
        "orders@v1", "orders_clean@v1", "orders_features@v1"
    ]
    assert sorted(p.name for p in work.iterdir()) == ["features.yaml", "shop.db"]
