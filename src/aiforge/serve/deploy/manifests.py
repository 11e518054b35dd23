"""Kubernetes and KServe manifests for the servers ``aiforge serve up`` runs locally, from the same settings.

:func:`k8s_manifests` gives, for each server, a Deployment and a Service:

- ``<name>-inference``: ``aiforge serve model /mnt/models`` with ``replicas`` pods, ``cpus``/``memory`` as both
  requests and limits (guaranteed QoS, so latency does not depend on neighbours), ONNX Runtime threads = ``cpus``
  rounded, readiness/liveness probes on ``/v2/health/ready`` and ``/v2/health/live``, ports ``http`` and ``grpc``;
- ``<name>-aps``: ``aiforge serve aps`` calling ``grpc://<name>-inference:<grpc_port>`` (the Service, so the
  connections spread over the inference pods), probes on ``/health/ready`` and ``/health/live``.

``<name>`` is the model name made a DNS-1123 label (lowercase, ``-`` for anything else, at most 53 characters).

The model repository. With ``model_pvc`` set, that PersistentVolumeClaim is mounted read-only at ``/mnt/models`` in
both servers. Without it no volume is mounted and the image must hold the repository at ``/mnt/models``
(``COPY models /mnt/models``): an ``emptyDir`` placeholder would start servers with no model, which fail their probes
rather than serve.

The handler. A handler file inside the local repository is passed as the same file under ``/mnt/models``; a handler
file elsewhere and the BATCH transform a TransformHandler reads are shipped in the ConfigMap ``<name>-aps-files``,
mounted at ``/mnt/aiforge`` in the APS pods (:mod:`aiforge.serve.deploy.bundle`). The file's header lists what the
deployment carries and what the image must hold.

The bearer token. With ``token_env`` set, both servers read that variable from the Secret ``<name>-token`` (key
``token``), which these manifests reference but do not contain: create it with
``kubectl create secret generic <name>-token --from-literal=token=...``. The token never appears in a manifest.

:func:`kserve_manifest` gives one ``serving.kserve.io/v1beta1`` InferenceService. Its predictor is a custom
container running ``aiforge serve model``, not KServe's ``onnx`` model format (which would run Triton or another
runtime): the same server, batching and metrics as locally, so a load test here predicts the cluster. Its transformer
runs ``aiforge serve aps`` and calls the predictor over gRPC (``grpc://<name>-predictor:80``; the predictor's port is
named ``h2c`` so Knative carries HTTP/2). KServe appends ``--model_name``/``--predictor_host``/``--http_port`` to
a transformer's arguments; the aiforge command is therefore given as ``sh -c 'exec aiforge ...'`` in ``command``,
where such appended arguments are ignored.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from aiforge.errors import InvalidInput
from aiforge.serve.deploy.bundle import MODEL_DIR, MOUNT, ApsBundle, aps_bundle
from aiforge.serve.deploy.settings import ServeSettings
from aiforge.serve.deploy.stack import aps_args, inference_args
from aiforge.validation import Options, validate_params
from aiforge.workspace import write_output

__all__ = ["MODEL_DIR", "dns_name", "k8s_manifests", "kserve_manifest", "write_manifests"]

_VOLUME = "model-repo"
_FILES_VOLUME = "aps-files"
_MAX_BASE = 63 - len("-inference")


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated objects out in full: no ``&id001`` anchors in files people read and edit."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dns_name(model: str) -> str:
    """The DNS-1123 label (and DNS-1035, as Services need) that names a model's Kubernetes objects.

    Lowercase; every run of characters other than ``a-z0-9`` becomes ``-``; a leading digit gets an ``m-`` prefix;
    cut to 53 characters so ``<name>-inference`` stays within 63.

    Examples
    --------
    >>> dns_name("Churn_Model.v2")
    'churn-model-v2'
    >>> dns_name("3d-unet")
    'm-3d-unet'
    """
    name = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    if not name:
        raise InvalidInput(f"cannot make a Kubernetes name from the model name {model!r}; use letters or digits")
    if not name[0].isalpha():
        name = "m-" + name
    return name[:_MAX_BASE].rstrip("-")


def _labels(base: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": base,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "aiforge",
        "app.kubernetes.io/managed-by": "aiforge",
    }


def _resources(settings: ServeSettings) -> dict[str, Any]:
    amount = {"cpu": f"{round(settings.cpus * 1000)}m", "memory": settings.memory}
    return {"requests": dict(amount), "limits": dict(amount)}


def _env(settings: ServeSettings, base: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "OMP_NUM_THREADS", "value": "1"},
        {"name": "OPENBLAS_NUM_THREADS", "value": "1"},
        {"name": "MKL_NUM_THREADS", "value": "1"},
    ]
    if settings.token_env is not None:
        env.append(
            {"name": settings.token_env, "valueFrom": {"secretKeyRef": {"name": f"{base}-token", "key": "token"}}}
        )
    return env


def _probe(path: str, port: str | int, *, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "timeoutSeconds": 2,
            "failureThreshold": 3}


def _volumes(settings: ServeSettings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if settings.model_pvc is None:
        return [], []
    volume = {"name": _VOLUME, "persistentVolumeClaim": {"claimName": settings.model_pvc, "readOnly": True}}
    return [volume], [{"name": _VOLUME, "mountPath": MODEL_DIR, "readOnly": True}]


def _files_volume(base: str, bundle: ApsBundle) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ConfigMap of the APS's files as a volume and its mount, when the bundle has files."""
    if not bundle.files:
        return [], []
    volume = {"name": _FILES_VOLUME, "configMap": {"name": f"{base}-aps-files"}}
    return [volume], [{"name": _FILES_VOLUME, "mountPath": MOUNT, "readOnly": True}]


