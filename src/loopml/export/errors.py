"""What an ONNX export refuses: a pipeline it cannot convert, or one that converts wrong."""

from __future__ import annotations

from loopml.core.errors import LoopmlError

ONNX_EXTRA = "pip install 'loopml[onnx]'"


class ExportError(LoopmlError):
    """A model version cannot be exported to ONNX (a step has no converter, an input type
    ONNX cannot carry, the extra is missing); the message names the step and why."""

    exit_code = 2


class ParityError(ExportError):
    """The ONNX model scores the version's reference rows differently from the pipeline.

    ``max_abs_diff`` is the largest probability (or value) difference, ``label_mismatches``
    how many rows got another label; nothing is written when this is raised.
    """

    def __init__(self, message: str, max_abs_diff: float, label_mismatches: int) -> None:
        self.max_abs_diff = max_abs_diff
        self.label_mismatches = label_mismatches
        super().__init__(message)


def missing_extra(exc: ImportError) -> ExportError:
    """The clear error for an export (or ONNX serving) without the ``onnx`` extra."""
    return ExportError(f"ONNX needs the onnx extra ({exc.name or exc} is missing): {ONNX_EXTRA}")
