"""ServeSettings validation; Kubernetes and KServe manifests validate and carry exactly the settings."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from aiforge.errors import InvalidInput
from aiforge.serve.deploy.manifests import dns_name, k8s_manifests, kserve_manifest, write_manifests
from aiforge.serve.deploy.settings import ServeSettings

K8S_VERSION = "1.37.0"  # the newest schema kubernetes_validate bundles


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A model repository layout: settings only check that <model>/<version>/model.onnx exists."""
    root = tmp_path / "models"
    for version in ("1", "2"):
        (root / "Churn_Model" / version).mkdir(parents=True)
        (root / "Churn_Model" / version / "model.onnx").write_bytes(b"onnx")
    (root / "handler.py").write_text("from aiforge.serve import Handler\n\nclass Churn(Handler): ...\n")
    return root


def _settings(repo: Path, **kw: Any) -> ServeSettings:
    base: dict[str, Any] = {"model_repo": repo, "model": "Churn_Model", "replicas": 3, "cpus": 2.0,
                            "memory": "512Mi", "aps_port": 9000, "http_port": 9080, "grpc_port": 9081,
                            "image": "registry.local/aiforge:1.2", "token_env": "CHURN_TOKEN"}
    return ServeSettings(**{**base, **kw})


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


# -- settings ---------------------------------------------------------------------------------------------------------


def test_settings_defaults_and_derived_values(repo: Path) -> None:
    settings = ServeSettings(model_repo=repo, model="Churn_Model")
    assert (settings.replicas, settings.cpus, settings.memory, settings.host) == (1, 1.0, "1Gi", "127.0.0.1")
    assert (settings.aps_port, settings.http_port, settings.grpc_port) == (8000, 8080, 8081)
    assert settings.model_repo == repo.resolve()
    assert settings.threads == 1
    assert ServeSettings(model_repo=repo, model="Churn_Model", cpus=0.4).threads == 1
    assert ServeSettings(model_repo=repo, model="Churn_Model", cpus=2.6).threads == 3
    assert settings.token is None
    assert (settings.max_restarts, settings.restart_window_s, settings.restart_backoff_s) == (5, 60.0, 0.5)
    assert settings.metrics_public is True


