"""An exported deployment carries what `serve up` ran: the handler file and the BATCH transform (issue 12)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import kubernetes_validate
import numpy as np
import pyarrow as pa
import pytest
import yaml

from aiforge.batch.transform import Transform
from aiforge.errors import InvalidInput
from aiforge.serve.aps.handler import Context, TransformHandler, load_handler
from aiforge.serve.deploy.bundle import CONFIGMAP_LIMIT, MOUNT, aps_bundle
from aiforge.serve.deploy.manifests import k8s_manifests, kserve_manifest, write_manifests
from aiforge.serve.deploy.settings import ServeSettings

RECORD = {"age": 31, "income": 2500.0}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    (root / "digits" / "1").mkdir(parents=True)
    (root / "digits" / "1" / "model.onnx").write_bytes(b"onnx")
    return root


@pytest.fixture
def transform_file(tmp_path: Path) -> Path:
    table = pa.table({"age": [20, 30, 40], "income": [1000.0, 2000.0, 6000.0]})
    features = [{"numeric": {"column": "age", "scale": "standardize"}}, {"numeric": {"column": "income"}}]
    folder = tmp_path / "features"
    folder.mkdir()
    return Transform(features=features).fit(table).save(folder)


@pytest.fixture
def handler_file(tmp_path: Path, transform_file: Path) -> Path:
    path = tmp_path / "src" / "digits_handler.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(f"""\
        from aiforge.serve import TransformHandler

        class Digits(TransformHandler):
            source = {str(transform_file)!r}
        """))
    return path


def settings(repo: Path, handler: str | None) -> ServeSettings:
    return ServeSettings(model_repo=repo, model="digits", handler=handler, image="reg/aiforge:1")


def test_a_handler_file_and_its_transform_ship_in_a_configmap(repo: Path, handler_file: Path,
                                                               transform_file: Path, tmp_path: Path) -> None:
    objects = k8s_manifests(settings(repo, f"{handler_file}:Digits"))
    kinds = [o["kind"] for o in objects]
    assert kinds == ["Deployment", "Service", "Deployment", "Service", "ConfigMap"]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.37.0", strict=True)
    configmap = objects[-1]
    assert configmap["metadata"]["name"] == "digits-aps-files"
    assert set(configmap["data"]) == {"digits_handler.py", "transform.json"}
    assert configmap["data"]["digits_handler.py"] == handler_file.read_text()
    aps = objects[2]["spec"]["template"]["spec"]
    (container,) = aps["containers"]
    assert container["args"][:8] == ["serve", "aps", f"{MOUNT}/digits_handler.py:Digits", "--predictor",
                                     "grpc://digits-inference:8081", "--model", "digits", "--transform"]
    assert container["args"][8] == f"{MOUNT}/transform.json"
    assert container["volumeMounts"] == [{"name": "aps-files", "mountPath": MOUNT, "readOnly": True}]
    assert aps["volumes"] == [{"name": "aps-files", "configMap": {"name": "digits-aps-files"}}]
    assert "volumes" not in objects[0]["spec"]["template"]["spec"]  # the inference pods need none of it

    # what the pod does with the shipped files gives the very features the local handler gives
    mount = tmp_path / "mnt"
    mount.mkdir()
    for name, text in configmap["data"].items():
        (mount / name).write_text(text)
    transform_file.unlink()  # the pod has no access to the local workspace
    in_pod = load_handler(f"{mount}/digits_handler.py:Digits", transform=str(mount / "transform.json"))
    assert isinstance(in_pod, TransformHandler)
    in_pod.load()
    local = Transform.from_dict(yaml.safe_load(configmap["data"]["transform.json"]))
    got = in_pod.preprocess(RECORD, Context("r", "digits"))["input"]
    np.testing.assert_array_equal(got[0], local.transform_record(RECORD))


def test_a_transform_ref_handler_ships_only_the_transform(repo: Path, transform_file: Path) -> None:
    bundle = aps_bundle(settings(repo, f"transform:{transform_file}"))
    assert bundle.handler == f"transform:{MOUNT}/transform.json"
    assert bundle.transform is None
    assert list(bundle.files) == ["transform.json"]
    isvc = kserve_manifest(settings(repo, f"transform:{transform_file}"), bundle)
    transformer = isvc["spec"]["transformer"]
    assert f"serve aps transform:{MOUNT}/transform.json " in transformer["containers"][0]["command"][2]
    assert transformer["volumes"] == [{"name": "aps-files", "configMap": {"name": "digits-aps-files"}}]
    assert "volumes" not in isvc["spec"]["predictor"]


def test_a_handler_inside_the_model_repository_is_named_there_not_shipped(repo: Path) -> None:
    (repo / "handler.py").write_text("from aiforge.serve import Handler\n\nclass Plain(Handler): ...\n")
    bundle = aps_bundle(settings(repo, f"{repo}/handler.py:Plain"))
    assert bundle.handler == "/mnt/models/handler.py:Plain"
    assert bundle.files == {}
    assert bundle.carries == ["APS handler: /mnt/models/handler.py:Plain, in the model repository"]
    assert [o["kind"] for o in k8s_manifests(settings(repo, f"{repo}/handler.py:Plain"), bundle)][-1] == "Service"


def test_the_header_says_what_the_deployment_carries(repo: Path, handler_file: Path, tmp_path: Path) -> None:
    (path,) = write_manifests(settings(repo, f"{handler_file}:Digits"), tmp_path / "out", kind="kserve")
    text = path.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header[1] == "# No model_pvc: the image reg/aiforge:1 must hold the model repository at /mnt/models."
    assert header[2].startswith(f"# APS handler: {handler_file}:Digits shipped as {MOUNT}/digits_handler.py:Digits")
    assert header[3].startswith("# BATCH transform: ") and header[3].endswith(
        f"shipped as {MOUNT}/transform.json (the APS reads it there: --transform)")
    assert header[4] == (f"# Shipped in the ConfigMap digits-aps-files (at {MOUNT} in the APS pods): "
                         "digits_handler.py, transform.json.")
    documents = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in documents] == ["InferenceService", "ConfigMap"]

    (plain,) = write_manifests(settings(repo, None), tmp_path / "plain", kind="k8s")
    assert "# APS handler: the default one" in plain.read_text()


def test_files_over_a_configmaps_limit_are_refused(repo: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    big.write_text("from aiforge.serve import Handler\n\nclass Big(Handler): ...\n" + "#" * CONFIGMAP_LIMIT + "\n")
    with pytest.raises(InvalidInput, match=r"the APS files \(big.py\) are 1,000,\d{3} bytes, over a ConfigMap's limit"):
        aps_bundle(settings(repo, f"{big}:Big"))


def test_a_handler_that_does_not_load_fails_the_export(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("class NotAHandler: ...\n")
    with pytest.raises(InvalidInput, match="is not a handler"):
        aps_bundle(settings(repo, f"{tmp_path / 'broken.py'}:NotAHandler"))


def test_serve_aps_transform_needs_a_transform_handler() -> None:
    with pytest.raises(InvalidInput, match="--transform is for a TransformHandler; default is a Handler"):
        load_handler("default", transform="/mnt/aiforge/transform.json")


def test_cli_serve_aps_transform_on_a_plain_handler_is_one_error_line() -> None:
    from typer.testing import CliRunner

    from aiforge.cli import app

    result = CliRunner().invoke(app, ["serve", "aps", "default", "--predictor", "grpc://127.0.0.1:9",
                                      "--model", "m", "--transform", "t.json"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: --transform is for a TransformHandler; default is a Handler, which reads no transform")
