"""The fenced code blocks of a Markdown file, with the example markers that say how to run them.

A marker is an HTML comment on the line right before the opening fence (GitHub does not show it)::

    <!-- example: skip (needs a GPU) -->
    ```bash
    ...
    ```

Several directives go in one comment, separated by ``;``: ``<!-- example: spark; xfail (SPARK-1234) -->``.

==========================  ==========================================================================================
``skip (why)``              not run; the reason is required
``xfail (why)``             expected to fail, strictly: a block that passes while marked fails the test
``background [ready=URL]``  a server: started, waited for until every ``ready=`` URL answers 200, stopped (SIGTERM
                            to its process group) at the end of its section (the next ``#`` or ``##`` heading)
``spark``                   needs a Spark cluster: runs on local Spark, ``spark://HOST:PORT`` in it becomes ``local[2]``
``file NAME``               a file the reader saves (yaml, python, json...): written to NAME in the working folder
``output``                  a ``text`` block: what the previous block printed (stdout and stderr), ``...`` matching any
                            text, trailing spaces ignored
==========================  ==========================================================================================

``bash``/``sh`` and ``python`` blocks run; a ``yaml``/``json``/``toml`` block needs ``file NAME`` or ``skip``; a block
with no language or ``text`` without ``output`` is an illustration (a folder layout, a diagram) and is not run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

RUN = {"bash", "sh", "shell", "python", "py"}
FILES = {"yaml", "yml", "json", "toml", "ini", "cfg"}
PROSE = {"", "text", "txt", "console-output"}
KINDS = {"skip", "xfail", "background", "spark", "file", "output"}

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*example:(?P<body>.*?)-->\s*$")
_DIRECTIVE = re.compile(r"^(?P<kind>[a-z]+)(?:\s+(?P<args>[^()]*?))?\s*(?:\((?P<reason>.*)\))?\s*$")


class MarkerError(ValueError):
    """A marker that cannot be understood: the document and line say where."""


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text and its markers."""

    doc: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    markers: dict[str, str] = field(default_factory=dict)  # kind -> argument text (reason, file name, ready=...)
    section: str = ""  # the heading (# or ##) the block is under

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def first_code_line(self) -> int:
        return self.line + 1

    @property
    def runs(self) -> bool:
        """A block the runner executes or checks (not prose, not skipped)."""
        if "skip" in self.markers:
            return False
        return self.lang in RUN or "file" in self.markers or "output" in self.markers


def _split(body: str) -> list[str]:
    """The directives of a marker: split at ``;`` outside parentheses (a reason may hold one)."""
    parts, depth, current = [], 0, ""
    for char in body:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ";" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _parse_marker(body: str, where: str) -> dict[str, str]:
    markers: dict[str, str] = {}
    for part in (p.strip() for p in _split(body)):
        if not part:
            continue
        m = _DIRECTIVE.match(part)
        if not m or m["kind"] not in KINDS:
            raise MarkerError(f"{where}: unknown example marker {part!r}; known: {', '.join(sorted(KINDS))}")
        kind, args, reason = m["kind"], (m["args"] or "").strip(), (m["reason"] or "").strip()
        if kind in ("skip", "xfail") and not reason:
            raise MarkerError(f"{where}: '{kind}' needs a reason in parentheses: <!-- example: {kind} (why) -->")
        if kind == "file" and not args:
            raise MarkerError(f"{where}: 'file' needs the file name: <!-- example: file features.yaml -->")
        markers[kind] = reason if kind in ("skip", "xfail") else args
    return markers


def parse(text: str, doc: str) -> list[Block]:
    """Every fenced block of ``text``, in order, with its markers; a bad marker raises :class:`MarkerError`."""
    lines = text.splitlines()
    blocks: list[Block] = []
    section = ""
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            if re.match(r"^#{1,2} ", lines[i]):
                section = lines[i].lstrip("#").strip()
            if _MARKER.match(lines[i]) and not (i + 1 < len(lines) and _FENCE.match(lines[i + 1])):
                raise MarkerError(f"{doc}:{i + 1}: an example marker must be on the line right before a ``` fence")
            i += 1
            continue
        fence, lang = m["fence"], m["info"].strip().split(" ")[0].lower() if m["info"].strip() else ""
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(m["indent"]):] if lines[i].startswith(m["indent"]) else lines[i])
            i += 1
        i += 1  # the closing fence
        marker = _MARKER.match(lines[start - 1]) if start > 0 else None
        markers = _parse_marker(marker["body"], f"{doc}:{start}") if marker else {}
        block = Block(doc, start + 1, lang, "\n".join(body) + "\n", markers, section)
        _check(block)
        blocks.append(block)
    return blocks


def _check(block: Block) -> None:
    """Refuse blocks the runner would silently ignore: a file-like block with nowhere to go, an unknown language."""
    known = RUN | FILES | PROSE
    if "skip" in block.markers:
        return
    if "output" in block.markers and block.lang not in PROSE:
        raise MarkerError(f"{block.where}: an 'output' block is ```text, not ```{block.lang}")
    if block.lang in FILES and "file" not in block.markers:
        raise MarkerError(f"{block.where}: a ```{block.lang} block needs <!-- example: file NAME --> "
                          "(or <!-- example: skip (why) -->)")
    if block.lang not in known:
        raise MarkerError(f"{block.where}: the runner does not know ```{block.lang}; "
                          "mark it <!-- example: skip (why) --> or <!-- example: file NAME -->")


def parse_file(path: Path, root: Path) -> list[Block]:
    return parse(path.read_text(encoding="utf-8"), str(path.relative_to(root)))


def ellipsis_match(expected: str, actual: str) -> bool:
    """``expected`` equals ``actual`` where each ``...`` stands for any text (doctest's ELLIPSIS), line ends and
    trailing spaces aside."""

    def norm(s: str) -> str:
        return "\n".join(line.rstrip() for line in s.strip("\n").splitlines())

    pieces = norm(expected).split("...")
    actual = norm(actual)
    if len(pieces) == 1:
        return pieces[0] == actual
    head, *middle, tail = pieces
    if not actual.startswith(head) or not actual.endswith(tail) or len(head) + len(tail) > len(actual):
        return False
    pos, end = len(head), len(actual) - len(tail)
    for piece in middle:
        found = actual.find(piece, pos, end)
        if found < 0:
            return False
        pos = found + len(piece)
    return True
