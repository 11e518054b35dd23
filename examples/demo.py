"""The end-to-end demo behind `make demo`: warehouse -> snapshot -> report -> feature vectors, and label cleaning.

It builds a SQLite warehouse from scikit-learn's bundled digits dataset (nothing is downloaded), dumps it into the
workspace (AIFORGE_HOME, default ./.aiforge), analyzes it, and turns it into standardized feature vectors with a
train/valid/test split. Then it flips 20% of the labels in a copy of the table, dumps that, lets PICO correct them,
and prints the label accuracy before and after. Last, it scores a tiny OCR result with PopEval and the classic IoU
cascade, where one word read as two boxes shows how they disagree. Then `aiforge train` runs the trainer in
examples/digits_trainer as a job with a deadline: calibration runs on fractions of the data pick the fewest CPUs that
meet it, the model is exported to ONNX, checked and registered, and the demo points the `production` alias at it.
Last, it serves digits@production (APS front server with a handler that reuses transform.json, in front of the ONNX
inference server), sends raw records and prints a short load test. Run it again and every snapshot and model gets a
new version.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import yaml

import aiforge

PIXELS = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]


def build_warehouse(path: Path) -> int:
    """Write the digits dataset into a SQLite table ``digits`` (id, 64 pixel columns, label); return its rows."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = PIXELS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        columns = ", ".join(f"{p} INTEGER" for p in pixels)
        conn.execute(f"CREATE TABLE digits (id INTEGER PRIMARY KEY, {columns}, label INTEGER)")
        rows = [(i, *map(int, x), int(y)) for i, (x, y) in enumerate(zip(digits.data, digits.target, strict=True))]
        conn.executemany(f"INSERT INTO digits VALUES ({', '.join('?' * (len(pixels) + 2))})", rows)
    return len(rows)


def add_noisy_copy(path: Path, fraction: float = 0.2, seed: int = 0) -> int:
    """Copy ``digits`` to ``digits_noisy`` with ``fraction`` of the labels flipped to another class at random."""
    rng = np.random.default_rng(seed)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE IF EXISTS digits_noisy")
        conn.execute("CREATE TABLE digits_noisy AS SELECT * FROM digits")
        ids = [row[0] for row in conn.execute("SELECT id FROM digits ORDER BY id")]
        flipped = rng.choice(ids, size=int(fraction * len(ids)), replace=False)
        offsets = rng.integers(1, 10, size=len(flipped))  # never the same class
        conn.executemany(
            "UPDATE digits_noisy SET label = (label + ?) % 10 WHERE id = ?",
            [(int(o), int(i)) for o, i in zip(offsets, flipped, strict=True)],
        )
    return len(flipped)


