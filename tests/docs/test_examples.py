"""Every fenced example of README.md and docs/guide.md runs, so a renamed option or a changed output breaks a test.

Each document is one scenario: its blocks run in order in one temporary working folder with its own
``AIFORGE_HOME``, so what one block makes (a snapshot, a spec, a model) is there for the next. What the reader
already has (their warehouse tables, exported files, OCR results) comes from the fixtures in ``conftest.py``.

- ``bash`` blocks run with ``bash -euo pipefail`` in the working folder, with the project's ``.venv/bin`` first on
  ``PATH`` and a ``.venv`` link in the folder (the README writes ``.venv/bin/aiforge``).
- ``python`` blocks run in this process, one namespace per document, in the working folder; a traceback shows the
  document's own line numbers.
- Markers, HTML comments on the line before a block (``<!-- example: skip (why) -->``, ``background``, ``spark``,
  ``file NAME``, ``output``, ``xfail (why)``), are described in ``_markdown.py``; a skip or an xfail without a
  reason, an unknown marker, or a ``yaml`` block with nowhere to go fails ``test_markers``.
- A ``text`` block marked ``output`` is the real output of the block before it, with ``...`` for what varies.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from pathlib import Path

import pytest
from _markdown import Block, MarkerError, ellipsis_match, parse, parse_file

ROOT = Path(__file__).resolve().parents[2]
# the documents whose examples run, with the services each one's examples use
SCENARIOS = [
    pytest.param("README.md", marks=[pytest.mark.postgres], id="README.md"),
    pytest.param("docs/guide.md", marks=[pytest.mark.postgres, pytest.mark.mysql, pytest.mark.spark, pytest.mark.nginx],
                 id="docs/guide.md"),
]
DOCS = [str(p.values[0]) for p in SCENARIOS]
NEEDS = {"README.md": ["postgres_orders"], "docs/guide.md": ["postgres_orders", "mysql_users"]}
BLOCK_TIMEOUT_S = 300
READY_TIMEOUT_S = 120


class ExampleFailed(AssertionError):
    pass


class Scenario:
    """The working folder of one document: runs its blocks in order and remembers what they printed."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env = dict(os.environ, PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}",
                        COLUMNS="120", NO_COLOR="1", TERM="dumb", PYTHONUNBUFFERED="1")
        self.namespace: dict[str, object] = {"__name__": "__main__"}
        self.servers: list[tuple[Block, subprocess.Popen[bytes], Path]] = []
        self.last_output = ""
        self.last_block: Block | None = None

    # -- one block ------------------------------------------------------------------------------------------------

    def run(self, block: Block) -> None:
        if self.servers and self.servers[0][0].section != block.section:
            self.close()  # a section's servers stop where it ends, so the next one can take their ports
        if "output" in block.markers:
            self._check_output(block)
            return
        if "file" in block.markers:
            path = self.workdir / block.markers["file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.code, encoding="utf-8")
            return
        code = block.code
        if "spark" in block.markers:
            code = re.sub(r"spark://[\w.-]+:\d+", "local[2]", code)
        self.last_block = block
        if "background" in block.markers:
            self._start(block, code)
        elif block.lang in ("python", "py"):
            self._python(block, code)
        else:
            self._bash(block, code)

    def _bash(self, block: Block, code: str) -> None:
        try:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=self.workdir, env=self.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise ExampleFailed(_report(block, f"timed out after {BLOCK_TIMEOUT_S} s", _text(exc.output))) from None
        self.last_output = _text(done.stdout)
        if done.returncode != 0:
            raise ExampleFailed(_report(block, f"exit code {done.returncode}", self.last_output + self._server_logs()))

    def _python(self, block: Block, code: str) -> None:
        compiled = compile("\n" * block.line + code, str(ROOT / block.doc), "exec")
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                exec(compiled, self.namespace)
        except Exception:
            frames = traceback.format_exc()
            raise ExampleFailed(_report(block, "raised", out.getvalue() + frames + self._server_logs())) from None
        self.last_output = out.getvalue()

    def _start(self, block: Block, code: str) -> None:
        log = self.workdir / f".example-{block.line}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", code], cwd=self.workdir, env=self.env,
                                    stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        self.servers.append((block, proc, log))
        urls = [a.removeprefix("ready=") for a in block.markers["background"].split() if a.startswith("ready=")]
        deadline = time.monotonic() + READY_TIMEOUT_S
        for url in urls:
            while not _answers(url):
                if proc.poll() is not None:
                    raise ExampleFailed(_report(block, f"exited with code {proc.returncode} before {url} was ready",
                                                log.read_text(errors="replace")))
                if time.monotonic() > deadline:
                    raise ExampleFailed(_report(block, f"{url} not ready within {READY_TIMEOUT_S} s",
                                                log.read_text(errors="replace")))
                time.sleep(0.2)
        self.last_output = ""

    def _server_logs(self) -> str:
        """The last lines of what the running servers printed: a failed call to a server often says why there."""
        tails = []
        for server, _, log in self.servers:
            lines = log.read_text(errors="replace").splitlines()[-20:]
            tails.append(f"--- the server started at {server.where}, last lines ---\n" + "\n".join(lines) + "\n")
        return "".join(tails)

    def _check_output(self, block: Block) -> None:
        if self.last_block is None:
            raise ExampleFailed(f"{block.where}: an output block with no block before it")
        if not ellipsis_match(block.code, self.last_output):
            raise ExampleFailed(
                f"{block.where}: the output shown is not what the block at {self.last_block.where} printed\n"
                f"--- shown in the docs ('...' matches anything) ---\n{block.code}"
                f"--- printed ---\n{self.last_output}"
            )

    # -- the end of the document -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the servers the document started: SIGTERM to each process group, SIGKILL after 20 s."""
        for _, proc, _ in reversed(self.servers):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc, _ in reversed(self.servers):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything the group left behind
        self.servers.clear()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _report(block: Block, what: str, output: str) -> str:
    code = "".join(f"  {block.first_code_line + i:4d} | {line}\n" for i, line in enumerate(block.code.splitlines()))
    return f"{block.where}: the ```{block.lang} block {what}\n{code}--- output ---\n{output[-6000:]}"


