"""Open Inference Protocol V2 (KServe, Triton, MLServer), JSON and binary tensors.

A table travels the way MLServer and KServe clients send a DataFrame: one
input per column (request parameter ``content_type: "pd"``), strings as
``BYTES``. A single 2-D input of all the columns in signature order is taken
too. Outputs are ``predict``, ``predict_proba`` (classifiers) and
``prediction_id``; a request that names no ``outputs`` gets every one, as the
protocol says. ``/config`` and ``/stats`` answer in Triton's shapes, so
``tritonclient``'s ``get_model_config`` and ``get_inference_statistics``
work. The binary tensor data extension is supported both ways:
a JSON header of ``Inference-Header-Content-Length`` bytes followed by raw
tensors, which is what ``tritonclient`` sends by default.
"""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from loopml.core.errors import InputError, LoopmlError
from loopml.serving.table import InputSchema, Table

HEADER_LENGTH = "inference-header-content-length"
_NUMPY = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_SIGNATURE_TYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}
OUTPUTS = ("predict", "predict_proba", "prediction_id")


class V2Error(LoopmlError):
    """A request the protocol itself rules out; answered ``{"error": ...}`` with ``status``."""

    exit_code = 2

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class V2Request:
    table: Table
    outputs: list[str]
    binary: dict[str, bool]
    id: str | None
    every_output: bool = False
    """No outputs were named: answer with every output the model has."""


def datatype_of_column(kind: str) -> str:
    return _SIGNATURE_TYPES.get(kind, "BYTES")


def parse(body: bytes, header_length: str | None, schema: InputSchema) -> V2Request:
    """Decode a V2 inference request (JSON, or JSON header plus binary tensors)."""
    binary = b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise V2Error(
                f"Inference-Header-Content-Length {header_length!r} is not a number"
            ) from None
        if size < 0 or size > len(body):
            raise V2Error(
                f"Inference-Header-Content-Length is {size} but the body has {len(body)} bytes"
            )
        body, binary = body[:size], body[size:]
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise V2Error(f"the request is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise V2Error("the request must be a JSON object with an 'inputs' list")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("inputs", "missing or empty", "a list of input tensors, one per column")
    parameters = request.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise V2Error("'parameters' must be an object")
    tensors: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    for i, tensor in enumerate(inputs):
        array, offset = _tensor(tensor, i, binary, offset)
        tensors[str(tensor["name"])] = array
    if offset != len(binary):
        raise V2Error(f"{len(binary) - offset} bytes of binary data belong to no input")
    table = _table(tensors, schema, parameters.get("content_type"))
    outputs, wants_binary = _outputs(request.get("outputs"), parameters)
    request_id = request.get("id")
    return V2Request(
        table,
        outputs,
        wants_binary,
        str(request_id) if request_id else None,
        every_output=request.get("outputs") is None,
    )


def _tensor(tensor: Any, i: int, binary: bytes, offset: int) -> tuple[Any, int]:
    where = f"inputs[{i}]"
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise V2Error(f"{where} must be an object with a 'name', 'shape', 'datatype' and 'data'")
    datatype = tensor.get("datatype")
    shape = tensor.get("shape")
    if datatype != "BYTES" and datatype not in _NUMPY:
        raise V2Error(
            f"{where} ({tensor['name']}): datatype {datatype!r} is not one of "
            f"{', '.join([*_NUMPY, 'BYTES'])}"
        )
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or not shape
    ):
        raise V2Error(f"{where} ({tensor['name']}): shape must be a list of non-negative ints")
    count = int(np.prod(shape))
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise V2Error(
                f"{where} ({tensor['name']}): binary_data_size {size!r} overruns the body"
            )
        raw = binary[offset : offset + size]
        offset += size
        if datatype == "BYTES":
            values: Any = np.array(_split_bytes(raw, where), dtype=object)
        else:
            dtype = _NUMPY[datatype]
            if size != count * dtype.itemsize:
                raise V2Error(
                    f"{where} ({tensor['name']}): {size} bytes of {datatype} "
                    f"do not fill shape {shape}"
                )
            values = np.frombuffer(raw, dtype=dtype)
    else:
        data = tensor.get("data")
        if not isinstance(data, list):
            raise V2Error(f"{where} ({tensor['name']}): 'data' must be a list")
        flat = _flatten(data)
        if datatype == "BYTES":
            values = np.array(flat, dtype=object)
        else:
            try:
                values = np.array(flat, dtype=_NUMPY[datatype])
            except (ValueError, TypeError, OverflowError) as exc:
                raise InputError(
                    f"{where}.data", f"values do not fit {datatype} ({exc})", f"{datatype} values"
                ) from None
    if len(values) != count:
        raise V2Error(f"{where} ({tensor['name']}): {len(values)} values do not fill shape {shape}")
    return values.reshape(shape) if len(shape) > 1 else values, offset


