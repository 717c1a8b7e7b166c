"""A PyTorch model logged with ``mlflow.pytorch`` as an ONNX graph (``torch.onnx.export``).

The pyfunc of such a model turns the frame into one float32 matrix in
signature order and returns the module's output; the graph takes the same
matrix (input ``input``, dynamic rows) and its first output column is the
value compared in the parity check, as loopml scores non-scikit-learn models
(``loopml.registry.loading.score``). Needs the ``torch`` extra as well as
``onnx``. Not exercised by loopml's tests on a machine without torch.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from loopml.export.convert import Converted, OnnxInput, stamp
from loopml.export.errors import ExportError


def is_torch(pyfunc: Any) -> bool:
    return "pytorch" in getattr(pyfunc.metadata, "flavors", {})


def convert_torch(pyfunc: Any, columns: list[str], name: str) -> Converted:
    """The module inside ``pyfunc`` exported with one float input of ``len(columns)`` columns."""
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
    errors = []
    scratch = tempfile.TemporaryDirectory(prefix="loopml-torch-onnx-")
    target = Path(scratch.name) / "model.onnx"
    for dynamo in (False, True):  # the TorchScript exporter needs no onnxscript
        try:
            torch.onnx.export(
                module,
                (example,),
                target,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "rows"}, "output": {0: "rows"}},
                opset_version=17,
                dynamo=dynamo,
            )
            break
        except Exception as exc:  # torch raises many kinds; keep each reason
            errors.append(f"{'dynamo' if dynamo else 'torchscript'}: {type(exc).__name__}: {exc}")
    else:
        scratch.cleanup()
        raise ExportError(f"torch.onnx.export failed: {'; '.join(errors)}")
    with scratch:
        model = onnx.load(str(target))
    model.graph.name = name
    converted = Converted(model, [OnnxInput("input", list(columns), "float")], "values")
    stamp(converted)
    return converted
