"""Render a report's statistics as one self-contained HTML page: inline SVG charts and canvas, no network.

No charting library is inlined on purpose: plotly.js alone (4.6 MB) takes about 3 s to parse in headless
Chromium on a 2-core machine, and the report must open in under 2 s. Histograms are SVG drawn here;
the scatter is a small canvas script (templates/report.js).
"""

from __future__ import annotations

import functools
import html
import json
import re
from importlib import resources
from typing import Any

__all__ = ["render"]

_BAR_WIDTH = 300
_BAR_HEIGHT = 70


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


@functools.lru_cache(maxsize=1)
def _assets() -> tuple[str, str]:
    folder = resources.files("aiforge.analyze") / "templates"
    template = (folder / "report.html").read_text(encoding="utf-8")
    script = (folder / "report.js").read_text(encoding="utf-8")
    return template, script


def _json_in_script(payload: Any) -> str:
    """JSON that cannot end the <script> element that holds it ('<' written as an escape)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _js_in_script(code: str) -> str:
    """JavaScript that cannot end its <script> element; '<\\/' is the same in JS strings and regexes."""
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _fig(entry: Any) -> str:
    """A figure's value, marked '≈' when it is estimated from the sample."""
    if not isinstance(entry, dict) or "value" not in entry:
        return _e(entry)
    text = _e(_fmt(entry["value"]))
    if entry.get("order"):  # a string column's min/max: in text order, or in numeric order for numbers as text
        text += f' <span class="note">({_e(entry["order"])} order)</span>'
    if entry.get("exact"):
        return text
    return f'<span class="est" title="estimated from the sample">≈ {text}</span>'


def _svg_bars(counts: list[int], labels: list[str], title: str, ends: tuple[str, str]) -> str:
    if not counts:
        return ""
    top = max(max(counts), 1)
    width = _BAR_WIDTH / len(counts)
    bars = []
    for i, (count, label) in enumerate(zip(counts, labels, strict=True)):
        height = (_BAR_HEIGHT - 4) * count / top
        bars.append(
            f'<rect class="bar" x="{i * width:.2f}" y="{_BAR_HEIGHT - height:.2f}" '
            f'width="{max(width - 1, 0.5):.2f}" height="{height:.2f}">'
            f"<title>{_e(label)}: {count:,}</title></rect>"
        )
    return (
        f'<svg width="{_BAR_WIDTH}" height="{_BAR_HEIGHT + 14}" role="img" aria-label="{_e(title)}">'
        + "".join(bars)
        + f'<text x="0" y="{_BAR_HEIGHT + 12}">{_e(ends[0])}</text>'
        + f'<text x="{_BAR_WIDTH}" y="{_BAR_HEIGHT + 12}" text-anchor="end">{_e(ends[1])}</text></svg>'
    )


def _short(edge: Any) -> str:
    """An axis label: numbers in 4 significant digits, ISO datetimes as their date."""
    return edge[:10] if isinstance(edge, str) else _fmt(edge)


def _histogram_svg(hist: dict[str, Any], title: str) -> str:
    edges, counts = hist["edges"], list(hist["counts"])
    labels = [f"{_fmt(edges[i])} to {_fmt(edges[i + 1])}" for i in range(len(counts))]
    ends = [_short(edges[0]), _short(edges[-1])]
    if hist.get("below"):  # outliers counted apart, as an end bar, so they cannot flatten the bins
        counts, labels = [hist["below"], *counts], [f"below {_fmt(edges[0])} (outliers)", *labels]
        ends[0] = f"< {ends[0]}"
    if hist.get("above"):
        counts, labels = [*counts, hist["above"]], [*labels, f"above {_fmt(edges[-1])} (outliers)"]
        ends[1] = f"> {ends[1]}"
    return _svg_bars(counts, labels, title, (ends[0], ends[1]))


