"""The compact HTML summaries a notebook shows for every result (``_repr_html_``): the exact key facts, values
escaped, nothing loaded from outside, and a size that does not grow with the data."""

from __future__ import annotations

import html
import sqlite3
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import aiforge
from aiforge import reprs
from aiforge.batch import FeatureSnapshot
from aiforge.evaluate.ocr import evaluate_dirs
from aiforge.serve.sizing.load import LoadTestResult
from aiforge.serve.sizing.planner import CapacityPlan, CapacityPoint
from aiforge.workspace import Snapshot, Workspace

RELEASE = Path(__file__).parent / "workspace" / "data" / "release-0.1.0"


class _Summary(HTMLParser):
    """The title and the tables (rows of cell texts, unescaped) of one summary; the stylesheet is skipped."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.tables: list[list[list[str]]] = []
        self._in: str | None = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div" and ("class", "t") in attrs:
            self._in = "title"
        elif tag == "style":
            self._in = "style"
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
            self._in = "cell"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("div", "style", "td", "th"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "cell":
            self.tables[-1][-1][-1] += data

    @property
    def facts(self) -> dict[str, str]:
        return dict(self.tables[0])  # type: ignore[arg-type]


def _self_contained(page: str) -> None:
    """Nothing from outside, no script, and one summary element around it all."""
    assert page.startswith('<div class="aiforge-summary"><style>') and page.endswith("</div>")
    for marker in ("<script", "src=", "href=", "url(", "@import", "<link", "<iframe"):
        assert marker not in page, marker


@pytest.fixture
def orders(workspace: Workspace, tmp_path: Path) -> Snapshot:
    """40 orders in SQLite: amounts 0, 1.5, ..., 58.5 (4 below 5), three countries, a column named <script>."""
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute('CREATE TABLE orders (order_id INTEGER, amount REAL, country TEXT, "<script>" TEXT, '
                     "returned INTEGER)")
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
                         [(i, 1.5 * i, ("KR", "JP", "US")[i % 3], "<b>x</b>", int(i % 4 == 0)) for i in range(40)])
    return aiforge.dump(f"sqlite:///{db}", query="SELECT * FROM orders", name="orders", workspace=workspace)


def test_snapshot_shows_its_facts_and_typed_columns(orders: Snapshot) -> None:
    page = orders._repr_html_()
    _self_contained(page)
    summary = _Summary(page)
    assert summary.title == "Snapshot orders@v1"
    size = orders.manifest["bytes"]
    assert 1024 <= size < 1024**2
    assert summary.facts == {
        "rows": "40", "columns": "5", "bytes": f"{size / 1024:.1f} KiB", "source": orders.manifest["source"],
        "created": orders.created, "engine": "local",
    }
    assert summary.tables[1] == [["column", "type"], ["order_id", "int64"], ["amount", "double"],
                                 ["country", "string"], ["<script>", "string"], ["returned", "int64"]]
    assert "<td>&lt;script&gt;</td>" in page


def test_snapshot_summary_is_bounded_for_10000_columns(tmp_path: Path) -> None:
    long_name = "q" * 5000
    schema = [{"name": long_name, "type": "string"}] + [{"name": f"c{i}", "type": "double"} for i in range(9999)]
    manifest = {"schema": schema, "rows": 10**9, "bytes": 5 * 1024**4, "created": "2026-01-01T00:00:00Z",
                "source": "s3://bucket/" + "k" * 10_000, "engine": "spark", "master": "spark://head:7077"}
    page = Snapshot("wide", 7, tmp_path, manifest)._repr_html_()
    assert len(page) < 4_000
    _self_contained(page)
    summary = _Summary(page)
    assert summary.facts["rows"] == "1,000,000,000" and summary.facts["columns"] == "10,000"
    assert summary.facts["bytes"] == "5.0 TiB" and summary.facts["engine"] == "spark (spark://head:7077)"
    source = summary.facts["source"]
    assert len(source) == reprs.MAX_CELL and source.startswith("s3://bucket/kk") and "…" in source
    columns = summary.tables[1]
    assert len(columns) == 1 + 20 + 1  # header, the first 20 columns, the line that counts the rest
    assert columns[1][0] == "q" * 59 + "…" + "q" * 60 and columns[2] == ["c0", "double"]
    assert columns[20] == ["c18", "double"] and columns[-1] == ["… 9,980 more columns"]


def test_feature_snapshot_adds_features_splits_and_drops(orders: Snapshot, workspace: Workspace) -> None:
    spec = {"input": "orders", "output": "orders_features", "id": "order_id", "label": "returned",
            "drop": [{"where": "amount < 5"}],
            "features": [{"numeric": {"column": "amount", "scale": "standardize"}},
                         {"categorical": {"column": "country", "encoding": "onehot"}}]}
    feats = aiforge.batch(spec, workspace=workspace)
    page = feats._repr_html_()
    _self_contained(page)
    summary = _Summary(page)
    splits = feats.manifest["splits"]
    assert summary.title == "Feature snapshot orders_features@v1"
    assert summary.facts["rows"] == "36" and summary.facts["rows in"] == "40" and summary.facts["source"] == "orders@v1"
    assert summary.facts["label"] == "returned" and summary.facts["dropped"] == "4"
    assert summary.facts["features"] == "5: " + ", ".join(feats.feature_names)
    assert summary.facts["splits"] == f"train {splits['train']} · valid {splits['valid']} · test {splits['test']}"
    assert sum(splits.values()) == 36
    assert summary.tables[1] == [["drop rule", "rows"], ["where: amount < 5", "4"]]
    assert "amount &lt; 5" in page
    assert summary.tables[2][-1] == ["features", "fixed_size_list<item: float>[5]"]


def test_many_features_and_rules_are_cut(tmp_path: Path) -> None:
    manifest = {"kind": "features", "schema": [], "rows": 1, "bytes": 10, "created": "c", "source": "s@v1",
                "n_features": 5000, "feature_names": [f"f{i}" for i in range(5000)], "splits": {"train": 1},
                "drops": [{"rule": f"where: x{i} < 0", "rows": 1} for i in range(50)]}
    page = FeatureSnapshot("f", 1, tmp_path, manifest)._repr_html_()
    assert len(page) < 4_000
    summary = _Summary(page)
    assert summary.facts["features"] == "5,000: f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, … (+4,990 more)"
    assert summary.facts["dropped"] == "50" and summary.tables[1][-1] == ["… 30 more rules"]


def test_a_snapshot_written_by_release_0_1_0_renders(tmp_path: Path) -> None:
    import shutil

    home = tmp_path / "home"
    shutil.copytree(RELEASE, home, ignore=shutil.ignore_patterns("README.md"))
    ws = Workspace(home)
    features = FeatureSnapshot.from_snapshot(ws.get_snapshot("orders_features@v1"))
    summary = _Summary(features._repr_html_())
    assert summary.facts["splits"] == "train 91 · valid 14 · test 15" and summary.facts["dropped"] == "0"
    assert len(summary.tables) == 2  # no drop rules, no table for them
    assert _Summary(ws.get_snapshot("orders")._repr_html_()).facts["rows"] == "120"


def test_clean_result_shows_changes_method_confusions_and_report(workspace: Workspace) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-4, 1, 100), rng.normal(4, 1, 100)])
    given = np.array(["<cat>"] * 100 + ["dog"] * 100, dtype=object)
    given[[3, 17, 41]] = "dog"  # clearly cats, labelled dog
    given[[150, 160]] = "<cat>"
    table = pa.table({"x": x, "y": -x, "animal": given.tolist()})
    result = aiforge.clean(table, label="animal", method="split", workspace=workspace)
    page = result._repr_html_()
    _self_contained(page)
    summary = _Summary(page)
    report = result.report
    assert result.changed > 0
    assert summary.title == "CLEAN table → clean@v1"
    assert summary.facts == {
        "label": "animal",
        "changed": f"{result.changed} of 200 labels ({100 * result.changed / 200:.2f}%)",
        "method": "split (checker knn, seed 0)",
        "iterations": str(report["iterations"]),
        "engine": "local",
        "report": _Summary(f'<table><tr><td>{reprs.cell(str(result.html_path))}</td></tr></table>').tables[0][0][0],
    }
    assert summary.facts["report"].endswith("report.html")
    confusions = [[str(c["given"]), str(c["suggested"]), str(c["count"])] for c in report["top_confusions"]]
    assert summary.tables[1] == [["given", "suggested", "rows"], *confusions]
    assert {tuple(row[:2]) for row in confusions} <= {("dog", "<cat>"), ("<cat>", "dog")}
    assert "&lt;cat&gt;" in page and "<cat>" not in page


def test_ocr_evaluation_shows_each_metric(tmp_path: Path) -> None:
    gt, pred = {"a": "Riverside", "<b>": "Park", "c": "Hill"}, {"a": "Riverside", "c": "Hiil"}
    for side, lines in (("gt", gt), ("pred", pred)):
        (tmp_path / side).mkdir()
        for name, text in lines.items():
            (tmp_path / side / f"{name}.txt").write_text(f"0 0 90 0 90 10 0 10##::{text}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the missing prediction file is what this test is about
        ev = evaluate_dirs(tmp_path / "gt", tmp_path / "pred", metric="all")
    page = ev._repr_html_()
    _self_contained(page)
    summary = _Summary(page)
    assert summary.title == "OCR evaluation of 3 images"
    assert ev.missing_predictions == ("<b>.txt",)
    assert summary.facts == {"images": "3", "missing predictions": "1: <b>.txt"}
    pop, cas = ev.popeval, ev.cascade
    assert pop is not None and cas is not None

    def row(name: str, p: float, r: float, h: float) -> list[str]:
        return [name, f"{p:.4g}", f"{r:.4g}", f"{h:.4g}"]

    assert summary.tables[1] == [
        ["metric", "precision", "recall", "H-mean"],
        row("PopEval", pop.precision, pop.recall, pop.hmean),
        row("detection (IoU)", cas.detection.precision, cas.detection.recall, cas.detection.hmean),
        row("WEM", cas.wem.precision, cas.wem.recall, cas.wem.hmean),
        row("1-NED", cas.ned.precision, cas.ned.recall, cas.ned.hmean),
    ]
    assert summary.tables[1][3] == ["WEM", "0.5", "0.3333", "0.4"]  # 1 exact word of 2 predicted and 3 in the GT
    assert "&lt;b&gt;" in page
    only_pop = _Summary(evaluate_dirs(tmp_path / "pred", tmp_path / "pred")._repr_html_())
    assert only_pop.tables[1] == [["metric", "precision", "recall", "H-mean"], ["PopEval", "1", "1", "1"]]


def test_load_test_result_shows_counts_errors_and_latency() -> None:
    result = LoadTestResult(
        url="http://127.0.0.1:8000/predict?<x>", method="POST", mode="closed", concurrency=32, rate=None,
        requests=1000, ok=994, errors={"http_503": 5, "timeout": 1}, duration_s=10.0012, throughput_rps=99.388,
        latency_ms={"p50": 1.5, "p90": 2.25, "p99": 9.0, "max": 31.42, "mean": 1.75},
    )
    page = result._repr_html_()
    _self_contained(page)
    summary = _Summary(page)
    assert summary.title == "POST http://127.0.0.1:8000/predict?<x> (closed loop, concurrency 32)"
    assert summary.facts == {
        "requests": "1,000", "ok": "994", "errors: http_503": "5", "errors: timeout": "1", "error rate": "0.60%",
        "duration": "10.00 s", "throughput": "99.4 req/s", "latency p50": "1.50 ms", "latency p90": "2.25 ms",
        "latency p99": "9.00 ms", "latency max": "31.42 ms", "latency mean": "1.75 ms",
    }
    assert "predict?&lt;x&gt;" in page
    failed = LoadTestResult(url="http://x/", method="GET", mode="open", concurrency=None, rate=250.0, requests=10,
                            ok=0, errors={"connection": 10}, duration_s=1.0, throughput_rps=0.0,
                            latency_ms={k: None for k in ("p50", "p90", "p99", "max", "mean")})
    failed_summary = _Summary(failed._repr_html_())
    assert failed_summary.title == "GET http://x/ (open loop, rate 250/s)"
    assert failed_summary.facts["latency p99"] == "-" and failed_summary.facts["error rate"] == "100.00%"


def _point(offered: float, p99: float, ok: bool) -> CapacityPoint:
    return CapacityPoint(offered_rps=offered, achieved_rps=offered * 0.99, p50=p99 / 3, p90=p99 / 2, p99=p99,
                         error_rate=0.0, within_slo=ok, verdict="ok" if ok else "p99 over the SLO")


def test_capacity_plan_shows_the_recommendation_and_steps() -> None:
    points = [_point(400, 30.0, False), _point(100, 4.0, True), _point(200, 8.0, True)]
    plan = CapacityPlan(url="http://x/<y>", slo_p99_ms=10, target_qps=1000, headroom=0.8, cpus_per_replica=2,
                        points=points, max_qps_per_replica=200.0, replicas=7, cpus=14.0, limited_by="p99")
    page = plan._repr_html_()
    _self_contained(page)
    summary = _Summary(page)
    assert summary.title == "Capacity of http://x/<y> (SLO p99 <= 10 ms)"
    assert summary.facts == {"replicas": "7", "CPUs": "14 (2 per replica)",
                             "max per replica": "200.0 req/s (limited by p99)", "target": "1,000 req/s at 80% headroom"}
    assert summary.tables[1] == [
        ["offered req/s", "achieved req/s", "p50 ms", "p99 ms", "errors", "verdict"],
        ["100.0", "99.0", "1.33", "4.00", "0.00%", "ok"],
        ["200.0", "198.0", "2.67", "8.00", "0.00%", "ok"],
        ["400.0", "396.0", "10.00", "30.00", "0.00%", "p99 over the SLO"],
    ]
    assert "http://x/&lt;y&gt;" in page
    none = CapacityPlan(url="http://x/", slo_p99_ms=1, target_qps=5, headroom=1.0, cpus_per_replica=1,
                        points=[_point(10, 3.0, False)], max_qps_per_replica=None, replicas=None, cpus=None,
                        reason="p99 was 3.00 ms at the lowest rate tried")
    assert _Summary(none._repr_html_()).facts == {"plan": "SLO cannot be met: p99 was 3.00 ms at the lowest rate tried",
                                                   "target": "5 req/s at 100% headroom"}


@pytest.mark.parametrize("value", ["<script>alert(1)</script>", '" onmouseover="x', "a & b", "'\"<>&"])
def test_every_value_is_escaped(value: str, tmp_path: Path) -> None:
    manifest = {"schema": [{"name": value, "type": value}], "rows": 1, "bytes": 1, "created": value, "source": value,
                "engine": value}
    page = Snapshot("s", 1, tmp_path, manifest)._repr_html_()
    summary = _Summary(page)
    assert summary.facts["source"] == value and summary.tables[1][1] == [value, value]
    assert html.escape(value, quote=True) in page and value not in page
