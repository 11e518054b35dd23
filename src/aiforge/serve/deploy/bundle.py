"""What the APS needs on a cluster besides the model: the handler's file and the BATCH transform it reads.

``aiforge serve up`` runs the handler from the local disk and reads its transform from the local workspace; neither is
in a container image or a model volume. :func:`aps_bundle` gathers them so that an exported deployment carries them:
the files go into a ConfigMap (``<name>-aps-files``) mounted read-only at :data:`MOUNT` in the APS pods, and the APS
command names them there.

- ``file.py:Class`` outside the model repository: the file is shipped (``/mnt/aiforge/file.py:Class``). Only that file:
  modules it imports besides aiforge must be installed in the image.
- ``file.py:Class`` inside the model repository: the repository is already mounted at ``/mnt/models``; the handler is
  named there and not shipped.
- ``pkg.module:Class``: must be importable in the image; nothing is shipped for the code.
- A :class:`~aiforge.serve.aps.handler.TransformHandler` (``transform:REF`` or a subclass with ``source``): its
  transform is shipped as ``transform.json`` and the APS reads it there (``--transform``), since a snapshot ref means
  nothing without the workspace that made it.
- No handler: the default handler, which needs nothing; the manifest's header says so, since ``serve up`` with a
  ``--handler`` and ``serve export`` without one would serve different things.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from aiforge.errors import InvalidInput
from aiforge.serve.deploy.settings import ServeSettings

__all__ = ["CONFIGMAP_LIMIT", "MODEL_DIR", "MOUNT", "ApsBundle", "aps_bundle"]

#: Where the shipped files are in the APS containers.
MOUNT = "/mnt/aiforge"
#: Kubernetes refuses a ConfigMap whose data is over 1 MiB; keep room for the object around it.
CONFIGMAP_LIMIT = 1_000_000
#: Where the model repository is in the containers (KServe's convention); manifests uses it too.
MODEL_DIR = "/mnt/models"
_KEY = re.compile(r"[-._a-zA-Z0-9]+")


@dataclass(frozen=True)
class ApsBundle:
    """The handler as the APS pod runs it, and the files it needs there.

    Attributes
    ----------
    handler : str or None
        The handler spec in the pod (``None``: the default handler).
    transform : str or None
        The ``--transform`` path in the pod, for a TransformHandler subclass that names its own source.
    files : dict of str to str
        File name to text: the ConfigMap's data, mounted at :data:`MOUNT`.
    carries : list of str
        One line per thing the deployment carries or needs, for the manifest's header.
    """

    handler: str | None
    transform: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    carries: list[str] = field(default_factory=list)


def aps_bundle(settings: ServeSettings) -> ApsBundle:
    """Gather the handler file and the transform that ``settings.handler`` needs (see the module docstring).

    The handler is loaded as ``serve up`` loads it (its module is imported and the class instantiated; ``load()`` is
    not called), so a handler that would not start locally fails here too.

    Raises
    ------
    InvalidInput
        The handler cannot be loaded, its transform cannot be read, or the files are over :data:`CONFIGMAP_LIMIT`.
    """
    from aiforge.serve.aps.handler import TransformHandler, load_handler

    spec = settings.handler
    if spec is None or spec.strip() in ("", "default"):
        return ApsBundle(None, carries=[
            "APS handler: the default one ({\"instances\": rows} or Open Inference Protocol JSON). If `serve up` ran "
            "with --handler, pass the same --handler here."
        ])
    handler = load_handler(spec)
    files: dict[str, str] = {}
    carries: list[str] = []
    pod_spec = spec
    if not spec.startswith("transform:"):
        file, colon, cls = spec.rpartition(":")
        if not file.endswith(".py"):
            file, colon, cls = spec, "", ""  # a module path, or a file without a class name
        if file.endswith(".py"):
            path = Path(file).expanduser().resolve()
            try:
                relative = path.relative_to(Path(settings.model_repo).expanduser().resolve())
            except ValueError:
                name = path.name if _KEY.fullmatch(path.name) else "handler.py"
                files[name] = path.read_text(encoding="utf-8")
                pod_spec = f"{MOUNT}/{name}{colon}{cls}"
                carries.append(f"APS handler: {spec} shipped as {pod_spec} (only that file: modules it imports "
                               "besides aiforge must be installed in the image)")
            else:
                pod_spec = f"{MODEL_DIR}/{relative.as_posix()}{colon}{cls}"
                carries.append(f"APS handler: {pod_spec}, in the model repository")
        else:
            carries.append(f"APS handler: {spec} (the module must be importable in the image)")
    transform = None
    if isinstance(handler, TransformHandler) and handler.source is not None:
        files["transform.json"] = _transform_json(handler)
        where = f"{MOUNT}/transform.json"
        if spec.startswith("transform:"):
            pod_spec = f"transform:{where}"
            carries.append(f"APS handler: the BATCH transform {spec.removeprefix('transform:')} shipped as {where}")
        else:
            transform = where
            carries.append(f"BATCH transform: {handler.source} shipped as {where} (the APS reads it there: "
                           "--transform)")
    size = sum(len(text.encode("utf-8")) for text in files.values())
    if size > CONFIGMAP_LIMIT:
        raise InvalidInput(
            f"the APS files ({', '.join(files)}) are {size:,} bytes, over a ConfigMap's limit of {CONFIGMAP_LIMIT:,}: "
            "put the handler and transform.json in the model repository (mounted with --model-pvc) or in the image, "
            "and name them there with --handler"
        )
    return ApsBundle(pod_spec, transform, files, carries)


def _transform_json(handler: object) -> str:
    from aiforge.batch.transform import Transform

    source = getattr(handler, "source", None)
    if isinstance(source, Transform):
        transform = source
    else:
        if isinstance(source, str) and (source.endswith(".json") or "/" in source or "\\" in source):
            source = Path(source)  # a path, never a snapshot ref (as TransformHandler.load reads it)
        transform = Transform.load(source, workspace=getattr(handler, "workspace", None))
    return json.dumps(transform.to_dict(), indent=1, allow_nan=False)
