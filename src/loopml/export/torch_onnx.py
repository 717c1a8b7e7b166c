"""A PyTorch model logged with ``mlflow.pytorch`` as an ONNX graph (``torch.onnx.export``).

The pyfunc of such a model turns the frame into one float32 matrix in
signature order and returns the module's output; the graph takes the same
matrix (input ``input``, dynamic rows). How that output is read is the
model's output contract (:mod:`loopml.registry.project_model`, written by
``run_mlflow_project``), and the graph is given outputs that say it the way
loopml's other exports do:

- a classifier of k classes whose module returns k + 1 columns (class index,
  then probabilities): ``label`` is column 0 (an index into the contract's
  classes, stamped into the graph), ``probabilities`` the other k columns;
- one returning k columns (probabilities): ``label`` is their argmax;
- a regressor, or a module without a contract: column 0 is the value.

Anything else (a module that does not trace, another column count) is
refused with the reason (docs/onnx.md). Needs the ``torch`` extra as well
as ``onnx``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from loopml.export.convert import Converted, OnnxInput, stamp
from loopml.export.errors import ExportError

OUTPUT = "output"
"""The module's own output in the graph (before the contract's outputs are cut from it)."""


def is_torch(pyfunc: Any) -> bool:
    return "pytorch" in getattr(pyfunc.metadata, "flavors", {})


def convert_torch(
    pyfunc: Any,
    columns: list[str],
    name: str,
    *,
    problem_type: str | None = None,
    classes: list[Any] | None = None,
) -> Converted:
    """The module inside ``pyfunc`` exported with one float input of ``len(columns)`` columns.

    ``problem_type`` and ``classes`` are the model's output contract (``None``
    without one: the graph's value is the module's first output column).
    """
    try:
        import onnx
        import torch  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise ExportError(
            f"exporting a PyTorch model needs torch and onnx ({exc.name} is missing): "
            "pip install 'loopml[onnx,torch]'"
        ) from exc
    module = pyfunc.get_raw_model()
    if hasattr(module, "eval"):
        module.eval()
    example = torch.zeros((2, len(columns)), dtype=torch.float32)
    width = _output_width(module, example)
    errors = []
    with tempfile.TemporaryDirectory(prefix="loopml-torch-onnx-") as scratch:
        target = Path(scratch) / "model.onnx"
        for dynamo in (False, True):  # the TorchScript exporter needs no onnxscript
            try:
                torch.onnx.export(
                    module,
                    (example,),
                    target,
                    input_names=["input"],
                    output_names=[OUTPUT],
                    dynamic_axes={"input": {0: "rows"}, OUTPUT: {0: "rows"}},
                    opset_version=17,
                    dynamo=dynamo,
                )
                break
            except Exception as exc:  # torch raises many kinds; keep each reason
                kind = "dynamo" if dynamo else "torchscript"
                errors.append(f"{kind}: {type(exc).__name__}: {exc}")
        else:
            raise ExportError(
                f"torch.onnx.export cannot export this module ({'; '.join(errors)}); "
                "a module must trace with one float tensor of the signature's columns "
                "(docs/onnx.md)"
            )
        model = onnx.load(str(target))
    model.graph.name = name
    inputs = [OnnxInput("input", list(columns), "float")]
    if problem_type == "classification":
        if not classes:
            raise ExportError("the model's output contract names no classes")
        _classifier_outputs(model, width, len(classes))
        converted = Converted(model, inputs, "classifier", list(classes), label_index=True)
    else:
        converted = Converted(model, inputs, "regressor" if problem_type else "values")
    stamp(converted)
    return converted


def _output_width(module: Any, example: Any) -> int:
    """Columns per row of the module's output (a 2-D float tensor), or why it has none."""
    import torch

    try:
        with torch.no_grad():
            output = module(example)
    except Exception as exc:
        raise ExportError(
            f"the module cannot score a float32 matrix of {example.shape[1]} columns "
            f"({type(exc).__name__}: {exc}); loopml exports modules that take the signature's "
            "columns as one tensor (docs/onnx.md)"
        ) from exc
    if not isinstance(output, torch.Tensor) or output.dim() not in (1, 2):
        raise ExportError(
            f"the module returns {type(output).__name__}"
            f"{'' if not isinstance(output, torch.Tensor) else f' of {output.dim()} dimensions'}; "
            "loopml exports modules that return one tensor of one row per input row (docs/onnx.md)"
        )
    return 1 if output.dim() == 1 else int(output.shape[1])


def _classifier_outputs(model: Any, width: int, k: int) -> None:
    """Replace the graph's output by ``label`` and ``probabilities`` as the contract reads it."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    if width == k + 1:
        bounds = {"zero": 0, "one": 1, "end": k + 1}
        for key, value in bounds.items():
            graph.initializer.append(
                numpy_helper.from_array(np.asarray([value], dtype=np.int64), f"loopml_{key}")
            )
        graph.node.extend(
            [
                helper.make_node(
                    "Slice", [OUTPUT, "loopml_zero", "loopml_one", "loopml_one"], ["label"]
                ),
                helper.make_node(
                    "Slice", [OUTPUT, "loopml_one", "loopml_end", "loopml_one"], ["probabilities"]
                ),
            ]
        )
        label_type = TensorProto.FLOAT
    elif width == k:
        graph.node.extend(
            [
                helper.make_node("ArgMax", [OUTPUT], ["label"], axis=1, keepdims=1),
                helper.make_node("Identity", [OUTPUT], ["probabilities"]),
            ]
        )
        label_type = TensorProto.INT64
    else:
        raise ExportError(
            f"the module returns {width} columns per row; a classifier of {k} classes must "
            f"return {k + 1} (class index, then one probability per class) or {k} "
            "(probabilities), as its output contract says (docs/onnx.md)"
        )
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("label", label_type, ["rows", 1]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["rows", k]),
        ]
    )
