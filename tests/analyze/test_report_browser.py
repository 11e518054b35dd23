"""The HTML report in headless Chromium: no JavaScript errors; the scatter and SVG charts render offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from aiforge import analyze

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"
    ),
]


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def _open(browser, path: Path):
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on(
        "request",
        lambda req: requests.append(req.url) if not req.url.startswith(("file:", "data:")) else None,
    )
    page.goto(path.as_uri())
    page.wait_for_function("window.aiforgeReady === true", timeout=30_000)
    return page, errors, requests


def _report(tmp_path: Path, label: str | None, rows: int = 3_000) -> Path:
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "x": rng.normal(size=rows),
            "y": rng.normal(size=rows),
            "when": pa.array(rng.integers(0, 10**9, rows), pa.timestamp("s")),
            "city": rng.choice(["paris", "rome", "<b>oslo</b>"], rows),
            "note": [f"free text {i} </script>" for i in range(rows)],
            "target": rng.integers(0, 3, rows),
        }
    )
    path = tmp_path / "report.html"
    analyze(table, label=label, sample_rows=2_000).save(html=path, workspace=_workspace(tmp_path))
    return path


def _first_point(page) -> tuple[float, float]:
    page.locator("#scatter").scroll_into_view_if_needed()
    box = page.locator("#scatter").bounding_box()
    x, y = page.evaluate("[window.aiforgeScatter.px[0], window.aiforgeScatter.py[0]]")
    return box["x"] + x, box["y"] + y


def _workspace(tmp_path: Path):
    from aiforge import Workspace

    return Workspace(tmp_path / "home")


@pytest.mark.parametrize("label", ["target", None])
def test_report_renders_without_errors(browser, tmp_path: Path, label: str | None):
    page, errors, requests = _open(browser, _report(tmp_path, label))
    assert errors == []
    assert requests == []  # works offline: nothing is fetched
    assert page.evaluate("window.aiforgeScatter.drawn") == 2_000
    assert page.locator("#legend span").count() == (3 if label else 0)
    # the canvas really has coloured pixels where the points are
    painted = page.evaluate(
        """() => { const c = document.getElementById('scatter');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) { if (d[i + 3] > 0 && d[i + 2] > d[i] + 40) n++; }
        return n; }"""
    )
    assert painted > 1_000
    assert page.locator("#columns svg rect.bar").count() > 20
    assert page.locator("#issues, #sampling").count() >= 1
    # the axes can be changed, and the plot follows
    page.select_option("#x-axis", "when")
    assert page.evaluate("window.aiforgeScatter.x") == "when"
    assert page.evaluate("window.aiforgeScatter.drawn") == 2_000
    page.mouse.move(*_first_point(page))
    assert page.locator("#tip").is_visible()
    assert errors == []
    page.close()