def _files_configmap(base: str, bundle: ApsBundle) -> list[dict[str, Any]]:
    """``[ConfigMap <base>-aps-files]`` holding the handler file and transform.json, or ``[]`` when nothing ships."""
    if not bundle.files:
        return []
    return [{
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{base}-aps-files", "labels": _labels(base, "aps")},
        "data": dict(bundle.files),
    }]


def _deployment(
    base: str, component: str, settings: ServeSettings, container: dict[str, Any], volumes: list[dict[str, Any]]
) -> dict[str, Any]:
    labels = _labels(base, component)
    selector = {"app.kubernetes.io/name": base, "app.kubernetes.io/component": component}
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 30}
    if volumes:
        spec["volumes"] = volumes
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{base}-{component}", "labels": labels},
        "spec": {
            "replicas": settings.replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def _service(base: str, component: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{base}-{component}", "labels": _labels(base, component)},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": base, "app.kubernetes.io/component": component},
            "ports": ports,
        },
    }


def k8s_manifests(settings: ServeSettings, bundle: ApsBundle | None = None) -> list[dict[str, Any]]:
    """Deployment + Service for the inference server and for the APS server, as plain dicts.

    Parameters
    ----------
    settings : ServeSettings
        ``replicas``, ``cpus``, ``memory``, ports, ``image``, ``token_env``, ``model_pvc``, batching and handler.
    bundle : ApsBundle, optional
        The handler's files; default :func:`~aiforge.serve.deploy.bundle.aps_bundle` of ``settings``.

    Returns
    -------
    list of dict
        ``[inference Deployment, inference Service, APS Deployment, APS Service]``, then the ConfigMap
        ``<name>-aps-files`` when the handler needs files (its pods wait the moment it takes to be created).
    """
    base = dns_name(settings.model)
    bundle = aps_bundle(settings) if bundle is None else bundle
    volumes, mounts = _volumes(settings)
    files_volumes, files_mounts = _files_volume(base, bundle)
    inference = {
        "name": "inference",
        "image": settings.image,
        "command": ["aiforge"],
        "args": inference_args(settings, model_repo=MODEL_DIR, host="0.0.0.0"),
        "ports": [
            {"name": "http", "containerPort": settings.http_port, "protocol": "TCP"},
            {"name": "grpc", "containerPort": settings.grpc_port, "protocol": "TCP"},
        ],
        "env": _env(settings, base),
        "resources": _resources(settings),
        "readinessProbe": _probe("/v2/health/ready", "http", period=5),
        "livenessProbe": _probe("/v2/health/live", "http", period=10),
    }
    predictor = f"grpc://{base}-inference:{settings.grpc_port}"
    aps = {
        "name": "aps",
        "image": settings.image,
        "command": ["aiforge"],
        "args": aps_args(settings, predictor=predictor, host="0.0.0.0", handler=bundle.handler,
                         transform=bundle.transform),
        "ports": [{"name": "http", "containerPort": settings.aps_port, "protocol": "TCP"}],
        "env": _env(settings, base),
        "resources": _resources(settings),
        "readinessProbe": _probe("/health/ready", "http", period=5),
        "livenessProbe": _probe("/health/live", "http", period=10),
    }
    if mounts:
        inference["volumeMounts"] = mounts
    if mounts or files_mounts:
        aps["volumeMounts"] = mounts + files_mounts
    return copy.deepcopy([  # no object shared between documents (YAML would write anchors, callers may mutate)
        _deployment(base, "inference", settings, inference, volumes),
        _service(base, "inference", [
            {"name": "http", "port": settings.http_port, "targetPort": "http", "protocol": "TCP"},
            {"name": "grpc", "port": settings.grpc_port, "targetPort": "grpc", "protocol": "TCP",
             "appProtocol": "grpc"},
        ]),
        _deployment(base, "aps", settings, aps, volumes + files_volumes),
        _service(base, "aps", [{"name": "http", "port": settings.aps_port, "targetPort": "http", "protocol": "TCP"}]),
        *_files_configmap(base, bundle),
    ])