# -- the tests ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS)
def test_markers(doc: str) -> None:
    """Every marker is understood, every skip and xfail says why, and every block is run, checked or prose."""
    blocks = parse_file(ROOT / doc, ROOT)  # raises MarkerError on a bad marker
    assert any(b.runs for b in blocks), f"{doc} has no block to run"


def run_document(blocks: list[Block], scenario: Scenario) -> None:
    """Run ``blocks`` in order in ``scenario``; fail at the first block that fails, or at the end if a block marked
    xfail passed (xfail is strict: the marker must go once the bug is fixed). Prints what ran, what was skipped and
    why, and each block's time and output (shown with -s or when the test fails)."""
    ran, skipped, passed_xfail, failed_xfail = 0, [], [], []
    doc = blocks[0].doc if blocks else "?"
    try:
        for block in blocks:
            if "skip" in block.markers:
                skipped.append(f"{block.where} ({block.markers['skip']})")
                continue
            if not block.runs:
                continue
            if "xfail" in block.markers:
                try:
                    scenario.run(block)
                except ExampleFailed as exc:
                    failed_xfail.append(f"{block.where} ({block.markers['xfail']}): {str(exc).splitlines()[0]}")
                else:
                    passed_xfail.append(block.where)
                continue
            started = time.perf_counter()
            scenario.run(block)
            ran += 1
            if "output" not in block.markers:
                print(f"--- {block.where} ({time.perf_counter() - started:.1f} s)\n{scenario.last_output}", end="")
    finally:
        scenario.close()
    print(f"{doc}: {ran} blocks ran, {len(skipped)} skipped, {len(failed_xfail)} failed as expected")
    for line in skipped + failed_xfail:
        print(f"  {line}")
    if passed_xfail:
        raise ExampleFailed(f"marked xfail but passed (remove the marker): {', '.join(passed_xfail)}")


@pytest.mark.parametrize("doc", SCENARIOS)
def test_examples(doc: str, workdir: Path, request: pytest.FixtureRequest) -> None:
    for fixture in NEEDS[doc]:
        request.getfixturevalue(fixture)
    run_document(parse_file(ROOT / doc, ROOT), Scenario(workdir))


def test_every_document_with_examples_is_run() -> None:
    """A new docs/*.md with a block to run is added to DOCS (docs/cli.md is generated from --help and checked
    against it by tests/test_docs.py)."""
    for path in sorted((ROOT / "docs").glob("*.md")):
        doc = str(path.relative_to(ROOT))
        if doc != "docs/cli.md" and any(b.runs for b in parse_file(path, ROOT)):
            assert doc in DOCS, f"{doc} has examples to run: add it to DOCS in {Path(__file__).name}"


# -- the runner's own rules ------------------------------------------------------------------------------------------


def test_a_skip_without_a_reason_is_refused() -> None:
    with pytest.raises(MarkerError, match=r"x.md:1: 'skip' needs a reason"):
        parse("<!-- example: skip -->\n```bash\nls\n```\n", "x.md")
    with pytest.raises(MarkerError, match=r"'xfail' needs a reason"):
        parse("<!-- example: xfail () -->\n```bash\nls\n```\n", "x.md")
    assert parse("<!-- example: skip (no GPU here) -->\n```bash\nls\n```\n", "x.md")[0].markers == {
        "skip": "no GPU here"}


