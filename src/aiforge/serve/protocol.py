"""Open Inference Protocol v2: tensors, requests and responses, and their JSON and gRPC encodings.

Everything that crosses a wire in SERVE goes through this module, so the inference server, the APS server, the
co-located mode and the load tester agree on one encoding::

    >>> import numpy as np
    >>> request = InferRequest([Tensor("x", np.arange(6, dtype=np.float32).reshape(2, 3))])
    >>> body = request_to_json(request)
    >>> body
    b'{"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[0.0,1.0,2.0,3.0,4.0,5.0]}]}'
    >>> request_from_json(body).inputs[0].data.shape
    (2, 3)
    >>> request_from_grpc(request_to_grpc(request, "mlp")).inputs[0].data.tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]

In JSON, ``null`` in a floating-point tensor is a missing value and decodes to NaN (whether the model takes it is
the inference server's call, see :meth:`~aiforge.serve.inference.repository.ModelVersion.validate`); in any other
tensor it is an error.

The gRPC encoding always sends raw little-endian bytes (``raw_input_contents``), the fast path of the protocol; it
reads typed ``contents`` too, so any v2 client can call us.
"""

from __future__ import annotations

import math
import struct
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from aiforge.errors import InvalidInput

__all__ = [
    "DATATYPES",
    "InferRequest",
    "InferResponse",
    "Tensor",
    "datatype_of",
    "grpc_modules",
    "numpy_dtype",
    "request_from_grpc",
    "request_from_json",
    "request_to_grpc",
    "request_to_json",
    "response_from_grpc",
    "response_from_json",
    "response_to_grpc",
    "response_to_json",
]

#: Protocol datatype -> numpy dtype. BYTES tensors hold Python ``bytes`` (or ``str``) in an object array.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_DATATYPE_OF = {dtype: name for name, dtype in DATATYPES.items() if name != "BYTES"}
# Which typed-contents field of InferTensorContents carries each datatype (gRPC, when raw bytes are not used).
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of a protocol datatype name such as ``"FP32"``."""
    try:
        return DATATYPES[datatype]
    except (KeyError, TypeError):
        raise InvalidInput(
            f"unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}"
        ) from None


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype name of a numpy array (strings and bytes are ``BYTES``)."""
    if array.dtype.kind in "OSU":
        return "BYTES"
    try:
        return _DATATYPE_OF[array.dtype.newbyteorder("=")]
    except KeyError:
        raise InvalidInput(f"arrays of dtype {array.dtype} cannot be sent; convert them to one of: "
                           f"{', '.join(str(d) for d in _DATATYPE_OF)}") from None


@dataclass
class Tensor:
    """A named n-dimensional array; ``datatype`` defaults to the array's own."""

    name: str
    data: np.ndarray
    datatype: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.datatype:
            self.datatype = datatype_of(self.data)

    @property
    def shape(self) -> list[int]:
        return list(self.data.shape)


@dataclass
class InferRequest:
    """An inference request: input tensors, optionally the outputs wanted, an id and free-form parameters."""

    inputs: list[Tensor]
    outputs: list[str] | None = None
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    model_name: str = ""
    model_version: str = ""

    def as_dict(self) -> dict[str, np.ndarray]:
        return {tensor.name: tensor.data for tensor in self.inputs}


@dataclass
class InferResponse:
    """An inference response: output tensors plus the model, version and request id that produced them."""

    outputs: list[Tensor]
    model_name: str = ""
    model_version: str = ""
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {tensor.name: tensor.data for tensor in self.outputs}


# ---------------------------------------------------------------------------------------------------------- JSON


def _tensor_from_json(item: Any, where: str) -> Tensor:
    if not isinstance(item, dict):
        raise InvalidInput(f"{where} must be an object with name, shape, datatype and data; got {type(item).__name__}")
    missing = [key for key in ("name", "shape", "datatype", "data") if key not in item]
    if missing:
        raise InvalidInput(f"{where} is missing {', '.join(repr(k) for k in missing)}")
    name, shape, datatype = item["name"], item["shape"], item["datatype"]
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where}: 'name' must be a non-empty string")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidInput(f"input {name!r}: 'shape' must be a list of non-negative integers, got {shape!r}")
    dtype = numpy_dtype(datatype)
    try:
        if datatype == "BYTES":
            flat = np.array([_as_bytes(v) for v in _flatten(item["data"])], dtype=object)
        else:  # a null in a floating-point tensor becomes NaN: a missing value, for the model's config to judge
            flat = np.asarray(item["data"], dtype=dtype).reshape(-1)
    except (TypeError, ValueError) as exc:
        if None in _flatten(item["data"]):
            raise InvalidInput(_null_message(name, datatype)) from None
        raise InvalidInput(f"input {name!r}: data is not a list of {datatype} values ({exc})") from None
    if datatype == "BOOL" and None in _flatten(item["data"]):  # numpy reads a null as False: refuse it instead
        raise InvalidInput(_null_message(name, datatype))
    expected = math.prod(shape)
    if flat.size != expected:
        raise InvalidInput(
            f"input {name!r}: shape {shape} needs {expected} values but 'data' has {flat.size}"
        )
    return Tensor(name, flat.reshape(shape), datatype, _parameters(item, f"input {name!r}"))