def _top_values_table(items: list[dict[str, Any]], exact: bool) -> str:
    total = max(sum(item["count"] for item in items), 1)
    rows = "".join(
        f"<tr><td>{_e(item['value'])}</td><td>{_fig({'value': item['count'], 'exact': exact})}</td>"
        f'<td><svg width="{int(120 * item["count"] / total) + 1}" height="8"><rect class="bar" '
        'width="100%" height="8">'
        f"</rect></svg></td></tr>"
        for item in items[:6]
    )
    return f"<table><tr><th>top values</th><th>rows</th><th></th></tr>{rows}</table>"


_ROWS = (
    "count",
    "missing",
    "distinct",
    "min",
    "max",
    "mean",
    "std",
    "zeros",
    "nan",
    "inf",
    "empty_strings",
    "numeric_strings",
)


def _column_card(stats: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(key.replace('_', ' '))}</th><td>{_fig(stats[key])}</td></tr>"
        for key in _ROWS
        if key in stats
    )
    if "quantiles" in stats:
        q = stats["quantiles"]
        rows += "".join(
            f"<tr><th>{_e(name)}</th><td>{_fig({'value': value, 'exact': q['exact']})}</td></tr>"
            for name, value in q["value"].items()
            if name in ("p5", "p25", "p50", "p75", "p95")
        )
    nested = stats["kind"] == "nested"  # a list's or map's length is its number of elements
    if "lengths" in stats:
        lengths = stats["lengths"]["value"]
        span = f"{lengths['min']} / {lengths['mean']:.1f} / {lengths['max']}"
        rows += f"<tr><th>{'elements' if nested else 'length'}</th><td>{span} (min/mean/max)</td></tr>"
    chart = ""
    if "histogram" in stats:
        chart = _histogram_svg(stats["histogram"]["value"], f"histogram of {stats['name']}")
    elif "lengths" in stats and stats["kind"] in ("text", "nested"):
        chart = f"<div class='note'>{'elements per value' if nested else 'string lengths'}</div>" + _histogram_svg(
            stats["lengths"]["value"]["histogram"], f"lengths of {stats['name']}"
        )
    if "top_values" in stats and stats["kind"] in ("categorical", "boolean", "text", "nested"):
        chart += _top_values_table(stats["top_values"]["value"], stats["top_values"]["exact"])
    return (
        f'<div class="card"><h3>{_e(stats["name"])}</h3><div class="type">{_e(stats["kind"])} · '
        f"{_e(stats['type'])}</div>"
        f"<table>{rows}</table>{chart}</div>"
    )


def _issues_section(issues: list[dict[str, Any]]) -> str:
    if not issues:
        return "<section><h2>Issues</h2><p>No issues found.</p></section>"
    rows = "".join(
        f'<tr><td class="sev-{_e(i["severity"])}">{_e(i["severity"])}</td><td>{_e(i["type"])}</td>'
        f"<td>{_e(i['column'] or '(all columns)')}</td>"
        f"<td>{_fig({'value': i['rows'], 'exact': i['exact']})}</td>"
        f"<td>{_e(i['message'])}</td>"
        f"<td class='rows'>{_e(', '.join(f'{n:,}' for n in i.get('examples', [])) or '')}"
        f"{' ...' if len(i.get('examples', [])) < i['rows'] and i.get('examples') else ''}</td></tr>"
        for i in issues
    )
    return (
        f"<section id='issues'><h2>Issues ({len(issues)})</h2><table><tr><th>severity</th><th>issue</th>"
        f"<th>column</th><th>rows affected</th><th>details</th>"
        f"<th title='0-based row numbers in the data, files in order: snapshot.to_arrow().take([...])'>example rows"
        f"</th></tr>{rows}</table></section>"
    )


