"""Score a CSV with a model exported by ``loopml export --format onnx``, on a small device.

Needs only onnxruntime and numpy (no loopml, MLflow or pandas)::

    python score.py model.onnx rows.csv > predictions.csv

The CSV has a header row naming the model's columns (others are ignored). An
empty cell is a missing value. The output has one row per input row:
``row,prediction`` and, for a classifier, one probability column per class.
What the graph needs is in its metadata, written by loopml at export: which
column feeds which input (``loopml.inputs``), the classes, and whether the
graph's label is an index into them.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort


class EdgeModel:
    """An exported loopml model in an onnxruntime session (one thread: small devices)."""

    def __init__(self, path: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        meta = self.session.get_modelmeta().custom_metadata_map
        self.inputs: list[dict[str, Any]] = json.loads(meta["loopml.inputs"])
        self.classifier = meta.get("loopml.kind", "classifier") == "classifier"
        self.classes: list[Any] | None = (
            json.loads(meta["loopml.classes"]) if "loopml.classes" in meta else None
        )
        self.label_index = meta.get("loopml.label_index") == "true"

    @property
    def columns(self) -> list[str]:
        return [column for item in self.inputs for column in item["columns"]]

    def feed(self, rows: Sequence[dict[str, str]]) -> dict[str, np.ndarray]:
        """The graph's inputs: numbers as float32 (empty cell: NaN), text as is ("": missing)."""
        feed = {}
        for item in self.inputs:
            if item["type"] == "string":
                column = item["columns"][0]
                values = [row.get(column) or "" for row in rows]
                feed[item["name"]] = np.asarray(values, dtype=object).reshape(-1, 1)
            else:
                block = [[_number(row.get(c)) for c in item["columns"]] for row in rows]
                feed[item["name"]] = np.asarray(block, dtype=np.float32)
        return feed

    def predict(self, rows: Sequence[dict[str, str]]) -> tuple[list[Any], np.ndarray | None]:
        """Labels (or values) and, for a classifier, the probabilities of each class."""
        results = self.session.run(None, self.feed(rows))
        first = np.asarray(results[0]).reshape(len(rows), -1)[:, 0]
        if not self.classifier:
            return [float(v) for v in first], None
        labels = first.tolist()
        if self.label_index and self.classes is not None:
            labels = [self.classes[round(i)] for i in labels]  # a float index from PyTorch
        return labels, np.asarray(results[1], dtype=np.float64)


def _number(text: str | None) -> float:
    if text is None or text.strip() == "":
        return float("nan")
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return 1.0 if lowered == "true" else 0.0
    return float(text)


def read_rows(path: str) -> list[dict[str, str]]:
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_predictions(
    model: EdgeModel, rows: Sequence[dict[str, str]], out: Any, chunk: int = 1024
) -> int:
    writer = csv.writer(out)
    header = ["row", "prediction"]
    if model.classifier and model.classes is not None:
        header += [f"probability_{c}" for c in model.classes]
    writer.writerow(header)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        labels, probabilities = model.predict(part)
        for offset, label in enumerate(labels):
            line: list[Any] = [start + offset, label]
            if probabilities is not None:
                line += [f"{p:.9g}" for p in probabilities[offset]]
            writer.writerow(line)
    return len(rows)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the .onnx file loopml export wrote")
    parser.add_argument("csv", help="rows to score, with a header")
    args = parser.parse_args(None if argv is None else list(argv))
    model = EdgeModel(args.model)
    rows = read_rows(args.csv)
    missing = [c for c in model.columns if rows and c not in rows[0]]
    if missing:
        names = ", ".join(missing)
        print(f"score.py: {args.csv} lacks the model's columns: {names}", file=sys.stderr)
        return 2
    write_predictions(model, rows, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