def main() -> None:
    workspace = aiforge.Workspace()
    warehouse = workspace.home / "demo" / "warehouse.sqlite"
    rows = build_warehouse(warehouse)
    print(f"1. warehouse: {rows} rows of scikit-learn's digits in {warehouse}")

    start = time.perf_counter()
    snapshot = aiforge.dump(
        f"sqlite:///{warehouse}", query="SELECT * FROM digits", name="digits", workspace=workspace
    )
    print(f"2. dump:      {snapshot.ref}, {snapshot.rows} rows x {len(snapshot.columns)} columns "
          f"in {time.perf_counter() - start:.2f} s -> {snapshot.path}")

    start = time.perf_counter()
    report = aiforge.analyze(snapshot, label="label", workspace=workspace)
    html, stats = report.save(workspace=workspace)
    print(f"3. analyze:   {time.perf_counter() - start:.2f} s")
    print("\n" + report.summary_text() + "\n")
    print(f"Report: {html}\nStats:  {stats}\n")

    spec_path = write_feature_spec(workspace.home / "demo" / "digits_features.yaml", snapshot.ref)
    start = time.perf_counter()
    features = aiforge.batch(spec_path, workspace=workspace)
    print(f"4. batch:     {features.ref}, {features.rows} rows x {len(features.feature_names)} features "
          f"{features.manifest['splits']} in {time.perf_counter() - start:.2f} s")
    X, _ = features.to_numpy("train")
    record = snapshot.to_arrow().slice(0, 1).to_pylist()[0]
    served = features.transform().transform_record(record)
    table = features.to_arrow()
    trained = table.filter(table.column("id").to_numpy() == record["id"]).column("features")[0].as_py()
    same = np.allclose(served, np.asarray(trained, dtype=np.float32))
    print(f"   train matrix {X.shape}; one raw record through transform.json equals its training row: {same}")

    flipped = add_noisy_copy(warehouse)
    noisy = aiforge.dump(
        f"sqlite:///{warehouse}", query="SELECT * FROM digits_noisy ORDER BY id", name="digits_noisy",
        workspace=workspace,
    )
    start = time.perf_counter()
    result = aiforge.clean(noisy, label="label", method="pico", workspace=workspace, n_jobs=2)
    truth = np.asarray(snapshot.to_arrow().sort_by("id").column("label").to_pylist())
    cleaned = result.snapshot.to_arrow().sort_by("id")
    before = np.mean(np.asarray(cleaned.column("label_given").to_pylist()) == truth)
    after = np.mean(np.asarray(cleaned.column("label").to_pylist()) == truth)
    print(f"5. clean:     {flipped} of {len(truth)} labels flipped in {noisy.ref}; PICO changed {result.changed} "
          f"in {time.perf_counter() - start:.1f} s -> {result.snapshot.ref}")
    print(f"   label accuracy {before:.3f} before, {after:.3f} after; report: {result.html_path}")

    gt_dir, pred_dir = write_ocr_example(workspace.home / "demo" / "ocr")
    from aiforge.evaluate.ocr import evaluate_dirs

    ocr = evaluate_dirs(gt_dir, pred_dir, metric="all").to_dict()
    print(f"6. ocr-eval:  GT 'Riverside' read as 'River' + 'side' (plus one word read right): "
          f"PopEval H {ocr['popeval']['hmean']:.3f}, cascade WEM H {ocr['cascade']['wem']['hmean']:.3f}, "
          f"1-NED H {ocr['cascade']['ned']['hmean']:.3f}")

    serve_demo(workspace, features, snapshot)

    print(f"\nSame from the shell: aiforge dump sqlite:///{warehouse} -q 'SELECT * FROM digits' -n digits")
    print(f"                     aiforge analyze {snapshot.ref} --label label --out digits.html")
    print(f"                     aiforge batch {spec_path}")
    print(f"                     aiforge clean {noisy.ref} --label label")
    print(f"                     aiforge ocr-eval {gt_dir} {pred_dir} --metric all")
    print(f"                     aiforge train {workspace.home / 'demo' / 'digits_train.yaml'} --plan")
    print(f"                     aiforge train {workspace.home / 'demo' / 'digits_train.yaml'}")
    print("                     aiforge models alias digits@v1 production")
    print(f"                     aiforge serve up digits@production --handler "
          f"{workspace.home / 'demo' / 'digits_handler.py'}")
    print("                     aiforge loadtest http://127.0.0.1:8000/predict --payload record.json --concurrency 8 "
          "--duration 3")


HANDLER = '''"""The demo's APS handler: raw digits records in, the digit and its confidence out."""

import numpy as np

from aiforge.serve import TransformHandler


class DigitsHandler(TransformHandler):
    source = {features_ref!r}  # the BATCH transform: records get exactly their training features

    def postprocess(self, response, context):
        outputs = response.as_dict()
        probabilities = outputs["probabilities"]
        return {{
            "digit": outputs["label"].tolist(),
            "confidence": np.round(probabilities.max(axis=1).astype(float), 4).tolist(),
            "model": f"{{response.model_name}}@v{{response.model_version}}",
        }}
'''