def _label_section(label: dict[str, Any] | None) -> str:
    if not label:
        return ""
    parts = [f"<section id='label'><h2>Label: {_e(label['name'])} ({_e(label['task'])})</h2>"]
    if label["task"] == "classification":
        classes = label["classes"]
        rows = "".join(
            f"<tr><td>{_e(c['value'])}</td><td>{_fig({'value': c['count'], 'exact': classes['exact']})}</td>"
            f"<td>{c['share']:.1%}</td></tr>"
            for c in classes["value"][:20]
        )
        parts.append(f"<table><tr><th>class</th><th>rows</th><th>share</th></tr>{rows}</table>")
        if "imbalance_ratio" in label:
            parts.append(
                f"<p>Imbalance (largest / smallest class): {_fig(label['imbalance_ratio'])}; minority share "
                f"{label['minority_share']['value']:.1%}</p>"
            )
    elif "histogram" in label:
        parts.append(_histogram_svg(label["histogram"]["value"], "label histogram"))
    slices = label.get("top_biased_slices") or []
    if slices:
        measure = "label shares" if label["task"] == "classification" else "label mean"
        rows = "".join(
            f"<tr><td>{_e(s['column'])}</td><td>{_e(s['value'])}</td><td>{s['rows']:,}</td>"
            f"<td>{s['deviation']:.3f}</td><td>{_e(_slice_label(s))}</td></tr>"
            for s in slices
        )
        parts.append(
            "<h2>Bias: slices whose label distribution deviates most</h2>"
            "<p class='note'>Deviation: total variation distance from the overall label distribution "
            "(classification) or difference of means in standard deviations (regression); slices of 5+ "
            "sampled rows."
            f"</p><table><tr><th>column</th><th>slice</th><th>rows in "
            f"sample</th><th>deviation</th><th>{measure}</th>"
            f"</tr>{rows}</table>"
        )
    parts.append("</section>")
    return "".join(parts)


def _slice_label(entry: dict[str, Any]) -> str:
    if "label_shares" in entry:
        return ", ".join(f"{k}: {v:.1%}" for k, v in list(entry["label_shares"].items())[:6])
    return _fmt(entry.get("label_mean"))


def _sampling_section(stats: dict[str, Any]) -> str:
    sample = stats["sample"]
    if sample["exact"]:
        text = f"Every one of the {stats['rows']['value']:,} rows was analyzed: all figures are exact."
    else:
        text = (
            f"Row count, missing values and min/max of numbers and times are exact. Other figures "
            "(marked ≈) are "
            f"estimated from a reproducible sample of {sample['rows']:,} rows, seed {sample['seed']}, "
            f"method: {sample['method']} ({sample['blocks_read']:,} of {sample['blocks_total']:,} row "
            "groups). "
            "Run with --exact for exact figures."
        )
    warnings = "".join(
        f"<div class='warn'>Sampling may be biased for column <b>{_e(w['column'])}</b>: "
        f"{_e(w['reason'])}.</div>"
        for w in sample.get("warnings", [])
    )
    return f"<section id='sampling'><h2>Sampling</h2><p>{_e(text)}</p>{warnings}</section>"


def render(stats: dict[str, Any], scatter: dict[str, Any]) -> str:
    """The full HTML page for a report's statistics and its scatter rows."""
    template, script = _assets()
    columns = stats["columns"]
    body = (
        _sampling_section(stats)
        + _issues_section(stats["issues"])
        + _label_section(stats.get("label"))
        + "<section id='columns'><h2>Columns</h2><div class='grid'>"
        + "".join(_column_card(c) for c in columns)
        + "</div></section>"
    )
    points = len(next(iter(scatter.get("columns", {}).values()), []))
    note = f"{points:,} rows drawn at random from the sample (seed {stats['sample']['seed']})"
    if scatter.get("label"):
        note += f", coloured by {scatter['label']}"
    subtitle = (
        f"{stats['rows']['value']:,} rows × {len(columns)} columns · {len(stats['issues'])} issues · "
        f"created {stats['created']} · aiforge {stats['aiforge_version']}"
    )
    values = {
        "title": _e(stats["subject"]),
        "subtitle": _e(subtitle),
        "body": body,
        "scatter_note": _e(note),
        "scatter_json": _json_in_script(scatter),
        "report_js": _js_in_script(script),
    }
    # One pass over the template: substituted text (user data) is never scanned for placeholders again.
    return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], template)