def _flatten(data: list[Any]) -> list[Any]:
    if not any(isinstance(item, list) for item in data):
        return data
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _split_bytes(raw: bytes, where: str) -> list[str]:
    values = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise V2Error(f"{where}: truncated BYTES element length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise V2Error(f"{where}: BYTES element overruns the tensor")
        values.append(raw[offset : offset + length].decode("utf-8", "replace"))
        offset += length
    return values


def _table(
    tensors: dict[str, np.ndarray[Any, Any]], schema: InputSchema, content_type: Any
) -> Table:
    named = any(name in schema.by_name for name in tensors)
    if content_type == "pd" or named or len(tensors) != 1:
        columns: dict[str, Any] = {}
        for name, array in tensors.items():
            if array.ndim > 2 or (array.ndim == 2 and array.shape[1] != 1):
                raise InputError(
                    f"inputs.{name}",
                    f"has shape {list(array.shape)}",
                    "one column per input, shape [rows] or [rows, 1]",
                )
            columns[name] = array.reshape(-1)
        return schema.from_columns(columns, where="inputs")
    ((name, array),) = tensors.items()
    width = len(schema.names)
    if array.ndim != 2 or array.shape[1] != width:
        raise InputError(
            f"inputs.{name}",
            f"is not a signature column and has shape {list(array.shape)}",
            f"one input per column ({', '.join(schema.names[:5])}...) with content_type 'pd', "
            f"or one [rows, {width}] tensor of all columns in signature order",
        )
    return schema.from_columns(
        {column: array[:, j] for j, column in enumerate(schema.names)}, where=f"inputs.{name}"
    )


def _outputs(requested: Any, parameters: dict[str, Any]) -> tuple[list[str], dict[str, bool]]:
    default_binary = bool(parameters.get("binary_data_output", False))
    if requested is None:  # no outputs named: every output the model has
        return list(OUTPUTS), dict.fromkeys(OUTPUTS, default_binary)
    if not isinstance(requested, list):
        raise V2Error("'outputs' must be a list of {\"name\": ...} objects")
    names: list[str] = []
    binary: dict[str, bool] = {}
    for i, output in enumerate(requested):
        if not isinstance(output, dict) or output.get("name") not in OUTPUTS:
            found = output.get("name") if isinstance(output, dict) else output
            raise V2Error(
                f"outputs[{i}]: unknown output {found!r}; this server has {list(OUTPUTS)}"
            )
        names.append(output["name"])
        params = output.get("parameters") or {}
        flag = params.get("binary_data", default_binary) if isinstance(params, dict) else False
        binary[output["name"]] = bool(flag)
    return names, binary


def response(
    model_name: str,
    model_version: str,
    request: V2Request,
    tensors: dict[str, np.ndarray[Any, Any]],
) -> tuple[bytes, int | None]:
    """Body bytes and, when any output is binary, the JSON header's length."""
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name in request.outputs:
        if name not in tensors:  # predict_proba of a regressor, when every output was asked for
            continue
        array = tensors[name]
        datatype = _datatype(array)
        entry: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": datatype}
        if request.binary.get(name):
            raw = _to_bytes(array, datatype)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = array.reshape(-1).tolist()
        outputs.append(entry)
    header: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": outputs,
    }
    if request.id is not None:
        header["id"] = request.id
    encoded = orjson.dumps(header)
    if not chunks:
        return encoded, None
    return encoded + b"".join(chunks), len(encoded)


