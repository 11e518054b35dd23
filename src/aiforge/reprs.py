"""Compact HTML summaries for Jupyter: what the ``_repr_html_`` of every result a user holds is built from.

A notebook keeps each output in the ``.ipynb`` file, so a summary is small and bounded whatever the data: a title, a
table of key facts and at most a few short tables, every value escaped and cut to a fixed length, every table cut to
a fixed number of rows with a line saying how many were left out. A few lines of CSS scoped to the summary's class go
with it; nothing (stylesheet, font, script) is loaded from anywhere.

Examples
--------
>>> page = summary("Snapshot <t>@v1", [("rows", 3), ("source", "a & b")])
>>> "Snapshot &lt;t&gt;@v1" in page and "a &amp; b" in page and "<script" not in page
True
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

__all__ = ["MAX_CELL", "MAX_ROWS", "cell", "human_bytes", "listing", "section", "summary", "table"]

MAX_CELL = 120
"""Characters of one value shown; a longer one is cut in the middle, at a '…' (the full value is on the object)."""
MAX_ROWS = 20
"""Rows shown of one table."""

# One small stylesheet, scoped to the summary's class so that it styles nothing else on the page
_CSS = (
    "<style>"
    ".aiforge-summary{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;line-height:1.4}"
    ".aiforge-summary .t{font-weight:600;margin:0 0 4px 0}"
    ".aiforge-summary .h{font-weight:600;font-size:12px;margin:4px 0 2px 0}"
    ".aiforge-summary table{border-collapse:collapse;margin:0 0 6px 0;font-size:12px}"
    ".aiforge-summary th,.aiforge-summary td{text-align:left;vertical-align:top;padding:1px 12px 1px 0}"
    ".aiforge-summary th{border-bottom:1px solid #9995}"
    ".aiforge-summary td.k{font-weight:600;white-space:nowrap}"
    ".aiforge-summary td.m{color:#888;font-style:italic}"
    "</style>"
)


def cell(value: object, limit: int = MAX_CELL) -> str:
    """One value as escaped text of at most ``limit`` characters: integers with thousands separators, floats to
    four significant digits, None as '-'; a longer text keeps its start and end around a '…'.

    Examples
    --------
    >>> cell(1234567), cell(0.123456), cell(None), cell("<b>")
    ('1,234,567', '0.1235', '-', '&lt;b&gt;')
    >>> cell("/home/me/" + "x" * 200 + "/report.html", limit=22)
    '/home/me/x…report.html'
    """
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = str(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    if len(text) > limit:  # cut in the middle: a path's or URL's end says as much as its start
        head = (limit - 1) // 2
        text = text[:head] + "…" + text[len(text) - (limit - 1 - head):]
    return html.escape(text, quote=True)


def human_bytes(size: int | None) -> str:
    """``1536`` -> ``'1.5 KiB'``; None -> ``'-'``.

    Examples
    --------
    >>> human_bytes(512), human_bytes(1536), human_bytes(3 * 1024**3)
    ('512 B', '1.5 KiB', '3.0 GiB')
    """
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def listing(items: Sequence[object], limit: int = MAX_ROWS) -> str:
    """The first ``limit`` items joined by commas, then how many more (plain text; :func:`cell` escapes it).

    Examples
    --------
    >>> listing(["a", "b", "c"], limit=2)
    'a, b, … (+1 more)'
    """
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f", … (+{len(items) - limit:,} more)" if len(items) > limit else "")


def table(
    header: Sequence[str] | None, rows: Iterable[Sequence[object]], *, total: int | None = None,
    limit: int = MAX_ROWS, noun: str = "rows",
) -> str:
    """A small table: the first ``limit`` rows, then '… N more <noun>' when ``total`` (or the rows given) is larger.

    Without a header the first value of each row is shown as a key (bold), as in a table of facts.
    """
    parts = ["<table>"]
    if header:
        parts.append("<tr>" + "".join(f"<th>{cell(name)}</th>" for name in header) + "</tr>")
    shown = 0
    remaining = iter(rows)
    for row in remaining:
        if shown == limit:
            if total is None:  # count the rest only when the caller did not say how many there are
                total = shown + 1 + sum(1 for _ in remaining)
            break
        first, *rest = row
        parts.append(
            ("<tr><td>" if header else '<tr><td class="k">') + cell(first) + "</td>"
            + "".join(f"<td>{cell(value)}</td>" for value in rest) + "</tr>"
        )
        shown += 1
    if total is not None and total > shown:
        span = len(header) if header else 2
        parts.append(f'<tr><td colspan="{span}" class="m">… {total - shown:,} more {cell(noun)}</td></tr>')
    parts.append("</table>")
    return "".join(parts)


def section(heading: str, body: str) -> str:
    """A sub-heading over ``body`` (HTML made by :func:`table`)."""
    return f'<div class="h">{cell(heading)}</div>{body}'


def summary(title: str, facts: Iterable[tuple[str, object]], *sections: str) -> str:
    """The whole summary: ``title`` (escaped), a key/value table of ``facts``, then ``sections`` (already HTML)."""
    return (
        f'<div class="aiforge-summary">{_CSS}<div class="t">{cell(title, limit=2 * MAX_CELL)}</div>'
        + table(None, facts, noun="facts")
        + "".join(sections)
        + "</div>"
    )
