"""The model repository: ONNX models by name and version on disk, loaded into ONNX Runtime sessions.

The layout (Triton's, so a repository moves between servers unchanged) is :mod:`aiforge.workspace.models`'s::

    MODEL_REPO/
      digits/
        config.yaml        optional: max_batch_size, max_queue_delay_ms, max_queue_size, intra_op_threads, allow_nan
        1/model.onnx
        2/model.onnx       versions are positive integers; the newest is served when none is asked for

Every model is loaded when the repository is, so a broken file fails at start-up and not on the first request.
:meth:`ModelVersion.validate` checks a request's inputs against the model's signature and names the input, the
expected shape and datatype when they do not match. It also refuses missing values (NaN, which is what a JSON
``null`` in a floating-point tensor decodes to) unless the model's config says ``allow_nan: true``: a model trained
without them answers NaN with confident garbage (a label of 0, NaN probabilities), so the client must hear about it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aiforge.errors import InvalidInput, ModelNotFound, NotFound
from aiforge.serve.protocol import DATATYPES
from aiforge.workspace.models import LAYOUT, MODEL_FILE, ModelStore

__all__ = ["ModelConfig", "ModelRepository", "ModelVersion", "TensorSpec"]

#: ONNX Runtime type string -> protocol datatype.
_ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model: its name, protocol datatype and shape (``-1`` = any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelConfig:
    """How a model is served; read from ``MODEL_REPO/<name>/config.yaml`` (every key optional).

    Parameters
    ----------
    max_batch_size : int, default 32
        Most rows the dynamic batcher puts in one ONNX Runtime call; 0 or 1 turns batching off.
    max_queue_delay_ms : float, default 1.0
        How long the batcher waits for more requests after the first one of a batch.
    max_queue_size : int, default 256
        Requests that may wait per model version; beyond it requests are refused with 503 + Retry-After.
    intra_op_threads : int, default 1
        ONNX Runtime's intra-op threads for this model's session.
    allow_nan : bool, default False
        The model takes missing values (NaN; ``null`` in JSON) in its floating-point inputs, e.g. a gradient-boosted
        model trained with them. Off: a request with one is refused with 400, naming the input and where.
    """

    max_batch_size: int = 32
    max_queue_delay_ms: float = 1.0
    max_queue_size: int = 256
    intra_op_threads: int = 1
    allow_nan: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str) -> ModelConfig:
        """Build a config from a mapping, naming ``where`` (a file or option) in any error."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise InvalidInput(
                f"{where}: unknown key {', '.join(repr(k) for k in unknown)}; allowed keys: {', '.join(fields)}"
            )
        checked: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            if key == "allow_nan":
                if not isinstance(value, bool):
                    raise InvalidInput(f"{where}: 'allow_nan' must be true or false, got {value!r}")
                checked[key] = value
                continue
            kind = int if key != "max_queue_delay_ms" else float
            if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
                raise InvalidInput(f"{where}: {key!r} must be a number ({kind.__name__}), got {value!r}")
            minimum = 1 if key in ("max_queue_size", "intra_op_threads") else 0
            if value < minimum:
                raise InvalidInput(f"{where}: {key!r} must be >= {minimum}, got {value!r}")
            checked[key] = kind(value)
        return cls(**checked)

    def merged(self, overrides: dict[str, Any] | None, where: str = "overrides") -> ModelConfig:
        """This config with the non-``None`` values of ``overrides`` applied."""
        if not overrides:
            return self
        changed = ModelConfig.from_dict({k: v for k, v in overrides.items() if v is not None}, where)
        given = {k for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **{k: getattr(changed, k) for k in given})


def _spec(node: Any) -> TensorSpec:
    datatype = _ORT_TYPES.get(node.type)
    if datatype is None:
        raise InvalidInput(
            f"{node.name!r} has type {node.type}; only tensors can be served (for scikit-learn classifiers export "
            f"with options={{'zipmap': False}})"
        )
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or []))
    return TensorSpec(node.name, datatype, shape)