def datatype_of_values(values: list[Any]) -> str:
    """The V2 datatype ``predict`` has for a classifier with these classes."""
    return _datatype(np.asarray(values))


def _datatype(array: np.ndarray[Any, Any]) -> str:
    if array.dtype.kind in "OUS":
        return "BYTES"
    for name, dtype in _NUMPY.items():
        if array.dtype == dtype:
            return name
    return "FP64"


def _to_bytes(array: np.ndarray[Any, Any], datatype: str) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(array, dtype=_NUMPY[datatype]).tobytes()
    parts = []
    for value in array.reshape(-1).tolist():
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)


def model_metadata(
    name: str, version: str, schema: InputSchema, classes: list[Any] | None, predict_type: str
) -> dict[str, Any]:
    outputs: list[dict[str, Any]] = [{"name": "predict", "datatype": predict_type, "shape": [-1]}]
    if classes is not None:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
    outputs.append({"name": "prediction_id", "datatype": "BYTES", "shape": [-1]})
    return {
        "name": name,
        "versions": [version],
        "platform": "loopml",
        "inputs": [
            {
                "name": column.name,
                "datatype": datatype_of_column(column.kind),
                "shape": [-1],
            }
            for column in schema.columns
        ],
        "outputs": outputs,
        "parameters": {"content_type": "pd"},
    }


_CONFIG_TYPES = {name: f"TYPE_{name}" for name in _NUMPY} | {"BYTES": "TYPE_STRING"}


def model_config(metadata: dict[str, Any]) -> dict[str, Any]:
    """The model's configuration in Triton's shape (``GET /v2/models/{name}/config``)."""

    def tensor(entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": entry["name"],
            "data_type": _CONFIG_TYPES.get(entry["datatype"], "TYPE_STRING"),
            "dims": entry["shape"],
        }

    return {
        "name": metadata["name"],
        "platform": metadata["platform"],
        "backend": "loopml",
        "version_policy": {"specific": {"versions": metadata["versions"]}},
        "max_batch_size": 0,
        "input": [tensor(entry) for entry in metadata["inputs"]],
        "output": [tensor(entry) for entry in metadata["outputs"]],
        "parameters": {"content_type": {"string_value": "pd"}},
    }


@dataclass
class _Tally:
    count: int = 0
    ns: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class InferenceStats:
    """Counts and times of V2 inferences per version, for ``GET /v2/models/{name}/stats``."""

    success: dict[str, _Tally] = field(default_factory=dict)
    fail: dict[str, _Tally] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    last_ms: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, version: str, started_ns: int, *, ok: bool, rows: int = 0) -> None:
        spent = time.perf_counter_ns() - started_ns
        with self._lock:
            tally = (self.success if ok else self.fail).setdefault(version, _Tally())
            tally.count += 1
            tally.ns += spent
            if ok:
                self.rows[version] = self.rows.get(version, 0) + rows
                self.last_ms[version] = int(time.time() * 1000)

    def as_dict(self, name: str, versions: list[str]) -> dict[str, Any]:
        with self._lock:
            return {
                "model_stats": [
                    {
                        "name": name,
                        "version": version,
                        "last_inference": self.last_ms.get(version, 0),
                        "inference_count": self.rows.get(version, 0),
                        "execution_count": self.success.get(version, _Tally()).count,
                        "inference_stats": {
                            "success": self.success.get(version, _Tally()).as_dict(),
                            "fail": self.fail.get(version, _Tally()).as_dict(),
                        },
                        "batch_stats": [],
                    }
                    for version in versions
                ]
            }