def _parameters(document: dict[str, Any], where: str) -> dict[str, Any]:
    value = document.get("parameters")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: 'parameters' must be an object of name -> value, got {type(value).__name__}")
    return dict(value)


def _null_message(name: str, datatype: str) -> str:
    return (f"input {name!r} ({datatype}) holds a null; only FP16, FP32 and FP64 tensors can carry missing values "
            "(null = NaN)")


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for value in data:
        out.extend(_flatten(value) if isinstance(value, list) else [value])
    return out


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"BYTES elements must be strings, got {type(value).__name__}")


def _loads(body: bytes | str | dict[str, Any], what: str) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the {what} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"the {what} must be a JSON object, got {type(document).__name__}")
    return document


def request_from_json(body: bytes | str | dict[str, Any]) -> InferRequest:
    """Parse a REST inference request (``{"inputs": [{"name", "shape", "datatype", "data"}], ...}``)."""
    document = _loads(body, "request body")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("the request needs a non-empty 'inputs' list of {name, shape, datatype, data} objects")
    tensors = [_tensor_from_json(item, f"inputs[{i}]") for i, item in enumerate(inputs)]
    outputs = document.get("outputs")
    wanted = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                    for o in outputs):
            raise InvalidInput("'outputs' must be a list of objects with a 'name'")
        wanted = [o["name"] for o in outputs]
    request_id = document.get("id", "")
    return InferRequest(tensors, wanted, str(request_id), _parameters(document, "the request"))


def _tensor_to_json(tensor: Tensor) -> dict[str, Any]:
    data = tensor.data
    if tensor.datatype == "BYTES":
        values: Any = [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in data.reshape(-1)]
    elif tensor.datatype == "FP16":
        values = data.astype(np.float32).reshape(-1)
    else:
        values = np.ascontiguousarray(data).reshape(-1)
    item: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape, "data": values}
    if tensor.parameters:
        item["parameters"] = tensor.parameters
    return item


