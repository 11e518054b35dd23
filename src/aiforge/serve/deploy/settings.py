"""The one settings object that ``aiforge serve up`` and ``aiforge serve export`` share.

The same :class:`ServeSettings` starts the servers on this machine (:func:`aiforge.serve.up`) and writes the
Kubernetes or KServe manifests that run them on a cluster (:mod:`aiforge.serve.deploy.manifests`), so a model served
locally and a model deployed elsewhere get the same replicas, CPUs, ports and batching. Settings come from keyword
arguments or a YAML file (:meth:`ServeSettings.from_yaml`); every error names the offending key::

    model_repo: models          # root/<model>/<version>/model.onnx
    model: mlp
    replicas: 2
    cpus: 1
    memory: 512Mi
    token_env: AIFORGE_TOKEN    # the *name* of the variable holding the bearer token, never the token
    metrics_public: false       # /metrics asks for the token too (default: open, for Prometheus)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from aiforge.errors import InvalidInput
from aiforge.workspace.models import LAYOUT, MODEL_FILE, ModelStore, check_model_name, parse_version
from aiforge.yamlio import read_yaml

__all__ = ["ServeSettings", "token_from_env"]


def token_from_env(name: str | None) -> str | None:
    """The bearer token held by environment variable ``name`` (``None``: auth off). Tokens never travel on command
    lines or in manifests, only in the environment.

    Raises
    ------
    InvalidInput
        ``name`` is given but the variable is unset or empty.
    """
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise InvalidInput(
            f"the token variable ${name} is unset or empty; export {name}=<token>, or leave out --token-env "
            "(token_env) to serve without auth"
        )
    return value

_MEMORY = re.compile(r"^[1-9][0-9]*(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SOURCE: ContextVar[str] = ContextVar("serve_settings_source", default="(arguments)")


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        key = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            lines.append(f"  {key}: required key missing")
        elif error["type"] == "extra_forbidden":
            allowed = ", ".join(ServeSettings.model_fields)
            lines.append(f"  {key}: unknown key; allowed keys: {allowed}")
        elif key:
            given = error.get("input")
            shown = repr(str(given) if isinstance(given, Path) else given)
            shown = shown if len(shown) <= 200 else shown[:197] + "..."
            lines.append(f"  {key}: {message} (got {shown})")
        else:  # a check across keys: its message names them
            lines.append(f"  {message}")
    count = len(lines)
    return f"invalid serve settings {source}: {count} error{'s' if count != 1 else ''}\n" + "\n".join(lines)


class ServeSettings(BaseModel):
    """What to serve and with which resources, for ``serve up`` and ``serve export`` alike.

    Parameters
    ----------
    model_repo : Path
        The model repository: ``model_repo/<model>/<version>/model.onnx`` (versions are positive integers).
    model : str
        The model to serve; must be in ``model_repo``.
    version : str, optional
        The version the APS calls; ``None`` = the newest.
    handler : str, optional
        The APS handler spec (``pkg.mod:Class``, ``path/file.py:Class``); ``None`` = the default handler.
    replicas : int, default 1
        Processes of each server (local, sharing ports through ``SO_REUSEPORT``) or pods of each Deployment.
    cpus : float, default 1.0
        CPUs per inference replica: the ONNX Runtime intra-op threads (rounded, at least 1) and the pod's CPU
        request and limit.
    memory : str, default "1Gi"
        Memory per replica as a Kubernetes quantity: ``512Mi``, ``2Gi``.
    host : str, default "127.0.0.1"
        Where the local servers listen.
    aps_port, http_port, grpc_port : int, default 8000, 8080, 8081
        The APS REST port, and the inference server's REST and gRPC ports (1-65535, all different).
    max_batch_size, max_queue_delay_ms : optional
        Dynamic batching overrides for the inference server; ``None`` = the model's ``config.yaml`` or the default.
    token_env : str, optional
        The name of the environment variable that holds the bearer token both servers require; ``None`` = no auth.
        Manifests read it from the Secret ``<name>-token`` (key ``token``); the token itself is never written.
    image : str, default "aiforge:latest"
        The container image for the manifests (it must have aiforge installed).
    model_pvc : str, optional
        The PersistentVolumeClaim that holds the model repository in the cluster, mounted read-only at ``/models``;
        ``None`` = an ``emptyDir`` placeholder to replace (or an image that has the models at ``/models``).
    metrics_public : bool, default True
        ``GET /metrics`` answers without the bearer token (as KServe's servers do, so a Prometheus scraper needs no
        credentials; the metrics hold counts, latencies and model names, never request data). ``False``: the token
        is required there too. Health routes are always open.
    max_restarts : int, default 5
        ``serve up`` restarts a server process that exits on its own, at most this many times within
        ``restart_window_s``; one more crash in the window stops everything with an error. 0 = never restart.
    restart_window_s : float, default 60
        The window, in seconds, in which a process's crashes are counted.
    restart_backoff_s : float, default 0.5
        The wait before the first restart; it doubles with each crash in the window (at most 30 s).

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = ModelStore(root).write_version("mlp", b"")  # settings check the layout, not the model
    >>> ServeSettings(model_repo=root, model="mlp", replicas=2).threads
    1
    >>> ServeSettings(model_repo=root, model="mlp", replicas=0)
    Traceback (most recent call last):
    ...
    aiforge.errors.InvalidInput: invalid serve settings (arguments): 1 error
      replicas: Input should be greater than or equal to 1 (got 0)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_repo: Path
    model: str
    version: str | None = None
    handler: str | None = None
    replicas: int = 1
    cpus: float = 1.0
    memory: str = "1Gi"
    host: str = "127.0.0.1"
    aps_port: int = 8000
    http_port: int = 8080
    grpc_port: int = 8081
    max_batch_size: int | None = None
    max_queue_delay_ms: float | None = None
    token_env: str | None = None
    image: str = "aiforge:latest"
    model_pvc: str | None = None
    metrics_public: bool = True
    max_restarts: int = 5
    restart_window_s: float = 60.0
    restart_backoff_s: float = 0.5

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidInput(_format_errors(exc, _SOURCE.get())) from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], **overrides: Any) -> ServeSettings:
        """Read settings from a YAML mapping; ``overrides`` (those not ``None``) win over the file.

        A relative ``model_repo`` in the file is relative to the file's folder.

        Raises
        ------
        InvalidInput
            The file cannot be read, is not a YAML mapping, or a key is missing, unknown or out of range.
        """
        file = Path(path)
        data = read_yaml(file, "serve settings")
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InvalidInput(
                f"serve settings {file} must be a mapping with keys such as model_repo, model, replicas; "
                f"got {type(data).__name__}"
            )
        merged = dict(data)
        if isinstance(merged.get("model_repo"), str) and not Path(merged["model_repo"]).expanduser().is_absolute():
            merged["model_repo"] = file.parent / merged["model_repo"]
        merged.update({key: value for key, value in overrides.items() if value is not None})
        token = _SOURCE.set(str(file))
        try:
            return cls(**{str(key): value for key, value in merged.items()})
        finally:
            _SOURCE.reset(token)

    # -- derived values -------------------------------------------------------------------------------------------

    @property
    def threads(self) -> int:
        """ONNX Runtime intra-op threads per inference replica: ``cpus`` rounded, at least 1."""
        return max(1, round(self.cpus))

    @property
    def token(self) -> str | None:
        """The bearer token, read now from the variable ``token_env`` names; ``None`` when auth is off.

        Raises
        ------
        InvalidInput
            ``token_env`` is set but the variable is unset or empty.
        """
        return token_from_env(self.token_env)

    # -- validation -----------------------------------------------------------------------------------------------

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: int) -> int:
        if value < 1:
            raise ValueError("Input should be greater than or equal to 1")
        return value

    @field_validator("max_restarts")
    @classmethod
    def _max_restarts(cls, value: int) -> int:
        if value < 0:
            raise ValueError("max_restarts must be 0 (never restart) or more")
        return value

    @field_validator("restart_window_s")
    @classmethod
    def _restart_window(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("restart_window_s must be greater than 0 seconds, e.g. 60")
        return value

    @field_validator("restart_backoff_s")
    @classmethod
    def _restart_backoff(cls, value: float) -> float:
        if not value >= 0:
            raise ValueError("restart_backoff_s must be 0 seconds or more, e.g. 0.5")
        return value

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("CPUs per replica must be greater than 0, e.g. 0.5 or 2")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not _MEMORY.match(value):
            raise ValueError("memory must be a Kubernetes quantity such as 512Mi or 2Gi")
        return value

    @field_validator("aps_port", "http_port", "grpc_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError("a port must be between 1 and 65535")
        return value

    @field_validator("max_batch_size")
    @classmethod
    def _batch(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("max_batch_size must be 0 (batching off) or more")
        return value

    @field_validator("max_queue_delay_ms")
    @classmethod
    def _delay(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError("max_queue_delay_ms must be 0 or more")
        return value

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "token_env is the NAME of an environment variable (letters, digits, _), not the token itself"
            )
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        try:
            return check_model_name(value)
        except InvalidInput:
            raise ValueError(
                "a model name is a folder name: letters, digits, '_', '.', '-', starting alphanumeric"
            ) from None

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(parse_version(value))  # '01' and '1' name the same version folder
        except InvalidInput:
            raise ValueError("a version is a positive integer such as '1'") from None

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("image must be a container image reference such as aiforge:latest")
        return value

    @field_validator("model_pvc")
    @classmethod
    def _pvc(cls, value: str | None) -> str | None:
        if value is not None and not (len(value) <= 253 and _DNS_1123_LABEL.match(value)):
            raise ValueError("model_pvc must be a PersistentVolumeClaim name (lowercase letters, digits, '-')")
        return value

    @field_validator("model_repo")
    @classmethod
    def _repo(cls, value: Path) -> Path:
        value = value.expanduser().resolve()
        if not value.is_dir():
            raise ValueError(
                f"the model repository must be an existing folder laid out as {LAYOUT}"
            )
        return value

    @model_validator(mode="after")
    def _model_in_repo(self) -> ServeSettings:
        ports = {"aps_port": self.aps_port, "http_port": self.http_port, "grpc_port": self.grpc_port}
        if len(set(ports.values())) < len(ports):
            shown = ", ".join(f"{key}={value}" for key, value in ports.items())
            raise ValueError(f"aps_port, http_port and grpc_port must all differ; got {shown}")
        store = ModelStore(self.model_repo)
        versions = store.versions(self.model)
        if not versions:
            present = [name for name in store.names() if store.versions(name)]
            raise ValueError(
                f"model: {self.model!r} is not in the model repository {self.model_repo} (no "
                f"{self.model}/<version>/{MODEL_FILE}); "
                f"models there: {', '.join(present) or 'none'}"
            )
        if self.version is not None and int(self.version) not in versions:
            raise ValueError(
                f"version: {self.model!r} has no version {self.version} in {self.model_repo}; "
                f"versions there: {', '.join(str(version) for version in versions)}"
            )
        return self
