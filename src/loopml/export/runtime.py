"""Scoring an exported ONNX graph with onnxruntime: the parity check's and the server's scorer.

The graph's metadata (:mod:`loopml.export.convert`) says which raw column
feeds which input and how to read its label, so one class scores any
exported loopml model from a pandas frame. onnxruntime runs single-threaded
(``intra_op_num_threads=1``): requests are one or a few rows, where thread
hand-offs cost more than they save, and server processes (not threads) scale
out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.export.convert import KIND_KEY, read_metadata
from loopml.export.errors import ExportError, missing_extra
from loopml.registry.loading import Scores


class OnnxScorer:
    """One ONNX graph in an onnxruntime session, scoring frames like the pipeline it came from."""

    runtime = "onnx"

    def __init__(self, data: bytes, *, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise missing_extra(exc) from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
            props = dict(self.session.get_modelmeta().custom_metadata_map)
            self.inputs, classes, self.label_index = read_metadata(props)
        except Exception as exc:  # a damaged file or one not exported by loopml
            raise ExportError(f"not a loopml ONNX export: {type(exc).__name__}: {exc}") from exc
        self.size = len(data)
        self.kind = props.get(KIND_KEY, "classifier")
        self.classes = classes
        self._labels = None if classes is None else np.asarray(classes)
        self._outputs = [output.name for output in self.session.get_outputs()]
        self._floats = [(item.name, item.columns) for item in self.inputs if item.type == "float"]
        self._texts = [(item.name, item.columns[0]) for item in self.inputs if item.type != "float"]
        self._float_columns = [c for _, columns in self._floats for c in columns]

    @property
    def columns(self) -> list[str]:
        """The raw columns the graph reads."""
        return [column for item in self.inputs for column in item.columns]

    def feed(self, frame: pd.DataFrame) -> dict[str, np.ndarray[Any, Any]]:
        """The graph's inputs from ``frame``: numbers as float32, text ("" when missing)."""
        feed: dict[str, np.ndarray[Any, Any]] = {}
        if self._floats:
            block = self._numbers(frame)
            if len(self._floats) == 1:
                feed[self._floats[0][0]] = np.ascontiguousarray(block)
            else:
                columns = np.ascontiguousarray(block.T)
                for index, (name, _) in enumerate(self._floats):
                    feed[name] = columns[index].reshape(-1, 1)
        for name, column in self._texts:
            values = frame[column].to_numpy(dtype=object)
            texts = np.asarray(["" if _missing(v) else str(v) for v in values], dtype=object)
            feed[name] = texts.reshape(-1, 1)
        return feed

    def _numbers(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        """The numeric columns as one float32 block, without building a sub-frame when the
        frame holds only them (a served all-number signature: ~10x cheaper per request)."""
        wanted = self._float_columns
        if not self._texts and len(frame.columns) == len(wanted):
            if list(frame.columns) == wanted:
                return frame.to_numpy(dtype=np.float32, na_value=np.nan)
            positions = frame.columns.get_indexer(pd.Index(wanted))
            if (positions >= 0).all():
                return frame.to_numpy(dtype=np.float32, na_value=np.nan)[:, positions]
        return frame[wanted].to_numpy(dtype=np.float32, na_value=np.nan)

    def score(self, frame: pd.DataFrame) -> Scores:
        """Labels (or values) and, for classifiers, probabilities, as the pipeline gives them."""
        results = self.session.run(None, self.feed(frame))
        first = np.asarray(results[0]).reshape(len(frame), -1)[:, 0]
        if self.kind != "classifier":
            return Scores(first.astype(np.float64))
        if self.label_index and self._labels is not None:
            # a class index: int64 from an argmax, or a float column of a PyTorch module's output
            first = self._labels[np.rint(first).astype(np.int64)]
        probabilities = np.asarray(results[1], dtype=np.float64)
        return Scores(first, probabilities)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)