class ModelVersion:
    """One version of one model, loaded into an ONNX Runtime session.

    Parameters
    ----------
    name, version : str
        The model's name and version (a positive integer, as a string).
    path : Path
        The ``model.onnx`` file.
    config : ModelConfig
        How the model is served.

    Attributes
    ----------
    inputs, outputs : list of TensorSpec
        The model's signature, from the ONNX graph.
    batchable : bool
        Every input and output has a dynamic first dimension, so requests can be stacked along axis 0.
    """

    def __init__(self, name: str, version: str, path: Path, config: ModelConfig | None = None) -> None:
        import onnxruntime as ort

        self.name = name
        self.version = version
        self.path = Path(path)
        self.config = config or ModelConfig()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
            raise InvalidInput(
                f"model {name!r} version {version}: {self.path} is not a readable ONNX model ({exc}); "
                f"export it again (aiforge.serve.deploy.export_sklearn or export_torch) or remove the version folder"
            ) from exc
        try:
            self.inputs = [_spec(node) for node in self._session.get_inputs()]
            self.outputs = [_spec(node) for node in self._session.get_outputs()]
        except InvalidInput as exc:
            raise InvalidInput(f"model {name!r} version {version}: {exc}") from None
        self._input_specs = {spec.name: spec for spec in self.inputs}
        self._output_names = [spec.name for spec in self.outputs]
        self._dtypes = {spec.name: DATATYPES[spec.datatype] for spec in self.inputs}
        self.batchable = all(len(spec.shape) >= 1 and spec.shape[0] == -1 for spec in self.inputs + self.outputs)

    def __repr__(self) -> str:
        return f"ModelVersion({self.name!r}, {self.version!r}, batchable={self.batchable})"

    def validate(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check ``inputs`` against the model's signature and return them, ordered as the model declares them.

        Raises
        ------
        InvalidInput
            An input is missing or unknown, or has the wrong datatype or shape; the message names the input and
            what the model expects. Datatypes are never converted: an FP64 array for an FP32 input is an error.
            A floating-point input holds NaN (a missing value) and the config does not say ``allow_nan``.
        """
        specs = self._input_specs
        if len(inputs) != len(specs) or any(name not in specs for name in inputs):
            missing = [name for name in specs if name not in inputs]
            unknown = [name for name in inputs if name not in specs]
            problem = "; ".join(
                part for part in (
                    f"missing {', '.join(repr(n) for n in missing)}" if missing else "",
                    f"unknown {', '.join(repr(n) for n in unknown)}" if unknown else "",
                ) if part
            )
            raise InvalidInput(
                f"model {self.name!r} expects inputs {', '.join(repr(n) for n in specs)}; {problem}"
            )
        out: dict[str, np.ndarray] = {}
        for name, spec in specs.items():
            array = inputs[name]
            expected = self._dtypes[name]
            if array.dtype != expected and not (spec.datatype == "BYTES" and array.dtype.kind in "OSU"):
                from aiforge.serve.protocol import datatype_of

                try:
                    got = datatype_of(array)
                except InvalidInput:
                    got = str(array.dtype)
                raise InvalidInput(
                    f"input {name!r}: expected datatype {spec.datatype} with shape {list(spec.shape)}, got {got}"
                )
            shape = array.shape
            if len(shape) != len(spec.shape) or any(w != -1 and w != g for w, g in zip(spec.shape, shape, strict=True)):
                raise InvalidInput(
                    f"input {name!r}: expected shape {list(spec.shape)} (-1 = any size), got {list(shape)}"
                )
            # min() propagates NaN: one pass, no temporary array (a few microseconds on a request row)
            if array.dtype.kind == "f" and array.size and not self.config.allow_nan and np.isnan(array.min()):
                raise InvalidInput(self._missing_message(name, array))
            out[name] = array
        return out

    def _missing_message(self, name: str, array: np.ndarray) -> str:
        where = np.argwhere(np.isnan(array))
        shown = ", ".join(str(index.tolist()) for index in where[:3])
        more = f" and {len(where) - 3} more" if len(where) > 3 else ""
        count = f"{len(where)} missing value{'s' if len(where) != 1 else ''}"
        return (f"input {name!r} has {count} (null/NaN) at {shown}{more}; model {self.name!r} was not trained with "
                "missing values: fill them in, or set allow_nan: true in its config.yaml if it takes NaN")

    def output_names(self, wanted: list[str] | None) -> list[str]:
        """The outputs to compute: all of them for ``None``; an unknown name is an :class:`InvalidInput`."""
        if wanted is None:
            return self._output_names
        unknown = [name for name in wanted if name not in self._output_names]
        if unknown:
            raise InvalidInput(
                f"model {self.name!r} has no output {', '.join(repr(n) for n in unknown)}; "
                f"its outputs are {', '.join(repr(n) for n in self._output_names)}"
            )
        return list(wanted)

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the model on already validated ``inputs`` (synchronously, in the calling thread).

        Returns
        -------
        dict of str to ndarray
            The requested outputs (all by default), in the order asked for.
        """
        names = self.output_names(outputs)
        results = self._session.run(names, inputs)
        return dict(zip(names, results, strict=True))

    def metadata(self, versions: list[str] | None = None) -> dict[str, Any]:
        """The protocol's model metadata: name, versions, platform, inputs and outputs.

        ``versions`` lists the versions the repository holds (default: this one).
        """
        return {
            "name": self.name,
            "versions": list(versions) if versions is not None else [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [spec.as_dict() for spec in self.inputs],
            "outputs": [spec.as_dict() for spec in self.outputs],
        }


def _read_config(path: Path) -> dict[str, Any]:
    from aiforge.yamlio import read_yaml

    document = read_yaml(path, "model config")
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InvalidInput(f"{path} must be a mapping of settings, got {type(document).__name__}")
    return document


class ModelRepository:
    """The models of a repository folder, every version loaded.

    Use :meth:`load`; ``ModelRepository(models)`` takes already loaded versions (``{name: {version: ModelVersion}}``).
    """

    def __init__(self, models: dict[str, dict[str, ModelVersion]], root: Path | None = None) -> None:
        self.root = root
        self._models = {name: dict(sorted(versions.items(), key=lambda item: int(item[0])))
                        for name, versions in sorted(models.items())}

    @classmethod
    def load(cls, root: str | Path, *, overrides: dict[str, Any] | None = None) -> ModelRepository:
        """Load every version of every model under ``root``.

        Parameters
        ----------
        root : str or Path
            The repository folder: ``root/<name>/<version>/model.onnx`` plus optional ``root/<name>/config.yaml``.
        overrides : dict, optional
            Config values (e.g. from the command line) applied over every model's ``config.yaml``; ``None`` values
            are ignored.

        Raises
        ------
        NotFound
            ``root`` does not exist.
        InvalidInput
            The folder holds no model, a model has no version, a ``config.yaml`` has an unknown key or a bad value,
            or a ``model.onnx`` cannot be loaded.
        """
        store = ModelStore(root)
        root = store.root
        if not root.is_dir():
            raise NotFound(
                f"model repository {root} does not exist or is not a folder; expected {root}/{LAYOUT} "
                f"(aiforge.serve.deploy.export_sklearn or export_torch writes one)"
            )
        if overrides:
            ModelConfig.from_dict({k: v for k, v in overrides.items() if v is not None}, "overrides")
        models: dict[str, dict[str, ModelVersion]] = {}
        for name in store.names():
            config_path = store.config_file(name)
            config = ModelConfig()
            if config_path.exists():
                config = ModelConfig.from_dict(_read_config(config_path), str(config_path))
            config = config.merged(overrides)
            folders = store.version_dirs(name)
            if not folders:
                raise InvalidInput(
                    f"model {name!r} in {root} has no version folder; expected {store.model_file(name, 1)}"
                )
            loaded: dict[str, ModelVersion] = {}
            for number, folder in folders.items():
                model_file = store.model_file(name, number)
                if not model_file.is_file():
                    raise InvalidInput(
                        f"model {name!r} version {folder.name} has no {MODEL_FILE}; expected {model_file}"
                    )
                loaded[str(number)] = ModelVersion(name, str(number), model_file, config)
            models[name] = loaded
        if not models:
            raise InvalidInput(
                f"model repository {root} holds no model; expected {root}/{LAYOUT}"
            )
        return cls(models, root)

    def names(self) -> list[str]:
        """The model names, sorted."""
        return list(self._models)

    def versions(self, name: str) -> list[str]:
        """The versions of model ``name``, oldest first."""
        return list(self._versions(name))

    def _versions(self, name: str) -> dict[str, ModelVersion]:
        try:
            return self._models[name]
        except KeyError:
            raise ModelNotFound(
                f"model {name!r} is not in the repository; available models: {', '.join(self._models) or 'none'}"
            ) from None

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """Model ``name`` at ``version``; ``None`` or ``""`` is the newest version.

        Raises
        ------
        ModelNotFound
            The repository has no such model or version.
        """
        versions = self._versions(name)
        if not version:
            return versions[next(reversed(versions))]
        try:
            return versions[version]
        except KeyError:
            raise ModelNotFound(
                f"model {name!r} has no version {version!r}; available versions: {', '.join(versions)}"
            ) from None

    def __iter__(self) -> Any:
        for versions in self._models.values():
            yield from versions.values()