def test_unknown_markers_stray_markers_and_homeless_yaml_are_refused() -> None:
    with pytest.raises(MarkerError, match="unknown example marker 'skp"):
        parse("<!-- example: skp (x) -->\n```bash\nls\n```\n", "x.md")
    with pytest.raises(MarkerError, match=r"x\.md:1: an example marker must be on the line right before"):
        parse("<!-- example: spark -->\n\n```bash\nls\n```\n", "x.md")
    with pytest.raises(MarkerError, match=r"x.md:1: a ```yaml block needs <!-- example: file NAME -->"):
        parse("```yaml\na: 1\n```\n", "x.md")
    with pytest.raises(MarkerError, match="does not know ```rust"):
        parse("```rust\nfn main() {}\n```\n", "x.md")


def test_blocks_keep_their_line_language_text_and_markers() -> None:
    text = "# t\n\n<!-- example: background ready=http://h/ready; spark -->\n```bash\na &\nb\n```\n\n```\nlayout\n```\n"
    first, second = parse(text, "d.md")
    assert (first.line, first.lang, first.code, first.markers) == (
        4, "bash", "a &\nb\n", {"background": "ready=http://h/ready", "spark": ""})
    assert (second.line, second.lang, second.runs) == (9, "", False)


def test_ellipsis_matches_like_doctest() -> None:
    assert ellipsis_match("a ... c\n", "a b c")
    assert ellipsis_match("x\n...\nz", "x\n1\n2\nz  \n")
    assert ellipsis_match("...", "")
    assert not ellipsis_match("a ... c", "a b d")
    assert not ellipsis_match("ab...ba", "aba")  # the two ends may not overlap
    assert not ellipsis_match("rows: 3", "rows: 4")


def test_a_failing_block_names_the_document_line_and_output(tmp_path: Path) -> None:
    scenario = Scenario(tmp_path)
    block = parse("\n```bash\necho hello\nfalse\n```\n", "doc.md")[0]
    with pytest.raises(ExampleFailed) as info:
        scenario.run(block)
    assert str(info.value) == ("doc.md:2: the ```bash block exit code 1\n     3 | echo hello\n     4 | false\n"
                               "--- output ---\nhello\n")
    output = parse("```bash\necho 'rows: 4'\n```\n<!-- example: output -->\n```text\nrows: 3\n```\n", "o.md")
    scenario.run(output[0])
    with pytest.raises(ExampleFailed, match=r"o\.md:5: the output shown is not what the block at o\.md:1 printed"):
        scenario.run(output[1])


def test_python_blocks_share_one_namespace_and_report_doc_lines(tmp_path: Path) -> None:
    scenario = Scenario(tmp_path)
    first, second = parse("```python\nx = 2\n```\n\n```python\nprint(x * 21)\n1 / 0\n```\n", "p.md")
    scenario.run(first)
    with pytest.raises(ExampleFailed) as info:
        scenario.run(second)
    assert "42\n" in str(info.value)
    assert 'p.md", line 7' in str(info.value)  # the line of `1 / 0` in the document


def test_a_background_server_is_ready_before_the_next_block_and_stops_with_its_section(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    text = (f"## Serve\n\n<!-- example: background ready=http://127.0.0.1:{port}/ -->\n```bash\n"
            f"python -m http.server {port} --bind 127.0.0.1\n```\n\n```bash\ncurl -s -o /dev/null -w '%{{http_code}}' "
            f"http://127.0.0.1:{port}/\n```\n\n## Next\n\n```bash\necho next\n```\n")
    start, call, after = parse(text, "s.md")
    scenario = Scenario(tmp_path)
    try:
        scenario.run(start)
        scenario.run(call)
        assert scenario.last_output == "200"
        server = scenario.servers[0][1]
        scenario.run(after)  # a new section: the server is stopped first
        assert server.poll() is not None and scenario.servers == []
        assert not _answers(f"http://127.0.0.1:{port}/")
    finally:
        scenario.close()


def test_xfail_is_strict_and_skip_is_not_run(tmp_path: Path) -> None:
    text = ("<!-- example: xfail (exits 1 until fixed) -->\n```bash\nfalse\n```\n\n"
            "<!-- example: skip (would fail) -->\n```bash\nfalse\n```\n")
    run_document(parse(text, "x.md"), Scenario(tmp_path))  # the expected failure and the skip pass
    fixed = "<!-- example: xfail (exits 1 until fixed) -->\n```bash\ntrue\n```\n"
    with pytest.raises(ExampleFailed, match=r"marked xfail but passed \(remove the marker\): x\.md:2"):
        run_document(parse(fixed, "x.md"), Scenario(tmp_path))
