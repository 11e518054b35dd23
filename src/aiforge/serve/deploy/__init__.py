"""Deployment: serve settings, the local stack (`serve up`) and its supervision, Kubernetes/KServe manifests and the
model exporters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiforge.lazy import lazy_names

if TYPE_CHECKING:
    from aiforge.serve.deploy.export import add_model, export_sklearn, export_torch
    from aiforge.serve.deploy.manifests import k8s_manifests, kserve_manifest, write_manifests
    from aiforge.serve.deploy.settings import ServeSettings
    from aiforge.serve.deploy.stack import Stack, up
    from aiforge.serve.deploy.supervise import supervise

__all__ = [
    "ServeSettings",
    "Stack",
    "add_model",
    "export_sklearn",
    "export_torch",
    "k8s_manifests",
    "kserve_manifest",
    "supervise",
    "up",
    "write_manifests",
]
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "ServeSettings": "aiforge.serve.deploy.settings",
        "Stack": "aiforge.serve.deploy.stack",
        "add_model": "aiforge.serve.deploy.export",
        "export_sklearn": "aiforge.serve.deploy.export",
        "export_torch": "aiforge.serve.deploy.export",
        "k8s_manifests": "aiforge.serve.deploy.manifests",
        "kserve_manifest": "aiforge.serve.deploy.manifests",
        "up": "aiforge.serve.deploy.stack",
        "supervise": "aiforge.serve.deploy.supervise",
        "write_manifests": "aiforge.serve.deploy.manifests",
    },
)
