"""The CLEAN report: a JSON summary and one self-contained HTML page (inline SVG and tables, no network)."""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np

__all__ = ["render_html", "summarise"]

EXAMPLES = 20
CONFUSIONS = 10


def summarise(cleaner: Any, given: np.ndarray, subject: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready report of a fitted cleaner over labels ``given`` (N,)."""
    classes = cleaner.classes_
    final = np.asarray(cleaner.corrected_labels_)
    changed = given != final
    issues = cleaner.issues_
    pairs = issues.groupby(["given_label", "suggested_label"]).size().sort_values(ascending=False)
    posterior = cleaner.label_posterior_
    examples = []
    for row in issues.head(EXAMPLES).itertuples(index=False):
        probs = (
            np.asarray(posterior[int(row.index)].todense()).ravel()
            if hasattr(posterior, "tocsr")
            else np.asarray(posterior[int(row.index)])
        )
        order = np.argsort(-probs, kind="stable")[:3]
        examples.append(
            {
                "index": int(row.index),
                "given": _plain(row.given_label),
                "suggested": _plain(row.suggested_label),
                "confidence": round(float(row.confidence), 4),
                "iteration": int(row.iteration),
                "posterior": {str(_plain(classes[i])): round(float(probs[i]), 4) for i in order},
            }
        )
    before = {str(_plain(c)): int((given == c).sum()) for c in classes}
    after = {str(_plain(c)): int((final == c).sum()) for c in classes}
    return {
        "subject": subject,
        **meta,
        "rows": len(given),
        "classes": [_plain(c) for c in classes],
        "changed": int(changed.sum()),
        "changed_fraction": round(float(changed.mean()), 6),
        "iterations": int(cleaner.n_iter_),
        "changed_per_iteration": [
            int((a != b).sum()) for a, b in zip(cleaner.history_[:-1], cleaner.history_[1:], strict=True)
        ],
        "top_confusions": [
            {"given": _plain(g), "suggested": _plain(s), "count": int(n)}
            for (g, s), n in pairs.head(CONFUSIONS).items()
        ],
        "examples": examples,
        "distribution": {"before": before, "after": after},
        "transition": np.round(np.asarray(cleaner.transition_), 4).tolist() if len(classes) <= 50 else None,
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _bars(before: dict[str, int], after: dict[str, int]) -> str:
    names = list(before)[:60]
    top = max([*before.values(), *after.values(), 1])
    width, height, gap = 14, 120, 6
    group = 2 * width + gap
    parts = []
    for i, name in enumerate(names):
        for j, (counts, cls) in enumerate(((before, "b"), (after, "a"))):
            h = (height - 10) * counts[name] / top
            x = i * group + j * width
            parts.append(
                f'<rect class="{cls}" x="{x}" y="{height - h:.1f}" width="{width - 1}" height="{h:.1f}">'
                f"<title>{_e(name)} {'before' if cls == 'b' else 'after'}: {counts[name]:,}</title></rect>"
            )
        parts.append(f'<text x="{i * group + width}" y="{height + 12}" text-anchor="middle">{_e(name)[:6]}</text>')
    return (
        f'<svg width="{len(names) * group}" height="{height + 16}" role="img" aria-label="label distribution">'
        + "".join(parts)
        + "</svg>"
    )


def _per_iteration(report: dict[str, Any]) -> str:
    """The labels each iteration changed; said plainly when they add up to more than the net change, since a label
    can change in several iterations, or back to its given value."""
    steps = report["changed_per_iteration"]
    if len(steps) <= 1:
        return ""
    text = f" Labels changed in each iteration: {', '.join(f'{n:,}' for n in steps)}"
    if sum(steps) != report["changed"]:
        text += (f" ({sum(steps):,} changes in all: some labels changed in more than one iteration or went back to "
                 f"their given value, so {report['changed']:,} differ from the given labels at the end)")
    return text + "."


def _imputed(impute: dict[str, Any] | None) -> str:
    """One paragraph on the missing feature values the checkers saw filled; empty when none were."""
    if not impute or not impute.get("filled"):
        return ""
    parts = []
    for name, entry in impute["filled"].items():
        value = f" with {entry['value']:g}" if "value" in entry else ""
        parts.append(f"<code>{_e(name)}</code> {entry['missing']:,}{value}")
    return (
        f"<p>Missing feature values, filled with the {_e(impute['strategy']).replace('_', ' ')} of their column over "
        f"the rows cleaned, for the checkers only (the snapshot keeps them missing): {', '.join(parts)}.</p>"
    )


def render_html(report: dict[str, Any]) -> str:
    """One HTML page for ``report`` (what :func:`summarise` returns)."""
    rows = "".join(
        f"<tr><td>{_e(c['given'])}</td><td>{_e(c['suggested'])}</td><td>{c['count']:,}</td></tr>"
        for c in report["top_confusions"]
    )
    examples = "".join(
        f"<tr><td>{x['index']}</td><td>{_e(x['given'])}</td><td>{_e(x['suggested'])}</td>"
        f"<td>{x['confidence']:.3f}</td><td>{x['iteration']}</td>"
        f"<td>{_e(', '.join(f'{k}: {v:.3f}' for k, v in x['posterior'].items()))}</td></tr>"
        for x in report["examples"]
    )
    dist = report["distribution"]
    dist_rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{v:,}</td><td>{dist['after'][k]:,}</td><td>{dist['after'][k] - v:+,}</td></tr>"
        for k, v in dist["before"].items()
    )
    payload = json.dumps(report, default=str).replace("<", "\\u003c")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aiforge clean: {_e(report["subject"])}</title>
<style>
body{{font:14px system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}} .b{{fill:#9ab}} .a{{fill:#e73}}
svg text{{font-size:10px}} .big{{font-size:1.4em}}
</style></head><body>
<h1>Label cleaning: {_e(report["subject"])}</h1>
<p class="big"><b>{report["changed"]:,}</b> of {report["rows"]:,} labels changed
({100 * report["changed_fraction"]:.2f}%) by <b>{_e(report["method"])}</b> with checker {_e(report["checker"])}
in {report["iterations"]} iteration(s).{_per_iteration(report)}</p>
<p>Label column <code>{_e(report["label"])}</code>; the given labels are kept in <code>label_given</code>
of {_e(report.get("output") or "the output")}.</p>
{_imputed(report.get("impute"))}
<h2>Top confusions (given → suggested)</h2>
<table><tr><th>given</th><th>suggested</th><th>examples</th></tr>{rows}</table>
<h2>Examples with their posteriors (most confident first)</h2>
<table><tr><th>row</th><th>given</th><th>suggested</th><th>confidence</th><th>iteration</th><th>top posteriors</th></tr>
{examples}</table>
<h2>Label distribution before (grey) and after (orange)</h2>
{_bars(dist["before"], dist["after"])}
<table><tr><th>label</th><th>before</th><th>after</th><th>change</th></tr>{dist_rows}</table>
<script type="application/json" id="report">{payload}</script>
</body></html>
"""