def kserve_manifest(settings: ServeSettings, bundle: ApsBundle | None = None) -> dict[str, Any]:
    """A KServe ``InferenceService``: predictor = ``aiforge serve model``, transformer = ``aiforge serve aps``.

    Parameters
    ----------
    settings : ServeSettings
        As for :func:`k8s_manifests`; ``replicas`` becomes ``minReplicas`` = ``maxReplicas`` of each component.
    bundle : ApsBundle, optional
        The handler's files; default :func:`~aiforge.serve.deploy.bundle.aps_bundle` of ``settings``. When it has
        files, the transformer mounts the ConfigMap ``<name>-aps-files``, which :func:`write_manifests` writes beside
        the InferenceService.

    Returns
    -------
    dict
        The InferenceService.
    """
    base = dns_name(settings.model)
    bundle = aps_bundle(settings) if bundle is None else bundle
    volumes, mounts = _volumes(settings)
    files_volumes, files_mounts = _files_volume(base, bundle)
    predictor_container: dict[str, Any] = {
        "name": "kserve-container",
        "image": settings.image,
        "command": ["aiforge"],
        "args": inference_args(settings, model_repo=MODEL_DIR, host="0.0.0.0"),
        "ports": [{"name": "h2c", "containerPort": settings.grpc_port, "protocol": "TCP"}],
        "env": _env(settings, base),
        "resources": _resources(settings),
    }
    aps_command = ["aiforge", *aps_args(
        settings, predictor=f"grpc://{base}-predictor:80", host="0.0.0.0", handler=bundle.handler,
        transform=bundle.transform,
    )]
    transformer_container: dict[str, Any] = {
        "name": "transformer-container",
        "image": settings.image,
        "command": ["/bin/sh", "-c", "exec " + shlex.join(aps_command)],
        "ports": [{"name": "http1", "containerPort": settings.aps_port, "protocol": "TCP"}],
        "env": _env(settings, base),
        "resources": _resources(settings),
        "readinessProbe": _probe("/health/ready", settings.aps_port, period=5),
    }
    predictor: dict[str, Any] = {
        "minReplicas": settings.replicas, "maxReplicas": settings.replicas, "containers": [predictor_container],
    }
    transformer: dict[str, Any] = {
        "minReplicas": settings.replicas, "maxReplicas": settings.replicas, "containers": [transformer_container],
    }
    if mounts:
        predictor_container["volumeMounts"] = mounts
        predictor["volumes"] = volumes
    if mounts or files_mounts:
        transformer_container["volumeMounts"] = mounts + files_mounts
        transformer["volumes"] = volumes + files_volumes
    return copy.deepcopy({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": base, "labels": {"app.kubernetes.io/part-of": "aiforge",
                                              "app.kubernetes.io/managed-by": "aiforge"}},
        "spec": {"predictor": predictor, "transformer": transformer},
    })


def write_manifests(
    settings: ServeSettings, out_dir: str | os.PathLike[str], kind: str = "k8s"
) -> list[Path]:
    """Write the manifests as one multi-document YAML file, ready for ``kubectl apply -f``.

    Parameters
    ----------
    settings : ServeSettings
    out_dir : path
        The folder to write into (created if missing).
    kind : {"k8s", "kserve"}
        ``k8s`` writes ``<name>-k8s.yaml`` (the four objects of :func:`k8s_manifests`); ``kserve`` writes
        ``<name>-kserve.yaml`` (the InferenceService).

    Returns
    -------
    list of Path
        The written file (a list, so callers need not care how many files a kind writes).
    """
    validate_params({"kind": kind}, {"kind": [Options("k8s", "kserve")]})
    bundle = aps_bundle(settings)
    if kind == "k8s":
        documents = k8s_manifests(settings, bundle)
    else:
        documents = [kserve_manifest(settings, bundle), *_files_configmap(dns_name(settings.model), bundle)]
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create the output folder {folder}: {exc.strerror or exc}") from exc
    base = dns_name(settings.model)
    header = f"# aiforge serve export --{kind}: model {settings.model!r}, {settings.replicas} replica(s), " \
             f"{settings.cpus:g} CPU, {settings.memory} each.\n"
    if settings.token_env is not None:
        header += f"# Needs the Secret {base}-token: kubectl create secret generic {base}-token " \
                  "--from-literal=token=...\n"
    if settings.model_pvc is None:
        header += f"# No model_pvc: the image {settings.image} must hold the model repository at {MODEL_DIR}.\n"
    else:
        header += f"# Model repository: the PersistentVolumeClaim {settings.model_pvc}, mounted at {MODEL_DIR}.\n"
    header += "".join(f"# {line}\n" for line in bundle.carries)
    if bundle.files:
        header += f"# Shipped in the ConfigMap {base}-aps-files (at {MOUNT} in the APS pods): " \
                  f"{', '.join(bundle.files)}.\n"
    text = header + yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False)
    path = folder / f"{base}-{kind}.yaml"
    try:  # staged and renamed, or written through when the user put a symlink there
        write_output(path, text)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from exc
    return [path]
