"""APS handlers: the user's pre- and post-processing around a model, and how a handler is found from a spec.

A handler turns the JSON a client sends into the model's input tensors (:meth:`Handler.preprocess`) and the model's
output tensors into the JSON the client gets back (:meth:`Handler.postprocess`). Business data that is neither, such
as a segment, an experiment arm or a price, goes into ``context.metadata`` and comes back under ``"metadata"``::

    from aiforge.serve.aps.handler import Handler

    class Churn(Handler):
        def preprocess(self, payload, context):
            context.metadata["customer"] = payload["customer_id"]
            return {"input": np.asarray([payload["features"]], dtype=np.float32)}

        def postprocess(self, response, context):
            score = float(response.outputs[-1].data[0, 1])
            return {"churn": score > 0.5, "score": score, "customer": context.metadata["customer"]}

:class:`TransformHandler` reuses a BATCH transform artifact (``transform.json``) as the preprocessing, so the served
model sees exactly the features it was trained on. :func:`load_handler` finds a handler from ``"pkg.mod:Class"``,
``"path/file.py:Class"``, ``"path/file.py"``, ``"transform:REF"`` or ``"default"``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aiforge.errors import AiforgeError, InvalidInput, NotFound
from aiforge.serve.protocol import DATATYPES, InferRequest, InferResponse, request_from_json

__all__ = ["Context", "Handler", "TransformHandler", "load_handler"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Context:
    """What a handler knows about the request it is processing.

    Attributes
    ----------
    request_id : str
        The client's ``X-Request-Id`` header, or a fresh id; echoed back in the response header.
    model, version : str, str or None
        The model (and version, None for the newest) the APS calls.
    headers : dict of str to str
        The HTTP request headers, names in lower case.
    metadata : dict
        Free-form business data the handler keeps between ``preprocess`` and ``postprocess``; the default
        ``postprocess`` returns it under ``"metadata"`` when it is not empty.
    """

    request_id: str
    model: str
    version: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


class Handler:
    """The default handler, and the base class of user handlers.

    The default :meth:`preprocess` accepts three JSON bodies:

    - Open Inference Protocol: ``{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [...]}]}``;
    - rows for the model's first input: ``{"instances": [[0.1, 0.2, 0.3, 0.4], ...]}``;
    - named inputs: ``{"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}}``.

    Attributes
    ----------
    blocking : bool
        Set True when ``preprocess``/``postprocess`` do slow work (I/O, heavy CPU) so the APS runs them in a thread;
        by default they run inline on the event loop, which is faster for cheap work.
    input_name : str or None
        The tensor that ``{"instances": ...}`` fills; None means the model's first input, learned from the model's
        metadata by :meth:`bind` (``"input"`` when the metadata cannot be read).
    model_inputs : list of dict
        The model's inputs (``name``, ``datatype``, ``shape``) once :meth:`bind` has run, else empty.
    """

    blocking: bool = False
    input_name: str | None = None
    model_inputs: list[dict[str, Any]] = []  # noqa: RUF012 - replaced per instance by bind()

    def load(self) -> None:
        """Load what the handler needs (files, lookup tables, clients), once, before the first request."""

    def bind(self, metadata: Mapping[str, Any]) -> None:
        """Learn the model's inputs from its Open Inference Protocol metadata (called by the APS, once).

        Parameters
        ----------
        metadata : mapping
            ``{"name", "versions", "platform", "inputs": [{"name", "datatype", "shape"}], "outputs": [...]}``.
        """
        self.model_inputs = [dict(item) for item in metadata.get("inputs") or []]
        if self.input_name is None and self.model_inputs:
            self.input_name = str(self.model_inputs[0]["name"])

    def preprocess(self, payload: Any, context: Context) -> InferRequest | dict[str, np.ndarray]:
        """Turn the request's JSON into the model's input tensors.

        Parameters
        ----------
        payload : Any
            The parsed JSON body.
        context : Context
            The request's context; put business data in ``context.metadata``.

        Returns
        -------
        InferRequest or dict of str to numpy.ndarray
            The inputs, by tensor name.

        Raises
        ------
        InvalidInput
            The body is none of the accepted forms (answered with HTTP 400). A ``ValueError``, ``KeyError`` or
            ``TypeError`` raised by a subclass's ``preprocess`` is answered 400 too: the payload could not be read.
        """
        if not isinstance(payload, dict):
            raise InvalidInput(
                f"the body must be a JSON object with 'inputs' or 'instances'; got {type(payload).__name__}"
            )
        inputs = payload.get("inputs")
        if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):
            return request_from_json(payload)
        if isinstance(inputs, dict) and inputs:
            return {str(name): self._array(name, value) for name, value in inputs.items()}
        instances = payload.get("instances", inputs if isinstance(inputs, list) else None)
        if isinstance(instances, list) and instances:
            name = self.input_name or "input"
            return {name: self._array(name, instances)}
        raise InvalidInput(
            "the body needs 'inputs' (a list of {name, shape, datatype, data} objects, or {name: rows}) or "
            "'instances' (a non-empty list of rows for the model's first input); got keys: "
            f"{', '.join(map(repr, payload)) or 'none'}"
        )

    def _array(self, name: str, value: Any) -> np.ndarray:
        datatype = next((str(i.get("datatype")) for i in self.model_inputs if i.get("name") == name), None)
        try:
            if datatype in DATATYPES:
                return np.asarray(value, dtype=DATATYPES[datatype])
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:
            expected = f"{datatype} values" if datatype else "numbers"
            raise InvalidInput(f"input {name!r}: expected a (nested) list of {expected} of one shape; {exc}") from None
        if array.dtype == np.float64:
            return array.astype(np.float32)  # ONNX models almost always take FP32
        if array.dtype.kind in "SU":
            return array.astype(object)
        if array.dtype.kind == "O" and _numbers_and_nulls(array):
            # numbers with a null among them: missing numbers (NaN), which the inference server names, not text
            return array.astype(np.float32)
        return array

    def postprocess(self, response: InferResponse, context: Context) -> Any:
        """Turn the model's outputs into the response JSON: ``{"outputs": {name: values}, "metadata": {...}}``.

        The values are numpy arrays, written as (nested) JSON lists; ``"metadata"`` is there only when the handler
        put something in ``context.metadata``.
        """
        outputs = {t.name: _jsonable(t.data) for t in response.outputs}
        if context.metadata:
            return {"outputs": outputs, "metadata": context.metadata}
        return {"outputs": outputs}


def _numbers_and_nulls(array: np.ndarray) -> bool:
    values = array.reshape(-1)
    return all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values)


def _jsonable(array: np.ndarray) -> Any:
    if array.dtype.kind == "O":  # BYTES: text, so it can be JSON
        flat = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in array.reshape(-1)]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return np.ascontiguousarray(array)  # orjson writes C-contiguous arrays as nested lists


class TransformHandler(Handler):
    """A handler whose preprocessing is a fitted BATCH :class:`~aiforge.batch.transform.Transform`.

    The body is one JSON record (``{"age": 31, "city": "Seoul"}``) or a list of records; each becomes the float32
    feature row that BATCH wrote for the same values, so the served model sees exactly its training features.

    Parameters
    ----------
    source : str, Path or Transform, optional
        The artifact: a ``transform.json`` path, a feature snapshot folder, or a snapshot ref (``orders_features@v1``)
        in ``workspace``. Subclasses may set the class attribute ``source`` instead.
    input_name : str, optional
        The tensor the features go to; default the model's first input (see :meth:`Handler.bind`).
    workspace : str or Path, optional
        The workspace that resolves snapshot refs (default ``AIFORGE_HOME`` or ``./.aiforge``).

    Examples
    --------
    >>> handler = TransformHandler("orders_features@v1")  # doctest: +SKIP
    >>> handler.load()  # doctest: +SKIP
    """

    source: Any = None

    def __init__(self, source: Any = None, *, input_name: str | None = None, workspace: Any = None) -> None:
        if source is not None:
            self.source = source
        if input_name is not None:
            self.input_name = input_name
        self.workspace = workspace

    def load(self) -> None:
        """Read the transform artifact (once)."""
        from aiforge.batch.transform import Transform

        if self.source is None:
            raise InvalidInput(
                f"{type(self).__name__} has no transform artifact; pass TransformHandler(source=...) or set the "
                "class attribute source = 'name@vN' or 'path/to/transform.json'"
            )
        source = self.source
        if isinstance(source, str) and (source.endswith(".json") or "/" in source or "\\" in source):
            source = Path(source)  # a path, never a snapshot ref, so a missing file says so
        transform = source if isinstance(source, Transform) else Transform.load(source, workspace=self.workspace)
        # text features may call the NLP API or load Kiwi: keep that off the event loop
        self.blocking = any(item.kind == "text" for item in transform.feature_items())
        self.transform_ = transform

    def bind(self, metadata: Mapping[str, Any]) -> None:
        super().bind(metadata)
        transform = getattr(self, "transform_", None)
        spec = next((i for i in self.model_inputs if i.get("name") == self.input_name), None)
        shape = list(spec.get("shape") or []) if spec else []
        if transform is not None and len(shape) == 2 and shape[1] not in (-1, len(transform.feature_names_)):
            log.warning("model input %r takes %s features per row but the transform makes %d (%s)",
                        self.input_name, shape[1], len(transform.feature_names_), self.source)

    @staticmethod
    def records(payload: Any) -> list[dict[str, Any]]:
        """The body as a list of records: one record ``{...}`` becomes ``[{...}]``, a list stays as it is.

        Use it in a subclass's ``preprocess``/``postprocess`` to read business fields from either form.

        Raises
        ------
        InvalidInput
            The body is neither a JSON object nor a non-empty list of objects (answered with HTTP 400).

        Examples
        --------
        >>> TransformHandler.records({"age": 31})
        [{'age': 31}]
        >>> TransformHandler.records([{"age": 31}, {"age": 40}])
        [{'age': 31}, {'age': 40}]
        """
        records = [payload] if isinstance(payload, dict) else payload
        if not isinstance(records, list) or not records:
            got = "an empty list" if isinstance(records, list) else type(payload).__name__
            raise InvalidInput(f"the body must be a JSON record (an object) or a non-empty list of records; got {got}")
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise InvalidInput(f"record {index} of the body must be a JSON object; got {type(record).__name__}")
        return records

    def features(self, payload: Any) -> np.ndarray:
        """The feature matrix ``(N, D)`` float32 of one record (N = 1) or a list of records."""
        transform = getattr(self, "transform_", None)
        if transform is None:
            raise InvalidInput(f"{type(self).__name__}.load() has not run; call it before preprocess")
        records = self.records(payload)
        try:
            if len(records) > 1:
                table = _records_table(records, transform.input_types_)
                if table is not None:  # one transform call for all rows: the same code, N times less overhead
                    features: np.ndarray = transform.transform(table)
                    return features
            return np.stack([transform.transform_record(r) for r in records])
        except NotFound as exc:  # a key the transform reads is missing: the client's mistake, not a 404
            raise InvalidInput(str(exc)) from exc

    def preprocess(self, payload: Any, context: Context) -> dict[str, np.ndarray]:
        return {self.input_name or "input": self.features(payload)}


def _records_table(records: list[Any], input_types: Mapping[str, str]) -> Any:
    """The records as one Arrow table typed like the training columns, or None when any record is not clean (then
    :meth:`Transform.transform_record`, record by record, says which and why)."""
    import pyarrow as pa

    columns = {}
    try:
        for column, kind in input_types.items():
            columns[column] = pa.array([record[column] for record in records], type=pa.type_for_alias(kind))
    except (KeyError, TypeError, ValueError, OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return pa.table(columns)


# -------------------------------------------------------------------------------------------------- load_handler


def load_handler(spec: str | None, *, transform: Any = None) -> Handler:
    """The handler a spec names, instantiated (``load()`` is not called yet).

    Parameters
    ----------
    spec : str or None
        ``None``, ``""`` or ``"default"``: :class:`Handler`. ``"pkg.mod:Class"``: a class (or a handler instance) in
        an importable module. ``"path/file.py:Class"``: a class in a Python file. ``"path/file.py"``: the one
        Handler subclass the file defines. ``"transform:REF"``: a :class:`TransformHandler` over a BATCH transform
        artifact (a path or a snapshot ref).
    transform : str, Path or Transform, optional
        For a :class:`TransformHandler`: the transform artifact to read instead of the handler's own ``source``
        (``aiforge serve aps --transform``; exported deployments ship ``transform.json`` beside the handler).

    Returns
    -------
    Handler

    Raises
    ------
    InvalidInput
        The file or module cannot be found or imported, the class does not exist or is not a handler, or a file
        without ``:Class`` defines no Handler subclass or more than one; ``transform`` is given for a handler that is
        not a TransformHandler.

    Examples
    --------
    >>> type(load_handler("default")).__name__
    'Handler'
    >>> type(load_handler("transform:orders_features@v1")).__name__
    'TransformHandler'
    """
    handler = _handler_of(spec)
    if transform is not None:
        if not isinstance(handler, TransformHandler):
            raise InvalidInput(f"--transform is for a TransformHandler; {spec} is a {type(handler).__name__}, which "
                               "reads no transform")
        handler.source = transform
    return handler


def _handler_of(spec: str | None) -> Handler:
    if spec is None or spec.strip() in ("", "default"):
        return Handler()
    spec = spec.strip()
    if spec.startswith("transform:"):
        return TransformHandler(spec.removeprefix("transform:"))
    target, sep, name = spec.rpartition(":")
    if not sep or "/" in name or "\\" in name or name.endswith(".py"):
        target, name = spec, ""  # no class part (a bare path may contain a drive colon)
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _import_file(Path(target))
    else:
        module = _import_module(target)
    if not name:
        return _instantiate(_only_handler(module, target), target)
    try:
        obj = getattr(module, name)
    except AttributeError:
        found = _handler_classes(module)
        raise InvalidInput(
            f"{target} has no {name!r}; handler classes it defines: {', '.join(found) or 'none'}"
        ) from None
    if isinstance(obj, Handler):
        return obj
    if not isinstance(obj, type) or not _is_handler(obj):
        got = f"the class {obj.__qualname__}" if isinstance(obj, type) else f"an object of type {type(obj).__name__}"
        raise InvalidInput(
            f"{target}:{name} is not a handler: expected a subclass of aiforge.serve.Handler (or a class with "
            f"preprocess and postprocess methods), got {got}"
        )
    return _instantiate(obj, f"{target}:{name}")


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise InvalidInput(f"handler file {path} does not exist; give a .py file, 'pkg.module:Class' or 'default'")
    resolved = path.resolve()
    module_name = f"aiforge_handler_{resolved.stem}_{abs(hash(str(resolved))):x}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    folder = str(resolved.parent)
    if folder not in sys.path:  # so the handler can import modules that sit beside it
        sys.path.insert(0, folder)
    module_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise InvalidInput(f"cannot import handler file {path}: not a Python source file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise InvalidInput(f"cannot import handler file {path}: {type(exc).__name__}: {exc}") from exc
    return module


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise InvalidInput(
                f"handler module {name!r} not found; give 'pkg.module:Class' importable from here, a path to a .py "
                "file, or 'default'"
            ) from exc
        raise InvalidInput(f"cannot import handler module {name!r}: {exc}") from exc
    except Exception as exc:
        raise InvalidInput(f"cannot import handler module {name!r}: {type(exc).__name__}: {exc}") from exc


def _is_handler(cls: type) -> bool:
    return issubclass(cls, Handler) or (callable(getattr(cls, "preprocess", None))
                                       and callable(getattr(cls, "postprocess", None)))


def _handler_classes(module: Any) -> list[str]:
    return [name for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, Handler) and obj.__module__ == module.__name__]


def _only_handler(module: Any, where: str) -> type:
    names = _handler_classes(module)
    if len(names) != 1:
        what = f"{len(names)} Handler subclasses ({', '.join(names)})" if names else "no Handler subclass"
        raise InvalidInput(
            f"{where} defines {what}; "
            + ("name the one to use as FILE:CLASS" if names else
               "define a class that extends aiforge.serve.aps.handler.Handler, or name a class as FILE:CLASS")
        )
    cls: type = vars(module)[names[0]]
    return cls


def _instantiate(cls: type, where: str) -> Handler:
    required = [p.name for p in list(inspect.signature(cls).parameters.values())
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if required:
        raise InvalidInput(
            f"handler {where} needs arguments ({', '.join(required)}); the APS creates handlers with no arguments: "
            "give them defaults or class attributes"
        )
    try:
        handler: Handler = cls()
    except AiforgeError:
        raise
    except Exception as exc:
        raise InvalidInput(f"cannot create handler {where}: {type(exc).__name__}: {exc}") from exc
    return handler