def test_metrics_public_reaches_both_servers_command_lines(repo: Path) -> None:
    from aiforge.serve.deploy.stack import aps_args, inference_args

    public = ServeSettings(model_repo=repo, model="Churn_Model")
    private = ServeSettings(model_repo=repo, model="Churn_Model", metrics_public=False)
    assert "--no-metrics-public" not in inference_args(public, model_repo="/models", host="0.0.0.0")
    assert "--no-metrics-public" not in aps_args(public, predictor="grpc://x:1", host="0.0.0.0")
    assert inference_args(private, model_repo="/models", host="0.0.0.0")[-1] == "--no-metrics-public"
    assert aps_args(private, predictor="grpc://x:1", host="0.0.0.0")[-1] == "--no-metrics-public"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"replicas": 0}, "  replicas: Input should be greater than or equal to 1 (got 0)"),
        ({"cpus": 0}, "  cpus: CPUs per replica must be greater than 0, e.g. 0.5 or 2 (got 0)"),
        ({"memory": "2GB"}, "  memory: memory must be a Kubernetes quantity such as 512Mi or 2Gi (got '2GB')"),
        ({"http_port": 0}, "  http_port: a port must be between 1 and 65535 (got 0)"),
        ({"grpc_port": 70000}, "  grpc_port: a port must be between 1 and 65535 (got 70000)"),
        ({"aps_port": 8080}, "  aps_port, http_port and grpc_port must all differ; got aps_port=8080, "
                             "http_port=8080, grpc_port=8081"),
        ({"token_env": "s3cr3t token"}, "  token_env: token_env is the NAME of an environment variable"),
        ({"version": "3"}, "  version: 'Churn_Model' has no version 3 in "),
        ({"version": "v1"}, "  version: a version is a positive integer such as '1' (got 'v1')"),
        ({"model": "fraud"}, "  model: 'fraud' is not in the model repository "),
        ({"replica": 2}, "  replica: unknown key; allowed keys: model_repo, model, version, handler, replicas,"),
        ({"max_restarts": -1}, "  max_restarts: max_restarts must be 0 (never restart) or more (got -1)"),
        ({"restart_window_s": 0}, "  restart_window_s: restart_window_s must be greater than 0 seconds, e.g. 60 "
                                  "(got 0)"),
        ({"restart_backoff_s": -0.5}, "  restart_backoff_s: restart_backoff_s must be 0 seconds or more, e.g. 0.5 "
                                      "(got -0.5)"),
    ],
)
def test_settings_errors_name_the_field(repo: Path, override: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        ServeSettings(**{"model_repo": repo, "model": "Churn_Model", **override})
    assert str(info.value).startswith("invalid serve settings (arguments): 1 error\n")
    assert str(info.value).splitlines()[1].startswith(message)


def test_settings_model_repo_errors(tmp_path: Path, repo: Path) -> None:
    with pytest.raises(InvalidInput, match=r"  model_repo: the model repository must be an existing folder laid out "
                       r"as <model>/<version>/model.onnx \(got '.*missing'\)"):
        ServeSettings(model_repo=tmp_path / "missing", model="Churn_Model")
    (repo / "empty" / "1").mkdir(parents=True)  # a version folder without model.onnx is no model
    with pytest.raises(InvalidInput, match=r"model: 'empty' is not in the model repository .* \(no "
                       r"empty/<version>/model.onnx\); models there: Churn_Model$"):
        ServeSettings(model_repo=repo, model="empty")


def test_settings_version_is_a_number_of_the_repository(repo: Path) -> None:
    assert ServeSettings(model_repo=repo, model="Churn_Model", version="2").version == "2"
    assert ServeSettings(model_repo=repo, model="Churn_Model", version="02").version == "2"  # the same folder
    (repo / "Churn_Model" / "10").mkdir()  # no model.onnx: not a version to serve
    with pytest.raises(InvalidInput, match=r"  version: 'Churn_Model' has no version 10 in .*; versions there: 1, 2$"):
        ServeSettings(model_repo=repo, model="Churn_Model", version="10")
    for version in ("0", "-1", "1.5", ""):
        with pytest.raises(InvalidInput, match=r"  version: a version is a positive integer such as '1' \(got "):
            ServeSettings(model_repo=repo, model="Churn_Model", version=version)


def test_settings_model_name_must_be_a_folder_name(repo: Path) -> None:
    with pytest.raises(InvalidInput, match=r"  model: a model name is a folder name: letters, digits, '_', '.', '-', "
                       r"starting alphanumeric \(got '\.\./Churn_Model'\)$"):
        ServeSettings(model_repo=repo, model="../Churn_Model")


def test_settings_from_yaml(tmp_path: Path, repo: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("model_repo: models\nmodel: Churn_Model\nreplicas: 2\nmemory: 2Gi\n")
    settings = ServeSettings.from_yaml(config, replicas=4, cpus=None)
    assert (settings.model_repo, settings.replicas, settings.memory, settings.cpus) == (repo.resolve(), 4, "2Gi", 1.0)

    config.write_text("model_repo: models\nmodel: Churn_Model\ncpus: -1\nports: 1\n")
    with pytest.raises(InvalidInput) as info:
        ServeSettings.from_yaml(config)
    lines = str(info.value).splitlines()
    assert lines[0] == f"invalid serve settings {config}: 2 errors"
    assert lines[1] == "  cpus: CPUs per replica must be greater than 0, e.g. 0.5 or 2 (got -1)"
    assert lines[2].startswith("  ports: unknown key; allowed keys: model_repo, model")

    config.write_text("- a list\n")
    with pytest.raises(InvalidInput, match=r"must be a mapping with keys such as model_repo, model, replicas; "
                       r"got list"):
        ServeSettings.from_yaml(config)
    with pytest.raises(InvalidInput, match=r"^cannot read serve settings .*nope.yaml: No such file or directory$"):
        ServeSettings.from_yaml(tmp_path / "nope.yaml")


def test_token_is_read_from_the_named_variable(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(repo)
    monkeypatch.delenv("CHURN_TOKEN", raising=False)
    with pytest.raises(InvalidInput, match=r"^the token variable \$CHURN_TOKEN is unset or empty"):
        _ = settings.token
    monkeypatch.setenv("CHURN_TOKEN", "t0k3n")
    assert settings.token == "t0k3n"


# -- names ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "name"),
    [("Churn_Model", "churn-model"), ("mlp", "mlp"), ("3d.unet", "m-3d-unet"), ("a" * 80, "a" * 53),
     ("x__y--", "x-y")],
)
def test_dns_name(model: str, name: str) -> None:
    assert dns_name(model) == name


# -- Kubernetes -------------------------------------------------------------------------------------------------------


def test_k8s_manifests_validate_and_carry_the_settings(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_TOKEN", "do-not-leak-me")
    settings = _settings(repo, max_batch_size=16, max_queue_delay_ms=2.5, handler=str(repo / "handler.py") + ":Churn",
                         model_pvc="churn-models", version="2")
    objects = k8s_manifests(settings)
    for obj in objects:
        _validate(obj)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Deployment", "churn-model-inference"), ("Service", "churn-model-inference"),
        ("Deployment", "churn-model-aps"), ("Service", "churn-model-aps"),
    ]
    inf_deploy, inf_svc, aps_deploy, aps_svc = objects
    assert inf_deploy["spec"]["replicas"] == 3 and aps_deploy["spec"]["replicas"] == 3

    (inf,) = inf_deploy["spec"]["template"]["spec"]["containers"]
    assert inf["image"] == "registry.local/aiforge:1.2"
    assert inf["command"] == ["aiforge"]
    assert inf["args"] == ["serve", "model", "/mnt/models", "--host", "0.0.0.0", "--port", "9080", "--grpc-port",
                           "9081", "--threads", "2", "--max-batch-size", "16", "--max-queue-delay-ms", "2.5",
                           "--token-env", "CHURN_TOKEN"]
    assert inf["resources"] == {"requests": {"cpu": "2000m", "memory": "512Mi"},
                                "limits": {"cpu": "2000m", "memory": "512Mi"}}
    assert inf["ports"] == [{"name": "http", "containerPort": 9080, "protocol": "TCP"},
                            {"name": "grpc", "containerPort": 9081, "protocol": "TCP"}]
    assert inf["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert inf["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert inf["env"] == [
        {"name": "OMP_NUM_THREADS", "value": "1"}, {"name": "OPENBLAS_NUM_THREADS", "value": "1"},
        {"name": "MKL_NUM_THREADS", "value": "1"},
        {"name": "CHURN_TOKEN", "valueFrom": {"secretKeyRef": {"name": "churn-model-token", "key": "token"}}},
    ]
    assert inf["volumeMounts"] == [{"name": "model-repo", "mountPath": "/mnt/models", "readOnly": True}]
    assert inf_deploy["spec"]["template"]["spec"]["volumes"] == [
        {"name": "model-repo", "persistentVolumeClaim": {"claimName": "churn-models", "readOnly": True}}
    ]
    assert inf_svc["spec"]["ports"] == [
        {"name": "http", "port": 9080, "targetPort": "http", "protocol": "TCP"},
        {"name": "grpc", "port": 9081, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
    ]
    assert inf_svc["spec"]["selector"] == inf_deploy["spec"]["selector"]["matchLabels"]

    (aps,) = aps_deploy["spec"]["template"]["spec"]["containers"]
    assert aps["args"] == ["serve", "aps", "/mnt/models/handler.py:Churn", "--predictor",
                           "grpc://churn-model-inference:9081", "--model", "Churn_Model", "--version", "2",
                           "--host", "0.0.0.0", "--port", "9000", "--token-env", "CHURN_TOKEN"]
    assert aps["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert aps["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert aps["resources"] == inf["resources"]
    assert aps_svc["spec"]["ports"] == [{"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}]
    assert "do-not-leak-me" not in yaml.safe_dump_all(objects)


def test_k8s_manifests_without_token_or_volume(repo: Path) -> None:
    objects = k8s_manifests(_settings(repo, token_env=None, cpus=0.5, replicas=1))
    for obj in objects:
        _validate(obj)
    pod = objects[0]["spec"]["template"]["spec"]
    (inf,) = pod["containers"]
    assert "volumes" not in pod and "volumeMounts" not in inf  # the image holds the models at /mnt/models
    assert [e["name"] for e in inf["env"]] == ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"]
    assert inf["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert "--token-env" not in inf["args"] and "--threads" in inf["args"]
    assert inf["args"][inf["args"].index("--threads") + 1] == "1"
    aps = objects[2]["spec"]["template"]["spec"]["containers"][0]
    assert aps["args"][:3] == ["serve", "aps", "default"]


def test_a_broken_manifest_does_not_validate(repo: Path) -> None:
    """The validation the tests rely on does catch mistakes (a typo'd key, a wrong type)."""
    deployment = copy.deepcopy(k8s_manifests(_settings(repo))[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["port"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)
    deployment = copy.deepcopy(k8s_manifests(_settings(repo))[0])
    deployment["spec"]["replicas"] = "3"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)


# -- KServe -----------------------------------------------------------------------------------------------------------


def _pod_of(component: dict[str, Any]) -> dict[str, Any]:
    """A KServe component is a Pod spec plus its own scaling keys: validate the Pod spec part as a Pod."""
    spec = {k: v for k, v in component.items() if k not in ("minReplicas", "maxReplicas")}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": spec}


def test_kserve_manifest(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_TOKEN", "do-not-leak-me")
    isvc = kserve_manifest(_settings(repo, model_pvc="churn-models"))
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    assert isvc["metadata"]["name"] == "churn-model"
    assert sorted(isvc["spec"]) == ["predictor", "transformer"]
    predictor, transformer = isvc["spec"]["predictor"], isvc["spec"]["transformer"]
    for component in (predictor, transformer):
        _validate(_pod_of(component))
        assert (component["minReplicas"], component["maxReplicas"]) == (3, 3)
        (container,) = component["containers"]
        assert container["image"] == "registry.local/aiforge:1.2"
        assert container["resources"]["limits"] == {"cpu": "2000m", "memory": "512Mi"}
        assert container["env"][-1] == {
            "name": "CHURN_TOKEN", "valueFrom": {"secretKeyRef": {"name": "churn-model-token", "key": "token"}}
        }
    (model,) = predictor["containers"]
    assert model["name"] == "kserve-container"
    assert model["args"][:3] == ["serve", "model", "/mnt/models"]
    assert model["ports"] == [{"name": "h2c", "containerPort": 9081, "protocol": "TCP"}]
    (aps,) = transformer["containers"]
    assert aps["command"] == [
        "/bin/sh", "-c",
        "exec aiforge serve aps default --predictor grpc://churn-model-predictor:80 --model Churn_Model --host "
        "0.0.0.0 --port 9000 --token-env CHURN_TOKEN",
    ]
    assert "args" not in aps  # KServe appends its own arguments there; `sh -c` ignores them
    assert aps["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": 9000}
    assert "do-not-leak-me" not in yaml.safe_dump(isvc)


def test_write_manifests(tmp_path: Path, repo: Path) -> None:
    settings = _settings(repo)
    (k8s_file,) = write_manifests(settings, tmp_path / "out", kind="k8s")
    assert k8s_file == tmp_path / "out" / "churn-model-k8s.yaml"
    text = k8s_file.read_text()
    assert text.startswith("# aiforge serve export --k8s: model 'Churn_Model', 3 replica(s), 2 CPU, 512Mi each.\n"
                           "# Needs the Secret churn-model-token: kubectl create secret generic churn-model-token "
                           "--from-literal=token=...\n")
    assert "&id" not in text  # no YAML anchors: plain documents kubectl and humans read alike
    assert list(yaml.safe_load_all(text)) == k8s_manifests(settings)

    (kserve_file,) = write_manifests(settings, tmp_path / "out", kind="kserve")
    assert kserve_file.name == "churn-model-kserve.yaml"
    assert list(yaml.safe_load_all(kserve_file.read_text())) == [kserve_manifest(settings)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["churn-model-k8s.yaml", "churn-model-kserve.yaml"]
    with pytest.raises(InvalidInput, match=r"^kind must be 'k8s' or 'kserve'; got 'helm'$"):
        write_manifests(settings, tmp_path / "out", kind="helm")


# -- CLI --------------------------------------------------------------------------------------------------------------


def test_cli_serve_export(tmp_path: Path, repo: Path) -> None:
    from typer.testing import CliRunner

    from aiforge.cli import app

    runner = CliRunner()
    out = tmp_path / "deploy"
    result = runner.invoke(app, ["serve", "export", "Churn_Model", "--k8s", "--kserve", "--out", str(out),
                                 "--model-repo", str(repo), "--replicas", "2", "--cpus", "0.5", "--memory", "2Gi",
                                 "--image", "reg/aiforge:9", "--token-env", "CHURN_TOKEN"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "note: no --handler: the APS pods run the default handler ({\"instances\": rows}); if 'serve up' ran with "
        "--handler, pass the same one here\n"
        f"wrote {out / 'churn-model-k8s.yaml'}\nwrote {out / 'churn-model-kserve.yaml'}\n"
        f"apply with: kubectl apply -f {out}\n"
    )
    settings = ServeSettings(model_repo=repo, model="Churn_Model", replicas=2, cpus=0.5, memory="2Gi",
                             image="reg/aiforge:9", token_env="CHURN_TOKEN")
    assert list(yaml.safe_load_all((out / "churn-model-k8s.yaml").read_text())) == k8s_manifests(settings)
    assert yaml.safe_load((out / "churn-model-kserve.yaml").read_text()) == kserve_manifest(settings)

    config = tmp_path / "serve.yaml"
    config.write_text(f"model_repo: {repo}\nmodel: Churn_Model\nreplicas: 4\nmemory: 3Gi\n")
    result = runner.invoke(app, ["serve", "export", "--k8s", "--out", str(tmp_path / "cfg"), "--config", str(config),
                                 "--replicas", "5"])
    assert result.exit_code == 0, result.output
    deployment = next(yaml.safe_load_all((tmp_path / "cfg" / "churn-model-k8s.yaml").read_text()))
    assert deployment["spec"]["replicas"] == 5  # the option wins over the file
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "3Gi"

    result = runner.invoke(app, ["serve", "export", "Churn_Model", "--out", str(out), "--model-repo", str(repo)])
    assert result.exit_code == 2
    assert "pass --k8s, --kserve or both" in result.output
    result = runner.invoke(app, ["serve", "export", "Churn_Model", "--k8s", "--model-repo", str(repo), "--memory",
                                 "lots"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: invalid serve settings (arguments): 1 error\n  memory: memory must be a "
                                    "Kubernetes quantity such as 512Mi or 2Gi (got 'lots')")


@pytest.mark.parametrize("command", ["up", "export"])
def test_cli_help_has_an_example(command: str) -> None:
    from typer.testing import CliRunner

    from aiforge.cli import app

    result = CliRunner().invoke(app, ["serve", command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert f"Example: aiforge serve {command} churn " in result.output


def test_write_manifests_through_symlinks(tmp_path: Path, repo: Path) -> None:
    settings = _settings(repo)
    real = tmp_path / "real"
    real.mkdir()
    folder = tmp_path / "deploy"
    folder.symlink_to(real)  # a symlinked folder is written into
    target = tmp_path / "gitops" / "churn.yaml"
    target.parent.mkdir()
    (real / "churn-model-k8s.yaml").symlink_to(target)  # a symlinked file is written through, not replaced
    (path,) = write_manifests(settings, folder, kind="k8s")
    assert path == folder / "churn-model-k8s.yaml"
    assert folder.is_symlink() and path.is_symlink()
    assert list(yaml.safe_load_all(target.read_text())) == k8s_manifests(settings)
    assert sorted(p.name for p in real.iterdir()) == ["churn-model-k8s.yaml"]