def serve_demo(workspace: aiforge.Workspace, features: aiforge.FeatureSnapshot, snapshot: aiforge.Snapshot) -> None:
    """Train through `aiforge train` with a deadline plan, promote to production, serve, call, load-test it."""
    import socket

    from rich.console import Console

    from aiforge.serve import ServeSettings, loadtest, up
    from aiforge.workspace import Registry

    job = write_train_spec(workspace.home / "demo" / "digits_train.yaml", features.ref)
    start = time.perf_counter()
    result = aiforge.train(job, workspace=workspace)
    plan, run, model = result.plan, result.run, result.model
    print(f"7. train:     {job}: deadline in 10 min; {len(plan.samples)} calibration runs chose {plan.cpus:g} CPUs "
          f"(predicted {plan.predicted_s:.1f} s, 90% within {plan.upper_s:.1f} s)")
    print(f"   run {run.id} took {run.info['actual_s']:.1f} s; valid accuracy "
          f"{model.metrics['valid_accuracy']:.3f}; registered {model.ref} "
          f"({time.perf_counter() - start:.1f} s in all, calibration included)")
    registry = Registry(workspace)
    registry.set_alias("digits", "production", model.version)
    production = registry.get("digits@production")
    handler = workspace.home / "demo" / "digits_handler.py"
    handler.write_text(HANDLER.format(features_ref=features.ref), encoding="utf-8")

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    settings = ServeSettings(model_repo=registry.store.root, model="digits", version=str(production.version),
                             handler=str(handler), aps_port=free_port(), http_port=free_port(), grpc_port=free_port())
    records = snapshot.to_arrow().sort_by("id").slice(0, 5).to_pylist()
    import httpx

    with up(settings) as stack:
        url = stack.urls["aps"] + "/predict"
        print(f"8. serve:     digits@production = {production.ref}; APS {url} -> inference server "
              f"{stack.urls['inference_grpc']} (gRPC)")
        answer = httpx.post(url, json=[{k: v for k, v in r.items() if k != "label"} for r in records]).json()
        print(f"   5 raw records -> {answer}; true labels {[r['label'] for r in records]}")
        payload = {k: v for k, v in records[0].items() if k != "label"}
        result_load = loadtest(url, payload, concurrency=8, duration_s=3.0, warmup_s=0.5)
        Console().print(result_load.table())


def write_train_spec(path: Path, features_ref: str) -> Path:
    """The TRAIN job: the demo's trainer folder on the feature snapshot, due in ten minutes."""
    spec = {
        "name": "digits",
        "code": str(Path(__file__).resolve().parent / "digits_trainer"),
        "entrypoint": "train.py:fit",
        "data": {"features": features_ref},
        "params": {"C": 1.0},
        "deadline": "10m",
        "resources": {"memory": "2GiB"},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def write_ocr_example(folder: Path) -> tuple[Path, Path]:
    """One image: GT 'Riverside' and 'Park'; the prediction splits 'Riverside' into two boxes and reads 'Park'."""
    gt_dir, pred_dir = folder / "gt", folder / "pred"
    gt_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    (gt_dir / "sign.txt").write_text(
        "10 10 190 10 190 50 10 50##::Riverside\n210 10 300 10 300 50 210 50##::Park\n", encoding="utf-8"
    )
    (pred_dir / "sign.txt").write_text(
        "10 10 105 10 105 50 10 50##::River\n110 10 190 10 190 50 110 50##::side\n"
        "210 10 300 10 300 50 210 50##::Park\n",
        encoding="utf-8",
    )
    return gt_dir, pred_dir


def write_feature_spec(path: Path, snapshot_ref: str) -> Path:
    """A BATCH spec for digits: drop bad rows, standardize every pixel, split 80/10/10 by a hash of the id."""
    spec = {
        "input": snapshot_ref,
        "output": "digits_features",
        "id": "id",
        "label": "label",
        "split": {"train": 0.8, "valid": 0.1, "test": 0.1, "seed": 0},
        "drop": [{"issue": "invalid_values"}, {"where": "label IS NULL"}],
        "features": [{"numeric": {"column": p, "scale": "standardize"}} for p in PIXELS],
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


if __name__ == "__main__":
    main()