def _dumps(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def request_to_json(request: InferRequest) -> bytes:
    """Encode a request as the REST body of ``POST /v2/models/{name}/infer``."""
    document: dict[str, Any] = {"inputs": [_tensor_to_json(t) for t in request.inputs]}
    if request.id:
        document["id"] = request.id
    if request.outputs is not None:
        document["outputs"] = [{"name": name} for name in request.outputs]
    if request.parameters:
        document["parameters"] = request.parameters
    return _dumps(document)


def response_to_json(response: InferResponse) -> bytes:
    """Encode a response as the REST body the protocol specifies."""
    document: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version:
        document["model_version"] = response.model_version
    if response.id:
        document["id"] = response.id
    if response.parameters:
        document["parameters"] = response.parameters
    document["outputs"] = [_tensor_to_json(t) for t in response.outputs]
    return _dumps(document)


def response_from_json(body: bytes | str | dict[str, Any]) -> InferResponse:
    """Parse a REST inference response."""
    document = _loads(body, "response body")
    outputs = document.get("outputs")
    if not isinstance(outputs, list):
        raise InvalidInput("the response has no 'outputs' list")
    tensors = [_tensor_from_json(item, f"outputs[{i}]") for i, item in enumerate(outputs)]
    return InferResponse(tensors, str(document.get("model_name", "")), str(document.get("model_version", "")),
                         str(document.get("id", "")), _parameters(document, "the response"))


# ---------------------------------------------------------------------------------------------------------- gRPC


@cache
def grpc_modules() -> tuple[Any, Any]:
    """The ``(messages, services)`` modules built from ``grpc_predict_v2.proto`` (once per process)."""
    import grpc

    root = str(Path(__file__).resolve().parents[2])  # the folder that holds the `aiforge` package
    if root not in sys.path:
        sys.path.append(root)
    return grpc.protos_and_services("aiforge/serve/grpc_predict_v2.proto")


def _raw_bytes(array: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in array.reshape(-1):
            encoded = _as_bytes(value)
            parts.append(struct.pack("<I", len(encoded)))
            parts.append(encoded)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=DATATYPES[datatype].newbyteorder("<")).tobytes()


def _from_raw(raw: bytes, datatype: str, shape: list[int], name: str) -> np.ndarray:
    expected = math.prod(shape)
    if datatype == "BYTES":
        values, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise InvalidInput(f"input {name!r}: truncated BYTES element")
            (length,) = struct.unpack_from("<I", raw, offset)
            values.append(raw[offset + 4: offset + 4 + length])
            offset += 4 + length
        flat = np.array(values, dtype=object)
    else:
        dtype = DATATYPES[datatype].newbyteorder("<")
        if len(raw) != expected * dtype.itemsize:
            raise InvalidInput(
                f"input {name!r}: shape {shape} of {datatype} needs {expected * dtype.itemsize} bytes, "
                f"got {len(raw)}"
            )
        flat = np.frombuffer(raw, dtype=dtype)
    if flat.size != expected:
        raise InvalidInput(f"input {name!r}: shape {shape} needs {expected} values, got {flat.size}")
    return flat.reshape(shape)


def _from_contents(contents: Any, datatype: str, shape: list[int], name: str) -> np.ndarray:
    if datatype == "FP16":
        raise InvalidInput(f"input {name!r}: FP16 tensors must be sent as raw_input_contents")
    values = list(getattr(contents, _CONTENTS_FIELD[datatype]))
    flat = np.array(values, dtype=object) if datatype == "BYTES" else np.asarray(values, dtype=DATATYPES[datatype])
    expected = math.prod(shape)
    if flat.size != expected:
        raise InvalidInput(f"input {name!r}: shape {shape} needs {expected} values, got {flat.size}")
    return flat.reshape(shape)


def _params_to_grpc(target: Any, parameters: dict[str, Any]) -> None:
    for key, value in parameters.items():
        slot = target[key]
        if isinstance(value, bool):
            slot.bool_param = value
        elif isinstance(value, int):
            slot.int64_param = value
        elif isinstance(value, float):
            slot.double_param = value
        else:
            slot.string_param = str(value)


def _params_from_grpc(source: Any) -> dict[str, Any]:
    return {key: getattr(value, value.WhichOneof("parameter_choice")) for key, value in source.items()
            if value.WhichOneof("parameter_choice")}


def _tensors_from_grpc(tensors: Any, raw: Any, what: str) -> list[Tensor]:
    if raw and len(raw) != len(tensors):
        raise InvalidInput(f"{len(tensors)} {what} tensors but {len(raw)} raw contents; send one per tensor")
    out = []
    for i, tensor in enumerate(tensors):
        shape = list(tensor.shape)
        if any(d < 0 for d in shape):
            raise InvalidInput(f"{what} {tensor.name!r}: shape {shape} has a negative dimension")
        numpy_dtype(tensor.datatype)
        data = (_from_raw(raw[i], tensor.datatype, shape, tensor.name) if raw
                else _from_contents(tensor.contents, tensor.datatype, shape, tensor.name))
        out.append(Tensor(tensor.name, data, tensor.datatype, _params_from_grpc(tensor.parameters)))
    return out


def request_to_grpc(request: InferRequest, model_name: str | None = None, model_version: str | None = None) -> Any:
    """A ``ModelInferRequest`` message carrying the inputs as raw bytes."""
    pb, _ = grpc_modules()
    message = pb.ModelInferRequest(
        model_name=model_name or request.model_name, model_version=model_version or request.model_version,
        id=request.id,
    )
    for tensor in request.inputs:
        item = message.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        _params_to_grpc(item.parameters, tensor.parameters)
        message.raw_input_contents.append(_raw_bytes(tensor.data, tensor.datatype))
    for name in request.outputs or []:
        message.outputs.add(name=name)
    _params_to_grpc(message.parameters, request.parameters)
    return message


def request_from_grpc(message: Any) -> InferRequest:
    """Decode a ``ModelInferRequest`` (raw or typed contents)."""
    if not message.inputs:
        raise InvalidInput("the request has no inputs")
    inputs = _tensors_from_grpc(message.inputs, message.raw_input_contents, "input")
    outputs = [o.name for o in message.outputs] or None
    return InferRequest(inputs, outputs, message.id, _params_from_grpc(message.parameters),
                        message.model_name, message.model_version)


def response_to_grpc(response: InferResponse) -> Any:
    """A ``ModelInferResponse`` message carrying the outputs as raw bytes."""
    pb, _ = grpc_modules()
    message = pb.ModelInferResponse(model_name=response.model_name, model_version=response.model_version,
                                    id=response.id)
    for tensor in response.outputs:
        item = message.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        _params_to_grpc(item.parameters, tensor.parameters)
        message.raw_output_contents.append(_raw_bytes(tensor.data, tensor.datatype))
    _params_to_grpc(message.parameters, response.parameters)
    return message


def response_from_grpc(message: Any) -> InferResponse:
    """Decode a ``ModelInferResponse`` (raw or typed contents)."""
    outputs = _tensors_from_grpc(message.outputs, message.raw_output_contents, "output")
    return InferResponse(outputs, message.model_name, message.model_version, message.id,
                         _params_from_grpc(message.parameters))
